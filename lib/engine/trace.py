"""Step through both loops one step at a time, reading every line's values from the live generators.

The loops are the very generators lib.run drives (built by lib.engine.lockstep.loops). After each
next(), a suspended generator's frame holds the values its lines just computed (inputs, outputs,
h, loss, delta, neg_grad; outputs, the loss tensor, the parameters' .grad), read through
lib.engine.frames; a Stepper copies them into a Step so any visited step can be shown again
without running anything.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

from ..twins.optim import state_pairs
from .config import Config
from .data import Dataset, batch_indices, split_rows, weight_names
from .frames import (
    all_values,
    arguments_of,
    batch_rows,
    function_of,
    step_values_of,
    values_of,
)
from .lockstep import History, ends_run, loops, recorded_columns, row_norms

# memory for cached steps; a step that left the cache is recomputed from the start
SNAPSHOT_BYTES = 64 * 2**20

# Each loss convention's per-sample term, as a column name, and how the batch loss is made of the
# terms: their mean, or (sse) their sum. p is sigmoid(prediction): with bce the model's output is a
# logit.
SAMPLE_TERMS = MappingProxyType(
    {
        "mse": ("(target − prediction)²", "mean"),
        "half_mse": ("½·(target − prediction)²", "mean"),
        "sse": ("(target − prediction)²", "sum"),
        "bce": ("−[target·log p + (1 − target)·log(1 − p)]", "mean"),
    }
)


@dataclass(frozen=True, eq=False)
class LoopStep:
    """One loop's numbers for one step; arrays are copies, weights laid out like lib.run's."""

    indices: np.ndarray  # (batch,) rows of the data set in this batch
    inputs: np.ndarray  # (batch, n) features only; the hand loop's column of ones is not repeated
    labels: np.ndarray  # (batch,) targets
    predictions: np.ndarray  # (batch,) outputs: the hand loop's z, torch's outputs (bce: logits)
    sample_loss: np.ndarray  # (batch,) each sample's loss term; the loss is their mean (sse: sum)
    loss: float  # the batch loss under the loop's convention
    # the gradient buffer (neg_grad, or the flat .grad) before the reset line
    reset_before: np.ndarray | None
    # ... and after it: zeros / None, or unchanged when zero_grad is off
    reset_after: np.ndarray | None
    gradient: np.ndarray  # (n_params,) the gradient this step's update used
    weights_before: np.ndarray  # (n_params,)
    weights_after: np.ndarray  # (n_params,)
    lines: dict  # the loop's own variables at the yield, by name (copies), for the code map
    convention: str = "mse"  # the loss convention this loop uses (a key of SAMPLE_TERMS)
    # (batch,) bce only: p = sigmoid(prediction), the model's P(target = 1)
    probabilities: np.ndarray | None = None
    # The whole optimizer step. With accumulate > 1 the fields above are the step's last
    # micro-batch's (the loop's locals at its yield; `loss` is that micro-batch's loss / accumulate)
    # and step_loss is the step's loss, the sum of every micro-batch's share (what lib.run records).
    step_loss: float = math.nan
    # (accumulate,) the Dataset rows of each micro-batch of the step, in order (the last: indices)
    micro_indices: tuple = ()
    lr: float | None = None  # with a scheduler: the lr this step used (the loop's step_lr)
    norm: float | None = None  # with clip_grad_norm: the gradient's norm before clipping
    clip_factor: float | None = None  # with clip_grad_norm: min(1, max_norm / (norm + 1e-6))
    val_loss: float | None = None  # on a step that evaluated: the held-out rows' loss after it

    @property
    def clip_gap(self) -> float | None:
        """With clip_grad_norm: |‖gradient‖ − clip_factor × norm|, relative to max(1, norm): how
        far the gradient step() used is from the norm scaled by the clip factor (0 up to rounding
        when clipping scaled the buffer by it)."""
        if self.clip_factor is None:
            return None
        with np.errstate(all="ignore"):
            length = float(np.sqrt(np.sum(np.asarray(self.gradient, dtype=np.float64) ** 2)))
            return abs(length - self.clip_factor * self.norm) / max(1.0, abs(self.norm))

    @property
    def clipped(self) -> bool | None:
        """With clip_grad_norm: whether clipping scaled this step's gradient down (factor < 1)."""
        return None if self.clip_factor is None else bool(self.clip_factor < 1.0)

    @property
    def loss_from_terms(self) -> float:
        """The batch loss rebuilt from the per-sample terms: their mean, or their sum for sse."""
        return float(
            np.sum(self.sample_loss)
            if SAMPLE_TERMS[self.convention][1] == "sum"
            else np.mean(self.sample_loss)
        )

    @property
    def update(self) -> np.ndarray:
        """weights_after - weights_before."""
        return self.weights_after - self.weights_before


