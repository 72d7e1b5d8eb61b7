"""Each pitfall of the lab, reproduced and measured: lib.pitfalls and its Config switches."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lib
from lib import pitfalls

CONVENTIONS = pitfalls.SQUARED_LOSSES
DATA = lib.datasets.linear(m=60, n=3, noise=0.3, seed=1)


# Forgot zero_grad(): both loops make the mistake, so they still agree, and the gradient
# accumulates.


def test_forgotten_zero_grad_loops_still_agree_and_gradient_accumulates():
    cfg = lib.Config(lr=0.01, batch_size=16, iterations=120, zero_grad=False)
    result = lib.run(DATA, cfg)
    assert result.done
    assert result.max_abs_diff <= 1e-10
    # With plain SGD, w_t - w_{t+1} = lr * (what .grad holds), so each step's .grad is read off the
    # weights.
    held = (result.manual.weights[:-1] - result.manual.weights[1:]) / cfg.lr
    np.testing.assert_allclose(np.linalg.norm(held, axis=1), result.manual.grad_norm, rtol=1e-9)
    # Accumulation: what .grad holds grows, step by step, by exactly the fresh gradient of that
    # step's batch.
    A = DATA.with_ones()
    order = lib.batch_indices(DATA.m, cfg.batch_size, cfg.seed)
    for t, idx in zip(range(cfg.iterations), order, strict=False):
        w = result.manual.weights[t]
        fresh = 2 / len(A[idx]) * A[idx].T @ (A[idx] @ w - DATA.y[idx])
        before = held[t - 1] if t else 0.0
        np.testing.assert_allclose(held[t] - before, fresh, rtol=1e-7, atol=1e-9)


def test_forgotten_zero_grad_gradient_norm_grows_while_the_correct_one_shrinks():
    cfg = lib.Config(lr=0.01, batch_size=16, iterations=300)
    wrong, right = lib.run(DATA, cfg.replace(zero_grad=False)), lib.run(DATA, cfg)
    g_wrong, g_right = wrong.manual.grad_norm, right.manual.grad_norm
    assert g_wrong[:20].max() > 3 * g_wrong[0]  # the sum builds up over the first steps
    assert np.median(g_wrong[150:]) > 20 * np.median(g_right[150:])
    assert np.median(wrong.manual.loss[150:]) > 10 * np.median(right.manual.loss[150:])


# Learning rate above the stability limit.


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("loss", CONVENTIONS)
def test_hessian_is_torchs_hessian_of_the_full_batch_loss(loss, bias):
    cfg = lib.Config(loss=loss, bias=bias, batch_size=DATA.m)
    A = torch.tensor(DATA.with_ones() if bias else DATA.X)
    y = torch.tensor(DATA.y)
    scale = {
        "mse": lambda e: e.pow(2).mean(),
        "half_mse": lambda e: e.pow(2).mean() / 2,
        "sse": lambda e: e.pow(2).sum(),
    }
    expected = torch.autograd.functional.hessian(
        lambda w: scale[loss](A @ w - y), torch.zeros(A.shape[1], dtype=torch.float64)
    )
    np.testing.assert_allclose(
        pitfalls.hessian(DATA, cfg), expected.numpy(), rtol=1e-12, atol=1e-12
    )


def test_minibatch_hessian_is_the_average_batch_hessian():
    cfg = lib.Config(loss="sse", batch_size=10)
    A = DATA.with_ones()
    # One epoch's batches cover every row once.
    batches = [A[i : i + 10] for i in range(0, DATA.m, 10)]
    average = np.mean([2 * B.T @ B for B in batches], axis=0)
    np.testing.assert_allclose(pitfalls.hessian(DATA, cfg), average, rtol=1e-12)


@settings(max_examples=6)
@given(
    m=st.integers(4, 40),
    n=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    loss=st.sampled_from(CONVENTIONS),
    bias=st.booleans(),
)
def test_stability_limit_predicts_divergence_within_three_percent(m, n, seed, loss, bias):
    data = lib.datasets.linear(m=m, n=n, noise=0.5, seed=seed)
    cfg = lib.Config(loss=loss, bias=bias, batch_size=m, iterations=300, init="normal", seed=seed)
    limit = pitfalls.stability_limit(data, cfg)
    below = lib.run(data, cfg.replace(lr=0.97 * limit)).manual.loss
    above = lib.run(data, cfg.replace(lr=1.03 * limit)).manual.loss
    # Below the limit every error component shrinks, so the full-batch loss never rises.
    assert np.all(np.diff(below) <= 1e-9 * below[0] + 1e-12)
    assert below[-1] < below[0]
    # Above it the top component grows by 1.06x per step: 300 steps multiply the loss by ~1e15.
    assert above[-1] > 1e6 * above[0]


def test_growth_factor_crosses_one_at_the_stability_limit():
    cfg = lib.Config(batch_size=DATA.m)
    limit = pitfalls.stability_limit(DATA, cfg)
    below, at, above = pitfalls.growth_factor(DATA, cfg, [0.99 * limit, limit, 1.01 * limit])
    assert below < 1 < above
    assert at == pytest.approx(1.0, abs=1e-12)


def test_stability_limit_refuses_momentum_and_other_losses_in_words():
    with pytest.raises(ValueError, match="plain SGD"):
        pitfalls.stability_limit(DATA, lib.Config(optimizer_kwargs={"momentum": 0.9}))
    with pytest.raises(ValueError, match="squared-error"):
        pitfalls.hessian(DATA, lib.Config(), loss="hinge")


@pytest.mark.parametrize("loss", CONVENTIONS)
@pytest.mark.parametrize("batch_size", [1, 7, 60, 500])
def test_hessian_scale_is_the_coefficient_of_ata(loss, batch_size):
    cfg = lib.Config(loss=loss, batch_size=batch_size)
    A = DATA.with_ones()
    np.testing.assert_allclose(
        pitfalls.hessian(DATA, cfg), pitfalls.hessian_scale(DATA, cfg) * A.T @ A, rtol=1e-12
    )


def test_sse_minibatch_limit_is_not_the_full_batch_one():
    """With sse the minibatch H is 2 (b/m) A^T A, not 2 A^T A: the limits differ by m / b."""
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    mini = pitfalls.stability_limit(data, lib.Config(loss="sse", batch_size=32))
    full = pitfalls.stability_limit(data, lib.Config(loss="sse", batch_size=200))
    assert mini == pytest.approx(full * 200 / 32, rel=1e-12)
    assert pitfalls.hessian_scale(data, lib.Config(loss="sse", batch_size=32)) == pytest.approx(
        2 * 32 / 200
    )


@pytest.mark.parametrize("factor", [1.01, 1.5, 1.8, 2.0])
def test_top_error_factor_is_the_absolute_value_on_both_sides_of_the_limit(factor):
    cfg = lib.Config(batch_size=DATA.m)
    limit = pitfalls.stability_limit(DATA, cfg)
    assert pitfalls.top_error_factor(DATA, cfg, factor * limit) == pytest.approx(
        2 * factor - 1, rel=1e-12
    )
    assert pitfalls.top_error_factor(DATA, cfg, limit / factor) == pytest.approx(
        abs(1 - 2 / factor), abs=1e-12
    )
    # The rate the lab used to run beside the mistake, (2 - factor) x the limit, has the factor
    # |2 factor - 3|: the old text printed 3 - 2 factor, negative above 1.5.
    if factor < 2:
        old = pitfalls.top_error_factor(DATA, cfg, (2 - factor) * limit)
        assert old == pytest.approx(abs(2 * factor - 3), abs=1e-12)


def small_correlated(m: int = 200, seed: int = 0) -> lib.Dataset:
    """Two small, nearly equal features: standardising them makes lambda_max larger, not smaller."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=m)
    X = 0.05 * np.column_stack([z, z + 0.05 * rng.normal(size=m)])
    return lib.Dataset(X, X @ [1.0, -1.0] + 0.1 * rng.normal(size=m))


