"""Many users at once: ten browser sessions on one server, each with its own settings, each its
own right answer."""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import inspect
import pkgutil
import threading
import types
from pathlib import Path, PurePath

import numpy as np
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from streamlit.testing.v1 import AppTest
from test_deploy import MEMORY_BUDGET_MB, ROOT, assert_no_error, rss_mb, serve, wait_for_first_run

import lib
from pages.parts.labels import DEFAULTS

SESSIONS = 10
# The Compare page's defaults (pages/compare.py): data lib.datasets.linear(m=200, n=3, noise=0.1,
# seed=0).
DEFAULT_DATA = dict(m=200, n=3, noise=0.1, seed=0)
DEFAULT_ITERATIONS = 500
DEFAULT_CONFIG = lib.Config(
    lr=DEFAULTS["lr"], batch_size=DEFAULTS["batch_size"], iterations=DEFAULTS["iterations"]
)
# What the Compare page says of a run another session computed (pages/compare.py).
SHARED_NOTE = "had already run these settings on this data for another visitor"
IMMUTABLE = (
    int,
    float,
    complex,
    str,
    bytes,
    bool,
    type(None),
    range,
    PurePath,
    np.generic,
    enum.Enum,
)


def session_config(i: int) -> tuple[float, int]:
    """A different (lr, batch_size) for each session."""
    return round(0.01 + 0.007 * i, 4), (8, 16, 32, 50, 64)[i % 5]


def final_losses(page) -> dict[str, str]:
    """The 'final loss' column of the summary table, by row ('manual (numpy)', 'torch')."""
    return page.evaluate(
        """() => {
            const table = document.querySelector('[data-testid="stTable"] table');
            if (!table) return {};
            const heads = [...table.querySelectorAll('thead th')].map(th => th.innerText.trim());
            const col = heads.indexOf('final loss');
            const out = {};
            for (const tr of table.querySelectorAll('tbody tr')) {
                const cells = [...tr.querySelectorAll('th, td')].map(c => c.innerText.trim());
                if (col >= 0) out[cells[0]] = cells[col];
            }
            return out;
        }"""
    )


def test_ten_sessions_each_get_their_own_correct_result(tmp_path, browser):
    """Ten sessions open the same link (one computes the default run, nine are handed it), then
    each runs its own settings."""
    data = lib.datasets.linear(**DEFAULT_DATA)
    expected = {}
    for i in range(SESSIONS):
        lr, batch_size = session_config(i)
        result = lib.run(
            data, lib.Config(lr=lr, batch_size=batch_size, iterations=DEFAULT_ITERATIONS)
        )
        expected[i] = f"{result.manual.loss[-1]:.6g}"  # the page's format for the final loss
    assert len(set(expected.values())) == SESSIONS, "the sessions must expect different numbers"
    default_loss = f"{lib.run(data, DEFAULT_CONFIG).manual.loss[-1]:.6g}"

    # pytest-playwright's, launched as tests/conftest.py says (Debian's chromium).
    chromium = browser
    with serve(tmp_path / "server.log") as (url, server):
        # Separate cookies: separate sessions.
        contexts = [chromium.new_context() for _ in range(SESSIONS)]
        pages = [context.new_page() for context in contexts]
        for page in pages:
            page.goto(url, timeout=120_000)
        for page in pages:
            wait_for_first_run(page)
        # Ten sessions on one link: the default run computed once, by one of them, and handed to
        # the other nine (pages/parts/run_cache.py), which say so.
        handed = [SHARED_NOTE in page.inner_text("body") for page in pages]
        assert sum(handed) == SESSIONS - 1, handed
        for page in pages:
            assert final_losses(page).get("torch") == default_loss
        # Change every session's settings and press Run in all of them before waiting for any.
        for i, page in enumerate(pages):
            lr, batch_size = session_config(i)
            for key, value in (("lr", lr), ("batch_size", batch_size)):
                field = page.locator(f".st-key-{key} input")
                field.fill(str(value))
                field.press("Enter")
            # Both values reached the server before Run.
            page.wait_for_function(
                "() => document.body.innerText.includes('settings have changed')",
                timeout=60_000,
                polling=250,
            )
            page.locator(".st-key-run button").click()
        shown, missed = {}, {}
        for i, page in enumerate(pages):
            try:
                page.wait_for_function(
                    """want => {
                        const t = document.querySelector('[data-testid="stTable"]');
                        return t && t.innerText.includes(want)
                            && !document.body.innerText.includes('settings have changed');
                    }""",
                    arg=expected[i],
                    timeout=120_000,
                    # requestAnimationFrame, the default, stalls in pages not on screen.
                    polling=250,
                )
            except PlaywrightTimeout:  # keep going: the report below says what each session showed
                body = page.inner_text("body")
                missed[i] = ("settings have changed" in body, body[:300])
            shown[i] = final_losses(page)
            assert_no_error(page)
        memory = rss_mb(server)
        print(f"server RSS with {SESSIONS} sessions after their runs: {memory:.0f} MB")
        (tmp_path / "rss.txt").write_text(f"{memory:.1f}\n")
        for context in contexts:
            context.close()
    assert not missed, (
        f"sessions whose run did not show: {missed}; shown {shown}, expected {expected}"
    )
    for i in range(SESSIONS):
        assert shown[i].get("manual (numpy)") == expected[i], (i, shown[i], expected[i])
        assert shown[i].get("torch") == expected[i], (i, shown[i], expected[i])
    assert memory < MEMORY_BUDGET_MB, (
        f"server RSS {memory:.0f} MB is over the {MEMORY_BUDGET_MB} MB budget"
    )


