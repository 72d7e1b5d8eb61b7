"""The hand-derived gradients equal torch autograd's, with torch as the reference (as micrograd's
tests do)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lib
from lib.twins.layout import Layout

LOSSES = ("mse", "half_mse", "sse")


def reference(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, loss: str, bias: bool
) -> tuple[float, np.ndarray]:
    """Loss and gradient at w by autograd on a fresh leaf tensor, written independently of lib."""
    weights = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    n = X.shape[1]
    outputs = torch.from_numpy(X) @ weights[:n]
    if bias:
        outputs = outputs + weights[n]
    labels = torch.from_numpy(y)
    if loss == "mse":
        value = torch.nn.MSELoss()(outputs, labels)
    elif loss == "half_mse":
        value = 0.5 * torch.nn.MSELoss()(outputs, labels)
    else:
        value = torch.nn.MSELoss(reduction="sum")(outputs, labels)
    value.backward()
    return value.item(), weights.grad.numpy().copy()


def inputs_for(X: np.ndarray, bias: bool) -> np.ndarray:
    """What the manual loop is fed: X, with a column of ones when there is a bias."""
    return np.hstack([X, np.ones((len(X), 1))]) if bias else X


def random_point(seed: int, m: int, n: int, scale: float, bias: bool):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n)) * scale
    y = rng.normal(size=m) * scale
    w = rng.normal(size=n + int(bias)) * scale
    return X, y, w


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    # Relative to the size of the gradient: both sides round in float64 in a different order.
    tolerance = 1e-12 * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=tolerance)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("bias", [True, False])
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 40),
    n=st.integers(1, 6),
    scale=st.sampled_from([1e-3, 1.0, 10.0, 1e3]),
    lr=st.floats(1e-4, 1.0),
)
def test_manual_gradient_and_loss_equal_autograd(loss, bias, seed, m, n, scale, lr):
    X, y, w = random_point(seed, m, n, scale, bias)
    w_before = w.copy()
    expected_loss, expected_grad = reference(X, y, w, loss, bias)
    step = lib.manual_loop(
        [(inputs_for(X, bias), y)], w, lr, layout=Layout("linear", n, bias), loss_name=loss
    )
    value, weights, grad = next(step)
    assert_close(grad, expected_grad)
    np.testing.assert_allclose(value, expected_loss, rtol=1e-12, atol=1e-300)
    # The update is plain SGD: w <- w - lr * grad; the caller's init is left alone.
    np.testing.assert_array_equal(w, w_before)
    assert_close(weights, w_before - lr * expected_grad)
    with pytest.raises(StopIteration):
        next(step)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("bias", [True, False])
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 30), n=st.integers(1, 5))
def test_torch_loop_gradient_equals_autograd(loss, bias, seed, m, n):
    X, y, w = random_point(seed, m, n, 1.0, bias)
    expected_loss, expected_grad = reference(X, y, w, loss, bias)
    batch = (torch.from_numpy(X), torch.from_numpy(y).unsqueeze(1))
    value, weights, grad = next(
        lib.torch_loop([batch], w, 0.1, layout=Layout("linear", n, bias), loss_name=loss)
    )
    assert_close(grad, expected_grad)
    np.testing.assert_allclose(value, expected_loss, rtol=1e-12)
    assert_close(weights, w - 0.1 * expected_grad)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("bias", [True, False])
def test_without_zero_grad_gradients_accumulate_like_torch(loss, bias):
    """Forgetting zero_grad: each step uses the sum of every gradient so far, in both loops."""
    rng = np.random.default_rng(42)
    n, lr = 3, 0.01
    batches = [(rng.normal(size=(5, n)), rng.normal(size=5)) for _ in range(4)]
    w = rng.normal(size=n + int(bias))
    layout = Layout("linear", n, bias)
    manual = lib.manual_loop(
        [(inputs_for(X, bias), y) for X, y in batches],
        w,
        lr,
        layout=layout,
        loss_name=loss,
        zero_grad=False,
    )
    twin = lib.torch_loop(
        [(torch.from_numpy(X), torch.from_numpy(y).unsqueeze(1)) for X, y in batches],
        w,
        lr,
        layout=layout,
        loss_name=loss,
        zero_grad=False,
    )
    expected_w, total = w.copy(), np.zeros_like(w)
    for (X, y), (_, w_m, g_m), (_, w_t, g_t) in zip(batches, manual, twin, strict=True):
        total = total + reference(X, y, expected_w, loss, bias)[1]
        expected_w = expected_w - lr * total
        assert_close(g_m, total)
        assert_close(g_t, total)
        assert_close(w_m, expected_w)
        assert_close(w_t, expected_w)


def test_conventions_differ_by_the_documented_factor():
    """mse = 2 * half_mse and sse = batch * mse, for gradients as for effective_lr_ratio."""
    m = 9
    X, y, w = random_point(7, m, 3, 1.0, True)
    grads = {loss: reference(X, y, w, loss, True)[1] for loss in LOSSES}
    for loss in LOSSES:
        for other in LOSSES:
            ratio = lib.effective_lr_ratio(loss, other, m)
            assert_close(grads[loss], ratio * grads[other])
    assert lib.effective_lr_ratio("mse", "half_mse", m) == 2
    assert lib.effective_lr_ratio("sse", "mse", m) == m
