"""AppTest of the Compare page (the default page of app.py): runs, charts, summary, bad input in words."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import lib
from pages.common import LAST_RUN, linear_data, twin_lines_markdown

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 60  # s: the first run imports torch and runs the default 500 steps on a shared machine


@pytest.fixture
def at() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not app.exception
    return app


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def metric(at: AppTest, label: str) -> str:
    [value] = [m.value for m in at.metric if m.label == label]
    return value


def summary(at: AppTest) -> dict[str, dict[str, str]]:
    """The per-loop summary table: {"manual (numpy)": {"final loss": ..., ...}, "torch": {...}}."""
    return at.table[0].value.to_dict(orient="index")


def press_run(at: AppTest) -> AppTest:
    return at.button(key="run").click().run()


def test_opens_with_a_default_run_drawn(at):
    assert at.title[0].value == "Compare the loops"
    specs = charts(at)
    assert len(specs) == 4
    titles = " ".join(str(spec.get("title")) for spec in specs)
    for name in ("Loss per step", "Weights per step", "Gradient norm per step", "|manual − torch| per step"):
        assert name in titles
    assert metric(at, "Steps taken") == f"{int(at.number_input(key='iterations').value):,}"
    assert float(metric(at, "Largest |manual − torch|")) < 1e-10  # the loops agree
    table = summary(at)
    assert set(table) == {"manual (numpy)", "torch"}
    for row in table.values():
        assert float(row["final loss"]) > 0
        assert float(row["wall time"].removesuffix(" s")) > 0
        assert float(row["steps per second"].replace(",", "")) > 0
    assert not at.error and not at.warning


def test_the_default_run_is_lib_run_of_the_widgets(at):
    """The numbers shown are lib.run's for the Config the widgets describe, not something else."""
    data = linear_data(3, 200, 0.1, 0)
    result = lib.run(data, lib.Config(lr=0.05, batch_size=32, iterations=500, loss="mse", seed=0))
    assert summary(at)["manual (numpy)"]["final loss"] == f"{result.manual.loss[-1]:.6g}"
    assert summary(at)["torch"]["final loss"] == f"{result.torch.loss[-1]:.6g}"


def test_changing_lr_and_pressing_run_changes_the_result(at):
    before = summary(at)
    at.number_input(key="lr").set_value(0.2).run()
    assert summary(at) == before  # nothing runs until Run is pressed...
    assert any("settings have changed" in info.value for info in at.info)  # ...and the page says so
    press_run(at)
    assert not at.exception
    after = summary(at)
    assert after["manual (numpy)"]["final loss"] != before["manual (numpy)"]["final loss"]
    assert after["manual (numpy)"]["final loss"] == after["torch"]["final loss"]
    assert len(charts(at)) == 4
    assert not any("settings have changed" in info.value for info in at.info)


def test_divergence_is_said_in_words_and_charts_still_drawn(at):
    at.number_input(key="lr").set_value(10.0)
    press_run(at)
    assert not at.exception
    [warning] = at.warning
    assert warning.value.startswith("Diverged at step") and "smaller learning rate" in warning.value
    assert len(charts(at)) == 4
    for spec in charts(at):
        # No NaN or inf reaches a chart: JSON has no such numbers, and a NaN would arrive as null.
        assert "NaN" not in json.dumps(spec) and "Infinity" not in json.dumps(spec)


def test_wrong_length_init_is_an_error_in_words_keeping_the_settings(at):
    before = summary(at)
    at.number_input(key="lr").set_value(0.1)
    at.toggle(key="log_scale").set_value(False)
    at.run()
    at.selectbox(key="init").set_value("custom").run()
    at.text_input(key="init_values").input("1, 2").run()
    press_run(at)
    assert not at.exception
    [error] = at.error
    assert "init must have 4 numbers" in error.value
    assert at.number_input(key="lr").value == 0.1  # the other settings are kept
    assert summary(at) == before  # and the last good run stays on show
    at.text_input(key="init_values").input("1, 2, three, 4").run()
    press_run(at)
    assert not at.exception and "must be numbers" in at.error[0].value
    at.text_input(key="init_values").input("0.5, -1, 2, 0").run()
    press_run(at)
    assert not at.exception and not at.error
    assert summary(at) != before


def test_oversized_data_is_refused_in_words(at):
    at.number_input(key="samples").set_value(1_000_000)
    at.number_input(key="n_features").set_value(1_000)
    press_run(at)
    assert not at.exception
    assert "samples x features must be at most" in at.error[0].value


def test_widgets_bound_out_of_range_values(at):
    assert at.number_input(key="lr").min > 0
    assert at.number_input(key="batch_size").min == 1
    assert at.number_input(key="iterations").max == lib.MAX_ITERATIONS
    assert at.number_input(key="seed").min == 0


def test_log_scale_toggle_changes_the_loss_axis(at):
    def loss_scale() -> str:
        loss = next(spec for spec in charts(at) if "Loss per step" in str(spec["title"]))
        return json.dumps(loss["encoding"]["y"].get("scale", {}))

    assert "log" in loss_scale()
    at.toggle(key="log_scale").set_value(False).run()
    assert "log" not in loss_scale()


