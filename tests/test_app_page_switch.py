"""A page's first run after a page switch uses the settings the sidebar shows (switched as the
browser does)."""

from pathlib import Path

import pytest
from page_switch import switch_page
from streamlit.testing.v1 import AppTest

import lib
from lib import pitfalls

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60


def app() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


# The argument is `path`, not `page`: pytest-playwright's fixture of that name would make this
# AppTest-only test a browser test (run in make test's serial pass, once per browser).
@pytest.mark.parametrize(
    ("path", "kept"),
    [("pages/step_through.py", "step_config"), ("pages/code_map.py", "map_config")],
)
def test_the_first_run_after_a_switch_uses_the_sidebars_settings(path, kept):
    at = app()
    at.number_input(key="lr").set_value(0.07).run()
    at.selectbox(key="optimizer").set_value("adam").run()
    at.number_input(key="batch_size").set_value(16).run()
    switch_page(at, path)
    assert not at.exception, at.exception
    cfg = at.session_state[kept][1]  # the Config the page's first run built its run from
    assert (cfg.lr, cfg.optimizer, cfg.batch_size) == (0.07, "adam", 16)
    assert at.number_input(key="lr").value == 0.07


def test_the_step_through_caption_names_the_learning_rate_shown():
    at = app()
    at.number_input(key="lr").set_value(0.07).run()
    switch_page(at, "pages/step_through.py")
    at.button(key="step_start").click().run()
    assert not at.exception, at.exception
    assert any("learning rate 0.07." in c.value for c in at.caption)


def test_the_pitfalls_labs_own_settings_survive_a_round_trip():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    # short runs; the setting itself is kept like the others
    at.query_params["pitfall_iterations"] = "20"
    at.run()
    switch_page(at, "pages/pitfalls.py")
    at.number_input(key="pitfall_lr").set_value(0.02).run()
    at.number_input(key="pitfall_batch_size").set_value(50).run()
    switch_page(at, "pages/compare.py")
    switch_page(at, "pages/pitfalls.py")
    assert not at.exception, at.exception
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    limit = pitfalls.stability_limit(
        data, lib.Config(lr=0.02, batch_size=50, iterations=20, loss="mse")
    )
    said = [m.value for m in at.sidebar.markdown if m.value.startswith("**Stability limit")]
    assert said == [
        f"**Stability limit: {limit:.4g}** · your learning rate is {0.02 / limit:.3g}× it (at or "
        "below)."
    ]
