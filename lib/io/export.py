"""Exports of a run: its tidy history as CSV, as JSON with its config, and a standalone script."""

from __future__ import annotations

import ast
import base64
import bisect
import builtins
import dataclasses
import functools
import hashlib
import importlib
import inspect
import io
import itertools
import json
import math
import re
import sys
import textwrap
import tokenize
from pathlib import Path
from types import MappingProxyType, ModuleType

import numpy as np
import pandas as pd

from ..engine import lockstep as run_side
from ..engine.config import Config
from ..engine.data import Dataset, initial_weights, weight_names
from ..engine.lockstep import Result
from ..engine.source import compile_tree, parse
from ..twins.layout import Layout

# up to this many numbers the data is written as readable lists, beyond as base64
MAX_READABLE = 10_000
# "lib": every layer's code is copied into the script, none imported
_LIB = __package__.partition(".")[0]
MAX_EMBEDDED = 2_000_000  # about 21 MB of script; larger data must be referenced as a CSV file


def history_csv(result: Result) -> bytes:
    """The run's tidy history (step, loop, metric, value) as UTF-8 CSV: Result.frame().

    Floats round-trip exactly. The frame has "lr" with a scheduler and "val_loss" with a
    validation split; with clip_grad_norm, "clipped" rows follow (1.0 at each step whose gradient
    clip_grad_norm_ scaled down, else 0.0).
    """
    if not isinstance(result, Result):
        raise ValueError(f"result must be a lib.Result; got {type(result).__name__}")
    frame = result.frame()
    if result.config.clip_grad_norm is not None:
        parts = [frame]
        for loop in ("manual", "torch"):
            clipped = np.asarray(getattr(result, loop).clipped, dtype=np.float64)
            parts.append(
                pd.DataFrame(
                    {
                        "step": np.arange(len(clipped)),
                        "loop": loop,
                        "metric": "clipped",
                        "value": clipped,
                    }
                )
            )
        frame = pd.concat(parts, ignore_index=True)
    return frame.to_csv(index=False).encode("utf-8")


def history_json(result: Result, data: Dataset | None = None) -> bytes:
    """The run as strict JSON: config, data description (if given), outcome and both histories.

    Non-finite numbers (the last row of a diverged run) are written as null, since JSON has no NaN
    or inf.
    """
    if not isinstance(result, Result):
        raise ValueError(f"result must be a lib.Result; got {type(result).__name__}")
    doc = {
        "config": _config_dict(result.config),
        "data": _data_dict(data) if data is not None else None,
        "weight_names": list(result.weight_names),
        "steps": result.steps,
        "stopped": result.stopped,
        "message": result.message(),
        "diverged_at": result.diverged_at,
        "max_abs_diff": _finite_or_none(result.max_abs_diff),
        "step_diff": _finite_or_none(result.step_diff),
    }
    cfg = result.config
    validation = len(result.val_rows) > 0
    if validation:  # the steps after which the held-out rows (of the Dataset) were evaluated
        doc["val_steps"] = np.asarray(result.val_steps).tolist()
        doc["val_rows"] = np.asarray(result.val_rows).tolist()
    for loop in ("manual", "torch"):
        h = getattr(result, loop)
        doc[loop] = {
            "loss": _finite_or_none(h.loss),
            "grad_norm": _finite_or_none(h.grad_norm),
            "weights": _finite_or_none(h.weights),
            "seconds": h.seconds,
        }
        if cfg.scheduler is not None and h.lr is not None:  # the lr each step used
            doc[loop]["lr"] = _finite_or_none(h.lr)
        if cfg.clip_grad_norm is not None and h.clipped is not None:
            doc[loop]["clipped"] = np.asarray(h.clipped, dtype=bool).tolist()
        if validation:
            doc[loop]["val_loss"] = _finite_or_none(h.val_loss)
    return json.dumps(doc, allow_nan=False, indent=1).encode("utf-8")


def to_script(
    data: Dataset,
    cfg: Config,
    *,
    csv_name: str | None = None,
    target: str | None = None,
    full: bool = False,
) -> str:
    """A standalone Python script (numpy and torch only) that reruns both loops and prints their
    final weights. The script is assembled from the source of
    lib.engine.lockstep.loops and of every lib function it reaches, so it cannot drift from what
    lib.run executes. By default that source is specialised to this Config: its choices are
    written where the code reads them and the branches it does not take are left out (the
    default run: 236 lines in all, against 1,232 with every branch and its data); full=True
    keeps them all, with stand-ins for lib's Config and Dataset. The short script makes data from
    one of lib.datasets' seeded generators again with that generator's source, checked bit for bit
    (regenerated_data); other data is embedded, as always in the full script, or, given
    csv_name (or a Dataset with a `source` file name), read from that CSV file by column name:
    the features by data.feature_names, the target by `target` (default: the last other column).
    The last printed line is JSON {"manual": [...], "torch": [...]}, with "val_loss": {"manual":
    [...], "torch": [...]} (each evaluation's loss on the held-out rows) given val_fraction > 0.
    """
    csv_name, target = _checked_arguments(data, cfg, csv_name, target, full)
    init = initial_weights(data, cfg)
    if not full:
        return _short_script(data, cfg, csv_name, target)
    code = _Assembler()
    loops_name = code.add_entry(run_side.loops)
    code.add_entry(run_side.ends_run)  # the step rule the lockstep below applies
    if csv_name is None and data.m * (data.n + 1) > MAX_READABLE:
        code.import_lines.add("import base64")
    parts = [
        _header(data, cfg, csv_name),
        code.imports(),
        "# ---- Stand-ins for lib's Config and Dataset, and for what lib computed when it wrote "
        "this script ----",
        *code.standins(init_how=_init_how(cfg)),
        "# ---- The code lib.run executes, copied from lib's source "
        "(lib/engine/lockstep.py, lib/twins/manual.py, ...) ----",
        *code.pieces(),
        _settings(data, cfg, init),
        _csv_data(data, csv_name, target) if csv_name is not None else _embedded_data(data),
        _with_validation(_MAIN.replace("LOOPS", loops_name), cfg, "CONFIG"),
    ]
    return "\n\n\n".join(part.strip("\n") for part in parts) + "\n"


def _checked_arguments(
    data: Dataset, cfg: Config, csv_name: str | None, target: str | None, full: bool
) -> tuple[str | None, str | None]:
    """to_script's arguments checked (a ValueError in words), and (csv_name, target) with their
    defaults from the Dataset filled in."""
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a lib.Dataset; got {type(data).__name__}")
    if not isinstance(cfg, Config):
        raise ValueError(f"cfg must be a lib.Config; got {type(cfg).__name__}")
    csv_name = csv_name if csv_name is not None else getattr(data, "source", None)
    target = target if target is not None else getattr(data, "target_name", None)
    if csv_name is not None and not (isinstance(csv_name, str) and csv_name.strip()):
        raise ValueError(f"csv_name must be a file name; got {csv_name!r}")
    if target is not None and not isinstance(target, str):
        raise ValueError(f"target must be a column name; got {target!r}")
    if csv_name is None and data.m * (data.n + 1) > MAX_EMBEDDED:
        raise ValueError(
            f"the data has {data.m * (data.n + 1):,} numbers, too many to embed in a script "
            f"(at most {MAX_EMBEDDED:,}); pass csv_name= to read it from a CSV file instead"
        )
    if not isinstance(full, (bool, np.bool_)):
        raise ValueError(f"full must be True or False; got {full!r}")
    run_side.check_run(data, cfg)  # the script skips these checks, so they must pass here
    return csv_name, target


# Stand-ins: lib objects the script replaces by a simpler equivalent, keyed by the object.
_STANDIN_CLASSES = MappingProxyType(
    {
        Config: (
            "The run's lib.Config: its fields, and the members of it that the code below reads."
        ),
        Dataset: (
            "The run's lib.Dataset, X (m, n) and y (m,), "
            "and the members of it that the code below reads."
        ),
    }
)
_STANDIN_FUNCTIONS = MappingProxyType(
    {
        run_side.check_run: (
            '"""lib.run.check_run passed for this data and Config when lib wrote this script."""'
        ),
        initial_weights: (
            '"""The initial weights lib.initial_weights made for this run ({how})."""\n'
            "    return INIT.copy()"
        ),
    }
)
# passed when the script was written: left out
_SHORT_STANDINS = MappingProxyType({run_side.check_run: ""})
# the only packages the script may import besides the standard library
_THIRD_PARTY = ("numpy", "torch")


@dataclasses.dataclass
class _Piece:
    """One top-level definition copied into the script.

    A function, a class or a constant's assignment.
    """

    module: ModuleType
    name: str
    text: str  # the source, dedented
    indent: str = ""  # re-indented by this much when emitted (members of the stand-in classes)
    refs: list = dataclasses.field(default_factory=list)  # (node, target key or None, spelled as)


