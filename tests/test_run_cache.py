"""The server's store of finished runs (pages/parts/run_cache.py): one run for a class on one
link, read-only for every session, bounded, and never a run that a clock or a click cut short."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import lib
from pages.parts.labels import DEFAULTS
from pages.parts.run_cache import (
    ChartPayload,
    SharedRuns,
    chart_payload,
    freeze,
    run_key,
    shareable,
    shared_runs,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)  # the Compare page's default data
SHARED_NOTE = "had already run these settings on this data for another visitor"


def page_config(**changes) -> lib.Config:
    """The Compare page's default Config, with changes."""
    base = dict(lr=DEFAULTS["lr"], batch_size=DEFAULTS["batch_size"], iterations=50)
    return lib.Config(**{**base, **changes})


def small_run(**changes) -> lib.Result:
    return lib.run(DATA, page_config(**changes))


def test_a_stored_run_is_read_only_for_every_session():
    runs, result = SharedRuns(), small_run()
    key = run_key(DATA, result.config)
    assert result.manual.weights.flags.writeable  # the check below can fail
    runs.finish(key, result)
    shared = runs.get(key)
    assert shared is result and runs.stored == 1
    for history in (shared.manual, shared.torch):
        for array in (history.loss, history.weights, history.grad_norm, history.param_norms):
            assert not array.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                array[0] = 1.0
    assert not shared.step_diff.flags.writeable


def test_runs_cut_short_by_a_clock_or_a_click_are_not_shared():
    runs = SharedRuns()
    diverged = lib.run(DATA, page_config(lr=50.0, iterations=400))
    assert diverged.stopped == "diverged" and shareable(diverged)
    for stopped in ("stopped", "time limit"):
        cut = dataclasses.replace(small_run(), stopped=stopped)
        assert not shareable(cut)
        runs.finish(run_key(DATA, cut.config), cut)
        assert runs.get(run_key(DATA, cut.config)) is None
    runs.finish(run_key(DATA, diverged.config), diverged)
    assert runs.get(run_key(DATA, diverged.config)) is diverged


def test_the_key_is_the_data_and_every_field_of_the_config():
    base = run_key(DATA, page_config())
    assert run_key(lib.datasets.linear(m=200, n=3, noise=0.1, seed=0), page_config()) == base
    assert run_key(DATA, page_config(lr=0.051)) != base
    assert run_key(DATA, page_config(scheduler="step", scheduler_kwargs={"step_size": 5})) != (
        run_key(DATA, page_config(scheduler="step", scheduler_kwargs={"step_size": 6}))
    )
    other_values = lib.Dataset(DATA.X + 1e-12, DATA.y, name=DATA.name)
    assert run_key(other_values, page_config()) != base


def test_the_store_is_bounded_by_size_least_recently_used_first():
    results = [small_run(lr=lr) for lr in (0.01, 0.02, 0.03)]
    size = freeze(results[0])
    runs = SharedRuns(max_bytes=int(2.5 * size))
    keys = [run_key(DATA, r.config) for r in results]
    runs.finish(keys[0], results[0])
    runs.finish(keys[1], results[1])
    assert runs.get(keys[0]) is results[0]  # used: the other one is now the oldest
    runs.finish(keys[2], results[2])
    assert runs.get(keys[1]) is None
    assert runs.get(keys[0]) is results[0] and runs.get(keys[2]) is results[2]
    assert runs.nbytes <= runs.max_bytes
    too_big = SharedRuns(max_entry_bytes=size - 1)
    too_big.finish(keys[0], results[0])
    assert too_big.get(keys[0]) is None and too_big.nbytes == 0


def test_a_run_in_progress_is_claimed_once_and_its_waiters_woken():
    runs, result = SharedRuns(), small_run()
    key = run_key(DATA, result.config)
    assert runs.claim(key) is None  # this caller computes
    waiting = runs.claim(key)
    assert isinstance(waiting, threading.Event) and not waiting.is_set()
    runs.finish(key, None)  # it ended without a result (a Stop): woken, nothing stored
    assert waiting.is_set() and runs.get(key) is None
    assert runs.claim(key) is None  # the next asker computes it
    runs.finish(key, result)
    assert runs.get(key) is result


