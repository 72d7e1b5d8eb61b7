"""The Pitfalls lab's whole-loop measurements (issue 12): the graph a validation pass builds
without torch.no_grad(), train against eval mode, and accumulate=k x batch b against batch k·b.
Each check is shown holding, and failing on a case built to make its claim false."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import lib
from lib import pitfalls

DATA = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
VAL = lib.Config(val_fraction=0.2, batch_size=32)


# ------------------------------------------------ validation without torch.no_grad()


@pytest.fixture(scope="module")
def leaky() -> pitfalls.ValidationGraph:
    return pitfalls.validation_graph(DATA, VAL, no_grad=False)


@pytest.fixture(scope="module")
def clean() -> pitfalls.ValidationGraph:
    return pitfalls.validation_graph(DATA, VAL, no_grad=True)


def test_without_no_grad_the_pass_builds_the_graph_of_linear_and_mse(leaky):
    rows = len(lib.engine.data.split_rows(DATA.m, 0.2, VAL.seed)[1])
    assert leaky.rows == rows == 40
    assert leaky.requires_grad and leaky.has_grad_fn
    assert leaky.node_types == (
        "MseLossBackward0",
        "AddmmBackward0",
        "TBackward0",
        "AccumulateGrad",
        "AccumulateGrad",
    )
    assert leaky.nodes == 5
    # addmm saves the inputs (rows x n) and MSELoss its two arguments (rows x 1 each), float64
    assert leaky.saved_tensors == 3
    assert leaky.saved_bytes == leaky.held_bytes == 8 * rows * (DATA.n + 2)
    assert leaky.intermediate_bytes == 8 * rows  # the outputs: nothing else refers to them


def test_the_node_count_is_the_walk_of_next_functions(leaky):
    """The count, done again here by hand on a pass of our own."""
    net = torch.nn.Linear(3, 1, dtype=torch.float64)
    loss = torch.nn.MSELoss()(net(torch.zeros(5, 3, dtype=torch.float64)), torch.zeros(5, 1))
    seen, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(p for p, _ in node.next_functions)
    assert len(seen) == leaky.nodes


def test_with_no_grad_no_graph_and_the_same_loss(leaky, clean):
    assert not clean.requires_grad and not clean.has_grad_fn
    assert clean.nodes == clean.saved_tensors == clean.saved_bytes == clean.held_bytes == 0
    assert clean.val_loss == leaky.val_loss


def test_the_loss_is_the_held_out_rows_criterion_at_the_shared_init():
    cfg = VAL.replace(init="normal")
    g = pitfalls.validation_graph(DATA, cfg, no_grad=True)
    held = lib.engine.data.split_rows(DATA.m, 0.2, cfg.seed)[1]
    w = lib.engine.data.initial_weights(DATA, cfg)
    expected = np.mean((DATA.with_ones()[held] @ w - DATA.y[held]) ** 2)
    assert g.val_loss == pytest.approx(expected, rel=1e-12)


def test_no_graph_check_holds_with_no_grad_and_fails_without(leaky, clean):
    assert pitfalls.check_no_graph(clean).ok
    # the false case: no_grad removed, and the check that claims "no graph" sees one
    failed = pitfalls.check_no_graph(leaky)
    assert not failed.ok and failed.measured["nodes"] == 5


def test_graph_check_holds_without_no_grad_and_fails_with(leaky, clean):
    assert pitfalls.check_graph_built(leaky).ok
    assert not pitfalls.check_graph_built(clean).ok


def test_each_part_of_the_no_graph_check_can_fail_on_its_own(clean):
    for change in ({"requires_grad": True}, {"has_grad_fn": True}, {"saved_tensors": 1}):
        assert not pitfalls.check_no_graph(dataclasses.replace(clean, **change)).ok


def test_same_value_check_fails_on_a_different_loss(leaky, clean):
    assert pitfalls.check_same_value(leaky, clean).ok
    other = dataclasses.replace(clean, val_loss=math.nextafter(clean.val_loss, math.inf))
    assert not pitfalls.check_same_value(leaky, other).ok


def test_the_mlp_graph_keeps_its_hidden_layer():
    cfg = VAL.replace(model="mlp", init="normal")
    g = pitfalls.validation_graph(DATA, cfg, no_grad=False)
    assert "TanhBackward0" in g.node_types and g.nodes == 10
    # tanh's output (rows x hidden; TanhBackward0 and the second addmm save the same tensor) and
    # the outputs (rows x 1): the results of the forward pass
    assert g.intermediate_bytes == 8 * g.rows * (cfg.hidden + 1)


def test_a_list_of_val_losses_as_tensors_keeps_every_pass():
    nodes, kept = pitfalls.kept_history(DATA, VAL, passes=10)
    one = pitfalls.validation_graph(DATA, VAL, no_grad=False)
    # the two AccumulateGrad nodes (the weights) are shared, the other three are each pass's own
    assert nodes == 2 + 3 * 10
    assert kept == 10 * one.intermediate_bytes


def test_validation_needs_held_out_rows():
    with pytest.raises(ValueError, match="val_fraction must be > 0"):
        pitfalls.validation_graph(DATA, lib.Config(), no_grad=True)


# ------------------------------------------------ forgetting model.eval()


@pytest.fixture(scope="module")
def gaps() -> dict[str, pitfalls.ModeGap]:
    return {g.model: g for g in pitfalls.mode_gaps(DATA, VAL)}


def test_train_and_eval_mode_equal_for_these_models(gaps):
    for name in ("this lab's model", "lib's MLP"):
        assert gaps[name].max_diff == 0.0 and gaps[name].buffers_moved == 0.0
        assert pitfalls.check_modes_equal(gaps[name]).ok
        assert not pitfalls.check_modes_differ(gaps[name]).ok  # the false case


def test_dropout_and_batch_norm_differ_between_the_modes(gaps):
    dropout, norm = gaps["the MLP with nn.Dropout"], gaps["the MLP with nn.BatchNorm1d"]
    assert "Dropout" in dropout.layers and "BatchNorm1d" in norm.layers
    for gap in (dropout, norm):
        assert gap.max_diff > 0.01
        assert pitfalls.check_modes_differ(gap).ok
        assert not pitfalls.check_modes_equal(gap).ok  # the false case
    assert dropout.buffers_moved == 0.0 and norm.buffers_moved > 0.0


def test_the_dropout_gap_is_reproducible():
    again = {g.model: g for g in pitfalls.mode_gaps(DATA, VAL)}
    first = {g.model: g for g in pitfalls.mode_gaps(DATA, VAL)}
    assert again == first


def test_batch_norm_on_one_row_is_not_measured_and_its_checks_do_not_apply():
    tiny = lib.datasets.linear(m=2, n=1, noise=0.1, seed=0)
    norm = {g.model: g for g in pitfalls.mode_gaps(tiny, VAL)}["the MLP with nn.BatchNorm1d"]
    assert norm.max_diff is None and "Expected more than 1 value per channel" in norm.note
    assert not pitfalls.check_modes_differ(norm).applies
    assert not pitfalls.check_modes_equal(norm).applies


# ------------------------------------------------ accumulate=k x batch b against batch k·b


def gap_of(data, cfg, k, b, **big) -> pitfalls.AccumulationGap:
    accumulated = lib.run(data, cfg.replace(accumulate=k, batch_size=b))
    return pitfalls.accumulation_gap(
        accumulated, lib.run(data, cfg.replace(batch_size=k * b, **big)), data.m
    )


RUN = lib.Config(lr=0.01, iterations=150)


def test_the_batches_of_k_b_rows_are_k_consecutive_batches_of_b():
    """What same_rows and step_shares rest on: lib's loader, the same seed and m."""
    small = lib.batch_indices(200, 10, seed=3)
    large = lib.batch_indices(200, 40, seed=3)
    for _ in range(60):  # 12 epochs of 5 steps
        joined = np.concatenate([next(small) for _ in range(4)])
        np.testing.assert_array_equal(joined, next(large))


