"""The Learning-rate map page through AppTest: the default map draws and its words are the sweep's,
a chosen cell opens on the Compare page with its settings, the caps and bad grids are refused in
words, and an interrupted sweep keeps its finished cells."""

import dataclasses
import urllib.parse
from pathlib import Path

import psutil
from streamlit.testing.v1 import AppTest

import lib
from pages.parts.cached import LAST_RUN

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/lr_map.py"
TIMEOUT = 120


def open_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.switch_page(PAGE)
    return at.run()


def words(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.warning, *at.info, *at.error]
    return "\n".join(str(e.value) for e in parts)


def link_params(at: AppTest) -> dict[str, str]:
    (button,) = at.get("link_button")
    url = urllib.parse.urlsplit(button.proto.url)
    assert url.path == "/compare"
    return dict(urllib.parse.parse_qsl(url.query))


def test_the_default_map_draws_and_a_chosen_cell_opens_on_the_compare_page():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    at = open_page()
    assert not at.exception
    _, sweep = at.session_state["lrmap_result"]
    assert sweep.done and sweep.total == 18 and sweep.batch_sizes == (8, 32, 200)
    assert len(at.get("vega_lite_chart")) == 3  # manual, torch, |manual - torch|
    text = words(at)
    assert sweep.message() in text
    diverged = [c for c in sweep.cells if c.diverged_at is not None]
    assert diverged and f"Grey cells diverged ({len(diverged)} of 18)" in text
    limit = lib.stability_limit(lib.datasets.linear(m=200, n=3, noise=0.1, seed=0), lib.Config())
    assert f"2/λ_max = {limit:.3g}" in text and "on the full-batch row" in text
    assert "✓ On every one of the 18 finished cells" in text
    # no worker outlives the sweep
    assert not [p for p in psutil.Process().children(recursive=True) if p.pid not in before]

    # The diverged full-batch cell, chosen, opens on the Compare page with its lr and batch size.
    cell = max(diverged, key=lambda c: (c.lr, c.batch_size))
    label = next(
        o
        for o in at.selectbox(key="lrmap_cell").options
        if "full batch" in o and f"lr {cell.lr:g} " in o
    )
    at.selectbox(key="lrmap_cell").set_value(label).run()
    params = link_params(at)
    assert params == {"lr": f"{cell.lr:g}", "batch_size": str(cell.batch_size)}
    compare = AppTest.from_file(APP, default_timeout=TIMEOUT)
    compare.query_params.update(params)
    compare.run()
    assert not compare.exception
    assert compare.number_input(key="lr").value == cell.lr
    assert compare.number_input(key="batch_size").value == cell.batch_size
    result = compare.session_state[LAST_RUN]["result"]  # it ran as it opened
    assert result.diverged_at == cell.diverged_at
    assert result.max_abs_diff == cell.max_abs_diff and result.steps == cell.steps


def test_caps_and_bad_grids_are_refused_in_words_and_a_long_map_waits_for_its_button():
    at = open_page(iterations="20001", lrmap_lr_count="99")
    assert not at.exception
    text = words(at)
    assert "at most 20,000 iterations per cell" in text
    assert "lrmap_lr_count=99" in text and "cannot be used" in text  # the link's bad value, named
    assert len(at.get("vega_lite_chart")) == 0
    at.number_input(key="iterations").set_value(10_000).run()
    assert "at most 120,000 steps in all (cells × iterations)" in words(at)
    assert "18 cells × 10,000 iterations is 180,000" in words(at)
    at.number_input(key="iterations").set_value(1_000)
    at.number_input(key="accumulate").set_value(8).run()
    assert "(cells × iterations × micro-batches per step)" in words(at)
    assert "18 cells × 1,000 iterations × 8 micro-batches is 144,000" in words(at)
    at.number_input(key="accumulate").set_value(1)
    at.number_input(key="iterations").set_value(6_000).run()  # about 10 s or more of work
    assert "press **Draw the map**" in words(at) and len(at.get("vega_lite_chart")) == 0
    assert "This map is 18 runs of 6,000 steps (about " in words(at)
    at.number_input(key="lrmap_lr_low").set_value(5.0).run()
    assert "The largest lr (3) must be above the smallest (5)." in words(at)
    at.number_input(key="lrmap_lr_low").set_value(0.01).run()
    at.multiselect(key="lrmap_batches").set_value([]).run()
    assert "Choose at least one batch size." in words(at)
    assert not at.exception


def test_an_interrupted_sweep_keeps_its_finished_cells():
    at = open_page(iterations="50")
    key, sweep = at.session_state["lrmap_result"]
    # What a Stop click leaves behind: the running flag and the partial Sweep saved by progress.
    at.session_state["lrmap_running"] = key
    at.session_state["lrmap_partial"] = dataclasses.replace(sweep, cells=sweep.cells[:5])
    at.run()
    assert not at.exception
    _, kept = at.session_state["lrmap_result"]
    assert kept.stopped == "stopped" and len(kept.cells) == 5
    text = words(at)
    assert "Stopped with 5 of 18 cells finished; the finished cells are kept." in text
    assert "Blank cells did not finish" in text
    assert "✓ On every one of the 5 finished cells" in text
