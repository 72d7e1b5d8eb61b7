"""AppTest of the Compare page (the default page of app.py): runs, charts, summary, bad input in
words."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

import lib
from lib.io.export import twin_sources
from lib.lessons.explain import phase_source
from pages.parts.cached import LAST_RUN, SKIPPED, linear_data
from pages.parts.twin_table import twin_lines_markdown

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
    for name in (
        "Loss per step",
        "Weights per step",
        "Gradient norm per step",
        "|manual − torch| per step",
    ):
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
    """A Stop click ends the script mid-run; the page keeps the partial Result the callback
    saved."""
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
    # The loops as the default run executes them: their source, less the branches it skips.
    sources = twin_sources(lib.datasets.linear(m=200, n=3, noise=0.1, seed=0), lib.Config())
    hand, torch = (phase_source(sources[name], SKIPPED) for name in ("manual_loop", "torch_loop"))
    assert table == twin_lines_markdown(hand, torch)
    for line in (
        "optimizer.zero_grad()",
        "outputs = net(inputs)",
        "loss.backward()",
        "optimizer.step()",
        "loss = np.mean((labels - h) ** 2)",
        "delta = 2 / len(labels) * (labels - h)",
        "neg_grad += inputs.T @ delta",
    ):
        assert f"`{line}" in table or f" {line}" in table
    assert "loss_name" not in table and "layout.model" not in table  # no branch left to choose


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
    # what it draws is checked in test_charts.py
    assert "Every parameter tensor" in str(specs[4]["title"])
    # Back to the linear model: its weights chart shows every weight, so the fifth chart goes.
    at.selectbox(key="model").set_value("linear").run()
    press_run(at)
    assert len(charts(at)) == 4


def test_an_mlp_from_zero_weights_is_warned_about_until_the_init_changes(at):
    from pages.parts.labels import ZERO_MLP

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
        r"This run has not started: its 1,000,000 steps would take about \d+ min here \(both "
        r"loops take about [\d,]+ steps per second, timed on its first [\d,]+ steps\), and the "
        r"page starts a run by itself only when it takes under 5 s\. Its settings are filled in: "
        r"press \*\*Run\*\* to start it\. A run stops at the 60 s cap, so it would end near step "
        r"[\d,]+\.",
        info.value,
    ), info.value
    # Another setting changed before Run: still nothing starts by itself, and the sentence is there.
    at.number_input(key="lr").set_value(0.01).run()
    assert not at.metric and at.info[0].value.startswith("This run has not started")
    at.number_input(key="iterations").set_value(
        300
    ).run()  # short now: the page runs it, as on a first visit
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
    # The estimate is kept with the settings it was timed for, so a rerun with the same ones does
    # not time again.
    (_, cfg), (rate, timed) = at.session_state["compare_rate"]
    assert cfg.iterations == 1_000_000 and rate > 0 and 0 < timed <= 100
    at.number_input(key="iterations").set_value(2_000).run()
    press_run(at)
    assert not at.exception
    assert metric(at, "Steps taken") == "2,000"


def test_a_run_ended_by_streamlits_own_stop_is_kept_as_stopped(at):
    """Streamlit's Stop ends the script inside lib.run with no rerun; notice_a_stop reruns the
    page, which finds the run still marked as running, as after the app's Stop (in a real
    browser: tests/test_browser.py)."""
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


# --------------------------------------------------- classifiers, final weights, epoch means, speed


def chart_layers(at: AppTest, title: str) -> list[tuple[dict, pd.DataFrame]]:
    """Each layer of the chart whose title starts with `title`, with the rows Streamlit sent for
    it."""
    [chart] = [
        c
        for c in at.get("vega_lite_chart")
        if json.loads(c.proto.spec)["title"]["text"].startswith(title)
    ]
    frames = {d.name: convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets}
    return [
        (layer, frames[layer["data"]["name"]]) for layer in json.loads(chart.proto.spec)["layer"]
    ]


def chart_titles(at: AppTest) -> list[str]:
    return [spec["title"]["text"] for spec in charts(at)]


def every_text(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error")
    return "\n".join(str(el.value) for kind in kinds for el in at.get(kind))


def show_run(data: lib.Dataset, result: lib.Result) -> AppTest:
    """The page with this run on show, as if it had just been run."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[LAST_RUN] = {
        "data": data,
        "result": result,
        "source": {"kind": "synthetic"},
        "settings": None,
    }
    return at.run()


