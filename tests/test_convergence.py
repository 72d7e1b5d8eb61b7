"""Gradient descent reaches the closed-form least-squares solution, in both loops, for every
convention."""

import numpy as np
import pytest

import lib

LOSSES = ("mse", "half_mse", "sse")


def full_batch_lr(data: lib.Dataset, loss: str, bias: bool) -> float:
    """1 / (largest eigenvalue of the full-batch Hessian k * A^T A): fast, monotone descent."""
    A = data.with_ones() if bias else data.X
    k = {"mse": 2 / data.m, "half_mse": 1 / data.m, "sse": 2.0}[loss]
    return 1 / (k * np.linalg.eigvalsh(A.T @ A).max())


def loss_at(data: lib.Dataset, w: np.ndarray, loss: str, bias: bool) -> float:
    A = data.with_ones() if bias else data.X
    errors = A @ w - data.y
    return {
        "mse": np.mean(errors**2),
        "half_mse": np.mean(errors**2) / 2,
        "sse": np.sum(errors**2),
    }[loss]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("bias", [True, False])
def test_full_batch_converges_to_least_squares(loss, bias):
    data = lib.datasets.linear(m=120, n=3, noise=0.5, seed=1)
    cfg = lib.Config(
        lr=full_batch_lr(data, loss, bias),
        batch_size=data.m,
        iterations=300,
        loss=loss,
        bias=bias,
        init="normal",
    )
    result = lib.run(data, cfg)
    solution = lib.least_squares(data, bias)
    assert result.done and result.steps == 300
    for h in (result.manual, result.torch):
        np.testing.assert_array_equal(h.weights[0], lib.initial_weights(data, cfg))
        np.testing.assert_allclose(h.weights[-1], solution, rtol=0, atol=1e-9)
        # The last recorded loss is that of the weights before the last step, already at the
        # minimum.
        np.testing.assert_allclose(h.loss[-1], loss_at(data, solution, loss, bias), rtol=1e-9)
        # With lr <= 1/L, full-batch gradient descent never increases the loss.
        assert np.all(np.diff(h.loss) <= 1e-12 * h.loss[0])
        assert h.grad_norm[-1] < 1e-9 * h.grad_norm[0]


@pytest.mark.parametrize("loss", LOSSES)
def test_minibatches_converge_to_noiseless_true_weights(loss):
    """Without noise every batch has the same minimiser, so even SGD settles on it exactly."""
    data = lib.datasets.linear(m=64, n=3, noise=0.0, seed=5)
    batch = 16
    k = {"mse": 2 / batch, "half_mse": 1 / batch, "sse": 2.0}[loss]
    # A safe step for every batch: below 1 / (k * largest squared row norm * batch).
    lr = 0.5 / (k * batch * float((data.with_ones() ** 2).sum(axis=1).max()))
    result = lib.run(data, lib.Config(lr=lr, batch_size=batch, iterations=1500, loss=loss, seed=2))
    for h in (result.manual, result.torch):
        np.testing.assert_allclose(h.weights[-1], data.true_weights, atol=1e-8)
        np.testing.assert_allclose(h.weights[-1], lib.least_squares(data, True), atol=1e-8)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("iterations", [1, 2, 17])
def test_history_shapes_follow_the_api(bias, iterations):
    data = lib.datasets.linear(m=30, n=4, seed=0)
    cfg = lib.Config(lr=0.01, batch_size=8, iterations=iterations, bias=bias, init="normal", seed=3)
    result = lib.run(data, cfg)
    n_params = 4 + int(bias)
    assert result.steps == iterations
    for h in (result.manual, result.torch):
        assert h.loss.shape == (iterations,)
        assert h.weights.shape == (iterations + 1, n_params)
        assert h.grad_norm.shape == (iterations,)
        assert h.steps == iterations
        np.testing.assert_array_equal(h.weights[0], lib.initial_weights(data, cfg))
        # Row t + 1 follows step t: w_{t+1} = w_t - lr * grad_t, so the row gaps are lr * grad_norm.
        np.testing.assert_allclose(
            np.linalg.norm(np.diff(h.weights, axis=0), axis=1), cfg.lr * h.grad_norm, rtol=1e-9
        )
    assert result.weight_names == tuple(lib.weight_names(data, cfg))
    assert len(result.weight_names) == n_params
