"""Exports of a run: its tidy history as CSV, as JSON with its configuration, and a standalone script."""

from __future__ import annotations

import ast
import base64
import builtins
import dataclasses
import importlib
import inspect
import json
import math
import re
import sys
import textwrap
from types import MappingProxyType, ModuleType

import numpy as np

from .config import Config
from .data import Dataset, initial_weights, weight_names
from .run import Result

# lib/__init__.py rebinds lib.run to the function of that name; this is the module.
run_side = importlib.import_module(".run", __package__)

MAX_READABLE = 10_000  # up to this many numbers the data is written as readable lists, beyond as base64
MAX_EMBEDDED = 2_000_000  # about 21 MB of script; larger data must be referenced as a CSV file


def history_csv(result: Result) -> bytes:
    """The run's tidy history (step, loop, metric, value) as UTF-8 CSV; floats round-trip exactly."""
    if not isinstance(result, Result):
        raise ValueError(f"result must be a lib.Result; got {type(result).__name__}")
    return result.frame().to_csv(index=False).encode("utf-8")


def history_json(result: Result, data: Dataset | None = None) -> bytes:
    """The run as strict JSON: configuration, data description (if given), outcome and both histories.

    Non-finite numbers (the last row of a diverged run) are written as null, since JSON has no NaN or inf.
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
    for loop in ("manual", "torch"):
        h = getattr(result, loop)
        doc[loop] = {
            "loss": _finite_or_none(h.loss),
            "grad_norm": _finite_or_none(h.grad_norm),
            "weights": _finite_or_none(h.weights),
            "seconds": h.seconds,
        }
    return json.dumps(doc, allow_nan=False, indent=1).encode("utf-8")


def to_script(data: Dataset, cfg: Config, *, csv_name: str | None = None, target: str | None = None) -> str:
    """A standalone Python script (numpy and torch only) that reruns both loops and prints their final weights.

    The script is assembled from the source of lib.run.loops and of every lib function it reaches, so it
    cannot drift from what lib.run executes. The data is embedded, or, given csv_name (or a Dataset with a
    `source` file name), read from that CSV file by column name: the features by data.feature_names, the
    target by `target` (default: the last other column). The last printed line is JSON
    {"manual": [...], "torch": [...]}.
    """
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
    run_side.check_run(data, cfg)  # the script skips these checks, so they must pass here
    init = initial_weights(data, cfg)
    code = _Assembler()
    loops_name = code.add_entry(run_side.loops)
    if csv_name is None and data.m * (data.n + 1) > MAX_READABLE:
        code.import_lines.add("import base64")
    parts = [
        _header(data, cfg, csv_name),
        code.imports(),
        "# ---- Stand-ins for lib's Config and Dataset, and for what lib computed when it wrote this script ----",
        *code.standins(init_how=_init_how(cfg)),
        "# ---- The code lib.run executes, copied from lib's source (lib/run.py, lib/manual.py, ...) ----",
        *code.pieces(),
        _settings(data, cfg, init),
        _csv_data(data, csv_name, target) if csv_name is not None else _embedded_data(data),
        _MAIN.replace("LOOPS", loops_name),
    ]
    return "\n\n\n".join(part.strip("\n") for part in parts) + "\n"


# Stand-ins: lib objects the script replaces by a simpler equivalent, keyed by the object.
_STANDIN_CLASSES = MappingProxyType(
    {
        Config: "The run's lib.Config: its fields, and the members of it that the code below reads.",
        Dataset: "The run's lib.Dataset, X (m, n) and y (m,), and the members of it that the code below reads.",
    }
)
_STANDIN_FUNCTIONS = MappingProxyType(
    {
        run_side.check_run: '"""lib.run.check_run passed for this data and Config when lib wrote this script."""',
        initial_weights: (
            '"""The initial weights lib.initial_weights made for this run ({how})."""\n    return INIT.copy()'
        ),
    }
)
_THIRD_PARTY = ("numpy", "torch")  # the only packages the script may import besides the standard library


@dataclasses.dataclass
class _Piece:
    """One top-level definition copied into the script: a function, a class or a constant's assignment."""

    module: ModuleType
    name: str
    text: str  # the source, dedented
    indent: str = ""  # re-indented by this much when emitted (members of the stand-in classes)
    refs: list = dataclasses.field(default_factory=list)  # (node, target key or None, spelled as)


