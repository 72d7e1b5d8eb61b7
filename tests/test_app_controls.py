"""AppTest of the shared sidebar (pages/parts/): presets, optimizer settings, CSV upload, the
URL."""

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import lib
from lib.io.datasets import PRESETS
from pages.parts.cached import LAST_RUN, linear_data
from pages.parts.labels import DEFAULTS, optimizer_defaults
from pages.parts.links import _matches, url_notes

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 60


def app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


def final_losses(at: AppTest) -> tuple[str, str]:
    table = at.table[0].value
    return table.loc["manual (numpy)", "final loss"], table.loc["torch", "final loss"]


def press_run(at: AppTest) -> AppTest:
    at.button(key="run").click().run()
    assert not at.exception, at.exception
    return at


def shown_run(at: AppTest) -> tuple[lib.Dataset, lib.Result]:
    record = at.session_state[LAST_RUN]
    return record["data"], record["result"]


# ------------------------------------------------------------------ presets


def test_choosing_a_preset_puts_its_settings_in_the_widgets():
    at = app()
    at.selectbox(key="data").set_value("moons").run()
    assert not at.exception
    preset = PRESETS["moons"]
    suggested = preset.config(preset.make(0))
    assert at.number_input(key="lr").value == suggested.lr == 0.5
    assert at.number_input(key="iterations").value == suggested.iterations
    assert at.number_input(key="batch_size").value == suggested.batch_size
    assert at.selectbox(key="model").value == "mlp"
    assert at.selectbox(key="loss").value == "bce"
    assert at.number_input(key="hidden").value == suggested.hidden
    assert at.selectbox(key="init").value == "normal"
    assert any("suggested settings are now in the controls" in c.value for c in at.caption)
    press_run(at)
    data, result = shown_run(at)
    assert data.name == preset.make(0).name
    assert result.config == suggested
    assert result.max_abs_diff < 1e-10


def test_a_preset_is_applied_once_then_the_user_changes_win():
    at = app()
    at.selectbox(key="data").set_value("escape_velocity").run()
    # the preset's optimizer kwargs reach the widgets
    assert at.number_input(key="sgd_momentum").value == 0.98
    at.number_input(key="lr").set_value(0.01).run()
    at.number_input(key="sgd_momentum").set_value(0.5).run()
    assert (
        at.number_input(key="lr").value == 0.01 and at.number_input(key="sgd_momentum").value == 0.5
    )
    press_run(at)
    _, result = shown_run(at)
    assert result.config.lr == 0.01 and dict(result.config.optimizer_kwargs) == {"momentum": 0.5}


def test_a_link_naming_a_preset_opens_its_suggested_settings():
    """?data=classic alone: the classic loop's lr 1e-4 (not the default 0.05, which diverges on
    this data)."""
    at = app(data="classic")
    assert not at.warning and not at.error
    suggested = PRESETS["classic"].config(PRESETS["classic"].make())
    assert at.selectbox(key="data").value == "classic"
    assert at.number_input(key="lr").value == suggested.lr == 1e-4
    assert (
        at.number_input(key="iterations").value == 50_000
        and at.number_input(key="batch_size").value == 50
    )
    assert at.selectbox(key="loss").value == "half_mse" and at.checkbox(key="bias").value is False
    assert any(
        "The link names this preset, so its suggested settings are in the controls." in c.value
        for c in at.caption
    )
    press_run(at)
    data, result = shown_run(at)
    assert result.config == suggested and data.name == PRESETS["classic"].make().name


def test_a_links_own_values_win_over_its_presets():
    at = app(data="escape_velocity", lr="0.01", sgd_momentum="0.5")
    assert not at.warning and not at.error
    assert (
        at.number_input(key="lr").value == 0.01 and at.number_input(key="sgd_momentum").value == 0.5
    )
    # the preset's, which the link does not set
    assert at.number_input(key="iterations").value == 3000
    [note] = [c.value for c in at.caption if "The link names this preset" in c.value]
    assert "but for lr, sgd_momentum, which the link sets itself" in note