class _Assembler:
    """Collects a lib function and all it reaches, renaming where two modules reuse a name."""

    def __init__(self, short: bool = False) -> None:
        # the short script: lib's initial_weights itself, no Config or Dataset stand-ins
        self.short = short
        self.order: list[tuple] = []  # piece keys, dependencies first
        self.found: dict[tuple, _Piece] = {}
        self.names: dict[tuple, str] = {}  # key -> the name it has in the script
        self.taken: dict[str, tuple] = {}
        self.import_lines: set[str] = set()
        self.members: dict[type, list[_Piece]] = {cls: [] for cls in _STANDIN_CLASSES}
        self.used_standins: list = []
        self.cfg_attrs: set[str] = set()
        self.data_attrs: set[str] = set()

    def add_entry(self, func) -> str:
        key = self._lib_key(func)
        self._claim(key, func.__name__, sys.modules[func.__module__])
        self._visit(key, func)
        self._add_members()
        return self.names[key]

    # -- discovery --

    @staticmethod
    def _lib_key(obj) -> tuple:
        return ("def", obj.__module__, obj.__qualname__)

    def _claim(self, key: tuple, name: str, module: ModuleType) -> None:
        if key in self.names:
            return
        script_name = name
        if script_name in self.taken and self.taken[script_name] != key:
            script_name = f"{module.__name__.rsplit('.', 1)[-1].split('_')[0]}_{name}"
        if script_name in self.taken and self.taken[script_name] != key:
            raise ValueError(
                f"to_script: two lib objects would both be called {script_name!r} in the script"
            )
        self.names[key] = script_name
        self.taken[script_name] = key

    def _visit(self, key: tuple, obj) -> None:
        if key in self.found:
            return
        if key[0] == "def":
            module = sys.modules[obj.__module__]
            piece = _Piece(module, obj.__name__, textwrap.dedent(inspect.getsource(obj)))
        else:  # a module-level constant: its assignment statement, as written
            module, name = obj
            piece = _Piece(module, name, _assignment_source(module, name))
        self.found[key] = piece  # before the dependencies, so that cycles end here
        self._scan(piece)
        self.order.append(key)

    def _scan(self, piece: _Piece) -> None:
        """Find what the piece's code refers to, resolve it in its own module, visit it first."""
        tree = parse(piece.text)
        top = tree.body[0]
        bound = {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                bound.add(node.id)
            elif (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node is not top
            ):
                bound.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        own = top.targets[0].id if isinstance(top, ast.Assign) else getattr(top, "name", None)
        bound.discard(own)
        annotations = {id(n) for a in _annotations(tree) for n in ast.walk(a)}
        # In reading order, so that of two lib objects with one name, the first the code mentions
        # keeps it.
        nodes = sorted(
            (n for n in ast.walk(tree) if isinstance(n, (ast.Name, ast.Attribute))),
            key=lambda n: (n.lineno, n.col_offset),
        )
        for node in nodes:
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id in ("cfg", "self" if piece.indent else "cfg"):
                    self.cfg_attrs.add(node.attr)
                if node.value.id in ("data", "self" if piece.indent else "data"):
                    self.data_attrs.add(node.attr)
                value = piece.module.__dict__.get(node.value.id)
                if node.value.id not in bound and _is_lib_module(value):
                    target = getattr(value, node.attr)
                    self._reference(
                        piece, node, f"{node.value.id}.{node.attr}", target, value, node.attr
                    )
            elif (
                isinstance(node, ast.Name)
                and isinstance(node.ctx, ast.Load)
                and node.id not in bound
            ):
                if node.id in piece.module.__dict__:
                    value = piece.module.__dict__[node.id]
                    if id(node) in annotations and _defined_in_lib(value):
                        continue  # not evaluated (from __future__ import annotations)
                    self._reference(piece, node, node.id, value, piece.module, node.id)
                elif not hasattr(builtins, node.id):
                    raise ValueError(
                        f"to_script: {node.id!r} in {piece.name} is defined nowhere that lib knows"
                    )
            if isinstance(top, ast.Assign) and isinstance(node, ast.Name) and node.id == own:
                piece.refs.append((node, ("const", piece.module.__name__, own), own))

    def _reference(
        self, piece: _Piece, node, spelled: str, value, module: ModuleType, name: str
    ) -> None:
        if isinstance(value, ModuleType):
            if _is_lib_module(value):
                return  # used through its attributes, each resolved on its own
            self.import_lines.add(_import_line(value, name))
            return
        standins = _SHORT_STANDINS if self.short else _STANDIN_FUNCTIONS
        if _hashable(value) and (value in _STANDIN_CLASSES or value in standins):
            if value not in self.used_standins:
                self.used_standins.append(value)
            return
        if _defined_in_lib(value):
            key = self._lib_key(value)
            self._claim(key, value.__name__, sys.modules[value.__module__])
            piece.refs.append((node, key, spelled))
            self._visit(key, value)
            return
        if module.__name__.startswith(f"{_LIB}.") and _assigned_in(module, name):
            key = ("const", module.__name__, name)
            self._claim(key, name, module)
            piece.refs.append((node, key, spelled))
            self._visit(key, (module, name))
            return
        self.import_lines.add(_import_line(value, name))

    def _add_members(self) -> None:
        """The Config and Dataset members the copied code reads (hand_loss, with_ones ...).

        Added until none is new.
        """
        if self.short:
            # the specialiser writes them by their values, or lib's method body where it is called
            return
        done: set[tuple] = set()
        while True:
            todo = [
                (cls, attr)
                for cls, attrs in ((Config, self.cfg_attrs), (Dataset, self.data_attrs))
                for attr in sorted(attrs)
                if (cls, attr) not in done and _member(cls, attr) is not None
            ]
            if not todo:
                return
            for cls, attr in todo:
                done.add((cls, attr))
                func = _member(cls, attr)
                piece = _Piece(
                    sys.modules[cls.__module__],
                    attr,
                    textwrap.dedent(inspect.getsource(func)),
                    "    ",
                )
                self._scan(piece)
                self.members[cls].append(piece)

    # -- output --

    def imports(self) -> str:
        lines = sorted(
            self.import_lines | {"import json", "import math", "from types import SimpleNamespace"}
        )
        for line in lines:
            top = line.split()[1].split(".")[0]
            if top not in sys.stdlib_module_names and top not in _THIRD_PARTY:
                raise ValueError(
                    f"to_script: the loops need {top!r}, which is neither numpy, torch nor standard"
                )
        return _import_block(lines)

    def standins(self, init_how: str) -> list[str]:
        parts = []
        for cls, doc in _STANDIN_CLASSES.items():
            body = "\n\n".join(textwrap.indent(self._emit(p), p.indent) for p in self.members[cls])
            parts.append(
                f'class {cls.__name__}(SimpleNamespace):\n    """{doc}"""'
                + (f"\n\n{body}" if body else "")
            )
        for func in self.used_standins:
            if func in _STANDIN_FUNCTIONS:
                # the real def line: same name, same arguments
                signature = inspect.getsource(func).split("\n", 1)[0]
                parts.append(f"{signature}\n    " + _STANDIN_FUNCTIONS[func].format(how=init_how))
        return parts

    def pieces(self) -> list[str]:
        return [self._emit(self.found[key], key) for key in self.order]

    def _emit(self, piece: _Piece, key: tuple | None = None) -> str:
        """The piece's source with every reference spelled as the script names it."""
        lines = [line.encode() for line in piece.text.split("\n")]
        edits = [
            (n.lineno, n.col_offset, n.end_col_offset, self.names[k])
            for n, k, spelled in piece.refs
        ]
        edits = [e for e, (_, _, spelled) in zip(edits, piece.refs, strict=True) if e[3] != spelled]
        for lineno, start, end, new in sorted(edits, reverse=True):
            line = lines[lineno - 1]
            lines[lineno - 1] = line[:start] + new.encode() + line[end:]
        text = "\n".join(line.decode() for line in lines).strip("\n")
        if key is not None and key[0] == "def" and self.names[key] != piece.name:
            text = re.sub(
                rf"^((?:async\s+)?(?:def|class)\s+){piece.name}\b",
                rf"\g<1>{self.names[key]}",
                text,
                count=1,
                flags=re.M,
            )
        return text


def _annotations(tree: ast.AST) -> list[ast.AST]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return found


def _is_lib_module(value) -> bool:
    return isinstance(value, ModuleType) and (
        value.__name__ == _LIB or value.__name__.startswith(f"{_LIB}.")
    )


def _defined_in_lib(value) -> bool:
    return (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__.startswith(
        f"{_LIB}."
    )


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _member(cls: type, attr: str):
    """The function behind a public method or property of cls, or None."""
    value = cls.__dict__.get(attr)
    if isinstance(value, property):
        return value.fget
    return value if inspect.isfunction(value) and not attr.startswith("_") else None


def _assigned_in(module: ModuleType, name: str) -> bool:
    try:
        _assignment_source(module, name)
    except ValueError:
        return False
    return True


def _assignment_source(module: ModuleType, name: str) -> str:
    """The lines of the top-level statement that assigns name in module."""
    source = inspect.getsource(module)
    for targets, first, last in _top_level_assignments(source):
        if name in targets:
            if len(targets) != 1:
                raise ValueError(
                    f"to_script: {module.__name__}.{name} is assigned with others; "
                    "cannot copy it alone"
                )
            return "\n".join(source.split("\n")[first - 1 : last])
    raise ValueError(f"to_script: cannot find where {module.__name__}.{name} is assigned")


@functools.lru_cache(maxsize=64)
def _top_level_assignments(source: str) -> tuple[tuple[tuple[str | None, ...], int, int], ...]:
    """Each top-level assignment of a module's source: (its targets' names, None for a target
    that is no name; first line; last line). Parsed once per text."""
    found = []
    for node in parse(source).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        if targets:
            names = tuple(t.id if isinstance(t, ast.Name) else None for t in targets)
            found.append((names, node.lineno, node.end_lineno))
    return tuple(found)


def _import_line(value, name: str) -> str:
    """How the script imports an outside module or object under the name lib's code uses."""
    if isinstance(value, ModuleType):
        package, _, last = value.__name__.rpartition(".")
        if last == name:
            return f"from {package} import {name}" if package else f"import {name}"
        return f"import {value.__name__} as {name}"
    # Some standard types say they live in builtins but are imported from elsewhere
    # (types.MappingProxyType).
    for module in (getattr(value, "__module__", None), "types", "collections.abc", "typing"):
        if module and getattr(importlib.import_module(module), name, None) is value:
            return f"from {module} import {name}"
    raise ValueError(f"to_script: cannot tell where {name!r} comes from to import it in the script")


def _config_dict(cfg: Config) -> dict:
    values = dataclasses.asdict(cfg)
    values["init"] = values["init"] if isinstance(values["init"], str) else list(values["init"])
    return values


def _data_dict(data: Dataset) -> dict:
    return {
        "name": data.name,
        "samples": data.m,
        "features": data.n,
        "feature_names": list(data.feature_names),
        "true_weights": None if data.true_weights is None else list(data.true_weights),
        "source": getattr(data, "source", None),
    }


def _finite_or_none(values):
    """Numbers as JSON-ready Python floats (nested lists for arrays), None for NaN and inf."""
    if isinstance(values, np.ndarray):
        return [_finite_or_none(v) for v in values]
    value = float(values)
    return value if math.isfinite(value) else None


def _header(data: Dataset, cfg: Config, csv_name: str | None) -> str:
    # The file name is the learner's: inside the docstring it goes through _one_line, which cannot
    # close it.
    where = (
        f"read from {_one_line(repr(csv_name))}, which must sit next to this script"
        if csv_name
        else "embedded below"
    )
    return (
        '"""Rerun of a training-loop-twins run: the hand-written numpy loop and the torch loop, '
        "in lockstep.\n"
        "\n"
        "Needs only numpy and torch: python this_file.py\n"
        f"Data: {_one_line(data.name)}, {data.m:,} samples x {data.n} features, {where}.\n"
        f"{_one_line(_config_call(cfg))}\n"
        f"{_last_line(cfg)}\n"
        '"""'
    )


def _last_line(cfg: Config) -> str:
    """The script's docstring on its last printed line."""
    if cfg.val_fraction == 0:
        return (
            'The last printed line is JSON {"manual": [...], "torch": [...]}: '
            "each loop's final weights."
        )
    return (
        'The last printed line is JSON {"manual": [...], "torch": [...], "val_loss": '
        '{"manual": [...], "torch": [...]}}:\n'
        "each loop's final weights, and its loss on the held-out rows after every "
        f"{cfg.eval_interval:,} steps."
    )


def _one_line(text: str) -> str:
    # The name and fields go inside a docstring: keep them on one line and unable to close it.
    return " ".join(str(text).split()).replace("\\", "/").replace('"""', "'''")


def _config_call(cfg: Config) -> str:
    values = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        value = dict(value) if isinstance(value, dict) else value
        text = repr(value)
        # every field is a plain literal; refuse to write a wrong one
        if ast.literal_eval(text) != value:
            raise ValueError(f"to_script: Config.{f.name} = {text} cannot be written into a script")
        values.append(f"{f.name}={text}")
    return f"Config({', '.join(values)})"


def _init_how(cfg: Config) -> str:
    if isinstance(cfg.init, str):
        return f"init={cfg.init!r}" + (f", seed {cfg.seed}" if cfg.init == "normal" else "")
    return "init given as numbers"


def _settings(data: Dataset, cfg: Config, init: np.ndarray) -> str:
    return "\n".join(
        [
            "# ---- This run: its Config, its initial weights and its data ----",
            f"CONFIG = {_config_call(cfg)}",
            f"WEIGHT_NAMES = {weight_names(data, cfg)!r}",
            f"INIT = np.array({_float_list(init)})  # lib.initial_weights: {_init_how(cfg)}",
        ]
    )


def _float_list(values: np.ndarray) -> str:
    # repr of a Python float round-trips exactly; inf and nan never get here (Dataset and Config
    # refuse them).
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def _embedded_data(data: Dataset) -> str:
    head = f"# The data: {_one_line(data.name)} ({data.m:,} x {data.n})."
    names = (
        f"DATA = Dataset(X=X, y=y, feature_names={data.feature_names!r}, "
        f"name={_one_line(data.name)!r})"
    )
    if data.m * (data.n + 1) <= MAX_READABLE:
        rows = ",\n".join("    " + _float_list(row) for row in data.X)
        return f"{head}\nX = np.array([\n{rows},\n])\ny = np.array({_float_list(data.y)})\n{names}"
    # Too many numbers to read anyway: the exact float64 bytes, little-endian, base64-encoded.
    x64 = base64.b64encode(data.X.astype("<f8").tobytes()).decode("ascii")
    y64 = base64.b64encode(data.y.astype("<f8").tobytes()).decode("ascii")
    return (
        f"{head} The exact float64 values, little-endian, base64-encoded.\n"
        f'X = np.frombuffer(base64.b64decode("{x64}"), dtype="<f8")'
        f".reshape({data.m}, {data.n}).copy()\n"
        f'y = np.frombuffer(base64.b64decode("{y64}"), dtype="<f8").copy()\n'
        f"{names}"
    )


# lib.datasets' seeded generators, by the first word of the names they give their data sets
_GENERATORS = ("linear", "classic", "correlated", "blobs", "moons")


@functools.lru_cache(maxsize=2)  # the Compare page asks, then to_script: the same Dataset
def regenerated_data(data: Dataset) -> str | None:
    """The short script's data part when data is what one of lib.datasets' seeded generators
    makes of the arguments its name records, bit for bit: the generator's own source (its
    argument checks left out, and returning X, y), its call, and a check of what the call made
    against the digest of data's arrays. None otherwise (the data is then written into the script).
    """
    from . import datasets

    word = data.name.split(" ", 1)[0]
    if word not in _GENERATORS:
        return None
    func = getattr(datasets, word)
    params = inspect.signature(func).parameters
    kwargs = {}
    for key, text in re.findall(r"\b(\w+)=([^,()\s]+)", data.name):
        if key in params:
            try:
                kwargs[key] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return None
    code = _generator_source(func)
    if code is None:
        return None
    made: dict = {"np": np}
    try:
        exec(compile_tree(parse(code), "<generator>"), made)  # lib's own source
        X, y = made[word](**kwargs)
    except Exception:  # the name's arguments are not this generator's: write the data in
        return None
    if _digest(X, y) != _digest(data.X, data.y) or np.shape(X) != data.X.shape:
        return None
    call = f"{word}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    return (
        f"# The data: lib.datasets.{call}, made again by lib's generator (its argument checks\n"
        "# left out: they passed), then checked against the run's own arrays, bit for bit.\n"
        f"{_short_docstrings(code).strip()}\n\n\n"
        f"X, y = {call}\n"
        f'if hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()[:16] != "{_digest(X, y)}":\n'
        '    print("note: this numpy made other numbers than the run had; the results will differ '
        'too")'
    )


def _digest(X: np.ndarray, y: np.ndarray) -> str:
    """The first 16 hex digits of the sha256 of X's and y's bytes, as the script computes it."""
    return hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()[:16]


def _generator_source(func) -> str | None:
    """A generator's source less its _check lines, returning the (X, y) it gives its Dataset."""
    text = textwrap.dedent(inspect.getsource(func))
    src = _Source(text)
    top = src.tree.body[0]
    last = top.body[-1]
    if not (
        isinstance(last, ast.Return)
        and isinstance(last.value, ast.Call)
        and getattr(last.value.func, "id", None) == "Dataset"
        and len(last.value.args) == 2
    ):
        return None
    edits = [
        (*src.stmt_span(s), "")
        for s in top.body
        if isinstance(s, ast.Expr)
        and isinstance(s.value, ast.Call)
        and getattr(s.value.func, "id", None) == "_check"
    ]
    X, y = (src.seg(a) for a in last.value.args)
    edits.append((*src.span(last), f"return {X}, {y}"))
    return _apply(text, edits)


def _csv_data(data: Dataset, csv_name: str, target: str | None) -> str:
    # The script's own lines, up to _WIDTH wide: not held to lib's 100 columns.
    return f'''
# The data: read from a CSV file with a header row, by column name.
CSV_FILE = {csv_name!r}
FEATURES = {list(data.feature_names)!r}
TARGET = {target!r}  # None: the last column that is not a feature
# What the original run had, to say so if this file holds other numbers.
EXPECTED_SHAPE = ({data.m}, {data.n})
EXPECTED_SUMS = ({float(data.X.sum())!r}, {float(data.y.sum())!r})


def read_csv(path: str, features: list[str], target: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The feature columns and the target column of a CSV file with a header row, as float64."""
    import csv
    import sys

    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            header = [name.strip() for name in next(csv.reader(file))]
    except (OSError, StopIteration) as err:
        sys.exit(f"cannot read {{path!r}} ({{err or 'empty file'}}); put the CSV file next to this script")
    if target is None:
        others = [name for name in header if name not in features]
        target = others[-1] if others else None
    missing = [name for name in [*features, target] if name not in header]
    if missing or target is None:
        sys.exit(f"{{path!r}} has no column named {{missing or 'for the target'}}; its columns are {{header}}")
    columns = [header.index(name) for name in features] + [header.index(target)]
    try:
        table = np.loadtxt(
            path, delimiter=",", skiprows=1, usecols=columns, ndmin=2, quotechar='"', encoding="utf-8-sig"
        )
    except ValueError as err:
        sys.exit(f"{{path!r}} holds something that is not a number: {{err}}")
    return table[:, :-1], table[:, -1]


X, y = read_csv(CSV_FILE, FEATURES, TARGET)
if X.shape != EXPECTED_SHAPE or not np.allclose((X.sum(), y.sum()), EXPECTED_SUMS, rtol=1e-9, atol=1e-9):
    print(f"note: {{CSV_FILE}} differs from the data of the original run; the numbers will differ too")
DATA = Dataset(X=X, y=y, feature_names=tuple(FEATURES), name=CSV_FILE)
'''  # noqa: E501


# The script's own lines, up to _WIDTH wide: not held to lib's 100 columns.
_MAIN = '''
# ---- The run: both loops in lockstep, stopped where lib.run stops ----


def main() -> None:
    """Run both loops on the same batches from the same init, then print each loop's final weights."""
    manual, twin, init = LOOPS(DATA, CONFIG)
    steps, w_m, w_t = 0, init, init
VAL_INIT
    with np.errstate(all="ignore"):
        for step in range(CONFIG.iterations):
            loss_m, w_m, g_m = next(manual)
            loss_t, w_t, g_t = next(twin)
            steps = step + 1
VAL_READ
            if ends_run(loss_m, loss_t, w_m, w_t, g_m, g_t):  # lib.run's step rule
                print(f"diverged at step {step}: try a smaller learning rate than {CONFIG.lr:g}")
                break
    # The loops yield their live weight arrays: these are the weights after the last step.
    w_m, w_t = np.asarray(w_m, dtype=np.float64), np.asarray(w_t, dtype=np.float64)
    print(f"{steps:,} steps of {CONFIG.iterations:,}")
    print(f"{'weight':>12} {'manual':>24} {'torch':>24}")
    for name, a, b in zip(WEIGHT_NAMES, w_m, w_t):
        print(f"{name:>12} {float(a)!r:>24} {float(b)!r:>24}")
    diff = np.max(np.abs(w_m - w_t))
    relative = diff / max(1.0, np.max(np.abs(np.concatenate([w_m, w_t]))))
    print(f"largest |manual − torch| after the last step: {diff:.3g} (relative: ÷ max(1, largest |w|): {relative:.3g})")
VAL_PRINT
    print(json.dumps({"manual": w_m.tolist(), "torch": w_t.tolist()VAL_JSON}))


if __name__ == "__main__":
    main()
'''  # noqa: E501


# ---- The short script: lib's source specialised to one Config ----
#
# The functions lib.engine.lockstep.loops reaches are copied as for the long script, then
# rewritten, one kind of rewrite at a time and parsed again after each, until none applies: the
# Config's choices (names, switches, None, the optimizer's keywords) are written where the code
# reads them; an `if` whose test is then known keeps only the branch taken; a function left as one
# `return` of a dispatch goes to its call; whatever is no longer read (parameters, attributes,
# locals, functions, tables) is left out. Every edit replaces a span of the text, so what remains
# is lib's own lines with their comments; numbers keep their names.

# the run's Config and Dataset: in the script, two SimpleNamespace objects
_SPECIALS = ("cfg", "data")
_PURE_BUILTINS = MappingProxyType(
    {"int": int, "float": float, "bool": bool, "len": len, "tuple": tuple, "dict": dict, "str": str}
)
_TYPES = MappingProxyType(
    {"str": str, "int": int, "float": float, "bool": bool, "slice": slice, "tuple": tuple}
)
_PURE_CALLS = (
    "np.arange",
    "np.zeros_like",
    "np.zeros",
    "np.full_like",
    "np.array",
    "tuple",
    "float",
    "int",
    "len",
)
_WIDTH = 120
_FAILS = (TypeError, KeyError, IndexError, ValueError, ZeroDivisionError, AttributeError)


class _Unknown(Exception):
    """The expression's value is not known when the script is written."""


@dataclasses.dataclass(frozen=True)
class _Length:
    """What is known of a local set to np.arange(n): its len()."""

    n: int


def _is_literal(value) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (tuple, list)):
        return all(_is_literal(v) for v in value)
    if isinstance(value, (dict, MappingProxyType)):
        return all(isinstance(k, str) and _is_literal(v) for k, v in value.items())
    return False


