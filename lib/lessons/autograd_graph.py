"""The graph loss.backward() walks: from loss.grad_fn through next_functions to the AccumulateGrad
leaves, drawn as Graphviz DOT text (st.graphviz_chart renders it; no Graphviz install needed)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..engine.config import Config
from ..engine.data import Dataset, initial_weights, torch_loader
from ..engine.lockstep import training_arrays
from ..twins import torch_side
from . import pitfalls


@dataclass(frozen=True)
class Node:
    """One node of an autograd graph, as the drawing labels it."""

    key: int  # its place in the walk (0: loss.grad_fn)
    name: str  # the node's class: MseLossBackward0, AddmmBackward0, AccumulateGrad, ...
    saved: tuple[tuple[str, str], ...]  # (what, shape) of each tensor it saved for backward
    parameter: str | None  # AccumulateGrad: the parameter whose .grad it fills
    parents: tuple[int, ...]  # the nodes its next_functions lead to


def _saved(node) -> tuple[tuple[str, str], ...]:
    """The tensors a node saved, by name, with their shapes ("freed" once backward() ran)."""
    found = []
    for attribute in pitfalls._saved_names(type(node)):  # the footprint's own list
        try:
            value = getattr(node, attribute)
        except RuntimeError:  # backward() already freed it
            found.append((attribute.removeprefix("_saved_"), "freed"))
            continue
        if isinstance(value, torch.Tensor):
            found.append((attribute.removeprefix("_saved_"), str(tuple(value.shape))))
    return tuple(found)


def _parameter_names(names) -> dict[int, str]:
    if names is None:
        return {}
    pairs = names.named_parameters() if isinstance(names, nn.Module) else names.items()
    return {id(tensor): name for name, tensor in pairs}


def graph_of(loss: torch.Tensor, names: Mapping[str, torch.Tensor] | nn.Module | None = None):
    """The nodes backward() would walk from loss, in the order a breadth-first walk meets them.

    names (a model, or {name: parameter}) names each AccumulateGrad leaf by its parameter.
    """
    root = getattr(loss, "grad_fn", None)
    if root is None:
        return []
    by_tensor = _parameter_names(names)
    keys, order, queue = {root: 0}, [root], [root]
    while queue:  # breadth first, a loop rather than recursion: graphs can be deep
        node = queue.pop(0)
        for parent, _ in node.next_functions:
            if parent is not None and parent not in keys:
                keys[parent] = len(order)
                order.append(parent)
                queue.append(parent)
    nodes = []
    for node in order:
        variable = getattr(node, "variable", None)
        parameter = None
        if variable is not None:
            parameter = by_tensor.get(id(variable), f"leaf {tuple(variable.shape)}")
        parents = tuple(keys[p] for p, _ in node.next_functions if p is not None)
        nodes.append(Node(keys[node], type(node).__name__, _saved(node), parameter, parents))
    return nodes


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def autograd_graph(
    loss: torch.Tensor,
    names: Mapping[str, torch.Tensor] | nn.Module | None = None,
    root: str = "loss",
) -> str:
    """DOT text of the graph loss.backward() walks: one box per node (its name and the shapes it
    saved), an arrow from each node to the next_functions backward() goes on to, the AccumulateGrad
    leaves named by parameter (names: see graph_of); root names the tensor itself. A tensor without
    a graph gives a graph of one note saying so."""
    nodes = graph_of(loss, names)
    rows = ["digraph autograd {", "  rankdir=TB;", '  node [shape=box, fontname="monospace"];']
    if not nodes:
        rows.append('  none [label="no graph: this tensor has no grad_fn", shape=plaintext];')
    else:
        rows.append(f"  loss [label={_quote(root)}, shape=ellipse];")
        rows.append("  loss -> n0;")
    for node in nodes:
        label = node.name
        if node.parameter is not None:
            label += f"\n{node.parameter}"
        label += "".join(f"\nsaved {what} {shape}" for what, shape in node.saved)
        style = ', style=filled, fillcolor="#e8f0fe"' if node.parameter is not None else ""
        rows.append(f"  n{node.key} [label={_quote(label)}{style}];")
        rows.extend(f"  n{node.key} -> n{parent};" for parent in node.parents)
    rows.append("}")
    return "\n".join(rows)


def step_loss(data: Dataset, cfg: Config, step: int = 0) -> tuple[torch.Tensor, nn.Module]:
    """(loss, net) of optimizer step `step` of cfg as the torch loop computes it: the model of cfg's
    layout at the run's initial weights, on that step's batch of the run's batch order (with
    accumulate > 1 its last micro-batch, the loss divided by accumulate), its graph built and not
    yet walked. The graph's nodes and shapes do not depend on the weights."""
    if not (isinstance(step, int) and 0 <= step < cfg.iterations):
        raise ValueError(
            f"step must be a whole number from 0 to {cfg.iterations - 1}; got {step!r}"
        )
    dtype = getattr(torch, cfg.torch_dtype)
    net = torch_side.make_model(cfg.layout(data.n), dtype)
    torch_side.share_one_vector(net, initial_weights(data, cfg), dtype)
    _, labels, X, _ = training_arrays(data, cfg)  # the training rows lib.run batches
    batches = torch_loader(X, labels, cfg.batch_size, cfg.seed, dtype, cfg.drop_last)
    wanted = (step + 1) * cfg.accumulate - 1
    inputs, labels = next(itertools.islice(batches, wanted, None))  # the loader never runs out
    loss = torch_side.torch_loss(cfg.loss)(net(inputs), labels)
    return (loss / cfg.accumulate if cfg.accumulate > 1 else loss), net


def parameter_names(net: nn.Module, cfg: Config, n: int) -> dict[str, torch.Tensor]:
    """{name: parameter}: the hand loop's names (weight, bias; W1, b1, W2, b2) beside torch's."""
    tensors = cfg.layout(n).tensors
    named = list(net.named_parameters())
    return {
        (mine if mine == theirs else f"{mine} ({theirs})"): p
        for (mine, _), (theirs, p) in zip(tensors, named, strict=True)
    }


def step_graph(data: Dataset, cfg: Config, step: int = 0) -> str:
    """DOT of the graph loss.backward() walks at optimizer step `step` of cfg (see step_loss)."""
    loss, net = step_loss(data, cfg, step)
    return autograd_graph(loss, parameter_names(net, cfg, data.n))


def running_loss_graphs(data: Dataset, cfg: Config, steps: int = 3) -> list[str]:
    """DOT of running_loss's graph after each of the first `steps` steps of the pitfall loop that
    keeps `running_loss += loss` as a tensor (lib.lessons.pitfalls.running_loss_loop): it grows by
    one step's graph each time."""
    net, batches = pitfalls._net_and_batches(data, cfg)
    loop = pitfalls.running_loss_loop(batches, net, cfg.lr)
    graphs = []
    for _ in range(steps):
        graphs.append(autograd_graph(next(loop), parameter_names(net, cfg, data.n), "running_loss"))
    loop.close()
    return graphs
