"""What breaks if you move a line: both loops run with the lines of one step in another order.

The program that runs is the loops' own: lib.twins.torch_side.torch_loop and
lib.twins.manual.manual_loop are parsed from their source, the statements of each phase (marked by
the comments "# Reset the gradient.", "# Forward pass.", "# Loss.", "# Backward pass." and
"# Update.") are put in the order asked for, and the function is compiled again. An order is a
permutation of ORDER, so only the project's own lines ever run; orders that cannot run are refused
in words before anything runs (check_order).
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import itertools
import textwrap
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np
import torch

from ..engine.config import Config
from ..engine.data import Dataset, initial_weights
from ..engine.frames import arguments_of, function_of
from ..engine.lockstep import Result, _Lockstep, drive, loops
from ..engine.lockstep import run as lockstep_run
from ..engine.source import compile_tree, parse
from ..twins import manual, torch_side

# The lines of one step, in the order the loops are written.
ORDER = ("zero_grad", "forward", "loss", "backward", "clip", "step", "scheduler", "validation")
# The validation block without its `with torch.no_grad():` (the hand twin has no graph to skip):
# it may stand in ORDER's "validation" place.
WITH_GRAD = "validation_with_grad"
# The update block's lines: each keeps the block's guard (one optimizer step per batch here).
UPDATE = ("clip", "step", "scheduler", "validation")
PHASES = MappingProxyType(
    {
        "# Reset the gradient.": "zero_grad",
        "# Forward pass.": "forward",
        "# Loss.": "loss",
        "# Backward pass.": "backward",
        "# Update.": "update",
    }
)
# Lines named in words, as the lab shows them.
TITLES = MappingProxyType(
    {
        "zero_grad": "reset the gradient",
        "forward": "forward pass",
        "loss": "loss",
        "backward": "backward pass",
        "clip": "clip the gradient",
        "step": "optimizer step",
        "scheduler": "scheduler step",
        "validation": "validation",
        WITH_GRAD: "validation (without torch.no_grad())",
    }
)


@dataclass(frozen=True)
class LoopParts:
    """One loop function taken apart: its tree, the for loop's body by line, and the guard."""

    source: str  # the function's source, dedented
    tree: ast.Module
    loop: ast.For  # the `for i, (inputs, labels) in enumerate(batches)` loop inside tree
    prefix: tuple[ast.stmt, ...]  # the statements before the first phase (torch: net.train())
    lines: dict  # ORDER's names (and WITH_GRAD for torch) -> their statements
    guard: ast.If  # the update block, whose test every update line keeps
    final: ast.stmt  # the yield, last in the update block


def _phase_statements(source: str, body: list[ast.stmt]) -> dict[str, list[ast.stmt]]:
    """The for loop's statements under each phase comment (and "prefix" before the first)."""
    marks = []
    for number, text in enumerate(source.splitlines(), start=1):
        name = PHASES.get(text.strip())
        if name is not None:
            marks.append((number, name))
    phases: dict[str, list[ast.stmt]] = {"prefix": []}
    for statement in body:
        before = [name for number, name in marks if number < statement.lineno]
        phases.setdefault(before[-1] if before else "prefix", []).append(statement)
    return phases


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _update_lines(guard: ast.If) -> tuple[dict[str, ast.stmt], ast.stmt]:
    """The update block's lines by name, and its yield."""
    found, final = {}, None
    for statement in guard.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Yield):
            final = statement
        elif isinstance(statement, ast.If) and "clip_grad_norm" in _names_in(statement.test):
            found["clip"] = statement
        elif isinstance(statement, ast.If) and "scheduler_name" in _names_in(statement.test):
            found["scheduler"] = statement
        elif isinstance(statement, ast.If) and "validation" in _names_in(statement.test):
            found["validation"] = statement
        elif isinstance(statement, ast.Expr) and "optimizer" in _names_in(statement):
            found["step"] = statement
    if final is None or sorted(found) != sorted(UPDATE):
        raise RuntimeError(f"the update block's lines changed: found {sorted(found)}")
    return found, final


