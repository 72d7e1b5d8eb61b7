"""`python -m bench.instructions`: lib.run against the bare loops in instructions, under callgrind.

Wall and CPU times on the shared machine move by tens of per cent with the other processes' load;
the number of instructions a run executes does not. For each benchmark row whose label contains
--only (default: the whole-loop rows), one child process under `valgrind --tool=callgrind` builds
the row's data, warms every contender up as bench/timing.py does, then runs each contender once
more with callgrind collecting only during that call, and dumps its count after it. The ratio is
lib.run's instructions over the bare numpy loop's plus the bare torch loop's, the same contenders
and pairing as the timed table (instructions are not time: a cache miss costs none, so this says
where lib.run executes more, not by how much it is slower).

How the collection is limited to one call: the child calls each contender through a ctypes
function pointer, which goes through libffi's ffi_call, and callgrind is started with
--toggle-collect and --dump-after on ffi_call: it collects only inside that call and writes one
dump file after it (a contender that itself called through ctypes would add dumps, and is refused).

Needs valgrind on PATH. Each row takes one to a few minutes of CPU (the interpreter runs about 50
times slower under callgrind). --keep DIR keeps the dump files, for callgrind_annotate.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def _rows(only: str, quick: bool) -> list:
    from . import timing

    rows = timing.cases(quick) + timing.breadth_cases(quick) + timing.whole_loop_cases(quick)
    chosen = [case for case in rows if only in case.label]
    if not chosen:
        raise SystemExit(f"no benchmark row's label contains {only!r}")
    return chosen


def torch_loop_alone(data, cfg) -> None:
    """lib's torch generator for the Config drained alone, recording nothing (for --split)."""
    from lib.engine import lockstep

    _, twin, _ = lockstep.loops(data, cfg)  # the hand generator is made but never started
    for _ in range(cfg.iterations):
        next(twin)


def _contenders(case) -> dict:
    from . import timing

    if case.whole:
        found = timing.WHOLE_CONTENDERS
    else:
        found = timing.BREADTH_CONTENDERS if case.breadth else timing.CONTENDERS
    return {**found, "lib torch loop alone": torch_loop_alone}


def child(label: str, quick: bool, names: list[str]) -> None:
    """Inside valgrind: warm up, then run each named contender once through ffi_call."""
    import torch

    torch.set_num_threads(1)
    (case,) = [c for c in _rows(label, quick) if c.label == label]
    contenders = _contenders(case)
    data = case.data()
    warm = case.cfg.replace(iterations=min(50, case.cfg.iterations))
    for run in contenders.values():
        run(data, warm)  # as bench/timing.py: lazy imports and torch's first-op set-up
    pointer = ctypes.CFUNCTYPE(ctypes.c_int)
    for name in names:
        run = contenders[name]

        def measured(run=run) -> int:
            run(data, case.cfg)
            return 0

        pointer(measured)()  # Python -> ffi_call -> measured: collected, then dumped


def count(case, quick: bool, names: list[str], keep: Path | None) -> dict[str, int]:
    """Instructions of one call of each named contender, in one callgrind child process."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on PATH: install it (apt-get install valgrind)")
    out = Path(tempfile.mkdtemp(prefix="bench-cg-")) if keep is None else keep
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"callgrind.{abs(hash(case.label)) % 10**8}"
    for old in out.glob(f"{stem.name}*"):
        old.unlink()
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])
        ),
    }
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--toggle-collect=ffi_call",
        "--dump-after=ffi_call",
        f"--callgrind-out-file={stem}",
        sys.executable,
        "-m",
        "bench.instructions",
        "--child",
        case.label,
        *(["--quick"] if quick else []),
        "--contenders",
        ",".join(names),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"callgrind child failed:\n{done.stderr[-3000:]}")
    dumps = sorted(
        (p for p in out.glob(f"{stem.name}.*") if p.suffix.lstrip(".").isdigit()),
        key=lambda p: int(p.suffix[1:]),
    )
    totals = []
    for path in dumps:
        found = TOTAL.search(path.read_text())
        if found and int(found.group(1)) > 0:
            totals.append(int(found.group(1)))
    if len(totals) != len(names):
        raise RuntimeError(
            f"expected {len(names)} dumps with a count, found {len(totals)} in {out}"
        )
    if keep is None:
        shutil.rmtree(out, ignore_errors=True)
    return dict(zip(names, totals, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--only", default="whole loop", help="rows whose label contains this")
    parser.add_argument("--quick", action="store_true", help="the rows' quick (short) versions")
    parser.add_argument("--keep", type=Path, default=None, help="keep the dump files here")
    parser.add_argument(
        "--split",
        action="store_true",
        help="also count lib's torch generator drained alone: lib.run's extra instructions split "
        "into the torch twin's (against the bare torch loop) and the lockstep's own",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--contenders", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.quick, args.contenders.split(","))
        return
    split = "| of which torch twin per step | lockstep per step " if args.split else ""
    print(
        "| config | steps | lib.run Minstr | bare numpy Minstr | bare torch Minstr "
        f"| lib.run / pair | lib.run extra per step {split}|"
    )
    print("|---|---:|---:|---:|---:|---:|---:|" + "---:|" * (2 * args.split))
    for case in _rows(args.only, args.quick):
        names = ["lib.run", "bare numpy", "bare torch"] + ["lib torch loop alone"] * args.split
        got = count(case, args.quick, names, args.keep)
        pair = got["bare numpy"] + got["bare torch"]
        steps = case.cfg.iterations
        line = (
            f"| {case.label} | {steps:,} | {got['lib.run'] / 1e6:,.1f} "
            f"| {got['bare numpy'] / 1e6:,.1f} | {got['bare torch'] / 1e6:,.1f} "
            f"| **{got['lib.run'] / pair:.3f}** | {(got['lib.run'] - pair) / steps:,.0f} |"
        )
        if args.split:
            twin = got["lib torch loop alone"] - got["bare torch"]
            line += f" {twin / steps:,.0f} | {(got['lib.run'] - pair - twin) / steps:,.0f} |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
