"""The learning-rate x batch-size map: one lib.run per cell, cells spread over the cores.

sweep = lib.sweep(data, lib.Config(iterations=500), lrs=[0.01, 0.1, 1.0], batch_sizes=[8, 200])
sweep.frame()   # one row per (lr, batch_size, loop): final and best loss, divergence, agreement

Each cell is lib.run of the Config with that lr and batch size (every other field as given), in a
worker process of a concurrent.futures pool: one torch thread per worker, one worker per core.
Workers are forked from the caller, so they share its imported torch instead of importing their
own (bench/sweep.py measures both start methods; tests/test_sweep.py keeps a sweep in the server's
memory budget). Results come back as cells finish; progress(partial Sweep) returning True stops
the sweep, which keeps the finished cells. Every worker has ended when sweep() returns or raises.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engine.config import Config
from ..engine.data import Dataset, split_rows
from ..engine.lockstep import LOOPS, Result, check_run, run
from .explain import AGREE, agreement
from .pitfalls import SQUARED_LOSSES, stability_limit

MAX_CELLS = 400  # learning rates x batch sizes in one sweep
MAX_SWEEP_STEPS = 2_000_000  # cells x iterations: about a quarter of an hour of one core's work
# "fork": a worker shares the caller's imported torch (about 60 MB PSS each, measured by
# bench/sweep.py); "spawn" would import torch again in each (about 230 MB RSS each).
START_METHOD = "fork"
STOP_EVERY = 0.2  # seconds between a running cell's looks at the stop flag
# Held by the one sweep of this process that is running: each uses every core, and on a shared
# server two at once would only share them, with twice the workers' memory.
CORES = threading.Lock()
COLUMNS = (
    "lr",
    "batch_size",
    "loop",
    "final_loss",
    "best_loss",
    "diverged_at",
    "max_abs_diff",
    "seconds",
)


@dataclass(frozen=True)
class Cell:
    """One finished run of the map: its lr and batch size and what both loops did."""

    lr: float
    batch_size: int
    steps: int  # steps both loops took
    first_loss: tuple[float, float]  # (manual, torch): the first step's batch loss
    final_loss: tuple[float, float]  # (manual, torch): the last step's batch loss
    best_loss: tuple[float, float]  # (manual, torch): the lowest finite batch loss of the run
    diverged_at: int | None  # the step whose loss, gradient or weights went non-finite
    divergence: str  # what went non-finite, in words ("" if nothing did)
    max_abs_diff: float  # largest |manual - torch| over every weight and finite step
    max_relative_diff: float  # the same, divided by max(1, largest |weight|) at each step
    seconds: tuple[float, float]  # (manual, torch): each loop's time inside its own steps
    wall: float  # seconds of the whole lib.run in its worker
    cpu: float  # CPU seconds of the worker process during that lib.run
    pid: int  # the worker process that ran it


@dataclass(frozen=True, eq=False)
class Sweep:
    """The cells of a learning-rate x batch-size map that have finished, and how it ended."""

    config: Config  # every field but lr and batch_size is each cell's
    lrs: tuple[float, ...]  # sorted, each once
    batch_sizes: tuple[int, ...]  # sorted, each once
    cells: tuple[Cell, ...]  # in the order they finished
    stopped: str | None = None  # None: every cell ran | "stopped" | "time limit"
    seconds: float = 0.0  # wall time of the sweep so far, pool start-up included
    workers: int = 1
    waiting: bool = False  # True while another sweep of this process holds the cores

    @property
    def total(self) -> int:
        """Cells in the grid."""
        return len(self.lrs) * len(self.batch_sizes)

    @property
    def done(self) -> bool:
        """True when every cell of the grid has finished."""
        return len(self.cells) == self.total

    def cell(self, lr: float, batch_size: int) -> Cell | None:
        """The finished cell at (lr, batch_size), or None."""
        for c in self.cells:
            if math.isclose(c.lr, lr, rel_tol=1e-12) and c.batch_size == batch_size:
                return c
        return None

    def frame(self) -> pd.DataFrame:
        """Tidy: one row per finished (lr, batch_size, loop), sorted, with the columns COLUMNS.

        final_loss is the last step's batch loss, best_loss the lowest finite one; diverged_at is
        <NA> where the run did not diverge; max_abs_diff is the cell's (the same on both rows);
        seconds is that loop's own time inside its steps.
        """
        rows = [
            (
                c.lr,
                c.batch_size,
                loop,
                c.final_loss[i],
                c.best_loss[i],
                c.diverged_at,
                c.max_abs_diff,
                c.seconds[i],
            )
            for c in self.cells
            for i, loop in enumerate(LOOPS)
        ]
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        frame["lr"] = frame["lr"].astype(np.float64)
        frame["batch_size"] = frame["batch_size"].astype(np.int64)
        frame["diverged_at"] = frame["diverged_at"].astype("Int64")
        frame = frame.sort_values(["lr", "batch_size", "loop"], ignore_index=True)
        frame["loop"] = pd.Categorical(frame["loop"], categories=list(LOOPS))
        return frame

    def message(self) -> str:
        """One sentence on how the sweep ended."""
        done = f"{len(self.cells):,} of {self.total:,} cells"
        if self.stopped == "stopped":
            return f"Stopped with {done} finished; the finished cells are kept."
        if self.stopped == "time limit":
            return f"Hit the time limit with {done} finished; the finished cells are kept."
        return f"All {self.total:,} cells ran, on {self.workers} worker process(es)."


def _numbers(name: str, values, whole: bool) -> tuple:
    """The grid's values, sorted, each once; a ValueError in words for a bad grid."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a list of numbers; got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty: give at least one value")
    kind = "whole numbers >= 1" if whole else "finite numbers > 0"
    for v in values:
        number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
            v, (bool, np.bool_)
        )
        if not number or not math.isfinite(v) or v <= 0 or (whole and v != int(v)):
            raise ValueError(f"{name} must be {kind}; got {v!r}")
    return tuple(sorted({int(v) if whole else float(v) for v in values}))


