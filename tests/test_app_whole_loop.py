"""AppTest of the whole loop's controls (issue 12) on the Compare page: the schedule, clipping,
accumulation and validation sections, their links, bad links, both ends of every range, the
summary sentences, the validation and lr charts, and the overfitting preset."""

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import lib
from pages.parts.cached import LAST_RUN, linear_data
from pages.parts.labels import (
    ACCUMULATE_HELP,
    CLIP_HELP,
    DEFAULTS,
    DROP_LAST_HELP,
    EVAL_EVERY_HELP,
    PAGE_PRESETS,
    SCHEDULE_CHOICES,
    SCHEDULE_CLASSES,
    SCHEDULE_HELP,
    VAL_FRACTION_HELP,
)

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 180  # s: a shared machine; the overfitting preset's 600 steps of a 64-unit network


def app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


def shown(at: AppTest) -> lib.Result:
    return at.session_state[LAST_RUN]["result"]


def chart_titles(at: AppTest) -> list[str]:
    return [str(json.loads(c.proto.spec).get("title")) for c in at.get("vega_lite_chart")]


def sidebar_text(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def widget(at: AppTest, key: str):
    kinds = ("number_input", "selectbox", "checkbox", "text_input", "toggle")
    [found] = [w for kind in kinds for w in at.get(kind) if w.key == key]
    return found


# ------------------------------------------------------------------ the controls


def test_the_new_sections_are_drawn_with_their_help_and_the_defaults_change_nothing():
    at = app()
    help_of = {
        "scheduler": SCHEDULE_HELP,
        "clip_grad_norm": CLIP_HELP,
        "accumulate": ACCUMULATE_HELP,
        "val_fraction": VAL_FRACTION_HELP,
        "eval_every": EVAL_EVERY_HELP,
        "drop_last": DROP_LAST_HELP,
    }
    for key, text in help_of.items():
        control = widget(at, key)
        assert control.help == text, key
        assert control.value == DEFAULTS[key], key
    assert widget(at, "scheduler").options == list(SCHEDULE_CHOICES)
    assert widget(at, "eval_every").disabled  # no validation split: nothing to evaluate
    expanders = [e.label for e in at.sidebar.expander]
    for label in (
        "Learning-rate schedule",
        "Clipping and accumulation",
        "DataLoader and validation",
    ):
        assert label in expanders
    result = shown(at)
    assert result.config == lib.Config(lr=0.05, batch_size=32, iterations=500)
    # no schedule, no split: four charts, no sentence about either
    assert len(at.get("vega_lite_chart")) == 4
    assert "held out" not in sidebar_text(at) and "micro-batches" not in sidebar_text(at)


def test_a_link_with_every_new_control_reopens_the_same_run():
    query = {
        "batch_size": "30",
        "iterations": "300",
        "scheduler": "multistep",
        "multistep_milestones": "100, 200",
        "multistep_gamma": "0.5",
        "clip_grad_norm": "0.5",
        "accumulate": "3",
        "val_fraction": "0.25",
        "eval_every": "7",
        "drop_last": "true",
    }
    at = app(**query)
    assert not at.warning and not at.error
    cfg = lib.Config(
        lr=0.05,
        batch_size=30,
        iterations=300,
        scheduler="multistep",
        scheduler_kwargs={"milestones": (100, 200), "gamma": 0.5},
        clip_grad_norm=0.5,
        accumulate=3,
        val_fraction=0.25,
        eval_every=7,
        drop_last=True,
    )
    result = shown(at)
    assert result.config == cfg
    expected = lib.run(linear_data(3, 200, 0.1, 0), cfg)
    np.testing.assert_array_equal(result.torch.weights, expected.torch.weights)
    np.testing.assert_array_equal(result.manual.val_loss, expected.manual.val_loss)
    titles = chart_titles(at)
    assert any("Learning rate per step: MultiStepLR" in t for t in titles)
    assert any("the loss on the 50 held-out rows" in t for t in titles)
    # the widgets show what the link asked for
    assert widget(at, "multistep_milestones").value == "100, 200"
    assert widget(at, "accumulate").value == 3 and widget(at, "drop_last").value is True


@pytest.mark.parametrize("name", [name for name in SCHEDULE_CHOICES if name != "none"])
def test_each_schedule_runs_at_its_default_settings_and_both_loops_lr_agree(name):
    at = app(scheduler=name, iterations="200")
    assert not at.error and not at.warning
    result = shown(at)
    assert result.config.scheduler == name
    np.testing.assert_allclose(result.manual.lr, result.torch.lr, rtol=0, atol=1e-12)
    assert result.max_abs_diff < 1e-10
    assert any(f"Learning rate per step: {SCHEDULE_CLASSES[name]}" in t for t in chart_titles(at))
    assert f"Schedule: {SCHEDULE_CLASSES[name]}(optimizer" in sidebar_text(at)


def test_choosing_a_schedule_in_the_sidebar_and_running_it():
    at = app()
    at.selectbox(key="scheduler").set_value("step").run()
    at.number_input(key="step_step_size").set_value(50).run()
    at.number_input(key="step_gamma").set_value(0.5).run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error
    result = shown(at)
    assert dict(result.config.scheduler_kwargs) == {"step_size": 50, "gamma": 0.5}
    np.testing.assert_allclose(result.torch.lr, 0.05 * 0.5 ** (np.arange(500) // 50), rtol=1e-12)
    assert len(at.get("vega_lite_chart")) == 5


# ------------------------------------------------------------------ bad links, extreme settings


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ({"accumulate": "0"}, "accumulate"),
        ({"accumulate": "5000"}, "accumulate"),
        ({"val_fraction": "1.5"}, "val_fraction"),
        ({"val_fraction": "-0.1"}, "val_fraction"),
        ({"scheduler": "bogus"}, "scheduler"),
        ({"clip_grad_norm": "-1"}, "clip_grad_norm"),
        ({"clip_grad_norm": "inf"}, "clip_grad_norm"),
        ({"eval_every": "-3"}, "eval_every"),
        ({"drop_last": "maybe"}, "drop_last"),
        ({"scheduler": "step", "step_gamma": "abc"}, "step_gamma"),
    ],
)
def test_bad_links_are_named_in_words_and_fall_back(query, key):
    at = app(**query)
    assert not at.error
    notes = [w.value for w in at.warning]
    assert len(notes) == 1 and f"`{key}=" in notes[0] and "cannot be used" in notes[0], notes
    if key in DEFAULTS:
        assert widget(at, key).value == DEFAULTS[key]
    assert shown(at).max_abs_diff < 1e-10  # the run still ran, on the fallback


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"samples": "1", "val_fraction": "0.5"}, "holds out"),  # lib names the rows
        (
            {"val_fraction": "0.2", "batch_size": "190", "drop_last": "true"},
            "drop_last with batch_size 190 > 160 training rows leaves no batch",
        ),
        ({"scheduler": "onecycle", "optimizer": "adagrad"}, "momentum"),
        ({"scheduler": "multistep", "multistep_milestones": "ten"}, "milestones must be whole"),
        ({"scheduler": "multistep", "multistep_milestones": ""}, "at least one milestone"),
        ({"scheduler": "linear", "linear_start_factor": "0"}, "Starting multiplicative factor"),
    ],
)
def test_settings_lib_refuses_are_said_in_words_and_the_page_stays_usable(query, words):
    at = app(**query)
    errors = " ".join(e.value for e in at.error).replace("\\", "")  # plain()'s escapes
    assert words in errors and "Your other settings are kept" in errors, errors
    # fix it in the controls: the page runs again
    fixes = {
        "samples": ("val_fraction", 0.0),
        "drop_last": ("drop_last", False),
        "optimizer": ("scheduler", "none"),
        "multistep_milestones": ("multistep_milestones", "250"),
        "linear_start_factor": ("linear_start_factor", 0.5),
    }
    key, value = next(fixes[k] for k in fixes if k in query)
    control = widget(at, key)
    (control.set_value(value) if not hasattr(control, "check") else control.uncheck()).run()
    assert not at.exception and not at.error
    at.button(key="run").click().run()
    assert not at.exception and not at.error and shown(at).max_abs_diff < 1e-10


