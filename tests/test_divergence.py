"""A run that blows up stops at its first non-finite step, says so in words, and keeps the finite
part."""

import re
import warnings

import numpy as np
import pytest

import lib


def run_quietly(data: lib.Dataset, cfg: lib.Config) -> lib.Result:
    """lib.run with every warning turned into an error: overflow must be handled, not reported."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # lib must set its own errstate around the arithmetic that overflows.
        with np.errstate(all="raise"):
            return lib.run(data, cfg)


def first_nonfinite_step(result: lib.Result) -> int | None:
    """The first step t whose loss or following weights (row t + 1) are not finite in either loop.

    This is the issue's definition of diverged_at: a loss or a weight, not a derived quantity.
    """
    bad = np.zeros(result.steps, dtype=bool)
    for h in (result.manual, result.torch):
        bad |= ~np.isfinite(h.loss) | ~np.isfinite(h.weights[1:]).all(axis=1)
    found = np.flatnonzero(bad)
    return int(found[0]) if found.size else None


def check_diverged(result: lib.Result) -> int:
    """Everything the API promises about a diverged run; returns the step it diverged at."""
    k = result.diverged_at
    assert result.stopped == "diverged" and not result.done
    assert isinstance(k, int) and 0 <= k < result.config.iterations
    # It stopped at the first non-finite step, keeping that step and nothing after it.
    assert result.steps == k + 1
    assert first_nonfinite_step(result) == k
    for h in (result.manual, result.torch):
        assert (
            h.loss.shape == (k + 1,)
            and h.grad_norm.shape == (k + 1,)
            and h.weights.shape[0] == k + 2
        )
        assert np.isfinite(h.loss[:k]).all() and np.isfinite(h.grad_norm[:k]).all()
        assert np.isfinite(h.weights[: k + 1]).all()
    message = result.message()
    assert re.fullmatch(
        rf"Diverged at step {k}: (a weight|weights|loss|gradient norm) became (-?inf|nan)\. .*",
        message,
    ), message
    assert "smaller learning rate" in message
    assert np.isfinite(result.max_abs_diff)
    return k


@pytest.mark.parametrize("batch_size", [32, 200])
@pytest.mark.parametrize("loss", ["mse", "sse"])
def test_lr_10_diverges_at_the_first_non_finite_step(batch_size, loss, capfd):
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    cfg = lib.Config(lr=10, batch_size=batch_size, iterations=1000, loss=loss)
    result = run_quietly(data, cfg)
    k = check_diverged(result)
    if loss == "mse":
        assert "loss became inf" in result.message()
    assert f"than {cfg.lr:g}" in result.message()
    # Nothing printed: lib reports in its return value only.
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    # Stopping one step earlier gives a complete, finite run with exactly the same numbers.
    if k > 0:
        before = run_quietly(data, cfg.replace(iterations=k))
        assert (
            before.done
            and before.diverged_at is None
            and before.message() == f"Ran all {k:,} steps."
        )
        for h, full in ((before.manual, result.manual), (before.torch, result.torch)):
            assert np.isfinite(h.loss).all() and np.isfinite(h.weights).all()
            np.testing.assert_array_equal(h.weights, full.weights[: k + 1])
            np.testing.assert_array_equal(h.loss, full.loss[:k])


def test_divergence_is_deterministic_and_the_frame_holds_the_finite_part():
    data = lib.datasets.linear(seed=3)
    cfg = lib.Config(lr=10, batch_size=200, iterations=400)
    a, b = run_quietly(data, cfg), run_quietly(data, cfg)
    assert a.diverged_at == b.diverged_at
    frame = a.frame()
    assert len(frame) > 0
    # Only the diverging step itself may carry a non-finite value.
    nonfinite = frame[~np.isfinite(frame["value"])]
    assert set(nonfinite["step"]) <= {a.diverged_at, a.diverged_at + 1}


def test_a_step_that_overflows_the_weights_is_caught():
    """Loss 1e288 and gradient 2e298 are finite, but lr * gradient is not: the weights after step
    0 are -inf."""
    data = lib.Dataset([[1e154]], [0.0])
    result = run_quietly(
        data, lib.Config(lr=1e11, batch_size=1, iterations=5, init=[1e-10], bias=False)
    )
    k = check_diverged(result)
    assert k == 0
    assert np.isfinite(result.manual.loss[0]) and np.isneginf(result.manual.weights[1, 0])
    assert "weight became -inf" in result.message()


def test_gradient_norm_overflow_with_finite_gradient_is_caught():
    """Scaled features: g @ g overflows while g, the loss and the weights are finite.

    That is not divergence yet; the run must go on to the step whose loss is really inf.
    """
    base = lib.datasets.linear(seed=7)
    data = lib.Dataset(base.X * 30, base.y)
    result = run_quietly(data, lib.Config(lr=10, batch_size=200, iterations=100, seed=7))
    check_diverged(result)


def test_huge_but_finite_losses_do_not_crash_the_run():
    """Two finite losses near the float64 limit (1.44e308 each) overflow only when added together.

    One sample with an unscaled target of 1.2e154 is enough. The run must not raise; whatever it
    reports must be consistent with the numbers it recorded.
    """
    data = lib.Dataset([[0.001]], [1.2e154])
    result = run_quietly(data, lib.Config(lr=0.1, iterations=5, bias=False))
    assert np.isfinite(result.manual.loss[0]) and np.isfinite(result.torch.loss[0])
    if result.stopped == "diverged":
        check_diverged(result)
    else:
        assert result.done and first_nonfinite_step(result) is None