def _is_choice(value) -> bool:
    """A value that picks a branch (a name, a switch, None, keywords): written where it is read."""
    if value is None or isinstance(value, (bool, str, dict, MappingProxyType)):
        return _is_literal(value)
    return isinstance(value, tuple) and bool(value) and all(isinstance(v, str) for v in value)


def _literal_text(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # double quotes, as lib's source writes them
    if isinstance(value, (dict, MappingProxyType)):
        return (
            "{"
            + ", ".join(f"{_literal_text(k)}: {_literal_text(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, tuple):
        inner = ", ".join(_literal_text(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_literal_text(v) for v in value) + "]"
    return repr(value)


def _is_display(node) -> bool:
    """A literal written as one: 3, "mse", -1.0, (0.9, 0.999), {} ..."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_is_display(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(
            k is not None and _is_display(k) and _is_display(v)
            for k, v in zip(node.keys, node.values, strict=True)
        )
    return False


def _is_constant_display(node) -> bool:
    """_is_display, without lists and dicts: a value nothing can change after it is made."""
    if isinstance(node, ast.Tuple):
        return all(_is_constant_display(e) for e in node.elts)
    return _is_display(node) and not isinstance(node, (ast.List, ast.Dict))


def _precedence(node) -> int:
    if isinstance(node, ast.UnaryOp):
        return 4 if isinstance(node.op, ast.Not) else 9
    if isinstance(node, ast.BinOp):
        return {
            ast.Pow: 10,
            ast.Mult: 8,
            ast.Div: 8,
            ast.FloorDiv: 8,
            ast.Mod: 8,
            ast.MatMult: 8,
        }.get(type(node.op), 7)
    return {ast.Lambda: 0, ast.IfExp: 1, ast.BoolOp: 2, ast.Compare: 5}.get(type(node), 20)


_OPS = MappingProxyType(
    {
        ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
        ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
        ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b,
        ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
        ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
        ast.Pow: lambda a, b: a**b, ast.Not: lambda a: not a,
        ast.USub: lambda a: -a, ast.UAdd: lambda a: +a,
    }
)  # fmt: skip


def _static(node, known: dict):
    """The value of an expression of literals, known reads and pure builtins.

    Raises _Unknown otherwise.
    """
    if id(node) in known:
        return known[id(node)]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        if any(isinstance(e, ast.Starred) for e in node.elts):
            raise _Unknown
        values = [_static(e, known) for e in node.elts]
        return tuple(values) if isinstance(node, ast.Tuple) else values
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _Unknown
        return {
            _static(k, known): _static(v, known)
            for k, v in zip(node.keys, node.values, strict=True)
        }
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_static(node.operand, known))
    if isinstance(node, ast.BoolOp):
        value = _static(node.values[0], known)
        for nxt in node.values[1:]:
            if (not value) if isinstance(node.op, ast.And) else value:
                return value
            value = _static(nxt, known)
        return value
    if isinstance(node, ast.Compare):
        left = _static(node.left, known)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _static(comparator, known)
            if not _OPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _static(node.left, known), _static(node.right, known)
        if not all(isinstance(v, (int, float)) for v in (left, right)):
            raise _Unknown  # no sequence arithmetic
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.IfExp):
        return _static(node.body if _static(node.test, known) else node.orelse, known)
    if isinstance(node, ast.Subscript):
        container, key = _static(node.value, known), _static(node.slice, known)
        if not isinstance(container, (tuple, list, dict, MappingProxyType)):
            raise _Unknown
        return container[key]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if (
            node.func.id == "isinstance"
            and len(node.args) == 2
            and getattr(node.args[1], "id", None) in _TYPES
        ):
            return isinstance(_static(node.args[0], known), _TYPES[node.args[1].id])
        if node.func.id in _PURE_BUILTINS:
            return _PURE_BUILTINS[node.func.id](*[_static(a, known) for a in node.args])
    raise _Unknown


def _unknowable(nodes: list) -> set[int]:
    """id() of the nodes whose _static value, knowing nothing, is surely _Unknown: they or an
    operand evaluated first are of a kind it cannot evaluate (a name, an attribute ...)."""
    out: set[int] = set()
    for node in reversed(nodes):  # children before their parents
        if isinstance(node, (ast.Tuple, ast.List)):
            first = node.elts
        elif isinstance(node, ast.Dict):
            first = [*node.keys, *node.values]
        elif isinstance(node, ast.UnaryOp):
            first = [node.operand] if type(node.op) in _OPS else [None]
        elif isinstance(node, ast.BinOp):
            first = [node.left, node.right] if type(node.op) in _OPS else [None]
        # these short-circuit: only what is surely evaluated counts
        elif isinstance(node, ast.BoolOp):
            first = node.values[:1]
        elif isinstance(node, ast.Compare):
            first = [node.left, node.comparators[0]]
        elif isinstance(node, ast.IfExp):
            first = [node.test]
        elif isinstance(node, ast.Subscript):
            first = [node.value, node.slice]
        elif isinstance(node, ast.Call):
            first = _call_operands(node)
        elif isinstance(node, ast.Constant) or not isinstance(node, ast.expr):
            continue
        else:
            first = [None]
        if any(n is None or id(n) in out for n in first):
            out.add(id(node))
    return out


def _block_literals(nodes: list) -> dict[int, object]:
    """id() -> value of the expressions among nodes (a block's, parents first) that _fold_literals
    writes as their value."""
    unknowable, found = _unknowable(nodes), {}
    for node in nodes:
        if (
            isinstance(node, ast.expr)
            and id(node) not in unknowable
            and not _is_display(node)
            and isinstance(getattr(node, "ctx", None), (ast.Load, type(None)))
        ):
            try:
                value = _value_of(node, {})
            except _Unknown:
                continue
            if _is_literal(value):
                found[id(node)] = value
    return found


def _call_operands(call: ast.Call) -> list:
    """What _static evaluates of a call (None: it cannot evaluate the call)."""
    name = getattr(call.func, "id", None) if isinstance(call.func, ast.Name) else None
    if call.keywords or name is None:
        return [None]
    if name == "isinstance" and len(call.args) == 2 and getattr(call.args[1], "id", None) in _TYPES:
        return call.args[:1]
    return list(call.args) if name in _PURE_BUILTINS else [None]


def _value_of(node, known: dict):
    """_static, with any failure to evaluate as _Unknown."""
    try:
        return _static(node, known)
    except _FAILS:
        raise _Unknown from None


@dataclasses.dataclass(eq=False)
class _Block:
    """Whole lines of the script that hold whole top-level statements, parsed on their own: a
    rewrite reparses only the blocks it touches (their nodes are what a parse of the whole text
    would give, lines counted from the script's start)."""

    text: str
    first: int  # its first line in the script (1-based)
    body: list  # its top-level statements
    levels: list  # the nodes below them, level by level, as a breadth-first walk meets them
    parent: dict  # id(node) -> its parent, below the top-level statements
    placed: list  # the nodes that have a line number
    functions: tuple  # id() of every function in it
    # what _Source.per_function worked out of its functions: (kind, id(function)) -> value
    memo: dict = dataclasses.field(default_factory=dict)
    literals: dict | None = None  # _block_literals, once asked for

    @property
    def n_lines(self) -> int:
        return len(_lines_of(self.text))

    def move(self, first: int) -> None:
        """Renumber its lines to start at first (the text above it grew or shrank)."""
        shift, self.first = first - self.first, first
        if shift:
            for node in self.placed:
                node.lineno += shift
                node.end_lineno += shift


def _blocks(text: str, body: list, first: int) -> list[_Block]:
    """text (whole lines from line `first` of the script, parsed as body) cut into blocks: a cut
    before each top-level statement that starts on a line of its own."""
    lines = _lines_of(text)
    groups: list[list] = []
    for stmt in body:
        if groups and _start_line(stmt) <= groups[-1][-1].end_lineno:
            groups[-1].append(stmt)  # `a = 1; b = 2`: one line, one block
        else:
            groups.append([stmt])
    cuts = [first] + [_start_line(g[0]) for g in groups[1:]] + [first + len(lines)]
    if not groups:
        groups = [[]]
    blocks = []
    for group, start, end in zip(groups, cuts[:-1], cuts[1:], strict=True):
        block_text = "".join(lines[start - first : end - first])
        blocks.append(_index_block(block_text, start, group))
    return blocks


def _lines_of(text: str) -> list[str]:
    """The text's lines as the parser counts them (at each newline), with their ends."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _start_line(stmt) -> int:
    return stmt.decorator_list[0].lineno if getattr(stmt, "decorator_list", None) else stmt.lineno


def _index_block(text: str, first: int, body: list) -> _Block:
    """The block's nodes level by level with their parents (as _Source's walk of the whole tree
    meets them), the ones with line numbers, and its functions."""
    levels, parent, level = [], {}, list(body)
    while level:
        levels.append(level)
        below = []
        for node in level:
            for field in node._fields:
                value = getattr(node, field, None)
                for child in value if isinstance(value, list) else (value,):
                    if isinstance(child, ast.AST):
                        parent[id(child)] = node
                        below.append(child)
        level = below
    nodes = [n for level in levels for n in level]
    placed = [n for n in nodes if hasattr(n, "lineno")]
    functions = tuple(
        id(n) for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    )
    return _Block(text, first, body, levels, parent, placed, functions)


def _scope(func) -> tuple[dict[str, list], set[str]]:
    """The reads (name -> nodes, as _loads) and bound names (as _stores) within func."""
    loads: dict[str, list] = {}
    stores: set[str] = set()
    own = _params(func) + [a for a in (func.args.vararg, func.args.kwarg) if a]
    for node in ast.walk(func):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loads.setdefault(node.id, []).append(node)
            else:
                stores.add(node.id)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            loads.setdefault(node.target.id, []).append(node.target)
        elif isinstance(node, ast.arg) and not any(node is p for p in own):
            stores.add(node.arg)  # a nested function's or lambda's parameter
    return loads, stores


def _store_index(func) -> dict[str, list]:
    """name -> where func binds it, in the order _stores finds them."""
    found: dict[str, list] = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            found.setdefault(node.id, []).append(node)
        elif isinstance(node, ast.arg):
            found.setdefault(node.arg, []).append(node)
    return found


def _counters(func) -> frozenset[str]:
    """The names `for name, ... in enumerate(...)` sets in func."""
    return frozenset(
        loop.target.elts[0].id
        for loop in ast.walk(func)
        if isinstance(loop, ast.For)
        and isinstance(loop.target, ast.Tuple)
        and loop.target.elts
        and isinstance(loop.target.elts[0], ast.Name)
        and getattr(getattr(loop.iter, "func", None), "id", None) == "enumerate"
    )


def _parsed_blocks(text: str, first: int) -> list[_Block]:
    """text parsed on its own, as lines from line `first` of the script, cut into blocks."""
    tree = parse(text)
    blocks = _blocks(text, tree.body, 1)
    for block in blocks:
        block.move(block.first + first - 1)
    return blocks


class _Source:
    """The script being specialised: its text, its parse, and where each node is in the text."""

    def __init__(self, text: str, blocks: list[_Block] | None = None) -> None:
        if blocks is None:
            tree = parse(text)
            blocks = _blocks(text, tree.body, 1)
        else:
            tree = ast.Module(body=[s for b in blocks for s in b.body], type_ignores=[])
        self.text, self.tree, self.blocks = text, tree, blocks
        self.lines = text.splitlines(keepends=True)
        self.starts = [0, *itertools.accumulate(map(len, self.lines))]
        self.parent: dict[int, ast.AST] = {}
        for block in blocks:
            self.parent.update(block.parent)
        self.parent.update((id(stmt), tree) for stmt in tree.body)
        # every node, parents before children: the order of a breadth-first walk of the tree
        self.nodes = [tree]
        for depth in range(max((len(b.levels) for b in blocks), default=0)):
            for block in blocks:
                if depth < len(block.levels):
                    self.nodes += block.levels[depth]
        self.name_loads: dict[str, list[ast.Name]] = {}
        for node in self.nodes:
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                self.name_loads.setdefault(node.id, []).append(node)
        self._memos = {f: b.memo for b in blocks for f in b.functions}
        self._literals: dict[int, object] | None = None

    def edited(self, edits: list[tuple[int, int, str]]) -> _Source:
        """The source after the edits (as _apply makes them): only the blocks they touch are
        parsed again, the others keep their nodes, renumbered."""
        starts = [0, *itertools.accumulate(len(b.text) for b in self.blocks)]
        touched = set()
        for start, end, _ in edits:
            first = min(max(bisect.bisect_right(starts, start) - 1, 0), len(self.blocks) - 1)
            touched.update(range(first, max(bisect.bisect_left(starts, end) - 1, first) + 1))
        blocks, i = [], 0
        while i < len(self.blocks):
            line = blocks[-1].first + blocks[-1].n_lines if blocks else 1
            if i not in touched:
                self.blocks[i].move(line)
                blocks.append(self.blocks[i])
                i += 1
                continue
            j = i
            while j + 1 in touched:
                j += 1
            low, high = starts[i], starts[j + 1]
            inside = [
                (s - low, e - low, t)
                for s, e, t in edits
                if low <= s and (s < high or j == len(self.blocks) - 1)
            ]
            try:
                blocks += _parsed_blocks(_apply(self.text[low:high], inside), line)
            except SyntaxError:  # as the whole text would say it
                return _Source(_apply(self.text, edits))
            i = j + 1
        return _Source("".join(b.text for b in blocks), blocks)

    def literals(self) -> dict[int, object]:
        """id() -> value of every expression that is not written as a literal but has a literal
        value, knowing nothing of the run (1 + 1, len((a, b)) ...)."""
        if self._literals is None:
            self._literals = {}
            for block in self.blocks:
                if block.literals is None:
                    block.literals = _block_literals([n for level in block.levels for n in level])
                self._literals.update(block.literals)
        return self._literals

    def per_function(self, func, compute):
        """compute(func), a value that only func's own lines decide, worked out once while they
        stay as they are (kept with their block)."""
        memo = self._memos.setdefault(id(func), {})
        key = (compute.__qualname__, id(func))
        if key not in memo:
            memo[key] = compute(func)
        return memo[key]

    def scope(self, func) -> tuple[dict[str, list], set[str]]:
        """The reads (name -> nodes, as _loads) and bound names (as _stores) within func, cached."""
        return self.per_function(func, _scope)

    def loads(self, func, name: str) -> list:
        return self.scope(func)[0].get(name, [])

    def stores(self, func, name: str) -> list:
        """_stores(func, name), from an index of func made once."""
        return self.per_function(func, _store_index).get(name, [])

    def pos(self, lineno: int, col: int) -> int:
        return self.starts[lineno - 1] + len(self.lines[lineno - 1].encode()[:col].decode())

    def span(self, node) -> tuple[int, int]:
        return self.pos(node.lineno, node.col_offset), self.pos(
            node.end_lineno, node.end_col_offset
        )

    def seg(self, node) -> str:
        if not hasattr(node, "lineno"):  # a tuple of targets made up by _pairs
            return ", ".join(self.seg(e) for e in node.elts)
        start, end = self.span(node)
        return self.text[start:end]

    def indent(self, lineno: int) -> str:
        line = self.lines[lineno - 1]
        return line[: len(line) - len(line.lstrip())]

    def first_line(self, stmt) -> int:
        """The first line of the statement's leading comments (or its own first line)."""
        lineno = (
            stmt.decorator_list[0].lineno if getattr(stmt, "decorator_list", None) else stmt.lineno
        ) - 1
        while lineno > 0 and self.lines[lineno - 1].strip().startswith("#"):
            lineno -= 1
        return lineno + 1

    def stmt_span(self, stmt) -> tuple[int, int]:
        """Whole lines: the statement with its leading comments."""
        return self.starts[self.first_line(stmt) - 1], self.starts[stmt.end_lineno]

    def function_of(self, node):
        while id(node) in self.parent:
            node = self.parent[id(node)]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node
        return None

    def fits(self, new, old, text: str) -> str:
        """new's text, in parentheses where it binds less tightly than the old expression needed."""
        parent = self.parent.get(id(old))
        free = (
            ast.Call,
            ast.keyword,
            ast.Tuple,
            ast.List,
            ast.Assign,
            ast.Return,
            ast.Expr,
            ast.Dict,
            ast.Yield,
        )
        if isinstance(parent, free) and not (isinstance(parent, ast.Call) and parent.func is old):
            return text
        return f"({text})" if _precedence(new) < _precedence(old) else text


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    out, at = [], 0
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1])):
        if start < at:
            # _accept keeps this from happening
            raise ValueError("to_script: two rewrites of one span")
        out += [text[at:start], new]
        at = end
    return "".join(out) + text[at:]


def _accept(groups: list) -> list[tuple[int, int, str]]:
    """The edits of every group that overlaps no group taken before it.

    A group is all or nothing.
    """
    taken: list[tuple[int, int, str]] = []
    for group in groups:
        group = [group] if isinstance(group, tuple) else group
        spans = sorted((s, e) for s, e, _ in group)
        if any(a[1] > b[0] or a[0] == b[0] for a, b in itertools.pairwise(spans)):
            continue
        if any((s < e2 and s2 < e) or s == s2 for s, e, _ in group for s2, e2, _ in taken):
            continue
        taken += group
    return taken


def _segment_with(src: _Source, node, edits: list) -> str:
    """The text of node with the edits inside it applied."""
    start, end = src.span(node)
    return _apply(src.text[start:end], [(a - start, b - start, t) for a, b, t in edits])


def _stores(tree, name: str) -> list:
    """Where name is bound in tree, parameters of nested functions and lambdas included."""
    found = []
    for node in ast.walk(tree):
        bound = (
            isinstance(node, ast.Name) and node.id == name and not isinstance(node.ctx, ast.Load)
        )
        if bound or (isinstance(node, ast.arg) and node.arg == name):
            found.append(node)
    return found


def _loads(tree, name: str) -> list:
    """Where name is read in tree, the target of `name += ...` included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
            found.append(node)
        elif (
            isinstance(node, ast.AugAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
        ):
            found.append(node.target)
    return found


def _params(func) -> list[ast.arg]:
    a = func.args
    return [*a.posonlyargs, *a.args, *a.kwonlyargs]


def _defaults(func) -> dict[str, ast.AST]:
    a = func.args
    positional = [*a.posonlyargs, *a.args]
    out = {
        p.arg: d
        for p, d in zip(positional[len(positional) - len(a.defaults) :], a.defaults, strict=True)
    }
    out.update(
        {p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None}
    )
    return out


def _bind(func, call, skip: int) -> dict[str, ast.AST] | None:
    """Each parameter's argument node at this call (or its default).

    None if the call uses * or **.
    """
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        return None
    if func.args.vararg or func.args.kwarg:
        return None
    positional = [p.arg for p in [*func.args.posonlyargs, *func.args.args][skip:]]
    if len(call.args) > len(positional):
        return None
    bound = dict(zip(positional, call.args, strict=False))
    bound.update({k.arg: k.value for k in call.keywords})
    for name, default in _defaults(func).items():
        bound.setdefault(name, default)
    return bound


_P, _L, _M = "argument", "local", "either"  # what a read of a parameter may see


def _join(a: str | None, b: str | None) -> str | None:
    if a is None or a == b:
        return b
    return a if b is None else _M


# Statements _reaching does not follow a name through, and expressions with a scope of their own.
_OPAQUE = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Try, ast.Match, ast.Global)
_NESTED = (ast.Lambda, ast.GeneratorExp, ast.ListComp, ast.DictComp, ast.SetComp)


def _reaching(func, name: str, src: _Source | None = None) -> dict[int, str] | None:
    """For each read of parameter `name` in func: does it see the argument (_P), a later value, or
    either? None where the function is beyond this small analysis."""
    seen: dict[int, str] = {}
    if src is not None:
        loads, stores = src.scope(func)
        if name not in stores:
            return {id(n): _P for n in loads.get(name, [])}
    body = ast.Module(body=func.body, type_ignores=[])
    if not _stores(body, name):
        return {id(n): _P for n in _loads(func, name)}

    def reads(node, state):
        for n in _loads(node, name):
            seen[id(n)] = _join(seen.get(id(n)), state)

    def walk(stmts, state):
        for s in stmts:
            if isinstance(s, _OPAQUE):
                if _loads(s, name) or _stores(s, name):
                    raise _Unknown
            elif isinstance(s, ast.If):
                reads(s.test, state)
                state = _join(walk(s.body, state), walk(s.orelse, state))
            elif isinstance(s, (ast.For, ast.While)):
                reads(s.iter if isinstance(s, ast.For) else s.test, state)
                rebinds = isinstance(s, ast.For) and bool(_stores(s.target, name))
                out = walk(s.body, _L if rebinds else state)
                out = walk(s.body, _L if rebinds else _join(state, out))  # the second time round
                state = _join(state, walk(s.orelse, out))
            elif isinstance(s, ast.With):
                for item in s.items:
                    reads(item, state)
                if any(_stores(item, name) for item in s.items):
                    state = _L
                state = walk(s.body, state)
            else:
                for scope in ast.walk(s):
                    if isinstance(scope, _NESTED) and (_loads(scope, name) or _stores(scope, name)):
                        raise _Unknown  # read later, or a name of its own
                reads(s, state)
                if _stores(s, name):
                    state = _L
        return state

    try:
        walk(func.body, _P)
    except _Unknown:
        return None
    return seen


def _reads_before_stores(stmt, name: str) -> list:
    """The reads of name in a statement of a function's body that see the value it had before.

    All of them where the statement does not set it; else those evaluated first (an assignment's
    value, an if's test), none in a loop, a with or a try that sets it.
    """
    if not _stores(stmt, name):
        region = stmt
    elif isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and stmt.value is not None:
        region = stmt.value
    elif isinstance(stmt, ast.If):
        region = stmt.test
    else:
        return []
    # a function, lambda or generator defined here may read it later, when it is something else
    late = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.GeneratorExp, ast.ClassDef)
    later = {
        id(n) for scope in ast.walk(region) if isinstance(scope, late) for n in ast.walk(scope)
    }
    return [n for n in _loads(region, name) if id(n) not in later]


# a comment that heads a few lines, as "# Update." does: one short sentence
_HEADING = r"\s*# [A-Z][\w ,'-]{0,40}\.\n?$"  # a phase heading line (re caches the compiled form)


# layers without parameters: making one draws no random numbers and changes nothing else
_NO_EFFECT_CALLS = ("nn.Tanh", "nn.ReLU", "nn.Sigmoid", "nn.Identity")


def _no_effect(node) -> bool:
    """A constant, or a parameterless layer made from constants (nn.Tanh())."""
    if _is_constant_display(node):
        return True
    return (
        isinstance(node, ast.Call)
        and ast.unparse(node.func) in _NO_EFFECT_CALLS
        and all(_is_constant_display(a) for a in node.args)
        and all(_is_constant_display(k.value) for k in node.keywords)
    )


def _is_bool(node) -> bool:
    """An expression whose value is True or False."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, bool)
    if isinstance(node, ast.Compare) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    ):
        return True
    if isinstance(node, ast.BoolOp):
        return all(map(_is_bool, node.values))
    return isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("isinstance", "bool")


def _harmless(node) -> bool:
    """An expression whose evaluation does nothing but give its value (no call but len())."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call):
            if getattr(inner.func, "id", None) not in ("len", "isinstance"):
                return False
        elif isinstance(inner, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom, *_NESTED)):
            return False
    return True


def _pairs(target, value) -> list:
    """(target, value) pairs of an assignment.

    a, b = x, y pairs up; a, b, c = *f(), z pairs (a, b) with *f().
    """
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
        starred = [i for i, e in enumerate(value.elts) if isinstance(e, ast.Starred)]
        if len(target.elts) == len(value.elts) and not starred:
            return list(zip(target.elts, value.elts, strict=True))
        if starred == [0] and len(target.elts) >= len(value.elts):
            extra = len(target.elts) - len(value.elts)
            head = ast.Tuple(elts=target.elts[: extra + 1], ctx=ast.Store())
            return [
                (head, value.elts[0]),
                *zip(target.elts[extra + 1 :], value.elts[1:], strict=True),
            ]
    return [(target, value)]


def _plain(node) -> bool:
    """A value whose evaluation does nothing: a literal, a name, an attribute of one."""
    if _is_display(node) or isinstance(node, ast.Name):
        return True
    return isinstance(node, (ast.Attribute, ast.Starred)) and _plain(node.value)


def _pure(node) -> bool:
    """_plain, or tuples, arithmetic and array constructors of such."""
    if _plain(node):
        return True
    if isinstance(node, ast.Tuple):
        return all(_pure(e) for e in node.elts)
    if isinstance(node, ast.Call) and ast.unparse(node.func) in _PURE_CALLS:
        return all(_pure(a) for a in node.args) and all(_pure(k.value) for k in node.keywords)
    return isinstance(node, ast.BinOp) and _pure(node.left) and _pure(node.right)


def _ends(stmt) -> bool:
    """Nothing after this statement in its block runs."""
    if isinstance(stmt, (ast.Return, ast.Raise)):
        return True
    if (
        isinstance(stmt, ast.While)
        and isinstance(stmt.test, ast.Constant)
        and stmt.test.value is True
    ):
        return not any(isinstance(n, ast.Break) for n in ast.walk(stmt))
    return False


def _is_docstring(stmt, owner) -> bool:
    body = getattr(owner, "body", None)
    return (
        isinstance(body, list)
        and bool(body)
        and body[0] is stmt
        and isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _mapping_entries(node) -> dict | None:
    """A constant table, {key: value} or MappingProxyType({...}), as key -> value node."""
    if not isinstance(node, ast.Assign):
        return None
    value = node.value
    if (
        isinstance(value, ast.Call)
        and ast.unparse(value.func) == "MappingProxyType"
        and len(value.args) == 1
    ):
        value = value.args[0]
    if not isinstance(value, ast.Dict) or any(not isinstance(k, ast.Constant) for k in value.keys):
        return None
    return {k.value: v for k, v in zip(value.keys, value.values, strict=True)}


def _trailing_comment(line: str) -> str:
    """The `# ...` at the end of a line of code, if any."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if token.type == tokenize.COMMENT:
                return token.string
    except (tokenize.TokenError, SyntaxError):
        pass
    return ""


def _method(cls, name: str):
    return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


class _Specialiser:
    """Rewrites the script's text for one Config and Dataset until no rewrite applies."""

    def __init__(self, text: str, cfg: Config, data: Dataset, protected: tuple[str, ...]) -> None:
        self.text, self.cfg, self.data, self.protected = text, cfg, data, protected
        # The run's model layout, a third object the code reads choices from, written as its
        # constructor.
        self.layout = cfg.layout(data.n)
        fields = dataclasses.fields(self.layout)
        self.layout_text = (
            f"{type(self.layout).__name__}("
            + ", ".join(f"{f.name}={_literal_text(getattr(self.layout, f.name))}" for f in fields)
            + ")"
        )
        self.specialised: set[str] = set()  # top-level definitions changed so far
        self.rules = [
            self._fold_tests,
            self._fold_boolops,
            self._dead_code,
            self._substitute,
            self._fold_literals,
            self._drop_counters,
            self._expand_starred,
            self._propagate_literals,
            self._inline_locals,
            self._inline,
            self._drop_params,
            self._drop_attributes,
            self._drop_locals,
            self._drop_definitions,
            self._drop_methods,
        ]

    def run(self) -> str:
        self.src = _Source(self.text)
        for _ in range(5000):
            self._index()
            for rule in self.rules:
                edits = _accept(rule())
                if edits:
                    for start, _end, _new in edits:
                        self.specialised.update(n for s, e, n in self.top_spans if s <= start < e)
                    self.src = self.src.edited(edits)
                    self.text = self.src.text
                    break
            else:
                return self.text
        # a bug in the rewrites
        raise ValueError("to_script: specialising the script did not settle")

    # -- what the text holds --

    def _index(self) -> None:
        src = self.src
        self.defs: dict[str, ast.AST] = {}
        for node in src.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                self.defs[node.name] = node
            elif (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                self.defs[node.targets[0].id] = node
        self.classes = {n.name: n for n in self.defs.values() if isinstance(n, ast.ClassDef)}
        self.functions = [
            n for n in src.nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        self.top_spans = [
            (*src.stmt_span(n), name)
            for name, n in self.defs.items()
            if isinstance(n, (ast.FunctionDef, ast.ClassDef))
        ]
        self.locals = {id(f): src.scope(f)[1] | {p.arg for p in _params(f)} for f in self.functions}
        self.call_cache: dict[str, list | None] = {}
        self.returned_cache: dict[str, object] = {}
        # functions with a global or nonlocal statement: _local_facts leaves them alone
        self.scoped = {
            id(src.function_of(n)) for n in src.nodes if isinstance(n, (ast.Global, ast.Nonlocal))
        }
        self.known: dict[int, object] = {}
        self.known = self._facts()

    @staticmethod
    def _local_names(func) -> set[str]:
        names = {p.arg for p in _params(func)}
        names.update(
            n.id
            for n in ast.walk(func)
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)
        )
        return names

    def _special_of(self, node):
        """The run's cfg, data or layout object, where this expression is a Name meaning it.

        Else None.
        """
        if not isinstance(node, ast.Name):
            return None
        value = self.known.get(id(node))
        if value is self.layout:
            return value
        if node.id not in _SPECIALS:
            return None
        if value is self.cfg or value is self.data:
            return value
        func = self.src.function_of(node)
        if func is None or node.id not in self.locals[id(func)]:
            return self.cfg if node.id == "cfg" else self.data
        return None

    def _calls_of(self, name: str) -> list | None:
        """Every call of the top-level function or class `name`, as (function called, call, 1 if
        self is skipped); None if it is used any other way too, since then not every caller is
        known."""
        if name not in self.call_cache:
            self.call_cache[name] = self._find_calls(name)
        return self.call_cache[name]

    def _find_calls(self, name: str) -> list | None:
        target = self.defs.get(name)
        if target is None or name in self.protected or isinstance(target, ast.Assign):
            return None
        sites = []
        for node in self.src.name_loads.get(name, []):
            func = self.src.function_of(node)
            if func is not None and name in self.locals[id(func)]:
                continue  # a local of the same name
            parent = self.src.parent[id(node)]
            if isinstance(parent, ast.Call) and parent.func is node:
                sites.append(parent)
            elif not (isinstance(parent, ast.ClassDef) and any(b is node for b in parent.bases)):
                return None
        if isinstance(target, ast.FunctionDef):
            return [(target, call, 0) for call in sites]
        init = _method(target, "__init__")
        if init is None:
            return None
        out = [(init, call, 1) for call in sites]
        # subclasses reach this __init__ through super() or by inheriting it
        for sub in self.classes.values():
            if not any(getattr(b, "id", None) == name for b in sub.bases):
                continue
            own = _method(sub, "__init__")
            if own is None:
                inner = self._calls_of(sub.name)
                if inner is None:
                    return None
                out += [(init, call, 1) for _, call, _ in inner]
                continue
            for node in ast.walk(own):
                f = getattr(node, "func", None)
                init_call = (
                    isinstance(node, ast.Call)
                    and isinstance(f, ast.Attribute)
                    and f.attr == "__init__"
                )
                if init_call and ast.unparse(f.value) == "super()":
                    out.append((init, node, 1))
        return out

    def _arg_value(self, node):
        """The literal (or the run's cfg or data) an argument passes; raises _Unknown otherwise."""
        special = self._special_of(node)
        if special is not None:
            return special
        if isinstance(node, ast.Call) and self.src.seg(node) == self.layout_text:
            return self.layout
        if id(node) in self.known and _is_literal(self.known[id(node)]):
            return self.known[id(node)]  # a parameter of the caller's, known itself
        if isinstance(node, ast.Attribute) and self._special_of(node.value) is not None:
            value = getattr(self._special_of(node.value), node.attr, _Unknown)
        else:
            value = _value_of(node, {})
        if not _is_literal(value):
            raise _Unknown
        return value

    def _facts(self) -> dict[int, object]:
        """The reads whose value is known: parameters that every call passes the same literal (or
        the run's cfg or data), and attributes that __init__ sets once from such."""
        known = self.known  # filled as it goes, callers first (they come after what they call)
        for func in self.functions:
            self._local_facts(func, known)
        for name in reversed(list(self.defs)):
            sites = self._calls_of(name)
            if not sites:
                continue
            func, skip = sites[0][0], sites[0][2]
            values: dict[str, list] = {p.arg: [] for p in _params(func)[skip:]}
            for _f, call, _s in sites:
                bound = _bind(func, call, skip)
                if bound is None:
                    values = {}
                    break
                for param, seen in values.items():
                    try:
                        seen.append(self._arg_value(bound[param]) if param in bound else _Unknown)
                    except _Unknown:
                        seen.append(_Unknown)
            for param, seen in values.items():
                if not _agree(seen, (self.cfg, self.data, self.layout)):
                    continue
                reach = _reaching(func, param, self.src)
                if reach is None:
                    continue
                for node in self.src.loads(func, param):
                    if reach.get(id(node)) == _P:
                        known[id(node)] = seen[0]
        self._attribute_facts(known)
        return known

    def _local_facts(self, func, known: dict) -> None:
        """Reads of a local that see one literal: statement by statement down the function's body,
        a name set to a literal (or to a literal a function always returns) is known until a
        statement sets it again; len() of a local set to np.arange(n) is n."""
        if id(func) in self.scoped or not any(map(self._may_know, func.body)):
            return
        params = {p.arg for p in _params(func)}
        current: dict[str, object] = {}
        for stmt in func.body:
            if current:
                named = {
                    n.id if isinstance(n, ast.Name) else n.arg
                    for n in ast.walk(stmt)
                    if isinstance(n, (ast.Name, ast.arg))
                }
                self._see_facts(func, stmt, {k: v for k, v in current.items() if k in named}, known)
                for name in [n for n in current if n in named and _stores(stmt, n)]:
                    del current[name]
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                for target, value in self._assigned_facts(func, stmt):
                    if target.id not in params:
                        current[target.id] = value

    def _may_know(self, stmt) -> bool:
        """Whether the statement may set a local to something _assigned_facts knows (cheap)."""
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            return False
        values = stmt.value.elts if isinstance(stmt.value, ast.Tuple) else [stmt.value]
        for value in values:
            if _is_constant_display(value):
                return True
            if isinstance(value, ast.Call):
                head = value.func
                if isinstance(head, ast.Name) and isinstance(
                    self.defs.get(head.id), ast.FunctionDef
                ):
                    return True
                if isinstance(head, ast.Attribute) and head.attr == "arange":
                    return True
        return False

    def _see_facts(self, func, stmt, current: dict, known: dict) -> None:
        """The reads in stmt that see what current holds, known."""
        for name, value in current.items():
            for node in _reads_before_stores(stmt, name):
                if not isinstance(value, _Length):
                    known[id(node)] = value
                    continue
                call = self.src.parent.get(id(node))
                if getattr(getattr(call, "func", None), "id", None) == "len":
                    known[id(call)] = value.n

    def _assigned_facts(self, func, stmt) -> list:
        """(name, what is known of its value) for each name the assignment sets to a known value."""
        out = []
        for target, value in _pairs(stmt.targets[0], stmt.value):
            if isinstance(target, ast.Name) and _is_constant_display(value):
                out.append((target, _value_of(value, {})))
            elif (
                isinstance(target, ast.Name)
                and isinstance(value, ast.Call)
                and ast.unparse(value.func) == "np.arange"
                and len(value.args) == 1
                and not value.keywords
            ):
                try:
                    n = _value_of(value.args[0], self._with_specials(value.args[0]))
                except _Unknown:
                    continue
                if type(n) is int:
                    out.append((target, _Length(max(n, 0))))
            elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
                returned = self._returned(func, value.func.id)
                if returned is None:
                    continue
                if isinstance(target, ast.Tuple) and isinstance(returned, tuple):
                    if len(target.elts) == len(returned):
                        out += [
                            (t, v)
                            for t, v in zip(target.elts, returned, strict=True)
                            if isinstance(t, ast.Name) and v is not _Unknown
                        ]
                elif isinstance(target, ast.Name) and returned is not _Unknown:
                    out.append((target, returned))
        return out

    def _returned(self, caller, name: str):
        """What every return of the top-level function `name` gives: a literal, a tuple of literals
        or _Unknown (element by element), or None when nothing is known."""
        func = self.defs.get(name)
        if not isinstance(func, ast.FunctionDef) or name in self.locals[id(caller)]:
            return None
        if name not in self.returned_cache:
            self.returned_cache[name] = self.src.per_function(func, self._returns_of)
        return self.returned_cache[name]

    def _returns_of(self, func):
        returns = [
            n
            for n in ast.walk(func)
            if isinstance(n, ast.Return) and self.src.function_of(n) is func
        ]
        if not returns or any(
            isinstance(n, (ast.Yield, ast.YieldFrom)) and self.src.function_of(n) is func
            for n in ast.walk(func)
        ):
            return None
        if any(r.value is None for r in returns):
            return None
        if all(isinstance(r.value, ast.Tuple) for r in returns):
            sizes = {len(r.value.elts) for r in returns}
            if len(sizes) != 1 or any(
                isinstance(e, ast.Starred) for r in returns for e in r.value.elts
            ):
                return None
            out = []
            for j in range(sizes.pop()):
                seen = [r.value.elts[j] for r in returns]
                values = [_value_of(e, {}) if _is_constant_display(e) else _Unknown for e in seen]
                same = _Unknown not in values and all(
                    type(v) is type(values[0]) and v == values[0] for v in values
                )
                out.append(values[0] if same else _Unknown)
            return tuple(out) if any(v is not _Unknown for v in out) else None
        values = [
            _value_of(r.value, {}) if _is_constant_display(r.value) else _Unknown for r in returns
        ]
        if _Unknown in values or any(
            type(v) is not type(values[0]) or v != values[0] for v in values
        ):
            return None
        return values[0]

    def _attribute_facts(self, known: dict) -> None:
        stores: dict[str, int] = {}
        for node in self.src.nodes:
            if isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
                stores[node.attr] = stores.get(node.attr, 0) + 1
        for cls, init, me, stmt in self._init_assignments():
            for target, value in _pairs(stmt.targets[0], stmt.value):
                if not (
                    isinstance(target, ast.Attribute) and getattr(target.value, "id", None) == me
                ):
                    continue
                if stores.get(target.attr) != 1:
                    continue
                try:
                    fact = _value_of(value, known)
                except _Unknown:
                    continue
                if _is_literal(fact):
                    for node in self._self_reads(cls, target.attr, skip=init):
                        known[id(node)] = fact

    def _init_assignments(self):
        """(class, its __init__, the name of its self, a one-target assignment).

        For each class's __init__.
        """
        for cls in self.classes.values():
            init = _method(cls, "__init__")
            if init is None or not init.args.args:
                continue
            me = init.args.args[0].arg
            for stmt in init.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                    yield cls, init, me, stmt

    def _self_reads(self, cls, attr: str, skip=None) -> list:
        """Reads of self.attr in the methods of cls and of its subclasses."""
        family = [cls] + [
            c
            for c in self.classes.values()
            if any(getattr(b, "id", None) == cls.name for b in c.bases)
        ]
        found = []
        for owner in family:
            for method in owner.body:
                if (
                    not isinstance(method, ast.FunctionDef)
                    or method is skip
                    or not method.args.args
                ):
                    continue
                me = method.args.args[0].arg
                for node in ast.walk(method):
                    read = (
                        isinstance(node, ast.Attribute)
                        and node.attr == attr
                        and isinstance(node.ctx, ast.Load)
                    )
                    if read and getattr(node.value, "id", None) == me:
                        found.append(node)
        return found

    # -- rewrites: each returns groups of edits, a group being all or nothing --

    def _fold_tests(self) -> list:
        """An if (or `x if test else y`) whose test is known keeps only the branch taken."""
        src, groups = self.src, []
        for node in src.nodes:
            if not isinstance(node, (ast.If, ast.IfExp)):
                continue
            try:
                value = bool(_value_of(node.test, self._with_specials(node.test)))
            except _Unknown:
                continue
            if isinstance(node, ast.IfExp):
                taken = node.body if value else node.orelse
                groups.append(self._replace(node, taken, src.seg(taken)))
            else:
                groups.append(self._flatten(node, value))
        return groups

    def _fold_boolops(self) -> list:
        """`x or True` as True, `x and False` as False, and `False or x`, `True and x` as x.

        Where the operands dropped do nothing when evaluated, and either the value is read as
        true or false only (an if's test) or every operand is True or False itself.
        """
        src, groups = self.src, []
        for node in src.nodes:
            if not isinstance(node, ast.BoolOp):
                continue
            if not (self._as_truth(node) or all(map(_is_bool, node.values))):
                continue
            known = self._with_specials(node)
            values = []
            for operand in node.values:
                try:
                    values.append(bool(_value_of(operand, known)))
                except _Unknown:
                    values.append(None)
            stops = isinstance(node.op, ast.Or)  # the value that decides an `or`
            kept = []
            for operand, value in zip(node.values, values, strict=True):
                if value is None:
                    kept.append(operand)
                elif value is stops:
                    if all(_harmless(k) for k in kept):
                        kept = [operand]
                    else:
                        kept.append(operand)
                    break
                elif not _harmless(operand):
                    kept.append(operand)
            if len(kept) == len(node.values) or not kept:
                continue
            if len(kept) == 1:
                text = src.seg(kept[0])
                if values[node.values.index(kept[0])] is not None:
                    text = repr(values[node.values.index(kept[0])])
                groups.append(self._replace(node, kept[0], text))
                continue
            word = " or " if stops else " and "
            text = word.join(
                f"({src.seg(k)})" if _precedence(k) <= _precedence(node) else src.seg(k)
                for k in kept
            )
            groups.append((*src.span(node), src.fits(node, node, text)))
        return groups

    def _as_truth(self, node) -> bool:
        """Whether only the truth of the value is read (an if's test, the operand of not)."""
        parent = self.src.parent.get(id(node))
        if isinstance(parent, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            return parent.test is node
        if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.Not):
            return True
        if isinstance(parent, ast.BoolOp):
            return self._as_truth(parent)
        return False

    def _with_specials(self, expr) -> dict:
        known = self.known
        for node in ast.walk(expr):
            if isinstance(node, ast.Attribute) and self._special_of(node.value) is not None:
                value = getattr(self._special_of(node.value), node.attr, None)
                if _is_literal(value):
                    known = {**known, id(node): value}
        return known

    def _flatten(self, node: ast.If, value: bool) -> tuple[int, int, str]:
        src = self.src
        start, end = src.stmt_span(node)
        # the if's own leading comments
        lead = "".join(src.lines[src.first_line(node) - 1 : node.lineno - 1])
        indent = src.indent(node.lineno)
        block, comment = (
            (node.body, _trailing_comment(src.lines[node.test.end_lineno - 1])) if value
            else (node.orelse, "")
        )  # fmt: skip
        first = src.lines[block[0].lineno - 1] if block else ""
        if (
            not value
            and isinstance(block[0] if block else None, ast.If)
            and first.lstrip().startswith("elif")
        ):
            text = "".join(src.lines[block[0].lineno - 1 : node.end_lineno]).replace(
                "elif", "if", 1
            )
            return start, end, lead + text
        if not block:  # the if goes; a heading above it stays for what follows
            headings = [line for line in lead.splitlines(keepends=True) if re.match(_HEADING, line)]
            return start, end, "".join(headings) + self._empty_block(node)
        body = "".join(src.lines[src.first_line(block[0]) - 1 : block[-1].end_lineno])
        deeper = src.indent(block[0].lineno)
        if not deeper.startswith(indent) or any(
            line.strip() and not line.startswith(deeper) for line in body.splitlines()
        ):
            raise ValueError("to_script: cannot re-indent a branch")
        cut = len(deeper) - len(indent)
        body = "".join(
            line[cut:] if line.strip() else line for line in body.splitlines(keepends=True)
        )
        if comment and _trailing_comment(src.lines[block[0].end_lineno - 1]):
            # the if's comment spoke of its test, which is gone; its body's own comment stays
            comment = ""
        return start, end, lead + (f"{indent}{comment}\n" if comment else "") + body

    def _empty_block(self, stmt) -> str:
        """What is left where stmt is deleted: nothing, or `pass` if the block would be empty."""
        parent = self.src.parent[id(stmt)]
        for field in ("body", "orelse"):
            block = getattr(parent, field, None)
            here = (
                isinstance(block, list)
                and any(s is stmt for s in block)
                and not isinstance(parent, ast.Module)
            )
            if here and not [s for s in block if s is not stmt and not _is_docstring(s, parent)]:
                return f"{self.src.indent(stmt.lineno)}pass\n"
        return ""

    def _dead_code(self) -> list:
        """Statements after a return, a raise, or a `while True:` with no break never run."""
        groups = []
        for node in self.src.nodes:
            for field in ("body", "orelse"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    for i, stmt in enumerate(block[:-1]):
                        if _ends(stmt):
                            groups.append(
                                (
                                    self.src.stmt_span(block[i + 1])[0],
                                    self.src.stmt_span(block[-1])[1],
                                    "",
                                )
                            )
                            break
        return groups

    def _substitute(self) -> list:
        """Known choices written where they are read; the run's cfg and data members by their
        values; tables and getattr looked up."""
        src, groups = self.src, []
        for node in src.nodes:
            if isinstance(node, (ast.Name, ast.Attribute)) and id(node) in self.known:
                value = self.known[id(node)]
                if _is_choice(value) and isinstance(node.ctx, ast.Load):
                    groups.append((*src.span(node), _literal_text(value)))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                special = self._special_of(node.value)
                if special is None:
                    continue
                parent = src.parent[id(node)]
                if isinstance(parent, ast.Call) and parent.func is node:
                    edit = self._special_call(special, parent)
                    if edit is not None:
                        groups.append(edit)
                elif _is_choice(value := getattr(special, node.attr)) or (
                    special is self.layout and _is_literal(value)
                ):
                    groups.append((*src.span(node), _literal_text(value)))
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "getattr"
                and len(node.args) == 2
            ):
                owner, attr = node.args
                if (
                    isinstance(attr, ast.Constant)
                    and str(attr.value).isidentifier()
                    and _plain(owner)
                ):
                    groups.append((*src.span(node), f"{src.seg(owner)}.{attr.value}"))
            elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
                entries = _mapping_entries(self.defs.get(node.value.id))
                func = src.function_of(node)
                if entries is None or (func is not None and node.value.id in self.locals[id(func)]):
                    continue
                try:
                    key = _value_of(node.slice, {})
                except _Unknown:
                    continue
                if key in entries:
                    groups.append(
                        (*src.span(node), src.fits(entries[key], node, src.seg(entries[key])))
                    )
        return groups

    def _special_call(self, special, call) -> tuple[int, int, str] | None:
        """cfg.n_params(3) as its value; cfg.layout(3) as the layout's constructor; data.with_ones()
        as the body of lib's method; None for a layout method, which stays a call (the script has
        the class)."""
        src, attr = self.src, call.func.attr
        try:
            args = [self._arg_value(a) for a in call.args]
            kwargs = {k.arg: self._arg_value(k.value) for k in call.keywords}
            value = getattr(special, attr)(*args, **kwargs)
            if _is_literal(value):
                return (*src.span(call), _literal_text(value))
            if isinstance(value, type(self.layout)) and value == self.layout:
                return (*src.span(call), self.layout_text)
        except _Unknown:
            pass
        if special is self.layout:
            return None
        method = inspect.getattr_static(type(special), attr)
        inner = _Source(textwrap.dedent(inspect.getsource(method)))
        func = inner.tree.body[0]
        body = [s for s in func.body if not _is_docstring(s, func)]
        if len(body) != 1 or not isinstance(body[0], ast.Return) or call.args or call.keywords:
            raise ValueError(
                f"to_script: cannot write {type(special).__name__}.{attr}() into the script"
            )
        me = func.args.args[0].arg
        text = _segment_with(
            inner,
            body[0].value,
            [(*inner.span(n), src.seg(call.func.value)) for n in _loads(func, me)],
        )
        return (*src.span(call), src.fits(body[0].value, call, text))

    def _fold_literals(self) -> list:
        """Expressions of literals as their values; **{...} as keywords, or nothing."""
        src, groups = self.src, []
        literals = src.literals()
        for node in src.nodes:
            if isinstance(node, ast.Call):
                stars = [
                    k for k in node.keywords
                    if k.arg is None and _is_display(k.value) and isinstance(k.value, ast.Dict)
                    and all(
                        isinstance(x.value, str) and x.value.isidentifier() for x in k.value.keys
                    )
                ]  # fmt: skip
                if stars:
                    groups.append((*src.span(node), self._call_text(node, stars=stars)))
            identity = self._identity(node) if isinstance(node, ast.BinOp) else None
            if identity:
                groups.append(identity)
            elif id(node) in literals:
                groups.append((*src.span(node), _literal_text(literals[id(node)])))
        return groups

    def _identity(self, node) -> tuple[int, int, str] | None:
        """n + 0, n - 0, n * 1 (or True) as n, and n * 0 (or False) as 0.

        Where n is a whole number.
        """
        if not isinstance(node, ast.BinOp) or type(node.op) not in (
            ast.Add,
            ast.Sub,
            ast.Mult,
            ast.FloorDiv,
            ast.Div,
        ):
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return self._float_of_ratio(node)
        for number, other in ((node.right, node.left), (node.left, node.right)):
            try:
                value = _value_of(number, {})
            except _Unknown:
                # a Config integer known by its name: accumulate == 1 makes i // accumulate i
                value = self.known.get(id(number)) if isinstance(number, ast.Name) else None
                if type(value) is not int:
                    continue
            if not isinstance(value, (int, float)) or not self._whole(other):
                continue
            if value == 0 and isinstance(node.op, ast.Mult):
                return (*self.src.span(node), "0")
            keeps = {ast.Add: 0, ast.Sub: 0, ast.Mult: 1, ast.FloorDiv: 1}[type(node.op)]
            if value == keeps and (
                number is node.right or isinstance(node.op, (ast.Add, ast.Mult))
            ):
                return self._replace(node, other, self.src.seg(other))
        return None

    def _float_of_ratio(self, node) -> tuple[int, int, str] | None:
        """float(x / 1) as float(x): the same number, whatever x is."""
        parent = self.src.parent.get(id(node))
        if not (
            isinstance(parent, ast.Call)
            and getattr(parent.func, "id", None) == "float"
            and len(parent.args) == 1
            and not parent.keywords
        ):
            return None
        try:
            one = _value_of(node.right, {})
        except _Unknown:
            return None
        if not isinstance(one, (int, float)) or isinstance(one, bool) or one != 1:
            return None
        return self._replace(node, node.left, self.src.seg(node.left))

    def _counter(self, node) -> bool:
        """A name that only `for name, ... in enumerate(...)` sets: a whole number."""
        func = self.src.function_of(node)
        if func is None:
            return False
        if node.id not in self.src.per_function(func, _counters):
            return False
        stores = self.src.stores(func, node.id)
        if len(stores) != 1:
            return False
        target = self.src.parent.get(id(stores[0]))
        loop = self.src.parent.get(id(target))
        return (
            isinstance(target, ast.Tuple)
            and target.elts[0] is stores[0]
            and isinstance(loop, ast.For)
            and loop.target is target
            and isinstance(loop.iter, ast.Call)
            and getattr(loop.iter.func, "id", None) == "enumerate"
            and all(k.arg == "start" and _is_display(k.value) for k in loop.iter.keywords)
            and len(loop.iter.args) == 1
        )

    def _whole(self, node) -> bool:
        """Whether the expression is surely a whole number (a Python int), so that n + 0 is n."""
        if isinstance(node, ast.Constant):
            return type(node.value) is int
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("len", "int"):
            return True
        if isinstance(node, ast.Attribute) and self._special_of(node.value) is not None:
            return type(getattr(self._special_of(node.value), node.attr, None)) is int
        if isinstance(node, ast.Name):
            func = self.src.function_of(node)
            params = {p.arg: p for p in _params(func)} if func else {}
            p = params.get(node.id)
            if (
                p is not None
                and getattr(p.annotation, "id", None) == "int"
                and not self._argument_rebound(func, p.arg)
            ):
                return True
            return type(self.known.get(id(node))) is int or self._counter(node)
        if isinstance(node, ast.BinOp) and type(node.op) in (
            ast.Add,
            ast.Sub,
            ast.Mult,
            ast.FloorDiv,
        ):
            return self._whole(node.left) and self._whole(node.right)
        return False

    def _argument_rebound(self, func, name: str) -> bool:
        return name in self.src.scope(func)[1]

    def _replace(self, old, new, text: str) -> tuple[int, int, str]:
        """An edit putting text (new's) where old was.

        It takes old's parentheses away if new needs none.
        """
        src = self.src
        start, end = src.span(old)
        parent = src.parent.get(id(old))
        # parentheses right around an element of a tuple are the element's own
        own_parens = isinstance(parent, (ast.Call, ast.GeneratorExp))
        if (
            _precedence(new) == 20
            and not own_parens
            and src.text[start - 1 : start] == "("
            and src.text[end : end + 1] == ")"
        ):
            return start - 1, end + 1, text
        return start, end, src.fits(new, old, text)

    def _call_text(self, call, stars=(), drop=(), expand=None) -> str:
        """The call written again.

        Without the arguments in drop, **{...} as keywords, *name expanded.
        """
        src = self.src
        parts = []
        for a in call.args:
            if any(a is d for d in drop):
                continue
            parts += expand[id(a)] if expand and id(a) in expand else [src.seg(a)]
        for k in call.keywords:
            if any(k is d for d in drop):
                continue
            if any(k is s for s in stars):
                parts += [
                    f"{key.value}={src.seg(v)}"
                    for key, v in zip(k.value.keys, k.value.values, strict=True)
                ]
            else:
                parts.append(src.seg(k))
        head = src.seg(call.func)
        one = f"{head}({', '.join(parts)})"
        column = len(src.lines[call.lineno - 1].encode()[: call.col_offset].decode())
        if (
            column + len(one) + (1 if call.lineno == call.end_lineno else 0) <= _WIDTH
            or call.lineno == call.end_lineno
        ):
            return one
        indent = src.indent(call.lineno)
        return f"{head}(\n" + "".join(f"{indent}    {p},\n" for p in parts) + f"{indent})"

    def _drop_counters(self) -> list:
        """`for i, x in enumerate(xs):` where nothing reads i: `for x in xs:` (and a comment on
        the line that names i goes with it)."""
        src, groups = self.src, []
        for loop in src.nodes:
            if not (
                isinstance(loop, ast.For)
                and isinstance(loop.target, ast.Tuple)
                and len(loop.target.elts) == 2
                and isinstance(loop.target.elts[0], ast.Name)
                and isinstance(loop.iter, ast.Call)
                and getattr(loop.iter.func, "id", None) == "enumerate"
                and len(loop.iter.args) == 1
                and not loop.iter.keywords
                and loop.lineno == loop.iter.end_lineno < loop.body[0].lineno
            ):
                continue
            func = src.function_of(loop)
            counter = loop.target.elts[0].id
            if func is None or src.loads(func, counter) or len(src.stores(func, counter)) != 1:
                continue
            item = loop.target.elts[1]
            target = (
                ", ".join(src.seg(e) for e in item.elts)
                if isinstance(item, ast.Tuple)
                else src.seg(item)
            )
            line = src.lines[loop.lineno - 1]
            comment = _trailing_comment(line)
            if re.search(rf"\b{re.escape(counter)}\b", comment):
                comment = ""
            text = f"{src.indent(loop.lineno)}for {target} in {src.seg(loop.iter.args[0])}:"
            text += f"  {comment}\n" if comment else "\n"
            start = src.starts[loop.lineno - 1]
            groups.append((start, start + len(line), text))
        return groups

    def _expand_starred(self) -> list:
        """f(*common), where common is set once to a tuple of plain values: f(a, b, c)."""
        src, groups = self.src, []
        for call in (n for n in src.nodes if isinstance(n, ast.Call)):
            expand = {}
            for a in call.args:
                if not (isinstance(a, ast.Starred) and isinstance(a.value, ast.Name)):
                    continue
                scope = src.function_of(call)
                stores = src.stores(scope, a.value.id) if scope else []
                if len(stores) != 1 or not isinstance(src.parent[id(stores[0])], ast.Assign):
                    continue
                assign = src.parent[id(stores[0])]
                values = assign.value.elts if isinstance(assign.value, ast.Tuple) else None
                names = [n.id for e in values or () for n in ast.walk(e) if isinstance(n, ast.Name)]
                if (
                    values is not None
                    and all(map(_plain, values))
                    and not any(src.stores(scope, n) for n in names)
                ):
                    # plain values, none of them set again
                    expand[id(a)] = [src.seg(e) for e in values]
            if expand:
                groups.append((*src.span(call), self._call_text(call, expand=expand)))
        return groups

    def _propagate_literals(self) -> list:
        """A local set once to a literal is written where it is read.

        Set alone or within a tuple assignment.
        """
        src, groups = self.src, []
        for func in self.functions:
            for stmt in func.body:
                if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
                    continue
                pairs = _pairs(stmt.targets[0], stmt.value)
                gone = [
                    t
                    for t, v in pairs
                    if isinstance(t, ast.Name)
                    and _is_constant_display(v)
                    and len(src.stores(func, t.id)) == 1
                ]
                if gone:
                    values = {id(t): src.seg(v) for t, v in pairs}
                    group = [self._reassign(stmt, pairs, gone)]
                    for t in gone:
                        group += [(*src.span(n), values[id(t)]) for n in src.loads(func, t.id)]
                    groups.append(group)
        return groups

    def _reassign(self, stmt, pairs, drop) -> tuple[int, int, str]:
        """The assignment without the targets in drop (or no statement at all)."""
        src = self.src
        kept = [(t, v) for t, v in pairs if not any(t is d for d in drop)]
        start, end = src.stmt_span(stmt)
        if not kept:
            return start, end, self._empty_block(stmt)
        targets = ", ".join(src.seg(t) for t, _ in kept)
        if len(kept) == 1 and isinstance(kept[0][1], ast.Starred):
            value = src.seg(kept[0][1].value)
        else:
            value = ", ".join(src.seg(v) for _, v in kept)
        lead = "".join(src.lines[src.first_line(stmt) - 1 : stmt.lineno - 1])
        comment = _trailing_comment(src.lines[stmt.end_lineno - 1])
        return (
            start,
            end,
            f"{lead}{src.indent(stmt.lineno)}{targets} = {value}"
            + (f"  {comment}" if comment else "")
            + "\n",
        )

    def _inline(self) -> list:
        """A function that is one `return` of a dispatch (it was specialised, or is called with a
        literal) is written at its calls."""
        src, groups = self.src, []
        for name, func in self.defs.items():
            if not isinstance(func, ast.FunctionDef) or func.decorator_list:
                continue
            body = [s for s in func.body if not _is_docstring(s, func)]
            if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
                continue
            expr = body[0].value
            if any(
                isinstance(n, (ast.Lambda, ast.Yield, ast.NamedExpr, ast.GeneratorExp))
                for n in ast.walk(expr)
            ):
                continue
            sites = self._calls_of(name)
            if not sites:
                continue
            params = [p.arg for p in _params(func)]
            free = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)} - set(params)
            for _f, call, _s in sites:
                bound = _bind(func, call, 0)
                caller = src.function_of(call)
                if (
                    bound is None
                    or set(params) - set(bound)
                    or (caller and free & self.locals[id(caller)])
                ):
                    continue
                literal = any(
                    _is_display(a) for a in [*call.args, *(k.value for k in call.keywords)]
                )
                if name not in self.specialised and not literal:
                    continue
                uses = {p: _loads(expr, p) for p in params}
                if any(len(uses[p]) != 1 and not _plain(bound[p]) for p in params):
                    continue
                inner = [
                    (*src.span(n), src.fits(bound[p], n, src.seg(bound[p])))
                    for p in params
                    for n in uses[p]
                ]
                text = _segment_with(src, expr, inner)
                text = " ".join(text.split()) if "\n" in text else text
                groups.append((*src.span(call), src.fits(expr, call, text)))
        return groups

    def _inline_locals(self) -> list:
        """A function that sets locals and returns them, each read once, as one `return` (which
        _inline then writes at its calls): make_model's layers as the nn.Sequential they make.

        Only where what has an effect still happens in the same order: each value that calls
        anything but a layer without parameters (nn.Tanh()) is read in the order it was set, and
        before any other call of the return that does not take it.
        """
        src, groups = self.src, []
        for func in self.defs.values():
            if not isinstance(func, ast.FunctionDef) or func.decorator_list:
                continue
            body = [s for s in func.body if not _is_docstring(s, func)]
            if len(body) < 2 or not isinstance(body[-1], ast.Return) or body[-1].value is None:
                continue
            sets, ret = body[:-1], body[-1].value
            if not all(
                isinstance(a, ast.Assign)
                and len(a.targets) == 1
                and isinstance(a.targets[0], ast.Name)
                for a in sets
            ):
                continue
            names = [a.targets[0].id for a in sets]
            reads = {n: src.loads(func, n) for n in names}
            inside = {id(n) for n in ast.walk(ret)}
            if (
                len(set(names)) != len(names)
                or set(names) & {p.arg for p in _params(func)}
                or any(len(r) != 1 or id(r[0]) not in inside for r in reads.values())
                or any(len(src.stores(func, n)) != 1 for n in names)
            ):
                continue
            effects = [
                src.span(reads[a.targets[0].id][0])[0] for a in sets if not _no_effect(a.value)
            ]
            moved = {id(n) for r in reads.values() for node in r for n in ast.walk(node)}
            others = [
                c
                for c in ast.walk(ret)
                if isinstance(c, ast.Call)
                and not any(id(n) in moved for n in ast.walk(c))
                and not _no_effect(c)
            ]
            if effects != sorted(effects) or any(
                src.span(c)[0] < max(effects, default=-1) for c in others
            ):
                continue
            values = {a.targets[0].id: a.value for a in sets}
            inner = [
                (*src.span(r[0]), src.fits(values[n], r[0], src.seg(values[n])))
                for n, r in reads.items()
            ]
            text = _segment_with(src, ret, inner)
            text = " ".join(text.split()) if "\n" in text else text
            indent = src.indent(body[-1].lineno)
            start = src.stmt_span(sets[0])[0]
            groups.append((start, src.stmt_span(body[-1])[1], f"{indent}return {text}\n"))
        return groups

    def _drop_params(self) -> list:
        """Parameters that nothing reads leave the signature and every call.

        A function's signature and its calls are one group; groups that overlap wait a pass.
        """
        src, groups = self.src, []
        for name in self.defs:
            sites = self._calls_of(name)
            if not sites:
                continue
            func, skip = sites[0][0], sites[0][2]
            unused = [p for p in _params(func)[skip:] if not self._argument_read(func, p.arg)]
            if not unused:
                continue
            group, ok = [self._signature(func, unused)], True
            for _f, call, _s in sites:
                bound = _bind(func, call, skip)
                if bound is None:
                    ok = False
                    break
                gone = [bound[p.arg] for p in unused if p.arg in bound]
                drop = [a for a in call.args if any(a is g for g in gone)]
                drop += [k for k in call.keywords if any(k.value is g for g in gone)]
                values = [a if isinstance(a, ast.expr) else a.value for a in drop]
                if not all(_plain(v) or src.seg(v) == self.layout_text for v in values):
                    ok = False
                    break
                if drop:
                    group.append((*src.span(call), self._call_text(call, drop=drop)))
            if ok:
                groups.append(group)
        return groups

    def _argument_read(self, func, name: str) -> bool:
        """Whether any read of the parameter may see the argument (not only values set later)."""
        if not self.src.loads(func, name):
            return False
        reach = _reaching(func, name, self.src)
        return reach is None or any(state != _L for state in reach.values())

    def _signature(self, func, drop) -> tuple[int, int, str]:
        """The def line(s) without the parameters in drop, laid out as ruff would."""
        src = self.src
        defaults = _defaults(func)
        parts = []
        kept = [p for p in _params(func) if not any(p is d for d in drop)]
        for p in kept:
            text = p.arg + (f": {src.seg(p.annotation)}" if p.annotation else "")
            if p.arg in defaults:
                text += (
                    f" = {src.seg(defaults[p.arg])}"
                    if p.annotation
                    else f"={src.seg(defaults[p.arg])}"
                )
            parts.append(text)
        keyword_only = [p for p in kept if any(p is k for k in func.args.kwonlyargs)]
        if keyword_only:
            parts.insert(len(kept) - len(keyword_only), "*")
        ret = f" -> {src.seg(func.returns)}" if func.returns else ""
        indent = src.indent(func.lineno)
        head = f"{indent}def {func.name}("
        if len(one := f"{head}{', '.join(parts)}){ret}:") <= _WIDTH:
            text = one
        elif len(f"{indent}    {', '.join(parts)}") <= _WIDTH:
            text = f"{head}\n{indent}    {', '.join(parts)}\n{indent}){ret}:"
        else:
            text = f"{head}\n" + "".join(f"{indent}    {p},\n" for p in parts) + f"{indent}){ret}:"
        return src.starts[func.lineno - 1], src.starts[func.body[0].lineno - 1], text + "\n"

    def _drop_attributes(self) -> list:
        """Attributes that __init__ sets to a plain value and nothing reads are not set."""
        src, groups = self.src, []
        loads = {
            n.attr
            for n in src.nodes
            if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load)
        }
        loads |= {
            n.target.attr
            for n in src.nodes
            if isinstance(n, ast.AugAssign) and hasattr(n.target, "attr")
        }
        strings = {
            n.value for n in src.nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }
        for _, _, me, stmt in self._init_assignments():
            pairs = _pairs(stmt.targets[0], stmt.value)
            drop = [
                t for t, v in pairs
                if isinstance(t, ast.Attribute) and getattr(t.value, "id", None) == me
                and t.attr not in loads and t.attr not in strings and _pure(v)
            ]  # fmt: skip
            if drop:
                groups.append(self._reassign(stmt, pairs, drop))
        # an attribute set anywhere in a class (a, b, self.last = ...: one target) and read nowhere
        for cls in self.classes.values():
            for method in cls.body:
                if not isinstance(method, ast.FunctionDef) or not method.args.args:
                    continue
                me = method.args.args[0].arg
                for stmt in ast.walk(method):
                    target = (
                        stmt.target
                        if isinstance(stmt, ast.AnnAssign) and stmt.value is not None
                        else stmt.targets[0]
                        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                        else None
                    )
                    if (
                        isinstance(target, ast.Attribute)
                        and getattr(target.value, "id", None) == me
                        and target.attr not in loads
                        and target.attr not in strings
                        and _pure(stmt.value)
                    ):
                        groups.append((*src.stmt_span(stmt), self._empty_block(stmt)))
        return groups

    def _drop_locals(self) -> list:
        """Locals set to a pure value that nothing reads are not set."""
        src, groups = self.src, []
        for func in self.functions:
            for node in ast.walk(func):
                if (
                    not (isinstance(node, ast.Assign) and len(node.targets) == 1)
                    or src.function_of(node) is not func
                ):
                    continue
                pairs = _pairs(node.targets[0], node.value)
                drop = [
                    t
                    for t, v in pairs
                    if isinstance(t, ast.Name) and not src.loads(func, t.id) and _pure(v)
                ]
                if drop:
                    groups.append(self._reassign(node, pairs, drop))
        return groups

    def _drop_methods(self) -> list:
        """Methods of the script's own classes that nothing reads are left out; so is the
        __len__ of a sampler that only a DataLoader iterated by a for reads."""
        return _drop_methods_of(self.src, self.classes) + self._drop_sampler_len()

    def _drop_sampler_len(self) -> list:
        # Iterating a DataLoader never asks its sampler's len() (tests/test_export_short.py
        # checks it on torch); len(loader) would, so every use of the loader must be a for's.
        src, groups = self.src, []
        for cls in self.classes.values():
            method = _method(cls, "__len__")
            bases = [ast.unparse(b) for b in cls.bases]
            if method is None or not any(b.endswith("Sampler") for b in bases):
                continue
            made = [
                n for n in src.nodes
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == cls.name
            ]  # fmt: skip
            if made and all(self._only_iterated_as_sampler(call) for call in made):
                groups.append((*src.stmt_span(method), ""))
        return groups

    def _only_iterated_as_sampler(self, call) -> bool:
        """call is `order = Cls(...)`, order is read only as sampler= of `loader =
        DataLoader(...)`, and loader only by a for or a `yield from`."""
        src = self.src

        def assigned_name(node):
            parent = src.parent.get(id(node))
            ok = isinstance(parent, ast.Assign) and len(parent.targets) == 1
            return parent.targets[0].id if ok and isinstance(parent.targets[0], ast.Name) else None

        func = src.function_of(call)
        name = assigned_name(call)
        if func is None or name is None or len(src.stores(func, name)) != 1:
            return False
        for read in src.loads(func, name):
            keyword = src.parent.get(id(read))
            loader = src.parent.get(id(keyword))
            if not (
                isinstance(keyword, ast.keyword)
                and keyword.arg == "sampler"
                and isinstance(loader, ast.Call)
                and getattr(loader.func, "id", None) == "DataLoader"
            ):
                return False
            loader_name = assigned_name(loader)
            if loader_name is None or len(src.stores(func, loader_name)) != 1:
                return False
            for use in src.loads(func, loader_name):
                parent = src.parent.get(id(use))
                if not (
                    (isinstance(parent, ast.For) and parent.iter is use)
                    or (isinstance(parent, ast.YieldFrom) and parent.value is use)
                ):
                    return False
        return True

    def _drop_definitions(self) -> list:
        """Top-level functions, classes and constants that nothing uses are left out."""
        src, groups = self.src, []
        for name, node in self.defs.items():
            if name in self.protected:
                continue
            first, last = src.stmt_span(node)
            if not [n for n in src.name_loads.get(name, []) if not first <= src.span(n)[0] < last]:
                groups.append((first, last, ""))
        return groups