@dataclass(frozen=True, eq=False)
class Step:
    """Both loops' numbers for step t (0-based, as lib.run's loss index)."""

    t: int
    manual: LoopStep
    torch: LoopStep
    # The optimizers' state after this step: (hand attribute, torch key, hand value, torch value) as
    # state_pairs gives.
    optimizer_state: tuple = ()

    def diff(self, field: str) -> np.ndarray:
        """|manual - torch| of one field (nan where either side is not finite)."""
        with np.errstate(invalid="ignore"):
            return np.abs(
                np.asarray(getattr(self.manual, field)) - np.asarray(getattr(self.torch, field))
            )

    @property
    def max_diff(self) -> float:
        """The largest |manual - torch| over every number of this step, optimizer state included."""
        fields = (
            "inputs",
            "labels",
            "predictions",
            "sample_loss",
            "loss",
            "gradient",
            "weights_before",
        )
        if self.manual.probabilities is not None and self.torch.probabilities is not None:
            fields += ("probabilities",)
        state = (
            np.max(np.abs(np.subtract(hand, twin))) for _, _, hand, twin in self.optimizer_state
        )
        return float(max(*(np.max(self.diff(f)) for f in (*fields, "weights_after")), *state))

    def batch_frame(self, feature_names: tuple[str, ...]) -> pd.DataFrame:
        """One row per sample of the batch: its data, both loops' predictions and loss terms.

        Each pair with its |manual - torch|. With bce the prediction is a logit, so the columns say
        "logit", and p = sigmoid(logit) follows them. The loss columns are named for their term
        under each loop's convention (SAMPLE_TERMS).
        """
        m, t = self.manual, self.torch
        # The columns are gathered first and made a frame once: adding them to a frame one at a
        # time fragments it (pandas warns at about a hundred features).
        frame = {"sample (row)": m.indices}
        for j, name in enumerate(feature_names):
            frame[name] = m.inputs[:, j]
        frame["target"] = m.labels
        output = "logit" if m.convention == t.convention == "bce" else "prediction"
        frame[f"{output} (manual)"] = m.predictions
        frame[f"{output} (torch)"] = t.predictions
        frame[f"|Δ {output}|"] = self.diff("predictions")
        if m.probabilities is not None and t.probabilities is not None:
            frame["p = sigmoid(logit) (manual)"] = m.probabilities
            frame["p = sigmoid(logit) (torch)"] = t.probabilities
            frame["|Δ p|"] = self.diff("probabilities")
        frame[f"{SAMPLE_TERMS[m.convention][0]} (manual)"] = m.sample_loss
        frame[f"{SAMPLE_TERMS[t.convention][0]} (torch)"] = t.sample_loss
        frame["|Δ loss term|"] = self.diff("sample_loss")
        frame["|Δ inputs, target|"] = np.maximum(
            self.diff("inputs").max(axis=1), self.diff("labels")
        )
        return pd.DataFrame(frame)

    def weights_frame(self, weight_names: tuple[str, ...]) -> pd.DataFrame:
        """One row per weight: before, gradient, update and after in both loops.

        Each with |manual - torch|.
        """
        m, t = self.manual, self.torch
        columns = {}
        for label, field in (
            ("before", "weights_before"),
            ("gradient", "gradient"),
            ("update", "update"),
        ):
            columns[f"{label} (manual)"] = getattr(m, field)
            columns[f"{label} (torch)"] = getattr(t, field)
            columns[f"|Δ {label}|"] = self.diff(field)
        columns["after (manual)"] = m.weights_after
        columns["after (torch)"] = t.weights_after
        columns["|Δ after|"] = self.diff("weights_after")
        return pd.DataFrame(columns, index=pd.Index(weight_names, name="weight"))

    def state_frame(self, weight_names: tuple[str, ...]) -> pd.DataFrame:
        """One row per weight: each optimizer state buffer in both loops, with |Δ|.

        Named by hand attribute and torch key.
        """
        columns = {}
        for attr, key, hand, twin in self.optimizer_state:
            if np.ndim(hand) == 0:
                continue  # step counts are one number, not one per weight
            columns[f"{attr} (manual)"] = hand
            columns[f"{key} (torch)"] = twin
            with np.errstate(invalid="ignore"):
                columns[f"|Δ {attr}|"] = np.abs(hand - twin)
        return pd.DataFrame(columns, index=pd.Index(weight_names, name="weight"))

    @property
    def step_counts(self) -> list[tuple[str, str, float, float]]:
        """The optimizers' own step counters after this step (Adam, AdamW, Adagrad).

        As (attr, key, hand, torch).
        """
        return [entry for entry in self.optimizer_state if np.ndim(entry[2]) == 0]


