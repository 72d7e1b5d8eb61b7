"""The pitfalls lab: the measurements behind each classic training-loop mistake.

Three pitfalls are Config switches that lib.run reproduces in both loops (zero_grad=False,
manual_loss, torch_dtype). This module adds what those runs cannot show by themselves: the
stability limit of the learning rate, the factor between two loss conventions measured from a
run, and a real torch loop that keeps `running_loss += loss` as a tensor, with what it keeps alive.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..engine.config import Config
from ..engine.data import Dataset, batch_indices, initial_weights, torch_loader
from ..engine.lockstep import Result, training_arrays
from ..twins.manual import SLOPES
from ..twins.torch_side import flat_grad, make_model, share_one_vector, torch_loss
from .explain import Evidence

# The squared-error conventions. The batch loss k(b)/2 * |A_B w - y_B|^2 has Hessian k(b) A_B^T A_B,
# with k the manual loop's slope (lib.twins.manual.SLOPES); tests/test_pitfalls.py checks hessian()
# against torch's autograd.
SQUARED_LOSSES = ("mse", "half_mse", "sse")


def hessian(data: Dataset, cfg: Config, loss: str | None = None) -> np.ndarray:
    """Hessian of the loss a gradient step sees, for a linear model (constant in the weights).

    With A = X (plus a ones column when cfg.bias), the loss of a batch B of b rows has Hessian
    k(b) * A_B^T A_B, where k is the convention's slope: mse 2/b, half_mse 1/b, sse 2. Averaged
    over batches, A_B^T A_B is (b/m) A^T A, so this returns k(b) * (b/m) * A^T A: for a full
    batch exactly the Hessian of the whole data's loss (mse (2/m) A^T A, half_mse (1/m) A^T A,
    sse 2 A^T A).
    loss defaults to cfg.loss, the torch loop's convention; pass cfg.loss_for("manual") for the
    hand loop's.
    """
    loss = loss or cfg.loss
    if loss not in SQUARED_LOSSES or getattr(cfg, "model", "linear") != "linear":
        raise ValueError(
            f"the Hessian here is for a linear model with a squared-error loss; got loss {loss!r}"
        )
    A = data.with_ones() if cfg.bias else data.X
    b = min(cfg.batch_size, data.m)
    k = SLOPES[loss](b)
    return k * (b / data.m) * (A.T @ A)


def stability_limit(data: Dataset, cfg: Config, loss: str | None = None) -> float:
    """The largest stable learning rate of plain SGD: 2 / lambda_max of hessian(data, cfg, loss).

    Full batch, gradient descent on this quadratic multiplies the error along the Hessian's top
    eigenvector by (1 - lr * lambda_max) each step, so it converges for lr < 2 / lambda_max and
    diverges above. With minibatches each step sees its own batch's Hessian, whose lambda_max
    scatters around the average's: the limit is then a guide, not a sharp edge, and steps near
    it can already blow up on the larger-than-average batches. math.inf when the Hessian is zero.
    """
    if cfg.optimizer != "sgd" or any(
        cfg.optimizer_kwargs.get(key) for key in ("momentum", "weight_decay")
    ):
        raise ValueError(
            "the stability limit 2 / lambda_max is for plain SGD (no momentum, no weight decay); "
            f"got optimizer {cfg.optimizer!r} with {dict(cfg.optimizer_kwargs)}"
        )
    top = float(np.linalg.eigvalsh(hessian(data, cfg, loss))[-1])
    return 2.0 / top if top > 0 else math.inf


def growth_factor(
    data: Dataset, cfg: Config, lrs: Iterable[float], loss: str | None = None
) -> np.ndarray:
    """Per step, how much full-batch gradient descent multiplies its worst error by.

    That is max_i |1 - lr * lambda_i|: below 1 every error shrinks (converges); above 1, the one
    along the top eigenvector grows (diverges).
    """
    eig = np.linalg.eigvalsh(hessian(data, cfg, loss))
    lrs = np.asarray(list(lrs), dtype=np.float64)
    return np.abs(1.0 - np.outer(lrs, eig)).max(axis=1)


def hessian_scale(data: Dataset, cfg: Config, loss: str | None = None) -> float:
    """The number c with hessian(data, cfg, loss) = c * A^T A: k(b) * b / m."""
    b = min(cfg.batch_size, data.m)
    return SLOPES[loss or cfg.loss](b) * b / data.m


def top_error_factor(data: Dataset, cfg: Config, lr: float, loss: str | None = None) -> float:
    """|1 - lr * lambda_max| of hessian(data, cfg, loss): a full-batch step's top-error factor."""
    return float(abs(1.0 - lr * np.linalg.eigvalsh(hessian(data, cfg, loss))[-1]))