def _drop_methods_of(src: _Source, classes: dict) -> list:
    """Methods nothing reads, of the script's own classes (no base from a library, whose code
    might call them by name): Layout less names() and description() where the loop reads views.

    A method counts as read where any attribute or string anywhere else has its name.
    """
    groups, where = [], None
    for cls in classes.values():
        if any(getattr(b, "id", None) not in classes for b in cls.bases) or cls.keywords:
            continue
        methods = [n for n in cls.body if isinstance(n, ast.FunctionDef)]
        for method in methods:
            if method.name.startswith("__") or len(methods) < 2:
                continue
            if where is None:  # each attribute's and string's name: the lines it is on
                where = {}
                for n in src.nodes:
                    name = n.attr if isinstance(n, ast.Attribute) else getattr(n, "value", None)
                    if isinstance(name, str) and hasattr(n, "lineno"):
                        where.setdefault(name, []).append(n.lineno)
            first, last = method.lineno, method.end_lineno
            if not [line for line in where.get(method.name, []) if not first <= line <= last]:
                groups.append((*src.stmt_span(method), ""))
    return groups


def _agree(seen: list, specials: tuple) -> bool:
    """Every call passes the same literal (or the same one of specials)."""
    if not seen or seen[0] is _Unknown:
        return False
    first = seen[0]
    if any(first is s for s in specials):
        return all(v is first for v in seen)
    return all(v is not _Unknown and type(v) is type(first) and v == first for v in seen)


