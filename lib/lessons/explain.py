"""What each line of the two loops does, as text, with a check per claim that runs real code.

Each Claim's check builds the model, the loss and the batch from the learner's data and Config,
runs torch (or the hand loop), and returns Evidence: whether the sentence held and the numbers it
measured. The Code map page shows both, so the text cannot drift from what the code does.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import dataclasses
import inspect
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..engine import data as data_module
from ..engine.config import Config
from ..engine.data import Dataset, split_rows
from ..engine.frames import arguments_of, function_of, values_of
from ..engine.lockstep import loops
from ..engine.source import compile_tree, parse
from ..engine.trace import Step, Stepper
from ..twins import manual as manual_module
from ..twins import schedules as schedules_module
from ..twins import torch_side as torch_module
from ..twins.manual import effective_lr_ratio, manual_loop
from ..twins.optim import TORCH_NAMES, defaults, torch_optimizer
from ..twins.torch_side import make_model, share_one_vector, torch_loss

# The phase comments both loops carry, in order; each opens one row of the code map.
PHASES = ("# Reset the gradient", "# Forward pass", "# Loss", "# Backward pass", "# Update")
SETUP = "# Model"  # the comment that opens the lines before the loop
SCHEDULE_NAMES = schedules_module.TORCH_NAMES  # "step" -> "StepLR", ...


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
        "neg_grad = np.zeros_like(weights)",
        "optimizer.zero_grad()",
        "The hand loop's backward line adds into `neg_grad` with `+=`, exactly as `backward()` "
        "adds into each `.grad`, so without a reset the previous step's gradient would carry "
        "over into this one. `optimizer.zero_grad()` is torch's reset. It is not automatic "
        "because adding is sometimes wanted (gradient accumulation over several micro-batches).",
    ),
    Row(
        "forward",
        "2. Forward pass",
        PHASES[1],
        "outputs = inputs @ weights",
        "outputs = net(inputs)",
        "Both compute the predictions from the current weights. The hand loop's inputs "
        "carry a last column of ones, so the bias is one more weight; `net(inputs)` "
        "computes `inputs @ weight.T + bias` and, because the parameters require grad, "
        "records the graph that `backward()` will walk.",
    ),
    Row(
        "loss",
        "3. Loss",
        PHASES[2],
        "loss = np.mean((labels - h) ** 2)",
        "loss = criterion(outputs, labels)",
        "Both compare predictions with labels. The hand loop writes the formula out and computes "
        "the loss only to report it; torch keeps the loss *tensor*, the root of the graph.",
    ),
    Row(
        "backward",
        "4. Backward pass",
        PHASES[3],
        "neg_grad += inputs.T @ delta",
        "loss.backward()",
        "The hand loop writes the derivative out: `delta = k · (labels − h)`, then "
        "`neg_grad += inputsᵀ · delta`, with `k` = 2/m for `MSELoss()` (the convention "
        "here), where m is the batch size. `loss.backward()` derives the same numbers "
        "with the opposite sign (`.grad == -neg_grad`: the gradient itself) by walking "
        "the graph back from the loss, and adds them into each parameter's `.grad`.",
    ),
    Row(
        "update",
        "5. Update",
        PHASES[4],
        "optimizer.step(-neg_grad)",
        "optimizer.step()",
        "The hand loop hands the gradient, `-neg_grad`, to its own optimizer; for plain "
        "SGD that step is `weights -= lr * grad`, so the weights move by "
        "`+lr * neg_grad` (`neg_grad` points downhill). Torch's `.grad` is the gradient "
        "itself (it points uphill) and `SGD.step()` does `p -= lr * p.grad`. The same "
        "move, from opposite signs of what is stored.",
    ),
)
# Row.text is the text for the default configuration (linear model with a bias, MSELoss(), plain
# SGD); row_text gives the one for any Config, which is what the Code map shows.

# k of each convention in words (lib.twins.manual.SLOPES has their values).
SLOPE_TEXT = MappingProxyType({"mse": "2/m", "half_mse": "1/m", "sse": "2", "bce": "1/m"})
LOSS_NAMES = MappingProxyType(
    {
        "mse": "`MSELoss()`",
        "half_mse": "the ½·mean convention",
        "sse": '`MSELoss(reduction="sum")`',
        "bce": "`BCEWithLogitsLoss()`",
    }
)


def _plain_sgd(cfg: Config) -> bool:
    """SGD with no momentum, weight decay or maximize: every step is p -= lr * grad."""
    return (
        cfg.optimizer == "sgd"
        and not any(_kwarg(cfg, k) for k in ("momentum", "weight_decay", "maximize"))
        and not _cycles_momentum(cfg)
    )


def _cycles_momentum(cfg: Config) -> bool:
    """OneCycleLR with cycle_momentum: it sets the optimizer's momentum (Adam's beta1) each step."""
    return cfg.scheduler == "onecycle" and bool(_schedule_kwargs(cfg)["cycle_momentum"])


def _step_lr(step: Step, cfg: Config) -> float:
    """The lr the step used: the schedule's (the loops' step_lr), else the Config's."""
    return step.torch.lr if step.torch.lr is not None else cfg.lr


def _reset_text(row: Row, cfg: Config) -> str:
    if cfg.zero_grad:
        return row.text
    return row.text + (
        " **In this configuration the reset is switched off in both loops** "
        "(`zero_grad=False`): each step's gradient is added to the sum of all "
        "the earlier ones."
    )


def _forward_text(row: Row, cfg: Config) -> str:
    act = cfg.activation
    if cfg.model == "mlp":
        bias = " + b1" if cfg.bias else ""
        out = " + b2" if cfg.bias else ""
        layers = f"Linear, {'Tanh' if act == 'tanh' else 'ReLU'}, Linear"
        layers += "" if cfg.bias else " (bias=False)"
        text = (
            "Both compute the predictions from the current weights, one layer at a time: by "
            f"hand `a1 = inputs @ W1.T{bias}`, `h1 = {act}(a1)`, `outputs = h1 @ W2{out}`; "
            f"`net` is an `nn.Sequential` of {layers}, and because its parameters require "
            "grad, `net(inputs)` also records the graph that `backward()` will walk. The "
            "hand loop keeps `a1` and `h1`: its backward pass needs them."
        )
    elif cfg.bias:
        text = (
            "Both compute the predictions from the current weights. The hand loop's "
            "inputs carry a last column of ones, so the bias is one more weight; "
            "`net(inputs)` computes `inputs @ weight.T + bias` and, because the "
            "parameters require grad, records the graph that `backward()` will walk."
        )
    else:
        text = (
            "Both compute the predictions from the current weights. There is no bias here: "
            "the hand loop's inputs are the features alone, and `net = nn.Linear(n, 1, "
            "bias=False)` computes `inputs @ weight.T`; because its weight requires grad, "
            "`net(inputs)` also records the graph that `backward()` will walk."
        )
    if cfg.loss == "bce":
        text += (
            " The outputs are logits: the hand loop takes `h = sigmoid(outputs)` "
            "itself, and torch leaves the sigmoid to `BCEWithLogitsLoss`."
        )
    return text


def _loss_text(row: Row, cfg: Config) -> str:
    h = "sigmoid(outputs)" if cfg.loss == "bce" else "outputs"
    return (
        f"Both compare predictions with labels (h = {h}). The hand loop writes the "
        "formula out and computes the loss only to report it; torch keeps the loss "
        "*tensor*, the root of the graph."
    ) + (
        f" With `accumulate = {cfg.accumulate}` both then divide it by {cfg.accumulate} "
        "(`loss / accumulate`): each micro-batch's share of the step's loss."
        if cfg.accumulate > 1
        else ""
    )


def _backward_text(row: Row, cfg: Config) -> str:
    why = (
        "a sum does not divide by the batch size m" if cfg.loss == "sse" else "m is the batch size"
    )
    k = f"`k` = {SLOPE_TEXT[cfg.loss]} for {LOSS_NAMES[cfg.loss]}, the convention here ({why})"
    if cfg.model == "mlp":
        text = (
            "The hand loop writes the chain rule out, from the output back to the first layer: "
            f"`delta = k · (labels − h)` is −dL/doutputs with {k}; then `dW2 += h1ᵀ · delta`, "
            f"`delta1 = delta · W2 · {cfg.activation}'(a1)` and `dW1 += delta1ᵀ · inputs`"
            + (", and the biases add up their deltas" if cfg.bias else "")
            + "."
        )
    else:
        text = (
            "The hand loop writes the derivative out: `delta = k · (labels − h)` is "
            f"−dL/doutputs, then `neg_grad += inputsᵀ · delta`, with {k}."
        )
    return (
        text
        + (
            " `loss.backward()` derives the same numbers with the opposite sign "
            "(`.grad == -neg_grad`: the gradient itself) by walking the graph back from "
            "the loss, and adds them into each parameter's `.grad`."
        )
        + (
            f" With `accumulate = {cfg.accumulate}` the hand loop divides `delta` by "
            f"{cfg.accumulate} too, the derivative of `loss / accumulate`."
            if cfg.accumulate > 1
            else ""
        )
    )


def _update_text(row: Row, cfg: Config) -> str:
    name = TORCH_NAMES[cfg.optimizer]
    clip = (
        f" Before it, both loops clip the gradient to norm {_n(cfg.clip_grad_norm)} (the "
        "clipping row below)."
        if cfg.clip_grad_norm is not None
        else ""
    )
    lr = (
        " `lr` is the step's own: the schedule sets it (the schedule row below)."
        if cfg.scheduler is not None
        else ""
    )
    if _plain_sgd(cfg):
        return row.text + clip + lr
    return (
        (
            "The hand loop hands the gradient, `-neg_grad`, to its own "
            f"`lib.optim.{name}`, which does `torch.optim.{name}`'s arithmetic in numpy; "
            "torch's `step()` reads the same gradient from each parameter's `.grad` (it "
            "points uphill; `neg_grad` points downhill) and updates the parameters in "
            "place, from the optimizer's state as well as the gradient."
        )
        + clip
        + lr
    )


_ROW_TEXTS = MappingProxyType(
    {
        "reset": _reset_text,
        "forward": _forward_text,
        "loss": _loss_text,
        "backward": _backward_text,
        "update": _update_text,
    }
)


def row_text(row: Row, cfg: Config) -> str:
    """What the row's two lines do, exactly, for this Config.

    For its model, bias, loss, optimizer and switches.
    """
    if row.key not in _ROW_TEXTS:
        raise ValueError(f"row must be one of {', '.join(r.key for r in ROWS)}; got {row.key!r}")
    return _ROW_TEXTS[row.key](row, cfg)


@dataclass(frozen=True)
class Evidence:
    """What a check measured, and whether the claim held."""

    ok: bool
    measured: dict = field(default_factory=dict)  # label -> number or short text
    note: str = ""  # one line on how it was measured
    # False: nothing to measure here (a zero gradient, say), so the sentence is not shown
    applies: bool = True


@dataclass(frozen=True)
class Claim:
    """One exact sentence about a row, and the check that tests it on real code."""

    key: str
    row: str  # Row.key
    text: str
    check: Callable[..., Evidence]  # (data, cfg, t=0): measured on step t of this run
    # False: the sentence does not apply, so it is not shown
    applies: Callable[[Config], bool] = lambda cfg: True
    # False: not about this Config at all (another optimizer)
    about: Callable[[Config], bool] = lambda cfg: True
    # the sentence for a Config, where it depends on it; else `text`
    say: Callable[[Config], str] | None = None

    def sentence(self, cfg: Config) -> str:
        """The sentence as it reads for this Config (model, bias, loss, optimizer)."""
        return self.say(cfg) if self.say is not None else self.text


# ---------------------------------------------------------------- the code itself