def test_going_back_to_synthetic_data_restores_what_the_preset_had_set():
    at = app()
    at.selectbox(key="data").set_value("kepler").run()
    assert (
        at.number_input(key="batch_size").value == 9
        and at.number_input(key="iterations").value == 1000
    )
    at.number_input(key="iterations").set_value(700).run()  # the learner's own change is kept
    at.selectbox(key="data").set_value("synthetic").run()
    assert not at.exception and not at.error
    assert at.number_input(key="batch_size").value == DEFAULTS["batch_size"]
    assert at.number_input(key="lr").value == DEFAULTS["lr"]
    assert at.number_input(key="iterations").value == 700
    [note] = [c.value for c in at.caption if "preset had set" in c.value]
    assert note == (
        "Back to the defaults for what the *Planets: Kepler's third law (real data)* preset had "
        "set: lr 0.05, batch size 32. Kept as you changed them after choosing the preset: "
        "iterations 700."
    )
    press_run(at)
    _, result = shown_run(at)
    assert result.config == lib.Config(lr=0.05, batch_size=32, iterations=700)
    # Leaving a preset whose settings were all changed back by hand, or none at all: nothing to say.
    at.selectbox(key="data").set_value("classic").run()
    at.checkbox(key="bias").check().run()
    at.selectbox(key="data").set_value("csv").run()
    assert at.checkbox(key="bias").value is True and at.selectbox(key="loss").value == "mse"
    assert (
        at.number_input(key="iterations").value == 500
        and at.number_input(key="batch_size").value == 32
    )
    [note] = [c.value for c in at.caption if "preset had set" in c.value]
    assert "Kept as you changed them after choosing the preset: Learn a bias on." in note


def test_the_data_source_list_shows_words_and_the_url_keeps_the_keys():
    at = app()
    labels = at.selectbox(key="data").options
    assert labels[0].startswith("Synthetic") and labels[-1] == "Your own CSV file"
    assert "Preset: Sine with polynomial features (standardised)" in labels
    assert "Preset: Overfitting: a wide network on 40 noisy rows" in labels  # the app's own
    assert not any(
        key in labels for key in ("synthetic", "csv", "linear", "sine_poly_standardized")
    )
    at.selectbox(key="data").set_value("sine_poly_standardized").run()
    assert at.query_params["data"] == "sine_poly_standardized"
    at.selectbox(key="data").set_value("synthetic").run()
    assert "data" not in at.query_params  # the default is left out, as for the bound controls


def test_choosing_presets_and_files_logs_no_warning(monkeypatch):
    """Streamlit logs "created with a default value but also had its value set via the Session
    State API" when a callback sets a widget drawn with a default; it does so once per process,
    hence the reset of its flag."""
    from streamlit.elements.lib import policies

    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    # Only the script's own thread: AppTest's main thread warns that it runs without a server ("bare
    # mode").
    handler.addFilter(lambda record: record.threadName != threading.main_thread().name)
    loggers = [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("streaml")
    ]
    for logger in loggers:
        monkeypatch.setattr(logger, "handlers", [*logger.handlers, handler])
    at = app(data="moons")
    for source in ("classic", "escape_velocity", "overfitting", "synthetic", "blobs", "csv"):
        at.selectbox(key="data").set_value(source).run()
    upload(at, GOOD_CSV)
    upload(at, b"a,b,y\n1,2,3\n2,1,4\n3,5,9\n", "other.csv")
    at.selectbox(key="target").set_value("a").run()
    at.selectbox(key="model").set_value("logistic").run()  # the loss becomes bce
    assert not at.exception
    assert [record.getMessage() for record in records] == []


def test_full_batch_presets_get_the_data_size():
    at = app()
    at.selectbox(key="data").set_value("kepler").run()
    assert at.number_input(key="batch_size").value == PRESETS["kepler"].make().m


# ------------------------------------------------------------------ optimizer settings


def test_the_widgets_of_each_optimizer_are_its_hand_written_arguments():
    at = app()
    for name in lib.OPTIMIZERS:
        at.selectbox(key="optimizer").set_value(name).run()
        assert not at.exception
        expected = set()
        for arg in optimizer_defaults(name):
            expected |= {f"{name}_beta1", f"{name}_beta2"} if arg == "betas" else {f"{name}_{arg}"}
        drawn = {
            w.key
            for w in [*at.number_input, *at.checkbox]
            if w.key and w.key.startswith(f"{name}_")
        }
        assert drawn == expected, name