def _without_no_grad(validation: ast.If) -> ast.If:
    """The validation block with its `with torch.no_grad():` replaced by the lines under it."""
    block = copy.deepcopy(validation)
    body = []
    for statement in block.body:
        body.extend(statement.body if isinstance(statement, ast.With) else [statement])
    block.body = body
    return block


@functools.cache
def loop_parts(func: Callable) -> LoopParts:
    """func's source taken apart by phase (parsed once per function; the parts are never changed:
    rebuild works on copies)."""
    source = textwrap.dedent(inspect.getsource(func))
    tree = parse(source)
    loop = next(node for node in ast.walk(tree) if isinstance(node, ast.For))
    phases = _phase_statements(source, loop.body)
    (guard,) = phases.pop("update")
    found, final = _update_lines(guard)
    lines = {name: tuple(phases[name]) for name in ("zero_grad", "forward", "loss", "backward")}
    lines.update({name: (statement,) for name, statement in found.items()})
    lines[WITH_GRAD] = (_without_no_grad(found["validation"]),)
    return LoopParts(source, tree, loop, tuple(phases["prefix"]), lines, guard, final)


def rebuilt_tree(func: Callable, order: Sequence[str]) -> ast.Module:
    """func's syntax tree with its loop body's lines in `order`: consecutive update lines share one
    copy of the update block's guard, and the yield stays last, under the guard."""
    parts = loop_parts(func)
    body: list[ast.stmt] = list(parts.prefix)
    group: list[ast.stmt] | None = None
    for name in order:
        if name in UPDATE or name == WITH_GRAD:
            if group is None:
                guard = copy.copy(parts.guard)
                guard.body = group = []
                body.append(guard)
            group.extend(parts.lines[name])
        else:
            group = None
            body.extend(parts.lines[name])
    if group is None:
        guard = copy.copy(parts.guard)
        guard.body = group = []
        body.append(guard)
    group.append(parts.final)
    tree = copy.deepcopy(parts.tree)
    loop = next(node for node in ast.walk(tree) if isinstance(node, ast.For))
    loop.body = copy.deepcopy(body)
    return ast.fix_missing_locations(tree)


def rebuilt_source(func: Callable, order: Sequence[str]) -> str:
    """The rebuilt function as text (comments are not kept: ast.unparse writes the code only)."""
    return ast.unparse(rebuilt_tree(func, order))


def line_source(loop: str, name: str) -> str:
    """One line (or block) of a loop as its source file has it, comments kept: loop is "torch" or
    "manual". WITH_GRAD is the validation block less its `with torch.no_grad():` line."""
    parts = loop_parts(torch_side.torch_loop if loop == "torch" else manual.manual_loop)
    statements = parts.lines["validation" if name == WITH_GRAD else name]
    rows = parts.source.splitlines()[statements[0].lineno - 1 : statements[-1].end_lineno]
    if name == WITH_GRAD:
        rows = _drop_with(rows)
    return textwrap.dedent("\n".join(rows))


def _drop_with(rows: list[str]) -> list[str]:
    """Rows of a block less its `with torch.no_grad():` row, the rows under it one level out."""
    kept, depth = [], None
    for row in rows:
        indent = len(row) - len(row.lstrip())
        if depth is not None and indent <= depth:
            depth = None
        if row.strip().startswith("with torch.no_grad()"):
            depth = indent
        elif depth is not None:
            kept.append(row[4:])
        else:
            kept.append(row)
    return kept


# ------------------------------------------------------------------ which orders can run
def parse_order(order) -> tuple[str, ...]:
    """order as a tuple of names, or a ValueError in words when it is not a permutation of ORDER."""
    if isinstance(order, str) or not isinstance(order, Sequence):
        raise ValueError(f"order must be a list of line names such as {list(ORDER)}; got {order!r}")
    names = tuple(order)
    wanted = sorted(ORDER)
    swapped = sorted("validation" if n == WITH_GRAD else n for n in names if isinstance(n, str))
    if len(swapped) != len(names) or swapped != wanted:
        unknown = [n for n in names if n not in ORDER and n != WITH_GRAD]
        missing = [n for n in ORDER if n not in swapped]
        repeated = sorted({n for n in swapped if swapped.count(n) > 1})
        words = [f"unknown {unknown!r}"] * bool(unknown) + [f"missing {missing!r}"] * bool(missing)
        words += [f"repeated {repeated!r}"] * bool(repeated)
        raise ValueError(
            f"order must hold each of {', '.join(ORDER)} once ({WITH_GRAD} may stand for "
            f"validation); got {list(names)!r}: {'; '.join(words)}"
        )
    return names


