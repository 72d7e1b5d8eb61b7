"""lib parses its own source one thread at a time (lib.engine.source): CPython 3.11's AST
conversion is not thread-safe (python/cpython#106905), and every session parses the loops."""

import ast
import threading

from lib.engine import source


def test_parse_and_compile_wait_for_the_lock():
    done = []
    with source.PARSING:  # another thread is parsing
        worker = threading.Thread(
            target=lambda: done.append(source.compile_tree(source.parse("x = 1"), "<test>"))
        )
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive() and not done  # it waits
    worker.join(timeout=10)
    assert not worker.is_alive() and len(done) == 1
    scope = {}
    exec(done[0], scope)
    assert scope["x"] == 1


def test_parse_is_ast_parse():
    text = "def f(a):\n    return a + 1\n"
    assert ast.dump(source.parse(text)) == ast.dump(ast.parse(text))


def test_lib_parses_only_through_the_lock():
    # Every ast.parse in lib goes through lib.engine.source, so no two sessions parse at once.
    import pathlib

    import lib

    root = pathlib.Path(lib.__file__).parent
    direct = [
        f"{path.relative_to(root)}:{node.lineno}"
        for path in sorted(root.rglob("*.py"))
        if path.name != "source.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "parse"
        and getattr(node.func.value, "id", None) == "ast"
    ]
    assert direct == []