class _Assembler:
    """Collects a lib function and everything it reaches, renaming where two modules reuse a name."""

    def __init__(self) -> None:
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
            raise ValueError(f"to_script: two lib objects would both be called {script_name!r} in the script")
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
        """Find what the piece's code refers to, resolve it in its own module, and visit it first."""
        tree = ast.parse(piece.text)
        top = tree.body[0]
        bound = {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                bound.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not top:
                bound.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        own = top.targets[0].id if isinstance(top, ast.Assign) else getattr(top, "name", None)
        bound.discard(own)
        annotations = {id(n) for a in _annotations(tree) for n in ast.walk(a)}
        # In reading order, so that of two lib objects with one name, the first the code mentions keeps it.
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
                    self._reference(piece, node, f"{node.value.id}.{node.attr}", target, value, node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
                if node.id in piece.module.__dict__:
                    value = piece.module.__dict__[node.id]
                    if id(node) in annotations and _defined_in_lib(value):
                        continue  # not evaluated (from __future__ import annotations)
                    self._reference(piece, node, node.id, value, piece.module, node.id)
                elif not hasattr(builtins, node.id):
                    raise ValueError(f"to_script: {node.id!r} in {piece.name} is defined nowhere that lib knows")
            if isinstance(top, ast.Assign) and isinstance(node, ast.Name) and node.id == own:
                piece.refs.append((node, ("const", piece.module.__name__, own), own))

    def _reference(self, piece: _Piece, node, spelled: str, value, module: ModuleType, name: str) -> None:
        if isinstance(value, ModuleType):
            if _is_lib_module(value):
                return  # used through its attributes, each resolved on its own
            self.import_lines.add(_import_line(value, name))
            return
        if _hashable(value) and (value in _STANDIN_CLASSES or value in _STANDIN_FUNCTIONS):
            if value not in self.used_standins:
                self.used_standins.append(value)
            return
        if _defined_in_lib(value):
            key = self._lib_key(value)
            self._claim(key, value.__name__, sys.modules[value.__module__])
            piece.refs.append((node, key, spelled))
            self._visit(key, value)
            return
        if module.__name__.startswith(f"{__package__}.") and _assigned_in(module, name):
            key = ("const", module.__name__, name)
            self._claim(key, name, module)
            piece.refs.append((node, key, spelled))
            self._visit(key, (module, name))
            return
        self.import_lines.add(_import_line(value, name))

    def _add_members(self) -> None:
        """The Config and Dataset members the copied code reads (hand_loss, with_ones ...), until none is new."""
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
                piece = _Piece(sys.modules[cls.__module__], attr, textwrap.dedent(inspect.getsource(func)), "    ")
                self._scan(piece)
                self.members[cls].append(piece)

    # -- output --

    def imports(self) -> str:
        lines = sorted(self.import_lines | {"import json", "import math", "from types import SimpleNamespace"})
        for line in lines:
            top = line.split()[1].split(".")[0]
            if top not in sys.stdlib_module_names and top not in _THIRD_PARTY:
                raise ValueError(f"to_script: the loops need {top!r}, which is neither numpy, torch nor standard")
        merged: dict[str, list[str]] = {}
        for line in [line for line in lines if line.startswith("from ")]:
            _, module, _, name = line.split()
            merged.setdefault(module, []).append(name)
        lines = [line for line in lines if not line.startswith("from ")]
        lines += [f"from {module} import {', '.join(sorted(names))}" for module, names in merged.items()]
        third = [line for line in lines if line.split()[1].split(".")[0] in _THIRD_PARTY]
        std = [line for line in lines if line not in third]
        by_kind = [sorted(group, key=lambda s: (s.startswith("from"), s)) for group in (std, third)]
        return "from __future__ import annotations\n\n" + "\n\n".join("\n".join(g) for g in by_kind if g)

    def standins(self, init_how: str) -> list[str]:
        parts = []
        for cls, doc in _STANDIN_CLASSES.items():
            body = "\n\n".join(textwrap.indent(self._emit(p), p.indent) for p in self.members[cls])
            parts.append(f'class {cls.__name__}(SimpleNamespace):\n    """{doc}"""' + (f"\n\n{body}" if body else ""))
        for func in self.used_standins:
            if func in _STANDIN_FUNCTIONS:
                signature = inspect.getsource(func).split("\n", 1)[0]  # the real def line: same name, same arguments
                parts.append(f"{signature}\n    " + _STANDIN_FUNCTIONS[func].format(how=init_how))
        return parts

    def pieces(self) -> list[str]:
        return [self._emit(self.found[key], key) for key in self.order]

    def _emit(self, piece: _Piece, key: tuple | None = None) -> str:
        """The piece's source with every reference spelled as the script names it."""
        lines = [line.encode() for line in piece.text.split("\n")]
        edits = [(n.lineno, n.col_offset, n.end_col_offset, self.names[k]) for n, k, spelled in piece.refs]
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
        value.__name__ == __package__ or value.__name__.startswith(f"{__package__}.")
    )


def _defined_in_lib(value) -> bool:
    return (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__.startswith(f"{__package__}.")


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
    for node in ast.parse(source).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            if len(targets) != 1:
                raise ValueError(f"to_script: {module.__name__}.{name} is assigned with others; cannot copy it alone")
            return "\n".join(source.split("\n")[node.lineno - 1 : node.end_lineno])
    raise ValueError(f"to_script: cannot find where {module.__name__}.{name} is assigned")


def _import_line(value, name: str) -> str:
    """How the script imports an outside module or object under the name lib's code uses."""
    if isinstance(value, ModuleType):
        package, _, last = value.__name__.rpartition(".")
        if last == name:
            return f"from {package} import {name}" if package else f"import {name}"
        return f"import {value.__name__} as {name}"
    # Some standard types say they live in builtins but are imported from elsewhere (types.MappingProxyType).
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
    # The file name is the learner's: inside the docstring it goes through _one_line, which cannot close it.
    where = (
        f"read from {_one_line(repr(csv_name))}, which must sit next to this script" if csv_name else "embedded below"
    )
    return (
        '"""Rerun of a training-loop-twins run: the hand-written numpy loop and the torch loop, in lockstep.\n'
        "\n"
        "Needs only numpy and torch: python this_file.py\n"
        f"Data: {_one_line(data.name)}, {data.m:,} samples x {data.n} features, {where}.\n"
        f"{_one_line(_config_call(cfg))}\n"
        'The last printed line is JSON {"manual": [...], "torch": [...]}: each loop\'s final weights.\n'
        '"""'
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
        if ast.literal_eval(text) != value:  # every field is a plain literal; refuse to write a wrong one
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
    # repr of a Python float round-trips exactly; inf and nan never get here (Dataset and Config refuse them).
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def _embedded_data(data: Dataset) -> str:
    head = f"# The data: {_one_line(data.name)} ({data.m:,} x {data.n})."
    names = f"DATA = Dataset(X=X, y=y, feature_names={data.feature_names!r}, name={_one_line(data.name)!r})"
    if data.m * (data.n + 1) <= MAX_READABLE:
        rows = ",\n".join("    " + _float_list(row) for row in data.X)
        return f"{head}\nX = np.array([\n{rows},\n])\ny = np.array({_float_list(data.y)})\n{names}"
    # Too many numbers to read anyway: the exact float64 bytes, little-endian, base64-encoded.
    x64 = base64.b64encode(data.X.astype("<f8").tobytes()).decode("ascii")
    y64 = base64.b64encode(data.y.astype("<f8").tobytes()).decode("ascii")
    return (
        f"{head} The exact float64 values, little-endian, base64-encoded.\n"
        f'X = np.frombuffer(base64.b64decode("{x64}"), dtype="<f8").reshape({data.m}, {data.n}).copy()\n'
        f'y = np.frombuffer(base64.b64decode("{y64}"), dtype="<f8").copy()\n'
        f"{names}"
    )


def _csv_data(data: Dataset, csv_name: str, target: str | None) -> str:
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
'''


_MAIN = '''
# ---- The run: both loops in lockstep, stopped where lib.run stops ----


def main() -> None:
    """Run both loops on the same batches from the same init, then print each loop's final weights."""
    manual, twin, init = LOOPS(DATA, CONFIG)
    steps, w_m, w_t = 0, init, init
    with np.errstate(all="ignore"):
        for step in range(CONFIG.iterations):
            loss_m, w_m, g_m = next(manual)
            loss_t, w_t, g_t = next(twin)
            steps = step + 1
            # As lib.run: a non-finite loss, gradient or weight in either loop (inf - inf is nan) ends the run.
            diff = float(np.max(np.abs(w_m - w_t)))
            finite = math.isfinite(loss_m + loss_t + diff) and np.isfinite(g_m).all() and np.isfinite(g_t).all()
            if not finite:
                print(f"diverged at step {step}: try a smaller learning rate than {CONFIG.lr:g}")
                break
    # The loops yield their live weight arrays: these are the weights after the last step.
    w_m, w_t = np.asarray(w_m, dtype=np.float64), np.asarray(w_t, dtype=np.float64)
    print(f"{steps:,} steps of {CONFIG.iterations:,}")
    print(f"{'weight':>12} {'manual':>24} {'torch':>24}")
    for name, a, b in zip(WEIGHT_NAMES, w_m, w_t):
        print(f"{name:>12} {float(a)!r:>24} {float(b)!r:>24}")
    print(f"max |manual - torch| = {np.max(np.abs(w_m - w_t)):.3g}")
    print(json.dumps({"manual": w_m.tolist(), "torch": w_t.tolist()}))


if __name__ == "__main__":
    main()
'''
