"""Charts as pictures, in a real browser: every chart on the Compare page offers Streamlit's
"Download as PNG", and one chart's download is a real PNG picture; the page's notebook download is
a notebook.

Missing /usr/bin/chromium skips this test, unless REQUIRE_BROWSER=1 (see tests/conftest.py).
"""

import struct
import zlib

import nbformat
import pytest
from playwright.sync_api import Page, expect
from serving import LOAD, assert_no_traceback, served_app, settle

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_picture(raw: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values of its pixel rows) of a PNG file; ValueError if the
    bytes are not one."""
    if not raw.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file: its first bytes are not the PNG signature")
    at, header, pixels = len(PNG_SIGNATURE), None, b""
    while at < len(raw):
        (length,) = struct.unpack(">I", raw[at : at + 4])
        kind, body = raw[at + 4 : at + 8], raw[at + 8 : at + 8 + length]
        if (
            zlib.crc32(kind + body)
            != struct.unpack(">I", raw[at + 8 + length : at + 12 + length])[0]
        ):
            raise ValueError(f"the PNG chunk {kind!r} is damaged (its CRC does not match)")
        if kind == b"IHDR":
            header = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            pixels += body
        at += 12 + length
    if header is None or not pixels:
        raise ValueError("the PNG file has no header or no pixels")
    return (*header, len(set(zlib.decompress(pixels))))


def test_png_check_refuses_what_is_not_a_picture():
    with pytest.raises(ValueError, match="not a PNG file"):
        png_picture(b"<svg></svg>")
    one_pixel = PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    one_pixel += _chunk(b"IDAT", zlib.compress(b"\x00\x00")) + _chunk(b"IEND", b"")
    assert png_picture(one_pixel) == (1, 1, 1)  # a blank picture: one byte value
    with pytest.raises(ValueError, match="damaged"):
        png_picture(one_pixel[:-5] + b"\x00" + one_pixel[-4:])


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.timeout(300)
def test_a_chart_downloads_as_a_png_picture_and_the_notebook_as_a_notebook(page: Page, tmp_path):
    with served_app(tmp_path / "streamlit.log") as (base, _):
        page.goto(f"{base}/?iterations=50")
        expect(page.get_by_role("heading", name="Compare the loops")).to_be_visible(timeout=LOAD)
        settle(page)
        assert_no_traceback(page)
        charts = page.get_by_test_id("stVegaLiteChart")
        expect(charts.first).to_be_visible(timeout=LOAD)
        settle(page)
        count = charts.count()
        assert count >= 2
        saves = page.get_by_role("button", name="Download as PNG")
        expect(saves).to_have_count(count)  # Streamlit's toolbar gives every chart one

        chart = charts.first
        # in the middle of the window: the toolbar above a chart at the top is under the page header
        chart.evaluate("e => e.scrollIntoView({block: 'center'})")
        box = chart.locator("xpath=ancestor::*[@data-testid='stElementContainer'][1]")
        chart.hover()  # the toolbar shows while the pointer is over the chart
        save = box.get_by_role("button", name="Download as PNG")
        with page.expect_download(timeout=30_000) as caught:
            # The chart's own svg lies over the toolbar's hit area during Playwright's pointer
            # checks; the click event goes to the button itself, as a user's click does.
            save.dispatch_event("click")
        width, height, shades = png_picture(caught.value.path().read_bytes())
        drawn = chart.bounding_box()
        assert width >= drawn["width"] * 0.9 and height >= drawn["height"] * 0.9
        assert shades > 20, "the picture is blank"

        button = page.get_by_role("button", name="Notebook that reruns it (.ipynb)")
        button.evaluate("e => e.scrollIntoView({block: 'center'})")
        with page.expect_download(timeout=LOAD) as caught:
            button.click()
        assert caught.value.suggested_filename == "twins_run.ipynb"
        nb = nbformat.reads(caught.value.path().read_text(), as_version=4)
        nbformat.validate(nb)
        assert "iterations=50" in nb.cells[0].source  # the run on the page
        assert_no_traceback(page)
