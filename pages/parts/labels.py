"""What the sidebar's controls offer and say: the labels of the data sources, models, losses and
optimizers, the optimizers' settings (ranges, help, defaults), the controls' defaults, and the
warning for an MLP that starts from zero weights.

Text and constants only: nothing here draws a widget or reads the session.
"""

from __future__ import annotations

from types import MappingProxyType

import lib
from lib.io.datasets import PRESETS

# The CSV checkbox: messages name it instead of drop_missing=True.
DROP_LABEL = "Drop rows with missing values"
SOURCES = ("synthetic", *PRESETS, "csv")
# What the data-source list shows; the URL keeps the keys (?data=classic), which links already hold.
SOURCE_LABELS = MappingProxyType(
    {
        "synthetic": "Synthetic: y = X·w + b + noise (you choose its size)",
        **{key: f"Preset: {preset.title}" for key, preset in PRESETS.items()},
        "csv": "Your own CSV file",
    }
)
LOSSES_FOR = MappingProxyType(
    {
        "linear": ("mse", "half_mse", "sse"),
        "logistic": ("bce",),
        "mlp": ("mse", "half_mse", "sse", "bce"),
    }
)
LOSS_LABELS = MappingProxyType(
    {
        "mse": "mse: MSELoss(), the mean of squared errors",
        "half_mse": "half_mse: ½ × the mean of squared errors (the classic preset's convention)",
        "sse": 'sse: MSELoss(reduction="sum"), the sum of squared errors',
        "bce": "bce: BCEWithLogitsLoss(), for a two-class target of 0s and 1s",
    }
)
MODEL_LABELS = MappingProxyType(
    {
        "linear": "linear: regression, z = X·w + b (z = X·w without a bias)",
        "logistic": "logistic: a two-class classifier; its probability that the target is 1 is "
        "sigmoid(X·w + b) (sigmoid(X·w) without a bias)",
        "mlp": "mlp: one hidden layer (tanh or ReLU), then a linear output",
    }
)
OPTIMIZER_LABELS = MappingProxyType(
    {
        "sgd": "torch.optim.SGD",
        "adam": "torch.optim.Adam",
        "adamw": "torch.optim.AdamW",
        "rmsprop": "torch.optim.RMSprop",
        "adagrad": "torch.optim.Adagrad",
    }
)
# The widgets of the optimizers' keyword arguments: (min, max, step) of each number; the rest are
# switches.
KWARG_RANGES = MappingProxyType(
    {
        "momentum": (0.0, 1.0, 0.05),
        "dampening": (0.0, 1.0, 0.05),
        "weight_decay": (0.0, 10.0, 0.001),
        "eps": (0.0, 1.0, 1e-8),
        "alpha": (0.0, 1.0, 0.01),
        "lr_decay": (0.0, 10.0, 0.001),
        "initial_accumulator_value": (0.0, 100.0, 0.1),
        "beta1": (0.0, 0.999999, 0.01),  # torch requires betas below 1
        "beta2": (0.0, 0.999999, 0.001),
    }
)
# The help of each optimizer's keyword arguments: under "<optimizer>_<arg>" where the optimizers
# differ (one text each, exact for it), else under "<arg>", shared by the optimizers that take it
# (see kwarg_help). g is the gradient as the optimizer uses it: .grad, negated by maximize, plus
# weight_decay × weights (not AdamW).
KWARG_HELP = MappingProxyType(
    {
        "sgd_momentum": "A velocity v that is set to g at the first step (no dampening), then "
        "v = momentum·v + (1 − dampening)·g; the step is lr·v (nesterov: lr·(g + momentum·v)). 0 "
        "turns it off: plain SGD steps by lr·g.",
        "rmsprop_momentum": "A buffer b = momentum·b + g / (√v + eps) (centered: "
        "√(v − ḡ²) + eps), from b = 0; the step is lr·b. 0 turns it off: the step is then "
        "lr·g / (√v + eps).",
        "sgd_weight_decay": "Adds weight_decay × weights to the gradient (L2), after maximize's "
        "sign change and before the velocity takes it in.",
        "adam_weight_decay": "Adds weight_decay × weights to the gradient (L2), after maximize's "
        "sign change and before the moments take it in. With decoupled_weight_decay it "
        "multiplies the weights by 1 − lr·weight_decay before the step instead (as AdamW).",
        "adamw_weight_decay": "Multiplies the weights by 1 − lr·weight_decay before each step "
        "(decoupled: the gradient and its moments never see it). torch's default is 0.01, so "
        "AdamW shrinks the weights even at its defaults.",
        "rmsprop_weight_decay": "Adds weight_decay × weights to the gradient (L2), after "
        "maximize's sign change and before v (and ḡ, when centered) take it in.",
        "adagrad_weight_decay": "Adds weight_decay × weights to the gradient (L2), after "
        "maximize's sign change and before its square is added to the sum.",
        "adam_eps": "Added to √v̂ (v after its bias correction; amsgrad: the largest so far) in "
        "the step's denominator: the step is lr·m̂ / (√v̂ + eps). A weight whose g (.grad, plus "
        "weight_decay × weights if set) has been 0 at every step so far steps by 0/eps = 0. With "
        "eps = 0 it steps by 0/0 = NaN and the run stops.",
        "adamw_eps": "Added to √v̂ (v after its bias correction; amsgrad: the largest so far) in "
        "the step's denominator: the step is lr·m̂ / (√v̂ + eps), after the decay. A weight "
        "whose .grad has been 0 at every step so far steps by 0/eps = 0 (the decay still shrinks "
        "it). With eps = 0 it steps by 0/0 = NaN and the run stops.",
        "rmsprop_eps": "Added to √v (centered: √(v − ḡ²)) in the step's denominator: the step is "
        "lr·g / (√v + eps). A weight whose g (.grad, plus weight_decay × weights if set) has "
        "been 0 at every step so far steps by 0/eps = 0. With eps = 0 it steps by 0/0 = NaN and "
        "the run stops.",
        "adagrad_eps": "Added to √sum in the step's denominator: the step is "
        "lr·g / (√sum + eps). A weight whose g (.grad, plus weight_decay × weights if set) has "
        "been 0 at every step so far steps by 0/eps = 0. With eps = 0 it steps by 0/0 = NaN and "
        "the run stops, unless initial_accumulator_value > 0.",
        "dampening": "SGD: the new gradient enters the velocity scaled by 1 − dampening, from "
        "the second step on (the first step sets v = g). Must be 0 with nesterov.",
        "nesterov": "SGD: step by lr·(g + momentum·v), with v the velocity just updated, instead "
        "of lr·v (a look-ahead). Needs momentum > 0 and dampening 0.",
        "maximize": "Use −.grad: the step climbs the loss instead of descending it (weight "
        "decay, if any, still pulls the weights towards 0).",
        "beta1": "betas[0]: m = beta1·m + (1 − beta1)·g, the running mean of the gradient (first "
        "moment), from 0; the step divides m by 1 − beta1^t to undo that start.",
        "beta2": "betas[1]: v = beta2·v + (1 − beta2)·g², the running mean of the squared "
        "gradient (second moment), from 0; the step divides v by 1 − beta2^t to undo that start.",
        "amsgrad": "Divide by the square root of the largest second moment v so far "
        "(bias-corrected by this step's 1 − beta2^t) instead of the current v's.",
        "decoupled_weight_decay": "Multiply the weights by 1 − lr·weight_decay before the step "
        "(as AdamW) instead of adding weight_decay × weights to the gradient. Does nothing while "
        "weight_decay is 0.",
        "alpha": "v = alpha·v + (1 − alpha)·g², the running mean of the squared gradient; it "
        "starts from 0 and, unlike Adam's, is not corrected for that start.",
        "centered": "Also keep the running mean ḡ = alpha·ḡ + (1 − alpha)·g and divide by "
        "√(v − ḡ²) + eps, the square root of an estimate of the gradient's variance, instead of "
        "√v + eps.",
        "lr_decay": "The step size at step t (t = 1 at the first step) is "
        "lr / (1 + (t − 1)·lr_decay).",
        "initial_accumulator_value": "The per-weight sum of squared gradients starts from this "
        "value instead of 0. The step is lr·g / (√sum + eps), with lr after lr_decay and this "
        "step's g² in the sum.",
    }
)
DEFAULTS = MappingProxyType(
    {
        "lr": 0.05,
        "batch_size": 32,
        "iterations": 500,
        "data": "synthetic",
        "samples": 200,
        "n_features": 3,
        "noise": 0.1,
        "model": "linear",
        "hidden": 8,
        "activation": "tanh",
        "loss": "mse",
        "optimizer": "sgd",
        "bias": True,
        "init": "zeros",
        "zero_grad": True,
        "seed": 0,
    }
)


