"""`python -m bench --sweep`: lib.sweep's wall time against its cells run one by one, the pool's
overhead per cell, and the memory of a sweep's process tree for each start method.

Speed: the 6 x 6 grid (6 learning rates, 6 batch sizes, 500 steps a cell) is run cell by cell in
this process (one torch thread) and as one lib.sweep with a worker per core, in interleaved rounds;
ratio = sweep wall time / (the cells' single-run total / workers), judged on the fastest round of
each (target <= 1.15). The pool's overhead per cell is the core time of a sweep of 1-step cells
beyond what those cells take when run alone, per cell.

Memory: a fresh process imports streamlit and lib as the server does, then runs a sweep; the PSS
(proportional set size: shared pages split between the processes that share them) of it and its
workers is summed and sampled every 20 ms. `python -m bench.sweep --child fork` is that process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HEADING = "## lib.sweep: the learning-rate x batch-size map on every core"
ROOT = Path(__file__).resolve().parent.parent
SIZES = (4, 8, 16, 32, 64, 200)  # 200: full batch of the 200 rows
TARGET = 1.15
MEMORY_BUDGET_MB = 600  # the whole server process tree (tests/test_deploy.py)


def case(quick: bool = False, iterations: int | None = None):
    """(data, cfg, lrs, batch_sizes): the 6 x 6 grid of 500-step runs (quick: 3 x 2 of 100)."""
    import lib

    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    lrs = np.geomspace(1e-3, 0.3, 3 if quick else 6)
    sizes = SIZES[-2:] if quick else SIZES
    steps = iterations or (100 if quick else 500)
    return data, lib.Config(iterations=steps), [float(x) for x in lrs], list(sizes)


def singles(data, cfg, lrs, sizes) -> float:
    """Seconds to run every cell one after the other with lib.run in this process."""
    return singles_cpu(data, cfg, lrs, sizes)[0]


def singles_cpu(data, cfg, lrs, sizes) -> tuple[float, float]:
    """(wall, CPU) seconds to run every cell one after the other with lib.run in this process."""
    import lib

    began, cpu = time.perf_counter(), time.process_time()
    for lr in lrs:
        for b in sizes:
            lib.run(data, cfg.replace(lr=lr, batch_size=b))
    return time.perf_counter() - began, time.process_time() - cpu


def speed(quick: bool = False, rounds: int = 3, log: Callable = print) -> dict:
    """The sweep against its cells run alone, over interleaved rounds; fastest and median."""
    import lib

    data, cfg, lrs, sizes = case(quick)
    lib.run(data, cfg)  # warm-up: torch's first step
    alone, swept, inside, workers, cpu_alone, cpu_inside, single = [], [], [], 1, [], [], []
    load = os.getloadavg()
    for r in range(rounds):
        wall, cpu = singles_cpu(data, cfg, lrs, sizes)
        alone.append(wall)
        cpu_alone.append(cpu)
        s = lib.sweep(data, cfg, lrs, sizes)
        swept.append(s.seconds)
        inside.append(sum(c.wall for c in s.cells))
        cpu_inside.append(sum(c.cpu for c in s.cells))
        single.append(lib.sweep(data, cfg, lrs, sizes, workers=1).seconds)
        workers = s.workers
        log(
            f"  round {r + 1}: alone {alone[-1]:.2f} s, sweep {swept[-1]:.2f} s ({workers} workers)"
        )
    one = case(quick, iterations=1)
    overhead = []
    for _ in range(rounds):
        base = singles(*one)
        s = lib.sweep(*one)
        overhead.append((s.seconds * s.workers - base) / s.total)
    best_alone, best_swept = min(alone), min(swept)
    return {
        "grid": f"{len(lrs)} x {len(sizes)}",
        "sizes": sizes,
        "iterations": cfg.iterations,
        "cells": len(lrs) * len(sizes),
        "workers": workers,
        "rounds": rounds,
        "alone_s": best_alone,
        "sweep_s": best_swept,
        "ratio": best_swept / (best_alone / workers),
        "ratio_median": statistics.median(swept) / (statistics.median(alone) / workers),
        "ratios": [s / (a / workers) for a, s in zip(alone, swept, strict=True)],
        "inside_over_alone": min(inside) / best_alone,
        "one_worker": min(single) / best_alone,
        "cpu_inside_over_alone": statistics.median(cpu_inside) / statistics.median(cpu_alone),
        "load": (load, os.getloadavg()),
        "overhead_ms": 1e3 * min(overhead),
    }


def tree_pss_mb(pid: int) -> tuple[float, int]:
    """(PSS of the process and its descendants in MB, how many processes that is)."""
    import psutil

    root = psutil.Process(pid)
    total, count = 0, 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / 2**20, count


def sweep_memory(method: str = "fork", quick: bool = True) -> dict:
    """Peak PSS of a server-like process tree while it runs a sweep with that start method."""
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.sweep", "--child", method, *(["--quick"] if quick else [])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "ready", "the child did not start"
        baseline, _ = tree_pss_mb(child.pid)
        samples = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(tree_pss_mb(child.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        child.stdin = None
        line = child.stdout.readline().strip()
        done.set()
        sampler.join()
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    peak, processes = max(samples, default=(baseline, 1))
    return {
        "method": method,
        "baseline_mb": baseline,
        "peak_mb": peak,
        "processes": max(n for _, n in samples) if samples else 1,
        "per_worker_mb": (peak - baseline) / max(1, processes - 1),
        "cells": int(line.split()[1]) if line.startswith("done") else 0,
    }


def run_child(method: str, quick: bool) -> None:
    """The measured process: the server's imports, a warm-up run, then one sweep."""
    import streamlit  # noqa: F401  (the server has it imported)
    import torch

    import lib
    import lib.lessons.sweep as sweeping

    torch.set_num_threads(1)
    data, cfg, lrs, sizes = case(quick)
    lib.run(data, cfg)
    print("ready", flush=True)
    time.sleep(0.2)  # the baseline is read while this process waits
    sweeping.START_METHOD = method
    s = lib.sweep(data, cfg, lrs, sizes)
    print(f"done {len(s.cells)}", flush=True)