def _step_events(names: tuple[str, ...], zero_grad: bool) -> list[tuple[bool, bool]]:
    """(no gradient, between forward and backward) for step() in the first two iterations: the
    state a step ends in does not depend on how it started, so the second stands for all others."""
    grad, events = False, []
    for _ in range(2):
        forward_pending = False
        for name in names:
            if name == "zero_grad" and zero_grad:
                grad = False  # optimizer.zero_grad() sets every .grad to None
            elif name == "forward":
                forward_pending = True
            elif name == "backward":
                grad, forward_pending = True, False
            elif name == "step":
                events.append((not grad, forward_pending))
    return events


def _skips_like_torch(cfg: Config) -> bool:
    """Whether the hand optimizer's step with a zero gradient does what torch's does with none:
    nothing now, and nothing that changes a later step (plain SGD, momentum without dampening)."""
    kwargs = cfg.optimizer_kwargs
    return (
        cfg.optimizer == "sgd"
        and not kwargs.get("weight_decay", 0)
        and not kwargs.get("dampening", 0)
    )


def check_order(order, cfg: Config) -> tuple[str, ...]:
    """The order's names, or a ValueError in words saying why that order cannot run."""
    names = parse_order(order)
    where = {("validation" if n == WITH_GRAD else n): i for i, n in enumerate(names)}
    if names == ORDER:
        return names
    if cfg.accumulate != 1:
        raise ValueError(
            "the line-order lab moves the lines of a step of one batch; use accumulate=1 (with "
            f"accumulate={cfg.accumulate}, zero_grad() and step() run once per "
            f"{cfg.accumulate} micro-batches)"
        )
    if where["loss"] < where["forward"]:
        raise ValueError(
            "this order cannot run: the loss line reads `outputs`, which the forward pass makes, "
            "and here the forward pass comes after it, so the first step has no outputs to score"
        )
    if where["backward"] < where["loss"]:
        raise ValueError(
            "this order cannot run: backward() starts from `loss`, which the loss line makes "
            "after it, so the first step has no loss; later steps would call backward() again "
            "through the previous step's graph, whose saved tensors the first call freed"
        )
    events = _step_events(names, cfg.zero_grad)
    if cfg.model == "mlp" and any(between and not none for none, between in events):
        raise ValueError(
            "this order cannot run on the mlp: optimizer.step() finds a gradient and changes W2 in "
            "place between the forward pass, which saved W2, and the backward() that needs it; "
            "torch refuses (one of the variables needed for gradient computation has been "
            "modified by an inplace operation). A linear model saves no weight for its backward "
            "pass, so there this order runs"
        )
    if any(none for none, _ in events) and not _skips_like_torch(cfg):
        raise ValueError(
            "in this order optimizer.step() runs while the parameters have no gradient (before "
            "the first backward(), or just after zero_grad() set every .grad to None): torch's "
            f"{cfg.optimizer} then leaves them alone, while the hand {cfg.optimizer} sees a "
            "zero gradient and still counts a step, decays the weights or moves its averages, so "
            "the two loops would part. Use optimizer 'sgd' without weight_decay or dampening to "
            "run this order"
        )
    return names


# ------------------------------------------------------------------ running an order
MAX_LOGGED = 1_000  # steps whose gradient (as step() found it) is kept, for the verdicts


class StepLog:
    """What each optimizer.step() call found: the gradient (None: torch's parameters had no .grad;
    kept for the first MAX_LOGGED steps), and the lr it used (every step)."""

    def __init__(self) -> None:
        self.grads: list[np.ndarray | None] = []
        self.lrs: list[float] = []
        self.val_nodes: list[int] = []  # torch: the graph each validation pass built, in nodes

    def note(self, grad: np.ndarray | None, lr: float) -> None:
        if len(self.grads) < MAX_LOGGED:
            self.grads.append(grad)
        self.lrs.append(lr)


