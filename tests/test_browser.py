"""The real app in a real browser: `streamlit run app.py` served, Debian's chromium driving it.

Missing /usr/bin/chromium skips these tests, unless REQUIRE_BROWSER=1 (set by .ci/run), which
makes it a failure. With SCREENSHOTS=<dir>, each visited page is saved there as <name>.png.
"""

import contextlib
import math
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from serving import LOAD, assert_no_traceback, served_app, settle
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parent.parent
LIVE_BYTES = 300_000  # websocket bytes per live redraw of the Compare page's charts (issue 10)

# Every page of the app: (url path, heading it shows, screenshot name). Adding a page is one line.
PAGES = [
    ("", "Compare the loops", "compare"),
    ("pitfalls", "Pitfalls lab", "pitfalls"),
    ("code_map", "Code map", "code_map"),
    ("step_through", "Step through", "step_through"),
    ("landscape", "Loss landscape", "landscape"),
    ("line_order", "What breaks if you move a line", "line_order"),
    ("data_parallel", "Data parallel", "data_parallel"),
    ("lr_map", "Learning-rate map", "lr_map"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app served by the same command a user types, on a free port; yields its base URL."""
    with served_app(tmp_path_factory.mktemp("server") / "streamlit.log") as (base, _):
        yield base


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        # Streamlit scrolls inside its main block, so a full-page shot is one screen: grow the
        # window first.
        size = page.viewport_size
        height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], height + 40)})
        page.wait_for_timeout(1_000)  # charts re-lay out to the new size
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
        page.set_viewport_size(size)


def summary_text(page: Page) -> str:
    return page.get_by_test_id("stTable").first.inner_text()


def test_every_page_loads_and_the_compare_page_reruns(server, page: Page):
    for path, heading, name in PAGES:
        page.goto(f"{server}/{path}")
        expect(page.get_by_role("heading", name=heading).first).to_be_visible(timeout=LOAD)
        settle(page)
        assert_no_traceback(page)
        if path == "":  # the Compare page: its charts render, and a new lr gives a new result
            charts = page.get_by_test_id("stVegaLiteChart")
            expect(charts).to_have_count(4, timeout=LOAD)
            for i in range(4):
                expect(charts.nth(i).locator("canvas, svg").first).to_be_visible(timeout=LOAD)
            before = summary_text(page)
            assert "manual (numpy)" in before and "torch" in before
            screenshot(page, name)

            lr = page.get_by_label("Learning rate (lr)")
            lr.fill("0.2")
            lr.press("Enter")
            settle(page)
            page.get_by_role("button", name="Run", exact=True).click()
            expect(page.get_by_test_id("stTable").first).not_to_have_text(before, timeout=LOAD)
            settle(page)
            assert_no_traceback(page)
            expect(charts).to_have_count(4)
        else:
            screenshot(page, name)


class Frames:
    """The app's websocket messages as the browser receives them: (seconds since start, ForwardMsg,
    bytes)."""

    def __init__(self, page: Page) -> None:
        self.start = time.monotonic()
        self.messages: list[tuple[float, ForwardMsg, int]] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload) -> None:
        if isinstance(payload, bytes):
            self.messages.append(
                (time.monotonic() - self.start, ForwardMsg.FromString(payload), len(payload))
            )

    def mark(self) -> int:
        return len(self.messages)

    def finished(self, since: int, how: str = "FINISHED_SUCCESSFULLY") -> float | None:
        """When the first script run after message `since` to end `how` did (by default:
        successfully, which a fragment's run or a run that ends in a rerun does not), in seconds
        since start; None if none has yet."""
        status = ForwardMsg.ScriptFinishedStatus.Value(how)
        for at, msg, _ in self.messages[since:]:
            if msg.WhichOneof("type") == "script_finished" and msg.script_finished == status:
                return at
        return None

    def redraws(self, since: int) -> list[int]:
        """Bytes of each redraw of the charts after message `since`, in order (a redraw ends where a
        chart's place is drawn again), counting the chart messages only, in the run that drew
        them."""
        out, seen = [], set()
        for _, msg, size in self.messages[since:]:
            if msg.WhichOneof("type") == "new_session":
                # a new script run (the rerun that draws the result) starts a new redraw
                seen = set()
                out.append(0)
            if (
                msg.WhichOneof("type") != "delta"
                or msg.delta.new_element.WhichOneof("type") != "vega_lite_chart"
            ):
                continue
            place = tuple(msg.metadata.delta_path)
            if place in seen or not out:
                seen, out = set(), [*out, 0]
            seen.add(place)
            out[-1] += size
        return [n for n in out if n]


def open_compare(page: Page, server: str, query: str = "") -> None:
    page.goto(f"{server}/{query}")
    expect(page.get_by_role("heading", name="Compare the loops")).to_be_visible(timeout=LOAD)
    settle(page)


def loops_seconds(page: Page) -> float:
    """The two loops' own time for the run on show: the summary's wall times, added."""
    text = summary_text(page)
    return sum(float(value) for value in re.findall(r"([\d.]+) s\b", text))


def bar_steps(page: Page) -> int:
    text = page.get_by_test_id("stProgress").inner_text()
    return int(re.search(r"Step ([\d,]+) of", text).group(1).replace(",", ""))


def app_stop(page: Page):
    return page.get_by_test_id("stMainBlockContainer").get_by_role(
        "button", name="Stop", exact=True
    )


def test_a_long_link_waits_and_its_live_redraws_stay_small(server, page: Page):
    """Bug 6 and 1 of issue 10. A link asking for a million steps waits for Run, with its settings
    filled in. A 20,000-step run: every live redraw of the charts is at most LIVE_BYTES over the
    websocket, and the page is done soon after the loops are (the issue's target is 1.3 x the loops'
    own time plus 1 s; the bound here allows for a loaded machine). Before the fix a redraw was
    2.9 MB and the page took 3.4 x the loops' time."""
    frames = Frames(page)
    open_compare(page, server, "?iterations=1000000")
    expect(page.get_by_text("This run has not started")).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(0)
    iterations = page.get_by_label("Iterations (optimizer steps)")
    expect(iterations).to_have_value("1000000")
    iterations.fill("20000")
    iterations.press("Enter")
    settle(page)
    since = frames.mark()
    clicked = time.monotonic() - frames.start
    page.get_by_role("button", name="Run", exact=True).click()
    expect(app_stop(page)).to_be_visible(timeout=LOAD)  # long enough to be shown live
    # Polled every 0.1 s: expect() slows its polling to once a second after a few seconds.
    script = (
        "() => [...document.querySelectorAll('[data-testid=stMetric]')]"
        ".some(m => m.innerText.includes('20,000'))"
    )
    page.wait_for_function(script, polling=100, timeout=LOAD)
    shown = time.monotonic() - frames.start
    # Settled: the run that draws the result has reached the browser in full, and the numbers are on
    # screen.
    deadline = time.monotonic() + LOAD / 1000
    while frames.finished(since) is None and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # frames are timed as Playwright hands them over, while it waits
    waited = max(shown, frames.finished(since) or math.inf) - clicked
    settle(page)
    assert_no_traceback(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4)
    redraws = frames.redraws(since)
    *live, final = redraws
    loops = loops_seconds(page)
    rerun = (frames.finished(since, "FINISHED_EARLY_FOR_RERUN") or math.nan) - clicked
    print(
        f"\nlive redraws {[round(n / 1e3) for n in live]} kB, final {final / 1e3:.0f} kB; "
        f"loops {loops:.2f} s, their script done {rerun:.1f} s and the page {waited:.1f} s "
        f"after the click ({waited / loops:.2f}x)"
    )
    assert len(live) >= 2, redraws  # it was drawn live at all
    assert max(live) <= LIVE_BYTES, redraws
    assert waited <= 1.6 * loops + 3.0, (waited, loops)


def test_stop_comes_at_once_and_keeps_what_was_on_screen(server, page: Page):
    """Bug 2 of issue 10: the result comes within about a second of the click, and holds the steps
    the bar showed then, give or take a redraw (before the fix: 18.5 s later, 35,072 steps where the
    bar showed 12,800)."""
    open_compare(page, server, "?iterations=200000")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(app_stop(page)).to_be_visible(timeout=LOAD)
    page.wait_for_timeout(2_000)
    shown = bar_steps(page)
    clicked = time.monotonic()
    app_stop(page).click()
    expect(page.get_by_text("Stopped at step")).to_be_visible(timeout=LOAD)
    latency = time.monotonic() - clicked
    settle(page)
    assert_no_traceback(page)
    kept = int(page.get_by_test_id("stMetric").first.inner_text().split()[-1].replace(",", ""))
    manual, torch_rate = (
        float(v.replace(",", "")) for v in re.findall(r"s\s+([\d,]+)\s*$", summary_text(page), re.M)
    )
    lockstep = 1 / (1 / manual + 1 / torch_rate)  # steps per second of the two loops in turn
    print(f"\nStop: the result {latency:.2f} s after the click; bar {shown:,}, kept {kept:,} "
          f"({(kept - shown) / lockstep:.2f} s of steps more)")  # fmt: skip
    # Targets: about a second, and the bar's steps give or take a redraw; the bounds allow for a
    # loaded machine.
    assert latency <= 4.0
    assert shown <= kept <= shown + 4.0 * lockstep
    expect(
        page.get_by_text(f"Stopped at step {kept:,} of 200,000; the steps taken are kept.")
    ).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4)
    expect(page.get_by_test_id("stProgress")).to_have_count(0)


def test_streamlits_own_stop_keeps_the_steps_taken_too(server, page: Page):
    """Bug 3 of issue 10: the Stop in Streamlit's toolbar ends the run as the app's Stop does: the
    bar and the app's Stop go, the steps taken are on show with their summary, and a message says
    the run was stopped."""
    open_compare(page, server, "?iterations=200000")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(app_stop(page)).to_be_visible(timeout=LOAD)
    page.wait_for_timeout(1_500)
    shown = bar_steps(page)
    clicked = time.monotonic()
    page.get_by_test_id("stStatusWidget").get_by_role("button", name="Stop").click()
    expect(page.get_by_text("Stopped at step")).to_be_visible(timeout=15_000)
    latency = time.monotonic() - clicked
    settle(page)
    assert_no_traceback(page)
    print(f"\nStreamlit's Stop: the result {latency:.2f} s after the click, bar {shown:,}")
    expect(app_stop(page)).to_have_count(0)
    expect(page.get_by_test_id("stProgress")).to_have_count(0)
    kept = int(page.get_by_test_id("stMetric").first.inner_text().split()[-1].replace(",", ""))
    assert kept >= shown
    assert "manual (numpy)" in summary_text(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4)
    # The page is usable: Run runs again, and the stopped run's numbers do not stay beside the new
    # live charts.
    page.get_by_role("button", name="Run", exact=True).click()
    expect(app_stop(page)).to_be_visible(timeout=LOAD)
    expect(page.get_by_test_id("stTable")).to_have_count(0)
    expect(page.get_by_test_id("stMetric")).to_have_count(0)
    expect(page.get_by_text("Stopped at step")).to_have_count(0)
    app_stop(page).click()
    expect(page.get_by_text("Stopped at step")).to_be_visible(timeout=LOAD)
    settle(page)
    assert_no_traceback(page)


def test_a_page_link_is_the_first_request_of_a_fresh_server(page: Page, tmp_path):
    """A shared link to a page, opened before anyone has loaded the app's front page, shows the
    app's own navigation and that page, not Streamlit's listing of every file in pages/ (see
    through_navigation)."""
    with served_app(tmp_path / "streamlit.log") as (base, _):
        page.goto(f"{base}/step_through")
        expect(page.get_by_role("heading", name="Step through")).to_be_visible(timeout=LOAD)
        nav = page.get_by_test_id("stSidebarNav")
        expect(nav).to_contain_text("Compare the loops", timeout=LOAD)
        expect(nav).not_to_contain_text("common")


def test_a_teachers_pitfall_link_opens_the_tab_with_its_switch_on(server, page: Page):
    """The Pitfalls lab's tab, switch and slider come from the link, in a real browser, and stay in
    the URL."""
    query = (
        "pitfall=4+%C2%B7+lr+above+the+limit&pitfall_limit=true"
        "&pitfall_factor=1.5&pitfall_iterations=80"
    )
    page.goto(f"{server}/pitfalls?{query}")
    expect(page.get_by_role("heading", name="Pitfalls lab").first).to_be_visible(timeout=LOAD)
    settle(page)
    assert_no_traceback(page)
    expect(page.get_by_role("tab", name="4 · lr above the limit")).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.get_by_text("mistake: learning rate, 1.5× the limit")).to_be_visible(timeout=LOAD)
    asked = parse_qs(urlparse(page.url).query)
    assert asked["pitfall_limit"] == ["true"] and asked["pitfall_factor"] == ["1.5"], page.url
    # Choosing another tab puts it in the URL, so the link a teacher copies is the page they see.
    page.get_by_role("tab", name="5 · float32 in one loop").click()
    page.wait_for_url(
        lambda url: parse_qs(urlparse(url).query).get("pitfall") == ["5 · float32 in one loop"]
    )
    settle(page)
    assert_no_traceback(page)


def test_a_two_class_link_draws_accuracy_and_the_boundary(server, page: Page):
    """?data=moons: the preset's network runs, and below the usual charts come its accuracy per step
    and the decision boundary of both loops, drawn (the boundary's cells are placed by Vega
    expressions: a bad one would leave the chart blank)."""
    open_compare(page, server, "?data=moons")
    # a loaded machine timed it as long: start it
    if page.get_by_text("This run has not started").count():
        page.get_by_role("button", name="Run", exact=True).click()
    charts = page.get_by_test_id("stVegaLiteChart")
    expect(charts).to_have_count(7, timeout=LOAD)  # four, the tensor norms, accuracy, boundary
    settle(page)
    assert_no_traceback(page)
    for i in (5, 6):
        expect(charts.nth(i).locator("canvas, svg").first).to_be_visible(timeout=LOAD)
    expect(page.get_by_text("Accuracy on the whole data")).to_be_visible()
    expect(page.get_by_text("Decision boundary of both loops")).to_be_visible()
    # Drawn, not blank: Vega places the boundary's 3,600 cells from expressions (a bad one would
    # leave none), and both loops' p = 0.5 lines are there.
    boundary = charts.nth(6)
    expect(boundary.locator("g.mark-rect.role-mark path")).to_have_count(60 * 60, timeout=LOAD)
    expect(boundary.locator("g.mark-rule.role-mark").first).to_be_attached()
    assert boundary.locator("g.mark-rule.role-mark").count() == 2  # manual's line and torch's
    assert boundary.locator("g.mark-rule.role-mark line, g.mark-rule.role-mark path").count() > 20
    screenshot(page, "compare_classifier")


def test_on_a_phone_the_twin_table_fits_and_the_intro_names_the_sidebar(server, browser):
    """Issue 10, phone (390 px wide): the intro said 'on the left' while the controls hide behind a
    button, and the twin table ran off the screen. Every cell of the table is inside the viewport
    and shows all of its text."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        open_compare(page, server)
        intro = (
            page.get_by_test_id("stMarkdownContainer")
            .filter(has_text="Two training loops")
            .first.inner_text()
        )
        assert "in the sidebar" in intro and "left" not in intro, intro
        # the default run is drawn
        expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=LOAD)
        settle(page)
        table = page.locator(".st-key-compare_twins table")
        expect(table).to_be_visible()
        table.scroll_into_view_if_needed()
        fits = (
            "() => document.querySelector('.st-key-compare_twins table')"
            ".getBoundingClientRect().right <= innerWidth"
        )
        # a loaded machine may still be laying the page out
        with contextlib.suppress(PlaywrightTimeout):
            # (the assertions below say what does not fit)
            page.wait_for_function(fits, timeout=10_000)
        styled = page.evaluate(
            "() => [...document.querySelectorAll('style')].some(s => s.textContent"
            ".includes('st-key-compare_twins'))"
        )
        sizes = table.evaluate(
            "t => ({width: window.innerWidth, table: t.getBoundingClientRect().right, page:\n"
            "                      document.documentElement.scrollWidth, "
            "clipped: [...t.querySelectorAll('td, th, code')]\n"
            "                      .filter(e => e.scrollWidth > e.clientWidth + 1 || "
            "e.getBoundingClientRect().right >\n"
            "                      window.innerWidth).map(e => e.innerText)})"
        )
        assert sizes["table"] <= sizes["width"] and sizes["page"] <= sizes["width"], (sizes, styled)
        assert not sizes["clipped"], (sizes, styled)
        assert "optimizer.zero_grad()" in table.inner_text().replace("\n", "")
        screenshot(page, "compare_phone")
    finally:
        context.close()


def sidebar_collapsed(page: Page) -> bool:
    return page.get_by_test_id("stSidebar").get_attribute("data-collapsed") == "true"


@pytest.mark.parametrize("width, closes", [(390, True), (1400, False)], ids=["phone", "desktop"])
def test_run_closes_the_sidebar_on_a_phone_and_keeps_it_open_beside_the_page(
    server, browser, width, closes
):
    """Issue 10, phone: after Run the sidebar stayed over the results. On a narrow screen Run now
    closes it, so the live run is what the learner sees; on a wide one it stays where it is, beside
    the page."""
    context = browser.new_context(viewport={"width": width, "height": 844}, has_touch=True)
    try:
        page = context.new_page()
        open_compare(page, server, "?iterations=300")
        expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=LOAD)
        if sidebar_collapsed(page):  # a phone opens with it closed: the learner opens it
            page.get_by_test_id("stExpandSidebarButton").click()
        expect(page.get_by_test_id("stSidebar")).to_have_attribute("data-collapsed", "false")
        page.get_by_test_id("stSidebar").get_by_role("button", name="Run", exact=True).click()
        settle(page)
        expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=LOAD)
        expected = "true" if closes else "false"
        expect(page.get_by_test_id("stSidebar")).to_have_attribute("data-collapsed", expected)
        assert_no_traceback(page)
    finally:
        context.close()