def two_class(n: int, m: int = 120, seed: int = 0) -> lib.Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    return lib.Dataset(
        X, (X.sum(axis=1) + 0.5 * rng.normal(size=m) > 0).astype(float), name=f"two classes, n={n}"
    )


@pytest.mark.parametrize("preset", ["blobs", "moons"])
def test_a_classifier_run_draws_accuracy_and_the_boundary_of_both_loops(preset):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["data"] = preset  # a short run: the link runs it
    at.run()
    assert not at.exception
    record = at.session_state[LAST_RUN]
    data, result = record["data"], record["result"]
    assert result.config.loss == "bce" and data.n == 2
    titles = chart_titles(at)
    assert titles[-2:] == ["Accuracy on the whole data", "Decision boundary of both loops"]
    steps, manual, torch = lib.classify.accuracy(
        data, result, lib.charts.accuracy_points(data, result)
    )
    lines = {frame["loop"][0]: frame for layer, frame in chart_layers(at, "Accuracy")}
    for label, expected in (("manual (numpy)", manual), ("torch", torch)):
        # steps taken: accuracy after step t
        np.testing.assert_array_equal(lines[label]["step"], steps + 1)
        np.testing.assert_array_equal(lines[label]["value"], expected)
    grid = lib.classify.boundary(data, result, result.steps - 1, lib.charts.BOUNDARY_GRID)
    shading, dots, *rules = chart_layers(at, "Decision boundary")
    np.testing.assert_array_equal(shading[1]["p"], grid.manual.ravel().astype(np.float32))
    assert len(dots[1]) == data.m and set(dots[1]["class"]) == {"class 0", "class 1"}
    # both loops' p = 0.5
    assert [frame["loop"][0] for _, frame in rules] == ["manual (numpy)", "torch"]
    gap = float(np.abs(grid.manual - grid.torch).max())
    assert f"torch's matches it to within {gap:.1g} on this 60×60 grid." in str(
        charts(at)[-1]["title"]
    )


def test_a_regression_run_says_nothing_of_classes():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert "Accuracy on the whole data" not in chart_titles(at)
    assert "Decision boundary" not in " ".join(chart_titles(at))
    assert "accuracy" not in every_text(at).lower() and "decision-boundary" not in every_text(at)


def test_a_classifier_on_three_features_has_accuracy_and_says_why_there_is_no_boundary():
    data = two_class(3)
    at = show_run(data, lib.run(data, lib.Config(model="logistic", lr=0.5, iterations=60)))
    assert not at.exception
    assert "Accuracy on the whole data" in chart_titles(at)
    assert "Decision boundary of both loops" not in chart_titles(at)
    assert (
        "No decision-boundary picture: it is drawn over two features, and this data has 3."
        in every_text(at)
    )


def test_a_classifier_too_big_to_evaluate_says_so_in_words():
    data = two_class(2)
    result = lib.run(
        data, lib.Config(model="mlp", loss="bce", hidden=40, init="normal", iterations=20)
    )
    assert result.n_params == 161 and len(result.recorded) == 128
    at = show_run(data, result)
    assert not at.exception
    assert "Accuracy on the whole data" not in chart_titles(at)
    assert (
        "Accuracy and the decision boundary are not drawn: this model has 161 weights, and a run "
        "keeps the history of only 128 of them, so the loops' classifiers cannot be evaluated "
        "from it."
    ) in [info.value for info in at.info]