def test_every_control_at_both_ends_of_its_range():
    at = app(accumulate="1024", iterations="5")
    assert not at.error and shown(at).config.accumulate == 1024
    assert (
        "Each optimizer step sums 1,024 micro-batches of 32 rows (each epoch's last batch has "
        "8), each micro-batch's loss divided by 1,024: 5,120 micro-batches in the run's 5 steps."
    ) in sidebar_text(at)
    at = app(val_fraction="0.99", iterations="50")
    result = shown(at)
    assert not at.error and len(result.val_rows) == 198
    assert "198 of the 200 rows held out for validation, training on the other 2" in sidebar_text(
        at
    )
    at = app(val_fraction="0.2", eval_every="1", iterations="50")
    assert len(shown(at).val_steps) == 50 and "after every 1 steps (50 passes)" in sidebar_text(at)
    at = app(val_fraction="0.2", eval_every="1000000", iterations="50")
    assert not at.error and len(shown(at).val_steps) == 0
    assert "eval_every 1,000,000 is more than the 50 steps, so no validation pass runs" in (
        sidebar_text(at)
    )
    assert any("No validation pass: eval_every 1,000,000" in t for t in chart_titles(at))
    at = app(clip_grad_norm="1000000")
    assert not at.error and shown(at).config.clip_grad_norm == 1e6
    assert not shown(at).manual.clipped.any()  # a max_norm this big never clips
    at = app(clip_grad_norm="0.001", iterations="50")
    assert shown(at).manual.clipped.all() and shown(at).max_abs_diff < 1e-10


