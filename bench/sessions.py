"""A class on one server: N real browser sessions open the app at once, and the server's own CPU
time and memory are read (psutil).

    make bench-class                     the same as the next line
    python -m bench --sessions           40 sessions on one link, then 40 on 40 different links,
                                         written as its section of bench/RESULTS.md
    python -m bench --sessions --quick   10 of each, printed only

Two measurements, each on a fresh server started as `make run` starts it (on 127.0.0.1):
- same link: one session opens the Compare page and waits for its run (the server's first visit:
  imports, the default run, its charts); then the other N - 1 open it together. The figure is the
  server's CPU seconds for those N - 1, divided by N - 1.
- different links: after one visit has warmed a second fresh server, N sessions open N links
  with N different learning rates, together.
Every session must show the final loss that lib.run gives for its settings; the peak is the
server's resident memory (its process tree), sampled every 0.1 s.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# The Compare page's defaults (pages/compare.py) and its format of the final loss.
DEFAULT_DATA = dict(m=200, n=3, noise=0.1, seed=0)
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HEADING = "## A class on one server: N browser sessions at once"
SESSIONS, QUICK_SESSIONS = 40, 10
# what the Compare page says of a run made for another session (pages/compare.py)
SHARED_NOTE = "had already run these settings on this data for another visitor"
LOAD_MS = int(
    __import__("os").environ.get("SESSIONS_LOAD_MS", 600_000)
)  # forty browsers share two cores with the server: a page may take minutes


def link_lr(i: int) -> float:
    """A different learning rate for each session of the different-links measurement."""
    return round(0.01 + 0.001 * i, 4)


def expected_loss(lr: float | None) -> str:
    """The final loss the page shows for the default run at this lr (None: the default lr)."""
    import lib
    from pages.parts.labels import DEFAULTS

    cfg = lib.Config(
        lr=DEFAULTS["lr"] if lr is None else lr,
        batch_size=DEFAULTS["batch_size"],
        iterations=DEFAULTS["iterations"],
    )
    result = lib.run(lib.datasets.linear(**DEFAULT_DATA), cfg)
    return f"{result.manual.loss[-1]:.6g}"


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the server and its children."""
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20


class PeakMemory:
    """The largest rss_mb seen while the block runs, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every, self.peak = pid, every, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._done.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


def final_loss(page) -> str | None:
    """The manual loop's 'final loss' in the summary table, or None while it is not drawn."""
    return page.evaluate(
        """() => {
            const table = document.querySelector('[data-testid="stTable"] table');
            if (!table) return null;
            const heads = [...table.querySelectorAll('thead th')].map(th => th.innerText.trim());
            const col = heads.indexOf('final loss');
            for (const tr of table.querySelectorAll('tbody tr')) {
                const cells = [...tr.querySelectorAll('th, td')].map(c => c.innerText.trim());
                if (cells[0] === 'manual (numpy)' && col >= 0) return cells[col];
            }
            return null;
        }"""
    )


def open_sessions(
    browser, url: str, links: list[str], want: list[str]
) -> tuple[list[str], list[bool]]:
    """Open one fresh browser context per link, all before waiting for any; return what each
    showed as its final loss once every one shows the loss it should (or the wait ran out), and
    whether each said its run was one the server had made for another visitor."""
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in links]
    pages = [context.new_page() for context in contexts]
    try:
        for page, link in zip(pages, links, strict=True):
            page.goto(url + link, wait_until="commit", timeout=LOAD_MS)
        shown, handed = [], []
        for page, loss in zip(pages, want, strict=True):
            with contextlib.suppress(Exception):
                page.wait_for_function(
                    """want => {
                        const t = document.querySelector('[data-testid="stTable"]');
                        return t && t.innerText.includes(want)
                            && !document.querySelector('[data-testid="stStatusWidget"]');
                    }""",
                    arg=loss,
                    timeout=LOAD_MS,
                    polling=250,
                )
            shown.append(final_loss(page))
            handed.append(SHARED_NOTE in page.inner_text("body"))
            if page.locator('[data-testid="stException"]').count():
                shown[-1] = "exception: " + page.inner_text("body")[:300]
        return shown, handed
    finally:
        for context in contexts:
            context.close()


