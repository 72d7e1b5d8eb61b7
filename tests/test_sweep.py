"""lib.sweep: every cell is the lib.run of its Config, the grid is checked in words, Stop keeps what
finished, no worker outlives a sweep, and a sweep keeps the server's memory budget."""

import dataclasses
import math
import os

import numpy as np
import psutil
import pytest
import torch

import lib
from lib.lessons import sweep as sweeping
from lib.lessons.explain import AGREE, agreement

DATA = lib.datasets.linear(m=40, n=2, noise=0.2, seed=3)
CFG = lib.Config(iterations=30)


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def alive(pids) -> list[int]:
    return [
        pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]


def test_each_cell_is_the_run_of_its_config_and_the_frame_is_tidy():
    before = children()
    cfg = CFG.replace(iterations=80)
    s = lib.sweep(DATA, cfg, [0.3, 0.01, 1000.0], [40, 8])  # 1000 diverges
    assert s.done and s.stopped is None and s.total == 6 and s.lrs == (0.01, 0.3, 1000.0)
    frame = s.frame()
    assert list(frame.columns) == [
        "lr",
        "batch_size",
        "loop",
        "final_loss",
        "best_loss",
        "diverged_at",
        "max_abs_diff",
        "seconds",
    ]
    assert len(frame) == 12 and set(frame["loop"]) == {"manual", "torch"}
    diverged = 0
    for row in frame.itertuples():
        result = lib.run(DATA, cfg.replace(lr=row.lr, batch_size=row.batch_size))
        h = getattr(result, row.loop)
        assert row.final_loss == h.loss[-1] or (
            math.isnan(row.final_loss) and math.isnan(h.loss[-1])
        )
        assert row.best_loss == h.loss[np.isfinite(h.loss)].min()
        assert row.max_abs_diff == result.max_abs_diff
        if result.diverged_at is None:
            assert row.diverged_at is pd_na()
        else:
            assert row.diverged_at == result.diverged_at
            diverged += 1
    assert diverged == 4  # lr 1000 at both batch sizes, both loops: the grid has a diverged cell
    assert all(c.max_relative_diff <= AGREE for c in s.cells)
    pids = {c.pid for c in s.cells}
    assert not pids & before and os.getpid() not in pids and len(pids) <= sweeping.cores()
    assert not alive({c.pid for c in s.cells}), "a worker outlived its sweep"


def pd_na():
    import pandas as pd

    return pd.NA


# A normal init: from zeros, a balanced two-class problem's first gradient has entries that are
# rounding noise, which an adaptive optimizer divides by their own size (see
# test_the_agreement_measure_sees_loops_that_part).
RUNS = {
    "linear": (DATA, {}),
    "logistic": (lib.datasets.blobs(m=40, seed=1), {"model": "logistic", "init": "normal"}),
    "mlp": (lib.datasets.moons(m=40, seed=1), {"model": "mlp", "hidden": 4, "init": "normal"}),
}


@pytest.mark.parametrize("optimizer", lib.OPTIMIZERS)
@pytest.mark.parametrize("model", RUNS)
def test_every_model_and_optimizer_maps_and_the_twins_agree_on_every_cell(model, optimizer):
    data, fields = RUNS[model]
    cfg = lib.Config(iterations=10, optimizer=optimizer, loss=None, **fields)
    s = lib.sweep(data, cfg, [0.05], [8, 40])
    assert s.done and len(s.frame()) == 4
    for c in s.cells:
        assert c.max_relative_diff <= AGREE, (c.lr, c.batch_size, c.max_relative_diff)
        result = lib.run(data, cfg.replace(lr=c.lr, batch_size=c.batch_size))
        assert c.final_loss == (result.manual.loss[-1], result.torch.loss[-1])


def test_the_agreement_measure_sees_loops_that_part():
    # Adagrad from zero weights on balanced blobs: the bias's first gradient is rounding noise,
    # divided by its own size, so the loops part from step 0 (lib.run says the same).
    data, cfg = (
        RUNS["logistic"][0],
        lib.Config(model="logistic", optimizer="adagrad", iterations=15),
    )
    s = lib.sweep(data, cfg, [0.01], [40])
    expected = agreement(lib.run(data, cfg.replace(lr=0.01, batch_size=40)))["max_relative"]
    assert s.cells[0].max_relative_diff == expected > AGREE