def test_standardising_small_correlated_features_lowers_the_limit():
    data = small_correlated()
    cfg = lib.Config(batch_size=data.m)
    before = pitfalls.stability_limit(data, cfg)
    after = pitfalls.stability_limit(pitfalls.standardised(data), cfg)
    assert before == pytest.approx(1.0, abs=0.01)  # the ones column dominates: lambda_max about 2
    # Two unit features, correlation about 1: lambda_max about 4.
    assert after == pytest.approx(0.5, abs=0.02)
    assert after < before


def test_standardising_large_uncentred_features_raises_the_limit():
    rng = np.random.default_rng(1)
    X = 10 + 5 * rng.normal(size=(100, 2))
    data = lib.Dataset(X, X @ [1.0, 2.0])
    cfg = lib.Config(batch_size=data.m)
    scaled = pitfalls.stability_limit(pitfalls.standardised(data), cfg)
    assert scaled > 100 * pitfalls.stability_limit(data, cfg)


def test_standardised_features_have_mean_0_and_std_1_and_a_constant_column_stays_finite():
    X = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    scaled = pitfalls.standardised(lib.Dataset(X, np.arange(10.0))).X
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(axis=0), [1, 0], atol=1e-12)


def test_default_dtypes_are_what_torch_gives():
    dtypes = pitfalls.default_dtypes()
    assert dtypes["torch.tensor(0.5)"] == torch.float32  # a Python float
    # A float64 array keeps its dtype.
    assert dtypes["torch.tensor(np.array([0.5]))"] == torch.float64
    assert dtypes["nn.Linear(1, 1).weight"] == torch.float32 == dtypes["torch.get_default_dtype()"]


