"""Hand-written numpy twins of torch.optim's SGD, Adam, AdamW, RMSprop and Adagrad.

Each follows the algorithm in torch's documentation, in the order torch computes it, and updates
the weights array in place, as step() updates the parameters. Their state (velocity, moments,
step count) is plain attributes, so a page can show it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import torch

TORCH_NAMES = MappingProxyType(
    {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
)
OPTIMIZERS = tuple(TORCH_NAMES)
# Switches that choose torch's implementation, not its arithmetic: there is nothing to hand-write.
IMPLEMENTATION_FLAGS = ("foreach", "fused", "differentiable", "capturable")


class SGD:
    """p -= lr * g, with optional weight decay, momentum (and dampening) and Nesterov."""

    def __init__(
        self, weights, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False
    ):
        self.weights, self.lr = weights, lr
        self.momentum, self.dampening, self.weight_decay = momentum, dampening, weight_decay
        self.nesterov, self.maximize = nesterov, maximize
        self.velocity = None  # torch's momentum_buffer: None until the first step

    def step(self, grad: np.ndarray) -> None:
        g = -grad if self.maximize else grad
        if self.weight_decay != 0:
            g = g + self.weight_decay * self.weights
        if self.momentum != 0:
            if self.velocity is None:
                # the first step takes the gradient as is, without dampening
                self.velocity = g.copy()
            else:
                self.velocity = self.momentum * self.velocity + (1 - self.dampening) * g
            g = g + self.momentum * self.velocity if self.nesterov else self.velocity
        self.weights -= self.lr * g


class Adam:
    """Adam: bias-corrected first and second moments; weight decay added to the gradient (L2)."""

    def __init__(
        self,
        weights,
        lr,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        amsgrad=False,
        maximize=False,
        decoupled_weight_decay=False,
    ):
        self.weights, self.lr, self.betas, self.eps = weights, lr, tuple(betas), eps
        self.weight_decay, self.amsgrad, self.maximize = weight_decay, amsgrad, maximize
        self.decoupled_weight_decay = decoupled_weight_decay
        self.t = 0
        self.exp_avg = np.zeros_like(weights)  # first moment m
        self.exp_avg_sq = np.zeros_like(weights)  # second moment v
        self.max_exp_avg_sq = np.zeros_like(weights)  # amsgrad: the largest v so far

    def step(self, grad: np.ndarray) -> None:
        beta1, beta2 = self.betas
        g = -grad if self.maximize else grad
        self.t += 1
        if self.weight_decay != 0:
            if self.decoupled_weight_decay:  # AdamW: shrink the weights, leave the gradient alone
                self.weights *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * self.weights
        self.exp_avg += (1 - beta1) * (g - self.exp_avg)  # m = beta1 m + (1 - beta1) g
        self.exp_avg_sq *= beta2
        self.exp_avg_sq += (1 - beta2) * g * g  # v = beta2 v + (1 - beta2) g^2
        step_size = self.lr / (1 - beta1**self.t)
        second = self.exp_avg_sq
        if self.amsgrad:
            self.max_exp_avg_sq = np.maximum(self.max_exp_avg_sq, self.exp_avg_sq)
            second = self.max_exp_avg_sq
        denom = np.sqrt(second) / (1 - beta2**self.t) ** 0.5 + self.eps
        self.weights -= step_size * (self.exp_avg / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01).

    p *= 1 - lr * weight_decay before the Adam step.
    """

    def __init__(
        self,
        weights,
        lr,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.01,
        amsgrad=False,
        maximize=False,
    ):
        super().__init__(
            weights, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay=True
        )


class RMSprop:
    """RMSprop: divide by the gradient's running root-mean-square; optional momentum, centering."""

    def __init__(
        self,
        weights,
        lr,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0,
        momentum=0,
        centered=False,
        maximize=False,
    ):
        self.weights, self.lr, self.alpha, self.eps = weights, lr, alpha, eps
        self.weight_decay, self.momentum, self.centered, self.maximize = (
            weight_decay,
            momentum,
            centered,
            maximize,
        )
        self.square_avg = np.zeros_like(weights)  # v
        self.grad_avg = np.zeros_like(weights)  # centered: running mean of g
        self.momentum_buffer = np.zeros_like(weights)

    def step(self, grad: np.ndarray) -> None:
        g = -grad if self.maximize else grad
        if self.weight_decay != 0:
            g = g + self.weight_decay * self.weights
        self.square_avg *= self.alpha
        self.square_avg += (1 - self.alpha) * g * g  # v = alpha v + (1 - alpha) g^2
        if self.centered:
            self.grad_avg += (1 - self.alpha) * (g - self.grad_avg)
            avg = np.sqrt(self.square_avg - self.grad_avg * self.grad_avg) + self.eps
        else:
            avg = np.sqrt(self.square_avg) + self.eps
        if self.momentum > 0:
            self.momentum_buffer = self.momentum * self.momentum_buffer + g / avg
            self.weights -= self.lr * self.momentum_buffer
        else:
            self.weights -= self.lr * (g / avg)


class Adagrad:
    """Adagrad: divide by the root of the summed squared gradients; optional lr decay."""

    def __init__(
        self,
        weights,
        lr,
        lr_decay=0,
        weight_decay=0,
        initial_accumulator_value=0,
        eps=1e-10,
        maximize=False,
    ):
        self.weights, self.lr, self.lr_decay, self.eps = weights, lr, lr_decay, eps
        self.weight_decay, self.maximize = weight_decay, maximize
        self.t = 0
        self.state_sum = np.full_like(weights, initial_accumulator_value)

    def step(self, grad: np.ndarray) -> None:
        g = -grad if self.maximize else grad
        self.t += 1
        if self.weight_decay != 0:
            g = g + self.weight_decay * self.weights
        clr = self.lr / (1 + (self.t - 1) * self.lr_decay)
        self.state_sum += g * g
        self.weights -= clr * (g / (np.sqrt(self.state_sum) + self.eps))


