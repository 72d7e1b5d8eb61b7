"""What each line of the two loops does, as text, with a check per claim that runs real code.

Each Claim's check builds the model, the loss and the batch from the learner's data and Config,
runs torch (or the hand loop), and returns Evidence: whether the sentence held and the numbers it
measured. The Code map page shows both, so the text cannot drift from what the code does.
"""

from __future__ import annotations

import inspect
import math
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import Config
from .data import Dataset
from .manual import effective_lr_ratio, hand_loss
from .optim import TORCH_NAMES, defaults
from .run import loops, run
from .torch_loop import torch_loss
from .trace import Step, Stepper

# The phase comments both loops carry, in order; each opens one row of the code map.
PHASES = ("# Reset the gradient", "# Forward pass", "# Loss", "# Backward pass", "# Update")
SETUP = "# Model"  # the comment that opens the lines before the loop


@dataclass(frozen=True)
class Row:
    """One row of the code map: a phase of the training step in both loops."""

    key: str
    title: str
    phase: str  # the comment that opens this phase in both loop functions
    manual: str  # the hand loop's key line of this phase, exactly as in its source
    torch: str  # the torch loop's line, exactly as in its source
    text: str  # what the two lines do, exactly


ROWS = (
    Row(
        "reset",
        "1. Reset the gradient",
        PHASES[0],
        "d_weights = np.zeros_like(weights)",
        "optimizer.zero_grad()",
        "The hand loop builds `d_weights` as a sum over the batch, so each step starts it from zero. "
        "`backward()` builds `.grad` the same way, by adding into it, and `optimizer.zero_grad()` is the reset. "
        "It is not automatic because adding is sometimes wanted (gradient accumulation over several batches).",
    ),
    Row(
        "forward",
        "2. Forward pass",
        PHASES[1],
        "z = inputs @ weights",
        "outputs = net(inputs)",
        "Both compute the predictions from the current weights. The hand loop's inputs carry a last column of "
        "ones, so the bias is one more weight; `net(inputs)` computes `inputs @ weight.T + bias` and, because "
        "the parameters require grad, records the graph that `backward()` will walk.",
    ),
    Row(
        "loss",
        "3. Loss",
        PHASES[2],
        "loss = criterion(z, labels)",
        "loss = criterion(outputs, labels)",
        "Both compare predictions with labels. The hand loop keeps the error `labels - h` for its gradient and "
        "computes the loss only to report it; torch keeps the loss *tensor*, the root of the graph.",
    ),
    Row(
        "backward",
        "4. Gradient",
        PHASES[3],
        "d_weights += slope(len(labels)) * (inputs.T @ error)",
        "loss.backward()",
        "The hand loop writes the derivative out: `d_weights = k · inputsᵀ · (labels − h)`, with "
        "`k = slope(m)` = 2/m for `MSELoss()`, 1/m for the ½·mean convention and 2 for a sum (m = batch size). "
        "`loss.backward()` derives the same numbers by walking the graph back from the loss, and adds them "
        "into each parameter's `.grad`.",
    ),
    Row(
        "update",
        "5. Update",
        PHASES[4],
        "optimizer.step(-d_weights)",
        "optimizer.step()",
        "The hand loop hands the gradient, `-d_weights`, to its own optimizer; for plain SGD that step is "
        "`weights -= lr * grad`, so the weights move by `+lr * d_weights` (`d_weights` points downhill). "
        "Torch's `.grad` is the gradient itself (it points uphill) and `SGD.step()` does `p -= lr * p.grad`. "
        "The same move, from opposite signs of what is stored.",
    ),
)


@dataclass(frozen=True)
class Evidence:
    """What a check measured, and whether the claim held."""

    ok: bool
    measured: dict = field(default_factory=dict)  # label -> number or short text
    note: str = ""  # one line on how it was measured


@dataclass(frozen=True)
class Claim:
    """One exact sentence about a row, and the check that tests it on real code."""

    key: str
    row: str  # Row.key
    text: str
    check: Callable[[Dataset, Config], Evidence]
    applies: Callable[[Config], bool] = lambda cfg: True  # False: the page says it does not apply
    about: Callable[[Config], bool] = lambda cfg: True  # False: not about this Config at all (another optimizer)


# ---------------------------------------------------------------- the code itself


