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
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..engine.config import Config
from ..engine.data import Dataset, initial_weights, torch_loader
from ..engine.lockstep import Result
from ..twins.manual import SLOPES
from ..twins.torch_side import flat_grad, make_model, share_one_vector

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