def standardised(data: Dataset) -> Dataset:
    """The same data with every feature shifted to mean 0 and scaled to standard deviation 1.

    Constant features are only shifted; the labels are unchanged.
    """
    spread = data.X.std(axis=0)
    X = (data.X - data.X.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return Dataset(X, data.y, feature_names=data.feature_names, name=f"{data.name}, standardised")


def default_dtypes() -> dict[str, torch.dtype]:
    """The dtypes torch gives, measured now.

    Its default, torch.tensor of a Python float and of a float64 numpy array, nn.Linear's weight.
    """
    return {
        "torch.get_default_dtype()": torch.get_default_dtype(),
        "torch.tensor(0.5)": torch.tensor(0.5).dtype,
        "torch.tensor(np.array([0.5]))": torch.tensor(np.array([0.5])).dtype,
        "nn.Linear(1, 1).weight": nn.Linear(1, 1).weight.dtype,
    }


def measured_step_ratio(result: Result) -> float:
    """How many times larger the hand loop's first update is than torch's, measured from the run.

    Both loops take their first step from the same weights on the same batch, so with plain SGD this
    is the ratio of their gradients: the factor effective_lr_ratio predicts from the conventions.
    """
    update_m = result.manual.weights[1] - result.manual.weights[0]
    update_t = result.torch.weights[1] - result.torch.weights[0]
    norm_t = float(np.linalg.norm(update_t))
    return float(np.linalg.norm(update_m)) / norm_t if norm_t > 0 else math.nan


def running_loss_loop(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    net: nn.Module,
    lr: float,
    item: bool = False,
    retain_graph: bool = False,
) -> Iterator[float | torch.Tensor]:
    """The torch training loop, keeping a running total of the loss."""
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    running_loss = 0.0
    for inputs, labels in batches:
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels)
        # backward() frees the tensors this step's graph saved,
        # unless retain_graph=True keeps them.
        loss.backward(retain_graph=retain_graph)
        optimizer.step()
        if item:
            # The fix: a float, so nothing refers to this step's graph.
            running_loss += loss.item()
        else:
            # The pitfall: a tensor, whose graph links this step's graph
            # to every earlier step's.
            running_loss += loss
        yield running_loss


