"""The benchmark's bare loops do what lib.run does: same batches, same init, same final weights."""

import numpy as np
import pytest

import lib
from bench import timing
from bench.loops import (
    bare_numpy,
    bare_torch,
    bare_torch_any,
    check_supported,
    hand_loop_alone,
    torch_tensorboard,
)

CASES = [
    # (m, n, Config): minibatches over several epochs with a short last batch, full batch, every
    # loss
    (50, 3, lib.Config(lr=0.05, batch_size=8, iterations=23, loss="mse", seed=3)),
    (
        40,
        2,
        lib.Config(lr=1e-3, batch_size=40, iterations=15, loss="half_mse", init="normal", seed=1),
    ),
    (30, 4, lib.Config(lr=2e-3, batch_size=7, iterations=12, loss="sse", bias=False, seed=5)),
    (20, 1, lib.Config(lr=0.01, batch_size=6, iterations=9, zero_grad=False, init=[0.5, -1.0])),
]


@pytest.mark.parametrize(("m", "n", "cfg"), CASES)
def test_bare_loops_end_where_lib_run_ends(m, n, cfg):
    data = lib.datasets.linear(m=m, n=n, noise=0.3, seed=7)
    result = lib.run(data, cfg)
    assert result.steps == cfg.iterations
    expected = result.manual.weights[-1]
    # The run moved, so agreement means something.
    assert not np.allclose(expected, result.manual.weights[0])
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


@pytest.mark.parametrize(
    "case", timing.breadth_cases(quick=True), ids=lambda c: c.label.split(":")[0]
)
def test_the_optimizer_and_model_rows_compare_like_with_like(case):
    data = case.data()
    cfg = case.cfg.replace(iterations=15)
    result = lib.run(data, cfg)
    assert result.steps == 15 and not np.allclose(
        result.manual.weights[-1], result.manual.weights[0]
    )
    np.testing.assert_allclose(
        hand_loop_alone(data, cfg), result.manual.weights[-1], rtol=0, atol=1e-10
    )
    np.testing.assert_allclose(
        bare_torch_any(data, cfg), result.torch.weights[-1], rtol=0, atol=1e-10
    )


def test_the_gap_grid_measures_and_tabulates_tiny_sizes():
    from bench import gap

    logged = []
    rows = gap.measure(ns=(2,), batches=(1, 4), rounds=2, repeats=3, budget=0.01, log=logged.append)
    assert [(r["n"], r["batch"]) for r in rows] == [(2, 1), (2, 4)] and len(logged) == 2
    assert all(
        r["manual_us"] > 0 and r["torch_us"] > 0 and r["ratio"] == r["torch_us"] / r["manual_us"]
        for r in rows
    )
    table = gap.table(rows)
    assert table[0] == "| features n | batch 1 | batch 4 |" and table[2].startswith("| 2 | **")
    with pytest.raises(ValueError, match="rounds"):
        gap.measure(ns=(2,), batches=(1,), rounds=0)


def test_the_gap_section_replaces_its_old_copy_and_keeps_the_rest(tmp_path):
    from bench import gap

    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark\n\nthe main table\n")
    gap.write_section(out, [gap.HEADING, "", "first"])
    gap.write_section(out, [gap.HEADING, "", "second"])
    assert out.read_text() == f"# Benchmark\n\nthe main table\n\n{gap.HEADING}\n\nsecond\n"
    assert gap.kept_section(out) == [gap.HEADING, "", "second"]


def test_python_m_bench_gap_quick_runs_and_writes_its_section(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from bench import gap

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "RESULTS.md"
    out.write_text("# Benchmark\n\nkept\n")
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--gap", "--quick", "--out", str(out)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert text.startswith("# Benchmark\n\nkept\n\n" + gap.HEADING)
    assert "| features n | batch 1 | batch 32 |" in text and "| 30 | **" in text


def test_the_gap_breakdown_has_a_row_per_phase_and_the_whole_step():
    from bench import gap
    from lib import speed

    lines = gap.breakdown(cases=((2, 4),), tries=1, budget=0.01)
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| phase")]
    assert [row.split(":")[0] for row in rows[:-1]] == [f"| {p}" for p in speed.PHASES]
    assert rows[-1].startswith("| whole step | **") and "one-row batches" in lines[-1]
    with pytest.raises(ValueError, match="tries"):
        gap.breakdown(tries=0)