def test_the_final_weights_table_holds_the_runs_numbers_and_least_squares():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    data, result = at.session_state[LAST_RUN]["data"], at.session_state[LAST_RUN]["result"]
    table = at.dataframe[0].value
    assert list(table.columns) == ["weight", "manual", "torch", "|Δ|", "least squares"]
    assert list(table["weight"]) == list(result.weight_names) == ["w_1", "w_2", "w_3", "bias"]
    np.testing.assert_array_equal(table["manual"], result.manual.weights[-1])
    np.testing.assert_array_equal(table["torch"], result.torch.weights[-1])
    np.testing.assert_array_equal(
        table["|Δ|"], np.abs(result.manual.weights[-1] - result.torch.weights[-1])
    )
    np.testing.assert_array_equal(table["least squares"], lib.least_squares(data, bias=True))
    assert "**Final weights**, after all 500 steps." in every_text(at)
    # The toggle that hides the least-squares lines hides the column too.
    at.toggle(key="show_target").set_value(False).run()
    assert "least squares" not in at.dataframe[0].value.columns


def test_no_least_squares_column_for_a_classifier():
    data = two_class(2)
    result = lib.run(data, lib.Config(model="logistic", lr=0.5, iterations=30))
    at = show_run(data, result)
    table = at.dataframe[0].value
    assert list(table.columns) == ["weight", "manual", "torch", "|Δ|"]
    np.testing.assert_array_equal(table["manual"], result.manual.weights[-1])
    assert "in the table: it exists only for the linear model" in every_text(at)