def check_sweep(data: Dataset, cfg: Config, lrs, batch_sizes) -> tuple[tuple, tuple]:
    """The grid (lrs, batch_sizes), sorted; a ValueError in words for a bad grid or for a cell
    lib.run would refuse."""
    if not isinstance(cfg, Config):
        raise ValueError(f"cfg must be a lib.Config; got {type(cfg).__name__}")
    lrs, sizes = _numbers("lrs", lrs, whole=False), _numbers("batch_sizes", batch_sizes, True)
    cells = len(lrs) * len(sizes)
    if cells > MAX_CELLS:
        raise ValueError(
            f"the map is capped at {MAX_CELLS:,} cells (learning rates x batch sizes); got "
            f"{len(lrs):,} x {len(sizes):,} = {cells:,}"
        )
    if cells * cfg.iterations > MAX_SWEEP_STEPS:
        raise ValueError(
            f"cells x iterations is capped at {MAX_SWEEP_STEPS:,} (MAX_SWEEP_STEPS) to bound a "
            f"sweep's time: {cells:,} cells x {cfg.iterations:,} iterations is "
            f"{cells * cfg.iterations:,}; with {cells:,} cells, at most "
            f"{MAX_SWEEP_STEPS // cells:,} iterations"
        )
    for lr in lrs:
        for b in sizes:
            try:
                check_run(data, cfg.replace(lr=lr, batch_size=b))
            except ValueError as err:
                raise ValueError(
                    f"the cell lr {lr:g}, batch size {b:,} cannot run: {err}"
                ) from None
    return lrs, sizes


def summarise(result: Result, wall: float, cpu: float = math.nan) -> Cell:
    """The Cell of one finished lib.run."""
    cfg = result.config

    def best(loss: np.ndarray) -> float:
        finite = loss[np.isfinite(loss)]
        return float(finite.min()) if finite.size else math.nan

    histories = [getattr(result, loop) for loop in LOOPS]
    return Cell(
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        steps=result.steps,
        first_loss=tuple(float(h.loss[0]) if h.steps else math.nan for h in histories),
        final_loss=tuple(float(h.loss[-1]) if h.steps else math.nan for h in histories),
        best_loss=tuple(best(h.loss) for h in histories),
        diverged_at=result.diverged_at,
        divergence=result.divergence,
        max_abs_diff=result.max_abs_diff,
        max_relative_diff=agreement(result)["max_relative"],
        seconds=tuple(h.seconds for h in histories),
        wall=wall,
        cpu=cpu,
        pid=os.getpid(),
    )