@pytest.mark.parametrize(
    ("k", "b", "loss"),
    [
        (4, 10, "mse"),  # m = 200 a multiple of k·b = 40
        (2, 100, "half_mse"),  # k·b = m
        (5, 8, "mse"),
        (3, 200, "mse"),  # full batch
        (3, 500, "sse"),  # full batch: the k whole-data sse / k add up to the sum (lr below)
        (1, 32, "mse"),  # no accumulation
    ],
)
def test_accumulation_equals_the_bigger_batch_where_they_cover_the_same_rows(k, b, loss):
    gap = gap_of(DATA, RUN.replace(loss=loss, lr=0.0005 if loss == "sse" else RUN.lr), k, b)
    assert gap.same_rows and gap.shares_apart is None and gap.scale == 1.0
    assert gap.steps == RUN.iterations
    assert gap.max_weight_diff <= 1e-10 and gap.first_apart is None
    assert pitfalls.check_accumulation_equal(gap).ok


def test_accumulation_equals_the_bigger_batch_for_an_mlp_with_adam():
    cfg = RUN.replace(model="mlp", init="normal", optimizer="adam", lr=0.003)
    gap = gap_of(DATA, cfg, 4, 10)
    assert gap.max_weight_diff <= 1e-10 and pitfalls.check_accumulation_equal(gap).ok


