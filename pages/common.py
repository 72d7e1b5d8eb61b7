"""Helpers more than one page uses: the cached synthetic data set and the twin-lines table."""

from __future__ import annotations

import numpy as np
import streamlit as st

import lib
from lib.explain import PHASES, phase_source


@st.cache_data(max_entries=16, show_spinner=False)
def _linear_arrays(n: int, m: int, noise: float, seed: int):
    """The numpy arrays of lib.datasets.linear (cached at numpy level: a Dataset is rebuilt around them)."""
    data = lib.datasets.linear(m=m, n=n, noise=noise, seed=seed)
    return data.X, data.y, data.true_weights, data.name


def linear_data(n: int, m: int, noise: float, seed: int) -> lib.Dataset:
    """lib.datasets.linear(m, n, noise, seed), built once per argument set per server."""
    X, y, true_weights, name = _linear_arrays(int(n), int(m), float(noise), int(seed))
    return lib.Dataset(X, y, name=name, true_weights=true_weights)


@st.cache_data(max_entries=16, show_spinner=False)
def least_squares(n: int, m: int, noise: float, seed: int, bias: bool) -> np.ndarray:
    """The closed-form solution the loops should approach, for the cached synthetic data set."""
    return lib.least_squares(linear_data(n, m, noise, seed), bias)


def _one_line(code: str) -> str:
    """A phase's code lines (comments dropped) on one line, for a table cell."""
    lines = [line.strip() for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]
    out = ""
    for line in lines:
        out += line + (" " if line.endswith(":") else "; ")
    return out.rstrip("; ").replace("|", "\\|")


def twin_lines_markdown() -> str:
    """A markdown table of the five phases: the torch line beside its hand-written twin.

    The cells are sliced from inspect.getsource of lib.torch_loop and lib.manual_loop, the
    functions lib.run calls, so the table always shows the code that runs.
    """
    manual, torch = phase_source(lib.manual_loop), phase_source(lib.torch_loop)
    rows = ["| step | torch | by hand (numpy) |", "|---|---|---|"]
    for phase in PHASES:
        rows.append(f"| {phase.lstrip('# ')} | `{_one_line(torch[phase])}` | `{_one_line(manual[phase])}` |")
    return "\n".join(rows)
