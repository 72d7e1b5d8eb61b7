"""The run as a Jupyter notebook: the exported script's code, a cell per phase, and a loss chart.

The code cells are cut from `lib.to_script(data, cfg)` (lib's own source, specialised to the
Config), never written here: this module only decides which top-level definition goes in which
cell, and adds the lines that record both losses and draw them with Altair.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..engine.config import Config
from ..engine.data import Dataset, weight_names
from ..engine.source import parse
from .export import to_script

# A phase heading in a loop: "# Forward pass." (the form lib.explain reads)
_HEADING = r"\s*# [A-Z][\w ,'-]{0,40}\."
# At most this many points a loop in the chart: beyond, every k-th step.
CHART_POINTS = 2_000
_TORCH_OPTIMIZERS = MappingProxyType(
    {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
)
_RECORD = (
    "losses.append((step, loss_m, loss_t))  # this notebook's line: both losses, for the chart"
)
_RECORD_INIT = "losses = []  # this notebook's line: (step, manual loss, torch loss) at every step"


@dataclass
class _Parts:
    """The script cut into the notebook's pieces (each a list of source texts)."""

    imports: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    shared: dict[str, str] = field(default_factory=dict)  # name -> text, reached by both loops
    manual: dict[str, str] = field(default_factory=dict)
    torch: dict[str, str] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)
    main: list[str] = field(default_factory=list)  # setup, lockstep, comparison, last line
    loop_names: tuple[str, str] = ("", "")


def to_notebook(
    data: Dataset,
    cfg: Config,
    *,
    csv_name: str | None = None,
    target: str | None = None,
) -> str:
    """A Jupyter notebook (nbformat v4 JSON) that reruns both loops with numpy, torch and altair.

    Its code is the code of `lib.to_script(data, cfg, csv_name=..., target=...)`, a cell per
    phase with a markdown cell explaining each: the data, the hand loop, the torch loop, the
    lockstep, the comparison, an Altair chart of both loops' loss, and last the JSON line
    {"manual": [...], "torch": [...]} of each loop's final weights (with "val_loss" given
    val_fraction > 0), as the script prints it.
    """
    import nbformat  # a runtime dependency, imported here: `import lib` does not need it

    script = to_script(data, cfg, csv_name=csv_name, target=target)
    parts = _cut(script)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for kind, text in _cells(data, cfg, parts):
        make = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        nb.cells.append(make(text.strip("\n")))
    nbformat.validate(nb)
    return nbformat.writes(nb)


# --- Cutting the script ------------------------------------------------------------------------


def _segments(script: str, tree: ast.Module) -> list[tuple[ast.stmt, str]]:
    """Each top-level statement with the comment lines right above it."""
    lines = script.splitlines()
    out, previous_end = [], 0
    for node in tree.body:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        start = first - 1
        while start > previous_end and lines[start - 1].lstrip().startswith("#"):
            start -= 1
        out.append((node, "\n".join(lines[start : node.end_lineno])))
        previous_end = node.end_lineno
    return out