def _copy(value):
    """A copy of a loop variable worth showing (arrays, tensors, numbers), or None for objects."""
    if isinstance(value, torch.Tensor):
        return value.detach().numpy().astype(np.float64, copy=True)
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (bool, int, float, np.floating)):
        return value
    return None


def sample_loss_np(loss: str, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each sample's term of the loss in numpy (SAMPLE_TERMS).

    The batch loss is their mean, or for sse their sum. mse and sse: (label - z)^2; half_mse: half
    of it; bce: log(1 + e^z) - label * z, which is -[label log p + (1 - label) log(1 - p)] with
    p = sigmoid(z), written so that no large |z| overflows.
    """
    if loss == "bce":
        return np.logaddexp(0.0, z) - labels * z
    squared = (labels - z) ** 2
    return squared / 2 if loss == "half_mse" else squared


def sample_loss_torch(loss: str, outputs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Each sample's term of the loss from torch's own functional losses (half_mse: halved).

    They are called with reduction="none".
    """
    with torch.no_grad():
        f = torch.nn.functional
        if loss == "bce":
            terms = f.binary_cross_entropy_with_logits(outputs, labels, reduction="none")
        else:
            terms = f.mse_loss(outputs, labels, reduction="none")
            if loss == "half_mse":  # as lib.torch_loop.HalfMSELoss: MSELoss / 2
                terms = terms / 2
    return terms.numpy().astype(np.float64).ravel()


# How close the micro-batches' sum must come to the step's gradient and loss: relative to the
# largest of the numbers added (the loop adds them one by one, the check all at once).
SUM_TOLERANCE = 1e-10


def sum_tolerance(dtype: str, accumulate: int) -> float:
    """How close a loop computing in dtype ("float64", "float32") must come: SUM_TOLERANCE, or,
    where that dtype's rounding over `accumulate` additions is coarser, 16 roundings per share."""
    return max(SUM_TOLERANCE, 16 * float(np.finfo(dtype).eps) * accumulate)


# micro-batch tables the Stepper keeps (each runs every micro-batch of its step again)
MICRO_KEEP = 8


@dataclass(frozen=True, eq=False)
class MicroBatches:
    """The micro-batches of one optimizer step, each run again alone from the step's weights by
    the loop functions themselves (accumulate=1, plain SGD): its rows, its share of the loss
    (loss / accumulate) and its share of the gradient (the gradient of loss / accumulate).

    Arrays with a first axis of 2 hold (manual, torch). A loop adds the shares into one buffer:
    on top of what the reset left there (zeros; with zero_grad off, the previous step's gradient),
    and clip_grad_norm_ then scales the sum by the clip factor before step() uses it.
    """

    t: int
    rows: tuple  # (accumulate,) the Dataset rows of each micro-batch
    loss: np.ndarray  # (2, accumulate) each micro-batch's loss / accumulate
    gradient: np.ndarray  # (2, accumulate, n_params) each micro-batch's gradient share
    carried: np.ndarray  # (2, n_params) what the reset left in the buffer
    factor: np.ndarray  # (2,) the clip factor each loop applied (1 without clipping)
    step_loss: np.ndarray  # (2,) the step's loss, as the loops yielded it
    step_gradient: np.ndarray  # (2, n_params) the gradient step() used, as the loops yielded it
    norm: np.ndarray | None = None  # (2,) with clipping: the norm the loops computed before it
    # (2,) the gap allowed in each loop (sum_tolerance of its dtype: torch may run in float32)
    tolerance: tuple = (SUM_TOLERANCE, SUM_TOLERANCE)

    @property
    def accumulate(self) -> int:
        """Micro-batches in the step."""
        return len(self.rows)

    @property
    def summed(self) -> np.ndarray:
        """(2, n_params) what the buffer holds before clipping: carried + every share."""
        return self.carried + self.gradient.sum(axis=1)

    def _scale(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.maximum(1.0, np.abs(values).max(axis=tuple(range(1, values.ndim))))

    @property
    def gradient_gap(self) -> np.ndarray:
        """(2,) max |clip factor × (carried + Σ shares) − the gradient step() used|, per loop."""
        with np.errstate(all="ignore"):
            gap = np.abs(self.factor[:, None] * self.summed - self.step_gradient).max(axis=1)
        return gap / np.maximum(self._scale(self.gradient), self._scale(self.carried))

    @property
    def loss_gap(self) -> np.ndarray:
        """(2,) |Σ loss shares − the step's loss|, relative to the largest share (or 1)."""
        with np.errstate(all="ignore"):
            return np.abs(self.loss.sum(axis=1) - self.step_loss) / self._scale(self.loss)

    @property
    def norm_gap(self) -> np.ndarray | None:
        """(2,) with clipping: |‖carried + Σ shares‖ − the norm the loop clipped with|, relative."""
        if self.norm is None:
            return None
        with np.errstate(all="ignore"):
            norms = np.sqrt(np.sum(self.summed**2, axis=1))
            return np.abs(norms - self.norm) / np.maximum(1.0, np.abs(self.norm))

    @property
    def adds_up(self) -> bool:
        """True when, in both loops, the shares add up to the step's gradient and loss (and, with
        clipping, to the norm it clipped with), to each loop's tolerance; False for a non-finite
        step."""
        gaps = [self.gradient_gap, self.loss_gap]
        if self.norm is not None:
            gaps.append(self.norm_gap)
        allowed = np.asarray(self.tolerance, dtype=np.float64)
        return bool(all(np.all(np.isfinite(g) & (g <= allowed)) for g in gaps))

    def frame(self, shown_rows: int = 8) -> pd.DataFrame:
        """One row per micro-batch: its rows, both loops' loss share and gradient share, |Δ|."""
        with np.errstate(all="ignore"):
            norms = np.sqrt(np.sum(self.gradient**2, axis=2))
            grad_diff = np.abs(self.gradient[0] - self.gradient[1]).max(axis=1)
            loss_diff = np.abs(self.loss[0] - self.loss[1])
        return pd.DataFrame(
            {
                "micro-batch": np.arange(1, self.accumulate + 1),
                "rows": [_rows_text(r, shown_rows) for r in self.rows],
                "samples": [len(r) for r in self.rows],
                "loss / accumulate (manual)": self.loss[0],
                "loss / accumulate (torch)": self.loss[1],
                "|Δ loss|": loss_diff,
                "‖gradient share‖ (manual)": norms[0],
                "‖gradient share‖ (torch)": norms[1],
                "|Δ gradient share|": grad_diff,
            }
        )


def _rows_text(rows: np.ndarray, shown: int) -> str:
    """A micro-batch's rows as text: all of them, or the first `shown` and how many more."""
    head = ", ".join(str(int(r)) for r in rows[:shown])
    return head if len(rows) <= shown else f"{head}, … ({len(rows) - shown:,} more)"


class Stepper:
    """Both loops of one (data, cfg) run, advanced a step at a time, with a cache of visited steps.

    step is the current step (-1 before the first). next() and run_to(n) forward run the generators;
    previous() and run_to(n) backwards read the cache, and only if a step has left the cache do they
    start again from the init and run forward to it.
    """

    def __init__(self, data: Dataset, cfg: Config, keep: int | None = None) -> None:
        self.data, self.config = data, cfg
        self.init = loops(data, cfg)[2]  # validates data and cfg together, as lib.run does
        n_params = len(self.init)
        self.weight_names = tuple(weight_names(data, cfg))
        self.columns = recorded_columns(n_params)
        # The loops see the training rows only: their batches index these (sorted) Dataset rows.
        self.train_rows, self.val_rows = split_rows(data.m, cfg.val_fraction, cfg.seed)
        batch = min(cfg.batch_size, len(self.train_rows))
        # 12: weights, gradients, optimizer state; and the step's micro-batches' rows
        step_bytes = 2 * 8 * (batch * (data.n + 8) + 12 * n_params) + 8 * cfg.accumulate * batch
        step_bytes += 8192
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ValueError(f"keep must be a whole number >= 1; got {keep!r}")
        self.keep = keep if keep is not None else max(2, min(1000, SNAPSHOT_BYTES // step_bytes))
        # the gaps the sums and the clip may leave: (manual, float64; torch, in its dtype)
        self.tolerance = (
            sum_tolerance("float64", cfg.accumulate),
            sum_tolerance(cfg.torch_dtype, cfg.accumulate),
        )
        self.reset()

    @property
    def functions(self) -> tuple[Callable, Callable]:
        """The two loop functions that run: (hand-written, torch)."""
        return tuple(function_of(g) for g in (self._manual, self._torch))

    @property
    def optimizers(self) -> tuple[object, torch.optim.Optimizer]:
        """The two live optimizer objects, hand-written (lib.optim) and torch's.

        They exist once the first step has run.
        """
        return tuple(values_of(g, "optimizer")["optimizer"] for g in (self._manual, self._torch))

    @property
    def last_step(self) -> int:
        """The last step this run can reach: iterations - 1, or the step where it diverged."""
        return self.diverged_at if self.diverged_at is not None else self.config.iterations - 1

    @property
    def at_end(self) -> bool:
        """True when there is no next step."""
        return self.step >= self.last_step

    @property
    def current(self) -> Step | None:
        """The current step's numbers (None before the first step)."""
        return None if self.step < 0 else self._get(self.step)

    def evaluates(self, t: int) -> bool:
        """Whether step t ends with a validation pass (a val_fraction, and t + 1 a multiple of
        Config.eval_interval), as both loops decide it."""
        return bool(len(self.val_rows)) and (t + 1) % self.config.eval_interval == 0

    def reset(self) -> None:
        """Back to the init: fresh generators, empty cache and history."""
        self._manual, self._torch, _ = loops(self.data, self.config)
        self._manual_batches = arguments_of(self._manual)["batches"]
        self._torch_batches = arguments_of(self._torch)["batches"]
        cfg = self.config
        # The shared batch order, drawn again beside the loaders: a loop takes `accumulate`
        # batches per step, and its frame holds only the last one's (each step checks it is this).
        self._order = batch_indices(len(self.train_rows), cfg.batch_size, cfg.seed, cfg.drop_last)
        self.step = -1
        self.taken = 0  # steps the generators have run
        self.diverged_at: int | None = None
        self._cache: OrderedDict[int, Step] = OrderedDict()
        self._micro: OrderedDict[int, MicroBatches] = OrderedDict()
        iterations = cfg.iterations
        self._loss = np.empty((2, iterations))
        self._grad_norm = np.empty((2, iterations))
        self._lr = np.full((2, iterations), cfg.lr)
        self._val_loss: tuple[list, list] = ([], [])
        self._weights = np.empty((2, iterations + 1, len(self.columns)))
        self._weights[:, 0] = self.init[self.columns]
        self._before = (self.init.copy(), self.init.copy())
        # What the first reset finds: the hand loop's neg_grad starts as zeros, every .grad as
        # None.
        self._buffers: tuple[np.ndarray, np.ndarray | None] = (np.zeros(len(self.init)), None)

    def next(self) -> Step:
        """Go one step forward (stays on the last step at the end)."""
        return self.run_to(min(self.step + 1, self.last_step))

    def previous(self) -> Step | None:
        """Go one step back (from step 0, to before the first step)."""
        if self.step <= 0:
            self.step = -1
            return None
        return self.run_to(self.step - 1)

    def run_to(self, n: int) -> Step:
        """Make step n current: read from the cache, or run forward from the furthest step taken."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise ValueError(f"step must be a whole number; got {n!r}")
        if not 0 <= n <= self.config.iterations - 1:
            raise ValueError(
                f"step must be from 0 to {self.config.iterations - 1:,} (iterations - 1); got {n:,}"
            )
        n = min(int(n), self.last_step)
        if n < self.taken and n not in self._cache:
            self.reset()  # it left the cache: replay from the init
        while self.taken <= n and self.diverged_at is None:
            # copy out only the steps the cache keeps
            self._advance(snapshot=self.taken > n - self.keep)
        self.step = min(n, self.last_step)
        return self._get(self.step)

    def history(self, loop: str) -> History:
        """What one loop ("manual" or "torch") has done so far, in lib.run's History layout."""
        k = ("manual", "torch").index(loop)
        s = self.taken
        max_norm = self.config.clip_grad_norm
        with np.errstate(all="ignore"):
            clipped = (
                max_norm / (self._grad_norm[k, :s] + 1e-6) < 1.0
                if max_norm is not None
                else np.zeros(s, dtype=bool)
            )
        return History(
            self._loss[k, :s].copy(),
            self._weights[k, : s + 1].copy(),
            self._grad_norm[k, :s].copy(),
            lr=self._lr[k, :s].copy(),
            clipped=clipped,
            val_loss=np.array(self._val_loss[k], dtype=np.float64),
        )

    def micro_batches(self, t: int | None = None) -> MicroBatches:
        """The micro-batches of step t (the current step if None), each run again alone by the
        loop functions that run, from the step's weights (see MicroBatches)."""
        t = self.step if t is None else t
        if t < 0 or t not in self._cache:
            raise ValueError(f"step {t} is not one the Stepper holds: run to it first")
        if t not in self._micro:
            self._micro[t] = self._rerun_micro_batches(self._get(t))
            while len(self._micro) > MICRO_KEEP:
                self._micro.popitem(last=False)
        self._micro.move_to_end(t)
        return self._micro[t]

    def _rerun_micro_batches(self, step: Step) -> MicroBatches:
        cfg, data = self.config, self.data
        k = cfg.accumulate
        hand, twin = self.functions
        layout = cfg.layout(data.n)
        X1 = data.with_ones() if cfg.bias and cfg.model != "mlp" else data.X
        dtype = getattr(torch, cfg.torch_dtype)
        loss, grads = np.empty((2, k)), np.empty((2, k, len(self.init)))
        with np.errstate(all="ignore"):
            for j, rows in enumerate(step.manual.micro_indices):
                batch = (X1[rows], data.y[rows])
                alone = hand(
                    iter([batch]),
                    step.manual.weights_before,
                    cfg.lr,
                    layout=layout,
                    loss_name=cfg.loss_for("manual"),
                )
                value, _, grad = next(alone)
                loss[0, j], grads[0, j] = value / k, np.asarray(grad) / k
                inputs = torch.tensor(data.X[rows], dtype=dtype)
                labels = torch.tensor(data.y[rows], dtype=dtype)[:, None]
                alone = twin(
                    iter([(inputs, labels)]),
                    step.torch.weights_before,
                    cfg.lr,
                    layout=layout,
                    loss_name=cfg.loss,
                    dtype=dtype,
                )
                value, _, grad = next(alone)
                loss[1, j], grads[1, j] = value / k, np.asarray(grad, dtype=np.float64) / k
        m, t = step.manual, step.torch
        carried = np.stack([-m.reset_after, np.zeros(len(self.init)) if t.reset_after is None
                            else t.reset_after])  # fmt: skip
        clipping = cfg.clip_grad_norm is not None
        return MicroBatches(
            step.t,
            tuple(m.micro_indices),
            loss,
            grads,
            carried,
            np.array([m.clip_factor, t.clip_factor]) if clipping else np.ones(2),
            np.array([m.step_loss, t.step_loss]),
            np.stack([m.gradient, t.gradient]),
            np.array([m.norm, t.norm]) if clipping else None,
            self.tolerance,
        )

    def _get(self, t: int) -> Step:
        self._cache.move_to_end(t)
        return self._cache[t]

    def _step_values(self, t: int) -> tuple[dict, dict]:
        """Each loop's step_lr, norm and val_loss at its yield, where this configuration sets them
        (val_loss only on a step that evaluated: the local keeps the last pass's value)."""
        cfg = self.config
        names = ("step_lr",) * (cfg.scheduler is not None)
        names += ("norm",) * (cfg.clip_grad_norm is not None)
        names += ("val_loss",) * self.evaluates(t)
        return tuple(step_values_of(g, names) for g in (self._manual, self._torch))

    def _advance(self, snapshot: bool) -> None:
        t = self.taken
        # the rows of this step's micro-batches, as indices into the training rows
        micro = [next(self._order) for _ in range(self.config.accumulate)]
        with np.errstate(all="ignore"):
            loss_m, w_m, g_m = next(self._manual)
            loss_t, w_t, g_t = next(self._torch)
            g_m, g_t = np.array(g_m), np.array(g_t)
            norms = row_norms(np.stack([g_m, g_t]).astype(np.float64))  # as lib.run computes them
        values = self._step_values(t)
        for k, (loss, w) in enumerate(((loss_m, w_m), (loss_t, w_t))):
            self._loss[k, t], self._grad_norm[k, t] = loss, values[k].get("norm", norms[k])
            self._lr[k, t] = values[k].get("step_lr", self.config.lr)
            if "val_loss" in values[k]:
                self._val_loss[k].append(values[k]["val_loss"])
            self._weights[k, t + 1] = w[self.columns]
        if snapshot:
            rows = tuple(self.train_rows[idx] for idx in micro)
            with np.errstate(all="ignore"):
                state = tuple(state_pairs(self.config.optimizer, *self.optimizers))
                hand = self._manual_step(g_m, loss_m, values[0], rows)
                twin = self._torch_step(g_t, loss_t, values[1], rows)
                self._cache[t] = Step(t, hand, twin, state)
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
        self._before = (np.array(w_m), np.array(w_t))
        self._buffers = (-g_m, g_t)  # what the next step's reset line will find
        self.taken = t + 1
        if ends_run(loss_m, loss_t, w_m, w_t, g_m, g_t):  # the step rule of lib.run
            self.diverged_at = t

    def _whole_step(self, loss, values: dict, rows: tuple) -> dict:
        """The LoopStep fields of the whole optimizer step: its loss, micro-batches, lr, norm,
        clip factor and validation loss."""
        max_norm = self.config.clip_grad_norm
        norm = values.get("norm")
        return {
            "step_loss": float(loss),
            "micro_indices": rows,
            "lr": values.get("step_lr"),
            "norm": norm,
            "clip_factor": None if max_norm is None else min(1.0, max_norm / (norm + 1e-6)),
            "val_loss": values.get("val_loss"),
        }

    def _rows(self, batches) -> np.ndarray:
        """The Dataset rows of the batch a loader handed out last (it indexes the training rows)."""
        return self.train_rows[batch_rows(batches, len(self.train_rows))]

    def _manual_step(self, gradient: np.ndarray, step_loss, values: dict, rows) -> LoopStep:
        f = all_values(self._manual)
        lines = {k: v for k, v in ((k, _copy(v)) for k, v in f.items()) if v is not None}
        z, labels = lines["outputs"], lines["labels"]
        return LoopStep(
            indices=self._rows(self._manual_batches),
            inputs=lines["inputs"][:, : self.data.n],
            labels=labels,
            predictions=z,
            sample_loss=sample_loss_np(self.config.loss_for("manual"), z, labels),
            loss=float(lines["loss"]),
            reset_before=self._buffers[0],
            reset_after=np.zeros_like(self._buffers[0])
            if self.config.zero_grad
            else self._buffers[0],
            gradient=gradient,
            weights_before=self._before[0],
            weights_after=lines["weights"],
            lines=lines,
            convention=self.config.loss_for("manual"),
            # its own sigmoid
            probabilities=lines["h"] if self.config.loss_for("manual") == "bce" else None,
            **self._whole_step(step_loss, values, rows),
        )

    def _torch_step(self, gradient: np.ndarray, step_loss, values: dict, rows) -> LoopStep:
        f = all_values(self._torch)
        net, loss = f["net"], f["loss"]
        lines = {
            "inputs": _copy(f["inputs"]),
            "labels": _copy(f["labels"]),
            "outputs": _copy(f["outputs"]),
            "outputs.grad_fn": type(f["outputs"].grad_fn).__name__
            if f["outputs"].grad_fn is not None
            else "None",
            "loss": float(loss.item()),
            "loss.grad_fn": type(loss.grad_fn).__name__ if loss.grad_fn is not None else "None",
            "grad": {name: _copy(p.grad) for name, p in net.named_parameters()},
            "weights": _copy(f["weights"]),
        }
        return LoopStep(
            indices=self._rows(self._torch_batches),
            inputs=lines["inputs"],
            labels=lines["labels"][:, 0],
            predictions=lines["outputs"][:, 0],
            sample_loss=sample_loss_torch(self.config.loss, f["outputs"], f["labels"]),
            loss=lines["loss"],
            reset_before=self._buffers[1],
            reset_after=None if self.config.zero_grad else self._buffers[1],
            gradient=gradient,
            weights_before=self._before[1],
            weights_after=lines["weights"],
            lines=lines,
            convention=self.config.loss,
            probabilities=torch.sigmoid(f["outputs"]).detach().numpy()[:, 0].astype(np.float64)
            if self.config.loss == "bce"
            else None,
            **self._whole_step(step_loss, values, rows),
        )
