"""The pages' shared parts cache the data they build (pages/parts/cached.py), and never the
navigation check (pages/parts/navigation.py), which must run on every page view."""

import inspect

import pytest

import lib
from lib.io.export import twin_sources
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


@pytest.mark.parametrize(
    "cfg",
    [
        lib.Config(lr=0.3, batch_size=7, seed=5, init="normal", iterations=40),
        lib.Config(model="mlp", hidden=3, activation="relu", lr=0.2, batch_size=200, seed=2),
        lib.Config(optimizer="adam", optimizer_kwargs={"betas": (0.8, 0.9)}, init=[0.1] * 4),
        lib.Config(loss="sse", zero_grad=False, torch_dtype="float32", bias=False, init=[1.0] * 3),
    ],
    ids=["sgd", "mlp", "adam", "sse"],
)
def test_the_twin_tables_cache_key_leaves_the_loops_text_as_it_is(cfg):
    # The Code map, Step through and the twin table share one entry for configurations that
    # differ only in what the loops take as arguments: the text must not depend on it.
    data = lib.datasets.linear(m=60, n=3, noise=0.3, seed=1)
    n, key = cached.loop_key(data, cfg)
    assert twin_sources(cached.shape_data(n), key) == twin_sources(data, cfg)


def test_the_cache_key_keeps_what_changes_the_loops():
    data = lib.datasets.linear(m=60, n=3, noise=0.3, seed=1)
    for a, b in [
        (lib.Config(), lib.Config(optimizer="adam")),
        (lib.Config(), lib.Config(zero_grad=False)),
        (lib.Config(), lib.Config(optimizer_kwargs={"momentum": 0.9})),
    ]:
        assert cached.loop_key(data, a) != cached.loop_key(data, b)
        sources = [twin_sources(cached.shape_data(3), cached.loop_key(data, c)[1]) for c in (a, b)]
        assert sources[0] != sources[1]