def test_chart_payloads_are_kept_only_for_the_very_run_stored():
    runs, result = SharedRuns(), small_run()
    key = run_key(DATA, result.config)
    runs.finish(key, result)
    built = []

    def build():
        built.append(1)
        return lib.charts.all_charts(result)

    first = runs.charts(key, result, ("options",), build)
    again = runs.charts(key, result, ("options",), build)
    assert first is again and len(built) == 1
    assert set(first) == {"loss", "weights", "grad_norm", "diff"}
    spec = first["loss"].spec_dict()
    assert spec["datasets"] and all(isinstance(v, bytes) for v in spec["datasets"].values())
    spec.pop("datasets")  # what st.vega_lite_chart does to the dict it is given
    assert first["loss"].spec_dict()["datasets"]  # the stored payload is untouched
    # the same settings' run that one session stopped early is not the stored one
    own = dataclasses.replace(result)
    assert runs.charts(key, own, ("options",), build) is None
    assert runs.charts(run_key(DATA, page_config(lr=0.07)), result, ("options",), build) is None


def test_a_payload_is_what_streamlit_draws_from_the_chart():
    chart = lib.charts.all_charts(small_run())["loss"]
    payload = chart_payload(chart)
    assert isinstance(payload, ChartPayload)
    spec = payload.spec_dict()
    assert spec["title"] and "layer" in spec
    at = AppTest.from_function(draw_both, args=(chart, payload), default_timeout=60).run()
    assert not at.exception
    direct, cached = (c.proto for c in at.get("vega_lite_chart"))
    # the same element as st.altair_chart sends: spec, datasets and options
    assert json.loads(cached.spec) == json.loads(direct.spec)
    assert [(d.name, d.data.data) for d in cached.datasets] == [
        (d.name, d.data.data) for d in direct.datasets
    ]
    assert (cached.theme, cached.use_container_width) == (direct.theme, direct.use_container_width)


def draw_both(chart, payload):
    import streamlit as st

    st.altair_chart(chart, width="stretch")
    st.vega_lite_chart(payload.spec_dict(), width="stretch")


# ------------------------------------------------------------ on the Compare page, two sessions


def compare_session() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def shown_result(at: AppTest):
    record = at.session_state["compare_last_run"]
    return record["result"], record.get("shared", False)


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_the_second_session_on_the_same_link_is_handed_the_first_ones_run():
    shared_runs.clear()
    first = compare_session().run()
    assert not first.exception
    result, was_shared = shown_result(first)
    assert not was_shared and SHARED_NOTE not in captions(first)
    second = compare_session().run()
    assert not second.exception
    again, was_shared = shown_result(second)
    assert again is result and was_shared
    assert SHARED_NOTE in captions(second)
    assert shared_runs().stored == 1
    charts = second.get("vega_lite_chart")
    assert len(charts) == len(first.get("vega_lite_chart")) >= 4
    # other settings: computed, and not said to be shared
    other = compare_session()
    other.query_params["lr"] = "0.04"
    other.run()
    mine, was_shared = shown_result(other)
    assert mine is not result and not was_shared and mine.config.lr == 0.04
    assert SHARED_NOTE not in captions(other)


def default_page_key() -> tuple:
    data = lib.datasets.linear(
        m=DEFAULTS["samples"], n=DEFAULTS["n_features"], noise=DEFAULTS["noise"], seed=0
    )
    cfg = page_config(iterations=DEFAULTS["iterations"])
    return run_key(data, cfg), data, cfg


class WatchedEvent(threading.Event):
    """A claim's Event that records that someone waits on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = threading.Event()

    def wait(self, timeout=None):
        self.waited.set()
        return super().wait(timeout)


@pytest.mark.parametrize("other_ends", ["with a result", "without one"])
def test_a_session_waits_for_the_same_run_in_progress(other_ends):
    shared_runs.clear()
    runs = shared_runs()
    key, data, cfg = default_page_key()
    assert runs.claim(key) is None  # "another session" is computing the default run
    result = lib.run(data, cfg)
    waiter = WatchedEvent()
    runs._running[key] = waiter  # the claim's Event, which says when a session waits on it

    def other_session_ends():
        if waiter.waited.wait(110):  # once the page waits on it
            runs.finish(key, result if other_ends == "with a result" else None)

    ended = threading.Thread(target=other_session_ends)
    ended.start()
    try:
        at = compare_session().run()
    finally:
        runs.finish(key, None)  # whatever happened, nothing waits on the claim any more
        ended.join()
    assert waiter.waited.is_set(), "the page did not wait for the run in progress"
    assert not at.exception
    shown, was_shared = shown_result(at)
    if other_ends == "with a result":
        assert shown is result and was_shared and SHARED_NOTE in captions(at)
    else:  # it computed its own, the same numbers
        assert shown is not result and not was_shared and SHARED_NOTE not in captions(at)
        np.testing.assert_array_equal(shown.manual.weights, result.manual.weights)
        assert runs.get(key) is shown  # and kept it for the next visitor
