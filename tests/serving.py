"""Serving the app for a test: `streamlit run app.py` on a free port of 127.0.0.1, stopped
afterwards."""

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parent.parent
LOAD = 90_000  # ms: a first page load imports torch and runs the default run on a shared machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_app(
    log: Path, extra: Sequence[str] = (), launcher: Sequence[str] | None = None, startup: float = 60
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the app with its output in `log`, wait for its health check; yield (base URL,
    process), then stop it.

    launcher: the command before "run app.py" (default: this interpreter's `-m streamlit`; a
    deployment test passes the venv's `streamlit` script, as a host runs it). extra: more streamlit
    options.
    """
    port = free_port()
    command = [
        *(launcher or (sys.executable, "-m", "streamlit")),
        "run",
        "app.py",
        "--server.headless",
        "true",
    ]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", *extra]
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply,
            ):
                if reply.read().strip() == b"ok":
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start in {startup:g} s:\n{log.read_text()}")
            time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def settle(page: Page) -> None:
    """Wait until the script has finished running (Streamlit shows a status widget while it
    runs)."""
    page.wait_for_timeout(300)
    # The app root says where the script is (initial, rerunRequested, running, notRunning) from the
    # moment a widget asks for a rerun; the status widget only shows once a run has lasted a while.
    idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    expect(idle).to_have_count(1, timeout=LOAD)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=LOAD)


def assert_no_traceback(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert "Traceback" not in page.inner_text("body")