# ------------------------------------------------------------------ the sentences and the charts


def test_the_summary_sentences_are_exact_and_only_where_they_apply():
    at = app(accumulate="4", val_fraction="0.2")
    text, result = sidebar_text(at), shown(at)
    train = 200 - len(result.val_rows)
    assert len(result.val_rows) == 40 and train == 160 and len(result.val_steps) == 166
    assert "40 of the 200 rows held out for validation, training on the other 160" in text
    assert "val_loss after every 3 steps (166 passes)" in text
    # 160 rows are 5 whole batches of 32: no short batch to name
    assert "Each optimizer step sums 4 micro-batches of 32 rows, each micro-batch's loss" in text
    assert "last batch has" not in text
    at = app(accumulate="4")
    assert "4 micro-batches of 32 rows (each epoch's last batch has 8)" in sidebar_text(at)
    at = app(drop_last="true")  # 200 rows: the last batch of 8 is left out
    assert "each epoch leaves out its last, short batch of 8 of the 200 training rows" in (
        sidebar_text(at)
    )
    at = app(drop_last="true", batch_size="40")  # 200 rows are five whole batches: nothing dropped
    assert "drop_last" not in sidebar_text(at)
    at = app(clip_grad_norm="2")
    assert "clip_grad_norm_ scales each step's gradient to a norm of at most 2." in sidebar_text(at)


def test_the_loss_chart_shows_both_loops_train_and_validation_loss():
    at = app(val_fraction="0.3", iterations="300")
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    assert spec["encoding"]["color"]["field"] == "loop"
    assert spec["encoding"]["strokeDash"]["field"] == "series"
    assert spec["encoding"]["strokeDash"]["scale"]["domain"][:2] == [
        lib.charts.runs.TRAIN_SERIES,
        lib.charts.runs.VAL_SERIES,
    ]
    summary = at.table[0].value
    result = shown(at)
    assert summary.loc["manual (numpy)", "final validation loss"] == (
        f"{result.manual.val_loss[-1]:.6g}"
    )
    assert "final validation loss" not in app().table[0].value.columns


# ------------------------------------------------------------------ the overfitting preset


def overfitting_run() -> tuple[lib.Dataset, lib.Result]:
    preset = PAGE_PRESETS["overfitting"]
    data = preset.make(0)
    return data, lib.run(data, preset.config(data))


def test_the_overfitting_presets_validation_loss_turns_up_while_training_loss_falls():
    data, result = overfitting_run()
    assert result.max_abs_diff < 1e-10
    val, steps, train = result.manual.val_loss, result.val_steps, result.manual.loss
    best = int(np.argmin(val))
    # the minimum comes well before the end, and the end is well above it
    assert steps[best] + 1 <= result.steps // 10
    assert val[-1] > 1.5 * val[best]
    # while the training loss keeps falling: lower at the end, and lower after each pass
    assert train[-1] < 1e-3 * train[steps[best] + 1]
    at_passes = train[steps[steps + 1 < result.steps] + 1][best:]
    assert (np.diff(at_passes) < 0).mean() > 0.95
    np.testing.assert_allclose(result.torch.val_loss, val, rtol=1e-9)
    # the preset's sentence holds these numbers
    about = PAGE_PRESETS["overfitting"].about
    assert f"lowest after {steps[best] + 1} steps ({val[best]:.3g})" in about
    assert f"climbs to {val[-1]:.3g}" in about and train[-1] < 1e-5
    assert f"{len(result.val_rows)} of them held out" in about
    assert f"{result.n_params} weights for the {data.m - len(result.val_rows)} training" in about


def test_choosing_the_overfitting_preset_sets_its_controls_and_its_run_is_the_presets():
    at = app()
    at.selectbox(key="data").set_value("overfitting").run()
    assert not at.exception and not at.error
    assert widget(at, "val_fraction").value == 0.3
    assert widget(at, "hidden").value == 64 and widget(at, "optimizer").value == "adam"
    assert widget(at, "model").value == "mlp" and widget(at, "init").value == "normal"
    assert any("suggested settings are now in the controls" in c.value for c in at.caption)
    at.button(key="run").click().run()
    assert not at.exception and not at.error
    preset = PAGE_PRESETS["overfitting"]
    data = at.session_state[LAST_RUN]["data"]
    assert shown(at).config == preset.config(preset.make(0)) and data.m == 40
    assert any("the loss on the 12 held-out rows" in t for t in chart_titles(at))
    # leaving it puts back the defaults of what it set, the split included
    at.selectbox(key="data").set_value("synthetic").run()
    assert widget(at, "val_fraction").value == 0.0 and widget(at, "model").value == "linear"


