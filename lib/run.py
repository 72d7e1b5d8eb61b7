"""The lockstep driver: both loops, same batches, same init; records, compares, stops."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from . import torch_loop as torch_side
from .config import Config
from .data import Dataset, initial_weights, loader, weight_names
from .manual import manual_loop
from .torch_loop import torch_loop

LOOPS = ("manual", "torch")


@dataclass(frozen=True, eq=False)
class History:
    """What one loop did: loss and gradient norm per step, weights before and after every step."""

    loss: np.ndarray  # (steps,) loss of each step's batch, before its update
    weights: np.ndarray  # (steps + 1, n_params): row 0 is the init, row t + 1 follows step t
    grad_norm: np.ndarray  # (steps,) L2 norm of each step's gradient
    seconds: float = 0.0  # wall time spent inside this loop's steps

    @property
    def steps(self) -> int:
        """Number of steps taken."""
        return len(self.loss)

    @property
    def steps_per_second(self) -> float:
        """Steps per second of wall time inside the loop (nan before the first step)."""
        return self.steps / self.seconds if self.seconds > 0 else math.nan


@dataclass(frozen=True, eq=False)
class Result:
    """Both loops' histories for one Config, and how they compare."""

    manual: History
    torch: History
    config: Config
    weight_names: tuple[str, ...]
    diverged_at: int | None = None  # first step (index into loss) whose loss or weights went non-finite
    stopped: str | None = None  # None: ran all iterations | "diverged" | "stopped" | "time limit"
    divergence: str = ""  # what went non-finite, in words
    step_diff: np.ndarray = field(default=None, repr=False)  # (steps + 1,) max |manual - torch| per weights row

    @property
    def steps(self) -> int:
        """Number of steps both loops took."""
        return self.manual.steps

    @property
    def max_abs_diff(self) -> float:
        """Largest |manual - torch| over all recorded weights (finite rows only)."""
        finite = self.step_diff[np.isfinite(self.step_diff)]
        return float(finite.max()) if finite.size else math.nan

    @property
    def done(self) -> bool:
        """True when the run took every requested step."""
        return self.stopped is None

    def message(self) -> str:
        """One sentence on how the run ended."""
        if self.stopped == "diverged":
            return (
                f"Diverged at step {self.diverged_at}: {self.divergence}. "
                f"Try a smaller learning rate than {self.config.lr:g}."
            )
        if self.stopped == "stopped":
            return f"Stopped at step {self.steps:,} of {self.config.iterations:,}; the steps taken are kept."
        if self.stopped == "time limit":
            return (
                f"Hit the time limit after {self.steps:,} of {self.config.iterations:,} steps; "
                "the steps taken are kept. Use fewer iterations or a smaller model."
            )
        return f"Ran all {self.steps:,} steps."

    def frame(self) -> pd.DataFrame:
        """Tidy history: one row per (step, loop, metric) with its value.

        Metrics: "loss" and "grad_norm" at steps 0 .. steps-1 (step t's batch, before its update);
        each weight name at steps 0 .. steps (step 0 is the init, step t + 1 follows step t).
        """
        parts = []
        for loop in LOOPS:
            h: History = getattr(self, loop)
            for metric, values in (("loss", h.loss), ("grad_norm", h.grad_norm)):
                parts.append(
                    pd.DataFrame({"step": np.arange(len(values)), "loop": loop, "metric": metric, "value": values})
                )
            for j, name in enumerate(self.weight_names):
                parts.append(
                    pd.DataFrame(
                        {"step": np.arange(len(h.weights)), "loop": loop, "metric": name, "value": h.weights[:, j]}
                    )
                )
        frame = pd.concat(parts, ignore_index=True)
        frame["loop"] = frame["loop"].astype("category")
        frame["metric"] = frame["metric"].astype("category")
        return frame


class _Recorder:
    """Preallocated arrays one loop's steps are written into."""

    def __init__(self, iterations: int, init: np.ndarray) -> None:
        self.loss = np.empty(iterations)
        self.grad_norm = np.empty(iterations)
        self.weights = np.empty((iterations + 1, len(init)))
        self.weights[0] = init
        self.seconds = 0.0

    def history(self, steps: int) -> History:
        return History(self.loss[:steps], self.weights[: steps + 1], self.grad_norm[:steps], self.seconds)