def test_momentum_reaches_the_config_and_changes_the_result():
    at = app()
    before = final_losses(at)
    at.number_input(key="sgd_momentum").set_value(0.9).run()
    press_run(at)
    data, result = shown_run(at)
    assert dict(result.config.optimizer_kwargs) == {"momentum": 0.9}
    expected = lib.run(
        data, lib.Config(lr=0.05, batch_size=32, iterations=500, optimizer_kwargs={"momentum": 0.9})
    )
    assert final_losses(at) == (f"{expected.manual.loss[-1]:.6g}", f"{expected.torch.loss[-1]:.6g}")
    assert final_losses(at) != before
    assert result.max_abs_diff < 1e-10


def test_adam_betas_reach_the_config():
    at = app()
    at.selectbox(key="optimizer").set_value("adam").run()
    at.number_input(key="adam_beta1").set_value(0.5).run()
    at.checkbox(key="adam_amsgrad").check().run()
    press_run(at)
    _, result = shown_run(at)
    assert result.config.optimizer == "adam"
    assert dict(result.config.optimizer_kwargs) == {"betas": (0.5, 0.999), "amsgrad": True}


def test_nesterov_without_momentum_is_said_in_words():
    at = app()
    at.checkbox(key="sgd_nesterov").check().run()
    press_run(at)
    assert not at.exception
    [error] = at.error
    assert "nesterov" in error.value.lower() and "Your other settings are kept" in error.value


# ------------------------------------------------------------------ model and loss


def test_loss_choices_follow_the_model():
    at = app()
    assert at.selectbox(key="loss").options == ["mse", "half_mse", "sse"]
    at.selectbox(key="model").set_value("logistic").run()
    assert at.selectbox(key="loss").options == ["bce"] and at.selectbox(key="loss").value == "bce"
    # The synthetic data has real-valued targets: a classifier cannot train on them, said in words.
    [error] = at.error
    assert "needs targets of 0 and 1" in error.value and "moons" in error.value
    at.selectbox(key="model").set_value("mlp").run()
    assert at.selectbox(key="loss").options == ["mse", "half_mse", "sse", "bce"]
    at.selectbox(key="loss").set_value("mse").run()
    assert not at.error
    press_run(at)
    _, result = shown_run(at)
    assert result.config.model == "mlp" and result.config.loss == "mse"
    assert result.max_abs_diff < 1e-10


def test_the_iteration_cap_is_named():
    at = app()
    at.selectbox(key="model").set_value("mlp").run()
    at.number_input(key="hidden").set_value(256).run()
    at.number_input(key="iterations").set_value(lib.MAX_ITERATIONS).run()
    assert not at.exception
    [error] = at.error
    assert "iterations x recorded weights is capped" in error.value


# ------------------------------------------------------------------ CSV upload

GOOD_CSV = b"x1,x2,label,y\n1,2,0,3.5\n2,1,1,4.0\n3,5,0,9.1\n4,4,1,10.2\n5,0,1,6.3\n6,2,0,11.0\n"


def upload(at: AppTest, content: bytes, name: str = "mine.csv") -> AppTest:
    at.selectbox(key="data").set_value("csv").run()
    at.file_uploader(key="csv_file").set_value((name, content, "text/csv")).run()
    assert not at.exception, at.exception
    return at


def test_csv_upload_trains_on_the_chosen_columns():
    at = app()
    at.selectbox(key="data").set_value("csv").run()
    assert "upload a CSV file" in at.info[0].value
    upload(at, GOOD_CSV)
    assert at.selectbox(key="target").options == ["x1", "x2", "label", "y"]
    assert at.selectbox(key="target").value == "y"
    assert at.multiselect(key="features").value == ["x1", "x2", "label"]
    at.multiselect(key="features").set_value(["x1", "x2"]).run()
    at.number_input(key="batch_size").set_value(6).run()
    at.number_input(key="lr").set_value(
        0.005
    ).run()  # unscaled inputs up to 6: a larger lr diverges
    press_run(at)
    data, result = shown_run(at)
    np.testing.assert_array_equal(data.X, [[1, 2], [2, 1], [3, 5], [4, 4], [5, 0], [6, 2]])
    np.testing.assert_array_equal(data.y, [3.5, 4.0, 9.1, 10.2, 6.3, 11.0])
    assert result.max_abs_diff < 1e-10
    assert any("reads **mine.csv** by name" in c.value for c in at.caption)