def phase_source(func: Callable) -> dict[str, str]:
    """The lines of each phase of a loop function, dedented, keyed by its phase comment (and SETUP).

    A phase runs from its comment to the next phase comment; the last one stops before the yield.
    The lines are sliced from inspect.getsource, so they are the code that runs.
    """
    lines = inspect.getsource(func).splitlines()
    starts = {}
    for i, line in enumerate(lines):
        stripped = line.strip()
        for marker in (SETUP, *PHASES):
            if stripped.startswith(marker) and marker not in starts:
                starts[marker] = i
    missing = [m for m in (SETUP, *PHASES) if m not in starts]
    if missing:
        raise ValueError(f"{func.__name__} has no phase comment {', '.join(map(repr, missing))}")
    ends = [i for i, line in enumerate(lines) if line.strip().startswith("yield ")]
    order = sorted(starts.items(), key=lambda kv: kv[1])
    out = {}
    for (marker, start), nxt in zip(order, [*order[1:], (None, ends[-1] if ends else len(lines))], strict=True):
        out[marker] = textwrap.dedent("\n".join(lines[start : nxt[1]])).rstrip()
    return out


# ---------------------------------------------------------------- the live values of each row


def show(value, precision: int = 5) -> str:
    """A value as a short line of text: numbers to `precision` digits, long arrays cut in the middle."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return value
    if isinstance(value, (float, np.floating)):
        return f"{value:.{precision}g}"
    arr = np.asarray(value)
    text = np.array2string(arr, precision=precision, threshold=12, edgeitems=3, max_line_width=100)
    return f"{text}   # shape {arr.shape}" if arr.ndim else text


def row_values(step: Step, row: str) -> tuple[list[tuple[str, object]], list[tuple[str, object]]]:
    """The values one row's lines produced in step t: ([(name, value)] of the hand loop, [...] of torch).

    The frames are read at the yield, after the whole step, so a variable a later line changes in
    place (d_weights, weights) is shown as the row's line left it: the reset from the previous
    step's buffer, the weights before the update from the previous row of the history.
    """
    m, t = step.manual, step.torch
    grads = t.lines["grad"]
    if row == "reset":
        return (
            [("d_weights before the reset", m.reset_before), ("d_weights after", m.reset_after)],
            [(".grad before zero_grad()", t.reset_before), (".grad after", t.reset_after)],
        )
    if row == "forward":
        hand = [("inputs", m.lines["inputs"]), ("weights", m.weights_before), ("z (the predictions)", m.lines["z"])]
        twin = [
            ("inputs", t.inputs),
            ("outputs", t.lines["outputs"][:, 0]),
            ("outputs.grad_fn", t.lines["outputs.grad_fn"]),
        ]
        return hand, twin
    if row == "loss":
        return (
            [("labels", m.labels), ("error = labels - h", m.lines["error"]), ("loss", m.loss)],
            [("labels", t.labels), ("loss", t.loss), ("loss.grad_fn", t.lines["loss.grad_fn"])],
        )
    if row == "backward":
        return (
            [("d_weights (the negative gradient)", m.lines["d_weights"]), ("-d_weights", m.gradient)],
            [(f"{name}.grad", g) for name, g in grads.items()],
        )
    if row == "update":
        return (
            [("weights before", m.weights_before), ("update", m.update), ("weights after", m.weights_after)],
            [("weights before", t.weights_before), ("update", t.update), ("weights after", t.weights_after)],
        )
    raise ValueError(f"row must be one of {', '.join(r.key for r in ROWS)}; got {row!r}")


# ---------------------------------------------------------------- helpers for the checks


def _sgd(cfg: Config) -> Config:
    """cfg with plain SGD in float64 and one convention: the sentences are about that loop."""
    return cfg.replace(optimizer="sgd", optimizer_kwargs={}, torch_dtype="float64", manual_loss=None)


def _first_step(data: Dataset, cfg: Config) -> tuple[Stepper, Step]:
    """Step 0 of this configuration's run (plain SGD), and the Stepper whose generators took it."""
    stepper = Stepper(data, _sgd(cfg).replace(iterations=1), keep=1)
    return stepper, stepper.next()


