"""The Config builder: the Dataset and lib.Config that the sidebar's values describe, or a
ValueError that says in words why they cannot be used."""

from __future__ import annotations

import numpy as np

import lib
from lib.engine import lockstep as run_checks
from pages.parts.cached import csv_arrays, linear_data, preset_data

MAX_NUMBERS = 5_000_000  # samples x features of the synthetic data: 40 MB of float64, plenty here


def parse_init(choice: str, text: str):
    """The init for lib.Config: a name, or the numbers typed in."""
    if choice != "custom":
        return choice
    try:
        return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(
            f"initial weights must be numbers separated by commas; got {text!r}"
        ) from None


def build(v: dict) -> tuple[lib.Dataset, lib.Config, dict]:
    """The Dataset and Config the controls describe, and where the data came from; ValueError in
    words."""
    if v.get("problem"):
        raise ValueError(v["problem"])
    cfg = _config(v)
    data, source = _data(v, cfg)
    _check_targets(data, cfg)
    # the checks lib.run makes (e.g. iterations x weights is capped)
    run_checks.check_run(data, cfg)
    lib.initial_weights(data, cfg)  # custom initial weights of the wrong length
    return data, cfg, source


def _config(v: dict) -> lib.Config:
    return lib.Config(
        lr=v["lr"],
        batch_size=int(v["batch_size"]),
        iterations=int(v["iterations"]),
        loss=v["loss"],
        bias=v["bias"],
        init=parse_init(v["init"], v["init_values"]),
        seed=int(v["seed"]),
        zero_grad=v["zero_grad"],
        optimizer=v["optimizer"],
        optimizer_kwargs=v["optimizer_kwargs"],
        model=v["model"],
        hidden=int(v["hidden"]),
        activation=v["activation"],
    )


def _data(v: dict, cfg: lib.Config) -> tuple[lib.Dataset, dict]:
    """The data of the chosen source, and where it came from (for the exported script)."""
    source = {"kind": v["source"]}
    if v["source"] == "synthetic":
        if v["samples"] * v["n"] > MAX_NUMBERS:
            raise ValueError(
                f"samples x features must be at most {MAX_NUMBERS:,} here; "
                f"got {v['samples']:,} x {v['n']:,}. Use fewer samples or fewer features"
            )
        return linear_data(v["n"], v["samples"], v["noise"], v["seed"]), source
    if v["source"] != "csv":
        return preset_data(v["source"], v["seed"]), source
    args = (v["standardize"], v["drop"], cfg.loss == "bce")
    X, y, names, name, dropped = csv_arrays(v["raw"], v["name"], v["target"], v["features"], *args)
    # The exported script reads the file itself: as is only when nothing was rescaled or left out.
    as_is = not v["standardize"] and dropped == 0
    source.update(file=v["name"], target=v["target"], as_is=as_is, dropped=dropped)
    return lib.Dataset(X, y, feature_names=names, name=name), source


def _check_targets(data: lib.Dataset, cfg: lib.Config) -> None:
    """A classifier's targets are 0s and 1s; else a ValueError that offers this model a way out."""
    if cfg.loss == "bce" and not np.isin(data.y, (0.0, 1.0)).all():
        shown = ", ".join(f"{t:g}" for t in np.unique(data.y)[:4])
        raise ValueError(
            "the bce loss trains a classifier, which needs targets of 0 and 1, but "
            f"{data.name} has targets like {shown}. Choose the blobs or moons preset or a 0/1 "
            "target column, or "
            + (
                "the linear model with a squared loss (logistic trains with bce only)"
                if cfg.model == "logistic"
                else "a squared loss (mse)"
            )
        )
