"""A page's first run after the sidebar navigation uses the settings the sidebar shows, in a real
browser.

The settings are made on one page and read, on the next, from what that page's first run drew (the
websocket's messages up to the end of that run), not from the page once it has settled. The
navigation's rerun carries no widget states, which is what tests/page_switch.py imitates for AppTest
(whose switch_page sends the old page's). Missing /usr/bin/chromium skips these tests
(REQUIRE_BROWSER=1 fails instead; see conftest).
"""

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from serving import LOAD, served_app, settle
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

import lib
from lib import pitfalls

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run app.py` on a free port of 127.0.0.1; yields its base URL and stops it
    afterwards."""
    with served_app(tmp_path_factory.mktemp("streamlit") / "server.log") as (base, _):
        yield base


class Runs:
    """The script runs the browser asks for and the words each drew, from the websocket's frames."""

    def __init__(self, page: Page) -> None:
        self.runs: list[dict] = []  # {"widget_states": int, "words": [str], "finished": bool}
        page.on(
            "websocket",
            lambda ws: (ws.on("framesent", self._sent), ws.on("framereceived", self._received)),
        )

    def _sent(self, payload) -> None:
        if isinstance(payload, bytes):
            msg = BackMsg.FromString(payload)
            if msg.WhichOneof("type") == "rerun_script":
                widgets = len(msg.rerun_script.widget_states.widgets)
                self.runs.append({"widget_states": widgets, "words": [], "finished": False})

    def _received(self, payload) -> None:
        if not isinstance(payload, bytes) or not self.runs:
            return
        msg = ForwardMsg.FromString(payload)
        run = next((r for r in self.runs if not r["finished"]), None)
        if run is None:
            return
        if msg.WhichOneof("type") == "script_finished":
            run["finished"] = True
        elif msg.WhichOneof("type") == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            kind = element.WhichOneof("type")
            if kind in ("markdown", "alert"):
                run["words"].append(getattr(element, kind).body)
            elif kind == "code":
                run["words"].append(element.code.code_text)

    def mark(self) -> int:
        return len(self.runs)

    def first_run(self, page: Page, since: int) -> dict:
        """The first run asked for after `since`, once it has finished."""
        deadline = time.monotonic() + LOAD / 1000
        while time.monotonic() < deadline:
            if len(self.runs) > since and self.runs[since]["finished"]:
                return self.runs[since]
            page.wait_for_timeout(100)  # Playwright delivers the frames while it waits
        raise AssertionError("the page's first run did not finish")


def set_number(page: Page, label: str, value) -> None:
    box = page.get_by_test_id("stSidebar").get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    settle(page)
    expect(box).to_have_value(str(value))


def go(page: Page, runs: Runs, title: str) -> dict:
    """Click `title` in the sidebar navigation; the new page's first run."""
    since = runs.mark()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=LOAD)
    first = runs.first_run(page, since)
    settle(page)
    assert first["widget_states"] == 0  # the premise of tests/page_switch.py
    return first


def test_step_through_and_code_map_run_with_the_lr_set_on_compare(server, page: Page):
    runs = Runs(page)
    page.goto(server)
    expect(page.get_by_role("heading", name="Compare the loops")).to_be_visible(timeout=LOAD)
    settle(page)
    set_number(page, "Learning rate (lr)", 0.07)

    go(page, runs, "Step through")
    expect(page.get_by_label("Learning rate (lr)")).to_have_value("0.07")
    page.get_by_role("button", name="Start", exact=True).click()
    settle(page)
    # A first run on lr 0.05 would have made Start's run a new configuration: "Not started" again,
    # no step 0.
    expect(page.get_by_text("learning rate 0.07.", exact=False)).to_be_visible()
    expect(
        page.get_by_role("heading", name="Step 0 · this run asks for steps 0 to 499")
    ).to_be_visible()

    first = go(page, runs, "Code map")
    code = "\n".join(first["words"])
    assert "lr=0.07" in code and "lr=0.05" not in code


def test_the_pitfalls_labs_settings_and_the_sidebars_survive_other_pages(server, page: Page):
    runs = Runs(page)
    page.goto(f"{server}/pitfalls?pitfall_iterations=20")
    expect(page.get_by_role("heading", name="Pitfalls lab")).to_be_visible(timeout=LOAD)
    settle(page)
    set_number(page, "learning rate", 0.02)
    set_number(page, "batch size", 50)

    go(page, runs, "Compare the loops")
    set_number(page, "Learning rate (lr)", 0.07)
    first = go(page, runs, "Pitfalls lab")
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    limit = pitfalls.stability_limit(
        data, lib.Config(lr=0.02, batch_size=50, iterations=20, loss="mse")
    )
    said = (
        f"**Stability limit: {limit:.4g}** · "
        f"your learning rate is {0.02 / limit:.3g}× it (at or below)."
    )
    assert said in first["words"]

    # Step through from the Pitfalls lab, whose URL does not hold lr: the session's 0.07 is used.
    assert "lr=" not in page.url.replace("pitfall_lr=", "")
    go(page, runs, "Step through")
    page.get_by_role("button", name="Start", exact=True).click()
    settle(page)
    expect(page.get_by_text("learning rate 0.07.", exact=False)).to_be_visible()