TWO_FEATURES = b"x1,x2,y\n1,0,1\n0,1,-1\n1,1,0\n2,1,1\n0,2,-2\n"
THREE_FEATURES = b"x1,x2,x3,y\n1,0,1,2\n0,1,0,-1\n1,1,2,2\n2,1,0,1\n0,2,1,-1\n"


def test_a_new_file_starts_the_column_choice_over_and_says_so():
    """Issue 10, bug 4: the features of the first file stayed chosen, so x3 was silently left
    out."""
    at = upload(app(), TWO_FEATURES, "two.csv")
    assert at.multiselect(key="features").value == ["x1", "x2"]
    # the first file: nothing to undo
    assert not any("column choice starts over" in c.value for c in at.caption)
    upload(at, THREE_FEATURES, "three.csv")
    assert (
        at.multiselect(key="features").value == ["x1", "x2", "x3"]
        and at.selectbox(key="target").value == "y"
    )
    assert any(
        c.value
        == "A new file, so the column choice starts over: the target is its last numeric column, "
        "y, and the features are all the other numeric columns (x1, x2, x3)."
        for c in at.caption
    )
    press_run(at)
    data, _ = shown_run(at)
    assert data.feature_names == ("x1", "x2", "x3")
    # A file with other names: its own columns, not "no features chosen".
    upload(at, b"a,b,label\n1,2,0\n2,1,1\n3,5,0\n", "other.csv")
    assert not at.error
    assert (
        at.multiselect(key="features").value == ["a", "b"]
        and at.selectbox(key="target").value == "label"
    )
    # A change of columns ends the note; the same file again (a page switch, say) keeps the choice.
    at.multiselect(key="features").set_value(["b"]).run()
    assert not any("column choice starts over" in c.value for c in at.caption)
    at.switch_page("pages/step_through.py").run()
    at.switch_page("pages/compare.py").run()
    assert at.multiselect(key="features").value == ["b"]


def test_a_new_file_names_its_own_text_columns():
    """The note on a new file's columns once took the place of its list of text columns: the
    caption then spelt out the note letter by letter, for a file with no text column too."""
    at = upload(app(), TWO_FEATURES, "two.csv")
    upload(at, THREE_FEATURES, "three.csv")
    assert any("column choice starts over" in c.value for c in at.caption)
    assert not any(c.value.startswith("Text columns") for c in at.caption)
    upload(at, b"x,name,y\n1,a,2\n2,b,4\n3,c,7\n", "named.csv")
    assert any("column choice starts over" in c.value for c in at.caption)
    shown = [c.value for c in at.caption if c.value.startswith("Text columns")]
    assert shown == ["Text columns, not usable as numbers: name."]


def test_csv_messages_name_the_checkbox_and_infinite_values():
    at = upload(app(), b"x,y\n1,2\n,3\ninf,4\n5,6\n", "holes.csv")
    [error] = at.error
    assert (
        "leave those rows out with the checkbox Drop rows with missing values, or fill them in"
        in error.value
    )
    assert "drop_missing" not in error.value and "column 'x' holds infinite values" in error.value
    at.checkbox(key="drop_missing").check().run()
    [error] = at.error
    assert "the checkbox Drop rows with missing values does not leave them out" in error.value
    assert "Drop rows with missing values" in at.get("file_uploader")[0].proto.help


def test_csv_target_picker_and_classifier_check():
    at = upload(app(), GOOD_CSV)
    at.selectbox(key="model").set_value("logistic").run()
    [error] = at.error  # y is not 0/1
    assert "0s and 1s" in error.value and "'y'" in error.value
    at.selectbox(key="target").set_value("label").run()
    assert "label" not in at.multiselect(key="features").options
    assert not at.error
    press_run(at)
    data, result = shown_run(at)
    np.testing.assert_array_equal(data.y, [0, 1, 0, 1, 1, 0])
    assert result.config.loss == "bce"