def _start_worker(data: Dataset, cfg: Config, stop) -> None:
    """A worker's set-up: one torch thread, and the sweep's data, Config and stop flag.

    They are kept in this module's globals of the worker process only (forked workers inherit the
    arguments without pickling them); the caller's module never holds them.
    """
    import torch

    torch.set_num_threads(1)
    globals()["_WORKER_INPUTS"] = (data, cfg, stop)


def _run_cell(lr: float, batch_size: int) -> Cell | None:
    """One cell, in a worker; None if the sweep was stopped before it finished."""
    data, cfg, stop = globals()["_WORKER_INPUTS"]
    if stop.is_set():
        return None
    began, cpu = time.perf_counter(), time.process_time()
    result = run(
        data,
        cfg.replace(lr=lr, batch_size=batch_size),
        progress=lambda _: stop.is_set(),
        progress_every=STOP_EVERY,
    )
    if result.stopped == "stopped":
        return None
    return summarise(result, time.perf_counter() - began, time.process_time() - cpu)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _seconds(value) -> bool:
    """A finite number (not a bool)."""
    number = isinstance(value, (int, float, np.integer, np.floating))
    return number and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def _check_options(progress, progress_every, workers, time_limit) -> None:
    if not (_seconds(progress_every) and progress_every > 0):
        raise ValueError(f"progress_every must be a number of seconds > 0; got {progress_every!r}")
    if progress is not None and not callable(progress):
        raise ValueError(
            f"progress must be a function of the partial Sweep, or None; got {progress!r}"
        )
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1
    ):
        raise ValueError(
            f"workers must be None (one per core) or a whole number >= 1; got {workers!r}"
        )
    if time_limit is not None and not (_seconds(time_limit) and time_limit >= 0):
        raise ValueError(f"time_limit must be None or a number of seconds >= 0; got {time_limit!r}")


def sweep(
    data: Dataset,
    cfg: Config,
    lrs: Iterable[float],
    batch_sizes: Iterable[int],
    progress: Callable[[Sweep], object] | None = None,
    *,
    progress_every: float = 0.25,
    workers: int | None = None,
    time_limit: float | None = None,
) -> Sweep:
    """lib.run of cfg at every (lr, batch_size) of the grid, on a pool of worker processes.

    progress, if given, is called with the partial Sweep each time cells finish, and at least
    every progress_every seconds while they run; returning True stops the sweep (cells still
    running stop within STOP_EVERY seconds and are dropped; the finished ones are kept).
    time_limit (seconds) stops it too. workers: one per core by default, never more than cells.
    One sweep of the process runs at a time (each uses every core): another one waits for it,
    with Sweep.waiting set, and progress reports and the time limit apply while it waits.
    """
    _check_options(progress, progress_every, workers, time_limit)
    lrs, sizes = check_sweep(data, cfg, lrs, batch_sizes)
    n_workers = min(workers or cores(), len(lrs) * len(sizes))
    run = _Run(cfg, lrs, sizes, n_workers, progress, progress_every, time_limit)
    if run.wait_for_the_cores():
        try:
            run.pool(data)
        finally:
            CORES.release()
    return run.partial()