def test_an_interrupted_run_shows_its_partial_result(at):
    """A Stop click ends the script mid-run; the page keeps the partial Result the callback saved."""
    data = linear_data(3, 200, 0.1, 0)
    cfg = lib.Config(lr=0.05, iterations=500)
    partial = dataclasses.replace(lib.run(data, cfg.replace(iterations=37)), config=cfg)
    at.session_state["compare_running"] = True
    at.session_state["compare_partial"] = partial
    at.run()
    assert not at.exception
    assert any("Stopped at step 37 of 500" in info.value for info in at.info)
    assert metric(at, "Steps taken") == "37"
    assert len(charts(at)) == 4


def test_the_twin_table_is_the_code_that_runs(at):
    table = next(md.value for md in at.markdown if md.value.startswith("| step | torch |"))
    assert table == twin_lines_markdown()
    for line in ("optimizer.zero_grad()", "outputs = net(inputs)", "loss.backward()", "optimizer.step()"):
        assert f"`{line}" in table or f" {line}" in table


def test_settings_and_result_survive_a_visit_to_another_page(at):
    at.number_input(key="lr").set_value(0.2)
    press_run(at)
    shown = summary(at)
    at.switch_page("pages/code_map.py").run()
    assert not at.exception
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert at.number_input(key="lr").value == 0.2
    assert summary(at) == shown  # the same run, not a fresh default one
    assert not any("settings have changed" in info.value for info in at.info)


def test_the_mlp_run_adds_every_tensors_norm_below_the_four_charts(at):
    at.selectbox(key="model").set_value("mlp").run()
    press_run(at)
    assert not at.exception and not at.error
    specs = charts(at)
    assert len(specs) == 5
    assert "Parameter norms per step" in str(specs[4]["title"])
    assert "Every parameter tensor" in str(specs[4]["title"])  # what it draws is checked in test_charts.py
    # Back to the linear model: its weights chart shows every weight, so the fifth chart goes.
    at.selectbox(key="model").set_value("linear").run()
    press_run(at)
    assert len(charts(at)) == 4


def test_an_mlp_from_zero_weights_is_warned_about_until_the_init_changes(at):
    from pages.common import ZERO_MLP

    assert ZERO_MLP not in [w.value for w in at.warning]  # the linear default learns from zeros
    at.selectbox(key="model").set_value("mlp").run()
    assert ZERO_MLP in [w.value for w in at.warning]
    at.selectbox(key="init").set_value("normal").run()
    assert not at.exception
    assert ZERO_MLP not in [w.value for w in at.warning]


def test_a_link_to_a_long_run_waits_for_run_and_says_why():
    """Issue 10, bug 6: ?iterations=1000000 would train for a minute for whoever opens the link."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["iterations"] = "1000000"
    at.run()
    assert not at.exception
    assert at.number_input(key="iterations").value == 1_000_000  # the settings are filled in...
    assert not at.metric and not charts(at)  # ...and nothing ran
    assert LAST_RUN not in at.session_state
    [info] = at.info
    assert re.fullmatch(
        r"This run has not started: its 1,000,000 steps would take about \d+ min here \(both loops take about "
        r"[\d,]+ steps per second, timed on its first [\d,]+ steps\), and the page starts a run by itself only "
        r"when it takes under 5 s\. Its settings are filled in: press \*\*Run\*\* to start it\. A run stops at "
        r"the 60 s cap, so it would end near step [\d,]+\.",
        info.value,
    ), info.value
    # Another setting changed before Run: still nothing starts by itself, and the sentence is there.
    at.number_input(key="lr").set_value(0.01).run()
    assert not at.metric and at.info[0].value.startswith("This run has not started")
    at.number_input(key="iterations").set_value(300).run()  # short now: the page runs it, as on a first visit
    assert metric(at, "Steps taken") == "300"
    assert not any("has not started" in i.value for i in at.info)


def test_a_link_to_a_short_run_runs_itself():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["iterations"] = "300"
    at.run()
    assert not at.exception
    assert metric(at, "Steps taken") == "300" and len(charts(at)) == 4
    assert not at.info


def test_a_long_run_waiting_for_run_starts_when_run_is_pressed():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["iterations"] = "1000000"
    at.run()
    assert not at.metric
    # The estimate is kept with the settings it was timed for, so a rerun with the same ones does not time again.
    (_, cfg), (rate, timed) = at.session_state["compare_rate"]
    assert cfg.iterations == 1_000_000 and rate > 0 and 0 < timed <= 100
    at.number_input(key="iterations").set_value(2_000).run()
    press_run(at)
    assert not at.exception
    assert metric(at, "Steps taken") == "2,000"


def test_a_run_ended_by_streamlits_own_stop_is_kept_as_stopped(at):
    """Streamlit's Stop ends the script inside lib.run with no rerun; notice_a_stop reruns the page, which finds the
    run still marked as running, as after the app's Stop (in a real browser: tests/test_browser.py)."""
    data = linear_data(3, 200, 0.1, 0)
    cfg = lib.Config(lr=0.05, iterations=500)
    partial = dataclasses.replace(lib.run(data, cfg.replace(iterations=123)), config=cfg)
    record = {"data": data, "source": {"kind": "synthetic"}, "settings": None}
    at.session_state["compare_running"] = True
    at.session_state["compare_running_record"] = record
    at.session_state["compare_watching"] = True
    at.session_state["compare_partial"] = partial
    at.run()
    assert not at.exception
    assert at.info[0].value == "Stopped at step 123 of 500; the steps taken are kept."
    assert metric(at, "Steps taken") == "123"
    for key in ("compare_watching", "compare_partial", "compare_running_record"):
        assert key not in at.session_state
    assert at.session_state["compare_running"] is False
