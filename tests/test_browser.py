"""The real app in a real browser: `streamlit run app.py` served, Debian's chromium driving it.

Missing /usr/bin/chromium skips these tests, unless REQUIRE_BROWSER=1 (set by .ci/run), which
makes it a failure. With SCREENSHOTS=<dir>, each visited page is saved there as <name>.png.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parent.parent
LOAD = 90_000  # ms: a first page load imports torch and runs the default run on a shared machine

# Every page of the app: (url path, heading it shows, screenshot name). Adding a page is one line.
PAGES = [
    ("", "Compare the loops", "compare"),
    ("pitfalls", "Pitfalls lab", "pitfalls"),
    ("code_map", "Code map", "code_map"),
    ("step_through", "Step through", "step_through"),
    ("landscape", "Loss landscape", "landscape"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """The app served by the same command a user types, on a free port; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"streamlit did not start:\n{proc.stdout.read()}")
        time.sleep(0.3)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        # Streamlit scrolls inside its main block, so a full-page shot is one screen: grow the window first.
        size = page.viewport_size
        height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], height + 40)})
        page.wait_for_timeout(1_000)  # charts re-lay out to the new size
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
        page.set_viewport_size(size)


def settle(page: Page) -> None:
    """Wait until the script has finished running (Streamlit shows a status widget while it runs)."""
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=LOAD)


def assert_no_traceback(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert "Traceback" not in page.inner_text("body")


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


def test_stop_keeps_the_steps_taken(server, page: Page):
    page.goto(server)
    expect(page.get_by_role("heading", name="Compare the loops")).to_be_visible(timeout=LOAD)
    settle(page)
    iterations = page.get_by_label("Iterations (optimizer steps)")
    iterations.fill("200000")
    iterations.press("Enter")
    settle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    stop = page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_visible(timeout=LOAD)
    expect(page.get_by_test_id("stProgress")).to_be_visible()
    stop.click()
    expect(page.get_by_text("Stopped at step")).to_be_visible(timeout=LOAD)
    settle(page)
    assert_no_traceback(page)
    expect(page.get_by_test_id("stVegaLiteChart")).to_have_count(4)


def test_a_page_link_is_the_first_request_of_a_fresh_server(page: Page):
    """A shared link to a page, opened before anyone has loaded the app's front page, shows the app's own
    navigation and that page, not Streamlit's listing of every file in pages/ (see through_navigation)."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                time.sleep(0.3)
        page.goto(f"{base}/step_through")
        expect(page.get_by_role("heading", name="Step through")).to_be_visible(timeout=LOAD)
        nav = page.get_by_test_id("stSidebarNav")
        expect(nav).to_contain_text("Compare the loops", timeout=LOAD)
        expect(nav).not_to_contain_text("common")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_teachers_pitfall_link_opens_the_tab_with_its_switch_on(server, page: Page):
    """The Pitfalls lab's tab, switch and slider come from the link, in a real browser, and stay in the URL."""
    query = "pitfall=4+%C2%B7+lr+above+the+limit&pitfall_limit=true&pitfall_factor=1.5&pitfall_iterations=80"
    page.goto(f"{server}/pitfalls?{query}")
    expect(page.get_by_role("heading", name="Pitfalls lab").first).to_be_visible(timeout=LOAD)
    settle(page)
    assert_no_traceback(page)
    expect(page.get_by_role("tab", name="4 · lr above the limit")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text("mistake: learning rate, 1.5× the limit")).to_be_visible(timeout=LOAD)
    asked = parse_qs(urlparse(page.url).query)
    assert asked["pitfall_limit"] == ["true"] and asked["pitfall_factor"] == ["1.5"], page.url
    # Choosing another tab puts it in the URL, so the link a teacher copies is the page they see.
    page.get_by_role("tab", name="5 · float32 in one loop").click()
    page.wait_for_url(lambda url: parse_qs(urlparse(url).query).get("pitfall") == ["5 · float32 in one loop"])
    settle(page)
    assert_no_traceback(page)
