"""The layout of pages/: short functions, and shared parts that import each other in one direction
only, in the order pages/parts/__init__.py lists them, with no state shared between sessions."""

import ast
import importlib
import re
import textwrap
from pathlib import Path

from test_sessions import _frozen

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "pages"
PARTS = PAGES / "parts"
MAX_LINES = 60  # of a function, from its def line to its last line


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function in source longer than limit lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append((node.name, node.lineno, length))
    return found


def test_no_function_in_pages_is_longer_than_60_lines():
    files = sorted(PAGES.rglob("*.py"))
    assert PARTS / "sidebar.py" in files  # the scan reaches the subfolder
    too_long = {
        f"{path.relative_to(ROOT)}:{line} {name}": length
        for path in files
        for name, line, length in long_functions(path.read_text())
    }
    assert not too_long, f"functions over {MAX_LINES} lines (split them): {too_long}"


def test_the_length_check_counts_every_line_of_a_function():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES - 1))
    assert long_functions(f"def fits():\n{body}") == []
    nested = "class A:\n    def method(self):\n" + textwrap.indent(body + "    y = 1\n", "    ")
    assert long_functions(nested) == [("method", 2, MAX_LINES + 1)]


def listed_order() -> list[str]:
    """The modules in the order pages/parts/__init__.py's docstring lists them."""
    doc = ast.get_docstring(ast.parse((PARTS / "__init__.py").read_text()))
    return re.findall(r"^\s*(\w+) {2,}", doc, flags=re.M)


def part_imports(name: str) -> set[str]:
    """The modules of pages/parts that pages/parts/<name>.py imports."""
    found = set()
    for node in ast.walk(ast.parse((PARTS / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("pages.parts."):
                found.add(node.module.removeprefix("pages.parts."))
            elif node.module == "pages.parts":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pages.parts."):
                    found.add(alias.name.removeprefix("pages.parts."))
    return found


def test_the_parts_are_listed_and_import_only_parts_listed_before_them():
    order = listed_order()
    modules = sorted(p.stem for p in PARTS.glob("*.py") if p.stem != "__init__")
    assert sorted(order) == modules, "pages/parts/__init__.py lists every module once"
    for position, name in enumerate(order):
        later = part_imports(name) - set(order[:position])
        assert not later, f"pages/parts/{name}.py imports {later}, listed after it (or itself)"


def test_the_order_check_sees_an_import():
    assert part_imports("sidebar") >= {"build", "labels", "links", "widgets"}
    assert part_imports("labels") == set()


def test_the_shared_parts_keep_no_state_between_sessions():
    """Every session shares these modules: their globals must be constants (see test_sessions)."""
    mutable = {}
    for name in listed_order():
        module = importlib.import_module(f"pages.parts.{name}")
        for attr, value in vars(module).items():
            if not attr.startswith("__") and attr != "annotations" and not _frozen(value):
                mutable[f"pages.parts.{name}.{attr}"] = type(value).__name__
    assert not mutable, f"module-level mutable values (use tuple or MappingProxyType): {mutable}"
