"""lib's folders are its layers: each module imports only from its own layer and the layers below.

twins (the two loops) < engine (Config, data, the lockstep run) < lessons, io < charts. lessons
and io sit side by side and do not import each other. Read from the source, so an import inside a
function counts as much as one at the top.
"""

import ast
import importlib
import pathlib
import sys

import pytest
from test_pages_layout import MAX_LINES, long_functions

import lib

ROOT = pathlib.Path(lib.__file__).parent
RANK = {"twins": 0, "engine": 1, "lessons": 2, "io": 2, "charts": 3}
LAYERS = tuple(RANK)


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name in lib ("lib.engine.data" -> "engine"); None for lib."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def lib_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import of a lib module in one file."""
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if not base.startswith("lib"):
                continue
            if (
                base.count(".") == 1 or base == "lib"
            ):  # from ..engine import data: the names may be modules
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            found.append((node.lineno, base))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name) for alias in node.names if alias.name.startswith("lib")
            ]
    return found


def violations(path: pathlib.Path) -> list[str]:
    """Each import in path that goes up a layer or sideways between lessons and io, in words."""
    own = layer_of(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
    if own is None:
        return []  # lib/__init__.py gathers the public API from every layer
    bad = []
    for line, module in lib_imports(path):
        target = layer_of(module)
        if target is None or target == own:
            continue
        if RANK[target] > RANK[own] or RANK[target] == RANK[own]:
            bad.append(
                f"{path.relative_to(ROOT.parent)}:{line} ({own}) imports {module} ({target})"
            )
    return bad


def test_every_module_is_in_a_layer():
    loose = sorted(p.name for p in ROOT.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules outside the layer folders: {loose}"
    assert sorted(
        p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__"
    ) == sorted(LAYERS)


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_the_layers(path):
    assert violations(path) == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    # A twin that imports the engine, and a lesson that imports io, are both caught.
    fake = tmp_path / "lib"
    (fake / "twins").mkdir(parents=True)
    (fake / "lessons").mkdir()
    (fake / "twins" / "bad.py").write_text("from ..engine.config import Config\n")
    (fake / "lessons" / "side.py").write_text("def f():\n    from ..io import datasets\n")
    (fake / "lessons" / "fine.py").write_text(
        "from ..engine.data import Dataset\nfrom . import explain\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    assert violations(fake / "twins" / "bad.py") == [
        "lib/twins/bad.py:1 (twins) imports lib.engine.config (engine)"
    ]
    assert [v.split(" imports ")[1] for v in violations(fake / "lessons" / "side.py")] == [
        "lib.io.datasets (io)",
        "lib.io (io)",
    ]
    assert violations(fake / "lessons" / "fine.py") == []


@pytest.mark.parametrize(
    "old, name",
    [
        ("lib.trace", "Stepper"),
        ("lib.optim", "state_pairs"),
        ("lib.csv_data", "read_csv"),
        ("lib.datasets", "PRESETS"),
        ("lib.explain", "verify_all"),
        ("lib.config", "Config"),
        ("lib.data", "Dataset"),
        ("lib.manual", "manual_loop"),
    ],
)
def test_the_old_module_paths_still_import(old, name):
    # Notebooks written before the layers had folders keep working.
    assert hasattr(importlib.import_module(old), name)


def test_run_and_torch_loop_name_functions_and_nothing_else():
    # lib.run is the lockstep run, reached through the line-order lab's run for its order= (an
    # order of None or lib.ORDER is lib.engine.lockstep.run itself)
    assert callable(lib.run) and lib.run.__module__ == "lib.lessons.line_order"
    assert lib.lessons.line_order.lockstep_run is lib.engine.lockstep.run
    assert callable(lib.torch_loop) and lib.torch_loop.__module__ == "lib.twins.torch_side"


# The two loops are the exhibits: the Code map, Step through and the script show them whole, each
# phase a marked section, and splitting them would hide the very lines the app teaches. They get a
# longer bound, still a bound.
TWIN_LOOPS = {"lib/twins/manual.py": "manual_loop", "lib/twins/torch_side.py": "torch_loop"}
TWIN_LOOP_LINES = 80


def test_no_function_in_lib_is_longer_than_60_lines():
    too_long = {
        f"{path.relative_to(ROOT.parent)}:{line} {name}": length
        for path in sorted(ROOT.rglob("*.py"))
        for name, line, length in long_functions(path.read_text())
        if not (
            TWIN_LOOPS.get(str(path.relative_to(ROOT.parent))) == name and length <= TWIN_LOOP_LINES
        )
    }
    assert not too_long, f"functions over {MAX_LINES} lines (split them): {too_long}"