# The script's own lines, up to _WIDTH wide: not held to lib's 100 columns.
_LOCKSTEP = """
    # Both loops in lockstep, stopped where lib.run stops.
VAL_INIT
    with np.errstate(all="ignore"):
        for step in range(cfg.iterations):
            loss_m, w_m, g_m = next(manual)
            loss_t, w_t, g_t = next(twin)
VAL_READ
            if ends_run(loss_m, loss_t, w_m, w_t, g_m, g_t):
                print(f"diverged at step {step}: try a smaller learning rate than {cfg.lr:g}")
                break
    diff = np.max(np.abs(w_m - w_t))
    relative = diff / max(1.0, np.max(np.abs(np.concatenate([w_m, w_t]))))
    print(f"{step + 1:,} steps of {cfg.iterations:,}")
    print(f"largest |manual − torch| after the last step: {diff:.3g} (relative: ÷ max(1, largest |w|): {relative:.3g})")
VAL_PRINT
    print(json.dumps({"manual": w_m.tolist(), "torch": w_t.tolist()VAL_JSON}))
"""  # noqa: E501

# With a validation split: the loops' val_loss, read where lib.run reads it (lib.engine.frames):
# from each suspended loop's locals, after every step that evaluated the held-out rows.
_VALIDATION = MappingProxyType(
    {
        "VAL_INIT": "    val_m, val_t = [], []  # each loop's val_loss, every eval_interval steps",
        "VAL_READ": (
            "            if (step + 1) % CFG.eval_interval == 0:"
            "  # the step evaluated held-out rows\n"
            '                val_m.append(manual.gi_frame.f_locals["val_loss"])\n'
            '                val_t.append(twin.gi_frame.f_locals["val_loss"])'
        ),
        "VAL_PRINT": (
            "    if val_m:\n"
            '        print(f"validation loss after step {len(val_m) * CFG.eval_interval:,}: '
            'manual {val_m[-1]!r}, torch {val_t[-1]!r}")'
        ),
        "VAL_JSON": ', "val_loss": {"manual": val_m, "torch": val_t}',
    }
)  # fmt: skip