class _GradOrZero(torch_side.GradReader):
    """GradReader for the yield of a reordered loop: a .grad that zero_grad() set to None reads as
    zeros (the hand twin's gradient after its reset), where the loop as written always has one."""

    def __call__(self) -> np.ndarray:
        for piece, param in zip(self.pieces, self.params, strict=True):
            if param.grad is None:
                piece.zero_()
            else:
                piece.copy_(param.grad)
        return self.numpy


def _logged_torch_optimizer(log: StepLog) -> Callable:
    def make(*args, **kwargs):
        optimizer = torch_side.torch_optimizer(*args, **kwargs)
        params = [p for group in optimizer.param_groups for p in group["params"]]

        def found(opt, _args, _kwargs) -> None:
            grads = [p.grad for p in params]
            flat = None
            if any(g is not None for g in grads) and len(log.grads) < MAX_LOGGED:
                flat = np.concatenate(
                    [np.zeros(p.numel()) if g is None else g.numpy().ravel() for p, g in
                     zip(params, grads, strict=True)]
                )  # fmt: skip
            log.note(flat, float(opt.param_groups[0]["lr"]))

        optimizer.register_step_pre_hook(found)
        return optimizer

    return make


def _logged_manual_optimizer(log: StepLog) -> Callable:
    def make(*args, **kwargs):
        optimizer = manual.manual_optimizer(*args, **kwargs)
        real = optimizer.step

        def step(grad: np.ndarray) -> None:
            log.note(np.array(grad) if len(log.grads) < MAX_LOGGED else None, float(optimizer.lr))
            real(grad)

        optimizer.step = step
        return optimizer

    return make


class _CountingLoss(torch.nn.Module):
    """The loop's criterion, counting the graph behind each held-out loss it computes."""

    def __init__(self, criterion: torch.nn.Module, held_out_labels, log: StepLog) -> None:
        super().__init__()
        self.criterion, self.held_out_labels, self.log = criterion, held_out_labels, log

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.criterion(outputs, labels)
        if labels is self.held_out_labels:
            self.log.val_nodes.append(graph_nodes(loss))
        return loss


def graph_nodes(value) -> int:
    """The autograd nodes reachable from value.grad_fn through next_functions (0: no graph)."""
    seen, stack = set(), [getattr(value, "grad_fn", None)]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(parent for parent, _ in node.next_functions)
    return len(seen)


@functools.lru_cache(maxsize=256)
def _code(func: Callable, names: tuple[str, ...]):
    """The rebuilt function's code, compiled once per order."""
    return compile_tree(rebuilt_tree(func, names), inspect.getsourcefile(func) or "<loop>")


def _reordered(gen: Iterator, names: tuple[str, ...], overrides: dict) -> Iterator:
    """A generator of the same loop, not yet started, with the same arguments and its lines in
    names' order; overrides replace names of the loop's module in the rebuilt function's globals
    (a copy: the module and other threads keep the real ones)."""
    func, arguments = function_of(gen), arguments_of(gen)
    gen.close()
    scope = {**func.__globals__, **overrides}
    exec(_code(func, names), scope)  # the project's own lines, in a fixed set of orders
    return scope[func.__name__](**arguments)


class _Ordered(_Lockstep):
    """lib.run's lockstep, with both loops rebuilt in one order and their steps logged."""

    def __init__(self, data: Dataset, cfg: Config, progress_every: float, names) -> None:
        super().__init__(data, cfg, progress_every)
        self.logs = {"manual": StepLog(), "torch": StepLog()}
        held_out = arguments_of(self.twin)["validation"]
        labels = None if held_out is None else held_out[1]
        log_t = self.logs["torch"]
        self.manual = _reordered(
            self.manual, names, {"manual_optimizer": _logged_manual_optimizer(self.logs["manual"])}
        )
        self.twin = _reordered(
            self.twin,
            names,
            {
                "torch_optimizer": _logged_torch_optimizer(log_t),
                "GradReader": _GradOrZero,
                "torch_loss": lambda name: _CountingLoss(
                    torch_side.torch_loss(name), labels, log_t
                ),
            },
        )


