"""The shared sidebar in a real browser: a second CSV file gets its own columns, presets apply (from
the list and from a link), and the server logs no warning while a learner does all that.

Uses conftest.py's chromium settings; the server here writes its log to a file, which the tests
read. Missing /usr/bin/chromium skips these tests, unless REQUIRE_BROWSER=1.
"""

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from serving import LOAD, assert_no_traceback, served_app, settle

ROOT = Path(__file__).resolve().parent.parent

TWO_FEATURES = b"x1,x2,y\n1,0,1\n0,1,-1\n1,1,0\n2,1,1\n0,2,-2\n"
THREE_FEATURES = b"x1,x2,x3,y\n1,0,1,2\n0,1,0,-1\n1,1,2,2\n2,1,0,1\n0,2,1,-1\n"
OTHER_NAMES = b"a,b,label\n1,2,0\n2,1,1\n3,5,0\n4,4,1\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`streamlit run app.py` on 127.0.0.1 with every log line prefixed by its level; yields (base
    URL, log path)."""
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with served_app(
        log, extra=("--logger.messageFormat", "%(levelname)s %(name)s: %(message)s")
    ) as (base, _):
        yield base, log


def problems(log: Path) -> list[str]:
    """The server log's warnings, errors and tracebacks."""
    return [
        line
        for line in log.read_text().splitlines()
        if line.startswith(("WARNING", "ERROR", "Traceback"))
    ]


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name="Compare the loops")).to_be_visible(timeout=LOAD)
    settle(page)


def open_data(page: Page) -> None:
    sidebar = page.get_by_test_id("stSidebar")
    source = sidebar.get_by_label("Data source", exact=True)
    if not source.is_visible():
        sidebar.get_by_text("Data", exact=True).click()
    expect(source).to_be_visible()


def choose(page: Page, label: str, option: str) -> None:
    box = page.get_by_test_id("stSidebar").get_by_label(label, exact=True)
    # a rerun that redraws the sidebar while the list is open detaches it: open it again
    for _ in range(3):
        box.click()
        box.fill(option)  # typing filters the list, so the option is drawn however long the list is
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=15_000)
            break
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
            settle(page)
    else:
        pytest.fail(f"could not choose {option!r} in {label!r}: the list kept being redrawn")
    settle(page)


def upload(page: Page, name: str, content: bytes) -> None:
    dropzone = page.get_by_test_id("stSidebar").get_by_test_id("stFileUploaderDropzoneInput")
    dropzone.set_input_files(files=[{"name": name, "mimeType": "text/csv", "buffer": content}])
    expect(page.get_by_test_id("stSidebar").get_by_text(name).first).to_be_visible(timeout=LOAD)
    settle(page)


def expect_features(page: Page, names: list[str]) -> None:
    """The Feature columns box shows exactly these columns as chosen."""
    box = (
        page.get_by_test_id("stSidebar")
        .get_by_test_id("stMultiSelect")
        .filter(has_text="Feature columns")
    )
    tags = box.locator("[data-tag]")
    expect(tags).to_have_count(len(names), timeout=LOAD)
    assert sorted(tag.get_attribute("aria-label") for tag in tags.all()) == sorted(names)


def test_a_second_csv_file_trains_on_its_own_columns(served, page: Page):
    """Issue 10, bug 4: x1, x2 stayed chosen after a file with x1, x2, x3 was uploaded, and x3 was
    left out."""
    base, log = served
    open_app(page, base)
    open_data(page)
    choose(page, "Data source", "Your own CSV file")
    upload(page, "two.csv", TWO_FEATURES)
    summary = page.get_by_test_id("stSidebar").get_by_text("samples · model")
    expect(summary).to_contain_text("two: y ~ x1, x2 ·", timeout=LOAD)
    expect_features(page, ["x1", "x2"])

    upload(page, "three.csv", THREE_FEATURES)
    expect(summary).to_contain_text("three: y ~ x1, x2, x3 ·", timeout=LOAD)
    expect_features(page, ["x1", "x2", "x3"])
    expect(
        page.get_by_test_id("stSidebar").get_by_text("A new file, so the column choice starts over")
    ).to_be_visible()
    assert parse_qs(urlparse(page.url).query).get("data") == ["csv"], page.url

    upload(page, "other.csv", OTHER_NAMES)  # other names: its own columns, not "no features chosen"
    expect(summary).to_contain_text("other: label ~ a, b ·", timeout=LOAD)
    expect(page.get_by_text("no features chosen")).to_have_count(0)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("stTable").first).to_contain_text("torch", timeout=LOAD)
    settle(page)
    assert_no_traceback(page)
    assert problems(log) == []


def test_presets_from_the_list_and_from_a_link_log_no_warning(served, page: Page):
    """Bugs 7 and 8: a preset sets lr without Streamlit's "set via the Session State API" warning,
    from the list and from a link that names it, and going back to synthetic data restores the
    defaults."""
    base, log = served
    open_app(page, base)
    open_data(page)
    lr = page.get_by_test_id("stSidebar").get_by_label("Learning rate (lr)", exact=True)
    expect(lr).to_have_value("0.05")
    choose(page, "Data source", "Preset: Classic hand-written loop")
    expect(lr).to_have_value("0.0001")
    page.wait_for_url(
        lambda url: parse_qs(urlparse(url).query).get("data") == ["classic"], timeout=LOAD
    )
    choose(page, "Data source", "Synthetic: y = X·w + b + noise (you choose its size)")
    expect(lr).to_have_value("0.05")
    expect(page.get_by_test_id("stSidebar").get_by_label("Batch size", exact=True)).to_have_value(
        "32"
    )
    expect(page.get_by_text("Back to the defaults for what the")).to_be_visible()
    page.wait_for_url(lambda url: "data" not in parse_qs(urlparse(url).query), timeout=LOAD)
    assert_no_traceback(page)

    open_app(page, f"{base}/?data=classic")  # a new session from a link: the preset's settings
    expect(lr).to_have_value("0.0001", timeout=LOAD)
    expect(
        page.get_by_test_id("stSidebar").get_by_label("Iterations (optimizer steps)", exact=True)
    ).to_have_value("50000")
    assert_no_traceback(page)
    assert problems(log) == []