def _first_nonfinite(loss: np.ndarray, weights: np.ndarray) -> tuple[int | None, str]:
    """First step whose loss, or whose updated weights, is not finite, and what went wrong."""
    bad_loss = np.flatnonzero(~np.isfinite(loss))
    bad_w = np.flatnonzero(~np.isfinite(weights[1:]).all(axis=1))
    k_loss = int(bad_loss[0]) if bad_loss.size else None
    k_w = int(bad_w[0]) if bad_w.size else None
    if k_loss is None and k_w is None:
        return None, ""
    if k_w is None or (k_loss is not None and k_loss <= k_w):
        return k_loss, f"loss became {loss[k_loss]}"
    row = weights[k_w + 1]
    return k_w, f"weights became {row[~np.isfinite(row)][0]}"


def run(
    data: Dataset,
    cfg: Config,
    *,
    progress: Callable[[Result], object] | None = None,
    progress_every: float = 0.25,
    time_limit: float | None = None,
) -> Result:
    """Run the manual and the torch loop in lockstep on the same batches from the same init.

    progress, if given, is called with the partial Result about every progress_every seconds;
    returning True stops the run, which keeps what was computed. time_limit (seconds) stops it too.
    A loop whose loss, gradient or weights go non-finite ends the run at that step.
    """
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a lib.Dataset; got {type(data).__name__}")
    if not isinstance(cfg, Config):
        raise ValueError(f"cfg must be a lib.Config; got {type(cfg).__name__}")
    init = initial_weights(data, cfg)
    names = tuple(weight_names(data, cfg))
    X = data.with_ones() if cfg.bias else data.X
    optimizer = cfg.optimizer, cfg.optimizer_kwargs
    manual = manual_loop(
        loader(X, data.y, cfg.batch_size, cfg.seed), init, cfg.lr, cfg.hand_loss, cfg.zero_grad, *optimizer
    )
    dtype = getattr(torch, cfg.torch_dtype)
    batches = torch_side.loader(data.X, data.y, cfg.batch_size, cfg.seed, dtype)
    twin = torch_loop(batches, init, cfg.lr, cfg.loss, cfg.zero_grad, cfg.bias, dtype, *optimizer)
    recorders = _Recorder(cfg.iterations, init), _Recorder(cfg.iterations, init)
    rec_m, rec_t = recorders
    clock = time.perf_counter
    started = last_report = clock()
    steps, stopped = 0, None

    def result(steps: int, stopped: str | None) -> Result:
        hm, ht = rec_m.history(steps), rec_t.history(steps)
        diverged_at, divergence = None, ""
        if stopped == "diverged":
            candidates = [_first_nonfinite(h.loss, h.weights) for h in (hm, ht)]
            diverged_at, divergence = min((c for c in candidates if c[0] is not None), key=lambda c: c[0])
            hm, ht = rec_m.history(diverged_at + 1), rec_t.history(diverged_at + 1)
        with np.errstate(invalid="ignore"):
            diff = np.abs(hm.weights - ht.weights).max(axis=1)
        return Result(hm, ht, cfg, names, diverged_at, stopped, divergence, diff)

    with np.errstate(all="ignore"):
        for t in range(cfg.iterations):
            t0 = clock()
            loss_m, w_m, g_m = next(manual)
            t1 = clock()
            loss_t, w_t, g_t = next(twin)
            t2 = clock()
            rec_m.seconds += t1 - t0
            rec_t.seconds += t2 - t1
            norm_m, norm_t = math.sqrt(g_m @ g_m), math.sqrt(g_t @ g_t)
            rec_m.loss[t], rec_m.grad_norm[t], rec_m.weights[t + 1] = loss_m, norm_m, w_m
            rec_t.loss[t], rec_t.grad_norm[t], rec_t.weights[t + 1] = loss_t, norm_t, w_t
            steps = t + 1
            # A non-finite weight makes the next loss non-finite; the last step is checked below.
            if not math.isfinite(loss_m + loss_t + norm_m + norm_t):
                stopped = "diverged"
                break
            if t2 - last_report >= progress_every or (time_limit is not None and t2 - started >= time_limit):
                if time_limit is not None and t2 - started >= time_limit:
                    stopped = "time limit"
                    break
                last_report = t2
                if progress is not None and progress(result(steps, None)) is True:
                    stopped = "stopped"
                    break
        if stopped is None and not (np.isfinite(w_m).all() and np.isfinite(w_t).all()):
            stopped = "diverged"
    return result(steps, stopped)
