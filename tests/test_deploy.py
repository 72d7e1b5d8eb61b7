"""Deployable as is: the deployment command serves the app, in a real browser, within the memory
budget."""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psutil
from serving import served_app

ROOT = Path(__file__).resolve().parent.parent
MEMORY_BUDGET_MB = 600  # the smallest Streamlit Community Cloud machines have about 690 MB
TITLE = "Training-loop twins"  # app.py's page_title


@contextlib.contextmanager
def serve(log_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run app.py` from the repository root, as a deployment runs it; yields (url,
    process)."""
    with served_app(
        log_path, launcher=[str(Path(sys.executable).parent / "streamlit")], startup=120
    ) as served:
        yield served


def rss_mb(process: subprocess.Popen) -> float:
    """Resident memory of the server and all its children, in MB."""
    root = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def wait_for_first_run(page, timeout_ms: int = 120_000) -> None:
    """The app is up and the Compare page has drawn its default run (its charts are on the page)."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=timeout_ms,
        polling=250,
    )  # no "Running..." left; polled by timer: animation frames stall off screen


def assert_no_error(page) -> None:
    text = page.inner_text("body")
    assert "Traceback" not in text, text[:2000]
    assert page.locator('[data-testid="stException"]').count() == 0, text[:2000]


def test_server_config_is_fit_for_a_public_deployment():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server, client = config.get("server", {}), config.get("client", {})
    # no file watcher on a server (and torch confuses them)
    assert server.get("fileWatcherType") == "none"
    assert isinstance(server.get("maxUploadSize"), int) and 1 <= server["maxUploadSize"] <= 50  # MB
    assert config.get("browser", {}).get("gatherUsageStats") is False
    assert client.get("showErrorDetails") in ("none", "type")  # visitors never see tracebacks


def test_torch_threads_are_bounded_in_app_py():
    """Many sessions on a small machine: torch must not start a thread per core per session."""
    tree = ast.parse((ROOT / "app.py").read_text())
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "set_num_threads"
    ]
    assert calls, "app.py does not call torch.set_num_threads(...)"


def test_app_needs_only_requirements_txt():
    """Every package app.py, pages/ and lib/ import is the standard library, the project, or in
    requirements.txt."""
    wanted = {
        re.split(r"[=<>!~\[; ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    providers = importlib.metadata.packages_distributions()
    local = {"lib", "pages", *(p.stem for p in (ROOT / "pages").glob("*.py"))}
    missing = {}
    for path in [
        ROOT / "app.py",
        *sorted((ROOT / "pages").rglob("*.py")),
        *sorted((ROOT / "lib").rglob("*.py")),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in local:
                    continue
                dists = {d.lower().replace("_", "-") for d in providers.get(top, [])}
                if not dists & wanted:
                    missing.setdefault(top, []).append(path.relative_to(ROOT).as_posix())
    assert not missing, f"imported but not in requirements.txt: {missing}"


def test_deployment_command_serves_the_app_within_budget(tmp_path, browser):
    """streamlit run app.py: health 'ok', the first page loads in chromium, and RSS after the
    default run < 600 MB."""
    # pytest-playwright's, launched as tests/conftest.py says (Debian's chromium)
    chromium = browser
    with serve(tmp_path / "server.log") as (url, server):
        page = chromium.new_page()
        page.goto(url, timeout=120_000)
        wait_for_first_run(page)
        assert TITLE in page.title() or TITLE in page.inner_text("body"), page.title()
        assert_no_error(page)
        memory = rss_mb(server)
        print(f"server RSS after the default run: {memory:.0f} MB")
        (tmp_path / "rss.txt").write_text(f"{memory:.1f}\n")
        assert memory < MEMORY_BUDGET_MB, (
            f"server RSS {memory:.0f} MB is over the {MEMORY_BUDGET_MB} MB budget"
        )
