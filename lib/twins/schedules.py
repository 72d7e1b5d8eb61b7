"""Hand-written twins of torch.optim.lr_scheduler's StepLR, MultiStepLR, ExponentialLR,
CosineAnnealingLR, LinearLR and OneCycleLR.

Each takes the constructor keywords of its torch class and, like it, sets the hand optimizer's lr
once when it is made (step 0) and again at every step(), called after every optimizer step. Where
torch computes the new lr from the current one (its "chainable" form), so does the twin, in the
same order, so the two agree to the last bits and not only to the closed form's rounding.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import torch

TORCH_NAMES = MappingProxyType(
    {
        "step": "StepLR",
        "multistep": "MultiStepLR",
        "exponential": "ExponentialLR",
        "cosine": "CosineAnnealingLR",
        "linear": "LinearLR",
        "onecycle": "OneCycleLR",
    }
)
SCHEDULERS = tuple(TORCH_NAMES)


class Schedule:
    """What every schedule shares: last_epoch counts the steps, step() sets optimizer.lr."""

    def __init__(self, optimizer, last_epoch=-1):
        if last_epoch != -1:
            raise ValueError("the hand-written schedules start from the beginning (last_epoch=-1)")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr  # torch's base_lrs[0], the group's initial_lr
        self.last_epoch = -1
        self.step()  # as torch's constructor does: last_epoch 0, the first step's lr

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()

    def get_lr(self) -> float:
        raise NotImplementedError


class StepLR(Schedule):
    """lr *= gamma every step_size steps."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> float:
        t, lr = self.last_epoch, self.optimizer.lr
        if t == 0 or t % self.step_size != 0:
            return lr
        return lr * self.gamma


class MultiStepLR(Schedule):
    """lr *= gamma at each milestone (gamma ** k where a milestone is listed k times)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones, self.gamma = list(milestones), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> float:
        t, lr = self.last_epoch, self.optimizer.lr
        if t not in self.milestones:
            return lr
        return lr * self.gamma ** self.milestones.count(t)


class ExponentialLR(Schedule):
    """lr *= gamma every step."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> float:
        lr = self.optimizer.lr
        return lr if self.last_epoch == 0 else lr * self.gamma


