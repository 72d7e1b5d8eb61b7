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


def few_noisy_rows(m: int = 40, n: int = 4, noise: float = 1.0, seed: int = 0) -> lib.Dataset:
    """lib.io.datasets.linear with few rows and much noise: a set a wide network memorises."""
    return lib.io.datasets.linear(m=m, n=n, noise=noise, seed=seed)


# The app's own presets, beside lib.io.datasets.PRESETS: the overfitting one needs a validation
# split, which a data set's preset in lib does not set. Its numbers are measured by
# tests/test_app_whole_loop.py.
PAGE_PRESETS = MappingProxyType(
    {
        "overfitting": lib.io.datasets.Preset(
            "overfitting",
            "Overfitting: a wide network on 40 noisy rows",
            few_noisy_rows,
            MappingProxyType(
                {
                    "lr": 0.01,
                    "batch_size": lib.io.datasets.FULL_BATCH,
                    "iterations": 600,
                    "loss": "mse",
                    "model": "mlp",
                    "hidden": 64,
                    "activation": "tanh",
                    "init": "normal",
                    "optimizer": "adam",
                    "val_fraction": 0.3,
                }
            ),
            about="40 rows of y = X·w + b + noise (4 features, noise of standard deviation 1), "
            "12 of them held out for validation (val_fraction 0.3). The suggested network, 64 "
            "tanh units and 385 weights for the 28 training rows, trained full batch by Adam at "
            "lr 0.01, memorises them: its training loss falls below 1e-05 by step 600, "
            "while the validation loss is lowest after 39 steps (1.18) and then climbs to 2.18 "
            "(seed 0).",
        ),
    }
)
ALL_PRESETS = MappingProxyType({**PRESETS, **PAGE_PRESETS})
SOURCES = ("synthetic", *ALL_PRESETS, "csv")
# What the data-source list shows; the URL keeps the keys (?data=classic), which links already hold.
SOURCE_LABELS = MappingProxyType(
    {
        "synthetic": "Synthetic: y = X·w + b + noise (you choose its size)",
        **{key: f"Preset: {preset.title}" for key, preset in ALL_PRESETS.items()},
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
        # the whole loop (issue 12): "none" and 0 stand for Config's None
        "scheduler": "none",
        "clip_grad_norm": 0.0,
        "accumulate": 1,
        "val_fraction": 0.0,
        "eval_every": 0,
        "drop_last": False,
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


# ------------------------------------------------------------------ the whole loop (issue 12)

MAX_STEPS = lib.MAX_ITERATIONS
# The schedule list: "none" (Config's scheduler=None) and lib's six, by their Config names.
SCHEDULE_CHOICES = ("none", *lib.twins.schedules.SCHEDULERS)
SCHEDULE_CLASSES = lib.twins.schedules.TORCH_NAMES
# t is the optimizer step, counted from 0 as History.lr counts it; lr₀ the lr set above.
SCHEDULE_FORMULAS = MappingProxyType(
    {
        "none": "Every step uses the lr set above; no scheduler is made.",
        "step": "StepLR: step t uses lr₀ · gamma^⌊t / step_size⌋.",
        "multistep": "MultiStepLR: step t uses lr₀ · gamma^k, k the number of milestones ≤ t.",
        "exponential": "ExponentialLR: step t uses lr₀ · gamma^t.",
        "cosine": "CosineAnnealingLR: step t uses eta_min + (lr₀ − eta_min) · "
        "(1 + cos(π·t / T_max)) / 2.",
        "linear": "LinearLR: step t uses lr₀ · (start_factor + (end_factor − start_factor) · "
        "min(t, total_iters) / total_iters).",
        "onecycle": "OneCycleLR: from max_lr / div_factor up to max_lr, then down to "
        "max_lr / (div_factor · final_div_factor) at the last step; lr₀ serves only as max_lr "
        "when max_lr is 0.",
    }
)
SCHEDULE_HELP = (
    "None, or torch.optim.lr_scheduler's class of that name: scheduler = <class>(optimizer, "
    "**its settings below) is made after the optimizer, and scheduler.step() runs after every "
    "optimizer.step(). The hand loop's twin sets its lr by the same formula, computed from the "
    "step before as torch does; the learning-rate chart shows the lr each step used in both loops."
)
# Each schedule's settings in the sidebar: (keyword, kind, low, high, default, step); kinds are
# "int", "float", "steps" (a comma-separated list), "choice" (low holds the options) and "bool".
# Defaults are torch's where it has one. T_max and max_lr at 0 are left out of scheduler_kwargs,
# so that the run's own value is used (lib.twins.schedules.RUN_DEFAULTS).
SCHEDULE_SETTINGS = MappingProxyType(
    {
        "step": (("step_size", "int", 1, MAX_STEPS, 100, 1),
                 ("gamma", "float", 0.0, 10.0, 0.1, 0.05)),
        "multistep": (("milestones", "steps", None, None, "250, 400", None),
                      ("gamma", "float", 0.0, 10.0, 0.1, 0.05)),
        "exponential": (("gamma", "float", 0.0, 10.0, 0.99, 0.001),),
        "cosine": (("T_max", "int", 0, MAX_STEPS, 0, 100),
                   ("eta_min", "float", 0.0, 100.0, 0.0, 0.001)),
        "linear": (("start_factor", "float", 0.0, 1.0, 1.0 / 3, 0.05),
                   ("end_factor", "float", 0.0, 1.0, 1.0, 0.05),
                   ("total_iters", "int", 1, MAX_STEPS, 5, 1)),
        "onecycle": (("max_lr", "float", 0.0, 100.0, 0.0, 0.01),
                     ("pct_start", "float", 0.0, 0.999, 0.3, 0.05),
                     ("anneal_strategy", "choice", ("cos", "linear"), None, "cos", None),
                     ("div_factor", "float", 1e-6, 1e6, 25.0, 1.0),
                     ("final_div_factor", "float", 1e-6, 1e12, 1e4, 100.0),
                     ("cycle_momentum", "bool", None, None, True, None)),
    }
)  # fmt: skip
# OneCycleLR's pct_start stops below 1: at 1 the falling phase has no length, and torch's (and
# the twin's) last scheduler.step() divides by zero.
# Left out of scheduler_kwargs at 0: the run decides them (T_max = iterations, max_lr = lr).
RUN_DECIDED = MappingProxyType({"cosine_T_max": "iterations", "onecycle_max_lr": "lr"})
SCHEDULE_KWARG_HELP = MappingProxyType(
    {
        "step_step_size": "StepLR(optimizer, step_size, gamma): step t uses "
        "lr₀ · gamma^⌊t / step_size⌋, so the lr is multiplied by gamma after every step_size "
        "steps (first at step step_size).",
        "step_gamma": "StepLR: the factor the lr is multiplied by every step_size steps.",
        "multistep_milestones": "MultiStepLR(optimizer, milestones, gamma): the steps, "
        "comma-separated, from which the lr is multiplied by gamma. Step t uses lr₀ · gamma^k, "
        "k the number of milestones ≤ t (a milestone listed twice counts twice).",
        "multistep_gamma": "MultiStepLR: the factor the lr is multiplied by at each milestone.",
        "exponential_gamma": "ExponentialLR(optimizer, gamma): step t uses lr₀ · gamma^t. Above 1 "
        "the lr grows every step.",
        "cosine_T_max": "CosineAnnealingLR(optimizer, T_max, eta_min): step t uses eta_min + "
        "(lr₀ − eta_min) · (1 + cos(π·t / T_max)) / 2, from lr₀ at step 0 down to eta_min at "
        "step T_max, and up again after it. 0: T_max is the run's iterations.",
        "cosine_eta_min": "CosineAnnealingLR: the lowest lr, reached at step T_max.",
        "linear_start_factor": "LinearLR(optimizer, start_factor, end_factor, total_iters): step "
        "t uses lr₀ · (start_factor + (end_factor − start_factor) · min(t, total_iters) / "
        "total_iters). torch needs 0 < start_factor ≤ 1.",
        "linear_end_factor": "LinearLR: the factor of lr₀ from step total_iters on.",
        "linear_total_iters": "LinearLR: the steps over which the factor goes from start_factor "
        "to end_factor.",
        "onecycle_max_lr": "OneCycleLR(optimizer, max_lr, total_steps=iterations, ...): the peak "
        "lr. 0: the lr set above. OneCycleLR sets the lr itself from the first step on: step 0 "
        "uses max_lr / div_factor.",
        "onecycle_pct_start": "OneCycleLR: the share of the run's steps spent rising from "
        "max_lr / div_factor to max_lr, reached at step pct_start · iterations − 1 (between two "
        "steps when that is not a whole number); the lr then falls until the last step.",
        "onecycle_anneal_strategy": "OneCycleLR: cos: the lr rises and falls along half a cosine; "
        "linear: along straight lines.",
        "onecycle_div_factor": "OneCycleLR: step 0 uses max_lr / div_factor.",
        "onecycle_final_div_factor": "OneCycleLR: the last step uses "
        "max_lr / (div_factor · final_div_factor).",
        "onecycle_cycle_momentum": "OneCycleLR: on (torch's default), it also sets SGD's and "
        "RMSprop's momentum (Adam's and AdamW's beta1) at every step, from max_momentum 0.95 at "
        "step 0 down to base_momentum 0.85 at the peak and back to 0.95 at the last step, "
        "whatever the optimizer's own setting: SGD with momentum 0 trains with momentum then. "
        "Adagrad has neither, so with Adagrad switch this off.",
    }
)
CLIP_HELP = (
    "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm) between loss.backward() and "
    "optimizer.step(): norm is the L2 norm of every weight's gradient together, and each gradient "
    "is multiplied by min(1, max_norm / (norm + 1e-6)). The hand loop computes the same norm and "
    "factor. The gradient-norm chart keeps the norm before clipping. 0: no clipping."
)
ACCUMULATE_HELP = (
    "Micro-batches per optimizer step: optimizer.zero_grad() before a step's first micro-batch, "
    "then for each micro-batch loss = criterion(outputs, labels) / accumulate and "
    "loss.backward(), which adds its share to .grad; optimizer.step() after the last. Each "
    "micro-batch is one batch of the batch size above, and iterations counts optimizer steps. "
    "1: an ordinary step per batch."
)
VAL_FRACTION_HELP = (
    "The share of the rows held out for validation: round(val_fraction × rows) of them, at "
    "least one, drawn by the seed, the same rows in both loops. The loops train on the rest: the "
    "DataLoader (and the hand loader) draw their batches from the training rows only. Every "
    "eval_every steps, model.eval(), then with torch.no_grad(): val_loss = criterion(model(X_val), "
    "y_val); the hand loop runs its forward pass and loss on the same rows. 0: no validation."
)
EVAL_EVERY_HELP = (
    "Optimizer steps between validation passes: one after step eval_every, 2·eval_every, and so "
    "on. 0: about 200 passes over the run, every ⌈iterations / 200⌉ steps."
)
DROP_LAST_HELP = (
    "DataLoader(..., drop_last=True), and the hand loader's twin: when the training rows do not "
    "split into whole batches, each epoch's last, shorter batch is left out. Off: it is kept."
)


def _shown(value) -> str:
    """A scheduler keyword's value as a call writes it."""
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, (bool, str)):
        return repr(value)
    return f"{value:g}"


def loop_summary(data: lib.Dataset, cfg: lib.Config) -> list[str]:
    """The sidebar's sentences on the whole loop's options, each only where it applies: the
    schedule's call, clipping, the micro-batches of a step, the last short batch drop_last leaves
    out, and the validation split."""
    lines = []
    if cfg.scheduler is not None:
        call = ", ".join(f"{k}={_shown(v)}" for k, v in cfg.scheduler_kwargs.items())
        lines.append(f"Schedule: {SCHEDULE_CLASSES[cfg.scheduler]}(optimizer, {call}).")
    if cfg.clip_grad_norm is not None:
        lines.append(
            f"clip_grad_norm_ scales each step's gradient to a norm of at most "
            f"{cfg.clip_grad_norm:g}."
        )
    train, held = lib.engine.data.split_rows(data.m, cfg.val_fraction, cfg.seed)
    lines += _batch_lines(cfg, len(train))
    if len(held):
        passes = cfg.iterations // cfg.eval_interval
        when = (
            f"val_loss after every {cfg.eval_interval:,} steps ({passes:,} passes)"
            if passes
            else f"eval_every {cfg.eval_interval:,} is more than the {cfg.iterations:,} steps, so "
            "no validation pass runs"
        )
        lines.append(
            f"{len(held):,} of the {data.m:,} rows held out for validation, training on the other "
            f"{len(train):,}; {when}."
        )
    return lines


def _batch_lines(cfg: lib.Config, train: int) -> list[str]:
    """The micro-batches of an accumulated step and what drop_last leaves out, for `train`
    training rows."""
    b, k, lines = cfg.batch_size, cfg.accumulate, []
    short = train % b if b < train else 0  # the rows of each epoch's last batch, if it is short
    if k > 1:
        if b >= train:
            rows = f"(each all {train:,} training rows)"
        elif short and not cfg.drop_last:
            rows = f"of {b:,} rows (each epoch's last batch has {short:,})"
        else:
            rows = f"of {b:,} rows"
        lines.append(
            f"Each optimizer step sums {k:,} micro-batches {rows}, each micro-batch's loss "
            f"divided by {k:,}: {cfg.iterations * k:,} micro-batches in the run's "
            f"{cfg.iterations:,} steps."
        )
    if cfg.drop_last and short:
        lines.append(
            f"drop_last: each epoch leaves out its last, short batch of {short:,} of the "
            f"{train:,} training rows."
        )
    return lines