def _with_validation(template: str, cfg: Config, cfg_name: str) -> str:
    """The script's lockstep with the lines that read the validation loss, if the run has any."""
    on = cfg.val_fraction > 0
    for marker, text in _VALIDATION.items():
        line = f"{marker}\n" if marker != "VAL_JSON" else marker
        new = text.replace("CFG", cfg_name) + ("\n" if line != marker else "")
        template = template.replace(line, new if on else "")
    return template


def _short_script(data: Dataset, cfg: Config, csv_name: str | None, target: str | None) -> str:
    """The script for this Config alone: lib's source less the branches the Config does not take."""
    loops_name, defs, loops_text, import_lines = _short_pieces(_lib_files_state())
    main = _main_from(loops_text, loops_name, cfg)
    text = "\n\n\n".join([*defs, main]) + "\n"
    text = _Specialiser(text, cfg, data, protected=("main",)).run()
    text = _short_docstrings(text)
    tree = parse(text)
    body = "\n\n\n".join(_top_level_blocks(text, tree))
    namespaces = _namespaces(tree, data, cfg)
    big = csv_name is None and data.m * (data.n + 1) > MAX_READABLE
    generated = regenerated_data(data) if csv_name is None else None
    if generated is not None:
        data_part = generated
    elif csv_name is None:
        # X and y, without the long script's Dataset
        data_part = _embedded_data(data).rsplit("\n", 1)[0]
    else:
        data_part = _csv_data(data, csv_name, target).strip("\n").rsplit("\n", 1)[0]
    big = big and generated is None
    imports = _short_imports(import_lines, text + data_part, big, hashed=generated is not None)
    parts = [
        _short_header(data, cfg, csv_name, generated is not None),
        imports,
        body,
        f"{data_part}\n{namespaces}",
        'if __name__ == "__main__":\n    main()',
    ]
    return "\n\n\n".join(part.strip("\n") for part in parts) + "\n"