class CosineAnnealingLR(Schedule):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi t / T_max)) / 2, computed step from step."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> float:
        t, lr, T, eta_min = self.last_epoch, self.optimizer.lr, self.T_max, self.eta_min
        if t == 0:
            return lr
        if (t - 1 - T) % (2 * T) == 0:  # past T_max the cosine climbs again: restart its rise
            return lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
        # the ratio of this step's cosine factor to the last one's
        return (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (
            lr - eta_min
        ) + eta_min


class LinearLR(Schedule):
    """lr = base_lr * factor, the factor going linearly from start_factor to end_factor."""

    def __init__(
        self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1
    ):
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> float:
        t, lr = self.last_epoch, self.optimizer.lr
        start, end = self.start_factor, self.end_factor
        if t == 0:
            return lr * start
        if t > self.total_iters:
            return lr
        # the ratio of this step's factor to the last one's
        return lr * (1.0 + (end - start) / (self.total_iters * start + (t - 1) * (end - start)))


class OneCycleLR(Schedule):
    """lr from max_lr / div_factor up to max_lr over pct_start of the steps, then down to
    max_lr / div_factor / final_div_factor; momentum (Adam's beta1) cycles the other way."""

    def __init__(
        self,
        optimizer,
        max_lr,
        total_steps=None,
        epochs=None,
        steps_per_epoch=None,
        pct_start=0.3,
        anneal_strategy="cos",
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor=25.0,
        final_div_factor=1e4,
        three_phase=False,
        last_epoch=-1,
    ):
        self.total_steps = total_steps if total_steps is not None else epochs * steps_per_epoch
        self.anneal_strategy, self.cycle_momentum = anneal_strategy, cycle_momentum
        initial_lr = max_lr / div_factor
        min_lr = initial_lr / final_div_factor
        # (last step of the phase, lr from, lr to, momentum from, momentum to)
        if three_phase:
            self.phases = [
                (float(pct_start * self.total_steps) - 1, initial_lr, max_lr, max_momentum,
                 base_momentum),
                (float(2 * pct_start * self.total_steps) - 2, max_lr, initial_lr, base_momentum,
                 max_momentum),
                (self.total_steps - 1, initial_lr, min_lr, max_momentum, max_momentum),
            ]  # fmt: skip
        else:
            self.phases = [
                (float(pct_start * self.total_steps) - 1, initial_lr, max_lr, max_momentum,
                 base_momentum),
                (self.total_steps - 1, max_lr, min_lr, base_momentum, max_momentum),
            ]  # fmt: skip
        # SGD and RMSprop have a momentum; Adam and AdamW cycle beta1 instead
        self.use_beta1 = hasattr(optimizer, "betas")
        if cycle_momentum:
            if not (self.use_beta1 or hasattr(optimizer, "momentum")):
                raise ValueError("optimizer must support momentum or beta1 with cycle_momentum")
            self.set_momentum(optimizer, max_momentum)
        super().__init__(optimizer, last_epoch)

    def set_momentum(self, optimizer, momentum: float) -> None:
        if self.use_beta1:
            optimizer.betas = (momentum, *optimizer.betas[1:])
        else:
            optimizer.momentum = momentum

    def anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> float:
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"Tried to step {t} times. The total steps are {self.total_steps}")
        start_step = 0.0
        for i, (end_step, lr_from, lr_to, m_from, m_to) in enumerate(self.phases):
            if t <= end_step or i == len(self.phases) - 1:
                pct = (t - start_step) / (end_step - start_step)
                if self.cycle_momentum:
                    self.set_momentum(self.optimizer, self.anneal(m_from, m_to, pct))
                return self.anneal(lr_from, lr_to, pct)
            start_step = end_step


MANUAL = MappingProxyType(
    {
        "step": StepLR,
        "multistep": MultiStepLR,
        "exponential": ExponentialLR,
        "cosine": CosineAnnealingLR,
        "linear": LinearLR,
        "onecycle": OneCycleLR,
    }
)


def manual_scheduler(name: str, optimizer, kwargs: Mapping | None = None):
    """The hand-written schedule that sets the hand optimizer's lr, as torch's <name> would."""
    return MANUAL[name](optimizer, **dict(kwargs or {}))


def torch_scheduler(name: str, optimizer: torch.optim.Optimizer, kwargs: Mapping | None = None):
    """torch.optim.lr_scheduler.<name>(optimizer, **kwargs)."""
    return getattr(torch.optim.lr_scheduler, TORCH_NAMES[name])(optimizer, **dict(kwargs or {}))


# The keywords whose default is the run's: {scheduler: {keyword: Config field}}.
RUN_DEFAULTS = MappingProxyType(
    {
        "cosine": MappingProxyType({"T_max": "iterations"}),
        "onecycle": MappingProxyType({"total_steps": "iterations", "max_lr": "lr"}),
    }
)
_TEXT = ("anneal_strategy",)  # the only keyword that is not a number or True/False


def torch_keywords(name: str) -> dict[str, object]:
    """torch's constructor keywords for the scheduler, optimizer excluded, with their defaults
    (inspect.Parameter.empty where torch has none)."""
    cls = getattr(torch.optim.lr_scheduler, TORCH_NAMES[name])
    params = inspect.signature(cls).parameters.values()
    return {p.name: p.default for p in params if p.name != "optimizer"}


def run_defaults(name: str, kwargs: Mapping, lr: float, iterations: int) -> dict:
    """kwargs with the run's defaults filled in where they are left out."""
    filled = dict(kwargs)
    run = {"iterations": iterations, "lr": lr}
    for key, field in RUN_DEFAULTS.get(name, {}).items():
        epochs = "epochs" in filled or "steps_per_epoch" in filled
        if key not in filled and not (key == "total_steps" and epochs):
            filled[key] = run[field]
    return filled