def _grads(net: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {name: (None if p.grad is None else p.grad.clone()) for name, p in net.named_parameters()}


def _flat(grads: dict) -> np.ndarray:
    return np.concatenate([g.numpy().ravel() for g in grads.values()])


def _model(data: Dataset, cfg: Config, loss: str | None = None):
    """The live torch loop's own net after step 0, a criterion (the run's, or `loss`), and the step's batch."""
    stepper, _ = _first_step(data, cfg)
    f = stepper._torch.gi_frame.f_locals
    criterion = torch_loss(loss) if loss else f["criterion"]
    net = f["net"]
    for p in net.parameters():
        p.grad = None  # step 0's backward left its gradient here; each check starts from none
    return net, criterion, f["inputs"], f["labels"]


def _num(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x


# ---------------------------------------------------------------- the checks


def check_zero_grad_sets_none(data: Dataset, cfg: Config) -> Evidence:
    """After backward(), optimizer.zero_grad() leaves every .grad as None (zeros only with set_to_none=False)."""
    net, criterion, inputs, labels = _model(data, cfg)
    optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    criterion(net(inputs), labels).backward()
    had = all(g is not None for g in _grads(net).values())
    optimizer.zero_grad()
    after = _grads(net)
    criterion(net(inputs), labels).backward()
    optimizer.zero_grad(set_to_none=False)
    zeros = _grads(net)
    measured = {f"{name}.grad after zero_grad()": "None" if g is None else "a tensor" for name, g in after.items()}
    measured["with set_to_none=False"] = (
        "zeros" if all(g is not None and not g.any() for g in zeros.values()) else "not zeros"
    )
    ok = had and all(g is None for g in after.values()) and measured["with set_to_none=False"] == "zeros"
    return Evidence(ok, measured, "backward() on the first batch, then optimizer.zero_grad()")


def check_backward_adds(data: Dataset, cfg: Config) -> Evidence:
    """Two backward() calls without a reset leave twice the gradient in .grad."""
    net, criterion, inputs, labels = _model(data, cfg)
    criterion(net(inputs), labels).backward()
    once = _flat(_grads(net))
    criterion(net(inputs), labels).backward()  # a fresh forward: the same batch, no zero_grad() between
    twice = _flat(_grads(net))
    nonzero = np.abs(once) > 0
    ratios = twice[nonzero] / once[nonzero]
    if not ratios.size:
        return Evidence(False, {"|gradient|": 0.0}, "the gradient is zero at this init; the ratio is undefined")
    measured = {"second .grad / first .grad (min)": _num(ratios.min()), "(max)": _num(ratios.max())}
    return Evidence(bool(np.allclose(ratios, 2.0, rtol=1e-12)), measured, "same batch, backward() twice")


def check_hand_needs_no_loss_value(data: Dataset, cfg: Config) -> Evidence:
    """The hand loop's weights are unchanged when every loss value it computes is replaced by NaN."""
    cfg = _sgd(cfg).replace(iterations=5)
    reference = Stepper(data, cfg)
    reference.run_to(cfg.iterations - 1)
    fresh = loops(data, cfg)[0]
    arguments = dict(fresh.gi_frame.f_locals)  # a generator not yet started holds just its arguments
    real = fresh.gi_frame.f_globals[fresh.gi_code.co_name]

    def nan_loss(name):
        _, slope = hand_loss(name)
        return (lambda z, labels: math.nan), slope

    # The very code of the hand loop, with a criterion that returns NaN; other threads keep the real one.
    blind = types.FunctionType(real.__code__, {**real.__globals__, "hand_loss": nan_loss}, real.__name__)
    gen = blind(**arguments)
    losses, weights = [], []
    for _ in range(cfg.iterations):
        loss, w, _ = next(gen)
        losses.append(loss)
        weights.append(w.copy())
    diff = float(np.abs(np.array(weights) - reference.history("manual").weights[1:]).max())
    saw = "NaN" if all(map(math.isnan, losses)) else "numbers"
    measured = {"loss values the loop saw": saw, "max |Δ weights| after 5 steps": diff}
    return Evidence(saw == "NaN" and diff == 0.0, measured, f"{real.__name__} run with its loss replaced by NaN")


def check_torch_needs_loss_tensor(data: Dataset, cfg: Config) -> Evidence:
    """backward() needs the loss tensor (a plain number has no graph) but not its value (loss + c: same .grad)."""
    net, criterion, inputs, labels = _model(data, cfg)
    loss = criterion(net(inputs), labels)
    try:
        torch.tensor(loss.item()).backward()
        error = "no error"
    except RuntimeError as err:
        error = str(err).split("\n")[0]
    loss.backward()
    plain = _flat(_grads(net))
    net.zero_grad()
    (criterion(net(inputs), labels) + 1000.0).backward()
    shifted = _flat(_grads(net))
    diff = float(np.abs(plain - shifted).max())
    measured = {"torch.tensor(loss.item()).backward()": error, "max |.grad(loss) - .grad(loss + 1000)|": diff}
    return Evidence(error != "no error" and diff == 0.0, measured, "on the first batch of this run")


def check_forward_same(data: Dataset, cfg: Config) -> Evidence:
    """The hand loop's z equals net(inputs), and only torch's result carries a graph (grad_fn)."""
    _, step = _first_step(data, cfg)
    diff = float(step.diff("predictions").max())
    grad_fn = step.torch.lines["outputs.grad_fn"]
    measured = {"max |z - outputs|": diff, "outputs.grad_fn": grad_fn}
    return Evidence(diff <= 1e-10 and grad_fn != "None", measured, "step 0 of both loops")


def check_negative_gradient(data: Dataset, cfg: Config) -> Evidence:
    """The hand loop's d_weights, built from (label - h), is minus torch's .grad."""
    _, step = _first_step(data, cfg)
    d_weights = step.manual.lines["d_weights"]
    grad = np.concatenate([g.ravel() for g in step.torch.lines["grad"].values()])
    plus, minus = float(np.abs(d_weights + grad).max()), float(np.abs(d_weights - grad).max())
    measured = {"max |d_weights + .grad|": plus, "max |d_weights - .grad|": _num(minus)}
    return Evidence(plus <= 1e-10 * max(1.0, np.abs(grad).max()) and minus > 0, measured, "step 0 of both loops")


def check_same_update(data: Dataset, cfg: Config) -> Evidence:
    """weights += lr * d_weights and SGD's p -= lr * p.grad move the weights by the same amount."""
    _, step = _first_step(data, cfg)
    hand = step.manual.update
    expected = cfg.lr * step.manual.lines["d_weights"]
    diff = float(np.abs(hand - step.torch.update).max())
    measured = {
        "max |manual update - torch update|": diff,
        "max |manual update - lr * d_weights|": float(np.abs(hand - expected).max()),
    }
    scale = max(1.0, float(np.abs(hand).max()))
    return Evidence(max(measured.values()) <= 1e-10 * scale, measured, "step 0, plain SGD")


def _grad_ratio(data: Dataset, cfg: Config, loss: str, other: str) -> np.ndarray:
    grads = []
    for name in (loss, other):
        net, criterion, inputs, labels = _model(data, cfg, name)
        criterion(net(inputs), labels).backward()
        grads.append(_flat(_grads(net)))
    nonzero = np.abs(grads[1]) > 0
    return grads[0][nonzero] / grads[1][nonzero]


def check_mse_no_half(data: Dataset, cfg: Config) -> Evidence:
    """MSELoss() is the mean of squared errors with no 1/2, so its gradient is twice the 1/2-convention's."""
    net, criterion, inputs, labels = _model(data, cfg, "mse")
    outputs = net(inputs)
    value = criterion(outputs, labels).item()
    mean_sq = ((outputs - labels) ** 2).mean().item()
    ratios = _grad_ratio(data, cfg, "mse", "half_mse")
    if not ratios.size:
        return Evidence(False, {"|gradient|": 0.0}, "the gradient is zero at this init; the ratio is undefined")
    measured = {
        "MSELoss / mean((outputs - labels)²)": _num(value / mean_sq),
        "grad MSELoss / grad ½·mean": _num(ratios.mean()),
    }
    ok = math.isclose(value, mean_sq, rel_tol=1e-12) and np.allclose(ratios, 2.0, rtol=1e-12)
    return Evidence(bool(ok), measured, "on the first batch of this run")


def check_sum_times_batch(data: Dataset, cfg: Config) -> Evidence:
    """MSELoss(reduction="sum") has the batch size times the gradient of MSELoss()."""
    ratios = _grad_ratio(data, cfg, "sse", "mse")
    m = min(cfg.batch_size, data.m)
    if not ratios.size:
        return Evidence(False, {"|gradient|": 0.0}, "the gradient is zero at this init; the ratio is undefined")
    measured = {"grad sum / grad mean": _num(ratios.mean()), "batch size": m}
    return Evidence(bool(np.allclose(ratios, m, rtol=1e-12)), measured, "on the first batch of this run")


def effective_lr(data: Dataset, cfg: Config, other: str = "half_mse") -> Evidence:
    """The step size of `cfg.loss` over `other`'s: predicted by lib.effective_lr_ratio, measured from a run.

    One lib.run of one step with torch on cfg.loss and the hand loop on `other` (Config.manual_loss):
    the measured ratio is |torch's first update| / |the hand loop's first update|.
    """
    m = min(cfg.batch_size, data.m)
    predicted = effective_lr_ratio(cfg.loss, other, m)
    result = run(data, _sgd(cfg).replace(iterations=1, manual_loss=other))
    steps = [np.linalg.norm(h.weights[1] - h.weights[0]) for h in (result.torch, result.manual)]
    measured_ratio = steps[0] / steps[1] if steps[1] > 0 else math.nan
    measured = {"predicted": _num(predicted), "measured": _num(measured_ratio)}
    ok = math.isfinite(measured_ratio) and math.isclose(measured_ratio, predicted, rel_tol=1e-9)
    return Evidence(ok, measured, f"torch on {cfg.loss!r}, hand loop on {other!r}, batch of {m}, one step")


def check_effective_lr(data: Dataset, cfg: Config) -> Evidence:
    """effective_lr against the classic ½·mean hand loop (or MSELoss() when torch already uses it)."""
    return effective_lr(data, cfg, "mse" if cfg.loss == "half_mse" else "half_mse")


def _kwarg(cfg: Config, name: str):
    """The optimizer's setting `name` in this Config: the chosen value, or the hand optimizer's (torch's) default."""
    return cfg.optimizer_kwargs.get(name, defaults(cfg.optimizer).get(name))


def _plain_first_step(cfg: Config) -> bool:
    """No weight decay, no maximize, no head start in Adagrad: the first step is the optimizer's formula alone."""
    return (
        not _kwarg(cfg, "weight_decay") and not _kwarg(cfg, "maximize") and not _kwarg(cfg, "initial_accumulator_value")
    )


def first_step_prediction(cfg: Config, g: np.ndarray) -> np.ndarray:
    """The first update each optimizer makes from gradient g and zero state, worked out on paper.

    SGD: torch starts the momentum buffer at g itself (no dampening), so the step is -lr g, or -lr (1 + mu) g
    with Nesterov. Adam and AdamW: bias correction makes m_hat = g and v_hat = g^2, so -lr g / (|g| + eps).
    RMSprop: no bias correction, v = (1 - alpha) g^2, so -lr g / (sqrt(1 - alpha) |g| + eps); centered
    subtracts the mean's square, (1 - alpha)^2 g^2. Adagrad: the sum is g^2, so -lr g / (|g| + eps).
    """
    lr, name = cfg.lr, cfg.optimizer
    if name == "sgd":
        boost = 1 + _kwarg(cfg, "momentum") if _kwarg(cfg, "nesterov") else 1
        return -lr * boost * g
    eps = _kwarg(cfg, "eps")
    if name in ("adam", "adamw", "adagrad"):
        return -lr * g / (np.abs(g) + eps)
    alpha = _kwarg(cfg, "alpha")
    v = (1 - alpha) * g * g - ((1 - alpha) * g) ** 2 * bool(_kwarg(cfg, "centered"))
    return -lr * g / (np.sqrt(v) + eps)


def check_first_step(data: Dataset, cfg: Config) -> Evidence:
    """torch's first update with this Config's optimizer equals first_step_prediction of its own first gradient."""
    stepper = Stepper(data, cfg.replace(iterations=1, torch_dtype="float64", manual_loss=None), keep=1)
    step = stepper.next()
    g, update = step.torch.gradient, step.torch.update
    predicted = first_step_prediction(cfg, g)
    diff = float(np.abs(update - predicted).max())
    moved = np.abs(update[g != 0]) / cfg.lr
    measured = {
        "max |torch's update − predicted|": diff,
        "|update| / lr, smallest": _num(float(moved.min())) if moved.size else math.nan,
        "largest": _num(float(moved.max())) if moved.size else math.nan,
    }
    ok = moved.size > 0 and diff <= 1e-12 * max(1.0, float(np.abs(update).max()))
    return Evidence(bool(ok), measured, f"step 0 of this run, torch.optim.{TORCH_NAMES[cfg.optimizer]}")


CLAIMS = (
    Claim(
        "zero_grad_none",
        "reset",
        "`optimizer.zero_grad()` sets each `.grad` to `None` by default, not to a tensor of zeros; "
        "the next `backward()` then stores a fresh gradient there.",
        check_zero_grad_sets_none,
    ),
    Claim(
        "backward_adds",
        "reset",
        "`backward()` adds into `.grad`, exactly as the hand loop adds into `d_weights`: two backward passes "
        "without a reset leave twice the gradient. That is why the reset exists.",
        check_backward_adds,
    ),
    Claim(
        "forward_same",
        "forward",
        "`net(inputs)` gives the same predictions as `inputs @ weights` with a column of ones, and its result "
        "carries a `grad_fn`: the first node of the graph.",
        check_forward_same,
    ),
    Claim(
        "hand_no_loss_value",
        "loss",
        "The hand loop never needs the loss value to get its gradient: replace every loss it computes by NaN "
        "and its weights do not change.",
        check_hand_needs_no_loss_value,
    ),
    Claim(
        "torch_needs_root",
        "loss",
        "Torch needs the loss *tensor* as the root of the graph that `backward()` walks, though not its value: "
        "a plain number cannot be differentiated, and `loss + 1000` gives the same `.grad`.",
        check_torch_needs_loss_tensor,
    ),
    Claim(
        "negative_gradient",
        "backward",
        "A hand loop written with `(label - h)` holds the *negative* gradient: `d_weights == -param.grad`.",
        check_negative_gradient,
    ),
    Claim(
        "mse_no_half",
        "backward",
        "`MSELoss()` is a mean with no ½: its gradient is twice the ½-convention loop's.",
        check_mse_no_half,
    ),
    Claim(
        "sum_times_batch",
        "backward",
        '`MSELoss(reduction="sum")` multiplies the gradient of `MSELoss()` by the batch size.',
        check_sum_times_batch,
    ),
    Claim(
        "same_update",
        "update",
        "With plain SGD the hand loop moves the weights by `lr * d_weights` and `SGD.step()` by `-lr * .grad`: "
        "the same move.",
        check_same_update,
    ),
    Claim(
        "effective_lr",
        "update",
        "At the same `lr`, the loss convention scales the step: `lib.effective_lr_ratio` predicts by how much, "
        "and a real run of both conventions measures it.",
        check_effective_lr,
        lambda cfg: cfg.loss != "bce",
    ),
    Claim(
        "first_step_momentum",
        "update",
        "Torch's SGD starts the momentum buffer at the first gradient itself, without dampening, so the first "
        "step with momentum is plain SGD's `-lr * .grad` (with Nesterov, `1 + momentum` times that); the "
        "velocity builds up from the second step on.",
        check_first_step,
        about=lambda cfg: cfg.optimizer == "sgd" and bool(_kwarg(cfg, "momentum")) and _plain_first_step(cfg),
    ),
    Claim(
        "first_step_adam",
        "update",
        "Adam's first step moves every weight by almost exactly `lr`, whatever the size of its gradient: "
        "bias correction turns the moments into `g` and `g²`, so the step is `lr * g / (|g| + eps)`.",
        check_first_step,
        about=lambda cfg: cfg.optimizer in ("adam", "adamw") and _plain_first_step(cfg),
    ),
    Claim(
        "first_step_rmsprop",
        "update",
        "RMSprop has no bias correction: its running average starts at `(1 - alpha) * g²`, so the first step "
        "moves each weight by about `lr / sqrt(1 - alpha)`, ten times `lr` at the default `alpha = 0.99`.",
        check_first_step,
        about=lambda cfg: cfg.optimizer == "rmsprop" and not _kwarg(cfg, "centered") and _plain_first_step(cfg),
    ),
    Claim(
        "first_step_adagrad",
        "update",
        "Adagrad's first step moves every weight by almost exactly `lr`: the sum of squared gradients is "
        "`g²` after one step, so the step is `lr * g / (|g| + eps)`; later steps shrink as the sum grows.",
        check_first_step,
        about=lambda cfg: cfg.optimizer == "adagrad" and _plain_first_step(cfg),
    ),
)


def claims_for(row: str, cfg: Config | None = None) -> tuple[Claim, ...]:
    """The claims of one row, in order; with a Config, only those about it (its optimizer's, not another's)."""
    return tuple(c for c in CLAIMS if c.row == row and (cfg is None or c.about(cfg)))


def verify(claim: Claim, data: Dataset, cfg: Config) -> Evidence:
    """Run a claim's check; a check that cannot run is reported as failed, in words."""
    try:
        with np.errstate(all="ignore"):
            return claim.check(data, cfg)
    except Exception as err:  # the page shows the failure instead of a traceback
        return Evidence(False, {}, f"the check could not run: {type(err).__name__}: {err}")


__all__ = [
    "CLAIMS",
    "PHASES",
    "ROWS",
    "Claim",
    "Evidence",
    "Row",
    "claims_for",
    "effective_lr",
    "first_step_prediction",
    "phase_source",
    "row_values",
    "show",
    "verify",
]
