"""The pages' shared parts cache the data they build (pages/parts/cached.py), and never the
navigation check (pages/parts/navigation.py), which must run on every page view."""

import inspect

from pages.parts import cached, navigation


def is_cached(func) -> bool:
    # st.cache_data's wrapper, not a plain function
    return hasattr(func, "clear") and not inspect.isfunction(func)


def test_the_synthetic_data_is_cached_and_the_navigation_check_is_not():
    assert is_cached(cached._linear_arrays)
    assert is_cached(cached._preset_arrays) and is_cached(cached.csv_arrays)
    assert is_cached(cached.csv_frame) and is_cached(cached._least_squares)
    assert not is_cached(navigation.through_navigation)


def test_the_synthetic_data_is_computed_once_per_argument_set(monkeypatch):
    calls = []
    real = cached.lib.datasets.linear
    monkeypatch.setattr(cached.lib.datasets, "linear", lambda **kw: calls.append(kw) or real(**kw))
    cached._linear_arrays.clear()
    first = cached.linear_data(3, 50, 0.1, 0)
    second = cached.linear_data(3, 50, 0.1, 0)
    assert len(calls) == 1  # before the fix the decorator sat on through_navigation: two calls here
    assert (first.X == second.X).all() and (first.y == second.y).all()
    cached.linear_data(3, 51, 0.1, 0)
    assert len(calls) == 2


def test_the_navigation_check_reruns_at_most_once_per_session():
    """The check must not rerun the page on every run (under AppTest, with the pages/ folder, it
    found the flag set again on each run): that rerun dropped the click that started the run."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    # the navigation, then the Compare page
    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=60)
    at.query_params["iterations"] = "20"
    at.run()
    assert at.session_state[navigation.NAVIGATION_CHECKED]
    at.number_input(key="lr").set_value(0.2).run()
    at.button(key="run").click().run()
    assert not at.exception
    # the click ran the new settings
    assert not any("settings have changed" in info.value for info in at.info)