@contextlib.contextmanager
def server(log: Path):
    from serving import served_app

    with served_app(log, startup=180) as (url, process):
        yield url, process


def measure(sessions: int, log_dir: Path) -> dict:
    """Both measurements; a dict of their figures and whether every session was right."""
    from playwright.sync_api import sync_playwright

    default = expected_loss(None)
    lrs = [link_lr(i) for i in range(sessions)]
    different = [expected_loss(lr) for lr in lrs]
    figures: dict = {"sessions": sessions}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            with server(log_dir / "same.log") as (url, process):
                with PeakMemory(process.pid) as peak:
                    before = cpu_seconds(process.pid)
                    first, _ = open_sessions(browser, url, [""], [default])
                    after_first = cpu_seconds(process.pid)
                    rest, handed = open_sessions(
                        browser, url, [""] * (sessions - 1), [default] * (sessions - 1)
                    )
                    after = cpu_seconds(process.pid)
                figures["same"] = {
                    "first_cpu_s": after_first - before,
                    "each_after_first_cpu_s": (after - after_first) / max(1, sessions - 1),
                    "peak_mb": peak.peak,
                    "handed": sum(handed),
                    "wrong": [(i, got) for i, got in enumerate(first + rest) if got != default],
                }
            with server(log_dir / "different.log") as (url, process):
                # warmed as the other server was, by one visit: the figure is per visitor
                warm, _ = open_sessions(browser, url, [""], [default])
                with PeakMemory(process.pid) as peak:
                    before = cpu_seconds(process.pid)
                    shown, _ = open_sessions(browser, url, [f"?lr={lr:g}" for lr in lrs], different)
                    after = cpu_seconds(process.pid)
                figures["different"] = {
                    "each_cpu_s": (after - before) / sessions,
                    "peak_mb": peak.peak,
                    "wrong": [
                        (i, got, want)
                        for i, (got, want) in enumerate(zip(shown, different, strict=True))
                        if got != want
                    ]
                    + [("warm-up", got) for got in warm if got != default],
                }
        finally:
            browser.close()
    return figures


def lines(figures: dict) -> list[str]:
    """The RESULTS.md section of these figures (the README's deployment section quotes them)."""
    n = figures["sessions"]
    same, different = figures["same"], figures["different"]
    ok = "all correct" if not same["wrong"] else f"WRONG: {same['wrong']}"
    ok2 = "all correct" if not different["wrong"] else f"WRONG: {different['wrong']}"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        HEADING,
        "",
        "bench/sessions.py: a fresh `streamlit run app.py` on 127.0.0.1, Debian's Chromium with "
        "one browser context per session (separate cookies: separate sessions), all on this "
        "machine's cores; the server's CPU time (user + system, with its children) and its "
        "resident memory (sampled every 0.1 s) read with psutil. Every session must show the "
        "final loss lib.run gives for its settings.",
        "",
        f"- {n} sessions on the same link: the first visit cost the server "
        f"{same['first_cpu_s']:.2f} CPU-s (imports, torch's first run, the default run); the "
        f"other {n - 1}, opened together, **{same['each_after_first_cpu_s']:.3f} CPU-s each** "
        f"(target <= 0.2), {same['handed']} of them handed the run the first one made; peak "
        f"RSS **{same['peak_mb']:.0f} MB** (target < 450); {ok}.",
        f"- {n} sessions on {n} different links (`?lr=`), opened together after one warm-up "
        f"visit: **{different['each_cpu_s']:.3f} CPU-s each**; peak RSS "
        f"**{different['peak_mb']:.0f} MB** (target < 600); {ok2}.",
        f"- took {figures['wall_s']:.0f} s; load average at the end {load}.",
    ]


def run(quick: bool, log_dir: Path | None = None) -> list[str]:
    """Measure (SESSIONS, or QUICK_SESSIONS with quick) and return the section's lines."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        figures = measure(QUICK_SESSIONS if quick else SESSIONS, log_dir or Path(tmp))
        figures["wall_s"] = time.perf_counter() - started
    return lines(figures)