@dataclass(frozen=True, eq=False)
class OrderRun:
    """One run of both loops with their lines in `order`, and what their steps found."""

    order: tuple[str, ...]
    result: Result  # its History.lr is the lr each step() used, from the logs
    logs: dict  # "manual", "torch" -> StepLog
    warnings: tuple[str, ...]  # every warning the run raised, as its text (torch's own words)


def run_order(
    data: Dataset, cfg: Config, order: Sequence[str] = ORDER, *, progress=None,
    progress_every: float = 0.25, time_limit: float | None = None,
) -> OrderRun:  # fmt: skip
    """Both loops in lockstep with their lines in `order` (check_order refuses what cannot run)."""
    names = check_order(order, cfg)
    lockstep = _Ordered(data, cfg, progress_every, names)
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        drive(lockstep, cfg, progress, progress_every, time_limit)
    result = lockstep.result()
    steps = result.steps
    histories = {
        loop: replace(getattr(result, loop), lr=np.array(lockstep.logs[loop].lrs[:steps]))
        for loop in ("manual", "torch")
    }
    result = replace(result, **histories)
    texts = tuple(dict.fromkeys(str(w.message) for w in caught))
    return OrderRun(names, result, lockstep.logs, texts)


def run(
    data: Dataset, cfg: Config, *, order: Sequence[str] | None = None, progress=None,
    progress_every: float = 0.25, time_limit: float | None = None,
) -> Result:  # fmt: skip
    """lib.run: both loops in lockstep (lib.engine.lockstep.run); with `order`, a permutation of
    ORDER, their lines run in that order (a ValueError in words for an order that cannot run)."""
    options = {"progress": progress, "progress_every": progress_every, "time_limit": time_limit}
    if order is None or tuple(order) == ORDER:
        return lockstep_run(data, cfg, **options)
    return run_order(data, cfg, order, **options).result


# ------------------------------------------------------------------ what broke, measured
@dataclass(frozen=True)
class Verdict:
    """One claim about a run: holds is what the measurement found; text is the claim."""

    key: str
    holds: bool
    text: str  # the verdict in words (shown only where it holds)
    measured: str  # the numbers behind it, in words


class _Gradients:
    """The gradient of one batch at given weights: the loss and backward() of a fresh torch model
    of the run's layout (the lines as written, nothing reordered)."""

    def __init__(self, data: Dataset, cfg: Config) -> None:
        dtype = getattr(torch, cfg.torch_dtype)
        self.net = torch_side.make_model(cfg.layout(data.n), dtype)
        self.flat = torch_side.share_one_vector(self.net, initial_weights(data, cfg), dtype)
        self.criterion = torch_side.torch_loss(cfg.loss)

    def __call__(self, weights: np.ndarray, batch) -> np.ndarray:
        with torch.no_grad():
            self.flat.copy_(torch.from_numpy(np.asarray(weights)))
        self.net.zero_grad(set_to_none=True)
        self.criterion(self.net(batch[0]), batch[1]).backward()
        return torch_side.flat_grad(self.net)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.abs(a - b).max() <= 1e-9 * max(1.0, float(np.abs(b).max())))


def _clipped(g: np.ndarray, max_norm: float | None) -> np.ndarray:
    """g as clip_grad_norm_ leaves it (the hand twin's formula)."""
    if max_norm is None:
        return g
    return g * min(max_norm / (float(np.sqrt(g @ g)) + 1e-6), 1.0)


def references(data: Dataset, cfg: Config, weights: np.ndarray, steps: int) -> dict:
    """For steps 0 .. steps-1, the gradients a step could use: "own" (its batch at the weights it
    starts from), "previous" (the previous batch at those weights, and at the weights before)."""
    gen = loops(data, cfg)[1]
    batches = list(itertools.islice(arguments_of(gen)["batches"], steps))
    gen.close()
    grad = _Gradients(data, cfg)
    own = [grad(weights[t], batches[t]) for t in range(steps)]
    previous = [()] + [
        (grad(weights[t], batches[t - 1]), own[t - 1]) for t in range(1, steps)
    ]  # fmt: skip
    return {"own": own, "previous": previous}


