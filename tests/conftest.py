"""Shared test setup: torch imported once, and a deterministic hypothesis profile."""

import os
from pathlib import Path

import pytest

# Importing torch takes seconds; doing it here, once, keeps AppTest's per-script timeout for the
# app itself.
import torch
from hypothesis import HealthCheck, settings

# One intra-op thread, as app.py sets for the server: on a 2-core machine running two test workers,
# torch's default threads oversubscribe the cores and tiny ops wait on each other (a logistic run's
# loss call took 10 ms instead of 10 us).
torch.set_num_threads(1)

# deadline=None: a lib.run call includes torch start-up work whose time varies on a shared machine.
# derandomize=True: the same examples every run, so a red test is reproducible and CI never flakes.
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


CHROMIUM = Path("/usr/bin/chromium")

# Test files that start servers and browsers, or time what they measure in wall-clock terms (a
# Stop's latency, a page settling after its loops), and every test anywhere that drives a browser:
# `make test` runs them on their own, after the rest has run on every core (pytest -n), so another
# test's load does not stretch their clocks.
SERIAL_FILES = frozenset(
    {
        "test_browser.py",
        "test_browser_csv.py",
        "test_browser_pages.py",
        "test_browser_step_through.py",
        "test_deploy.py",
        "test_sessions.py",
    }
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "serial: run apart from the other tests (make test's second pass), not beside them",
    )


# pytest-playwright's fixtures: a test that asks for one drives a real browser
BROWSER_FIXTURES = frozenset({"page", "browser", "context", "browser_type"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SERIAL_FILES or BROWSER_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.serial)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch arguments, pointed at Debian's chromium (Playwright's own cannot
    be downloaded)."""
    if not CHROMIUM.exists():
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(
                f"{CHROMIUM} is missing and REQUIRE_BROWSER=1: "
                "install it with `apt-get install -y chromium`"
            )
        pytest.skip(
            f"{CHROMIUM} is missing (apt-get install -y chromium); "
            "set REQUIRE_BROWSER=1 to fail instead"
        )
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
    ]
    args += ["--disable-sync", "--no-first-run"]
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": args}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}
