"""For the two-class models (loss "bce"): accuracy at each step and the decision boundary.

Each in both loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.data import Dataset
from ..engine.lockstep import Result
from .landscape import outputs


def is_classifier(result: Result) -> bool:
    """True for a run on a 0/1 target with BCEWithLogitsLoss.

    Its outputs are logits of the class-1 probability.
    """
    return result.config.loss == "bce"


def _full_weights(data: Dataset, result: Result) -> None:
    if not is_classifier(result):
        raise ValueError("accuracy and a decision boundary need a two-class run (loss 'bce')")
    if len(result.recorded) != result.config.n_params(data.n):
        raise ValueError(
            "this model has too many weights: only some of them were recorded, "
            "so it cannot be evaluated"
        )


def accuracy(
    data: Dataset, result: Result, points: int = 400
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, manual accuracy, torch accuracy) on the whole data.

    After about `points` evenly spread steps. Accuracy after step t is the share of samples whose
    logit has the label's sign (logit > 0 means class 1) at weights[t + 1]; steps whose weights are
    not finite give NaN.
    """
    _full_weights(data, result)
    if not (isinstance(points, int) and points >= 2):
        raise ValueError(f"points must be a whole number >= 2; got {points!r}")
    steps = np.unique(
        np.linspace(0, result.steps - 1, min(points, result.steps)).round().astype(int)
    )
    out = []
    for history in (result.manual, result.torch):
        acc = np.full(len(steps), np.nan)
        for k, t in enumerate(steps):
            w = history.weights[t + 1]
            if np.isfinite(w).all():
                with np.errstate(all="ignore"):
                    acc[k] = np.mean((outputs(result.config, data.X, w) > 0) == (data.y > 0.5))
        out.append(acc)
    return steps, out[0], out[1]


@dataclass(frozen=True, eq=False)
class Boundary:
    """Each loop's class-1 probability on a grid over the two features.

    p[loop][b, a] at (x1[a], x2[b]).
    """

    x1: np.ndarray
    x2: np.ndarray
    manual: np.ndarray
    torch: np.ndarray
    step: int  # the weights after this step


def boundary(data: Dataset, result: Result, step: int | None = None, size: int = 60) -> Boundary:
    """Both loops' sigmoid(logit) over a grid spanning the data (two features only).

    After `step` (default: last).
    """
    _full_weights(data, result)
    if data.n != 2:
        raise ValueError(f"a decision boundary is drawn over two features; this data has {data.n}")
    if not (isinstance(size, int) and 2 <= size <= 400):
        raise ValueError(f"size must be a whole number from 2 to 400; got {size!r}")
    last = result.steps - 1
    step = last if step is None else step
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 0 <= step <= last:
        raise ValueError(f"step must be a whole number from 0 to {last}; got {step!r}")
    low, high = data.X.min(axis=0), data.X.max(axis=0)
    pad = 0.1 * np.maximum(high - low, 1e-9)
    x1 = np.linspace(low[0] - pad[0], high[0] + pad[0], size)
    x2 = np.linspace(low[1] - pad[1], high[1] + pad[1], size)
    A, B = np.meshgrid(x1, x2)
    grid = np.column_stack([A.ravel(), B.ravel()])
    probabilities = []
    for history in (result.manual, result.torch):
        with np.errstate(all="ignore"):
            z = outputs(result.config, grid, history.weights[step + 1])
            probabilities.append(np.exp(-np.logaddexp(0.0, -z)).reshape(size, size))
    return Boundary(x1, x2, probabilities[0], probabilities[1], int(step))