def sources(log: StepLog, refs: dict, max_norm: float | None) -> list[str]:
    """Which gradient each logged step() found: "none", "own", "previous" or "other" (as found, or
    as clip_grad_norm_ would leave it)."""
    found = []
    for t, used in enumerate(log.grads[: len(refs["own"])]):
        own = refs["own"][t]
        if used is None or (not used.any() and own.any()):
            found.append("none")
        elif any(_close(used, f(own, max_norm)) for f in (_clipped, lambda g, _: g)):
            found.append("own")
        elif any(
            _close(used, _clipped(p, m)) for p in refs["previous"][t] for m in (max_norm, None)
        ):
            found.append("previous")
        else:
            found.append("other")
    return found


def _no_update(run: OrderRun, found: dict) -> Verdict:
    moved = {
        loop: float(np.abs(h.weights - h.weights[0]).max())
        for loop, h in (("manual", run.result.manual), ("torch", run.result.torch))
    }
    holds = run.result.steps > 0 and max(moved.values()) == 0.0
    measured = (
        f"largest change of a weight from its initial value over {run.result.steps:,} steps: "
        f"{moved['manual']:.3g} (hand loop), {moved['torch']:.3g} (torch loop)"
    )
    if found["torch"] and all(s == "none" for s in found["torch"]):
        measured += (
            "; every optimizer.step() found no gradient (.grad None in torch, zeros by hand)"
        )
    return Verdict("no_update", holds, "no update ever happens", measured)


def _lag(found: dict) -> Verdict:
    steps = len(found["torch"])
    holds = steps >= 2 and all(
        f[0] == "none" and all(s == "previous" for s in f[1:]) for f in found.values()
    )
    counts = ", ".join(
        f"{loop}: " + ", ".join(f"{found[loop].count(s)} {s}" for s in ("none", "own", "previous",
        "other") if found[loop].count(s)) for loop in ("manual", "torch")
    )  # fmt: skip
    measured = (
        f"the gradient each optimizer.step() found, over the first {steps:,} steps, compared with "
        f"the step's own batch's and the previous batch's ({counts})"
    )
    text = "each step uses the previous batch's gradient (the update lags one step)"
    return Verdict("lag", holds, text, measured)


def _own(found: dict) -> Verdict:
    holds = bool(found["torch"]) and all(s == "own" for f in found.values() for s in f)
    text = "each step uses its own batch's gradient, as in the loop as written"
    measured = f"all of the first {len(found['torch']):,} steps, in both loops"
    return Verdict("own", holds, text, measured)


def _clip_effect(run: OrderRun, unclipped: OrderRun, correct: OrderRun) -> Verdict:
    """Whether the weights are the same, bit for bit, when the order runs without the clip."""
    steps = min(run.result.steps, unclipped.result.steps)
    diff = max(
        float(np.abs(getattr(run.result, loop).weights[: steps + 1]
                     - getattr(unclipped.result, loop).weights[: steps + 1]).max())
        for loop in ("manual", "torch")
    )  # fmt: skip
    norms = run.result.torch.grad_norm  # the norms clip_grad_norm_ returned
    scaled = int(correct.result.torch.clipped.sum())
    measured = (
        f"largest |weight with the clip - weight without it| over {steps:,} steps: {diff:.3g}; "
        f"in the loop as written the clip scales the gradient down at {scaled:,} of "
        f"{correct.result.steps:,} steps"
    )
    if len(norms) and not norms.any():
        measured += "; clip_grad_norm_ found no gradient (norm 0) every time it ran"
    return Verdict("clip_no_effect", steps > 0 and diff == 0.0, "clipping has no effect", measured)


