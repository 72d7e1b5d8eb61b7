"""lib.run: both loops see the same init and the same batches, and agree to 1e-10 on every
recorded weight."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st

import lib

LOSSES = ("mse", "half_mse", "sse")


@st.composite
def datasets(draw):
    return lib.datasets.linear(
        m=draw(st.integers(1, 60)),
        n=draw(st.integers(1, 4)),
        noise=draw(st.sampled_from([0.0, 0.1, 1.0, 3.0])),
        seed=draw(st.integers(0, 1000)),
    )


@st.composite
def configs(draw, data: lib.Dataset, lr=None, zero_grad=None):
    bias = draw(st.booleans())
    init = draw(
        st.one_of(
            st.just("zeros"),
            st.just("normal"),
            st.lists(st.floats(-5, 5), min_size=data.n + int(bias), max_size=data.n + int(bias)),
        )
    )
    # The whole loop's data side (issue 12): a held-out share, micro-batches, drop_last.
    val_fraction = draw(st.sampled_from([0.0, 0.0, 0.2])) if data.m > 1 else 0.0
    train_rows = len(lib.engine.data.split_rows(data.m, val_fraction, 0)[0])
    # Up to 80 against m <= 60: full batch (batch_size >= m) is drawn often.
    batch_size = draw(st.integers(1, 80))
    return lib.Config(
        lr=lr if lr is not None else 10 ** draw(st.floats(-4, 0.5)),
        batch_size=batch_size,
        accumulate=draw(st.sampled_from([1, 1, 2, 3])),
        val_fraction=val_fraction,
        drop_last=draw(st.booleans()) and batch_size <= train_rows,
        iterations=draw(st.integers(1, 30)),
        loss=draw(st.sampled_from(LOSSES)),
        bias=bias,
        init=init,
        seed=draw(st.integers(0, 2**32 - 1)),
        zero_grad=zero_grad if zero_grad is not None else draw(st.booleans()),
    )


def check_histories(data: lib.Dataset, cfg: lib.Config, result: lib.Result) -> None:
    """Shapes, the shared init, and the recorded per-step difference."""
    n_params = cfg.n_params(data.n)
    init = lib.initial_weights(data, cfg)
    if not isinstance(cfg.init, str):
        np.testing.assert_array_equal(init, cfg.init)
    for h in (result.manual, result.torch):
        assert h.loss.shape == (result.steps,)
        assert h.grad_norm.shape == (result.steps,)
        assert h.weights.shape == (result.steps + 1, n_params)
        # Both loops start from the very same numbers.
        np.testing.assert_array_equal(h.weights[0], init)
    assert result.torch.steps == result.manual.steps
    assert result.step_diff.shape == (result.steps + 1,)
    assert result.step_diff[0] == 0.0
    if result.stopped is None:
        assert result.steps == cfg.iterations and result.diverged_at is None
    else:
        assert result.stopped == "diverged"


@given(data=st.data(), dataset=datasets())
def test_run_parity_over_random_configurations(data, dataset):
    """Every finite recorded weight agrees to 1e-10, relative to its size once weights outgrow 1.

    A run with a too-large lr can grow weights to 1e80 without yet overflowing; float64 then holds
    about 16 significant digits, so agreement is measured against max(1, |w|): absolute 1e-10 for
    any run whose weights stay within +-1, which is every sensible run.
    """
    cfg = data.draw(configs(dataset))
    result = lib.run(dataset, cfg)
    note(f"steps={result.steps} stopped={result.stopped} max_abs_diff={result.max_abs_diff}")
    check_histories(dataset, cfg, result)
    wm, wt = result.manual.weights, result.torch.weights
    finite_rows = np.isfinite(wm).all(axis=1) & np.isfinite(wt).all(axis=1)
    if result.stopped is None:
        assert finite_rows.all()
    else:
        # Only the last row, the step that diverged, may be non-finite.
        assert finite_rows[:-1].all()
    scale = np.maximum(1.0, np.maximum(np.abs(wm), np.abs(wt)).max(axis=1))
    diff = np.abs(wm - wt).max(axis=1)
    assert np.all(diff[finite_rows] <= 1e-10 * scale[finite_rows])
    np.testing.assert_array_equal(result.step_diff[finite_rows], diff[finite_rows])
    # The losses and gradient norms agree to the same standard, wherever they are finite.
    for a, b in (
        (result.manual.loss, result.torch.loss),
        (result.manual.grad_norm, result.torch.grad_norm),
    ):
        both = np.isfinite(a) & np.isfinite(b)
        np.testing.assert_allclose(a[both], b[both], rtol=1e-9, atol=1e-10)


def stable_lr(data: lib.Dataset, cfg: lib.Config, fraction: float) -> float:
    """A learning rate below 2 / (largest curvature of any batch's loss), so no step can blow up."""
    A = data.with_ones() if cfg.bias else data.X
    b = min(cfg.batch_size, len(lib.engine.data.split_rows(data.m, cfg.val_fraction, cfg.seed)[0]))
    k = {"mse": 2 / b, "half_mse": 1 / b, "sse": 2.0}[cfg.loss]
    # Any batch's Hessian k * A_b^T A_b has its largest eigenvalue below k * ||A||_F^2.
    return fraction * 2 / (k * float((A**2).sum()))


@given(data=st.data(), dataset=datasets(), fraction=st.floats(0.05, 0.95))
def test_run_parity_is_absolute_1e_10_when_the_run_is_stable(data, dataset, fraction):
    cfg = data.draw(configs(dataset, lr=1.0, zero_grad=True))
    cfg = cfg.replace(lr=stable_lr(dataset, cfg, fraction))
    result = lib.run(dataset, cfg)
    check_histories(dataset, cfg, result)
    assert result.stopped is None
    assert result.max_abs_diff <= 1e-10
    assert result.max_abs_diff == result.step_diff.max()


def replay(data: lib.Dataset, cfg: lib.Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run rebuilt from its parts: lib.batch_indices for the order, torch autograd for the
    gradients."""
    A = torch.tensor(data.with_ones() if cfg.bias else data.X)
    y = torch.tensor(data.y)
    w = torch.from_numpy(lib.initial_weights(data, cfg))
    order = lib.batch_indices(data.m, cfg.batch_size, cfg.seed)
    total = torch.zeros_like(w)
    losses, weights, norms = [], [w.numpy().copy()], []
    for _ in range(cfg.iterations):
        idx = next(order)
        leaf = w.clone().requires_grad_(True)
        errors = A[idx] @ leaf - y[idx]
        loss = {
            "mse": (errors**2).mean(),
            "half_mse": (errors**2).mean() / 2,
            "sse": (errors**2).sum(),
        }[cfg.loss]
        loss.backward()
        total = leaf.grad if cfg.zero_grad else total + leaf.grad
        w = w - cfg.lr * total
        losses.append(loss.item())
        norms.append(float(total.norm()))
        weights.append(w.numpy().copy())
    return np.array(losses), np.array(weights), np.array(norms)


@pytest.mark.parametrize(
    "cfg",
    [
        lib.Config(lr=0.05, batch_size=7, iterations=25, loss="mse", seed=3),
        lib.Config(
            lr=0.1, batch_size=10, iterations=12, loss="half_mse", bias=False, init="normal", seed=8
        ),
        lib.Config(
            lr=0.002, batch_size=1, iterations=40, loss="sse", init=[1, -1, 0.5], bias=False
        ),
        lib.Config(
            lr=0.01, batch_size=6, iterations=15, loss="mse", zero_grad=False, init="normal", seed=1
        ),
        lib.Config(lr=0.05, batch_size=500, iterations=10, loss="half_mse"),
    ],
    ids=["mse-batch7", "half-nobias-normal", "sse-sgd-explicit", "no-zero-grad", "full-batch"],
)
def test_run_matches_a_replay_from_batch_indices(cfg):
    """Both recorded histories follow lib.batch_indices' order from initial_weights, step for
    step."""
    data = lib.datasets.linear(m=20, n=3, noise=0.3, seed=4)
    result = lib.run(data, cfg)
    losses, weights, norms = replay(data, cfg)
    for h in (result.manual, result.torch):
        np.testing.assert_allclose(h.loss, losses, rtol=1e-10)
        np.testing.assert_allclose(h.weights, weights, rtol=0, atol=1e-10)
        np.testing.assert_allclose(h.grad_norm, norms, rtol=1e-10)


def test_same_config_same_numbers_and_seed_changes_the_order():
    data = lib.datasets.linear(m=50, n=2, seed=0)
    cfg = lib.Config(lr=0.05, batch_size=8, iterations=20, init="normal", seed=5)
    first, again = lib.run(data, cfg), lib.run(data, cfg)
    np.testing.assert_array_equal(first.manual.weights, again.manual.weights)
    np.testing.assert_array_equal(first.torch.weights, again.torch.weights)
    other = lib.run(data, cfg.replace(seed=6))
    assert not np.array_equal(first.manual.loss, other.manual.loss)


def test_full_batch_ignores_the_seed():
    data = lib.datasets.linear(m=30, n=2, seed=0)
    cfg = lib.Config(lr=0.05, batch_size=30, iterations=10)
    a, b = lib.run(data, cfg), lib.run(data, cfg.replace(seed=99, batch_size=1000))
    np.testing.assert_array_equal(a.manual.weights, b.manual.weights)
    assert math.isfinite(a.max_abs_diff)