def test_the_new_controls_are_kept_on_every_page():
    at = app()
    at.number_input(key="accumulate").set_value(2).run()
    at.number_input(key="val_fraction").set_value(0.2).run()
    at.selectbox(key="scheduler").set_value("exponential").run()
    for page in ("pages/code_map.py", "pages/step_through.py", "pages/compare.py"):
        at.switch_page(page).run()
        assert not at.exception, page
        assert widget(at, "accumulate").value == 2, page
        assert widget(at, "val_fraction").value == 0.2, page
        assert widget(at, "scheduler").value == "exponential", page


# ------------------------------------------------------------------ the builder and the sentences


def test_schedule_kwargs_are_what_a_users_call_passes():
    from pages.parts.build import schedule_kwargs

    assert schedule_kwargs(None, {}) == {}
    # torch's own defaults are left out, required keywords kept, milestones parsed
    assert schedule_kwargs("step", {"step_size": 100, "gamma": 0.1}) == {"step_size": 100}
    assert schedule_kwargs("multistep", {"milestones": "30; 10", "gamma": 0.5}) == {
        "milestones": (30, 10),
        "gamma": 0.5,
    }
    # T_max and max_lr at 0 are the run's (lib fills them), a typed value is passed on
    assert schedule_kwargs("cosine", {"T_max": 0, "eta_min": 0.0}) == {}
    assert schedule_kwargs("cosine", {"T_max": 50, "eta_min": 0.0}) == {"T_max": 50}
    cfg = lib.Config(
        iterations=300,
        scheduler="onecycle",
        scheduler_kwargs=schedule_kwargs(
            "onecycle", {"max_lr": 0.0, "pct_start": 0.3, "cycle_momentum": False}
        ),
    )
    assert dict(cfg.scheduler_kwargs) == {
        "cycle_momentum": False,
        "total_steps": 300,
        "max_lr": 0.01,
    }
    assert schedule_kwargs("linear", {"start_factor": 1.0 / 3, "total_iters": 5}) == {}
    with pytest.raises(ValueError, match="whole step numbers"):
        schedule_kwargs("multistep", {"milestones": "1.5"})


def test_the_batch_sentences_of_a_full_batch_and_of_no_accumulation():
    from pages.parts.labels import loop_summary

    data = linear_data(3, 200, 0.1, 0)
    [line] = loop_summary(data, lib.Config(batch_size=500, accumulate=2, iterations=10))
    assert line.startswith("Each optimizer step sums 2 micro-batches (each all 200 training rows)")
    assert "20 micro-batches in the run's 10 steps" in line
    assert loop_summary(data, lib.Config()) == []  # nothing of these options applies
    # drop_last with a full batch drops nothing: no sentence
    assert loop_summary(data, lib.Config(batch_size=200, drop_last=True)) == []
    [line] = loop_summary(data, lib.Config(scheduler="cosine", iterations=300))
    assert line == "Schedule: CosineAnnealingLR(optimizer, T_max=300)."


@pytest.mark.parametrize("name", [name for name in SCHEDULE_CHOICES if name != "none"])
def test_every_schedule_setting_at_both_ends_of_its_widget_runs_or_is_refused_in_words(name):
    """What the Run button does with the Config: lib.run, which the page catches ValueError of."""
    from pages.parts.build import schedule_kwargs
    from pages.parts.labels import SCHEDULE_SETTINGS

    data = linear_data(3, 50, 0.1, 0)
    settings = SCHEDULE_SETTINGS[name]
    for arg, kind, low, high, _, _ in settings:
        if kind not in ("int", "float"):
            continue
        for value in (low, high):
            raw = {a: default for a, _, _, _, default, _ in settings} | {arg: value}
            for optimizer in ("sgd", "adam"):
                try:
                    cfg = lib.Config(
                        iterations=30,
                        optimizer=optimizer,
                        scheduler=name,
                        scheduler_kwargs=schedule_kwargs(name, raw),
                    )
                except ValueError as err:
                    assert str(err), (arg, value)  # said in words on the page
                    continue
                result = lib.run(data, cfg)  # anything but a ValueError would be a traceback
                assert result.steps >= 1, (arg, value)