def _clip_stale(run: OrderRun, refs: dict) -> Verdict:
    """Whether the norm clip_grad_norm_ measured at each step t >= 1 is that of the previous
    batch's gradient, not of the step's own."""
    norms = run.result.torch.grad_norm[: len(refs["own"])]

    def near(a: float, b: np.ndarray) -> bool:
        return abs(a - float(np.sqrt(b @ b))) <= 1e-9 * max(1.0, abs(a))

    matches = [
        any(near(norms[t], p) for p in refs["previous"][t]) and not near(norms[t], refs["own"][t])
        for t in range(1, len(norms))
    ]
    holds = bool(matches) and all(matches)
    measured = (
        f"the norm clip_grad_norm_ measured matches the previous batch's gradient's, not the "
        f"step's own, at {sum(matches):,} of steps 1 to {len(norms) - 1:,}"
    )
    return Verdict("clip_stale", holds, "the clip acts on the previous batch's gradient", measured)


SKIP_WARNING = "lr_scheduler.step()"  # torch's warning about the order names the call


def _lr_skipped(run: OrderRun, correct: OrderRun) -> Verdict:
    """Whether every step used the lr the loop as written gives the next step, in both loops."""
    right = correct.result.torch.lr
    steps = min(run.result.steps, len(right) - 1)
    shifted = all(
        steps >= 1 and np.allclose(getattr(run.result, loop).lr[:steps], right[1 : steps + 1],
                                   rtol=1e-12, atol=0)
        for loop in ("manual", "torch")
    )  # fmt: skip
    holds = shifted and right[0] != right[1]
    said = [w for w in run.warnings if SKIP_WARNING in w]
    text = "the first lr of the schedule is skipped; " + (
        f"torch warned: “{said[0]}”" if said else "torch did not warn"
    )
    used = run.result.torch.lr
    measured = (
        f"step 0 used lr {used[0]:.6g} (the loop as written: {right[0]:.6g}, then {right[1]:.6g})"
        if len(used) and len(right) > 1
        else "fewer than two steps"
    )
    return Verdict("lr_skipped", holds, text, measured)


def _graph_built(run: OrderRun) -> Verdict:
    nodes = run.logs["torch"].val_nodes
    most = max(nodes, default=0)
    measured = (
        f"{len(nodes):,} validation passes; the most nodes reachable from a held-out loss's "
        f"grad_fn: {most:,}"
    )
    return Verdict("graph", most > 0, f"validation built a graph of {most:,} nodes", measured)


@dataclass(frozen=True, eq=False)
class Lab:
    """An order run beside the loop as written, and the verdicts measured on the run."""

    chosen: OrderRun
    correct: OrderRun
    found: dict  # loop -> which gradient each of its first steps found (see sources)
    verdicts: tuple[Verdict, ...]

    @property
    def shown(self) -> tuple[Verdict, ...]:
        """The verdicts that hold: the ones the lab says."""
        return tuple(v for v in self.verdicts if v.holds)

    def verdict(self, key: str) -> Verdict:
        return next(v for v in self.verdicts if v.key == key)


def lab(data: Dataset, cfg: Config, order: Sequence[str]) -> Lab:
    """Run `order` and the loop as written on the same Config, and measure what broke."""
    chosen = run_order(data, cfg, order)
    correct = run_order(data, cfg, ORDER)
    steps = min(chosen.result.steps, MAX_LOGGED)
    weights = chosen.result.torch.weights
    complete = weights.shape[1] == cfg.n_params(data.n)  # every weight recorded
    refs = references(data, cfg, weights, steps) if complete else {"own": [], "previous": []}
    max_norm = cfg.clip_grad_norm
    found = {loop: sources(chosen.logs[loop], refs, max_norm) for loop in ("manual", "torch")}
    verdicts = [_no_update(chosen, found), _lag(found), _own(found)]
    if max_norm is not None:
        unclipped = run_order(data, replace(cfg, clip_grad_norm=None), chosen.order)
        verdicts += [_clip_effect(chosen, unclipped, correct), _clip_stale(chosen, refs)]
    if cfg.scheduler is not None:
        verdicts.append(_lr_skipped(chosen, correct))
    if cfg.val_fraction > 0:
        verdicts.append(_graph_built(chosen))
    return Lab(chosen, correct, found, tuple(verdicts))