def _defined(node: ast.stmt) -> str | None:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _cut(script: str) -> _Parts:
    """Sort the script's top-level statements into the notebook's parts."""
    tree = parse(script)
    parts, body, main = _Parts(), {}, None
    for node, text in _segments(script, tree):
        name = _defined(node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            parts.imports.append(text)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the script's docstring: the first markdown cell says it in full
        elif isinstance(node, ast.If):
            continue  # if __name__ == "__main__": main()
        elif name == "main":
            main = node
        elif main is not None:
            parts.data.append(text)  # after main(): the data and what the code reads of cfg
        else:
            body[name] = (node, text)
    if main is None:
        raise ValueError("to_notebook: the script has no main() to cut into cells")
    roots = _loop_roots(main)
    parts.loop_names = tuple(next(iter(r), "") for r in roots)
    reach = [_reached(r, body) for r in roots]
    for name, (_, text) in body.items():
        side = (name in reach[0], name in reach[1])
        where = {
            (True, True): parts.shared,
            (True, False): parts.manual,
            (False, True): parts.torch,
        }.get(side, parts.other)
        where[name] = text
    parts.main = _cut_main(script, main)
    return parts


def _loop_roots(main: ast.FunctionDef) -> tuple[list[str], list[str]]:
    """The functions main() calls to make `manual` and `twin`, the outermost call first."""
    roots = {}
    for stmt in main.body:
        for name in ("manual", "twin"):
            if _assigns(stmt, name):
                calls = [n for n in ast.walk(stmt.value) if isinstance(n, ast.Call)]
                roots[name] = [c.func.id for c in calls if hasattr(c.func, "id")]
    if set(roots) != {"manual", "twin"}:
        raise ValueError("to_notebook: main() no longer makes the loops `manual` and `twin`")
    return roots["manual"], roots["twin"]


def _reached(roots: list[str], body: dict) -> set[str]:
    """The top-level names the roots reach, through every name their code loads."""
    seen, todo = set(), [r for r in roots if r in body]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += sorted(_free_names(body[name][0]) & body.keys())
    return seen


def _free_names(node: ast.stmt) -> set[str]:
    """The names the definition loads that it does not bind itself (its arguments, its locals)."""
    bound = {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
    bound |= {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)
    }
    loads = {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return loads - (bound - {_defined(node)})


def _cut_main(script: str, main: ast.FunctionDef) -> list[str]:
    """main()'s body as four cells: the setup (up to `twin = ...`), the lockstep (with the lines
    that record the losses), the comparison, and the last line (the JSON print)."""
    lines = script.splitlines()
    body = [s for s in main.body if not _is_docstring(s)]
    if any(isinstance(n, ast.Return) for s in body for n in _shallow(s)):
        raise ValueError("to_notebook: main() returns early; its body cannot run as cells")
    twin = next(i for i, s in enumerate(body) if _assigns(s, "twin"))
    lockstep = next(i for i, s in enumerate(body) if isinstance(s, ast.With) and i > twin)

    def text(stmts) -> str:
        first = min(_first_line(s, lines) for s in stmts)
        return textwrap.dedent("\n".join(lines[first - 1 : stmts[-1].end_lineno]))

    record = _recorded(lines, body[lockstep])
    before = body[twin + 1 : lockstep]
    head = text(before) + "\n" if before else ""
    return [
        text(body[: twin + 1]),
        head + _RECORD_INIT + "\n" + record,
        text(body[lockstep + 1 : -1]),
        text(body[-1:]),
    ]


def _recorded(lines: list[str], with_stmt: ast.With) -> str:
    """The lockstep `with` block, dedented, with _RECORD after the torch loop's `next(twin)`."""
    steps = [
        s
        for s in ast.walk(with_stmt)
        if isinstance(s, ast.Assign)
        and isinstance(s.value, ast.Call)
        and getattr(s.value.func, "id", None) == "next"
        and getattr(s.value.args[0], "id", None) == "twin"
    ]
    if len(steps) != 1:
        raise ValueError("to_notebook: the lockstep no longer steps the torch loop by next(twin)")
    step, first = steps[0], _first_line(with_stmt, lines)
    block = lines[first - 1 : with_stmt.end_lineno]
    at = step.end_lineno - first + 1
    indent = " " * step.col_offset
    block = [*block[:at], indent + _RECORD, *block[at:]]
    return textwrap.dedent("\n".join(block))


def _first_line(stmt: ast.stmt, lines: list[str]) -> int:
    """The statement's first line, with the comment lines right above it."""
    start = stmt.lineno
    while start > 1 and lines[start - 2].lstrip().startswith("#"):
        start -= 1
    return start


def _shallow(stmt: ast.stmt):
    """The nodes of stmt outside any nested function or class."""
    todo = [stmt]
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            todo += list(ast.iter_child_nodes(node))


def _assigns(stmt: ast.stmt, name: str) -> bool:
    return isinstance(stmt, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == name for t in stmt.targets
    )


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


# --- The cells ---------------------------------------------------------------------------------


def _names(defs, leave_out: str = "") -> str:
    return ", ".join(f"`{name}`" for name in defs if name != leave_out)


def _reaches(parts: _Parts, side: int) -> str:
    """ "`manual_loop` and what it alone reaches (`a`, `b`)", or without the brackets if nothing."""
    root, defs = parts.loop_names[side], (parts.manual, parts.torch)[side]
    others = _names(defs, leave_out=root)
    return f"`{root}` and what it alone reaches ({others})" if others else f"`{root}`"


def _cells(data: Dataset, cfg: Config, parts: _Parts) -> list[tuple[str, str]]:
    """(kind, text) for every cell, in order: "md" for markdown, "code" for code."""
    setup, lockstep, comparison, last = parts.main
    cells = [
        ("md", _title(data, cfg)),
        ("md", "## Imports\nThe standard library, numpy and torch, as the script imports them."),
        ("code", "\n".join(parts.imports)),
        ("md", _data_text(data, parts)),
        ("code", "\n".join(parts.data)),
    ]
    if parts.shared:
        cells += [
            ("md", _shared_text(parts)),
            ("code", "\n\n\n".join(parts.shared.values())),
        ]
    cells += [
        ("md", _manual_text(cfg, parts)),
        ("code", "\n\n\n".join(parts.manual.values())),
        ("md", _torch_text(cfg, parts)),
        ("code", "\n\n\n".join(parts.torch.values())),
    ]
    if parts.other:
        cells += [
            ("md", _other_text(parts)),
            ("code", "\n\n\n".join(parts.other.values())),
        ]
    return [
        *cells,
        ("md", _SETUP_TEXT),
        ("code", setup),
        ("md", _lockstep_text(cfg)),
        ("code", lockstep),
        ("md", _COMPARISON_TEXT),
        ("code", comparison),
        ("md", _CHART_TEXT.format(points=f"{CHART_POINTS:,}")),
        ("code", _CHART_CODE.format(points=CHART_POINTS)),
        ("md", _last_text(data, cfg)),
        ("code", last),
    ]


def _title(data: Dataset, cfg: Config) -> str:
    changed = [
        f"{name}={_plain(getattr(cfg, name))!r}"
        for name in cfg.__dataclass_fields__
        if getattr(cfg, name) != getattr(Config(), name)
    ]
    return (
        "# Rerun of a training-loop-twins run\n"
        "The hand-written numpy loop and the torch loop, run in lockstep on the same batches from "
        f"the same initial weights: `lib.Config({', '.join(changed)})` on {_md(data.name)}, "
        f"{data.m:,} samples × {data.n} features.\n\n"
        "Every function below is lib's own source, as `lib.to_script` writes it for this Config: "
        "the branches this Config does not take are left out. The notebook needs numpy, torch "
        "and altair. Run the cells in order (Run All)."
    )


def _plain(value):
    """A Config field as the literal a reader would type (a read-only mapping as a dict)."""
    return dict(value) if isinstance(value, Mapping) else value


def _md(text: str) -> str:
    """A name shown in markdown: on one line, its markdown characters escaped."""
    text = " ".join(str(text).split())
    for char in "\\`*_[]<>#|":
        text = text.replace(char, "\\" + char)
    return text


def _data_text(data: Dataset, parts: _Parts) -> str:
    code = "\n".join(parts.data)
    if "CSV_FILE =" in code:
        where = (
            "read from a CSV file by column name (the cell names the file, which must sit next "
            "to this notebook)"
        )
    elif "base64" in code:
        where = "written in below as the exact float64 bytes, base64-encoded"
    else:
        where = "written in below, every number exactly as lib holds it"
    return (
        f"## The data\n{_md(data.name)}: {data.m:,} samples × {data.n} features, {where}. "
        "`data` and `cfg` hold what the code reads of the run's `lib.Dataset` and `lib.Config`; "
        "the Config's other choices are written into the code."
    )


def _shared_text(parts: _Parts) -> str:
    return (
        f"## What both loops use\n{_names(parts.shared)}: both the hand loop and the torch loop "
        "reach these, so the two read the same batches in the same order, drawn from one seed."
    )


def _manual_text(cfg: Config, parts: _Parts) -> str:
    manual, torch = (
        _phase_comments(defs.get(name, ""))
        for defs, name in zip((parts.manual, parts.torch), parts.loop_names, strict=True)
    )
    same = (
        ", the same phase comments in the same order as in the torch loop below"
        if manual and manual == torch
        else ""
    )
    return (
        f"## The hand-written loop\n{_reaches(parts, 0)}: numpy only. The forward pass, the "
        f"`{cfg.loss}` loss, its gradient and the `{cfg.optimizer}` update are written out by "
        f"hand; each phase starts with a comment{same}."
    )


def _phase_comments(text: str) -> list[str]:
    """The loop's phase headings: its comment lines that are one short sentence each."""
    return [line.strip() for line in text.splitlines() if re.fullmatch(_HEADING, line)]


def _torch_text(cfg: Config, parts: _Parts) -> str:
    code = "\n".join(parts.torch.values())
    name = _TORCH_OPTIMIZERS.get(cfg.optimizer, "")
    update = (
        f", and `torch.optim.{name}` updates the weights"
        if name and f"torch.optim.{name}(" in code
        else ""
    )
    backward = (
        f" Autograd computes the gradient (`.backward()`){update}." if ".backward()" in code else ""
    )
    return f"## The torch loop\n{_reaches(parts, 1)}: the canonical torch loop.{backward}"


def _other_text(parts: _Parts) -> str:
    return (
        f"## The rest of the run\n{_names(parts.other)}: what the run calls besides the two "
        "loops (each docstring says what it does)."
    )


_SETUP_TEXT = (
    "## Both loops, ready to run\n"
    "The body of `lib.engine.lockstep.loops`, as the script's `main()` runs it: the initial "
    "weights, the training rows, and the two loops, each a generator that yields its loss, "
    "weights and gradient after every step."
)
_COMPARISON_TEXT = (
    "## The comparison\n"
    "The largest difference between the two loops' weights after the last step, and the same "
    "divided by the largest weight's size (at least 1)."
)
_CHART_TEXT = (
    "## Both loops' loss\n"
    "The torch loop's line is dashed, on top of the hand loop's: where the two agree, the lines "
    "lie on each other. The y axis is logarithmic when every loss drawn is above zero. At most "
    "{points} points a loop are drawn (beyond that, every k-th step), and none that is not "
    "finite."
)
# This notebook's own code (lib's code is in the cells above): the chart, from `losses`.
_CHART_CODE = """import math

import altair as alt

every = max(1, -(-len(losses) // {points}))  # at most {points} points a loop
rows = [
    {{"step": step, "loop": loop, "loss": float(value)}}
    for step, loss_m, loss_t in losses[::every]
    for loop, value in (("manual", loss_m), ("torch", loss_t))
    if math.isfinite(float(value))
]
log = bool(rows) and all(row["loss"] > 0 for row in rows)
alt.Chart(alt.Data(values=rows), title="Loss of both loops").mark_line().encode(
    x=alt.X("step:Q", title="step"),
    y=alt.Y("loss:Q", title="loss", scale=alt.Scale(type="log" if log else "linear")),
    color=alt.Color("loop:N", title="loop"),
    strokeDash=alt.StrokeDash("loop:N", title="loop"),
).properties(width=560, height=280)"""


def _lockstep_text(cfg: Config) -> str:
    return (
        f"## The lockstep\nUp to {cfg.iterations:,} steps, one step of each loop at a time on the "
        "same batch, stopped where `lib.run` stops: after the first step whose loss, weights or "
        "gradient is not finite. The lines marked *this notebook's line* record both losses for "
        "the chart; the rest is the script's."
    )


def _last_text(data: Dataset, cfg: Config) -> str:
    names = weight_names(data, cfg)
    order = (
        f"in the order {', '.join(f'`{n}`' for n in names)}"
        if len(names) <= 12
        else f"(all {len(names):,}, in lib's weight order)"
    )
    held_out = (
        f', and under "val_loss" each loop\'s loss on the held-out rows after every '
        f"{cfg.eval_interval:,} steps"
        if cfg.val_fraction > 0
        else ""
    )
    return (
        '## The final weights\nThe last line is JSON, as the script prints it: {"manual": [...], '
        f'"torch": [...]}}, each loop\'s final weights {order}{held_out}.'
    )
