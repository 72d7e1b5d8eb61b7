"""The data the pages train on, cached at numpy level (a Dataset is rebuilt around the arrays), the
least-squares answer, and the Compare page's last run."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

import lib
from lib.io.csv_data import prepare, read_csv
from lib.io.datasets import PRESETS
from lib.io.export import twin_sources
from lib.lessons.explain import phase_source
from pages.parts.labels import DROP_LABEL

# session_state key: {"data": Dataset, "result": Result, "source": dict}
LAST_RUN = "compare_last_run"


@st.cache_data(max_entries=16, show_spinner=False)
def _linear_arrays(n: int, m: int, noise: float, seed: int):
    """The numpy arrays of lib.datasets.linear (cached at numpy level: a Dataset is rebuilt
    around them)."""
    data = lib.datasets.linear(m=m, n=n, noise=noise, seed=seed)
    return data.X, data.y, data.true_weights, data.name


def linear_data(n: int, m: int, noise: float, seed: int) -> lib.Dataset:
    """lib.datasets.linear(m, n, noise, seed), built once per argument set per server."""
    X, y, true_weights, name = _linear_arrays(int(n), int(m), float(noise), int(seed))
    return lib.Dataset(X, y, name=name, true_weights=true_weights)


@st.cache_data(max_entries=32, show_spinner=False)
def _preset_arrays(key: str, seed: int):
    data = PRESETS[key].make(seed)
    return data.X, data.y, data.feature_names, data.name, data.true_weights


def preset_data(key: str, seed: int) -> lib.Dataset:
    """PRESETS[key].make(seed), built once per argument set per server."""
    X, y, names, name, true_weights = _preset_arrays(key, int(seed) if PRESETS[key].seeded else 0)
    return lib.Dataset(X, y, feature_names=names, name=name, true_weights=true_weights)


@st.cache_data(max_entries=8, show_spinner="Reading the CSV…")
def csv_frame(raw: bytes):
    return read_csv(raw)


@st.cache_data(max_entries=16, show_spinner=False)
def csv_arrays(
    raw: bytes,
    name: str,
    target: str,
    features: tuple,
    standardize: bool,
    drop: bool,
    classifier: bool,
):
    prepared = prepare(
        csv_frame(raw),
        target,
        list(features),
        standardize=standardize,
        drop_missing=drop,
        classifier=classifier,
        name=name,
        drop_option=f"the checkbox {DROP_LABEL}",
    )
    data = prepared.data
    return data.X, data.y, data.feature_names, data.name, prepared.dropped_rows


def fingerprint(data: lib.Dataset) -> tuple:
    """A value that is equal for equal data sets (Dataset compares by identity)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(data.X.tobytes())
    digest.update(data.y.tobytes())
    return data.name, data.X.shape, digest.hexdigest()


@st.cache_data(max_entries=16, show_spinner=False)
def _least_squares(_data: lib.Dataset, key: tuple, bias: bool) -> np.ndarray:
    return lib.least_squares(_data, bias)


def least_squares(data: lib.Dataset, cfg: lib.Config) -> np.ndarray | None:
    """The closed-form answer a linear model with a squared loss approaches; None for the other
    models."""
    if cfg.model != "linear":
        return None
    return _least_squares(data, fingerprint(data), cfg.bias)


def last_run() -> tuple[lib.Dataset, lib.Result] | None:
    """The Compare page's latest run in this session, with its data (st.session_state[LAST_RUN]),
    or None."""
    record = st.session_state.get(LAST_RUN)
    return None if record is None else (record["data"], record["result"])


# What a phase reads as when this configuration leaves it out (the reset, with zero_grad off).
SKIPPED = "# (not in this configuration: it skips this line)"


def loop_key(data: lib.Dataset, cfg: lib.Config) -> tuple[int, lib.Config]:
    """What decides the text of the loops as (data, cfg) runs them: the number of features, and the
    Config with what the loops take as arguments (or never read) set to one value.

    The data's values, the learning rate, the batch size, the seed, the init and the iteration
    count are arguments or live outside the two loop functions; tests/test_common_caching.py
    checks that changing them leaves the text as it is.
    """
    return data.n, cfg.replace(lr=0.01, batch_size=1, seed=0, init="zeros", iterations=1)


def shape_data(n_features: int) -> lib.Dataset:
    """Two rows of zeros with targets 0 and 1 (valid for every loss): data of this shape."""
    return lib.Dataset(np.zeros((2, n_features)), np.array([0.0, 1.0]), name="shape")


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs={lib.Config: repr})
def _twin_sources(n_features: int, cfg: lib.Config) -> dict[str, str]:
    return twin_sources(shape_data(n_features), cfg)


def twin_texts(data: lib.Dataset, cfg: lib.Config) -> tuple[str, str]:
    """The two loops' whole text as this configuration runs them, (hand, torch): lib's own source,
    less the branches the configuration does not take (cached: see twin_phases). Raises KeyError,
    ValueError or SyntaxError if it cannot be made."""
    sources = _twin_sources(*loop_key(data, cfg))
    return sources["manual_loop"], sources["torch_loop"]


def twin_phases(data: lib.Dataset, cfg: lib.Config) -> tuple[dict[str, str], dict[str, str]]:
    """Each loop's phases as this configuration runs them, (hand, torch): lib's own source, less
    the branches the configuration does not take (lib.io.export.twin_sources). One cache entry
    serves every configuration with the same loops (loop_key)."""
    try:
        texts = twin_texts(data, cfg)
    except (KeyError, ValueError, SyntaxError):
        # The specialised text could not be made (lib's files changed under a running server,
        # say): the whole functions, every branch, are still the code that runs.
        texts = lib.manual_loop, lib.torch_loop
    hand, torch = (phase_source(text, SKIPPED) for text in texts)
    return hand, torch