def test_the_loss_chart_draws_each_epochs_mean_batch_loss_for_both_loops(at):
    result = at.session_state[LAST_RUN]["result"]
    length = -(-200 // 32)  # 7 batches an epoch, the last of 8 samples
    epochs = result.steps // length
    means = {
        frame["loop"][0]: frame
        for _, frame in chart_layers(at, "Loss per step")
        if "epoch" in frame["loop"][0]
    }
    assert set(means) == {"manual: epoch mean", "torch: epoch mean"}
    for label, history in (
        ("manual: epoch mean", result.manual),
        ("torch: epoch mean", result.torch),
    ):
        expected = [np.mean(history.loss[k * length : (k + 1) * length]) for k in range(epochs)]
        np.testing.assert_allclose(means[label]["value"], expected, rtol=1e-15)
        np.testing.assert_array_equal(means[label]["step"], length * np.arange(1, epochs + 1) - 1)
    title = str(charts(at)[0]["title"])
    assert (
        "the plain mean of each epoch's 7 batch losses" in title
        and "in 7 batches, the last of 8" in title
    )
    assert f"The unfinished last epoch ({result.steps % length} of 7 batches) is left out." in title


def test_a_full_batch_run_has_no_epoch_means():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["batch_size"] = "200"
    at.run()
    assert not at.exception and at.session_state[LAST_RUN]["result"].config.batch_size == 200
    loops = {frame["loop"][0] for _, frame in chart_layers(at, "Loss per step")}
    assert loops == {"manual (numpy)", "torch"}
    assert "epoch" not in str(charts(at)[0]["title"])


def test_the_speed_sentence_is_measured_when_asked_for_and_kept(at):
    assert "compare_speed" not in at.session_state  # nothing is timed until the learner asks
    [button] = [b for b in at.button if b.key == "compare_measure_speed"]
    # torch is slower in this run's own table
    assert button.label == "Why is torch slower per step?"
    at.button(key="compare_measure_speed").click().run()
    assert not at.exception
    key, sentence = at.session_state["compare_speed"]
    assert key[1] == at.session_state[LAST_RUN]["result"].config  # measured for the run on show
    assert re.match(
        r"Torch took [\d.]+× numpy's time per step here \([\d.,]+ [µm]s against", sentence
    ), sentence
    assert "batches of 32 rows, 4 weights" in sentence
    assert sentence in [c.value for c in at.caption]
    at.number_input(key="lr").set_value(
        0.2
    ).run()  # another rerun keeps the sentence, measured once
    assert at.session_state["compare_speed"][1] is sentence and sentence in [
        c.value for c in at.caption
    ]


def test_the_intro_names_the_sidebar_not_a_side():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    intro = at.markdown[0].value
    assert "in the sidebar" in intro and "left" not in intro
    assert "on a narrow screen the sidebar hides: the » button opens it, « closes it" in intro


def test_the_time_limit_message_says_what_fits_and_blames_no_small_model(at):
    data = linear_data(3, 200, 0.1, 0)
    capped = lib.run(data, lib.Config(lr=0.05, batch_size=32, iterations=100_000), time_limit=0.2)
    assert capped.stopped == "time limit" and capped.steps >= 100
    unit = 10 ** (len(str(capped.steps)) - 2)
    at.session_state[LAST_RUN] = {**at.session_state[LAST_RUN], "result": capped}
    at.run()
    [warning] = at.warning
    assert warning.value == (
        f"Hit the time limit after {capped.steps:,} of 100,000 steps; the steps taken are kept. "
        "About that many fit in the time allowed at this speed: to finish, ask for at most "
        f"{capped.steps // unit * unit:,} iterations. (The wall-time cap here is 60 s per run.)"
    )
    assert "model" not in warning.value


def test_the_time_limit_message_names_a_big_models_size():
    data = two_class(2)
    capped = lib.run(
        data, lib.Config(model="mlp", loss="bce", hidden=40, iterations=5_000), time_limit=0.0
    )
    assert capped.stopped == "time limit" and capped.n_params == 161
    unit = 10 ** max(0, len(str(capped.steps)) - 2)
    assert capped.message() == (
        f"Hit the time limit after {capped.steps:,} of 5,000 steps; the steps taken are kept. "
        "About that many fit in the time allowed at this speed: to finish, ask for at most "
        f"{capped.steps // unit * unit:,} iterations, or use a smaller model than this one of "
        "161 weights."
    )


def test_a_finite_blow_up_is_a_warning_with_the_limit_and_both_differences():
    """Issue 10, bug 5: lr = 1 grew the loss to 4e22 with no message, under an intro promising
    1e-16."""
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.query_params.update({"lr": "1", "iterations": "500"})
    app.run()
    assert not app.exception
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    result = lib.run(data, lib.Config(lr=1.0, batch_size=32, iterations=500))
    assert result.diverged_at is None
    warning = next(w.value for w in app.warning if w.value.startswith("Diverging"))
    assert warning.startswith(lib.explain.growth_warning(data, result))
    assert "(/pitfalls?pitfall=4+%C2%B7+lr+above+the+limit)" in warning
    diff = next(m for m in app.metric if m.label == lib.explain.DIFF_NAME.capitalize())
    assert float(diff.value) == pytest.approx(result.max_abs_diff, rel=0.05)
    relative = lib.explain.agreement(result)["max_relative"]
    assert diff.delta == f"{lib.explain.RELATIVE_NAME}: {relative:.2g}"
    assert lib.explain.agreement_text(result) in [c.value for c in app.caption]
    intro = app.markdown[0].value
    assert "1e-16" not in intro


def test_a_converging_run_has_no_growth_warning(at):
    assert not [w for w in at.warning if w.value.startswith("Diverging")]


def test_the_least_squares_toggle_is_greyed_out_where_there_is_none():
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.query_params.update({"data": "blobs", "iterations": "30"})
    app.run()
    assert not app.exception
    assert app.toggle(key="show_target").disabled
    assert (
        not AppTest.from_file(APP, default_timeout=TIMEOUT).run().toggle(key="show_target").disabled
    )
