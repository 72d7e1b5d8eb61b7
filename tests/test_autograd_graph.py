"""lib.autograd_graph: the DOT text of the graph loss.backward() walks, checked against the real
graph (its nodes, the AccumulateGrad leaves named by parameter, the shapes they saved)."""

import re

import torch
from torch import nn

import lib
from lib.lessons import autograd_graph as ag

DATA = lib.datasets.linear(m=40, n=3, noise=0.1, seed=0)


def boxes(dot: str) -> dict[str, str]:
    """node id -> its label, read back from the DOT text."""
    return {key: label for key, label in re.findall(r'^\s*(n\d+) \[label="(.*?)"', dot, re.M)}


def edges(dot: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^\s*(n\d+) -> (n\d+);", dot, re.M))


def real_graph(loss: torch.Tensor) -> tuple[int, set[tuple[str, str]]]:
    """The test's own walk: (nodes reachable from grad_fn, the AccumulateGrad leaves' shapes)."""
    seen, stack, leaves = set(), [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):
            leaves.add(tuple(node.variable.shape))
        stack.extend(parent for parent, _ in node.next_functions)
    return len(seen), leaves


def test_linear_step_graph_has_the_real_nodes_and_named_leaves():
    cfg = lib.Config(batch_size=8)
    loss, net = ag.step_loss(DATA, cfg)
    dot = lib.autograd_graph(loss, ag.parameter_names(net, cfg, DATA.n))
    labels = boxes(dot)
    count, leaves = real_graph(loss)
    assert len(labels) == count == 5
    assert leaves == {(1, 3), (1,)}
    leaf_labels = sorted(label for label in labels.values() if label.startswith("AccumulateGrad"))
    assert leaf_labels == ["AccumulateGrad\\nbias", "AccumulateGrad\\nweight"]
    assert labels["n0"] == "MseLossBackward0\\nsaved self (8, 1)\\nsaved target (8, 1)"
    assert "AddmmBackward0\\nsaved mat1 (8, 3)" in labels.values()
    assert ("n0", "n1") in edges(dot) and dot.startswith("digraph")


def test_mlp_graph_shows_each_layer():
    cfg = lib.Config(model="mlp", hidden=4, batch_size=8, activation="relu", loss="half_mse")
    loss, _ = ag.step_loss(DATA, cfg)
    dot = ag.step_graph(DATA, cfg)
    labels = boxes(dot)
    count, _ = real_graph(loss)
    assert len(labels) == count
    names = [label.split("\\n")[0] for label in labels.values()]
    assert names.count("AddmmBackward0") == 2  # both layers
    assert "ReluBackward0" in names and names[0] == "DivBackward0"  # half_mse: MSELoss / 2
    leaves = sorted(label.split("\\n")[1] for label in labels.values() if "AccumulateGrad" in label)
    assert leaves == ["W1 (0.weight)", "W2 (2.weight)", "b1 (0.bias)", "b2 (2.bias)"]
    assert "saved result (8, 4)" in dot  # ReLU saved its output for the backward pass


def test_no_graph_and_unnamed_leaves():
    dot = lib.autograd_graph(torch.zeros(()))
    assert "no graph" in dot and not boxes(dot)
    w = torch.ones(2, requires_grad=True)
    dot = lib.autograd_graph((w * 3).sum())
    assert "leaf (2,)" in dot
    assert len(boxes(dot)) == real_graph((w * 3).sum())[0]


def test_running_loss_graph_grows_step_by_step():
    cfg = lib.Config(batch_size=8, lr=0.01)
    graphs = ag.running_loss_graphs(DATA, cfg, steps=3)
    sizes = [len(boxes(dot)) for dot in graphs]
    per_step = sizes[1] - sizes[0]
    assert per_step > 0 and sizes[2] - sizes[1] == per_step  # one step's graph more each time
    assert "freed" in graphs[0]  # backward() freed what the step saved; the nodes stay
    # the leaves are the same two parameters however long the chain grows
    assert all(sum("AccumulateGrad" in label for label in boxes(g).values()) == 2 for g in graphs)


def test_quotes_in_names_are_escaped():
    w = nn.Parameter(torch.ones(1))
    dot = lib.autograd_graph(w * 2, {'a "quoted" name': w})
    assert 'a \\"quoted\\" name' in dot


def test_a_later_step_and_accumulation():
    cfg = lib.Config(batch_size=16, iterations=10, accumulate=3)  # 40 rows: micro-batches 16, 16, 8
    loss, _ = ag.step_loss(DATA, cfg, step=0)  # step 0's last micro-batch is the epoch's third
    dot = ag.step_graph(DATA, cfg, step=0)
    assert boxes(dot)["n0"] == "DivBackward0\\nsaved other ()"  # loss / accumulate
    assert "saved self (8, 1)" in dot and len(boxes(dot)) == real_graph(loss)[0]
    plain = lib.Config(batch_size=16, iterations=10)
    assert "saved self (16, 1)" in ag.step_graph(DATA, plain, step=3)  # the next epoch's first
    for bad in (-1, 10, 1.5):
        try:
            ag.step_loss(DATA, cfg, step=bad)
        except ValueError as error:
            assert "step must be a whole number from 0 to 9" in str(error)
        else:
            raise AssertionError(f"step={bad!r} was accepted")
