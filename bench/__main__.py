"""`make bench`: time lib.run against the bare loops and torch + TensorBoard; measure a 1M-step run.

python -m bench            the full benchmark (several minutes), printed and written to
                           bench/RESULTS.md
python -m bench --quick    a short smoke run (printed only)
python -m bench --profile  also print where lib.run spends its time, stage by stage, for each case
python -m bench --gap      only torch's time per step against numpy's as the batch and the
                           features grow (bench/gap.py), written as the last section of
                           bench/RESULTS.md
python -m bench --parallel only lib.run_parallel against a bare DDP loop (bench/parallel.py),
                           its section of bench/RESULTS.md replaced
python -m bench --only "whole loop" --skip-memory --skip-gap --out /tmp/rows.md
                           only the rows whose label contains the text (here issue 12's)
python -m bench --sweep    only lib.sweep's 6 x 6 map against its cells run one by one, and its
                           memory (bench/sweep.py), written as its section of bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="short runs, 5,000-step memory run, no RESULTS.md"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch and BLAS threads for every contender"
    )
    parser.add_argument(
        "--memory-steps", type=int, default=None, help="steps of the memory run (default 1,000,000)"
    )
    parser.add_argument(
        "--skip-memory", action="store_true", help="leave out the memory and chart measurement"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print where lib.run spends its time, stage by stage, for each case",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the results (default bench/RESULTS.md)",
    )
    parser.add_argument(
        "--gap",
        action="store_true",
        help="only the torch / numpy time per step grid (bench/gap.py); --quick: 2 x 2",
    )
    parser.add_argument(
        "--only",
        default=None,
        metavar="TEXT",
        help="only the rows whose label contains TEXT, e.g. 'whole loop' (give --out with it)",
    )
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="only run_parallel against a bare DDP loop (bench/parallel.py); --quick: 300 steps",
    )
    parser.add_argument(
        "--sessions",
        action="store_true",
        help="only the class on one server: 40 browser sessions at once (bench/sessions.py); "
        "--quick: 10",
    )
    parser.add_argument(
        "--skip-parallel", action="store_true", help="leave out the data-parallel section"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="only lib.sweep's speed ratio, pool overhead and memory (bench/sweep.py)",
    )
    parser.add_argument(
        "--skip-sweep",
        action="store_true",
        help="leave out lib.sweep's section (an earlier one in --out is kept)",
    )
    parser.add_argument(
        "--skip-gap",
        action="store_true",
        help="leave out the grid (an earlier one in --out is kept)",
    )
    return parser.parse_args()


def selected(args: argparse.Namespace) -> list:
    """The cases to time: every row, or those whose label contains --only."""
    from . import timing

    rows = timing.cases(args.quick) + timing.breadth_cases(args.quick)
    rows += timing.whole_loop_cases(args.quick)
    if args.only is None:
        return rows
    chosen = [case for case in rows if args.only in case.label]
    if not chosen:
        raise SystemExit(f"no benchmark row's label contains {args.only!r}")
    return chosen


def gap_lines(quick: bool) -> list[str]:
    """Measure the torch / numpy grid of bench/gap.py and return its RESULTS.md section."""
    from . import gap, timing

    ns, batches = (gap.QUICK_NS, gap.QUICK_BATCHES) if quick else (gap.NS, gap.BATCHES)
    rounds = 1 if quick else 5
    print(f"gap: n in {ns} x batch in {batches}, {rounds} interleaved rounds ...", flush=True)
    rows = gap.measure(
        ns, batches, rounds=rounds, repeats=5 if quick else 30, budget=0.05 if quick else 0.2
    )
    phases = gap.breakdown(tries=1 if quick else 3, budget=0.05 if quick else 0.2)
    return gap.section(rows, rounds, timing.machine(), phases)


def memory_run(steps: int, threads: int) -> dict:
    """Run bench.memory in a fresh process, so its peak RSS is the run's own."""
    root = HERE.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--steps", str(steps), "--threads", str(threads)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.memory failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


METHODS = {
    "VmHWM after clear_refs": "a fresh subprocess (bench/memory.py); its peak RSS (VmHWM) is reset "
    "to the current RSS by writing 5 to /proc/self/clear_refs just before the run and read after "
    "it",
    "ru_maxrss": "a fresh subprocess (bench/memory.py); ru_maxrss after the run minus ru_maxrss "
    "before it (an undercount if an import-time peak was higher)",
}


def memory_lines(mem: dict) -> list[str]:
    """The memory and chart findings in words."""
    lines = [
        f"- memory: a {mem['steps']:,}-step lib.run ({mem['config']}) raised the process's peak "
        "RSS by "
        f"**{mem['run_added_mb']:.0f} MB** (target < 150 MB; the recorded arrays themselves are "
        f"{mem['recorded_mb']:.0f} MB; baseline RSS after imports and a 10-step warm-up "
        f"{mem['baseline_mb']:.0f} MB). "
        f"Method: {METHODS.get(mem['method'], mem['method'])}. "
        f"The run took {mem['run_seconds']:.1f} s.",
    ]
    charts = mem["charts"]
    if charts is None:
        lines.append(
            "- charts: `lib.charts.all_charts` does not exist yet, so chart build time was not "
            "measured."
        )
    else:
        lines.append(
            f"- charts: `lib.charts.all_charts(result)` for that {mem['steps']:,}-step result "
            "built "
            f"{charts['count']} charts in **{charts['build_ms_median']:.0f} ms** (median of 3; "
            "first call "
            f"{charts['build_ms_first']:.0f} ms; target < 150 ms); `chart.to_dict()` of all of "
            "them, which "
            f"st.altair_chart does before sending, took {charts['to_dict_ms_median']:.0f} ms more. "
            f"Peak RSS with the charts: +{charts['peak_added_mb']:.0f} MB above baseline."
        )
    return lines


