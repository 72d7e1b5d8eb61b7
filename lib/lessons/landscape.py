"""The loss over two chosen weights, the others held at their final values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.config import Config
from ..engine.data import Dataset
from ..engine.lockstep import Result
from ..engine.trace import SAMPLE_TERMS, sample_loss_np


@dataclass(frozen=True, eq=False)
class Surface:
    """Loss on a grid over weights i and j: loss[b, a] is the loss at (a_values[a], b_values[b])."""

    i: int
    j: int
    a_values: np.ndarray
    b_values: np.ndarray
    loss: np.ndarray
    exact: bool  # True: a closed-form quadratic; False: the model evaluated at every grid point


def full_data_loss(data: Dataset, cfg: Config, weights: np.ndarray) -> np.ndarray:
    """The loss of the whole data set under cfg's convention, for a stack of weight vectors.

    The stack is (k, n_params).
    """
    reduce = np.sum if SAMPLE_TERMS[cfg.loss][1] == "sum" else np.mean
    out = np.empty(len(weights))
    for k, w in enumerate(weights):
        out[k] = reduce(sample_loss_np(cfg.loss, _outputs(data, cfg, w), data.y))
    return out


def _outputs(data: Dataset, cfg: Config, w: np.ndarray) -> np.ndarray:
    return outputs(cfg, data.X, w)


def outputs(cfg: Config, X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The model's outputs z (logits for bce) on inputs X (k, n) at the flat weights w.

    As both loops compute them.
    """
    if cfg.model == "mlp":
        W1, b1, W2, b2 = cfg.layout(X.shape[1]).views(w)
        a1 = X @ W1.T + b1
        return (np.tanh(a1) if cfg.activation == "tanh" else np.maximum(a1, 0.0)) @ W2 + b2[0]
    return X @ w[:-1] + w[-1] if cfg.bias else X @ w


# weights near overflow (a diverged run) give inf or nan cells, not warnings
@np.errstate(all="ignore")
def surface(
    data: Dataset, result: Result, i: int, j: int, size: int = 60, upto: int | None = None
) -> Surface:
    """The loss around both loops' trajectories in the plane of recorded weights i and j.

    i and j index result.weight_names. The grid spans the trajectories (up to step `upto`) with a
    margin. For linear models with a squared loss the loss is a quadratic in (a, b), computed
    exactly; otherwise the model is evaluated at each grid point.
    """
    cfg = result.config
    cols = result.recorded
    whole = all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in (i, j))
    if not whole or not (0 <= i < len(cols) and 0 <= j < len(cols)) or i == j:
        raise ValueError(f"choose two different weights from 0 to {len(cols) - 1}; got {i} and {j}")
    steps = result.steps if upto is None else max(0, min(upto, result.steps))
    path = np.vstack([result.manual.weights[: steps + 1], result.torch.weights[: steps + 1]])[
        :, [i, j]
    ]
    path = path[np.isfinite(path).all(axis=1)]
    low, high = path.min(axis=0), path.max(axis=0)
    margin = np.maximum((high - low) * 0.25, 0.5)
    a_values = np.linspace(low[0] - margin[0], high[0] + margin[0], size)
    b_values = np.linspace(low[1] - margin[1], high[1] + margin[1], size)
    final = _final_full_weights(data, result)
    wi, wj = cols[i], cols[j]
    if cfg.model == "linear" and cfg.loss != "bce":
        # r(a, b) = r0 + (a - wi) X_i + (b - wj) X_j, so |r|^2 is a quadratic in (a, b).
        X = data.with_ones() if cfg.bias else data.X
        r0 = X @ final - data.y
        xi, xj = X[:, wi], X[:, wj]
        da, db = a_values - final[wi], b_values - final[wj]
        sq = (
            r0 @ r0
            + 2 * da[None, :] * (r0 @ xi)
            + 2 * db[:, None] * (r0 @ xj)
            + da[None, :] ** 2 * (xi @ xi)
            + db[:, None] ** 2 * (xj @ xj)
            + 2 * da[None, :] * db[:, None] * (xi @ xj)
        )
        scale = {"mse": 1 / data.m, "half_mse": 1 / (2 * data.m), "sse": 1.0}[cfg.loss]
        return Surface(i, j, a_values, b_values, scale * sq, True)
    grid = np.repeat(final[None, :], size * size, axis=0)
    A, B = np.meshgrid(a_values, b_values)
    grid[:, wi], grid[:, wj] = A.ravel(), B.ravel()
    return Surface(
        i, j, a_values, b_values, full_data_loss(data, cfg, grid).reshape(size, size), False
    )


def _final_full_weights(data: Dataset, result: Result) -> np.ndarray:
    """The manual loop's last finite weights: the point the other weights are held at."""
    if len(result.recorded) != result.config.n_params(data.n):
        raise ValueError(
            "this model has too many weights for a landscape: only some of them were recorded"
        )
    finite = np.flatnonzero(np.isfinite(result.manual.weights).all(axis=1))
    return result.manual.weights[finite[-1]]
