"""AppTest of the Loss landscape page: its own example, the Compare run, the controls, bad states
in words."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

import lib
from lib.lessons.landscape import full_data_loss

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/landscape.py"
TIMEOUT = 60  # s: the first run imports torch on a shared machine


def landscape(preset: tuple[lib.Dataset, lib.Result] | None = None) -> AppTest:
    """The app opened straight on the landscape page (no Compare run yet), optionally with a run
    to map."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if preset is not None:
        # the page's own example, replaced by the run under test
        at.session_state["landscape_default"] = preset
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def layers(at: AppTest) -> list[pd.DataFrame]:
    """The data of each layer of the page's one chart, in drawing order."""
    [chart] = at.get("vega_lite_chart")
    frames = {d.name: convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets}
    spec = json.loads(chart.proto.spec)
    return [frames[layer["data"]["name"]] for layer in spec["layer"]]


def title(at: AppTest) -> str:
    [chart] = at.get("vega_lite_chart")
    return json.loads(chart.proto.spec)["title"]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def text(at: AppTest) -> str:
    return "\n".join(str(md.value) for md in at.markdown)


def paths(at: AppTest) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The hand loop's and torch's path layers: the hand line comes right after the map, torch's
    line later."""
    drawn = layers(at)
    torch = next(f for f in drawn[2:] if "loop" in f and (f["loop"] == "torch").all())
    return drawn[1], torch


def run_of(data: lib.Dataset, **kw) -> tuple[lib.Dataset, lib.Result]:
    return data, lib.run(data, lib.Config(**kw))


@pytest.fixture(scope="module")
def own() -> AppTest:
    return landscape()


def test_without_a_compare_run_it_maps_its_own_example(own):
    assert own.title[0].value == "Loss landscape"
    assert any("No run from the Compare page yet" in info.value for info in own.info)
    assert len(own.get("page_link")) == 1  # the way to the Compare page
    assert not own.warning
    data, result = own.session_state["landscape_default"]
    heat, manual_line = layers(own)[:2]
    assert {"a0", "a1", "b0", "b1", "loss"} <= set(heat.columns) and len(heat) == 80 * 80
    np.testing.assert_allclose(manual_line["a"], result.manual.weights[:, 0])
    np.testing.assert_allclose(manual_line["b"], result.manual.weights[:, 1])
    k = result.steps
    shown = metrics(own)
    assert shown["Step shown"] == f"{k:,}"
    assert (
        shown["Loss with every weight at this step"]
        == f"{full_data_loss(data, result.config, result.manual.weights[k:])[0]:.4g}"
    )
    assert "Exact map" in text(own) and "only these two weights" in text(own)


def test_the_slider_shows_the_path_up_to_the_chosen_step(own):
    result = own.session_state["landscape_default"][1]
    own.slider[0].set_value(4).run()
    assert not own.exception
    assert title(own).endswith(f"after 4 of {result.steps} steps")
    manual, torch = paths(own)
    assert manual["step"].tolist() == [0, 1, 2, 3, 4] and torch["step"].tolist() == [0, 1, 2, 3, 4]
    ring = [f for f in layers(own) if len(f) == 1 and "loop" in f]
    assert {float(f["step"].iloc[0]) for f in ring} == {4.0}
    np.testing.assert_allclose(ring[0][["a", "b"]].to_numpy()[0], result.manual.weights[4])
    assert metrics(own)["Step shown"] == "4"
    own.slider[0].set_value(result.steps).run()


def test_a_compare_run_is_mapped_and_changing_weights_changes_the_chart():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()  # the Compare page's default run
    at.switch_page(PAGE).run()
    assert not at.exception
    assert any("Your last run on the Compare page" in c.value for c in at.caption)
    assert not at.info  # no "made its own example" note
    from pages.parts.cached import last_run  # noqa: F401  (the page would have used its own example without it)

    before_heat, before_line = layers(at)[:2]
    assert title(at).startswith("Loss over w_1 and w_2")
    at.selectbox[1].set_value(3).run()  # y axis: the bias
    assert not at.exception
    after_heat, after_line = layers(at)[:2]
    assert title(at).startswith("Loss over w_1 and bias")
    assert not np.allclose(before_line["b"], after_line["b"])
    assert not before_heat["b0"].equals(after_heat["b0"])
    np.testing.assert_allclose(before_line["a"], after_line["a"])  # the x weight did not change
    # The other two weights are held at their final values: the text says so, and the two losses
    # differ before the end.
    assert "held at their final values" in text(at)
    at.slider[0].set_value(10).run()
    shown = metrics(at)
    assert shown["Loss on the map at the marker"] != shown["Loss with every weight at this step"]
    at.radio[0].set_value("step").run()
    shown = metrics(at)
    assert shown["Loss on the map at the marker"] == shown["Loss with every weight at this step"]
    assert "values at the step shown" in text(at)


def test_the_same_weight_on_both_axes_is_refused_in_words():
    at = landscape(run_of(lib.datasets.linear(m=30, n=2, seed=1), lr=0.1, iterations=20))
    at.selectbox[1].set_value(0).run()
    assert not at.exception
    assert any("two different weights" in w.value for w in at.warning)
    assert not at.get("vega_lite_chart")


def test_a_grid_map_for_an_mlp():
    data = lib.datasets.linear(m=40, n=2, noise=0.2, seed=1)
    at = landscape(run_of(data, model="mlp", hidden=3, lr=0.1, iterations=20, init="normal"))
    assert "evaluated on a" in text(at) and "Exact map" not in text(at)
    heat = layers(at)[0]
    assert np.isfinite(heat["loss"]).all() and len(heat) > 100
    assert len([f for f in layers(at) if "what" in f]) == 0  # no least-squares point for a network


def test_a_model_too_big_to_map_is_explained():
    data = lib.datasets.linear(m=20, n=3, seed=0)
    at = landscape(run_of(data, model="mlp", hidden=40, iterations=3))
    [warning] = at.warning
    assert "201 weights" in warning.value and "fewer hidden units" in warning.value
    assert not at.get("vega_lite_chart")


def test_a_single_weight_is_explained():
    at = landscape(run_of(lib.datasets.linear(m=20, n=1, seed=0), bias=False, iterations=5))
    [warning] = at.warning
    assert "single weight" in warning.value
    assert not at.get("vega_lite_chart")


def test_a_diverged_run_opens_before_the_blow_up_and_explains_the_end():
    data, result = run_of(
        lib.datasets.linear(m=50, n=2, seed=0), lr=5.0, batch_size=50, iterations=2000
    )
    assert result.stopped == "diverged"
    at = landscape((data, result))
    assert at.radio[0].value == "step"  # held where the run was at the step shown
    k = at.slider[0].value
    assert 0 < k < result.steps
    heat = layers(at)[0]
    assert np.isfinite(heat["loss"]).all()
    assert "This run diverged" in text(at)
    at.slider[0].set_value(result.steps).run()  # the last step: weights near overflow
    assert not at.exception
    assert any("overflows float64" in w.value for w in at.warning)


def test_a_long_path_is_thinned_to_at_most_5000_points():
    data = lib.datasets.linear(m=20, n=2, seed=3)
    at = landscape(run_of(data, lr=0.01, batch_size=5, iterations=12_000))
    manual, torch = paths(at)
    for path in (manual, torch):
        assert len(path) <= 5_001
        assert path["step"].iloc[0] == 0 and path["step"].iloc[-1] == 12_000
        assert path["step"].is_monotonic_increasing
    assert "of them are drawn" in text(at)
