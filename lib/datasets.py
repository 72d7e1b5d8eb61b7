"""Synthetic data sets, each seeded: the same arguments give the same numbers."""

from __future__ import annotations

import numpy as np

from .data import Dataset


def _check(name: str, value, low, high, kind=int) -> None:
    ok = (
        isinstance(value, (int, np.integer))
        if kind is int
        else isinstance(value, (int, float, np.integer, np.floating))
    )
    if isinstance(value, bool) or not ok or not (low <= value <= high) or value != value:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name} must be {what} from {low:,} to {high:,}; got {value!r}")


def linear(m: int = 200, n: int = 3, noise: float = 0.1, seed: int = 0) -> Dataset:
    """y = X @ w_true + b_true + noise * N(0, 1), with X ~ N(0, 1) and w_true, b_true ~ U(-2, 2)."""
    _check("m", m, 1, 1_000_000)
    _check("n", n, 1, 1_000)
    _check("noise", noise, 0.0, 1e6, float)
    _check("seed", seed, 0, 2**32 - 1)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    w_true = rng.uniform(-2.0, 2.0, size=n)
    b_true = rng.uniform(-2.0, 2.0)
    y = X @ w_true + b_true + noise * rng.normal(size=m)
    return Dataset(X, y, name=f"linear (m={m}, n={n}, noise={noise:g}, seed={seed})", true_weights=(*w_true, b_true))