def _lib_files_state() -> tuple:
    """(path, size, mtime) of each of lib's source files: what linecache, and so
    inspect.getsource, checks to tell whether a file changed."""
    state = []
    for path in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        stat = path.stat()
        state.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(state)


@functools.lru_cache(maxsize=4)
def _short_pieces(files_state: tuple) -> tuple[str, tuple[str, ...], str, frozenset[str]]:
    """The short script's code before it is specialised, the same for every Config: the loops'
    name in it, the other definitions, the loops' own text and the import lines they need.
    Assembled once per state of lib's files (files_state: _lib_files_state())."""
    code = _Assembler(short=True)
    loops_name = code.add_entry(run_side.loops)
    # written as its constructor where the code reads it; left out if nothing does
    code.add_entry(Layout)
    code.add_entry(run_side.ends_run)
    loops_key = code._lib_key(run_side.loops)
    defs = tuple(code._emit(code.found[key], key) for key in code.order if key != loops_key)
    loops_text = code._emit(code.found[loops_key], loops_key)
    return loops_name, defs, loops_text, frozenset(code.import_lines)


def twin_sources(data: Dataset, cfg: Config) -> dict[str, str]:
    """The two loop functions as this Config runs them: lib's own source less the branches it skips.

    {"manual_loop": text, "torch_loop": text}, cut from the short script, so the Code map, the twin
    table and the script show the same lines. The phase comments stay, so lib.explain.phase_source
    reads them.
    """
    text = to_script(data, cfg, csv_name="data.csv")  # read from a file: no data to embed
    tree, lines = parse(text), text.splitlines()
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in ("manual_loop", "torch_loop"):
            found[node.name] = "\n".join(lines[node.lineno - 1 : node.end_lineno])
    return found