def test_stability_limit_of_an_all_zero_input_is_infinite():
    data = lib.Dataset(np.zeros((5, 2)), np.arange(5.0))
    assert pitfalls.stability_limit(data, lib.Config(bias=False)) == math.inf


# running_loss += loss: the graph it keeps alive, and the real error of a second backward().


def test_second_backward_raises_torchs_real_error():
    failed = pitfalls.second_backward(DATA, lib.Config(batch_size=16), steps=3)
    assert failed.message is not None
    assert failed.message.startswith("Trying to backward through the graph a second time")
    assert "retain_graph=True" in failed.message


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_second_backward_fails_at_the_last_steps_loss_node(steps):
    failed = pitfalls.second_backward(DATA, lib.Config(batch_size=16), steps=steps)
    assert (failed.failed_node, failed.failed_step) == ("MseLossBackward0", steps)
    assert set(failed.steps_run) == {steps}  # nothing of an earlier step ran before the failure


def test_torch_itself_fails_at_the_newest_loss_node_not_the_first():
    """The same mistake without lib: hooks on step 1's and 3's loss nodes show which torch hits."""
    X, y = torch.tensor(DATA.X), torch.tensor(DATA.y).unsqueeze(1)
    net = torch.nn.Linear(DATA.n, 1, dtype=torch.float64)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    running_loss, loss_nodes = 0.0, []
    for _ in range(3):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(net(X), y)
        loss.backward()
        optimizer.step()
        running_loss += loss
        loss_nodes.append(loss.grad_fn)
    reached = []
    for step, node in enumerate(loss_nodes, start=1):
        node.register_prehook(lambda grads, step=step: reached.append(step))
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        running_loss.backward()
    assert reached == [3]


def test_retain_graph_silences_the_error_but_adds_up_stale_gradients():
    cfg = lib.Config(batch_size=16)
    assert pitfalls.second_backward(DATA, cfg, steps=3, retain_graph=True).message is None
    produced, summed = pitfalls.stale_gradient(DATA, cfg, steps=5)
    np.testing.assert_allclose(produced, summed, rtol=1e-12)
    # Those gradients were taken at five different weights: the sum is not the gradient at the
    # current ones.
    assert np.linalg.norm(produced) > 0