def phase_source(func: Callable | str, missing: str | None = None) -> dict[str, str]:
    """The lines of each phase of a loop function, dedented, keyed by its phase comment (and SETUP).

    A phase runs from its comment to the next phase comment; the last one stops before the yield.
    The lines are sliced from inspect.getsource, so they are the code that runs; or from the text
    given, such as lib.io.export.twin_sources' (the same source, less the branches a Config skips).
    A phase the text leaves out is an error, or, given `missing`, that text.
    """
    lines = (func if isinstance(func, str) else inspect.getsource(func)).splitlines()
    name = "the loop" if isinstance(func, str) else func.__name__
    starts = {}
    for i, line in enumerate(lines):
        stripped = line.strip()
        for marker in (SETUP, *PHASES):
            if stripped.startswith(marker) and marker not in starts:
                starts[marker] = i
    absent = [m for m in (SETUP, *PHASES) if m not in starts]
    if absent and missing is None:
        raise ValueError(f"{name} has no phase comment {', '.join(map(repr, absent))}")
    ends = [i for i, line in enumerate(lines) if line.strip().startswith("yield ")]
    order = sorted(starts.items(), key=lambda kv: kv[1])
    out = {}
    for (marker, start), nxt in zip(
        order, [*order[1:], (None, ends[-1] if ends else len(lines))], strict=True
    ):
        out[marker] = textwrap.dedent("\n".join(lines[start : nxt[1]])).rstrip()
    return {marker: out.get(marker, missing) for marker in (SETUP, *PHASES)}


# ---------------------------------------------------------------- the live values of each row


def show(value, precision: int = 5) -> str:
    """A value as a short line: numbers to `precision` digits, long arrays cut in the middle."""
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
    """The values one row's lines produced in step t.

    As ([(name, value)] of the hand loop, [...] of torch). The frames are read at the yield, after
    the whole step, so a variable a later line changes in place (neg_grad, weights) is shown as the
    row's line left it: the reset from the previous step's buffer, the weights before the update
    from the previous row of the history.
    """
    m, t = step.manual, step.torch
    grads = t.lines["grad"]
    if row == "reset":
        return (
            [("neg_grad before the reset", m.reset_before), ("neg_grad after", m.reset_after)],
            [(".grad before zero_grad()", t.reset_before), (".grad after", t.reset_after)],
        )
    if row == "forward":
        bce = "h" in m.lines and not np.array_equal(m.lines["h"], m.lines["outputs"])
        outputs = "outputs (the logits)" if bce else "outputs (the predictions)"
        hand = [
            ("inputs", m.lines["inputs"]),
            ("weights", m.weights_before),
            (outputs, m.lines["outputs"]),
        ]
        twin = [
            ("inputs", t.inputs),
            ("outputs", t.lines["outputs"][:, 0]),
            ("outputs.grad_fn", t.lines["outputs.grad_fn"]),
        ]
        return hand, twin
    if row == "loss":
        return (
            [("labels", m.labels), ("h", m.lines["h"]), ("loss", m.loss)],
            [("labels", t.labels), ("loss", t.loss), ("loss.grad_fn", t.lines["loss.grad_fn"])],
        )
    if row == "backward":
        return (
            [
                ("delta = −dloss/doutputs", m.lines["delta"]),
                ("neg_grad (the negative gradient)", m.lines["neg_grad"]),
                ("-neg_grad", m.gradient),
            ],
            [(f"{name}.grad", g) for name, g in grads.items()],
        )
    if row == "update":
        return (
            [
                ("weights before", m.weights_before),
                ("update", m.update),
                ("weights after", m.weights_after),
            ],
            [
                ("weights before", t.weights_before),
                ("update", t.update),
                ("weights after", t.weights_after),
            ],
        )
    raise ValueError(f"row must be one of {', '.join(r.key for r in ROWS)}; got {row!r}")


# ---------------------------------------------------------------- the step a check looks at


def _stepper_at(data: Dataset, cfg: Config, t) -> Stepper:
    """A Stepper of this very run standing on step t (or the step it diverged at, if earlier).

    t may already be such a Stepper: verify_all runs a long run to step t once and hands it to
    every check.
    """
    if isinstance(t, Stepper):
        return t
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
        raise ValueError(f"the step must be a whole number >= 0; got {t!r}")
    stepper = Stepper(data, cfg.replace(iterations=max(cfg.iterations, int(t) + 1)), keep=1)
    stepper.run_to(int(t))
    return stepper


def _step(data: Dataset, cfg: Config, t: int) -> Step:
    return _stepper_at(data, cfg, t).current


def _where(step: Step) -> str:
    return f"step {step.t} of this run"


