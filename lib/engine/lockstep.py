"""The lockstep driver: both loops, same batches, same init; records, compares, stops."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..twins.manual import manual_loop
from ..twins.torch_side import torch_loop
from .config import Config
from .data import Dataset, initial_weights, loader, split_rows, torch_loader, weight_names
from .frames import as_floats, lr_holder, step_values_of, values_of

LOOPS = ("manual", "torch")


@dataclass(frozen=True, eq=False)
class History:
    """What one loop did: loss and gradient norm per step, weights before and after every step."""

    loss: np.ndarray  # (steps,) loss of each step's batch, before its update
    # (steps + 1, recorded weights): row 0 is the init, row t + 1 follows step t
    weights: np.ndarray
    grad_norm: np.ndarray  # (steps,) L2 norm of each step's gradient (before any clipping)
    seconds: float = 0.0  # wall time spent inside this loop's steps
    # Where the parameter tensors start in the flat weights, and their norms when not every weight
    # is recorded.
    tensor_starts: tuple[int, ...] = field(default=(0,), repr=False)
    recorded_norms: np.ndarray | None = field(default=None, repr=False)
    # (steps,) the lr each optimizer step used (torch's param_groups[0]["lr"]); None: not recorded
    lr: np.ndarray | None = field(default=None, repr=False)
    # (steps,) True where clip_grad_norm scaled the step's gradient down (its clip_coef < 1)
    clipped: np.ndarray | None = field(default=None, repr=False)
    # (n_evals,) the criterion on the held-out rows after step Result.val_steps[i]; empty without
    # a validation split
    val_loss: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @functools.cached_property
    def param_norms(self) -> np.ndarray:
        """(steps + 1, tensors) L2 norm of each parameter tensor at every step.

        The tensors: weight, bias; W1, b1, W2, b2.
        """
        if self.recorded_norms is not None:
            return self.recorded_norms
        return _tensor_norms(self.weights, self.tensor_starts)

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
    weight_names: tuple[str, ...]  # names of the recorded weight columns
    # first step (index into loss) whose loss or weights went non-finite
    diverged_at: int | None = None
    stopped: str | None = None  # None: ran all iterations | "diverged" | "stopped" | "time limit"
    divergence: str = ""  # what went non-finite, in words
    # (steps + 1,) max |manual - torch| over ALL weights
    step_diff: np.ndarray = field(default=None, repr=False)
    # indices of the weights whose history is kept
    recorded: np.ndarray = field(default=None, repr=False)
    tensor_names: tuple[str, ...] = ()  # the parameter tensors, as History.param_norms' columns
    # (n_evals,) the steps after which the held-out rows were evaluated: weights[val_steps[i] + 1]
    val_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int), repr=False)
    # sorted indices of the Dataset's held-out rows (empty without val_fraction)
    val_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int), repr=False)

    @property
    def steps(self) -> int:
        """Number of steps both loops took."""
        return self.manual.steps

    @property
    def max_abs_diff(self) -> float:
        """Largest |manual - torch| over all weights at every step (finite steps only)."""
        finite = self.step_diff[np.isfinite(self.step_diff)]
        return float(finite.max()) if finite.size else math.nan

    @property
    def n_params(self) -> int:
        """Weights of the model (every one is compared, even where only some are recorded)."""
        if self.recorded is None or not len(self.recorded):
            return len(self.weight_names)
        return int(self.recorded[-1]) + 1  # recorded_columns always keeps the last weight

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
            return (
                f"Stopped at step {self.steps:,} of {self.config.iterations:,}; "
                "the steps taken are kept."
            )
        if self.stopped == "time limit":
            done = f"Hit the time limit after {self.steps:,} of {self.config.iterations:,} steps"
            text = f"{done}; the steps taken are kept."
            if self.steps == 0:
                return f"{done}: not one step finished in the time allowed."
            # What fits is what was done: the run used all of its time. Rounded down, so the advice
            # finishes.
            unit = 10 ** max(0, len(str(self.steps)) - 2)  # two significant figures
            fits = self.steps // unit * unit
            text += " About that many fit in the time allowed at this speed: "
            text += f"to finish, ask for at most {fits:,} iteration{'s' if fits != 1 else ''}"
            n_params = self.n_params
            # a big model: its steps are slow because of its size
            if n_params > MAX_RECORDED_WEIGHTS:
                return f"{text}, or use a smaller model than this one of {n_params:,} weights."
            return f"{text}."
        return f"Ran all {self.steps:,} steps."

    def frame(self) -> pd.DataFrame:
        """Tidy history: one row per (step, loop, metric) with its value.

        Metrics: "loss" and "grad_norm" at steps 0 .. steps-1 (step t's batch, before its update);
        each weight name at steps 0 .. steps (step 0 is the init, step t + 1 follows step t). With
        a schedule, "lr" at steps 0 .. steps-1 (the lr step t used); with a validation split,
        "val_loss" at steps val_steps + 1 (the weights it evaluated, as the weight rows count).
        """
        parts = []
        for loop in LOOPS:
            h: History = getattr(self, loop)
            series = [("loss", h.loss), ("grad_norm", h.grad_norm)]
            if self.config.scheduler is not None:
                series.append(("lr", h.lr))
            for metric, values in series:
                parts.append(
                    pd.DataFrame(
                        {
                            "step": np.arange(len(values)),
                            "loop": loop,
                            "metric": metric,
                            "value": values,
                        }
                    )
                )
            if len(self.val_rows):
                parts.append(
                    pd.DataFrame(
                        {
                            "step": np.asarray(self.val_steps) + 1,
                            "loop": loop,
                            "metric": "val_loss",
                            "value": h.val_loss,
                        }
                    )
                )
            for j, name in enumerate(self.weight_names):
                parts.append(
                    pd.DataFrame(
                        {
                            "step": np.arange(len(h.weights)),
                            "loop": loop,
                            "metric": name,
                            "value": h.weights[:, j],
                        }
                    )
                )
        frame = pd.concat(parts, ignore_index=True)
        frame["loop"] = frame["loop"].astype("category")
        frame["metric"] = frame["metric"].astype("category")
        return frame


MAX_RECORDED_WEIGHTS = 128  # bigger models keep this many weights' histories, evenly spread
MAX_RECORDED_VALUES = 8_000_000  # iterations x recorded weights per loop: about 64 MB each
CHUNK_STEPS = 256  # steps one loop takes before the other catches up
# and at most this many weights per chunk (16 MB per buffer), for big models
CHUNK_VALUES = 2_000_000


class _Recorder:
    """Preallocated arrays one loop's steps are written into.

    Each step is one assignment, `loss[t], weights[t], gradient[t] = next(loop)`, straight into
    these arrays; the gradient norms and everything else are computed per chunk, vectorised. Any
    more Python per step is expensive out of proportion: a torch step runs so much code that what
    comes after it starts from cold caches (about 3 % per step against 15 % for computing the norm
    and storing each value one by one, measured in the lockstep of `python -m bench`).
    """

    def __init__(
        self, cfg: Config, init: np.ndarray, columns: np.ndarray, chunk: int, starts: tuple
    ) -> None:
        iterations = cfg.iterations
        # Without a schedule every step's lr is cfg.lr. With one, step 0's lr is read at its yield
        # (step_lr) together with where the loop's optimizer keeps its lr (lib.engine.frames.
        # lr_holder); after that, step t's lr is the lr the optimizer holds at the yield of step
        # t - 1 (scheduler.step() set it, and nothing else does), one dict lookup written to
        # lr[t]: reading the frame every step cost several times more (`python -m bench`, the
        # schedule rows). lr has one slot more than there are steps, for what the last step's
        # scheduler.step() set.
        self.schedule, self.lr_holder = cfg.scheduler is not None, None
        # With clipping, each step's grad_norm is the norm clip_grad_norm_ returned (the gradient
        # yielded is the clipped one, which step() took), read at the step's yield.
        self.max_norm = cfg.clip_grad_norm
        # with a validation split, val_loss is read at the yield of every eval_interval-th step
        self.eval_every = cfg.eval_interval if cfg.val_fraction > 0 else 0
        self.val_loss = np.empty(iterations // self.eval_every if self.eval_every else 0)
        self.lr = np.full(iterations + 1, cfg.lr)
        self.loss = np.empty(iterations)
        self.grad_norm = np.empty(iterations)
        self.weights = np.empty((iterations + 1, len(columns)))
        self.weights[0] = init[columns]
        self.seconds = 0.0
        self.columns, self.everything, self.starts = columns, len(columns) == len(init), starts
        # One chunk's gradients, and, where not every weight is recorded, its full weight vectors:
        # they wait here to be compared, and each parameter tensor's norm is kept instead (with
        # every weight kept, the norms are derived from them when asked for).
        rows = min(iterations, chunk)
        self.gradients = np.empty((rows, len(init)))
        self.every = None if self.everything else np.empty((rows, len(init)))
        self.norms = None
        if not self.everything:
            self.norms = np.empty((iterations + 1, len(starts)))
            self.norms[0] = _tensor_norms(init[None, :], starts)[0]

    def advance(self, loop: Iterator, start: int, stop: int) -> np.ndarray:
        """Take and record the loop's steps start .. stop-1; return every weight after each step."""
        t0 = time.perf_counter()
        n = stop - start
        loss, gradients = self.loss[start:stop], self.gradients[:n]
        every = self.weights[start + 1 : stop + 1] if self.everything else self.every[:n]
        # The steps run in one tight loop, cut at the steps that evaluate, whose val_loss is read
        # at their yield (a test per step here cost 8 % of a small model's run).
        e = self.eval_every
        ends = dict.fromkeys([*range(start - start % e + e, stop, e), stop] if e else [stop])
        reading = self.schedule or self.max_norm is not None
        a = 0
        for end in ends:
            b = end - start
            if reading:
                self._steps_reading(loop, start, a, b, every)
            else:
                for i in range(a, b):
                    loss[i], every[i], gradients[i] = next(loop)
            a = b
            if e and end % e == 0:
                self.val_loss[end // e - 1] = step_values_of(loop, ("val_loss",))["val_loss"]
        if self.max_norm is None:
            self.grad_norm[start:stop] = row_norms(gradients)
        if not self.everything:
            self.weights[start + 1 : stop + 1] = every[:, self.columns]
            self.norms[start + 1 : stop + 1] = _tensor_norms(every, self.starts)
        self.seconds += time.perf_counter() - t0
        return every

    def _steps_reading(self, loop: Iterator, start: int, a: int, b: int, every) -> None:
        """advance's steps start + a .. start + b - 1 with a schedule or clipping: the lr the next
        step will use and the norm clip_grad_norm_ returned, read at each step's yield."""
        loss, gradients = self.loss[start:], self.gradients
        lr_next, grad_norm = self.lr[start + 1 :], self.grad_norm[start:]
        if self.schedule and self.lr_holder is None:  # step 0: its lr, and where the lr is kept
            loss[a], every[a], gradients[a] = next(loop)
            self.lr[0] = step_values_of(loop, ("step_lr",))["step_lr"]
            self.lr_holder = lr_holder(values_of(loop, "optimizer")["optimizer"])
            lr_next[a] = self.lr_holder[0][self.lr_holder[1]]
            if self.max_norm is not None:
                grad_norm[a] = step_values_of(loop, ("norm",))["norm"]
            a += 1
        holder, key = self.lr_holder or (None, None)
        if self.max_norm is None:  # a schedule alone
            for i in range(a, b):
                loss[i], every[i], gradients[i] = next(loop)
                lr_next[i] = holder[key]
            return
        # Each norm is kept as the loop made it (torch's a 0-d tensor) and converted once for the
        # lot: a float() per step cost a tensor op; f_locals is emptied as step_values_of does.
        frame, norms = loop.gi_frame, []
        for i in range(a, b):
            loss[i], every[i], gradients[i] = next(loop)
            if holder is not None:
                lr_next[i] = holder[key]
            f = frame.f_locals
            norms.append(f["norm"])
            f.clear()
        grad_norm[a:b] = as_floats(norms)

    def history(self, steps: int) -> History:
        norms = None if self.norms is None else self.norms[: steps + 1]
        return History(
            self.loss[:steps],
            self.weights[: steps + 1],
            self.grad_norm[:steps],
            self.seconds,
            self.starts,
            norms,
            self.lr[:steps],
            self.clipped(steps),
            self.val_loss[: steps // self.eval_every if self.eval_every else 0],
        )

    def clipped(self, steps: int) -> np.ndarray:
        """Where clip_grad_norm_ scaled the gradient: max_norm / (norm + 1e-6) < 1, its test."""
        if self.max_norm is None:
            return np.zeros(steps, dtype=bool)
        with np.errstate(all="ignore"):
            return self.max_norm / (self.grad_norm[:steps] + 1e-6) < 1.0


def row_norms(rows: np.ndarray) -> np.ndarray:
    """The L2 norm of each row.

    Rows whose sum of squares overflows (|g| ~ 1e154) though finite are rescaled.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    for i in np.flatnonzero(norms == np.inf):
        norms[i] = _norm(rows[i])
    return norms


def _tensor_norms(weights: np.ndarray, starts: tuple[int, ...]) -> np.ndarray:
    """The L2 norm of each parameter tensor in each row of flat weights."""
    return np.sqrt(np.add.reduceat(weights * weights, list(starts), axis=1))


def recorded_columns(n_params: int) -> np.ndarray:
    """Which weights get a full history: all of them, or MAX_RECORDED_WEIGHTS spread evenly."""
    if n_params <= MAX_RECORDED_WEIGHTS:
        return np.arange(n_params)
    return np.unique(np.linspace(0, n_params - 1, MAX_RECORDED_WEIGHTS).round().astype(int))


def ends_run(loss_m, loss_t, w_m: np.ndarray, w_t: np.ndarray, g_m: np.ndarray, g_t: np.ndarray):
    """The step rule of every run: a step whose loss, weights or gradient is not finite is its last.

    It looks at both loops: a value not finite in either one is enough. lib.run applies it to a
    chunk of steps (arrays of losses, rows of weights and gradients), the Stepper and the exported
    scripts to one step (numbers and vectors); True where the run ends.
    """
    finite = np.isfinite(loss_m) & np.isfinite(loss_t)
    for values in (w_m, w_t, g_m, g_t):
        finite = finite & np.isfinite(values).all(axis=-1)
    return ~finite


def check_run(data: Dataset, cfg: Config) -> None:
    """The checks that need both the data and the Config; a ValueError in words."""
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a lib.Dataset; got {type(data).__name__}")
    if not isinstance(cfg, Config):
        raise ValueError(f"cfg must be a lib.Config; got {type(cfg).__name__}")
    if "bce" in (cfg.loss, cfg.loss_for("manual")) and not np.isin(data.y, (0.0, 1.0)).all():
        raise ValueError(
            "loss 'bce' needs targets that are 0 or 1 (a two-class problem); these are not"
        )
    train = split_rows(data.m, cfg.val_fraction, cfg.seed)[0]
    if not len(train):
        if data.m == 1:
            raise ValueError(
                "val_fraction > 0 holds out at least one row, and this data has only one: that "
                "leaves no training rows; use val_fraction=0"
            )
        raise ValueError(
            f"val_fraction {cfg.val_fraction:g} holds out all {data.m:,} rows and leaves no "
            f"training rows: use a val_fraction below {(data.m - 0.5) / data.m:.4g}"
        )
    if cfg.drop_last and cfg.batch_size > len(train):
        raise ValueError(
            f"drop_last with batch_size {cfg.batch_size:,} > {len(train):,} training rows leaves "
            "no batch: use a batch_size of at most the training rows, or drop_last=False"
        )
    columns = len(recorded_columns(cfg.n_params(data.n)))
    if cfg.iterations * columns > MAX_RECORDED_VALUES:
        most = MAX_RECORDED_VALUES // columns
        raise ValueError(
            f"iterations x recorded weights is capped at {MAX_RECORDED_VALUES:,} to bound memory: "
            f"with {columns} recorded weights, at most {most:,} iterations"
        )


def loops(data: Dataset, cfg: Config) -> tuple[Iterator, Iterator, np.ndarray]:
    """The two step generators for a Config, on the same batch order from the same init.

    Returned as (manual, torch, init).
    """
    check_run(data, cfg)
    init = initial_weights(data, cfg)
    inputs, labels, X, validation = training_arrays(data, cfg)
    manual = manual_loop(
        loader(inputs, labels, cfg.batch_size, cfg.seed, cfg.drop_last),
        init,
        cfg.lr,
        layout=cfg.layout(data.n),
        loss_name=cfg.loss_for("manual"),
        optimizer_name=cfg.optimizer,
        optimizer_kwargs=cfg.optimizer_kwargs,
        zero_grad=cfg.zero_grad,
        scheduler_name=cfg.scheduler,
        scheduler_kwargs=cfg.scheduler_kwargs,
        clip_grad_norm=cfg.clip_grad_norm,
        accumulate=cfg.accumulate,
        validation=validation,
        eval_every=cfg.eval_interval,
    )
    dtype = getattr(torch, cfg.torch_dtype)
    if validation is not None:  # as the torch loader's batches: the model's inputs, labels (m, 1)
        val_inputs, val_labels = validation
        val_inputs = val_inputs[:, : data.n]
        validation = (
            torch.tensor(val_inputs, dtype=dtype),
            torch.tensor(val_labels, dtype=dtype)[:, None],
        )
    twin = torch_loop(
        torch_loader(X, labels, cfg.batch_size, cfg.seed, dtype, cfg.drop_last),
        init,
        cfg.lr,
        layout=cfg.layout(data.n),
        loss_name=cfg.loss,
        optimizer_name=cfg.optimizer,
        optimizer_kwargs=cfg.optimizer_kwargs,
        zero_grad=cfg.zero_grad,
        scheduler_name=cfg.scheduler,
        scheduler_kwargs=cfg.scheduler_kwargs,
        clip_grad_norm=cfg.clip_grad_norm,
        accumulate=cfg.accumulate,
        validation=validation,
        eval_every=cfg.eval_interval,
        dtype=dtype,
    )
    return manual, twin, init


def training_arrays(data: Dataset, cfg: Config) -> tuple:
    """(inputs, labels, X, validation): the training rows as the hand loop reads them, the same
    rows without the column of ones, and the held-out (inputs, labels), or None."""
    # One copy of the inputs for both loops: [X, 1] (the bias is a weight on a constant input of 1);
    # torch and the MLP read it without the ones. Two copies would evict each other from the caches.
    X1, y = data.with_ones(), np.array(data.y)
    train, held_out = split_rows(data.m, cfg.val_fraction, cfg.seed)
    validation = None
    if len(held_out):
        validation = (X1[held_out], y[held_out])
        X1, y = X1[train], y[train]
    X = X1[:, : data.n]
    if not (cfg.bias and cfg.model != "mlp"):
        X1 = X
        if validation is not None:
            validation = (validation[0][:, : data.n], validation[1])
    return X1, y, X, validation


class _Lockstep:
    """Both loops of one run and their recorders, taking a chunk of steps at a time."""

    def __init__(self, data: Dataset, cfg: Config, progress_every: float) -> None:
        self.manual, self.twin, init = loops(data, cfg)
        self.cfg = cfg
        self.columns = recorded_columns(len(init))
        self.names = tuple(np.array(weight_names(data, cfg), dtype=object)[self.columns])
        # The loops take turns a chunk of steps at a time: alternating every single step cost 10
        # to 35 % more CPU time (each evicts the other's code and data from the caches; `python -m
        # bench --profile`), for nothing, since every step is recorded either way.
        # progress_every=0 asks for a report after every step.
        most = max(1, min(CHUNK_STEPS, CHUNK_VALUES // len(init)))
        self.chunk = 1 if progress_every == 0 else most
        layout = cfg.layout(data.n)
        self.tensor_names = tuple(name for name, _ in layout.tensors)
        self.recorders = tuple(
            _Recorder(cfg, init, self.columns, self.chunk, layout.starts) for _ in LOOPS
        )
        self.step_diff = np.zeros(cfg.iterations + 1)
        self.val_rows = split_rows(data.m, cfg.val_fraction, cfg.seed)[1]
        every = cfg.eval_interval if len(self.val_rows) else cfg.iterations + 1
        self.val_steps = np.arange(every - 1, cfg.iterations, every)  # empty without validation
        self.steps, self.stopped, self.divergence = 0, None, ""

    def advance(self) -> bool:
        """Take the next chunk of steps in both loops; True if a step of it ended the run."""
        rec_m, rec_t = self.recorders
        start, stop = self.steps, min(self.steps + self.chunk, self.cfg.iterations)
        w_m = rec_m.advance(self.manual, start, stop)
        w_t = rec_t.advance(self.twin, start, stop)
        self.step_diff[start + 1 : stop + 1] = np.abs(w_m - w_t).max(axis=1)
        n = stop - start
        losses = rec_m.loss[start:stop], rec_t.loss[start:stop]
        bad = ends_run(*losses, w_m, w_t, rec_m.gradients[:n], rec_t.gradients[:n])
        if bad.any():
            k = int(np.argmax(bad))
            self.steps, self.stopped = start + k + 1, "diverged"
            self.divergence = _what_went_nonfinite(rec_m, rec_t, start + k, w_m[k], w_t[k])
            return True
        self.steps = stop
        return False

    def result(self) -> Result:
        """The Result of the steps taken so far."""
        steps, stopped = self.steps, self.stopped
        rec_m, rec_t = self.recorders
        return Result(
            rec_m.history(steps),
            rec_t.history(steps),
            self.cfg,
            self.names,
            steps - 1 if stopped == "diverged" else None,
            stopped,
            self.divergence,
            self.step_diff[: steps + 1],
            self.columns,
            self.tensor_names,
            self.val_steps[: steps // rec_m.eval_every if rec_m.eval_every else 0],
            self.val_rows,
        )


def _check_options(progress, progress_every, time_limit) -> None:
    if not (_is_number(progress_every) and progress_every >= 0):
        raise ValueError(
            "progress_every must be a number of seconds >= 0 (0: every step); "
            f"got {progress_every!r}"
        )
    if time_limit is not None and not (_is_number(time_limit) and time_limit >= 0):
        raise ValueError(f"time_limit must be None or a number of seconds >= 0; got {time_limit!r}")
    if progress is not None and not callable(progress):
        raise ValueError(
            f"progress must be a function of the partial Result, or None; got {progress!r}"
        )


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
    The first step whose loss, gradient or weights are not finite in either loop ends the run.
    """
    _check_options(progress, progress_every, time_limit)
    lockstep = _Lockstep(data, cfg, progress_every)
    with np.errstate(all="ignore"):
        drive(lockstep, cfg, progress, progress_every, time_limit)
    return lockstep.result()


def drive(lockstep: _Lockstep, cfg: Config, progress, progress_every: float, time_limit) -> None:
    """Advance a lockstep chunk by chunk to cfg.iterations, a divergence, the time limit, or a
    progress callback that returns True (lib.run's loop; the line-order lab drives its reordered
    lockstep with it too)."""
    clock = time.perf_counter
    started = last_report = clock()
    while lockstep.steps < cfg.iterations and not lockstep.advance():
        now = clock()
        if now - last_report < progress_every:
            continue
        if time_limit is not None and now - started >= time_limit:
            lockstep.stopped = "time limit"
            break
        last_report = now
        if progress is not None and progress(lockstep.result()) is True:
            lockstep.stopped = "stopped"
            break


def _what_went_nonfinite(
    rec_m: _Recorder, rec_t: _Recorder, t: int, w_m: np.ndarray, w_t: np.ndarray
) -> str:
    """The first non-finite quantity of step t, in words."""
    for what, values in (
        ("loss", rec_m.loss),
        ("loss", rec_t.loss),
        ("gradient norm", rec_m.grad_norm),
        ("gradient norm", rec_t.grad_norm),
    ):
        if not math.isfinite(values[t]):
            return f"{what} became {values[t]}"
    bad = np.concatenate([w_m[~np.isfinite(w_m)], w_t[~np.isfinite(w_t)]])
    return f"a weight became {bad[0]}"


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _norm(g: np.ndarray) -> float:
    """The L2 norm without overflow for a finite g: scaled by its largest entry first."""
    if not np.isfinite(g).all():
        return math.sqrt(g @ g)
    top = float(np.abs(g).max())
    return top * math.sqrt((g / top) @ (g / top)) if top > 0 else 0.0