def test_standardised_csv_is_embedded_in_the_script():
    at = upload(app(), GOOD_CSV)
    at.checkbox(key="standardize").check().run()
    press_run(at)
    data, _ = shown_run(at)
    np.testing.assert_allclose(data.X.mean(axis=0), 0, atol=1e-12)
    assert any(
        "written into the script, because it was standardised" in c.value for c in at.caption
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "the file is empty"),
        (b"a;b;c\n1;2;3\n", "separated by semicolons"),
        (b"x,y\n1,2\n,3\n4,5\n", "missing values"),
        (b"x,y\n1,5\n2,5\n", "constant"),
        (b"\xff\xfe,x\n1,2\n", "not UTF-8"),
    ],
)
def test_bad_csv_files_are_explained_and_the_settings_stay(content, words):
    at = app()
    at.number_input(key="lr").set_value(0.02).run()
    upload(at, content, "bad.csv")
    assert not at.exception
    [error] = at.error
    assert words in error.value and "Your other settings are kept" in error.value
    assert at.number_input(key="lr").value == 0.02


def test_missing_values_can_be_dropped():
    at = upload(app(), b"x,y\n1,2\n,3\n4,5\n6,7\n")
    at.checkbox(key="drop_missing").check().run()
    assert not at.error
    at.number_input(key="batch_size").set_value(3).run()
    press_run(at)
    data, _ = shown_run(at)
    assert data.m == 3
    assert any("cleaned of rows with missing values" in c.value for c in at.caption)


def test_the_upload_survives_a_page_switch():
    at = upload(app(), GOOD_CSV)
    at.switch_page("pages/code_map.py").run()
    assert not at.exception and not at.error
    at.switch_page("pages/compare.py").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="data").value == "csv"
    assert any("Using **mine.csv**, uploaded earlier" in c.value for c in at.caption)


# ------------------------------------------------------------------ the URL


def test_url_parameters_set_the_controls_and_the_run():
    at = app(lr="0.2", batch_size="16", optimizer="adam", adam_beta1="0.8", log_scale="false")
    assert at.number_input(key="lr").value == 0.2
    assert at.number_input(key="batch_size").value == 16
    assert at.number_input(key="adam_beta1").value == 0.8
    assert at.toggle(key="log_scale").value is False
    assert not at.warning
    _, result = shown_run(at)  # the first run already uses the link's settings
    assert result.config.lr == 0.2 and result.config.batch_size == 16
    assert result.config.optimizer == "adam" and dict(result.config.optimizer_kwargs) == {
        "betas": (0.8, 0.999)
    }