def _grads(net: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {
        name: (None if p.grad is None else p.grad.clone()) for name, p in net.named_parameters()
    }


def _flat(grads: dict) -> np.ndarray:
    return np.concatenate([g.numpy().ravel() for g in grads.values()])


def _model(data: Dataset, cfg: Config, t: int = 0, loss: str | None = None):
    """The torch model of this Config at step t's weights (no .grad yet), a criterion (the run's, or
    `loss`), and step t's batch: built with the torch loop's own make_model and torch_loss, so it is
    the net that loop trains."""
    step = _step(data, cfg, t)
    dtype = getattr(torch, cfg.torch_dtype)
    net = make_model(cfg.layout(data.n), dtype)
    share_one_vector(net, step.torch.weights_before, dtype)
    inputs = torch.from_numpy(step.torch.inputs).to(dtype)
    labels = torch.from_numpy(step.torch.labels).to(dtype).unsqueeze(1)
    return net, torch_loss(loss or cfg.loss), inputs, labels


def _manual_gradient(step: Step, cfg: Config, loss: str) -> np.ndarray:
    """The gradient of one step of this Config's hand loop under `loss`.

    On step t's batch, from step t's weights.
    """
    m = step.manual
    layout = cfg.layout(m.inputs.shape[1])
    gen = manual_loop(
        [(m.lines["inputs"], m.labels)], m.weights_before, cfg.lr, layout=layout, loss_name=loss
    )
    return np.array(next(gen)[2])


def _dot_grad(step: Step) -> np.ndarray:
    """Every parameter's .grad at step t, flat in the weights' order.

    As the torch loop's frame held them.
    """
    return np.concatenate([g.ravel() for g in step.torch.lines["grad"].values()])


def _num(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x


def _zero(what: str, step: Step) -> Evidence:
    return Evidence(
        False,
        {"|gradient|": 0.0},
        f"{what} is zero at {_where(step)}: the ratio is undefined",
        False,
    )


# ---------------------------------------------------------------- the checks


def check_zero_grad_sets_none(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """After backward(), optimizer.zero_grad() leaves every .grad as None.

    Zeros only with set_to_none=False.
    """
    net, criterion, inputs, labels = _model(data, cfg, t)
    optimizer = torch_optimizer(cfg.optimizer, net.parameters(), cfg.lr, cfg.optimizer_kwargs)
    criterion(net(inputs), labels).backward()
    had = all(g is not None for g in _grads(net).values())
    optimizer.zero_grad()
    after = _grads(net)
    criterion(net(inputs), labels).backward()
    optimizer.zero_grad(set_to_none=False)
    zeros = _grads(net)
    measured = {
        f"{name}.grad after zero_grad()": "None" if g is None else "a tensor"
        for name, g in after.items()
    }
    measured["with set_to_none=False"] = (
        "zeros" if all(g is not None and not g.any() for g in zeros.values()) else "not zeros"
    )
    ok = (
        had
        and all(g is None for g in after.values())
        and measured["with set_to_none=False"] == "zeros"
    )
    step = _step(data, cfg, t)
    return Evidence(
        ok, measured, f"backward() on the batch of {_where(step)}, then optimizer.zero_grad()"
    )


def check_backward_adds(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """Two backward() calls without a reset leave twice the gradient in .grad."""
    net, criterion, inputs, labels = _model(data, cfg, t)
    criterion(net(inputs), labels).backward()
    once = _flat(_grads(net))
    # a fresh forward: the same batch, no zero_grad() between
    criterion(net(inputs), labels).backward()
    twice = _flat(_grads(net))
    step = _step(data, cfg, t)
    nonzero = np.abs(once) > 0
    if not nonzero.any():
        return _zero("the gradient", step)
    ratios = twice[nonzero] / once[nonzero]
    zeros_stay = bool(np.all(twice[~nonzero] == 0))
    measured = {"second .grad / first .grad (min)": _num(ratios.min()), "(max)": _num(ratios.max())}
    ok = bool(np.allclose(ratios, 2.0, rtol=1e-12)) and zeros_stay
    return Evidence(ok, measured, f"the batch of {_where(step)}, backward() twice")


def forward_text(cfg: Config) -> str:
    """The forward claim for this model and bias."""
    what = "logits (the sigmoid comes later)" if cfg.loss == "bce" else "predictions"
    reached = (
        "first from the loss"
        if cfg.loss != "half_mse"
        else "second from the loss, after the ½ that `HalfMSELoss` divides by (`DivBackward0`)"
    )
    node = (
        "and its result carries a `grad_fn`, the node the forward pass recorded last, "
        f"which `backward()` reaches {reached}."
    )
    if cfg.model == "mlp":
        b1, b2 = (" + b1", " + b2") if cfg.bias else ("", "")
        return (
            f"`net(inputs)` gives the same {what} as the hand loop's "
            f"`{cfg.activation}(inputs @ W1.T{b1}) @ W2{b2}`, " + node
        )
    ones = (
        "with a last column of ones (the bias)"
        if cfg.bias
        else "(no column of ones: there is no bias here)"
    )
    return f"`net(inputs)` gives the same {what} as `inputs @ weights` {ones}, " + node


def _steps_back(root, node) -> int | None:
    """How many edges of the graph lie between root and node, walking back (None: never reached)."""
    level, seen, depth = [root], set(), 0
    while level:
        if node in level:
            return depth
        seen.update(level)
        level = [p for n in level for p, _ in n.next_functions if p is not None and p not in seen]
        depth += 1
    return None


def check_forward_same(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """The hand loop's outputs equal net(inputs); the hand inputs have the ones column exactly when
    there is a bias (linear models) or the net has the layers named (mlp); only torch's result
    carries a graph (grad_fn)."""
    step = _step(data, cfg, t)
    diff = float(step.diff("predictions").max())
    grad_fn = step.torch.lines["outputs.grad_fn"]
    measured = {"max |manual outputs - torch outputs|": diff, "outputs.grad_fn": grad_fn}
    net, criterion, batch, labels = _model(data, cfg, t)
    outputs = net(batch)
    loss = criterion(outputs, labels)
    first = [parent for parent, _ in loss.grad_fn.next_functions if parent is not None]
    measured["loss.grad_fn's first step back"] = " + ".join(type(p).__name__ for p in first)
    depth = _steps_back(loss.grad_fn, outputs.grad_fn)
    measured["steps from loss.grad_fn back to outputs.grad_fn"] = depth
    reached = depth == (2 if cfg.loss == "half_mse" else 1)  # as forward_text says
    if cfg.model == "mlp":
        layers = [type(module).__name__ for module in net]
        measured["net"] = " → ".join(layers)
        shape_ok = layers == ["Linear", "Tanh" if cfg.activation == "tanh" else "ReLU", "Linear"]
        shape_ok = shape_ok and all(
            (layer.bias is not None) == cfg.bias for layer in (net[0], net[2])
        )
    else:
        inputs = step.manual.lines["inputs"]
        ones = inputs.shape[1] == data.n + 1 and bool(np.all(inputs[:, -1] == 1.0))
        measured["hand inputs' last column"] = "all ones" if ones else "features"
        shape_ok = (
            ones == cfg.bias
            and inputs.shape[1] == data.n + cfg.bias
            and (net.bias is not None) == cfg.bias
        )
    scale = max(1.0, float(np.abs(step.torch.predictions).max()))
    ok = diff <= 1e-10 * scale and grad_fn != "None" and shape_ok and reached
    return Evidence(bool(ok), measured, _where(step) + ", both loops")


def loss_blind_weights(
    func: Callable, arguments: dict, steps: int
) -> tuple[list[float], np.ndarray]:
    """Run a hand loop whose every loss line is made `loss = nan`.

    Returns (the losses it saw, its weights after each step).

    The function is compiled again from its own source with only the assignments to `loss` changed,
    in a copy of its globals, so nothing else runs differently and other threads keep the real one.
    """

    class Blind(ast.NodeTransformer):
        def visit_Assign(self, node: ast.Assign) -> ast.Assign:
            if any(isinstance(target, ast.Name) and target.id == "loss" for target in node.targets):
                node.value = ast.copy_location(ast.Name("nan", ast.Load()), node.value)
            return node

    tree = ast.fix_missing_locations(Blind().visit(parse(textwrap.dedent(inspect.getsource(func)))))
    scope = {**func.__globals__, "nan": math.nan}
    # the project's own source
    exec(compile_tree(tree, inspect.getsourcefile(func) or "<loop>"), scope)
    gen = scope[func.__name__](**arguments)
    losses, weights = [], []
    for _ in range(steps):
        loss, w, _ = next(gen)
        losses.append(loss)
        weights.append(np.array(w))
    return losses, np.array(weights)


def check_manual_needs_no_loss_value(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """The hand loop's weights up to step t are unchanged with every loss value replaced by NaN."""
    stepper = _stepper_at(data, cfg, t)
    steps = stepper.step + 1
    fresh = loops(data, cfg)[0]
    arguments, real = arguments_of(fresh), function_of(fresh)
    losses, weights = loss_blind_weights(real, arguments, steps)
    reference = stepper.history("manual").weights[1 : steps + 1]
    with np.errstate(invalid="ignore"):
        diff = float(np.abs(weights[:, stepper.columns] - reference).max())
    saw = "NaN" if all(map(math.isnan, losses)) else "numbers"
    measured = {
        "loss values the loop saw": saw,
        f"max |Δ weights| over steps 0 to {steps - 1}": diff,
    }
    return Evidence(
        saw == "NaN" and diff == 0.0, measured, f"{real.__name__} run with its loss replaced by NaN"
    )


def _parameters_reached(root) -> list[torch.Tensor]:
    """The leaf tensors (AccumulateGrad nodes' variables) the graph behind root reaches."""
    seen, stack, leaves = set(), [root], []
    while stack:  # a loop, not recursion: graphs can be deep
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):
            leaves.append(node.variable)
        stack.extend(parent for parent, _ in node.next_functions)
    return leaves


def root_evidence(
    net: torch.nn.Module, criterion: Callable, inputs: torch.Tensor, labels: torch.Tensor
) -> Evidence:
    """Does backward() need the loss tensor's graph but not its value? Measured on one batch.

    The graph from loss.grad_fn must reach every parameter, and overwriting the loss's value with
    NaN (loss.data, which autograd does not see) must leave .grad exactly as it was.
    """
    params = list(net.parameters())
    loss = criterion(net(inputs), labels)
    reached = _parameters_reached(loss.grad_fn)
    count = sum(any(p is leaf for leaf in reached) for p in params)

    # a parameter the graph does not reach keeps .grad None: count it as zeros
    def flat() -> np.ndarray:
        return np.concatenate(
            [(torch.zeros_like(p) if p.grad is None else p.grad).numpy().ravel() for p in params]
        )

    loss.backward()
    plain = flat()
    net.zero_grad()
    loss = criterion(net(inputs), labels)
    loss.data.fill_(math.nan)  # the value only: the graph and what its nodes saved are untouched
    loss.backward()
    blind = flat()
    with np.errstate(invalid="ignore"):
        diff = float(np.abs(plain - blind).max())
    measured = {
        "parameters the graph from loss.grad_fn reaches": f"{count} of {len(params)}",
        "max |.grad − .grad with the loss's value set to NaN|": diff,
    }
    return Evidence(count == len(params) and diff == 0.0, measured)


def check_torch_needs_loss_tensor(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """backward() needs the loss tensor but not its value.

    Its graph reaches every parameter; with the value NaN, .grad is the same.
    """
    e = root_evidence(*_model(data, cfg, t))
    return dataclasses.replace(e, note=f"on the batch of {_where(_step(data, cfg, t))}")


def sign_evidence(neg_grad: np.ndarray, grad: np.ndarray) -> Evidence:
    """neg_grad == -grad (to rounding), and not == grad.

    The hand loop's buffer is the negative gradient.
    """
    plus, minus = float(np.abs(neg_grad + grad).max()), float(np.abs(neg_grad - grad).max())
    measured = {"max |neg_grad + .grad|": plus, "max |neg_grad - .grad|": _num(minus)}
    return Evidence(bool(plus <= 1e-10 * max(1.0, np.abs(grad).max()) and minus > 0), measured)


def check_negative_gradient(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """The hand loop's neg_grad, built from (label - h), is minus torch's .grad at step t."""
    step = _step(data, cfg, t)
    grad = _dot_grad(step)
    if not np.any(grad):
        return _zero("the gradient", step)
    e = sign_evidence(step.manual.lines["neg_grad"], grad)
    return dataclasses.replace(e, note=_where(step) + ", both loops")


def check_mse_no_half(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """MSELoss() is the mean of squared errors with no 1/2.

    Its gradient is twice the hand ½·mean loop's.
    """
    net, criterion, inputs, labels = _model(data, cfg, t, "mse")
    outputs = net(inputs)
    loss = criterion(outputs, labels)
    mean_sq = ((outputs - labels) ** 2).mean().item()
    loss.backward()
    torch_grad = _flat(_grads(net))
    step = _step(data, cfg, t)
    hand = _manual_gradient(step, cfg, "half_mse")
    nonzero = np.abs(hand) > 0
    if not nonzero.any():
        return _zero("the gradient", step)
    ratios = torch_grad[nonzero] / hand[nonzero]
    measured = {
        "MSELoss / mean((outputs - labels)²)": (
            _num(loss.item() / mean_sq) if mean_sq else math.nan
        ),
        "torch's MSELoss .grad / the hand ½·mean gradient": _num(ratios.mean()),
    }
    ok = math.isclose(loss.item(), mean_sq, rel_tol=1e-12) and np.allclose(ratios, 2.0, rtol=1e-9)
    return Evidence(bool(ok), measured, f"the batch and weights of {_where(step)}")


def check_sum_times_batch(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """MSELoss(reduction="sum") has the batch size times the gradient of MSELoss()."""
    grads = []
    for name in ("sse", "mse"):
        net, criterion, inputs, labels = _model(data, cfg, t, name)
        criterion(net(inputs), labels).backward()
        grads.append(_flat(_grads(net)))
    step = _step(data, cfg, t)
    nonzero = np.abs(grads[1]) > 0
    if not nonzero.any():
        return _zero("the gradient", step)
    ratios = grads[0][nonzero] / grads[1][nonzero]
    m = len(step.torch.labels)
    measured = {"grad sum / grad mean": _num(ratios.mean()), "batch size": m}
    return Evidence(
        bool(np.allclose(ratios, m, rtol=1e-12)),
        measured,
        f"the batch and weights of {_where(step)}",
    )


def check_same_update(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """weights += lr * neg_grad by hand, SGD's p -= lr * p.grad in torch.

    Each as written, and the same move.
    """
    step = _step(data, cfg, t)
    torch_grad = _dot_grad(step)
    neg_grad = step.manual.lines["neg_grad"]
    lr = _step_lr(step, cfg)
    measured = {
        "max |torch update + lr * .grad|": float(np.abs(step.torch.update + lr * torch_grad).max()),
        "max |manual update - lr * neg_grad|": float(
            np.abs(step.manual.update - lr * neg_grad).max()
        ),
        "max |manual update - torch update|": float(
            np.abs(step.manual.update - step.torch.update).max()
        ),
    }
    scale = max(1.0, float(np.abs(step.torch.weights_before).max()))
    return Evidence(
        max(measured.values()) <= 1e-10 * scale, measured, _where(step) + ", both loops"
    )


def _kwarg(cfg: Config, name: str):
    """The optimizer's setting `name` in this Config.

    The chosen value, or the hand optimizer's (torch's) default.
    """
    return cfg.optimizer_kwargs.get(name, defaults(cfg.optimizer).get(name))


ADAPTIVE = ("adam", "adamw", "rmsprop", "adagrad")  # they divide by a running size of the gradient


def first_step_prediction(
    cfg: Config, g: np.ndarray, weights: np.ndarray | None = None, lr: float | None = None
) -> np.ndarray:
    """The first update each optimizer makes from gradient g, weights w and zero state, on paper.

    maximize turns g into -g; weight decay adds wd * w to it (AdamW and decoupled Adam instead
    shrink w by lr * wd first). SGD: torch starts the momentum buffer at g itself (no dampening), so
    the step is -lr g, or -lr (1 + mu) g with Nesterov. Adam and AdamW: bias correction makes
    m_hat = g and v_hat = g^2, so -lr g / (|g| + eps). RMSprop: no bias correction,
    v = (1 - alpha) g^2, so -lr g / (sqrt(1 - alpha) |g| + eps); centered subtracts the mean's
    square, (1 - alpha)^2 g^2. Adagrad: the sum is initial_accumulator_value + g^2.
    """
    lr, name = (cfg.lr if lr is None else lr), cfg.optimizer  # lr: the step's (a schedule's)
    g = np.asarray(g, dtype=np.float64)
    w = np.zeros_like(g) if weights is None else np.asarray(weights, dtype=np.float64)
    g = -g if _kwarg(cfg, "maximize") else g
    wd = _kwarg(cfg, "weight_decay") or 0.0
    decoupled = name == "adamw" or (name == "adam" and _kwarg(cfg, "decoupled_weight_decay"))
    shrink = -lr * wd * w if decoupled else 0.0
    if not decoupled:
        g = g + wd * w
    if name == "sgd":
        boost = 1 + _kwarg(cfg, "momentum") if _kwarg(cfg, "nesterov") else 1
        return -lr * boost * g
    eps = _kwarg(cfg, "eps")
    if name in ("adam", "adamw"):
        return shrink - lr * g / (np.abs(g) + eps)
    if name == "adagrad":
        return -lr * g / (np.sqrt(_kwarg(cfg, "initial_accumulator_value") + g * g) + eps)
    alpha = _kwarg(cfg, "alpha")
    v = (1 - alpha) * g * g - ((1 - alpha) * g) ** 2 * bool(_kwarg(cfg, "centered"))
    return -lr * g / (np.sqrt(v) + eps)


def effective_lr(data: Dataset, cfg: Config, other: str = "half_mse") -> Evidence:
    """How much larger the first step is under `cfg.loss` than under `other`.

    With this Config's own optimizer. One lib.run of one step with torch on cfg.loss and the hand
    loop on `other` (Config.manual_loss). The gradients differ by c = lib.effective_lr_ratio; the
    prediction is |first_step_prediction(c g)| / |first_step_prediction(g)|, which is c for SGD and
    close to 1 for the adaptive optimizers (they divide by the gradient's own size, so only eps
    tells c g from g). Measured: |torch's first update| / |the hand loop's|.
    """
    stepper = Stepper(
        data, cfg.replace(iterations=1, manual_loss=other, torch_dtype="float64"), keep=1
    )
    step = stepper.next()
    c = effective_lr_ratio(cfg.loss, other, len(step.manual.labels))
    g, w = step.manual.gradient, step.manual.weights_before
    if cfg.optimizer == "sgd" and not _kwarg(cfg, "weight_decay"):
        predicted = c  # SGD's step is linear in the gradient (momentum's first step too)
    else:
        with np.errstate(all="ignore"):
            below = float(np.linalg.norm(first_step_prediction(cfg, g, w)))
            predicted = (
                float(np.linalg.norm(first_step_prediction(cfg, c * g, w))) / below
                if below > 0
                else math.nan
            )
    steps = [np.linalg.norm(s.update) for s in (step.torch, step.manual)]
    measured_ratio = float(steps[0] / steps[1]) if steps[1] > 0 else math.nan
    measured = {"gradient factor c": c, "predicted": predicted, "measured": measured_ratio}
    ok = math.isfinite(measured_ratio) and math.isclose(measured_ratio, predicted, rel_tol=1e-9)
    note = (
        f"torch on {cfg.loss!r}, hand loop on {other!r}, batch of {len(step.manual.labels)}, "
        "the first step"
    )
    return Evidence(ok, measured, note)


def _compares_conventions(cfg: Config) -> bool:
    """Whether the step of two loss conventions differs by lib.effective_lr_ratio's factor alone:
    not for bce, maximize, clipping (it scales both to max_norm) or accumulation (the factor of
    the sum convention is a micro-batch's size, which can differ between them)."""
    return (
        cfg.loss != "bce"
        and not _kwarg(cfg, "maximize")
        and cfg.clip_grad_norm is None
        and cfg.accumulate == 1
    )


def effective_lr_text(cfg: Config) -> str:
    """The sentence on how the loss convention scales the step, for this optimizer."""
    if cfg.optimizer in ADAPTIVE:
        name = TORCH_NAMES[cfg.optimizer]
        return (
            "At the same `lr`, the loss convention scales the *gradient* by the factor "
            f"`lib.effective_lr_ratio` gives, but hardly the step: `{name}` divides each gradient "
            "by a running root mean square of the gradient itself, so the factor cancels but for "
            "`eps`. A real first step of both conventions measures it against that prediction."
        )
    return (
        "At the same `lr`, the loss convention scales the step: the gradients differ by the factor "
        "`lib.effective_lr_ratio` gives, and SGD's step is `lr` times the gradient"
        + (
            " (plus weight decay, which the factor does not scale)"
            if _kwarg(cfg, "weight_decay")
            else ""
        )
        + ". A real first step of both conventions measures it."
    )


def check_effective_lr(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """effective_lr against the classic ½·mean hand loop (or MSELoss() if torch already uses it)."""
    return effective_lr(data, cfg, "mse" if cfg.loss == "half_mse" else "half_mse")


def _plain_first_step(cfg: Config) -> bool:
    """No weight decay, no maximize, no head start in Adagrad.

    The first step is then the optimizer's formula alone.
    """
    return (
        not _kwarg(cfg, "weight_decay")
        and not _kwarg(cfg, "maximize")
        and not _kwarg(cfg, "initial_accumulator_value")
    )


FAR = 1e3  # |g| >= FAR * eps: "far above eps", where |g| / (|g| + eps) is within 0.1 % of 1


def first_step_evidence(
    cfg: Config,
    g: np.ndarray,
    update: np.ndarray,
    weights: np.ndarray | None = None,
    lr: float | None = None,
) -> Evidence:
    """Does a first update match first_step_prediction?

    And, for the adaptive optimizers, the sentence's numbers? Every weight counts: one far above eps
    must move by the sentence's multiple of lr to 0.1 %, one with g = 0 must not move, and none may
    move by more than that multiple.
    """
    lr = cfg.lr if lr is None else lr
    predicted = first_step_prediction(cfg, g, weights, lr)
    diff = float(np.abs(update - predicted).max())
    ok = diff <= 1e-12 * max(1.0, float(np.abs(update).max()))
    measured = {"max |torch's update − predicted|": diff}
    if cfg.optimizer in ADAPTIVE:
        eps, multiple = _kwarg(cfg, "eps"), first_step_multiple(cfg)
        moved = np.abs(update) / (lr * multiple)
        far, zero = np.abs(g) >= FAR * eps, g == 0
        measured[f"weights moved by {multiple:.4g}·lr (to 0.1 %)"] = f"{int(far.sum())} of {g.size}"
        measured["moved less (|g| near or below eps)"] = int((~far & ~zero).sum())
        measured["not moved (g = 0)"] = int(zero.sum())
        ok = ok and bool(np.all(np.abs(moved[far] - 1) <= 1e-3) and np.all(update[zero] == 0))
        ok = ok and bool(np.all(moved <= 1 + 1e-9))
    return Evidence(bool(ok), measured)


def first_step_multiple(cfg: Config) -> float:
    """|first update| / lr of a weight whose gradient is far above eps.

    1, or 1 / sqrt(1 - alpha) for RMSprop.
    """
    if cfg.optimizer == "rmsprop":
        return 1 / math.sqrt(1 - _kwarg(cfg, "alpha"))
    return 1.0


def check_first_step(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """torch's first update with this Config's optimizer equals first_step_prediction.

    Of its own first gradient, that is.

    With momentum, the buffer is also checked: the gradient itself after step 0, and
    momentum · buffer + (1 − dampening) · g after step 1.
    """
    stepper = Stepper(
        data, cfg.replace(iterations=max(2, cfg.iterations), torch_dtype="float64"), keep=2
    )
    step = stepper.next()
    e = first_step_evidence(
        cfg, step.torch.gradient, step.torch.update, step.torch.weights_before, _step_lr(step, cfg)
    )
    measured, ok = dict(e.measured), e.ok
    if cfg.optimizer == "sgd" and _kwarg(cfg, "momentum"):
        buffers = [dict((k, twin) for _, k, _, twin in step.optimizer_state)["momentum_buffer"]]
        first_g = step.torch.gradient.copy()
        second = stepper.next()
        buffers.append(
            dict((k, twin) for _, k, _, twin in second.optimizer_state)["momentum_buffer"]
        )
        mu, damp = _kwarg(cfg, "momentum"), _kwarg(cfg, "dampening")
        expected = mu * first_g + (1 - damp) * second.torch.gradient
        measured["max |buffer after step 0 − g|"] = float(np.abs(buffers[0] - first_g).max())
        measured["max |buffer after step 1 − (momentum·buffer + (1 − dampening)·g)|"] = float(
            np.abs(buffers[1] - expected).max()
        )
        scale = max(1.0, float(np.abs(expected).max()))
        ok = ok and measured["max |buffer after step 0 − g|"] == 0.0
        ok = (
            ok
            and measured["max |buffer after step 1 − (momentum·buffer + (1 − dampening)·g)|"]
            <= 1e-12 * scale
        )
    return Evidence(
        ok, measured, f"the first step of this run, torch.optim.{TORCH_NAMES[cfg.optimizer]}"
    )


def rmsprop_text(cfg: Config) -> str:
    """RMSprop's first-step sentence at this Config's alpha.

    For another optimizer, at torch's default alpha.
    """
    alpha = cfg.optimizer_kwargs.get("alpha", defaults("rmsprop")["alpha"])
    multiple = 1 / math.sqrt(1 - alpha) if alpha < 1 else math.inf
    return (
        "RMSprop has no bias correction: its running average starts at `(1 - alpha) * g²`, "
        "so the first step is `lr * g / (sqrt(1 - alpha) * |g| + eps)`: every weight whose "
        f"gradient is far above `eps` moves by `lr / sqrt(1 - alpha)`, {multiple:.4g} "
        f"times `lr` at `alpha = {alpha:g}`, whatever the size of its gradient; one with a "
        "gradient near or below `eps` moves less, and one with `g = 0` not at all."
    )


# ---------------------------------------------------------------- the rest of the loop


@dataclass(frozen=True)
class LoopRow:
    """One row of the code map for a line of the whole loop beyond the five: its twin, and when the
    configuration on screen runs it."""

    key: str
    title: str
    manual: str  # the hand twin, as the row's heading names it
    torch: str  # the torch line, as the row's heading names it
    shown: Callable[[Config], bool]  # False: the configuration does not run this line


LOOP_ROWS = (
    LoopRow(
        "loader",
        "The batches",
        "loader(...): an index permutation per epoch",
        "DataLoader(TensorDataset(...), sampler=SharedOrder(...), batch_size=None)",
        lambda cfg: True,
    ),
    LoopRow(
        "modes",
        "Training and evaluation mode",
        "(nothing)",
        "net.train() / net.eval()",
        lambda cfg: True,
    ),
    LoopRow(
        "accumulate",
        "Gradient accumulation",
        "loss / accumulate, summed in neg_grad",
        "loss / accumulate; backward() per micro-batch",
        lambda cfg: cfg.accumulate > 1,
    ),
    LoopRow(
        "clip",
        "Gradient clipping",
        "clip_grad_norm_(neg_grad, max_norm)",
        "nn.utils.clip_grad_norm_(net.parameters(), max_norm)",
        lambda cfg: cfg.clip_grad_norm is not None,
    ),
    LoopRow(
        "schedule",
        "The learning-rate schedule",
        "scheduler.step(): the schedule's formula",
        "scheduler.step()",
        lambda cfg: cfg.scheduler is not None,
    ),
    LoopRow(
        "validation",
        "Validation without a graph",
        "evaluate(...): the forward pass and the loss alone",
        "with torch.no_grad(): criterion(net(X_val), y_val)",
        lambda cfg: cfg.val_fraction > 0,
    ),
)
_LOOP_ROW = MappingProxyType({r.key: r for r in LOOP_ROWS})


def loop_rows_for(cfg: Config) -> tuple[LoopRow, ...]:
    """The rows of the whole loop's lines that this configuration runs, in the loop's order."""
    return tuple(r for r in LOOP_ROWS if r.shown(cfg))


def _n(x) -> str:
    """A number exactly as Python writes it back (0.1, not 0.1000000000000000055)."""
    return repr(float(x)) if isinstance(x, (float, np.floating)) else str(x)


def _train_rows(data: Dataset, cfg: Config) -> tuple[int, int]:
    """(training rows, held-out rows) of this Config's split."""
    train, held_out = split_rows(data.m, cfg.val_fraction, cfg.seed)
    return len(train), len(held_out)


def _loader_text(data: Dataset, cfg: Config) -> str:
    m, held = _train_rows(data, cfg)
    b = cfg.batch_size
    rows = f"the {m:,} training rows" + (f" (the {held:,} held-out rows are never in one)"
                                         if held else "")  # fmt: skip
    if b >= m:
        order = (
            f"With a batch size of {b:,}, at least the {m:,} training rows, every batch is all of "
            "them in their own order: there is no permutation to draw."
        )
    else:
        full, rest = divmod(m, b)
        batches = f"{full:,} batch{'es' if full != 1 else ''}"
        order = f"Each epoch is one permutation of {rows}, cut into {batches} of {b:,}"
        if rest and cfg.drop_last:
            order += f"; `drop_last=True` drops the last {rest:,} rows of each permutation."
        else:
            order += f" and a last one of {rest:,}." if rest else "."
    steps = (f" An optimizer step takes {cfg.accumulate} consecutive batches (its micro-batches)."
             if cfg.accumulate > 1 else "")  # fmt: skip
    return (
        "Both loops' `for` line runs over the same batches. The hand loop's "
        "`batches` is `lib.engine.data.loader`, which indexes `inputs[idx], labels[idx]` with "
        "the indices `epoch_batches` draws; torch's is `lib.engine.data.torch_loader`, a real "
        "`DataLoader(TensorDataset(X, y), sampler=SharedOrder(...), batch_size=None)` iterated "
        f"epoch after epoch. {order}{steps} `SharedOrder` is a sampler that yields whole batches "
        "of indices, drawn from the same generator as the hand loader's (the seed's batch "
        "generator), and `batch_size=None` turns the DataLoader's own batching off, so one "
        "indexing call, `dataset[idx]`, makes each batch. The textbook "
        f"`DataLoader(dataset, batch_size={b}, shuffle=True)` fetches a batch's samples one by "
        "one and stacks them, and draws its permutation from torch's own generator, so its "
        "batches could not be the hand loop's."
    )


def _model_words(cfg: Config) -> str:
    if cfg.model == "mlp":
        act = "Tanh" if cfg.activation == "tanh" else "ReLU"
        return f"an `nn.Sequential` of Linear, {act}, Linear"
    return "one `nn.Linear`"


def _modes_text(data: Dataset, cfg: Config) -> str:
    where = "`net.train()` runs at the top of every batch"
    if cfg.val_fraction > 0:
        where += " and `net.eval()` before every validation pass"
    else:
        where += " (`net.eval()` is not in this configuration: there is no validation pass)"
    return (
        f"{where}. The hand loop has no twin for them, because here they change nothing: they "
        "only set each module's `.training` flag, and only some layers read it: `nn.Dropout` "
        "(random zeros in training, none in evaluation) and batch norm (the batch's own mean "
        "and variance in training, running estimates in evaluation). This model, "
        f"{_model_words(cfg)}, has none of them, so the hand loop's one forward pass serves "
        "both. Keep the calls in a loop of your own: add dropout or batch norm and they matter."
    )


def _accumulate_text(data: Dataset, cfg: Config) -> str:
    k, b = cfg.accumulate, cfg.batch_size
    reset = (
        "`zero_grad()` runs on its first only (`i % accumulate == 0`)"
        if cfg.zero_grad
        else "`zero_grad()` is switched off here, so the sum also carries every earlier step's"
    )
    return (
        f"With `accumulate = {k}` one optimizer step takes {k} micro-batches of (up to) {b:,} "
        f"rows: {reset}; each micro-batch's loss is divided by {k} (`loss / accumulate`) before "
        "`backward()`, which adds its gradient into `.grad`; and `step()` runs after the last "
        "(`(i + 1) % accumulate == 0`). The gradient the step uses is the sum of the scaled "
        "gradients, the mean of the micro-batches' gradients. The hand loop keeps the same "
        "running sum in `neg_grad` (its `delta / accumulate` is the derivative of "
        "`loss / accumulate`), and `step_loss` adds up the scaled losses: the loss the run "
        "records for the step."
    )


def _clip_text(data: Dataset, cfg: Config) -> str:
    c = _n(cfg.clip_grad_norm)
    return (
        f"After the step's last `backward()`, `clip_grad_norm_(net.parameters(), {c})` takes one "
        "norm over every parameter's gradient together, `norm = sqrt(Σ g²)`, and multiplies "
        f"every `.grad` in place by `clip_coef = {c} / (norm + 1e-6)`, clamped to at most 1: a "
        f"gradient longer than {c} is scaled to (just under) length {c}, a shorter one is left "
        "as it is, and the direction never changes. The hand `clip_grad_norm_` does the same "
        "to `neg_grad`. Both return the norm before clipping, which the run records as "
        "`grad_norm`."
    )


def _schedule_text(data: Dataset, cfg: Config) -> str:
    name = SCHEDULE_NAMES[cfg.scheduler]
    settings = ", ".join(f"{k}={v!r}" for k, v in cfg.scheduler_kwargs.items())
    text = (
        f"`scheduler.step()`, after every `optimizer.step()`, sets the next step's lr: torch's "
        f"`{name}(optimizer, {settings})` writes it into `optimizer.param_groups[0]['lr']`, the "
        f"hand `lib.twins.schedules.{name}` into the hand optimizer's `lr`. Both compute it from "
        "the previous lr, as torch does (its chainable form), so they agree to the last bits; "
        f"the closed formula is {schedule_formula(cfg)[0]}, t counting optimizer steps from 0. "
        "`step_lr` is the lr the step used, read before `scheduler.step()` changes it."
    )
    if cfg.scheduler == "onecycle" and _schedule_kwargs(cfg)["cycle_momentum"]:
        what = "beta1" if cfg.optimizer in ("adam", "adamw") else "momentum"
        text += f" `OneCycleLR` also cycles the optimizer's {what} the other way, in both loops."
    return text


def _validation_text(data: Dataset, cfg: Config) -> str:
    _, held = _train_rows(data, cfg)
    e = cfg.eval_interval
    passes = cfg.iterations // e
    return (
        f"Every {e:,} optimizer step{'s' if e != 1 else ''} ({passes:,} pass"
        f"{'es' if passes != 1 else ''} in this run of {cfg.iterations:,}) both loops take the "
        f"loss on the {held:,} held-out rows (`val_fraction = {_n(cfg.val_fraction)}`), which no "
        "batch ever contains. Torch calls `net.eval()` and runs the forward pass and the loss "
        "under `torch.no_grad()`, which records no graph: nothing will call `backward()` on it, "
        "and a graph would keep every intermediate tensor alive until the result is dropped. "
        "The hand loop's twin is `evaluate(...)`: the forward pass and the loss alone, with no "
        "backward pass; numpy records nothing, so it needs no switch."
    )


_LOOP_TEXTS = MappingProxyType(
    {
        "loader": _loader_text,
        "modes": _modes_text,
        "accumulate": _accumulate_text,
        "clip": _clip_text,
        "schedule": _schedule_text,
        "validation": _validation_text,
    }
)


def loop_row_text(row: LoopRow | str, cfg: Config, data: Dataset) -> str:
    """What a line of the whole loop and its twin do, exactly, for this Config and data."""
    key = row.key if isinstance(row, LoopRow) else row
    if key not in _LOOP_TEXTS:
        raise ValueError(f"row must be one of {', '.join(_LOOP_TEXTS)}; got {key!r}")
    return _LOOP_TEXTS[key](data, cfg)


# ---------------------------------------------------------------- the rest of the loop: its code


def source_lines(text: str, needles: tuple[str, ...], blocks: tuple[str, ...] = (),
                 unless: tuple[str, ...] = ()) -> str | None:  # fmt: skip
    """The lines of a loop's text (from its `# Model` comment on) whose code holds a needle, with
    the comments just above them, and the whole body of a header that holds one of `blocks`;
    leaving out lines that hold one of `unless`. Gaps read as `...`; None when nothing matches.

    The lines are the text's own, so what the Code map shows is the source that runs."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith(SETUP)), 0)
    keep: set[int] = set()
    for i in range(start, len(lines)):
        code = lines[i].split("  #")[0]
        if not code.strip() or code.strip().startswith("#") or any(u in code for u in unless):
            continue
        if any(n in code for n in (*needles, *blocks)):
            keep.add(i)
        if any(n in code for n in blocks) and code.rstrip().endswith(":"):
            indent = len(code) - len(code.lstrip())
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
                keep.add(j)
                j += 1
    for i in sorted(keep):  # the comments that introduce a kept line
        j = i - 1
        while j > start and lines[j].strip().startswith("#") and not _is_phase(lines[j]):
            keep.add(j)
            j -= 1
    if not keep:
        return None
    out, last = [], None
    for i in sorted(keep):
        if last is not None and i != last + 1:
            out.append(" " * _indent(lines[i]) + "...")
        out.append(lines[i])
        last = i
    return textwrap.dedent("\n".join(out)).rstrip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_phase(line: str) -> bool:
    return any(line.strip().startswith(marker) for marker in (SETUP, *PHASES))


# (needles, blocks, unless) of each row's lines in the loops: (hand, torch); None: no twin line
_LINES = MappingProxyType(
    {
        "loader": (((" in enumerate(batches)", " in batches:"),),) * 2,
        "modes": (None, (("net.train()", "net.eval()"),)),
        "accumulate": (
            (("accumulate", "step_loss", " in enumerate(batches)"), ("i % accumulate == 0",),
             ("validation",)),
        ) * 2,
        "clip": ((("clip_grad_norm_(",), ("clip_grad_norm is not None",)),) * 2,
        "schedule": ((("scheduler", "step_lr"), (), ("def ",)),) * 2,
        "validation": (((), ("validation is not None",)),) * 2,
    }
)  # fmt: skip
NO_TWIN = "# (no line: numpy has no training or evaluation mode)"


def _helpers(key: str, cfg: Config) -> tuple[list, list]:
    """The functions a row's lines call, as (title, function or class), (hand, torch)."""
    if key == "loader":
        return (
            [("lib.engine.data.loader", data_module.loader),
             ("lib.engine.data.epoch_batches", data_module.epoch_batches)],
            [("lib.engine.data.torch_loader", data_module.torch_loader),
             ("lib.engine.data.SharedOrder", data_module.SharedOrder)],
        )  # fmt: skip
    if key == "clip":
        return [("lib.twins.manual.clip_grad_norm_", manual_module.clip_grad_norm_)], []
    if key == "schedule":
        name = SCHEDULE_NAMES[cfg.scheduler]
        return [(f"lib.twins.schedules.{name}", schedules_module.MANUAL[cfg.scheduler])], []
    if key == "validation":
        return [("lib.twins.manual.evaluate", manual_module.evaluate)], []
    return [], []


def loop_row_code(
    row: LoopRow | str, cfg: Config, hand_text: str | None = None, torch_text: str | None = None
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The code of one row, as [(title, code)] for (the hand loop, torch): its lines in the loops
    (from the texts given, such as lib.io.export.twin_sources', else the whole functions), then
    the functions they call, read with inspect. A line the given text lacks is looked for in the
    whole function, the code that runs."""
    key = row.key if isinstance(row, LoopRow) else row
    if key not in _LINES:
        raise ValueError(f"row must be one of {', '.join(_LINES)}; got {key!r}")
    sides = []
    for spec, text, func, helpers in zip(
        _LINES[key], (hand_text, torch_text), (manual_loop, torch_module.torch_loop),
        _helpers(key, cfg), strict=True,
    ):  # fmt: skip
        blocks = []
        if spec is None:
            blocks.append((f"In {func.__name__}", NO_TWIN))
        else:
            found = None if text is None else source_lines(text, *spec)
            found = found or source_lines(inspect.getsource(func), *spec)
            blocks.append((f"In {func.__name__}", found or "# (no line in this configuration)"))
        blocks += [(title, inspect.getsource(obj).rstrip()) for title, obj in helpers]
        sides.append(blocks)
    return sides[0], sides[1]


def loop_row_values(step: Step, key: str) -> tuple[list, list]:
    """The values a row's lines produced in the step: ([(name, value)] of the hand loop, torch's).

    Empty for the modes row: they compute nothing."""
    m, t = step.manual, step.torch
    if key == "loader":
        return tuple(
            [("rows of the batch (Dataset rows)", s.indices), ("inputs", s.inputs)] for s in (m, t)
        )
    if key == "modes":
        return [], []
    if key == "accumulate":
        return tuple(
            [(f"micro-batch {j} rows", rows) for j, rows in enumerate(s.micro_indices)]
            + [("loss (the last micro-batch's share)", s.loss), ("step_loss", s.step_loss)]
            for s in (m, t)
        )
    if key == "clip":
        return tuple(
            [("norm (before clipping)", s.norm), ("min(1, max_norm / (norm + 1e-6))",
             s.clip_factor), ("‖gradient step() used‖", float(np.linalg.norm(s.gradient)))]
            for s in (m, t)
        )  # fmt: skip
    if key == "schedule":
        return tuple([("step_lr (the lr this step used)", s.lr)] for s in (m, t))
    if key == "validation":
        return tuple(
            [("val_loss", s.val_loss if s.val_loss is not None else
              "(this step does not evaluate)")] for s in (m, t)
        )  # fmt: skip
    raise ValueError(f"row must be one of {', '.join(_LINES)}; got {key!r}")


# ---------------------------------------------------------------- the rest of the loop: checks


def check_loader_rows(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """Both loops received the same rows at step t: the hand loader's (its `idx`), the
    DataLoader's (its sampler's last batch), and the shared order drawn again beside them; and
    the inputs each loop read are those rows of the Dataset."""
    step = _step(data, cfg, t)
    m, tw = step.manual, step.torch
    shared = np.asarray(m.micro_indices[-1]) if m.micro_indices else np.zeros(0, dtype=int)
    same = np.array_equal(m.indices, tw.indices) and np.array_equal(m.indices, shared)
    dtype = np.float32 if cfg.torch_dtype == "float32" else np.float64
    X, y = data.X[m.indices], data.y[m.indices]
    with np.errstate(invalid="ignore"):
        hand_gap = max(float(np.abs(m.inputs - X).max()), float(np.abs(m.labels - y).max()))
        twin_gap = max(
            float(np.abs(tw.inputs - X.astype(dtype)).max()),
            float(np.abs(tw.labels - y.astype(dtype)).max()),
        )
    which = " (the step's last micro-batch)" if cfg.accumulate > 1 else ""
    measured = {
        f"hand loader's rows{which}": m.indices,
        f"DataLoader's rows{which}": tw.indices,
        "the same rows, in the same order": "yes" if same else "no",
        "max |hand inputs, labels − the Dataset's rows|": hand_gap,
        "max |torch inputs, labels − the Dataset's rows|": twin_gap,
    }
    ok = same and len(shared) == len(m.indices) and hand_gap == 0.0 and twin_gap == 0.0
    return Evidence(bool(ok), measured, _where(step) + ", both loaders")


def loader_text(cfg: Config) -> str:
    """The sentence on the rows both loops received, for this configuration."""
    what = "each micro-batch of the step" if cfg.accumulate > 1 else "the step's batch"
    return (
        f"At this step both loops received the same rows of the data set, in the same order "
        f"({what}; shown: the last): the hand loader's slice of its permutation and the "
        "DataLoader's batch from `SharedOrder`, whose inputs are those rows of the Dataset."
    )


class _CountingTensorDataset(TensorDataset):
    """A TensorDataset that counts how often it is indexed (in its own `calls`)."""

    def __getitem__(self, index):
        self.calls = getattr(self, "calls", 0) + 1
        return super().__getitem__(index)


def fetch_calls(torch_batches) -> tuple[int, object, int]:
    """How many times a torch loop's DataLoader indexes its dataset for one batch, measured on the
    DataLoader itself: (calls, the loader, rows of that batch). torch_batches is a fresh
    lib.engine.data.torch_loader generator; it is started, and its dataset counted from then on."""
    next(torch_batches)  # starts it: the DataLoader now exists in its frame
    loader = torch_batches.gi_frame.f_locals["loader"]
    loader.dataset.__class__ = _CountingTensorDataset  # this fresh copy only
    loader.dataset.calls = 0
    inputs, _ = next(torch_batches)
    return loader.dataset.calls, loader, len(inputs)


def check_loader_one_index(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """The torch loop's DataLoader indexes its TensorDataset once per batch; the textbook
    DataLoader(batch_size=b, shuffle=True) indexes it once per sample."""
    twin = loops(data, cfg)[1]  # a fresh copy of this run's torch loop
    calls, loader, rows = fetch_calls(arguments_of(twin)["batches"])
    tensors = loader.dataset.tensors
    b = min(cfg.batch_size, len(tensors[0]))  # the same batch size, by the textbook
    generator = torch.Generator().manual_seed(cfg.seed)
    textbook = DataLoader(
        _CountingTensorDataset(*tensors), batch_size=b, shuffle=True, generator=generator
    )
    first = next(iter(textbook))
    measured = {
        "the torch loop's DataLoader": f"batch_size={loader.batch_size}, sampler="
        f"{type(loader.sampler).__name__}, dataset {type(loader.dataset).__bases__[0].__name__}",
        "dataset indexing calls for one batch": calls,
        "rows in that batch": rows,
        f"calls with DataLoader(batch_size={textbook.batch_size}, shuffle=True)": (
            textbook.dataset.calls
        ),
        "rows in its batch": len(first[0]),
    }
    ok = loader.batch_size is None and calls == 1 and textbook.dataset.calls == len(first[0])
    return Evidence(bool(ok), measured, "one batch of a fresh copy of this run's torch loader")


LOADER_ONE_INDEX = (
    "The DataLoader indexes its `TensorDataset` once per batch (`batch_size=None`, with a "
    "sampler of whole batches); `DataLoader(batch_size=b, shuffle=True)` indexes it once per "
    "sample, b times, and stacks the results."
)


def _reads_training(module: torch.nn.Module) -> bool:
    """Whether the module's own forward reads `.training` (dropout, batch norm), from its source."""
    try:
        tree = parse(textwrap.dedent(inspect.getsource(type(module).forward)))
    except (OSError, TypeError):  # no source: assume it may
        return True
    return any(isinstance(n, ast.Attribute) and n.attr == "training" for n in ast.walk(tree))


def mode_evidence(net: torch.nn.Module, inputs: torch.Tensor, seed: int = 0) -> Evidence:
    """Are train() and eval() no-ops for this net? No module's forward reads .training, and its
    outputs on the inputs are equal, to the bit, in training and in evaluation mode."""
    readers = [type(m).__name__ for m in net.modules() if _reads_training(m)]
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # a dropout's draws stay here
        torch.manual_seed(seed)
        net.train()
        trained = net(inputs)
        net.eval()
        evaluated = net(inputs)
    diff = float((trained - evaluated).abs().max())
    measured = {
        "modules whose forward reads .training": ", ".join(readers) or "none",
        "max |outputs in train mode − outputs in eval mode|": diff,
    }
    return Evidence(not readers and diff == 0.0, measured)


def check_modes_no_op(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """net.train() and net.eval() change nothing for this model (on step t's batch and weights)."""
    net, _, inputs, _ = _model(data, cfg, t)
    e = mode_evidence(net, inputs, cfg.seed)
    return dataclasses.replace(
        e, note=f"this model at the weights and batch of {_where(_step(data, cfg, t))}"
    )


def modes_text(cfg: Config) -> str:
    """The sentence on why the modes change nothing for this model."""
    return (
        f"`net.train()` and `net.eval()` only set the `.training` flag of each module; no module "
        f"of this model ({_model_words(cfg)}) reads it in its forward pass, so its outputs on "
        "this step's batch are the same in both modes, to the bit."
    )


def modes_matter_evidence(inputs: torch.Tensor, layers=None, seed: int = 0) -> Evidence:
    """Do the modes change what dropout and batch norm compute? Measured on the inputs: each layer
    in training mode and in eval mode (a fresh nn.Dropout(0.5) and nn.BatchNorm1d by default)."""
    if layers is None:
        layers = (torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(inputs.shape[1], dtype=inputs.dtype))
    measured, ok = {}, True
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for layer in layers:
            name = type(layer).__name__
            layer.eval()
            evaluated = layer(inputs)
            layer.train()
            try:
                diff = float((layer(inputs) - evaluated).abs().max())
            except ValueError as err:  # batch norm refuses one row in training mode
                measured[f"{name} in train mode"] = f"refused: {err}"
                continue
            measured[f"{name}: max |train-mode − eval-mode output|"] = diff
            ok = ok and diff > 0
    return Evidence(ok, measured)


def check_modes_matter(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """With dropout or batch norm the modes differ: measured on step t's batch."""
    _, _, inputs, _ = _model(data, cfg, t)
    e = modes_matter_evidence(inputs, seed=cfg.seed)
    return dataclasses.replace(
        e, note=f"nn.Dropout(0.5) and nn.BatchNorm1d on the inputs of {_where(_step(data, cfg, t))}"
    )


MODES_MATTER = (
    "They matter for dropout and batch norm: on this step's inputs, `nn.Dropout(0.5)` zeroes "
    "some values and doubles the rest in training mode and passes them unchanged in eval "
    "mode, and `nn.BatchNorm1d` normalises by the batch's own mean and variance in training "
    "mode (it refuses a batch of one row) and by its running estimates in eval mode."
)


def _watched_step(cfg: Config) -> int:
    """The first step after step 0 that ends with a validation pass (the net exists only once
    step 0 has run, so a hook can watch no earlier pass)."""
    e = cfg.eval_interval
    return e - 1 if e > 1 else 1


def watched_validation(data: Dataset, cfg: Config) -> tuple[int, list, tuple]:
    """Run a fresh copy of this run's torch loop to its first validation pass after step 0, with a
    forward hook on its net: (that step, each call of the net as (was it the validation inputs,
    grad enabled, output's grad_fn, output.requires_grad, net.training)), the net, the criterion,
    the validation tensors). The hook goes on after step 0, once the net exists."""
    twin = loops(data, cfg)[1]
    validation = arguments_of(twin)["validation"]
    next(twin)
    net, criterion = values_of(twin, "net", "criterion").values()
    calls = []

    def hook(module, args, output):
        calls.append((args[0] is validation[0], torch.is_grad_enabled(), output.grad_fn,
                      output.requires_grad, module.training))  # fmt: skip

    handle = net.register_forward_hook(hook)
    target = _watched_step(cfg)
    try:
        for _ in range(target):
            next(twin)
    finally:
        handle.remove()
    return target, calls, (net, criterion, validation)


def check_no_graph(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """The torch loop's validation forward pass builds no graph (its output has grad_fn None and
    requires_grad False, grad mode off); the same pass without torch.no_grad() builds one that
    reaches every parameter. The net is in eval mode there and in train mode on the batches."""
    if _watched_step(cfg) >= cfg.iterations:
        note = f"this run of {cfg.iterations:,} steps has no validation pass after step 0 to watch"
        return Evidence(False, {}, note, False)
    target, calls, (net, criterion, (X_val, y_val)) = watched_validation(data, cfg)
    val = [c for c in calls if c[0]]
    train = [c for c in calls if not c[0]]
    if not val:
        return Evidence(False, {"validation calls seen": 0}, f"steps 1 to {target} of this run")
    _, grad_on, grad_fn, requires, training = val[-1]
    loss = criterion(net(X_val), y_val)  # the same line, without no_grad()
    params = list(net.parameters())
    reached = _parameters_reached(loss.grad_fn)
    count = sum(any(p is leaf for leaf in reached) for p in params)
    measured = {
        "validation output's grad_fn": type(grad_fn).__name__ if grad_fn is not None else "None",
        "its requires_grad": requires,
        "grad mode during it": "on" if grad_on else "off",
        "without torch.no_grad(): the loss's grad_fn": type(loss.grad_fn).__name__,
        "parameters its graph reaches": f"{count} of {len(params)}",
        "net.training: on the batches / in validation": f"{train[-1][4] if train else '?'} / "
        f"{training}",
    }
    ok = grad_fn is None and not requires and not grad_on and loss.grad_fn is not None
    ok = ok and count == len(params) and not training and bool(train) and train[-1][4]
    note = f"the validation pass after step {target} of a fresh copy of this run, its net watched"
    return Evidence(bool(ok), measured, note)


NO_GRAPH = (
    "Under `torch.no_grad()` the validation forward pass records no graph: its output has "
    "`grad_fn` None and `requires_grad` False, so nothing is kept for a backward pass; the same "
    "line without it builds a graph that reaches every parameter. `net.eval()` has put the net "
    "in evaluation mode for it, and `net.train()` back for the batches."
)


def check_val_loss_twin(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """Every validation pass up to step t: the hand evaluate() equals torch's no_grad loss."""
    stepper = _stepper_at(data, cfg, t)
    n = (stepper.step + 1) // cfg.eval_interval
    if n == 0:
        first = cfg.eval_interval - 1
        return Evidence(
            False, {}, f"no validation pass yet: the first follows step {first:,}", False
        )
    hand = stepper.history("manual").val_loss[:n]
    twin = stepper.history("torch").val_loss[:n]
    with np.errstate(invalid="ignore"):
        diff = float(np.abs(hand - twin).max())
        scale = max(1.0, float(np.abs(twin).max()))
    measured = {
        "validation passes so far": n,
        "last val_loss (hand, torch)": f"{hand[-1]:.10g}, {twin[-1]:.10g}",
        "max |hand − torch| over them": diff,
    }
    return Evidence(bool(diff <= 1e-10 * scale), measured, f"steps 0 to {stepper.step} of this run")


VAL_LOSS_TWIN = (
    "At every validation pass so far the hand `evaluate(...)` gives the held-out loss that "
    "torch computes under `no_grad()`, to within 1e-10 of its size: the same forward pass and "
    "loss, without a graph in either loop."
)


def clip_evidence(step: Step, micro, max_norm: float) -> Evidence:
    """Did both loops clip step t as clip_grad_norm_ does? The norm each returned equals the norm
    of the unclipped gradient (its micro-batches run again and summed); the gradient step() used
    is that sum times min(1, max_norm / (norm + 1e-6)), the same direction."""
    m, t = step.manual, step.torch
    factor = min(1.0, max_norm / (t.norm + 1e-6))
    clipped = factor < 1.0
    measured = {
        "norm clip_grad_norm_ returned (hand, torch)": f"{m.norm:.10g}, {t.norm:.10g}",
        "clip factor min(1, max_norm / (norm + 1e-6))": factor,
        "this step": f"clipped: every gradient × {factor:.6g}"
        if clipped
        else f"not clipped: its norm is at most {_n(max_norm)}, factor 1",
        "‖gradient step() used‖": float(np.linalg.norm(t.gradient)),
    }
    gaps = [*micro.norm_gap, *micro.gradient_gap]
    measured["max relative gap (norm of the sum; factor × sum − gradient used)"] = float(max(gaps))
    scale = max(1.0, abs(t.norm))
    ok = abs(m.norm - t.norm) <= 1e-10 * scale and all(g <= 1e-10 for g in gaps)
    ok = ok and max(abs(m.clip_factor - factor), abs(t.clip_factor - factor)) <= 1e-12
    ok = ok and t.clip_gap <= 1e-10 and m.clip_gap <= 1e-10
    return Evidence(bool(ok), measured)


def check_clip(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """clip_grad_norm_ at step t, in both loops, against the gradient rebuilt from its parts."""
    stepper = _stepper_at(data, cfg, t)
    step = stepper.current
    e = clip_evidence(step, stepper.micro_batches(step.t), cfg.clip_grad_norm)
    return dataclasses.replace(e, note=_where(step) + ", both loops")


def clip_text(cfg: Config) -> str:
    """The clipping sentence at this max_norm."""
    c = "max_norm" if cfg.clip_grad_norm is None else _n(cfg.clip_grad_norm)
    return (
        f"Both loops clip as `clip_grad_norm_(..., {c})` does: the norm they return is the "
        "gradient's before clipping, and the gradient `step()` uses is that gradient times "
        f"`min(1, {c} / (norm + 1e-6))`, in the same direction."
    )


def _schedule_kwargs(cfg: Config) -> dict:
    """The scheduler's keywords as torch reads them: the Config's, then torch's defaults."""
    defaults_ = schedules_module.torch_keywords(cfg.scheduler)
    kept = {k: v for k, v in defaults_.items() if v is not inspect.Parameter.empty}
    return {**kept, **cfg.scheduler_kwargs}


def _onecycle(cfg: Config, kw: dict) -> tuple[str, Callable[[int], float]]:
    """OneCycleLR's closed form: phases of (last step, lr from, lr to), annealed in each."""
    total = kw["total_steps"] or kw["epochs"] * kw["steps_per_epoch"]
    top, p = kw["max_lr"], kw["pct_start"]
    start = top / kw["div_factor"]
    low = start / kw["final_div_factor"]
    ends = [float(p * total) - 1]
    lrs = [(start, top)]
    if kw["three_phase"]:
        ends.append(float(2 * p * total) - 2)
        lrs.append((top, start))
        lrs.append((start, low))
    else:
        lrs.append((top, low))
    ends.append(total - 1)
    cos = kw["anneal_strategy"] == "cos"

    def anneal(a: float, b: float, pct: float) -> float:
        return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1) if cos else a + (b - a) * pct

    def lr(t: int) -> float:
        begin = 0.0
        for i, end in enumerate(ends):
            if t <= end or i == len(ends) - 1:
                return anneal(*lrs[i], (t - begin) / (end - begin))
            begin = end
        raise AssertionError("unreachable")

    shape = "a half cosine" if cos else "a straight line"
    text = (
        f"`lr_t` going from {_n(start)} (max_lr / div_factor) to {_n(top)} (max_lr) by step "
        f"{_n(ends[0])} and then to {_n(low)} by step {_n(ends[-1])}"
        + (f" (via {_n(start)} at step {_n(ends[1])})" if kw["three_phase"] else "")
        + f", along {shape} in each phase"
    )
    return text, lr


def schedule_formula(cfg: Config) -> tuple[str, Callable[[int], float]]:
    """The closed form of this Config's schedule, in words with its numbers, and as a function of
    the step t (from 0): torch's documented formulas, written here apart from both loops."""
    kw, lr0, name = _schedule_kwargs(cfg), cfg.lr, cfg.scheduler
    if name == "step":
        g, s = kw["gamma"], kw["step_size"]
        return f"`lr_t = {_n(lr0)} · {_n(g)}^⌊t / {s}⌋`", lambda t: lr0 * g ** (t // s)
    if name == "multistep":
        g, ms = kw["gamma"], sorted(kw["milestones"])
        text = f"`lr_t = {_n(lr0)} · {_n(g)}^(milestones ≤ t)`, milestones {list(ms)}"
        return text, lambda t: lr0 * g ** bisect.bisect_right(ms, t)
    if name == "exponential":
        g = kw["gamma"]
        return f"`lr_t = {_n(lr0)} · {_n(g)}^t`", lambda t: lr0 * g**t
    if name == "cosine":
        T, lo = kw["T_max"], kw["eta_min"]
        text = f"`lr_t = {_n(lo)} + ({_n(lr0)} − {_n(lo)}) · (1 + cos(π t / {T})) / 2`"
        return text, lambda t: lo + (lr0 - lo) * (1 + math.cos(math.pi * t / T)) / 2
    if name == "linear":
        a, b, n = kw["start_factor"], kw["end_factor"], kw["total_iters"]
        text = f"`lr_t = {_n(lr0)} · ({_n(a)} + ({_n(b)} − {_n(a)}) · min(t, {n}) / {n})`"
        return text, lambda t: lr0 * (a + (b - a) * min(t, n) / n)
    if name == "onecycle":
        return _onecycle(cfg, kw)
    raise ValueError(f"no schedule in this configuration (scheduler={name!r})")


def schedule_evidence(step: Step, cfg: Config) -> Evidence:
    """The lr step t used: the same in both loops (to rounding) and equal to the closed form."""
    formula = schedule_formula(cfg)[1]
    expected = formula(step.t)
    hand, twin = step.manual.lr, step.torch.lr
    scale = max(abs(expected), 1e-300)
    measured = {
        "lr this step used (hand, torch)": f"{hand!r}, {twin!r}",
        f"the formula at t = {step.t}": expected,
        "|hand − torch| / lr": abs(hand - twin) / scale,
        "|torch − formula| / lr": abs(twin - expected) / scale,
    }
    ok = abs(hand - twin) <= 1e-12 * scale and abs(twin - expected) <= 1e-9 * scale
    return Evidence(bool(ok), measured)


def check_schedule(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """The scheduler's lr at step t, in both loops, against its closed form."""
    step = _step(data, cfg, t)
    return dataclasses.replace(schedule_evidence(step, cfg), note=_where(step) + ", both loops")


def schedule_text(cfg: Config) -> str:
    """The schedule sentence for this Config."""
    return (
        f"The lr this step used is the same in both loops, torch's "
        f"`optimizer.param_groups[0]['lr']` and the hand optimizer's `lr`, and equal to "
        f"`{SCHEDULE_NAMES.get(cfg.scheduler, 'the scheduler')}`'s formula at this step (to 1e-9 "
        "of its size: the "
        "loops compute it step from step, the formula at once)."
    )


def accumulation_evidence(micro) -> Evidence:
    """Does the gradient of an accumulated step equal the sum of its micro-batches' scaled
    gradients (the mean of their gradients; with clipping, that times the clip factor) and its
    loss the sum of the scaled losses, in both loops?"""
    measured = {
        "micro-batches": micro.accumulate,
        "rows in each": ", ".join(str(len(r)) for r in micro.rows),
        "max |Σ gradient shares − gradient step() used| (hand, torch), relative": ", ".join(
            f"{g:.3g}" for g in micro.gradient_gap
        ),
        "|Σ loss shares − step_loss| (hand, torch), relative": ", ".join(
            f"{g:.3g}" for g in micro.loss_gap
        ),
    }
    if not np.allclose(micro.factor, 1.0):
        measured["clip factor applied to the sum (hand, torch)"] = ", ".join(
            f"{f:.6g}" for f in micro.factor
        )
    return Evidence(bool(micro.adds_up), measured)


def check_accumulation(data: Dataset, cfg: Config, t: int = 0) -> Evidence:
    """Step t's micro-batches, each run again alone, add up to the step's gradient and loss."""
    stepper = _stepper_at(data, cfg, t)
    step = stepper.current
    e = accumulation_evidence(stepper.micro_batches(step.t))
    note = _where(step) + ", each micro-batch run again alone by both loop functions"
    return dataclasses.replace(e, note=note)


def accumulation_text(cfg: Config) -> str:
    """The accumulation sentence for this Config."""
    k = cfg.accumulate
    extra = ""
    if not cfg.zero_grad:
        extra += ", on top of what the earlier steps left (`zero_grad` is off)"
    if cfg.clip_grad_norm is not None:
        extra += ", then scaled by the clip factor"
    return (
        f"The gradient `step()` used is the sum of the {k} micro-batches' gradients of "
        f"`loss / {k}`, the mean of their gradients{extra}; the step's loss is the sum of the "
        f"{k} scaled losses. Measured by running each micro-batch again alone from the step's "
        "weights."
    )


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
        "`backward()` adds into `.grad`, exactly as the hand loop adds into `neg_grad`: two "
        "backward passes without a reset leave twice the gradient. That is why the reset exists.",
        check_backward_adds,
    ),
    Claim(
        "forward_same",
        "forward",
        forward_text(Config()),
        check_forward_same,
        say=forward_text,
    ),
    Claim(
        "manual_no_loss_value",
        "loss",
        "The hand loop never needs the loss value to get its gradient: replace every "
        "loss it computes by NaN and its weights do not change.",
        check_manual_needs_no_loss_value,
    ),
    Claim(
        "torch_needs_root",
        "loss",
        "Torch needs the loss *tensor*, not its value: `backward()` starts from its `grad_fn` and "
        "walks a graph that reaches every parameter, and with the loss's value overwritten by NaN "
        "it gives the same `.grad`, since each node uses the tensors it saved on the way forward.",
        check_torch_needs_loss_tensor,
    ),
    Claim(
        "negative_gradient",
        "backward",
        "A hand loop written with `(label - h)` holds the *negative* gradient: "
        "`neg_grad == -param.grad`.",
        check_negative_gradient,
    ),
    Claim(
        "mse_no_half",
        "backward",
        "`MSELoss()` is the mean of squared errors with no ½: its gradient is twice that "
        "of the classic ½·mean convention (`half_mse`), measured against the hand loop "
        "run with that convention on this step's batch.",
        check_mse_no_half,
        about=lambda cfg: cfg.loss != "bce",
    ),
    Claim(
        "sum_times_batch",
        "backward",
        '`MSELoss(reduction="sum")` multiplies the gradient of `MSELoss()` by the batch size.',
        check_sum_times_batch,
        about=lambda cfg: cfg.loss != "bce",
    ),
    Claim(
        "same_update",
        "update",
        "With plain SGD the hand loop moves the weights by `lr * neg_grad` and "
        "`SGD.step()` by `-lr * .grad`: the same move.",
        check_same_update,
        about=_plain_sgd,
    ),
    Claim(
        "effective_lr",
        "update",
        effective_lr_text(Config()),
        check_effective_lr,
        about=_compares_conventions,
        say=effective_lr_text,
    ),
    Claim(
        "first_step_momentum",
        "update",
        "Torch's SGD starts the momentum buffer at the first gradient itself, without "
        "dampening, so the first step with momentum is plain SGD's `-lr * .grad` (with "
        "Nesterov, `1 + momentum` times that); from the second step on, the buffer is "
        "`momentum * buffer + (1 - dampening) * .grad`.",
        check_first_step,
        about=lambda cfg: (
            cfg.optimizer == "sgd"
            and bool(_kwarg(cfg, "momentum"))
            and _plain_first_step(cfg)
            and not _cycles_momentum(cfg)
        ),
    ),
    Claim(
        "first_step_adam",
        "update",
        "Adam's first step is `lr * g / (|g| + eps)` for each weight, since bias correction "
        "turns the moments into `g` and `g²`: every weight whose gradient is far above "
        "`eps` moves by almost exactly `lr`, whatever the size of its gradient; one with a "
        "gradient near or below `eps` moves less, and one with `g = 0` not at all.",
        check_first_step,
        about=lambda cfg: (
            cfg.optimizer in ("adam", "adamw") and _plain_first_step(cfg) and _kwarg(cfg, "eps") > 0
        ),
    ),
    Claim(
        "first_step_rmsprop",
        "update",
        rmsprop_text(Config(optimizer="rmsprop")),
        check_first_step,
        about=lambda cfg: (
            cfg.optimizer == "rmsprop"
            and not _kwarg(cfg, "centered")
            and _plain_first_step(cfg)
            and _kwarg(cfg, "alpha") < 1
            and _kwarg(cfg, "eps") > 0
        ),
        say=rmsprop_text,
    ),
    Claim(
        "first_step_adagrad",
        "update",
        "Adagrad's first step is `lr * g / (|g| + eps)`, since the sum of squared "
        "gradients is `g²` after one step: every weight whose gradient is far above `eps` "
        "moves by almost exactly `lr`; one with a gradient near or below `eps` moves "
        "less, and one with `g = 0` not at all. Later steps shrink as the sum grows.",
        check_first_step,
        about=lambda cfg: (
            cfg.optimizer == "adagrad" and _plain_first_step(cfg) and _kwarg(cfg, "eps") > 0
        ),
    ),
    Claim(
        "loader_same_rows",
        "loader",
        loader_text(Config()),
        check_loader_rows,
        say=loader_text,
    ),
    Claim("loader_one_index", "loader", LOADER_ONE_INDEX, check_loader_one_index),
    Claim("modes_no_op", "modes", modes_text(Config()), check_modes_no_op, say=modes_text),
    Claim("modes_matter", "modes", MODES_MATTER, check_modes_matter),
    Claim(
        "accumulate_sum",
        "accumulate",
        accumulation_text(Config(accumulate=2)),
        check_accumulation,
        applies=_LOOP_ROW["accumulate"].shown,
        say=accumulation_text,
    ),
    Claim(
        "clip_factor",
        "clip",
        clip_text(Config(clip_grad_norm=1.0)),
        check_clip,
        applies=_LOOP_ROW["clip"].shown,
        say=clip_text,
    ),
    Claim(
        "schedule_lr",
        "schedule",
        schedule_text(Config(scheduler="exponential", scheduler_kwargs={"gamma": 0.99})),
        check_schedule,
        applies=_LOOP_ROW["schedule"].shown,
        say=schedule_text,
    ),
    Claim(
        "no_graph", "validation", NO_GRAPH, check_no_graph, applies=_LOOP_ROW["validation"].shown
    ),
    Claim(
        "val_loss_twin",
        "validation",
        VAL_LOSS_TWIN,
        check_val_loss_twin,
        applies=_LOOP_ROW["validation"].shown,
    ),
)


def claims_for(row: str, cfg: Config | None = None) -> tuple[Claim, ...]:
    """The claims of one row, in order.

    With a Config, only those about it (its optimizer's, not another's).
    """
    return tuple(
        c for c in CLAIMS if c.row == row and (cfg is None or (c.about(cfg) and c.applies(cfg)))
    )


def verify(claim: Claim, data: Dataset, cfg: Config, t: int | Stepper = 0) -> Evidence:
    """Run a claim's check on step t of this run.

    A check that cannot run is reported as failed, in words.
    """
    try:
        with np.errstate(all="ignore"):
            if len(inspect.signature(claim.check).parameters) < 3:
                return claim.check(data, cfg)
            return claim.check(data, cfg, _stepper_at(data, cfg, t))
    except Exception as err:  # the page shows the failure instead of a traceback
        return Evidence(False, {}, f"the check could not run: {type(err).__name__}: {err}")


def verify_all(data: Dataset, cfg: Config, t: int = 0) -> dict[str, Evidence]:
    """Every claim about this Config, checked on step t of its run (run once, for all of them)."""
    claims = [c for c in CLAIMS if c.about(cfg) and c.applies(cfg)]
    try:
        at = _stepper_at(data, cfg, t)
    except Exception as err:  # as verify: in words, on every claim
        return {
            c.key: Evidence(False, {}, f"the check could not run: {type(err).__name__}: {err}")
            for c in claims
        }
    return {c.key: verify(c, data, cfg, at) for c in claims}


# ---------------------------------------------------------------- agreement over the whole run

AGREE = (
    1e-12  # relative difference below which the two loops "agree": a few thousand float64 roundings
)
# How every page (and the exported script) names the two measures of how far apart the loops are.
DIFF_NAME = "largest |manual − torch|"
RELATIVE_NAME = "relative: ÷ max(1, largest |w|)"


def relative(diff: float, weights: np.ndarray) -> float:
    """A difference relative to the weights' size: diff / max(1, the largest finite |weight|)."""
    weights = np.abs(np.asarray(weights, dtype=np.float64))
    finite = weights[np.isfinite(weights)]
    return float(diff) / max(1.0, float(finite.max()) if finite.size else 1.0)


def agreement(result) -> dict:
    """Where a finished run's two loops agree and where they part, relative to the weights' size.

    relative[t] = max |manual − torch| over every weight after step t, divided by max(1, the largest
    |weight| recorded then). Returns steps, the largest absolute and relative difference, and
    `parts_at`: the first step whose relative difference exceeds AGREE (None if none), with the
    torch loop's gradient norm there.
    """
    diff = np.asarray(result.step_diff[1:], dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        size = np.nanmax(np.abs(result.torch.weights[1 : len(diff) + 1]), axis=1, initial=0.0)
        relative = diff / np.maximum(size, 1.0)
    over = np.flatnonzero(relative > AGREE)
    first = int(over[0]) if over.size else None
    finite = relative[np.isfinite(relative)]
    return {
        "steps": len(diff),
        "max_abs": result.max_abs_diff,
        "max_relative": float(finite.max()) if finite.size else math.nan,
        "parts_at": first,
        "grad_norm_there": None if first is None else float(result.torch.grad_norm[first]),
        "diff_there": None if first is None else float(diff[first]),
    }


def agreement_text(result, a: dict | None = None) -> str:
    """One paragraph, from the run itself, on how closely the two loops agree.

    And from which step they part. a: agreement(result), when the caller has it already.
    """
    a = agreement(result) if a is None else a
    if not a["steps"]:
        return "The run has no steps yet."
    if a["parts_at"] is None:
        return (
            f"In this run of {a['steps']:,} steps the two agree at every step to within "
            f"{AGREE:g} of the weights' size (the largest difference, relative to max(1, "
            f"|largest weight|), is {a['max_relative']:.2g})."
        )
    text = (
        f"In this run the two agree to within {AGREE:g} of the weights' size up to step "
        f"{a['parts_at'] - 1:,}"
        if a["parts_at"]
        else f"In this run the two differ by more than {AGREE:g} of the weights' size from step 0"
    )
    text += (
        f"; from step {a['parts_at']:,}, where the gradient norm is "
        f"{a['grad_norm_there']:.2g}, they part (difference {a['diff_there']:.2g} there, "
        f"{a['max_abs']:.2g} at most over the run"
    )
    cfg = result.config
    text += f", {a['max_abs'] / cfg.lr:.2g} × lr)." if cfg.optimizer in ADAPTIVE else ")."
    if cfg.optimizer in ADAPTIVE:
        text += (
            " Both loops round in their last bits in different places; once the gradient is that "
            f"small, the rounding is a large part of it, and `{TORCH_NAMES[cfg.optimizer]}`, which "
            "divides the gradient by its own running size, turns it into steps of the order of lr."
        )
    return text


# ---------------------------------------------------------------- a run that grows without bound

GROWTH = 100.0  # a loss this many times its first value is diverging, even while it is still finite


def loss_growth(result) -> dict | None:
    """Where the torch loop's loss first exceeds GROWTH × its step-0 value.

    Returns the step, the loss there, the largest loss and the decades. None when it never does (or
    the first loss is 0 or not finite). Both loops agree to rounding, so one suffices.
    """
    loss = np.asarray(result.torch.loss, dtype=np.float64)
    if not loss.size or not math.isfinite(loss[0]) or loss[0] <= 0:
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        over = np.flatnonzero(np.isfinite(loss) & (loss > GROWTH * loss[0]))
    if not over.size:
        return None
    finite = loss[np.isfinite(loss)]
    largest = float(finite.max())
    return {
        "step": int(over[0]),
        "loss_there": float(loss[over[0]]),
        "first": float(loss[0]),
        "largest": largest,
        "decades": math.floor(math.log10(largest / loss[0])),
    }


def growth_warning(data: Dataset, result) -> str | None:
    """A sentence for a run whose loss has grown by orders of magnitude, with this data's stability
    limit of plain SGD when there is one (a linear model with a squared loss). None when the loss
    did not grow so."""
    g = loss_growth(result)
    if g is None:
        return None
    text = (
        f"Diverging: the loss grew ×10^{g['decades']} since step 0 (from {g['first']:.3g} "
        f"to {g['largest']:.3g}; past {GROWTH:g}× its first value from step {g['step']:,})."
    )
    cfg = result.config
    limit = None
    if cfg.model == "linear" and cfg.loss != "bce" and _plain_sgd(cfg):
        from .pitfalls import stability_limit  # a lesson of its own; only this sentence needs it

        with contextlib.suppress(ValueError):
            limit = stability_limit(data, cfg)
    if limit is not None and math.isfinite(limit):
        batch = (
            "full batch" if cfg.batch_size >= data.m else f"batches of {cfg.batch_size}, on average"
        )
        text += (
            " The stability limit of plain SGD for this data and loss is "
            f"lr = {limit:.4g} (2/λ_max, {batch})"
        )
        text += f"; this run's lr is {cfg.lr:g}, {cfg.lr / limit:.3g}× the limit."
    else:
        text += f" Try a learning rate smaller than {cfg.lr:g}."
    return text


__all__ = [
    "AGREE",
    "CLAIMS",
    "DIFF_NAME",
    "LOOP_ROWS",
    "PHASES",
    "RELATIVE_NAME",
    "ROWS",
    "Claim",
    "Evidence",
    "LoopRow",
    "Row",
    "agreement",
    "agreement_text",
    "claims_for",
    "effective_lr",
    "first_step_evidence",
    "first_step_prediction",
    "growth_warning",
    "loop_row_code",
    "loop_row_text",
    "loop_row_values",
    "loop_rows_for",
    "loss_blind_weights",
    "loss_growth",
    "phase_source",
    "relative",
    "root_evidence",
    "row_text",
    "row_values",
    "schedule_formula",
    "show",
    "sign_evidence",
    "source_lines",
    "verify",
    "verify_all",
]
