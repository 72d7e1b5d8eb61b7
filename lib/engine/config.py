"""Config: one frozen description of a run, validated on construction."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..twins import schedules
from ..twins.layout import Layout
from ..twins.optim import OPTIMIZERS, check_kwargs

LOSSES = ("mse", "half_mse", "sse", "bce")
MODELS = ("linear", "logistic", "mlp")
ACTIVATIONS = ("tanh", "relu")
MAX_HIDDEN = 256
INITS = ("zeros", "normal")
DTYPES = ("float64", "float32")
MAX_ITERATIONS = 1_000_000  # a million steps of a small model record about 100 MB; more is refused
MAX_SEED = 2**32 - 1
MAX_ACCUMULATE = 1_024  # micro-batches per optimizer step
EVALS_PER_RUN = 200  # validation passes in a run when eval_every is None


@dataclass(frozen=True)
class Config:
    """Everything that decides a run; the same Config always gives the same numbers."""

    lr: float = 0.01  # learning rate: alpha in the hand loop, lr in torch.optim.SGD
    batch_size: int = 32  # samples per step; >= the number of samples means full batch
    iterations: int = 1000  # optimizer steps (not epochs), 1 to MAX_ITERATIONS
    # "mse": MSELoss() | "half_mse": the classic 1/2 * mean | "sse": MSELoss(reduction="sum")
    # | "bce": BCEWithLogitsLoss(); default "bce" for model="logistic", else "mse"
    loss: str | None = None
    bias: bool = True  # learn a bias too; weights are laid out [w_1 .. w_n, bias]
    init: str | Sequence[float] = "zeros"  # "zeros" | "normal" (seeded) | n_params numbers
    seed: int = 0  # seeds the batch order and the "normal" init
    zero_grad: bool = True  # False forgets optimizer.zero_grad() (and its hand twin) in both loops
    manual_loss: str | None = None  # None: same as loss; another name mixes the loops' conventions
    # "float32" runs the torch loop in single precision (the drift pitfall)
    torch_dtype: str = "float64"
    # "sgd" | "adam" | "adamw" | "rmsprop" | "adagrad", hand-written and torch.optim
    optimizer: str = "sgd"
    # torch's constructor kwargs, lr excepted
    optimizer_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # "linear" (regression) | "logistic" (binary classifier) | "mlp" (one hidden layer)
    model: str = "linear"
    hidden: int = 8  # mlp only: width of the hidden layer
    activation: str = "tanh"  # mlp only: "tanh" | "relu"
    # None | "step" | "multistep" | "exponential" | "cosine" | "linear" | "onecycle": torch's
    # StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR, OneCycleLR (and hand twins),
    # stepped after every optimizer step
    scheduler: str | None = None
    # that class's constructor keywords, optimizer excluded; left out, CosineAnnealingLR's T_max
    # and OneCycleLR's total_steps are iterations, OneCycleLR's max_lr is lr
    scheduler_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # None | max_norm > 0: torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm) before
    # every step
    clip_grad_norm: float | None = None
    # micro-batches per optimizer step (>= 1): zero_grad() once, loss / accumulate and backward()
    # per micro-batch, step() once; `iterations` counts optimizer steps
    accumulate: int = 1
    # 0 <= f < 1: a seeded share of the rows held out, the same rows in both loops
    val_fraction: float = 0.0
    # optimizer steps between validation passes; None: about 200 passes over the run
    eval_every: int | None = None
    drop_last: bool = False  # DataLoader's drop_last (the last short batch of an epoch), and twin

    def __post_init__(self) -> None:
        _check_number("lr", self.lr, "a finite number > 0, e.g. 0.01")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, e.g. 0.01; got {self.lr!r}")
        _check_int("batch_size", self.batch_size, 1, None)
        _check_int("iterations", self.iterations, 1, MAX_ITERATIONS)
        _check_int("seed", self.seed, 0, MAX_SEED)
        if self.model not in MODELS:
            raise ValueError(
                f"model must be one of {', '.join(map(repr, MODELS))}; got {self.model!r}"
            )
        if self.loss is None:
            object.__setattr__(self, "loss", "bce" if self.model == "logistic" else "mse")
        _check_int("hidden", self.hidden, 1, MAX_HIDDEN)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be 'tanh' or 'relu'; got {self.activation!r}")
        if self.loss not in LOSSES:
            raise ValueError(
                f"loss must be one of {', '.join(map(repr, LOSSES))}; got {self.loss!r}"
            )
        if self.model == "logistic" and self.loss != "bce":
            raise ValueError(
                f"model 'logistic' is a classifier and needs loss='bce'; got loss={self.loss!r}"
            )
        if self.model == "linear" and self.loss == "bce":
            raise ValueError("loss 'bce' needs a classifier: use model='logistic' (or 'mlp')")
        if self.manual_loss is not None and self.manual_loss not in LOSSES:
            raise ValueError(
                f"manual_loss must be None or one of {', '.join(map(repr, LOSSES))}; "
                f"got {self.manual_loss!r}"
            )
        if self.torch_dtype not in DTYPES:
            raise ValueError(
                f"torch_dtype must be one of {', '.join(map(repr, DTYPES))}; "
                f"got {self.torch_dtype!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}; "
                f"got {self.optimizer!r}"
            )
        object.__setattr__(
            self, "optimizer_kwargs", check_kwargs(self.optimizer, self.optimizer_kwargs)
        )
        self._check_schedule_and_clip()
        self._check_loader_and_validation()
        if not isinstance(self.bias, (bool, np.bool_)):
            raise ValueError(f"bias must be True or False; got {self.bias!r}")
        if not isinstance(self.zero_grad, (bool, np.bool_)):
            raise ValueError(f"zero_grad must be True or False; got {self.zero_grad!r}")
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "bias", bool(self.bias))
        object.__setattr__(self, "zero_grad", bool(self.zero_grad))
        object.__setattr__(self, "init", _check_init(self.init))

    def _check_schedule_and_clip(self) -> None:
        if self.scheduler is not None and self.scheduler not in schedules.SCHEDULERS:
            raise ValueError(
                f"scheduler must be None or one of {', '.join(map(repr, schedules.SCHEDULERS))}; "
                f"got {self.scheduler!r}"
            )
        if self.scheduler is None:
            if not (isinstance(self.scheduler_kwargs, Mapping) and not self.scheduler_kwargs):
                raise ValueError(
                    "scheduler_kwargs must be empty when scheduler is None; "
                    f"got {self.scheduler_kwargs!r}"
                )
            object.__setattr__(self, "scheduler_kwargs", {})
        else:
            kwargs = schedules.check_kwargs(
                self.scheduler,
                self.scheduler_kwargs,
                lr=float(self.lr),
                iterations=self.iterations,
                optimizer_name=self.optimizer,
                optimizer_kwargs=self.optimizer_kwargs,
            )
            object.__setattr__(self, "scheduler_kwargs", kwargs)
        if self.clip_grad_norm is not None:
            allowed = "None or a finite number > 0 (clip_grad_norm_'s max_norm), e.g. 1.0"
            _check_number("clip_grad_norm", self.clip_grad_norm, allowed)
            if not (math.isfinite(self.clip_grad_norm) and self.clip_grad_norm > 0):
                raise ValueError(f"clip_grad_norm must be {allowed}; got {self.clip_grad_norm!r}")
            object.__setattr__(self, "clip_grad_norm", float(self.clip_grad_norm))

    def _check_loader_and_validation(self) -> None:
        _check_int("accumulate", self.accumulate, 1, MAX_ACCUMULATE)
        allowed = "a number from 0 up to but not including 1, e.g. 0.2"
        _check_number("val_fraction", self.val_fraction, allowed)
        if not (0 <= self.val_fraction < 1):
            raise ValueError(f"val_fraction must be {allowed}; got {self.val_fraction!r}")
        if self.eval_every is not None:
            _check_int("eval_every", self.eval_every, 1, MAX_ITERATIONS)
        if not isinstance(self.drop_last, (bool, np.bool_)):
            raise ValueError(f"drop_last must be True or False; got {self.drop_last!r}")
        object.__setattr__(self, "accumulate", int(self.accumulate))
        object.__setattr__(self, "val_fraction", float(self.val_fraction))
        object.__setattr__(self, "drop_last", bool(self.drop_last))

    @property
    def eval_interval(self) -> int:
        """Optimizer steps between validation passes: eval_every, or about 200 passes in the run."""
        if self.eval_every is not None:
            return self.eval_every
        return max(1, math.ceil(self.iterations / EVALS_PER_RUN))

    def loss_for(self, loop: str) -> str:
        """The loss convention one loop ("manual" or "torch") uses.

        manual_loss, when set, is the manual loop's.
        """
        if loop not in ("manual", "torch"):
            raise ValueError(f"loop must be 'manual' or 'torch'; got {loop!r}")
        return (self.manual_loss or self.loss) if loop == "manual" else self.loss

    def layout(self, n_features: int) -> Layout:
        """Where this Config's weights live, for a model of n_features inputs."""
        return Layout(self.model, n_features, self.bias, self.hidden, self.activation)

    def n_params(self, n_features: int) -> int:
        """How many weights a model of n_features inputs has under this Config."""
        return self.layout(n_features).n_params

    def replace(self, **changes) -> Config:
        """A copy with some fields changed (validated again)."""
        values = {f: getattr(self, f) for f in self.__dataclass_fields__}
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError(f"unknown Config fields: {', '.join(sorted(unknown))}")
        if "scheduler_kwargs" not in changes and values["scheduler"] is not None:
            # the run's defaults follow the run: a T_max that was iterations is the new iterations
            run = {"iterations": self.iterations, "lr": self.lr}
            filled = schedules.RUN_DEFAULTS.get(values["scheduler"], {})
            values["scheduler_kwargs"] = {
                k: v
                for k, v in self.scheduler_kwargs.items()
                if not (k in filled and v == run[filled[k]])
            }
        new = changes.get("scheduler", self.scheduler)
        if new != self.scheduler and "scheduler_kwargs" not in changes:
            values["scheduler_kwargs"] = {}  # another class takes other keywords
        return Config(**{**values, **changes})


def _check_number(name: str, value, allowed: str) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")


def _check_int(name: str, value, low: int, high: int | None) -> None:
    allowed = (
        f"a whole number from {low:,} to {high:,}"
        if high is not None
        else f"a whole number >= {low:,}"
    )
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}; got {value:,}")


def _check_init(init):
    if isinstance(init, str):
        if init not in INITS:
            raise ValueError(f"init must be 'zeros', 'normal' or a list of numbers; got {init!r}")
        return init
    try:
        values = np.asarray(init, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"init must be 'zeros', 'normal' or a list of numbers; got {init!r}"
        ) from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"init must be a flat list of numbers, one per weight; got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError("init must contain only finite numbers (no NaN or inf)")
    return tuple(float(v) for v in values)