def test_a_link_with_every_kind_of_control_reopens_the_same_run():
    """The URL itself is written by the browser (see test_browser.py); here a link's values drive
    the run."""
    query = {
        "data": "moons",
        "model": "mlp",
        "loss": "bce",
        "hidden": "4",
        "activation": "relu",
        "lr": "0.3",
        "batch_size": "50",
        "iterations": "40",
        "init": "normal",
        "seed": "3",
        "optimizer": "rmsprop",
        "rmsprop_alpha": "0.9",
        "rmsprop_centered": "true",
        "zero_grad": "true",
    }
    at = app(**query)
    assert not at.warning and not at.error
    data, result = shown_run(at)
    cfg = lib.Config(
        lr=0.3,
        batch_size=50,
        iterations=40,
        loss="bce",
        model="mlp",
        hidden=4,
        activation="relu",
        init="normal",
        seed=3,
        optimizer="rmsprop",
        optimizer_kwargs={"alpha": 0.9, "centered": True},
    )
    assert result.config == cfg
    expected = lib.run(PRESETS["moons"].make(3), cfg)
    np.testing.assert_array_equal(result.torch.weights, expected.torch.weights)
    assert data.name == PRESETS["moons"].make(3).name


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ({"lr": "abc"}, "lr"),
        ({"lr": "-1"}, "lr"),
        ({"batch_size": "0"}, "batch_size"),
        ({"iterations": "1e12"}, "iterations"),
        ({"loss": "cubic"}, "loss"),
        ({"model": "transformer"}, "model"),
        ({"seed": "nan"}, "seed"),
        ({"bias": "maybe"}, "bias"),
        ({"sgd_momentum": "inf"}, "sgd_momentum"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_url_values_fall_back_to_defaults_with_a_note(query, key):
    at = app(**query)
    assert not at.error
    notes = [w.value for w in at.warning]
    assert len(notes) == 1 and f"`{key}" in notes[0], notes
    if key in DEFAULTS:
        widget = at.get("number_input") + at.get("selectbox") + at.get("checkbox")
        [control] = [w for w in widget if w.key == key]
        assert control.value == DEFAULTS[key]
    _, result = shown_run(at)
    assert result.max_abs_diff < 1e-10  # the default run still ran
    at.number_input(key="lr").set_value(0.1).run()
    assert not at.warning  # the note belongs to the link, not to later changes


def test_url_notes_and_matching_in_isolation():
    drawn = {
        "lr": (0.05, "a number from 1e-06 to 100"),
        "bias": (True, "true or false"),
        "feat": (["a", "b"], ""),
    }
    assert url_notes({"lr": ["0.050"], "bias": ["True"], "feat": ["b,a"]}, drawn) == []
    [note] = url_notes({"lr": ["x"]}, drawn)
    assert "`lr=x`" in note and "a number from 1e-06 to 100" in note and "`0.05`" in note
    assert _matches(["2"], 2) and not _matches(["2.5"], 2) and not _matches(["yes"], True)


# ------------------------------------------------------- other pages reuse the controls and the run


def test_the_controls_are_the_same_on_every_page():
    at = app()
    at.number_input(key="lr").set_value(0.07).run()
    at.selectbox(key="optimizer").set_value("adagrad").run()
    for page in ("pages/code_map.py", "pages/step_through.py", "pages/compare.py"):
        at.switch_page(page).run()
        assert not at.exception, page
        assert at.number_input(key="lr").value == 0.07, page
        assert at.selectbox(key="optimizer").value == "adagrad", page


def test_last_run_is_the_compare_pages_run():
    at = app()
    data, result = shown_run(at)
    expected = lib.run(
        linear_data(3, 200, 0.1, 0), lib.Config(lr=0.05, batch_size=32, iterations=500)
    )
    np.testing.assert_array_equal(result.manual.weights, expected.manual.weights)
    assert data.name == linear_data(3, 200, 0.1, 0).name


# ----------------------------------------------------------- downloads and caps on the Compare page


def test_the_three_downloads_are_offered_for_the_run_on_show():
    at = app()
    buttons = {b.key: b for b in at.get("download_button")}
    assert set(buttons) == {
        "download_csv",
        "download_json",
        "download_script",
        "download_notebook",
    }
    assert not any(b.proto.disabled for b in buttons.values())
    assert any("makes the data again from its seed" in c.value for c in at.caption)


def test_a_run_stopped_by_the_time_cap_keeps_its_steps_and_names_the_cap():
    at = app()
    data = linear_data(3, 200, 0.1, 0)
    capped = lib.run(data, lib.Config(lr=0.05, batch_size=32, iterations=100_000), time_limit=0)
    assert capped.stopped == "time limit" and 0 < capped.steps < 100_000
    record = dict(at.session_state[LAST_RUN])
    at.session_state[LAST_RUN] = {**record, "result": capped}
    at.run()
    assert not at.exception
    [warning] = at.warning
    assert "Hit the time limit" in warning.value and "wall-time cap here is 60 s" in warning.value
    assert at.metric[0].value == f"{capped.steps:,}"  # the partial run is on show, charts and all
    assert len(at.get("vega_lite_chart")) == 4


def test_mlp_settings_are_greyed_out_for_the_other_models():
    at = app()
    assert at.number_input(key="hidden").disabled and at.selectbox(key="activation").disabled
    at.selectbox(key="model").set_value("mlp").run()
    assert not at.number_input(key="hidden").disabled


@pytest.mark.parametrize(
    ("model", "way_out"),
    [("logistic", "the linear model with a squared loss"), ("mlp", "a squared loss (mse)")],
)
def test_bce_on_regression_targets_offers_a_way_out_this_model_has(model, way_out):
    """The logistic model trains with bce only: its error must not offer "a squared loss" for it."""
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=60)
    at.query_params.update({"model": model, "loss": "bce", "iterations": "20"})
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "needs targets of 0 and 1" in errors and way_out in errors
    if model == "logistic":
        assert "or a squared loss (mse)" not in errors
