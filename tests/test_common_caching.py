"""pages/common.py caches the data it builds, and never the navigation check (which must run on every page view)."""

import inspect

import pages.common as common


def cached(func) -> bool:
    return hasattr(func, "clear") and not inspect.isfunction(func)  # st.cache_data's wrapper, not a plain function


def test_the_synthetic_data_is_cached_and_the_navigation_check_is_not():
    assert cached(common._linear_arrays)
    assert cached(common._preset_arrays) and cached(common._csv_arrays)
    assert not cached(common.through_navigation)


def test_the_synthetic_data_is_computed_once_per_argument_set(monkeypatch):
    calls = []
    real = common.lib.datasets.linear
    monkeypatch.setattr(common.lib.datasets, "linear", lambda **kw: calls.append(kw) or real(**kw))
    common._linear_arrays.clear()
    first = common.linear_data(3, 50, 0.1, 0)
    second = common.linear_data(3, 50, 0.1, 0)
    assert len(calls) == 1  # before the fix the decorator sat on through_navigation: two calls here
    assert (first.X == second.X).all() and (first.y == second.y).all()
    common.linear_data(3, 51, 0.1, 0)
    assert len(calls) == 2


def test_the_navigation_check_reruns_at_most_once_per_session():
    """The check must not rerun the page on every run (under AppTest, with the pages/ folder, it found the flag
    set again on each run): that rerun dropped the click that started the run."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parent.parent / "app.py")  # the navigation, then the Compare page
    at = AppTest.from_file(app, default_timeout=60)
    at.query_params["iterations"] = "20"
    at.run()
    assert at.session_state[common.NAVIGATION_CHECKED]
    at.number_input(key="lr").set_value(0.2).run()
    at.button(key="run").click().run()
    assert not at.exception
    assert not any("settings have changed" in info.value for info in at.info)  # the click ran the new settings