def _net_and_batches(
    data: Dataset, cfg: Config
) -> tuple[nn.Module, Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """cfg's model (nn.Linear, or the one-hidden-layer MLP) and tensor batches, as lib.run uses.

    The model in float64 from the shared init, the batches in the shared order.
    """
    if cfg.model not in ("linear", "mlp"):
        raise ValueError(
            "the running_loss loop trains a regression model (linear or mlp); "
            f"got model {cfg.model!r}"
        )
    net = make_model(cfg.layout(data.n), torch.float64)
    share_one_vector(net, initial_weights(data, cfg), torch.float64)
    return net, torch_loader(data.X, data.y, cfg.batch_size, cfg.seed)


@dataclass(frozen=True)
class GraphFootprint:
    """What the autograd graph behind a value keeps alive."""

    nodes: int  # autograd nodes reachable from value.grad_fn
    saved_tensors: int  # tensors those nodes still hold for a backward pass
    freed_tensors: int  # saved tensors a backward() already freed (the nodes remain)
    saved_bytes: int  # bytes of the distinct storages behind saved_tensors


def graph_footprint(value: float | torch.Tensor) -> GraphFootprint:
    """Walk the autograd graph behind value and count its nodes and the tensors they hold."""
    start = getattr(value, "grad_fn", None)
    seen, stack = set(), [start]
    saved = freed = 0
    storages: dict[int, int] = {}
    while stack:  # a loop, not recursion: the graph of a long run is thousands of nodes deep
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(parent for parent, _ in node.next_functions)
        for name in _saved_names(type(node)):
            try:
                held = getattr(node, name)
            except RuntimeError:
                # "Trying to backward through the graph a second time (or directly access...)"
                freed += 1
                continue
            if isinstance(held, torch.Tensor):
                saved += 1
                storage = held.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
    return GraphFootprint(len(seen), saved, freed, sum(storages.values()))


@functools.cache
def _saved_names(node_type: type) -> tuple[str, ...]:
    """The _saved_* attributes of an autograd node type (sizes and strides excluded), cached."""
    return tuple(
        name
        for name in dir(node_type)
        if name.startswith("_saved_") and not name.endswith(("_sym_sizes", "_sym_strides"))
    )


RUNNING_LOSS_VARIANTS = MappingProxyType(
    {
        "+= loss.item()": MappingProxyType({"item": True, "retain_graph": False}),
        "+= loss": MappingProxyType({"item": False, "retain_graph": False}),
        "+= loss, retain_graph=True": MappingProxyType({"item": False, "retain_graph": True}),
    }
)


def _running_loss_steps(data: Dataset, cfg: Config, **variant) -> Iterator[float | torch.Tensor]:
    """running_loss_loop on the data, batches and init lib.run uses for cfg (MSELoss, float64)."""
    net, batches = _net_and_batches(data, cfg)
    return running_loss_loop(batches, net, cfg.lr, **variant)


def running_loss_growth(
    data: Dataset, cfg: Config, steps: int = 100, points: int = 20
) -> pd.DataFrame:
    """graph_footprint of running_loss at about `points` steps up to `steps`, for each variant.

    The variants are RUNNING_LOSS_VARIANTS.

    Columns: variant, step (steps taken), nodes, saved_tensors, freed_tensors, saved_bytes,
    running_loss.
    """
    if not (isinstance(steps, int) and 1 <= steps <= 10_000):
        raise ValueError(f"steps must be a whole number from 1 to 10,000; got {steps!r}")
    record = set(np.unique(np.linspace(1, steps, min(points, steps)).round().astype(int)).tolist())
    rows = []
    for name, variant in RUNNING_LOSS_VARIANTS.items():
        for t, running_loss in zip(
            range(1, steps + 1), _running_loss_steps(data, cfg, **variant), strict=False
        ):
            if t in record:
                fp = graph_footprint(running_loss)
                rows.append(
                    {
                        "variant": name,
                        "step": t,
                        **fp.__dict__,
                        "running_loss": _value(running_loss),
                    }
                )
    return pd.DataFrame(rows)


def _value(running_loss: float | torch.Tensor) -> float:
    """The number in running_loss, whether a float or a tensor with a graph."""
    return running_loss.item() if isinstance(running_loss, torch.Tensor) else float(running_loss)


@dataclass(frozen=True)
class SecondBackward:
    """What running_loss.backward() did after `steps` steps of running_loss += loss."""

    steps: int  # training steps taken before the call
    message: str | None  # the RuntimeError torch raised, None when the call succeeded
    failed_node: str | None  # the type of the autograd node that raised it, e.g. "MseLossBackward0"
    failed_step: int | None  # the training step (1 .. steps) whose forward pass made that node
    nodes_run: int  # nodes the call started, the failing one included
    # The step that made each of those nodes, in the order the call started them.
    steps_run: tuple[int, ...] = ()


def second_backward(
    data: Dataset, cfg: Config, steps: int = 3, retain_graph: bool = False
) -> SecondBackward:
    """Train `steps` steps with `running_loss += loss`, then watch running_loss.backward() run.

    Every autograd node behind running_loss is labelled with the step whose forward pass made it and
    gets a pre-hook, so the last node whose hook ran before torch raised is the node that raised.
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a whole number >= 1; got {steps!r}")
    loop = _running_loss_steps(data, cfg, item=False, retain_graph=retain_graph)
    made_at: dict[torch.autograd.graph.Node, int] = {}
    for t in range(1, steps + 1):
        running_loss = next(loop)
        stack = [running_loss.grad_fn]
        while stack:  # only this step's new nodes: the walk stops at nodes an earlier step made
            node = stack.pop()
            if node is None or node in made_at:
                continue
            made_at[node] = t
            stack.extend(parent for parent, _ in node.next_functions)
    started: list[torch.autograd.graph.Node] = []
    handles = [
        node.register_prehook(lambda grads, node=node: started.append(node)) for node in made_at
    ]
    try:
        running_loss.backward()
    except RuntimeError as err:
        failed = started[-1]
        order = tuple(made_at[node] for node in started)
        return SecondBackward(
            steps, str(err), type(failed).__name__, made_at[failed], len(started), order
        )
    finally:
        for handle in handles:
            handle.remove()
    return SecondBackward(
        steps, None, None, None, len(started), tuple(made_at[node] for node in started)
    )


def stale_gradient(data: Dataset, cfg: Config, steps: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """What running_loss.backward() computes when retain_graph=True let it run.

    Returns (the .grad it produces, the sum of the gradients each step's own backward() produced):
    they are equal, so the call adds up gradients taken at old weights, each already used by its
    step.
    """
    net, batches = _net_and_batches(data, cfg)
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    running_loss, total = 0.0, 0.0
    for _, (inputs, labels) in zip(range(steps), batches, strict=False):
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward(retain_graph=True)
        total = total + flat_grad(net)
        optimizer.step()
        running_loss += loss
    optimizer.zero_grad()
    running_loss.backward()
    return flat_grad(net), total


# ------------------------------------------------ validation without torch.no_grad()

# Absolute tolerance below which two runs' weights are called equal (as the loops' own agreement).
EQUAL_TOL = 1e-10


def validation_pass(
    net: nn.Module,
    criterion: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    no_grad: bool = True,
) -> torch.Tensor:
    """The validation pass of the torch loop: eval mode, then the loss on the held-out rows."""
    net.eval()  # evaluation mode: dropout off, batch norm uses its running statistics
    if no_grad:
        with torch.no_grad():  # records no graph
            return criterion(net(inputs), labels)
    # The pitfall: the same forward pass records a graph, for a backward() that never comes.
    return criterion(net(inputs), labels)


@dataclass(frozen=True)
class ValidationGraph:
    """What one validation pass left behind, measured."""

    no_grad: bool  # whether the pass ran under torch.no_grad()
    rows: int  # held-out rows evaluated
    val_loss: float
    requires_grad: bool  # val_loss.requires_grad
    has_grad_fn: bool  # val_loss.grad_fn is not None
    nodes: int  # autograd nodes reachable from val_loss.grad_fn (via next_functions)
    node_types: tuple[str, ...]  # their types, in the order the walk met them
    saved_tensors: int  # tensors saved for backward, as torch's saved_tensors_hooks saw them
    saved_bytes: int  # their bytes (numel x element size)
    held_bytes: int  # bytes of the distinct storages the graph holds (graph_footprint)
    # bytes of the held storages that are neither the inputs, the labels nor a parameter: results
    # of the forward pass that only the graph keeps alive
    intermediate_bytes: int


def _model_and_validation(
    data: Dataset, cfg: Config
) -> tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor]:
    """cfg's torch model from the shared init, its criterion and the held-out rows as tensors."""
    *_, validation = training_arrays(data, cfg)
    if validation is None:
        raise ValueError(
            "a validation pass needs held-out rows: val_fraction must be > 0; "
            f"got {cfg.val_fraction}"
        )
    net = make_model(cfg.layout(data.n), torch.float64)
    share_one_vector(net, initial_weights(data, cfg), torch.float64)
    inputs = torch.tensor(validation[0][:, : data.n])
    labels = torch.tensor(validation[1])[:, None]
    return net, torch_loss(cfg.loss), inputs, labels


def validation_graph(data: Dataset, cfg: Config, no_grad: bool) -> ValidationGraph:
    """Run validation_pass on cfg's held-out rows and measure the graph it built.

    The model is cfg's, at the shared initial weights; torch's saved_tensors_hooks see every tensor
    the forward pass saves for a backward pass.
    """
    net, criterion, inputs, labels = _model_and_validation(data, cfg)
    packed: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        packed.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        val_loss = validation_pass(net, criterion, inputs, labels, no_grad)
    types, storages = _graph_walk(val_loss)
    own = {t.untyped_storage().data_ptr() for t in (inputs, labels, *net.parameters())}
    footprint = graph_footprint(val_loss)
    return ValidationGraph(
        no_grad=no_grad,
        rows=len(inputs),
        val_loss=val_loss.item(),
        requires_grad=val_loss.requires_grad,
        has_grad_fn=val_loss.grad_fn is not None,
        nodes=len(types),
        node_types=tuple(types),
        saved_tensors=len(packed),
        saved_bytes=sum(packed),
        held_bytes=footprint.saved_bytes,
        intermediate_bytes=sum(size for ptr, size in storages.items() if ptr not in own),
    )


def _graph_walk(value: torch.Tensor) -> tuple[list[str], dict[int, int]]:
    """(the node types reachable from value.grad_fn, {storage pointer: bytes} they saved)."""
    seen, stack, types, storages = set(), [value.grad_fn], [], {}
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        types.append(type(node).__name__)
        stack.extend(parent for parent, _ in node.next_functions)
        for name in _saved_names(type(node)):
            held = getattr(node, name)
            if isinstance(held, torch.Tensor):
                storage = held.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
    return types, storages


def kept_history(data: Dataset, cfg: Config, passes: int = 10) -> tuple[int, int]:
    """`passes` validation passes without no_grad, each val_loss appended to a list as a tensor.

    Returns (the autograd nodes, the bytes of the distinct storages) that the list holds through
    the graphs of its tensors, the inputs, the labels and the weights excluded.
    """
    net, criterion, inputs, labels = _model_and_validation(data, cfg)
    val_losses = []
    for _ in range(passes):  # the pitfall twice over: no no_grad, and the tensor kept, not .item()
        val_losses.append(validation_pass(net, criterion, inputs, labels, no_grad=False))
    own = {t.untyped_storage().data_ptr() for t in (inputs, labels, *net.parameters())}
    nodes, storages = set(), {}
    for val_loss in val_losses:
        stack = [val_loss.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node in nodes:
                continue
            nodes.add(node)
            stack.extend(parent for parent, _ in node.next_functions)
        storages |= _graph_walk(val_loss)[1]
    return len(nodes), sum(size for ptr, size in storages.items() if ptr not in own)


def check_no_graph(g: ValidationGraph) -> Evidence:
    """The claim "this pass built no graph": no grad_fn, no requires_grad, nothing saved."""
    ok = not g.requires_grad and not g.has_grad_fn and g.nodes == 0 and g.saved_tensors == 0
    return Evidence(
        ok,
        {
            "val_loss.requires_grad": g.requires_grad,
            "val_loss.grad_fn": "a node" if g.has_grad_fn else "None",
            "nodes": g.nodes,
            "saved tensors": g.saved_tensors,
        },
        "the validation pass's loss, and torch's saved_tensors_hooks during the pass",
    )


def check_graph_built(g: ValidationGraph) -> Evidence:
    """The claim "this pass built a graph that holds memory": a grad_fn, nodes, saved tensors."""
    ok = g.requires_grad and g.has_grad_fn and g.nodes > 0 and g.saved_tensors > 0
    return Evidence(
        ok,
        {
            "val_loss.requires_grad": g.requires_grad,
            "nodes": g.nodes,
            "saved tensors": g.saved_tensors,
            "bytes held": g.held_bytes,
        },
        "walking val_loss.grad_fn.next_functions, and torch's saved_tensors_hooks",
    )


def check_same_value(with_graph: ValidationGraph, without: ValidationGraph) -> Evidence:
    """The claim "no_grad changes no number": both passes gave the same loss, bit for bit."""
    return Evidence(
        with_graph.val_loss == without.val_loss,
        {"without no_grad": with_graph.val_loss, "with no_grad": without.val_loss},
        "the two validation passes' losses, compared exactly",
    )


# ------------------------------------------------ forgetting model.eval()

DROPOUT_P = 0.5  # the dropout model's rate


def mode_models(data: Dataset, cfg: Config) -> dict[str, nn.Module]:
    """The models whose train and eval modes are compared, float64, from seeded inits.

    cfg's own model; lib's MLP (cfg's hidden width and activation, the seeded normal init); the
    same MLP with nn.Dropout(DROPOUT_P) after its activation, and with nn.BatchNorm1d before it.
    """
    models = {"this lab's model": make_model(cfg.layout(data.n), torch.float64)}
    share_one_vector(models["this lab's model"], initial_weights(data, cfg), torch.float64)
    mlp_cfg = cfg.replace(model="mlp", init="normal")
    for name in ("lib's MLP", "the MLP with nn.Dropout", "the MLP with nn.BatchNorm1d"):
        net = make_model(mlp_cfg.layout(data.n), torch.float64)
        share_one_vector(net, initial_weights(data, mlp_cfg), torch.float64)
        first, act, last = net
        if name.endswith("Dropout"):
            net = nn.Sequential(first, act, nn.Dropout(DROPOUT_P), last)
        elif name.endswith("BatchNorm1d"):
            net = nn.Sequential(first, nn.BatchNorm1d(cfg.hidden, dtype=torch.float64), act, last)
        models[name] = net
    return models


@dataclass(frozen=True)
class ModeGap:
    """One model's outputs on the same rows in eval mode and in train mode."""

    model: str
    layers: str  # the model's modules, as torch prints their names
    max_diff: float | None  # max |train-mode output - eval-mode output|; None: not measured
    buffers_moved: float  # the largest change of a float buffer (batch norm's running stats)
    note: str = ""  # why it was not measured, if it was not


def mode_gap(name: str, net: nn.Module, inputs: torch.Tensor, seed: int) -> ModeGap:
    """Forward the rows in eval mode, then in train mode (torch's generator seeded for dropout)."""
    layers = ", ".join(type(m).__name__ for m in net.modules() if not list(m.children()))
    before = {k: v.clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        net.eval()
        evaluated = net(inputs)
        net.train()
        try:
            trained = net(inputs)
        except ValueError as err:  # batch norm in train mode on one row
            return ModeGap(name, layers, None, 0.0, str(err))
    moved = max(
        (float((net.state_dict()[k] - v).abs().max()) for k, v in before.items()), default=0.0
    )
    return ModeGap(name, layers, float((trained - evaluated).abs().max()), moved)


def mode_gaps(data: Dataset, cfg: Config) -> list[ModeGap]:
    """mode_gap of every model of mode_models, on cfg's held-out rows."""
    *_, inputs, _ = _model_and_validation(data, cfg)
    return [mode_gap(name, net, inputs, cfg.seed) for name, net in mode_models(data, cfg).items()]


def check_modes_equal(gap: ModeGap) -> Evidence:
    """The claim "model.eval() changes nothing for this model": equal outputs in both modes."""
    return Evidence(
        gap.max_diff == 0.0 and gap.buffers_moved == 0.0,
        {"max |train − eval|": gap.max_diff, "buffers moved by": gap.buffers_moved},
        f"{gap.model} ({gap.layers}) on the held-out rows, in both modes",
        applies=gap.max_diff is not None,
    )


def check_modes_differ(gap: ModeGap) -> Evidence:
    """The claim "forgetting model.eval() changes this model's outputs"."""
    return Evidence(
        gap.max_diff is not None and gap.max_diff > 0.0,
        {"max |train − eval|": gap.max_diff, "buffers moved by": gap.buffers_moved},
        f"{gap.model} ({gap.layers}) on the held-out rows, in both modes",
        applies=gap.max_diff is not None,
    )


# ------------------------------------------------ gradient accumulation = a bigger batch


def same_rows(m: int, b: int, k: int) -> tuple[bool, str]:
    """Whether every step of k micro-batches of b rows sees the rows of one batch of k·b, and why.

    Both runs draw the same permutation per epoch (the seed's batch generator), so a batch of k·b
    rows is k consecutive batches of b when an epoch splits into whole steps.
    """
    if k == 1:
        return True, f"k = 1: no accumulation, both runs take batches of b = {b:,}"
    if b >= m:
        return True, (
            f"b = {b:,} ≥ m = {m:,}: every micro-batch is the whole data, and so is the batch of "
            f"k·b = {k * b:,}"
        )
    if m % (k * b) == 0:
        parts = m // (k * b)
        return True, (
            f"m = {m:,} is a multiple of k·b = {k * b:,}: each epoch's permutation splits into "
            f"{parts:,} batch{'es' if parts > 1 else ''} of k·b rows, each the concatenation of k "
            f"consecutive micro-batches of b"
        )
    if k * b >= m:
        return False, (
            f"k·b = {k * b:,} ≥ m = {m:,}: the batch of k·b rows is the whole data every step, "
            f"while the k micro-batches of {b:,} rows are drawn from the epochs' permutations"
        )
    short = f", the last of each epoch {m % b:,} rows" if m % b else ""
    return False, (
        f"m = {m:,} is not a multiple of k·b = {k * b:,}: an epoch is {-(-m // b):,} micro-batches "
        f"of {b:,}{short}, but {-(-m // (k * b)):,} batches of k·b, so the steps line up only "
        "until one reaches the end of the first epoch"
    )


def step_shares(
    m: int, b: int, k: int, seed: int, steps: int, loss: str
) -> tuple[int | None, float | None]:
    """Compare, step by step, each row's weight in the accumulated loss with its weight in the
    loss of the batch of k·b rows, from lib's own batch order (batch_indices).

    Accumulated, a row of micro-batch i weighs 1/(k·|i|) for a mean loss (1/k for sse); in one
    batch B, 1/|B| (1 for sse). When the first is c times the second for every row and step, the
    accumulated gradient is c times the batch's: the same SGD steps at lr·c. Returns (the first
    step, from 1, where no such c holds, or None; that c, or None).
    """
    mean = loss != "sse"
    small, large = batch_indices(m, b, seed), batch_indices(m, k * b, seed)
    scale = None
    for t in range(1, steps + 1):
        acc, big = np.zeros(m), np.zeros(m)
        for _ in range(k):
            idx = np.arange(m)[next(small)]
            acc[idx] += 1.0 / (k * len(idx)) if mean else 1.0 / k
        idx = np.arange(m)[next(large)]
        big[idx] = 1.0 / len(idx) if mean else 1.0
        held = big > 0
        ratio = acc[held] / big[held]
        scale = ratio[0] if scale is None else scale
        if np.any(acc[~held] != 0) or not np.allclose(ratio, scale, rtol=1e-12, atol=0):
            return t, None
    return None, scale


@dataclass(frozen=True)
class AccumulationGap:
    """accumulate=k with batch b against batch k·b, measured from two lib.run results."""

    k: int
    b: int
    same_rows: bool  # as same_rows(m, b, k) says
    why: str
    # step_shares over the compared steps: the first step whose rows' weights differ, and the c
    # with accumulated = c x batch k·b on every step before (1: the same loss)
    shares_apart: int | None
    scale: float | None
    steps: int  # steps compared: those both runs took with finite weights in both loops
    max_weight_diff: float  # largest |w| difference over those steps, weights and both loops
    max_loss_diff: float  # largest difference of the steps' losses
    # the largest weight difference of a step divided by max(1, the largest |w| of that step)
    max_relative: float
    # the first t whose weights (after t steps) differ by more than EQUAL_TOL; None: never
    first_apart: int | None
    # (steps + 1,) the largest |w| difference after each step (index 0: the shared init)
    per_step: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


def accumulation_gap(accumulated: Result, big: Result, m: int) -> AccumulationGap:
    """How far the run with accumulate=k, batch b is from the run big (batch k·b), on m rows."""
    cfg = accumulated.config
    k, b = cfg.accumulate, cfg.batch_size
    rows_match, why = same_rows(m, b, k)
    diffs, losses = [], []
    for loop in ("manual", "torch"):
        w_a, w_b = getattr(accumulated, loop).weights, getattr(big, loop).weights
        n = min(len(w_a), len(w_b))
        l_a, l_b = getattr(accumulated, loop).loss, getattr(big, loop).loss
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in a diverged run
            diffs.append(np.abs(w_a[:n] - w_b[:n]).max(axis=1))
            losses.append(np.abs(l_a[: n - 1] - l_b[: n - 1]))
    per_step = np.maximum(*diffs)
    n = len(per_step)
    size = np.maximum(1.0, np.abs(accumulated.manual.weights[:n]).max(axis=1))
    finite = np.isfinite(per_step)
    kept = len(per_step) if finite.all() else int(np.argmin(finite))
    per_step, steps = per_step[:kept], max(kept - 1, 0)
    loss_gap = np.maximum(*losses)[:steps]
    apart = np.flatnonzero(per_step > EQUAL_TOL)
    shares_apart, scale = step_shares(m, b, k, cfg.seed, steps, cfg.loss)
    return AccumulationGap(
        k,
        b,
        rows_match,
        why,
        shares_apart,
        scale,
        steps,
        float(per_step.max()) if kept else math.nan,
        float(loss_gap.max()) if loss_gap.size else math.nan,
        float((per_step / size[:kept]).max()) if kept else math.nan,
        int(apart[0]) if apart.size else None,
        per_step,
    )


def check_accumulation_equal(gap: AccumulationGap) -> Evidence:
    """The claim "accumulate=k with batch b trains as batch k·b": weights within EQUAL_TOL."""
    return Evidence(
        bool(gap.steps > 0 and gap.max_weight_diff <= EQUAL_TOL),
        {"max |w difference|": gap.max_weight_diff, "steps compared": gap.steps},
        f"the weights of both runs after every step, both loops, equal when ≤ {EQUAL_TOL:g}",
    )


# (colour, dash, width) of the series lib.charts.series_chart draws: mistaken runs in warm colours
# (manual solid, torch dashed, so both show where they coincide), the correct run grey. Then the
# running_loss variants: the fix grey, as a correct run.
SERIES_STYLE = MappingProxyType(
    {
        "mistake, manual": ("#d62728", (1, 0), 3.5),
        "mistake, torch": ("#8c1a1a", (5, 3), 1.5),
        "correct": ("#7f7f7f", (1, 0), 2.0),
        "+= loss.item()": ("#7f7f7f", (1, 0), 2.0),
        "+= loss": ("#d62728", (1, 0), 3.5),
        "+= loss, retain_graph=True": ("#ff9f1c", (5, 3), 2.0),
    }
)
