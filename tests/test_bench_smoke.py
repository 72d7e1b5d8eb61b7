"""The benchmark's bare loops do what lib.run does: same batches, same init, same final weights."""

import numpy as np
import pytest

import lib
from bench import timing
from bench.loops import bare_numpy, bare_torch, bare_torch_any, check_supported, hand_loop_alone, torch_tensorboard

CASES = [
    # (m, n, Config): minibatches over several epochs with a short last batch, full batch, every loss
    (50, 3, lib.Config(lr=0.05, batch_size=8, iterations=23, loss="mse", seed=3)),
    (40, 2, lib.Config(lr=1e-3, batch_size=40, iterations=15, loss="half_mse", init="normal", seed=1)),
    (30, 4, lib.Config(lr=2e-3, batch_size=7, iterations=12, loss="sse", bias=False, seed=5)),
    (20, 1, lib.Config(lr=0.01, batch_size=6, iterations=9, zero_grad=False, init=[0.5, -1.0])),
]


@pytest.mark.parametrize(("m", "n", "cfg"), CASES)
def test_bare_loops_end_where_lib_run_ends(m, n, cfg):
    data = lib.datasets.linear(m=m, n=n, noise=0.3, seed=7)
    result = lib.run(data, cfg)
    assert result.steps == cfg.iterations
    expected = result.manual.weights[-1]
    assert not np.allclose(expected, result.manual.weights[0])  # the run moved, so agreement means something
    np.testing.assert_allclose(bare_numpy(data, cfg), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(bare_torch(data, cfg), result.torch.weights[-1], rtol=0, atol=1e-10)


def test_tensorboard_loop_trains_like_lib_run_and_writes_events(tmp_path):
    data = lib.datasets.linear(m=30, n=2, seed=2)
    cfg = lib.Config(lr=0.05, batch_size=8, iterations=10)
    final = torch_tensorboard(data, cfg, logdir=str(tmp_path))
    np.testing.assert_allclose(final, lib.run(data, cfg).torch.weights[-1], rtol=0, atol=1e-10)
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_bare_loops_refuse_what_they_do_not_implement():
    with pytest.raises(ValueError, match="optimizer"):
        check_supported(lib.Config(optimizer="adam"))


@pytest.mark.parametrize("case", timing.breadth_cases(quick=True), ids=lambda c: c.label.split(":")[0])
def test_the_optimizer_and_model_rows_compare_like_with_like(case):
    data = case.data()
    cfg = case.cfg.replace(iterations=15)
    result = lib.run(data, cfg)
    assert result.steps == 15 and not np.allclose(result.manual.weights[-1], result.manual.weights[0])
    np.testing.assert_allclose(hand_loop_alone(data, cfg), result.manual.weights[-1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(bare_torch_any(data, cfg), result.torch.weights[-1], rtol=0, atol=1e-10)