class _Run:
    """One call of sweep: its grid, the cells finished so far, how it ended."""

    def __init__(self, cfg, lrs, sizes, n_workers, progress, progress_every, time_limit) -> None:
        self.cfg, self.lrs, self.sizes, self.n_workers = cfg, lrs, sizes, n_workers
        self.progress, self.every, self.limit = progress, progress_every, time_limit
        self.began = time.perf_counter()
        self.cells: list[Cell] = []
        self.stopped: str | None = None
        self.waiting = False

    def partial(self) -> Sweep:
        seconds = time.perf_counter() - self.began
        return Sweep(
            self.cfg,
            self.lrs,
            self.sizes,
            tuple(self.cells),
            self.stopped,
            seconds,
            self.n_workers,
            self.waiting,
        )

    def timeout(self) -> float | None:
        """Seconds until the next progress report or the time limit, whichever is first."""
        timeout = self.every if self.progress is not None else None
        if self.limit is not None:
            left = max(0.0, self.limit - (time.perf_counter() - self.began))
            timeout = left if timeout is None else min(timeout, left)
        return timeout

    def report(self, more_to_do: bool) -> None:
        """The time limit, then progress: either may stop the sweep while there is more to do."""
        if self.limit is not None and time.perf_counter() - self.began >= self.limit:
            self.stopped = "time limit" if more_to_do else None
        elif self.progress is not None and self.progress(self.partial()) is True and more_to_do:
            self.stopped = "stopped"

    def wait_for_the_cores(self) -> bool:
        """Take CORES (another sweep may hold it); False if the sweep was stopped first."""
        while not CORES.acquire(timeout=-1 if self.timeout() is None else self.timeout()):
            self.waiting = True
            self.report(more_to_do=True)
            if self.stopped is not None:
                return False
        self.waiting = False
        return True

    def pool(self, data: Dataset) -> None:
        """Run the grid's cells on the worker processes until done or stopped."""
        # Big batches and small learning rates first: they take longest (a large lr often
        # diverges within a few steps), so the last cells to start are short ones.
        grid = sorted(((lr, b) for lr in self.lrs for b in self.sizes), key=lambda c: (c[0], -c[1]))
        context = multiprocessing.get_context(START_METHOD)
        stop = context.Event()
        pool = ProcessPoolExecutor(self.n_workers, context, _start_worker, (data, self.cfg, stop))
        try:
            pending: set[Future] = {pool.submit(_run_cell, lr, b) for lr, b in grid}
            while pending and self.stopped is None:
                done, pending = wait(pending, timeout=self.timeout(), return_when=FIRST_COMPLETED)
                self.cells.extend(c for c in map(_result_of, done) if c is not None)
                self.report(more_to_do=bool(pending))
        finally:
            # Stop, the time limit, an error or an exception from progress (a page's rerun): the
            # cells still running see the flag within STOP_EVERY seconds, and the pool waits for
            # its workers to end.
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)


def _result_of(future: Future) -> Cell | None:
    """A finished future's Cell; a worker that died is a RuntimeError in words."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise RuntimeError(
            "a worker process of the sweep ended abruptly (killed, or out of memory); the map "
            "was not finished"
        ) from None


# ---------------------------------------------------------------- what the map shows, in words


def color_cap(sweep: Sweep) -> float | None:
    """The largest finite first-step loss of the map's cells: its loss colours stop there, so
    that one run that blew up does not wash out the rest. None before any cell has one."""
    first = [x for c in sweep.cells for x in c.first_loss if math.isfinite(x) and x > 0]
    return max(first) if first else None


def lr_edges(lrs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each learning rate's cell edges on a log axis: halfway (in log) to its neighbours."""
    logs = np.log10(np.asarray(lrs, dtype=np.float64))
    half = np.diff(logs) / 2 if len(logs) > 1 else np.array([0.5])
    lo = logs - np.concatenate([[half[0]], half])
    hi = logs + np.concatenate([half, [half[-1]]])
    return 10**lo, 10**hi


def full_batch_limit(data: Dataset, cfg: Config) -> tuple[float | None, str]:
    """(2/λ_max of full-batch gradient descent on the training rows, "") where that theory
    applies to both loops of cfg: a linear model, one squared loss, plain SGD at a constant lr;
    else (None, what here is not that, in words)."""
    why = [
        (cfg.model != "linear", f"the model is {cfg.model}"),
        (cfg.loss not in SQUARED_LOSSES, f"the loss is {cfg.loss}"),
        (cfg.loss_for("manual") != cfg.loss, "the hand loop uses another loss convention"),
        (cfg.optimizer != "sgd", f"the optimizer is {cfg.optimizer}"),
        (bool(cfg.optimizer_kwargs.get("momentum")), "SGD has momentum"),
        (bool(cfg.optimizer_kwargs.get("weight_decay")), "SGD has weight decay"),
        (cfg.scheduler is not None, "a schedule changes the lr"),
        (cfg.clip_grad_norm is not None, "the gradient is clipped"),
        (cfg.accumulate != 1, "gradients are accumulated"),
        (not cfg.zero_grad, "zero_grad is off"),
    ]
    reasons = [text for failed, text in why if failed]
    if reasons:
        return None, ", ".join(reasons)
    train = split_rows(data.m, cfg.val_fraction, cfg.seed)[0]
    rows = Dataset(data.X[train], data.y[train], name=data.name)
    return stability_limit(rows, cfg.replace(batch_size=len(train))), ""