def lines(result: dict, memory: list[dict]) -> list[str]:
    """The section of bench/RESULTS.md."""
    r = result
    spread = ", ".join(f"{x:.2f}" for x in r["ratios"])
    out = [
        HEADING,
        "",
        f"`python -m bench --sweep`: a {r['grid']} grid of {r['iterations']:,}-step runs (linear "
        "data, m=200, n=3, mse, sgd; learning rates 1e-3 to 0.3, batch sizes "
        f"{', '.join(map(str, r['sizes']))}) as one lib.sweep on {r['workers']} worker processes, "
        f"against the same {r['cells']} cells run one by one with lib.run in one process; "
        f"{r['rounds']} interleaved rounds.",
        "",
        f"- ratio = sweep wall time / (single-run total / {r['workers']} workers), fastest rounds: "
        f"**{r['ratio']:.2f}** (target <= {TARGET:.2f}); ratio of medians {r['ratio_median']:.2f}; "
        f"per round {spread}. Fastest sweep {r['sweep_s']:.2f} s, fastest single-run total "
        f"{r['alone_s']:.2f} s.",
        f"- the cells' lib.run time inside the workers / the same runs alone: "
        f"{r['inside_over_alone']:.2f} by wall time (fastest rounds), "
        f"**{r['cpu_inside_over_alone']:.2f}** by CPU time (medians; the workers' first "
        "touches of the memory they share with the caller count there too); wall time above "
        "CPU time is time the workers waited for a core (load average "
        + ", ".join(f"{x:.2f}" for x in r["load"][0])
        + " at the start, "
        + ", ".join(f"{x:.2f}" for x in r["load"][1])
        + " at the end).",
        f"- the same sweep on one worker process / the cells run alone: **{r['one_worker']:.2f}** "
        "(fastest rounds): the pool's own cost, measured where one free core is enough (the "
        "sweep on every worker needs them all free).",
        f"- pool overhead per cell (a sweep of 1-step cells: its core time beyond those cells run "
        f"alone, per cell; pool start and shut-down included): **{r['overhead_ms']:.1f} ms**.",
    ]
    for m in memory:
        out.append(
            f"- memory, start method {m['method']!r}: a process that imported streamlit and lib "
            f"had {m['baseline_mb']:.0f} MB PSS; while its sweep ran, it and its workers "
            f"({m['processes'] - 1}) peaked at **{m['peak_mb']:.0f} MB PSS** "
            f"(+{m['per_worker_mb']:.0f} MB per worker; the server's budget is "
            f"{MEMORY_BUDGET_MB} MB)."
        )
    return out


def write_section(path: Path, section: list[str], heading: str = HEADING) -> None:
    """Put the section into path in place of an earlier copy (the one under heading), else just
    before the gap grid (bench/gap.py's section, always last), else at the end."""
    from .gap import HEADING as GAP_HEADING

    text = path.read_text() if path.exists() else ""
    after = ""
    if heading in text:
        head, rest = text.split(heading, 1)
        nxt = rest.find("\n## ")
        after = rest[nxt + 1 :] if nxt >= 0 else ""
        text = head
    elif GAP_HEADING in text:
        cut = text.index(GAP_HEADING)
        text, after = text[:cut], text[cut:]
    body = text.rstrip("\n") + "\n\n" if text.strip() else ""
    path.write_text(body + "\n".join(section) + "\n" + ("\n" + after if after else ""))


def kept_section(path: Path, heading: str = HEADING) -> list[str]:
    """The section under heading as it stands in path (empty if none), for a rewrite of the rest
    to keep."""
    text = path.read_text() if path.exists() else ""
    if heading not in text:
        return []
    rest = text[text.index(heading) :]
    nxt = rest.find("\n## ", 1)
    return (rest[:nxt] if nxt >= 0 else rest).rstrip("\n").splitlines()


def measure(quick: bool, log: Callable = print) -> list[str]:
    """Everything above, as the section's lines."""
    log("sweep: speed ...")
    result = speed(quick, rounds=2 if quick else 5, log=log)
    memory = []
    for method in ("fork", "spawn"):
        log(f"sweep: memory with {method} ...")
        memory.append(sweep_memory(method, quick=True))
    return lines(result, memory)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", default=None, help="run the measured sweep (start method)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.quick)
    else:
        print("\n".join(measure(args.quick)))