@pytest.mark.parametrize("bias", [True, False])
def test_retain_graph_does_not_silence_the_error_with_a_hidden_layer(bias):
    cfg = lib.Config(batch_size=16, model="mlp", init="normal", bias=bias)
    failed = pitfalls.second_backward(DATA, cfg, steps=4, retain_graph=True)
    assert failed.message is not None and "modified by an inplace operation" in failed.message
    assert failed.failed_step == 4
    assert (
        pitfalls.second_backward(
            DATA, cfg.replace(model="linear", init="zeros"), steps=4, retain_graph=True
        ).message
        is None
    )


def test_running_loss_loop_refuses_a_classifier_in_words():
    with pytest.raises(ValueError, match="regression model"):
        pitfalls.second_backward(DATA, lib.Config(model="logistic"), steps=2)


def test_running_loss_tensor_keeps_a_growing_graph_and_item_keeps_none():
    frame = pitfalls.running_loss_growth(DATA, lib.Config(batch_size=16), steps=40, points=8)
    by = {name: part.sort_values("step") for name, part in frame.groupby("variant")}
    fixed, mistake, retained = (by[name] for name in pitfalls.RUNNING_LOSS_VARIANTS)
    assert len(fixed) == len(mistake) == len(retained) == 8
    # The number is the same whichever way it is kept: only what it drags along differs.
    np.testing.assert_allclose(mistake["running_loss"], fixed["running_loss"], rtol=1e-12)
    assert (fixed[["nodes", "saved_tensors", "saved_bytes"]] == 0).all().all()
    assert np.all(np.diff(mistake["nodes"]) > 0)
    assert np.all(np.diff(mistake["freed_tensors"]) > 0)
    # Each backward() freed its step's saved tensors; the nodes stay.
    assert (mistake["saved_bytes"] == 0).all()
    # The nodes per step are constant, so the graph grows linearly with the steps.
    per_step = np.diff(mistake["nodes"]) / np.diff(mistake["step"])
    assert np.allclose(per_step, per_step[0])
    assert np.all(np.diff(retained["saved_bytes"]) > 0)
    assert np.all(np.diff(retained["saved_tensors"]) > 0)


def test_graph_footprint_of_a_float_is_empty():
    assert pitfalls.graph_footprint(1.5) == pitfalls.GraphFootprint(0, 0, 0, 0)


def test_running_loss_growth_refuses_bad_steps_in_words():
    with pytest.raises(ValueError, match="steps must be"):
        pitfalls.running_loss_growth(DATA, lib.Config(), steps=0)


# Conventions mixed between the loops: they disagree by the predicted factor.


@pytest.mark.parametrize("batch_size", [7, 16, 1000])
@pytest.mark.parametrize("hand", CONVENTIONS)
@pytest.mark.parametrize("torch_loss", CONVENTIONS)
def test_mixed_conventions_measured_factor_equals_predicted(hand, torch_loss, batch_size):
    cfg = lib.Config(
        loss=torch_loss, manual_loss=hand, batch_size=batch_size, iterations=3, lr=1e-4
    )
    result = lib.run(DATA, cfg)
    predicted = lib.effective_lr_ratio(hand, torch_loss, min(batch_size, DATA.m))
    assert pitfalls.measured_step_ratio(result) == pytest.approx(predicted, rel=1e-12)
    assert result.manual.grad_norm[0] / result.torch.grad_norm[0] == pytest.approx(
        predicted, rel=1e-12
    )
    if predicted == 1:
        assert result.max_abs_diff <= 1e-12
    else:
        assert result.max_abs_diff > 1e-6


# float32 in the torch loop: a drift that float64 does not have.


def test_float32_drift_appears_and_stays_small():
    cfg = lib.Config(batch_size=16, iterations=200)
    single, double = lib.run(DATA, cfg.replace(torch_dtype="float32")), lib.run(DATA, cfg)
    assert single.step_diff[0] == 0  # zeros are exact in float32: the drift comes from the steps
    assert single.step_diff[1] > 0
    assert 1e-9 < single.max_abs_diff < 1e-4
    assert double.max_abs_diff < 1e-12