@pytest.mark.parametrize(
    ("lrs", "sizes", "words"),
    [
        ([], [8], "lrs is empty"),
        ([0.1], [], "batch_sizes is empty"),
        ([0.1, -1.0], [8], "lrs must be finite numbers > 0; got -1.0"),
        ([0.0], [8], "lrs must be finite numbers > 0; got 0.0"),
        ([math.nan], [8], "lrs must be finite numbers > 0; got nan"),
        ([math.inf], [8], "lrs must be finite numbers > 0; got inf"),
        ([True], [8], "lrs must be finite numbers > 0; got True"),
        ("0.1", [8], "lrs must be a list of numbers"),
        ([0.1], [0], "batch_sizes must be whole numbers >= 1; got 0"),
        ([0.1], [2.5], "batch_sizes must be whole numbers >= 1; got 2.5"),
        ([0.1], [math.inf], "batch_sizes must be whole numbers >= 1; got inf"),
        (list(np.geomspace(1e-3, 1, 21)), list(range(1, 21)), "capped at 400 cells"),
    ],
)
def test_a_bad_grid_is_a_value_error_in_words(lrs, sizes, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        lib.sweep(DATA, CFG, lrs, sizes)


def test_cells_times_iterations_is_capped_and_the_message_names_the_cap():
    cells = 40
    most = sweeping.MAX_SWEEP_STEPS // cells
    cfg = lib.Config(iterations=most + 1)
    with pytest.raises(ValueError, match=r"cells x iterations is capped at 2,000,000") as err:
        sweeping.check_sweep(DATA, cfg, list(np.geomspace(0.01, 1, 8)), [1, 2, 4, 8, 16])
    assert f"at most {most:,} iterations" in str(err.value)
    # exactly at the cap: accepted
    sweeping.check_sweep(
        DATA, cfg.replace(iterations=most), list(np.geomspace(0.01, 1, 8)), [1, 2, 4, 8, 16]
    )


def test_a_cell_lib_run_refuses_is_named():
    cfg = lib.Config(iterations=5, drop_last=True)
    with pytest.raises(ValueError, match=r"the cell lr 0\.1, batch size 64 cannot run: drop_last"):
        lib.sweep(DATA, cfg, [0.1], [8, 64])


def test_bad_options_are_value_errors_in_words():
    with pytest.raises(ValueError, match="progress must be a function"):
        lib.sweep(DATA, CFG, [0.1], [8], progress=3)
    with pytest.raises(ValueError, match="workers must be None"):
        lib.sweep(DATA, CFG, [0.1], [8], workers=0)
    with pytest.raises(ValueError, match="progress_every must be a number of seconds > 0"):
        lib.sweep(DATA, CFG, [0.1], [8], progress_every=0)
    with pytest.raises(ValueError, match="time_limit must be None"):
        lib.sweep(DATA, CFG, [0.1], [8], time_limit=-1)


def test_stop_keeps_the_finished_cells_and_leaves_no_worker():
    cfg, seen, workers = lib.Config(iterations=300), [], set()

    def progress(partial):
        seen.append(len(partial.cells))
        workers.update(children())
        # the workers bind nothing to the network
        assert not [c for pid in children() for c in psutil.Process(pid).net_connections()]
        return len(partial.cells) >= 1

    s = lib.sweep(DATA, cfg, list(np.geomspace(0.001, 0.01, 8)), [8], progress, workers=2)
    assert s.stopped == "stopped" and seen[-1] == len(s.cells) and 1 <= len(s.cells) < 8
    assert "the finished cells are kept" in s.message()
    for c in s.cells:
        result = lib.run(DATA, cfg.replace(lr=c.lr, batch_size=8))
        assert c.steps == 300 and c.final_loss[0] == result.manual.loss[-1]
    assert workers and not alive(workers), "a worker outlived a stopped sweep"


def test_an_error_in_progress_stops_the_running_cells_and_every_worker():
    workers = set()

    def progress(partial):
        workers.update(children())
        raise KeyboardInterrupt  # as a page's rerun interrupts its script at an st.* call

    # Cells of a million steps each would run for minutes: the sweep ends at the first report.
    with pytest.raises(KeyboardInterrupt):
        lib.sweep(DATA, lib.Config(iterations=1_000_000), [0.01, 0.02], [8], progress)
    assert workers and not alive(workers)


def test_the_time_limit_stops_long_cells_and_keeps_none_unfinished():
    before = children()
    s = lib.sweep(DATA, lib.Config(iterations=1_000_000), [0.01, 0.02], [8], time_limit=0.5)
    assert s.stopped == "time limit" and s.cells == ()
    assert "time limit" in s.message()
    assert children() <= before


def test_a_worker_runs_one_torch_thread():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context(sweeping.START_METHOD)
    stop = context.Event()
    with ProcessPoolExecutor(1, context, sweeping._start_worker, (DATA, CFG, stop)) as pool:
        assert pool.submit(torch.get_num_threads).result() == 1
        assert pool.submit(os.getpid).result() != os.getpid()


def test_a_sweep_keeps_the_server_memory_budget():
    from test_deploy import MEMORY_BUDGET_MB as DEPLOY_BUDGET

    from bench.sweep import MEMORY_BUDGET_MB, sweep_memory

    assert MEMORY_BUDGET_MB == DEPLOY_BUDGET
    m = sweep_memory("fork", quick=True)
    assert m["cells"] == 6
    # the measurement counts the workers: the tree grew while they ran
    assert m["processes"] == 1 + min(sweeping.cores(), 6) and m["peak_mb"] > m["baseline_mb"]
    assert m["peak_mb"] < MEMORY_BUDGET_MB, m


# ---------------------------------------------------------------- the map's sentences and charts


@pytest.fixture(scope="module")
def the_map() -> lib.Sweep:
    return lib.sweep(DATA, lib.Config(iterations=80), [0.01, 0.3, 1000.0], [8, 40])


def test_the_agreement_sentence_checks_every_cell_and_can_say_they_part(the_map):
    MAP = the_map
    assert sweeping.agreement_sentence(MAP).startswith("✓ On every one of the 6 finished cells")
    assert "the diverged cells included" in sweeping.agreement_sentence(MAP)
    data = RUNS["logistic"][0]
    cfg = lib.Config(model="logistic", optimizer="adagrad", iterations=15)
    apart = sweeping.agreement_sentence(lib.sweep(data, cfg, [0.01], [40]))
    assert "✓" not in apart and apart.startswith("On 1 of the 1 cells the two loops differ")
    assert "lr 0.01 with batch 40" in apart
    assert sweeping.agreement_sentence(dataclasses.replace(MAP, cells=())) == ""


def test_the_limit_line_is_the_training_rows_full_batch_limit_and_says_when_it_is_not_drawn(
    the_map,
):
    MAP = the_map
    cfg = lib.Config(val_fraction=0.25)
    limit, why = sweeping.full_batch_limit(DATA, cfg)
    train = lib.engine.data.split_rows(DATA.m, 0.25, 0)[0]
    rows = lib.Dataset(DATA.X[train], DATA.y[train])
    assert why == "" and limit == lib.stability_limit(rows, cfg.replace(batch_size=len(train)))
    assert limit != lib.stability_limit(DATA, lib.Config(batch_size=DATA.m))  # the rows matter
    text = sweeping.limit_sentence(limit, why, MAP, DATA.m)
    assert f"2/λ_max = {limit:.3g}" in text and "on the full-batch row" in text
    narrow = dataclasses.replace(MAP, batch_sizes=(8,))
    assert "not in this grid" in sweeping.limit_sentence(limit, why, narrow, DATA.m)
    far = dataclasses.replace(MAP, lrs=(1e-5, 1e-4))
    assert "lies outside this range" in sweeping.limit_sentence(limit, why, far, DATA.m)
    none, why = sweeping.full_batch_limit(DATA, lib.Config(optimizer="adam", scheduler="cosine"))
    assert none is None and why == "the optimizer is adam, a schedule changes the lr"
    assert "No 2/λ_max line" in sweeping.limit_sentence(none, why, MAP, DATA.m)


def test_the_maps_mark_diverged_cells_with_their_step_and_draw_the_line_only_inside(the_map):
    MAP = the_map
    from lib.charts import diff_map_chart, loss_map_chart, map_cells

    cells = map_cells(MAP, full=40)
    bad = cells[cells["diverged"]]
    assert len(bad) == 4 and bad["log_loss"].isna().all()
    for row in bad.itertuples():
        assert row.text == f"✕ {MAP.cell(row.lr, row.batch_size).diverged_at}"
    assert set(cells["batch"]) == {"8", "full (40)"}

    def layers(chart) -> str:
        return str(chart.to_dict())

    limit = 0.5
    assert "2/λ_max = 0.5" in layers(loss_map_chart(MAP, "manual", full=40, limit=limit))
    assert "2/λ_max" not in layers(loss_map_chart(MAP, "manual", full=40, limit=1e6))
    # A map still filling in keeps the whole grid's axes.
    partial = dataclasses.replace(MAP, cells=MAP.cells[:1])
    spec = loss_map_chart(partial, "torch", full=40, select=True).to_dict()
    lo, hi = sweeping.lr_edges(MAP.lrs)
    assert [lo[0], hi[-1]] == spec["layer"][0]["encoding"]["x"]["scale"]["domain"]
    assert [p["name"] for p in spec["params"]] == ["cell"]  # the click selection
    assert diff_map_chart(partial, full=40).to_dict()


def test_the_colours_stop_at_the_largest_first_loss_and_the_page_says_so_only_then(the_map):
    from lib.charts.sweep import loss_domain

    grown = lib.sweep(DATA, CFG, [0.01, 100.0], [8, 40])  # lr 100 grows for 30 steps, still finite
    cap = sweeping.color_cap(grown)
    assert cap == max(x for c in grown.cells for x in c.first_loss)
    over = [c for c in grown.cells if c.diverged_at is None and max(c.final_loss) >= cap]
    assert len(over) == 2 and all(c.lr == 100.0 for c in over)
    assert loss_domain(grown)[1] == math.log10(cap)
    assert sweeping.cap_sentence(grown).startswith(f"The colours stop at {cap:.3g}")
    assert "the 2 cells that ended at or above it are" in sweeping.cap_sentence(grown)
    calm = lib.sweep(DATA, CFG, [0.01, 0.1], [8])
    assert sweeping.cap_sentence(calm) == "" and loss_domain(calm)[1] < math.log10(cap)
    assert sweeping.cap_sentence(the_map) == ""  # its big-lr cells diverged: grey, not capped


def test_one_sweep_at_a_time_holds_the_cores_and_a_waiting_one_can_be_stopped():
    seen = []

    def progress(partial):
        seen.append((partial.waiting, len(partial.cells)))
        return len(seen) >= 2

    assert sweeping.CORES.acquire(timeout=5)  # another sweep of this process is running
    try:
        s = lib.sweep(DATA, CFG, [0.01], [8], progress, progress_every=0.05)
        assert seen == [(True, 0), (True, 0)] and s.stopped == "stopped" and s.cells == ()
        late = lib.sweep(DATA, CFG, [0.01], [8], time_limit=0.2)
        assert late.stopped == "time limit" and late.waiting and late.cells == ()
    finally:
        sweeping.CORES.release()
    free = lib.sweep(DATA, CFG, [0.01], [8])
    assert free.done and not free.waiting and not sweeping.CORES.locked()


def test_a_map_where_every_cell_diverged_still_draws():
    from lib.charts import loss_map_chart
    from lib.charts.sweep import loss_domain

    wild = lib.sweep(DATA, lib.Config(iterations=80), [1000.0, 2000.0], [40])
    assert all(c.diverged_at is not None for c in wild.cells) and loss_domain(wild) is None
    spec = loss_map_chart(wild, "manual", full=40, select=True).to_dict()
    assert "✕" in str(spec["datasets"])  # the grey cells and their steps are drawn
