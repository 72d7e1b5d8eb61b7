"""Step through's play mode in a real browser: the run_every fragment moves, pauses, stops at the
end, and stops (without an exception) when the learner switches page or changes a sidebar setting.

AppTest runs a fragment only as part of a whole script run, never on its timer, so the timer itself
is checked here. Missing /usr/bin/chromium skips these tests (REQUIRE_BROWSER=1 fails instead; see
conftest).
"""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from serving import served_app

ROOT = Path(__file__).resolve().parent.parent
LOAD = 90_000  # ms: the first page load imports torch on a shared machine


LOG: Path | None = None  # the server's output, quoted when a check fails


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run app.py` on a free port of 127.0.0.1; yields its base URL and stops it
    afterwards."""
    global LOG
    LOG = tmp_path_factory.mktemp("streamlit") / "server.log"
    with served_app(LOG) as (base, _):
        yield base


def main(page: Page):
    return page.get_by_test_id("stMain")


def shown_step(page: Page) -> int | None:
    """The step in the page's title ("Step 3 · this run has ..."), None before the first step."""
    titles = main(page).get_by_role("heading", name=re.compile(r"^Step \d+"))
    if not titles.count():
        return None
    return int(re.match(r"Step (\d+)", titles.first.inner_text()).group(1))


def wait_for_step(page: Page, at_least: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = shown_step(page)
        if step is not None and step >= at_least:
            return step
        page.wait_for_timeout(100)
    raise AssertionError(
        f"the page did not reach step {at_least}; it shows step {shown_step(page)}"
    )


def button(page: Page, name: str):
    return main(page).get_by_role("button", name=name, exact=True)


def server_log() -> str:
    return LOG.read_text()[-3000:] if LOG is not None else ""


def visible(locator, timeout: float = LOAD) -> None:
    """expect(locator).to_be_visible, with the server's log in the message when it is not."""
    try:
        expect(locator).to_be_visible(timeout=timeout)
    except AssertionError as err:
        raise AssertionError(f"{err}\n--- server log ---\n{server_log()}") from None


def assert_no_exception(page: Page) -> None:
    assert page.get_by_test_id("stException").count() == 0, server_log()
    assert "Traceback" not in page.inner_text("body"), server_log()
    assert "This app has encountered an error" not in page.inner_text("body"), server_log()


def test_play_moves_pauses_stops_at_the_end_and_on_leaving(server, page: Page):
    page.goto(f"{server}/step_through?iterations=40")
    expect(page.get_by_role("heading", name="Step through").first).to_be_visible(timeout=LOAD)
    visible(main(page).get_by_text("Not started"))
    expect(page.get_by_label("Iterations (optimizer steps)")).to_have_value("40")

    # Play at the default 2 moves a second: it moves by itself, and Pause holds it.
    button(page, "▶ Play").click()
    wait_for_step(page, 2)
    button(page, "⏸ Pause").click()
    expect(button(page, "⏸ Pause")).to_have_count(0, timeout=15_000)
    paused = shown_step(page)
    page.wait_for_timeout(1_500)  # three beats at 2 a second
    assert shown_step(page) == paused
    assert_no_exception(page)

    # Play, then leave for the Code map: no exception there, and back on Step through play is
    # paused.
    button(page, "▶ Play").click()
    wait_for_step(page, paused + 1)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Code map").click()
    visible(page.get_by_role("heading", name="Code map").first)
    page.wait_for_timeout(1_000)
    assert_no_exception(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Step through").click()
    visible(button(page, "▶ Play"))
    visible(main(page).get_by_role("heading", name=re.compile(r"^Step \d+")))
    expect(button(page, "⏸ Pause")).to_have_count(0)
    back = shown_step(page)
    page.wait_for_timeout(1_000)
    assert shown_step(page) == back
    assert_no_exception(page)

    # Play from step 37 of 40: it stops by itself at step 39, the last, and says so.
    target = page.get_by_label("step N")
    target.fill("37")
    target.press("Enter")
    button(page, "Run to step N").click()
    wait_for_step(page, 37)
    button(page, "▶ Play").click()
    visible(
        main(page).get_by_text("Play stopped by itself at step 39, the run's last step"), 20_000
    )
    assert shown_step(page) == 39
    expect(button(page, "▶ Play")).to_be_disabled()
    assert_no_exception(page)

    # Play, then change a sidebar setting: a new run, not started, with play off.
    button(page, "Reset").click()
    visible(main(page).get_by_text("Not started"))
    button(page, "▶ Play").click()
    wait_for_step(page, 1)
    lr = page.get_by_label("Learning rate (lr)")
    lr.fill("0.02")
    lr.press("Enter")
    visible(main(page).get_by_text("Not started"))
    expect(button(page, "⏸ Pause")).to_have_count(0, timeout=15_000)
    page.wait_for_timeout(1_000)
    assert shown_step(page) is None
    assert_no_exception(page)