# ---------------------------------------------------------------- no shared mutable state


def _frozen(value, seen: set[int] | None = None) -> bool:
    """True when nothing reachable from value can be changed in place."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return True
    seen.add(id(value))
    if isinstance(value, IMMUTABLE):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_frozen(v, seen) for v in value)
    if isinstance(value, types.MappingProxyType):
        return all(_frozen(k, seen) and _frozen(v, seen) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.__dataclass_params__.frozen and all(
            _frozen(getattr(value, f.name), seen) for f in dataclasses.fields(value)
        )
    if isinstance(value, np.ndarray):
        return not value.flags.writeable
    if isinstance(value, type(threading.Lock())):
        return True  # a lock guards code (lib.engine.source.PARSING); it holds no session's data
    # Code and namespaces: functions, classes, modules, typing constructs; their state is not data.
    return (
        inspect.isroutine(value)
        or inspect.isclass(value)
        or inspect.ismodule(value)
        or type(value).__module__ in ("typing", "types", "collections.abc")
    )


def _helper_modules() -> list[str]:
    """Modules in pages/ that are imported (shared by every session), not the page scripts
    st.Page runs."""
    page_files = {
        node.args[0].value
        for node in ast.walk(ast.parse((ROOT / "app.py").read_text()))
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", "")) == "Page"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    paths = sorted((ROOT / "pages").rglob("*.py"))  # pages/parts/ holds the shared helpers
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in paths
        if p.relative_to(ROOT).as_posix() not in page_files
    ]
    assert "pages.parts.cached" in modules and "pages.compare" not in modules
    return modules


def test_no_module_level_mutable_state_in_lib_or_shared_page_modules():
    """Every session shares these modules: their globals must be constants (tuple, frozenset,
    read-only mapping)."""
    # Every module of every layer of lib (lib.twins.manual, lib.engine.lockstep, ...).
    lib_modules = [m.name for m in pkgutil.walk_packages(lib.__path__, "lib.")]
    assert {"lib.twins.manual", "lib.engine.frames", "lib.io.export"} <= set(lib_modules)
    names = lib_modules + _helper_modules()
    mutable = {}
    for name in names:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if attr.startswith("__") or attr in ("annotations",):
                continue
            if not _frozen(value):
                mutable[f"{name}.{attr}"] = type(value).__name__
    assert not mutable, (
        "module-level mutable values shared by every session (use tuple/MappingProxyType): "
        f"{mutable}"
    )


def test_the_mutable_state_check_can_fail():
    assert (
        not _frozen({"a": 1})
        and not _frozen([1])
        and not _frozen((1, [2]))
        and not _frozen(np.zeros(2))
    )
    assert _frozen((1, "a", frozenset({2.0}))) and _frozen(types.MappingProxyType({"a": (1,)}))


# The one st.cache_resource allowed: the server's store of finished runs, whose Results are
# read-only (tests/test_run_cache.py checks that a session cannot change what another is shown).
SHARED_RESOURCE = ROOT / "pages" / "parts" / "run_cache.py"


def test_no_globals_and_no_shared_resource_caches():
    """No function rebinds a module global, and no st.cache_resource (one object handed to every
    session) but the store of read-only finished runs."""
    found = []
    for path in [
        ROOT / "app.py",
        *sorted((ROOT / "pages").rglob("*.py")),
        *sorted((ROOT / "lib").rglob("*.py")),
    ]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                found.append(f"{path.name}:{node.lineno} global {', '.join(node.names)}")
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "cache_resource"
                and path != SHARED_RESOURCE
            ):
                found.append(f"{path.name}:{node.lineno} st.cache_resource")
    assert not found, found


def test_widget_keys_the_session_test_drives_exist():
    """The session test drives the Compare page by these keys; fail here, clearly, if the page
    renames them."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    for key in ("lr", "batch_size", "iterations"):
        assert at.number_input(key=key).value > 0, key
    assert at.button(key="run").label == "Run"
    source = Path(ROOT / "pages" / "compare.py").read_text()
    assert '"final loss"' in source and ":.6g" in source