@pytest.mark.parametrize(("k", "b"), [(4, 32), (3, 30), (2, 150), (16, 1)])
def test_where_the_rows_differ_the_check_says_so_and_the_weights_part_where_the_rows_do(k, b):
    gap = gap_of(DATA, RUN, k, b)
    assert not gap.same_rows and ("not a multiple" in gap.why or "≥ m" in gap.why)
    assert gap.shares_apart is not None and gap.scale is None
    # the weights first differ at the first step whose rows differ (from lib's batch order)
    assert gap.first_apart == gap.shares_apart
    assert gap.max_weight_diff > 1e-6
    assert not pitfalls.check_accumulation_equal(gap).ok  # the false case


def test_sse_accumulation_is_the_bigger_batch_at_lr_over_k():
    cfg = RUN.replace(loss="sse", lr=0.0005)
    gap = gap_of(DATA, cfg, 4, 10)
    assert gap.same_rows and gap.scale == 0.25
    assert not pitfalls.check_accumulation_equal(gap).ok
    scaled = gap_of(DATA, cfg, 4, 10, lr=cfg.lr * 0.25)
    assert scaled.max_weight_diff <= 1e-10 and pitfalls.check_accumulation_equal(scaled).ok


def test_the_first_steps_of_a_short_run_can_line_up_where_a_long_one_does_not():
    gap = gap_of(DATA, RUN.replace(iterations=1), 4, 32)
    assert not gap.same_rows and gap.scale == 1.0 and gap.shares_apart is None
    assert pitfalls.check_accumulation_equal(gap).ok


def test_a_diverged_pair_is_compared_over_its_finite_steps_and_not_called_equal():
    gap = gap_of(DATA, RUN.replace(lr=1000.0), 4, 10)
    assert 0 < gap.steps < RUN.iterations
    assert np.isfinite(gap.max_weight_diff) and gap.max_weight_diff > 1e-10
    assert gap.max_relative < 1e-10  # rounding grown with the weights
    assert not pitfalls.check_accumulation_equal(gap).ok


def test_no_step_compared_is_never_equal():
    gap = gap_of(DATA, RUN.replace(iterations=20), 4, 10)
    assert not pitfalls.check_accumulation_equal(dataclasses.replace(gap, steps=0)).ok


@pytest.mark.parametrize(
    ("m", "b", "k", "same", "words"),
    [
        (200, 10, 1, True, "k = 1"),
        (200, 300, 4, True, "b = 300 ≥ m = 200"),
        (200, 25, 4, True, "splits into 2 batches"),
        (200, 100, 2, True, "splits into 1 batch of"),
        (200, 60, 4, False, "k·b = 240 ≥ m = 200"),
        (200, 32, 4, False, "the last of each epoch 8 rows"),
        (200, 20, 3, False, "an epoch is 10 micro-batches of 20, but 4 batches"),
    ],
)
def test_same_rows_says_why(m, b, k, same, words):
    matched, why = pitfalls.same_rows(m, b, k)
    assert matched is same and words in why