def main() -> None:
    args = parse_args()
    if args.only is not None and args.out is None and not args.quick:
        raise SystemExit("--only writes a partial table: give --out too (RESULTS.md is kept whole)")
    # BLAS and OpenMP read these when numpy and torch are first imported, so set them before that.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import torch

    from . import gap, timing

    torch.set_num_threads(args.threads)
    from . import sweep as sweeping

    if args.sweep:
        lines = sweeping.measure(args.quick)
        print("\n" + "\n".join(lines))
        out = args.out or (None if args.quick else HERE / "RESULTS.md")
        if out is not None:
            sweeping.write_section(out, lines)
            print(f"\nwritten to {out}")
        return
    if args.gap:
        lines = gap_lines(args.quick)
        print("\n" + "\n".join(lines))
        out = args.out or (None if args.quick else HERE / "RESULTS.md")
        if out is not None:
            gap.write_section(out, lines)
            print(f"\nwritten to {out}")
        return
    if args.sessions:
        from . import sessions

        lines = sessions.run(args.quick)
        print("\n" + "\n".join(lines))
        out = args.out or (None if args.quick else HERE / "RESULTS.md")
        if out is not None:
            sweeping.write_section(out, lines, heading=sessions.HEADING)
            print(f"\nwritten to {out}")
        return
    if args.parallel:
        from . import parallel

        lines = parallel.lines(args.quick)
        print("\n" + "\n".join(lines))
        out = args.out or (None if args.quick else HERE / "RESULTS.md")
        if out is not None:
            parallel.write_section(out, lines)
            print(f"\nwritten to {out}")
        return
    began = time.perf_counter()
    log = print
    header = ["# Benchmark: lib.run against the bare loops", "", *timing.machine(), ""]
    print("\n".join(header), flush=True)

    results = []
    for case in selected(args):
        log(f"{case.label}: {case.cfg.iterations:,} steps x {case.rounds} interleaved rounds")
        results.append(timing.time_case(case, lambda s: print(s, flush=True)))
        if args.profile and not (case.breadth or case.whole):
            from .diagnose import profile

            profile(case)

    body = [
        "Each round runs every contender once, in a rotated order, in one process. ratio = "
        "lib.run / (bare numpy +",
        "bare torch); target <= 1.10, judged on each contender's fastest round: interference from "
        "other processes",
        "only ever adds time, and on this shared 2-core machine a round varies by tens of per "
        "cent (the min-max",
        "column), so the fastest round is the least disturbed one. The seconds shown are medians, "
        "and so is the",
        "ratio of medians beside it. The ratio by CPU time uses time.process_time medians. "
        "lib.run runs and records",
        "both loops; the bare loops record nothing; torch + TensorBoard is the bare torch loop "
        "plus",
        "`SummaryWriter.add_scalar` of the loss, the grad norm and every weight at every step "
        "(writer set-up",
        "and close included), and TB / bare torch is what that recording costs.",
        "The optimizer and model rows (issue 4) pair lib's own hand loop, run alone, with the "
        "canonical torch loop",
        "for that optimizer or model (bench/ has no second hand-written copy of each): there the "
        "ratio measures what",
        "lib.run's lockstep, recording and comparing add. TensorBoard is timed for the plain-SGD "
        "rows only.",
        "The whole-loop rows (issue 12) pair the same hand loop with the whole torch loop a user "
        "writes for that Config",
        "(model.train(), zero_grad every `accumulate` micro-batches, loss / accumulate, "
        "clip_grad_norm_, step, scheduler.step(),",
        "model.eval() and torch.no_grad() on the held-out rows every eval_every steps). Every bare "
        "torch loop iterates a",
        "DataLoader as lib's does, in the fast form both use: TensorDataset, a sampler yielding "
        "whole batches of indices",
        "(lib's shared order), batch_size=None, so one indexing call makes a batch.",
        "",
        *timing.table(results),
        "",
    ]
    if not args.skip_memory:
        steps = args.memory_steps or (5_000 if args.quick else 1_000_000)
        print(f"memory run: {steps:,} steps of lib.run in a subprocess ...", flush=True)
        body += memory_lines(memory_run(steps, args.threads))
    ddp = []  # the data-parallel section, after the line that says how long all of it took
    if not args.skip_parallel and args.only is None:
        from . import parallel

        ddp = ["", *parallel.lines(args.quick)]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    took = time.perf_counter() - began
    body.append(
        f"- `python -m bench{' --quick' if args.quick else ''}` took {took:.0f} s; load average at "
        f"the end {load}."
    )
    body += ddp
    print("\n" + "\n".join(body))
    out = args.out or (None if args.quick else HERE / "RESULTS.md")
    keep_sweep = args.skip_sweep or args.only is not None
    swept = (
        (sweeping.kept_section(out) if out is not None else [])
        if keep_sweep
        else sweeping.measure(args.quick)
    )
    if swept and not keep_sweep:
        print("\n" + "\n".join(swept))
    tail = (
        (gap.kept_section(out) if out is not None else [])
        if args.skip_gap
        else gap_lines(args.quick)
    )
    if tail and not args.skip_gap:
        print("\n" + "\n".join(tail))
    if out is not None:
        from .sessions import HEADING as CLASS_HEADING

        # the class section is measured on its own (make bench-class): kept as it stands
        classes = sweeping.kept_section(out, heading=CLASS_HEADING)
        sections = (["", *swept] if swept else []) + (["", *classes] if classes else [])
        sections += ["", *tail] if tail else []
        out.write_text("\n".join(header + body + sections) + "\n")
        print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