def limit_sentence(limit: float | None, why: str, sweep: Sweep, rows: int) -> str:
    """The sentence on the 2/λ_max line (full_batch_limit): where it is and what it means, or why
    there is none. rows: the training rows (a full batch)."""
    if limit is None:
        return (
            "No 2/λ_max line: it is the edge of stability of plain SGD at a constant lr on a "
            f"linear model with a squared loss, and here {why}."
        )
    if not math.isfinite(limit):
        return "No 2/λ_max line: the Hessian of this loss is zero, so no lr is too large for it."
    lo, hi = lr_edges(sweep.lrs)
    if not lo[0] < limit < hi[-1]:
        return (
            f"2/λ_max = {limit:.3g} for full batch lies outside this range of learning rates, so "
            "it is not drawn."
        )
    row = (
        "on the full-batch row"
        if sweep.batch_sizes[-1] >= rows
        else "at full batch (not in this grid: add the batch size full to see its row)"
    )
    return (
        f"The dashed red line is 2/λ_max = {limit:.3g}, λ_max the largest eigenvalue of the "
        f"Hessian of the loss on all {rows:,} training rows: {row}, gradient descent shrinks the "
        "error along the top eigenvector at every step left of the line and grows it right of "
        "it. Smaller batches' steps each see their own batch's Hessian, so for them the line is a "
        "guide, not a sharp edge."
    )


def agreement_sentence(sweep: Sweep) -> str:
    """Whether the two loops agree on every finished cell, as measured on each (relative to the
    weights' size, as explain.agreement does for one run); "" before any cell has finished."""
    cells = sweep.cells
    if not cells:
        return ""
    apart = [c for c in cells if not c.max_relative_diff <= AGREE]
    if not apart:
        worst = max(c.max_relative_diff for c in cells)
        diverged = [c for c in cells if c.diverged_at is not None]
        text = (
            f"✓ On every one of the {len(cells):,} finished cells the two loops agree at every "
            f"step to within {AGREE:g} of the weights' size (the largest difference relative to "
            f"max(1, |largest weight|) is {worst:.2g})"
        )
        if not diverged:
            return text + "."
        big = max(c.max_abs_diff for c in diverged)
        return text + (
            ", the diverged cells included up to their last finite step: there the weights grow "
            f"huge before the run stops, and the difference grows with them (up to {big:.2g}), "
            "but relative to the weights it stays that small."
        )
    shown = ", ".join(f"lr {c.lr:g} with batch {c.batch_size:,}" for c in apart[:5])
    more = f" and {len(apart) - 5:,} more" if len(apart) > 5 else ""
    return (
        f"On {len(apart):,} of the {len(cells):,} cells the two loops differ by more than "
        f"{AGREE:g} of the weights' size at some step: {shown}{more}. Open one on the Compare "
        "page: its agreement paragraph says from which step they part, and why."
    )


def cap_sentence(sweep: Sweep) -> str:
    """The sentence on the colour cap (color_cap), where a finished cell reaches it; else ""."""
    cap = color_cap(sweep)
    over = [
        c
        for c in sweep.cells
        if cap is not None and c.diverged_at is None and max(c.final_loss) >= cap
    ]
    if not over:
        return ""
    return (
        f"The colours stop at {cap:.3g}, the largest first-step loss on the map: the "
        f"{len(over):,} cell{'s' if len(over) != 1 else ''} that ended at or above it "
        f"{'are' if len(over) != 1 else 'is'} drawn in its colour, the brightest yellow (each "
        "ended no lower than it started)."
    )