def _main_from(loops_text: str, loops_name: str, cfg: Config) -> str:
    """main(): the body of lib.engine.lockstep.loops, then the lockstep.

    lib.engine.lockstep.loops' checks already passed, and its return is left out.
    """
    src = _Source(loops_text)
    func = src.tree.body[0]
    body = [s for s in func.body if not _is_docstring(s, func)]
    skipped = {f.__name__ for f in _SHORT_STANDINS}
    while (
        body
        and isinstance(body[0], ast.Expr)
        and getattr(body[0].value.func, "id", None) in skipped
    ):
        body = body[1:]
    if not isinstance(body[-1], ast.Return):
        raise ValueError(f"to_script: {loops_name} no longer ends by returning its loops")
    lines = "".join(src.lines[src.first_line(body[0]) - 1 : src.first_line(body[-1]) - 1])
    doc = (
        '    """Both loops on the same batches from the same init (lib.engine.lockstep.loops), '
        'run in lockstep (lib.run)."""\n'
    )
    lockstep = _with_validation(_LOCKSTEP, cfg, "cfg").strip("\n")
    return f"def main() -> None:\n{doc}{lines}{lockstep}\n"


def _short_docstrings(text: str) -> str:
    """Each docstring cut to its first paragraph, on one line where it fits."""
    src = _Source(text)
    edits = []
    for node in src.nodes:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or not node.body:
            continue
        doc = node.body[0]
        if not _is_docstring(doc, node) or doc.lineno == doc.end_lineno:
            continue
        paragraph = inspect.cleandoc(doc.value.value).split("\n\n")[0]
        indent = src.indent(doc.lineno)
        one = f'{indent}"""{" ".join(paragraph.split())}"""'
        several = '"""' + f"\n{indent}".join(paragraph.split("\n")) + '"""'
        new = one.lstrip() if len(one) <= _WIDTH else several
        edits.append((*src.span(doc), new))
    return _apply(text, edits)


def _top_level_blocks(text: str, tree: ast.Module) -> list[str]:
    """Each top-level statement with its leading comments.

    Blank lines inside a block kept to one.
    """
    src = _Source(text)
    blocks = []
    for node in tree.body:
        start, end = src.stmt_span(node)
        block = re.sub(r"\n{3,}", "\n\n", text[start:end]).strip("\n")
        # no blank line right after a def or class line
        blocks.append(re.sub(r"(:\n)\n+", r"\1", block))
    return blocks


def _namespaces(tree: ast.Module, data: Dataset, cfg: Config) -> str:
    """The two objects the code reads as data and cfg, with the fields it reads and nothing else."""
    used: dict[str, set[str]] = {"data": set(), "cfg": {"iterations", "lr"}}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in used
        ):
            used[node.value.id].add(node.attr)
    spelled = {"X": "X", "y": "y", "m": "X.shape[0]", "n": "X.shape[1]"}
    fields = {}
    for name, obj in (("data", data), ("cfg", cfg)):
        parts = []
        for attr in sorted(used[name], key=lambda a: (a not in spelled, a)):
            if name == "data" and attr in spelled:
                parts.append(f"{attr}={spelled[attr]}")
                continue
            value = getattr(obj, attr)
            if not _is_literal(value):
                raise ValueError(
                    f"to_script: the script reads {name}.{attr}, which it cannot write"
                )
            parts.append(f"{attr}={_literal_text(value)}")
        fields[name] = ", ".join(parts)
    return (
        "# What the code above reads of the run's lib.Dataset and lib.Config "
        "(the Config's choices are in the code).\n"
        + (f"data = SimpleNamespace({fields['data']})\n" if used["data"] else "")
        + f"cfg = SimpleNamespace({fields['cfg']})"
    )


def _short_imports(import_lines, text: str, big: bool, hashed: bool = False) -> str:
    """The import lines whose names the script uses."""
    tree = parse(text)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    lines = (
        {"import json", "from types import SimpleNamespace"}
        | ({"import base64"} if big else set())
        | ({"import hashlib"} if hashed else set())
    )
    for line in import_lines:
        if line.split()[-1] in used:
            lines.add(line)
    return _import_block(lines)


def _import_block(lines) -> str:
    """The script's import lines: one `from m import a, b` per module.

    The standard library first, then the rest.
    """
    lines = sorted(lines)
    merged: dict[str, list[str]] = {}
    for line in [line for line in lines if line.startswith("from ")]:
        _, module, _, name = line.split()
        merged.setdefault(module, []).append(name)
    plain = [line for line in lines if not line.startswith("from ")]
    plain += [
        f"from {module} import {', '.join(sorted(names))}" for module, names in merged.items()
    ]
    third = [line for line in plain if line.split()[1].split(".")[0] in _THIRD_PARTY]
    std = [line for line in plain if line not in third]
    groups = [sorted(g, key=lambda s: (s.startswith("from"), s)) for g in (std, third)]
    return "from __future__ import annotations\n\n" + "\n\n".join("\n".join(g) for g in groups if g)


def _short_header(data: Dataset, cfg: Config, csv_name: str | None, generated: bool) -> str:
    where = (
        f"read from {_one_line(repr(csv_name))} next to this script"
        if csv_name
        else "made below by lib's generator"
        if generated
        else "embedded below"
    )
    base = Config()
    changed = [
        f"{f.name}={_one_line(repr(getattr(cfg, f.name)))}"
        for f in dataclasses.fields(cfg)
        if getattr(cfg, f.name) != getattr(base, f.name)
        and not (f.name == "loss" and cfg.loss == Config(model=cfg.model).loss)
    ]
    run = textwrap.fill(
        f"lib.Config({', '.join(changed)}) on {_one_line(data.name)} ({data.m:,} x {data.n}, "
        f"{where}): the hand-written numpy loop and the torch loop, in lockstep.",
        width=_WIDTH - 4,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return (
        f'"""{run}\n'
        "Every function is lib's own source, less the branches this Config does not take. "
        "Needs numpy and torch.\n"
        f'{_last_line(cfg)}"""'
    )