MANUAL = MappingProxyType(
    {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}
)


# Each hand optimizer's state attribute beside the key torch keeps for it in optimizer.state[param].
_ADAM_STATE = (
    ("t", "step"), ("exp_avg", "exp_avg"), ("exp_avg_sq", "exp_avg_sq"),
    ("max_exp_avg_sq", "max_exp_avg_sq"),
)  # fmt: skip
STATE_KEYS = MappingProxyType(
    {
        "sgd": (("velocity", "momentum_buffer"),),
        "adam": _ADAM_STATE,
        "adamw": _ADAM_STATE,
        "rmsprop": (
            ("square_avg", "square_avg"),
            ("grad_avg", "grad_avg"),
            ("momentum_buffer", "momentum_buffer"),
        ),
        "adagrad": (("t", "step"), ("state_sum", "sum")),
    }
)


def state_pairs(
    name: str, hand, torch_opt: torch.optim.Optimizer
) -> list[tuple[str, str, object, object]]:
    """The state both optimizers keep right now, side by side.

    As (hand attribute, torch key, hand value, torch value). Buffers are flat float64 copies in the
    weights' order (torch's per-parameter buffers concatenated in parameters() order); step counts
    are floats. A buffer torch does not keep in this configuration (no momentum, no amsgrad, not
    centered) or not yet (before the first step) is left out, though the hand optimizer may hold
    zeros for it.
    """
    params = [p for group in torch_opt.param_groups for p in group["params"]]
    states = [torch_opt.state.get(p, {}) for p in params]
    pairs = []
    for attr, key in STATE_KEYS[name]:
        if not states or any(state.get(key) is None for state in states):
            continue
        if key == "step":
            torch_value, hand_value = float(states[0][key]), float(getattr(hand, attr))
        else:
            torch_value = np.concatenate(
                [state[key].detach().numpy().astype(np.float64).ravel() for state in states]
            )
            hand_value = np.array(getattr(hand, attr), dtype=np.float64)
        pairs.append((attr, key, hand_value, torch_value))
    return pairs


def defaults(name: str) -> dict:
    """The optimizer's keyword arguments (torch's; the hand twin takes the same), with defaults."""
    params = inspect.signature(MANUAL[name]).parameters.values()
    return {p.name: p.default for p in params if p.name not in ("weights", "lr")}


def manual_optimizer(name: str, weights: np.ndarray, lr: float, kwargs: Mapping | None = None):
    """The hand-written optimizer that updates `weights` in place, as torch.optim.<name> would."""
    return MANUAL[name](weights, lr, **dict(kwargs or {}))


def torch_optimizer(
    name: str, params, lr: float, kwargs: Mapping | None = None
) -> torch.optim.Optimizer:
    """torch.optim.<name>(params, lr=lr, **kwargs)."""
    return getattr(torch.optim, TORCH_NAMES[name])(params, lr=lr, **dict(kwargs or {}))


def check_kwargs(name: str, kwargs: Mapping) -> dict:
    """Check optimizer kwargs against torch's own constructor; a ValueError in words otherwise."""
    if not isinstance(kwargs, Mapping):
        raise ValueError(
            f"optimizer_kwargs must be a dict of keyword arguments; got {type(kwargs).__name__}"
        )
    kwargs = {str(k): (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    torch_cls = getattr(torch.optim, TORCH_NAMES[name])
    allowed = list(defaults(name))
    for key in kwargs:
        if key == "lr":
            raise ValueError("optimizer_kwargs must not contain lr: set Config.lr instead")
        if key in IMPLEMENTATION_FLAGS:
            raise ValueError(
                f"optimizer_kwargs: {key!r} picks torch's implementation, not its arithmetic, "
                "so it is not offered here"
            )
        if key not in allowed:
            raise ValueError(
                f"optimizer_kwargs: unknown argument {key!r} for torch.optim.{torch_cls.__name__}; "
                f"allowed: {', '.join(allowed)}"
            )
    for key, value in kwargs.items():
        if isinstance(value, str) or (
            isinstance(value, tuple) and any(isinstance(v, str) for v in value)
        ):
            raise ValueError(
                f"optimizer_kwargs: {key} must be a number or True/False; got {value!r}"
            )
    if "betas" in kwargs and not (isinstance(kwargs["betas"], tuple) and len(kwargs["betas"]) == 2):
        raise ValueError(
            f"optimizer_kwargs: betas must be two numbers (beta1, beta2); got {kwargs['betas']!r}"
        )
    # torch checks ranges itself (negative momentum, betas outside [0, 1), nesterov without
    # momentum ...)
    try:
        torch_cls([torch.zeros(1, requires_grad=True)], lr=0.1, **kwargs)
    except (TypeError, ValueError, RuntimeError, IndexError) as err:
        raise ValueError(f"optimizer_kwargs for {name}: {err}") from None
    for key, value in kwargs.items():
        numbers = value if isinstance(value, tuple) else (value,)
        if not all(np.isfinite(float(v)) for v in numbers):
            raise ValueError(f"optimizer_kwargs: {key} must be finite; got {value!r}")
    return kwargs
