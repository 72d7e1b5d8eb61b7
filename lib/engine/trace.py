"""Step through both loops one step at a time, reading every line's values from the live generators.

The loops are the very generators lib.run drives (built by lib.engine.lockstep.loops). After each
next(), a suspended generator's frame holds the values its lines just computed (inputs, outputs,
h, loss, delta, neg_grad; outputs, the loss tensor, the parameters' .grad), read through
lib.engine.frames; a Stepper copies them into a Step so any visited step can be shown again
without running anything.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

from ..twins.optim import state_pairs
from .config import Config
from .data import Dataset, weight_names
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
        batch = min(cfg.batch_size, data.m)
        # 12: weights, gradients, optimizer state
        step_bytes = 2 * 8 * (batch * (data.n + 8) + 12 * n_params) + 8192
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ValueError(f"keep must be a whole number >= 1; got {keep!r}")
        self.keep = keep if keep is not None else max(2, min(1000, SNAPSHOT_BYTES // step_bytes))
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

    def reset(self) -> None:
        """Back to the init: fresh generators, empty cache and history."""
        self._manual, self._torch, _ = loops(self.data, self.config)
        self._manual_batches = arguments_of(self._manual)["batches"]
        self._torch_batches = arguments_of(self._torch)["batches"]
        self.step = -1
        self.taken = 0  # steps the generators have run
        self.diverged_at: int | None = None
        self._cache: OrderedDict[int, Step] = OrderedDict()
        iterations = self.config.iterations
        self._loss = np.empty((2, iterations))
        self._grad_norm = np.empty((2, iterations))
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
        return History(
            self._loss[k, :s].copy(),
            self._weights[k, : s + 1].copy(),
            self._grad_norm[k, :s].copy(),
        )

    def _get(self, t: int) -> Step:
        self._cache.move_to_end(t)
        return self._cache[t]

    def _advance(self, snapshot: bool) -> None:
        t = self.taken
        with np.errstate(all="ignore"):
            loss_m, w_m, g_m = next(self._manual)
            loss_t, w_t, g_t = next(self._torch)
            g_m, g_t = np.array(g_m), np.array(g_t)
            norms = row_norms(np.stack([g_m, g_t]).astype(np.float64))  # as lib.run computes them
            if self.config.clip_grad_norm is not None:  # lib.run's grad_norm: before clipping
                norms = [step_values_of(g, ("norm",))["norm"] for g in (self._manual, self._torch)]
        for k, (loss, w) in enumerate(((loss_m, w_m), (loss_t, w_t))):
            self._loss[k, t], self._grad_norm[k, t] = loss, norms[k]
            self._weights[k, t + 1] = w[self.columns]
        if snapshot:
            with np.errstate(all="ignore"):
                state = tuple(state_pairs(self.config.optimizer, *self.optimizers))
                self._cache[t] = Step(t, self._manual_step(g_m), self._torch_step(g_t), state)
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
        self._before = (np.array(w_m), np.array(w_t))
        self._buffers = (-g_m, g_t)  # what the next step's reset line will find
        self.taken = t + 1
        if ends_run(loss_m, loss_t, w_m, w_t, g_m, g_t):  # the step rule of lib.run
            self.diverged_at = t

    def _manual_step(self, gradient: np.ndarray) -> LoopStep:
        f = all_values(self._manual)
        lines = {k: v for k, v in ((k, _copy(v)) for k, v in f.items()) if v is not None}
        z, labels = lines["outputs"], lines["labels"]
        return LoopStep(
            indices=batch_rows(self._manual_batches, self.data.m),
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
        )

    def _torch_step(self, gradient: np.ndarray) -> LoopStep:
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
            indices=batch_rows(self._torch_batches, self.data.m),
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
        )