def check_kwargs(
    name: str,
    kwargs: Mapping,
    *,
    lr: float,
    iterations: int,
    optimizer_name: str,
    optimizer_kwargs: Mapping,
) -> dict:
    """Check scheduler kwargs against torch's own constructor and fill the run's defaults.

    A ValueError in words otherwise.
    """
    from .optim import torch_optimizer

    if not isinstance(kwargs, Mapping):
        raise ValueError(
            f"scheduler_kwargs must be a dict of keyword arguments; got {type(kwargs).__name__}"
        )
    torch_name = f"torch.optim.lr_scheduler.{TORCH_NAMES[name]}"
    allowed = torch_keywords(name)
    kwargs = {str(k): (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    for key, value in kwargs.items():
        if key not in allowed:
            raise ValueError(
                f"scheduler_kwargs: unknown argument {key!r} for {torch_name}; "
                f"allowed: {', '.join(allowed)}"
            )
        _check_value(key, value)
    kwargs = run_defaults(name, kwargs, lr, iterations)
    missing = [k for k, d in allowed.items() if d is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise ValueError(
            f"scheduler_kwargs: {torch_name} needs {', '.join(missing)}; "
            f"allowed: {', '.join(allowed)}"
        )
    # torch checks the values itself; two steps also meet what only step() divides by
    try:
        optimizer = torch_optimizer(
            optimizer_name, [torch.zeros(1, requires_grad=True)], lr, optimizer_kwargs
        )
        scheduler = torch_scheduler(name, optimizer, kwargs)
        for _ in range(min(2, iterations)):
            optimizer.step()
            scheduler.step()
    except (TypeError, ValueError, KeyError, RuntimeError, IndexError, ZeroDivisionError) as err:
        raise ValueError(f"scheduler_kwargs for {name} ({torch_name}): {err}") from None
    if name == "onecycle" and scheduler.total_steps < iterations:
        raise ValueError(
            f"scheduler_kwargs: OneCycleLR's total_steps ({scheduler.total_steps:,}) must be at "
            f"least iterations ({iterations:,}): torch refuses to step past them"
        )
    if name == "onecycle" and iterations > 2:
        _check_last_step(scheduler, kwargs, iterations, torch_name)
    return kwargs


def _check_last_step(scheduler, kwargs: Mapping, iterations: int, torch_name: str) -> None:
    """OneCycleLR at the run's last step, where a phase of no length (pct_start 1.0) divides by
    zero; a ValueError in words then."""
    try:
        scheduler.last_epoch = iterations - 1
        scheduler.step()
    except ZeroDivisionError:
        raise ValueError(
            f"scheduler_kwargs for onecycle ({torch_name}): pct_start "
            f"{kwargs.get('pct_start', 0.3):g} leaves the annealing phase no steps, and "
            "torch divides by zero at the run's last step: use a pct_start below 1"
        ) from None


def _check_value(key: str, value) -> None:
    if key == "milestones":
        ok = isinstance(value, tuple) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
        )
        if not ok:
            raise ValueError(f"scheduler_kwargs: milestones must be a list of steps; got {value!r}")
        return
    if key in _TEXT:
        if value not in ("cos", "linear"):
            raise ValueError(
                f"scheduler_kwargs: anneal_strategy must be 'cos' or 'linear'; got {value!r}"
            )
        return
    if value is None:
        return  # OneCycleLR's total_steps, epochs, steps_per_epoch may be None
    if not isinstance(value, (int, float, np.integer, np.floating)):  # bool is an int
        raise ValueError(f"scheduler_kwargs: {key} must be a number or True/False; got {value!r}")
    if not np.isfinite(float(value)):
        raise ValueError(f"scheduler_kwargs: {key} must be finite; got {value!r}")
