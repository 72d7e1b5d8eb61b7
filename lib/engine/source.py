"""Parsing lib's own source code, one thread at a time.

CPython 3.11's conversion between its internal syntax trees and the `ast` module's keeps a
recursion depth in process-wide state, so two threads parsing at once can fail with
"SystemError: AST constructor recursion depth mismatch" (python/cpython#106905). Every session of
the app parses the loops' source (the Code map's code, its checks, the exported script), so lib
parses and compiles syntax trees under this one lock. It guards no data.
"""

from __future__ import annotations

import ast
import threading

PARSING = threading.Lock()


def parse(text: str) -> ast.Module:
    """ast.parse(text), while no other thread parses."""
    with PARSING:
        return ast.parse(text)


def compile_tree(tree: ast.AST, filename: str):
    """compile(tree, filename, "exec") of a syntax tree, while no other thread parses."""
    with PARSING:
        return compile(tree, filename, "exec")