def kwarg_help(optimizer: str, arg: str) -> str | None:
    """The help of one optimizer's keyword argument: its own text if it has one, else the one it
    shares."""
    return KWARG_HELP.get(f"{optimizer}_{arg}", KWARG_HELP.get(arg))


def zero_mlp_warning(cfg: lib.Config) -> str:
    """What the sidebar says when an MLP starts from all-zero weights, built from cfg so that
    every clause applies (tests/test_optimizers_models.py checks each clause against both loops)."""
    kwargs = {**optimizer_defaults(cfg.optimizer), **cfg.optimizer_kwargs}
    hidden = "W1, b1 and W2" if cfg.bias else "W1 and W2"
    words = [
        "All of this network's initial weights are zero, so its hidden layer cannot learn. Every "
        f"hidden unit computes {cfg.activation}(0) = 0, so W2's gradient (a product with those "
        "zeros) is zero, and so is "
        + ("that of W1 and of b1, which pass" if cfg.bias else "that of W1, which passes")
        + " through W2 = 0."
    ]
    adagrad = cfg.optimizer == "adagrad"
    if kwargs.get("eps", 1.0) == 0 and not (adagrad and kwargs["initial_accumulator_value"] > 0):
        start = " and initial_accumulator_value 0" if adagrad else ""
        words.append(
            f"With eps = 0{start}, {OPTIMIZER_LABELS[cfg.optimizer]} divides those zero "
            f"gradients by 0: the first update of {hidden} is 0/0 = NaN, and the run stops at "
            "its first step."
        )
    else:
        despite = [
            name
            for arg, name in (
                ("momentum", "momentum"),
                ("weight_decay", "weight decay"),
                ("maximize", "maximize"),
            )
            if kwargs.get(arg)
        ]
        if not cfg.zero_grad:
            despite.append("zero_grad off (a sum of zero gradients is zero)")
        even = f", even with {' and '.join(despite)}," if despite else ","
        words.append(
            "A zero gradient leaves a zero weight at zero with "
            f"{OPTIMIZER_LABELS[cfg.optimizer]}{even} so {hidden} stay 0 at every step: "
            + (
                "the network gives every input the same output, its output bias b2, the only "
                "weight that can move."
                if cfg.bias
                else "nothing moves, and the network's output is 0 for every input."
            )
        )
    words.append(
        "Choose **normal** initial weights under *Start* (the moons preset does): the hidden "
        "units then start different and can learn different features."
    )
    return " ".join(words)


def optimizer_defaults(name: str) -> dict:
    """The keyword arguments of the hand-written optimizer (the same as torch's), with their
    defaults."""
    return lib.optim.defaults(name)


# The warning for the MLP the sidebar offers first (tanh, a bias, plain SGD, zero_grad on), as a
# name to look for.
ZERO_MLP = zero_mlp_warning(lib.Config(model="mlp"))
