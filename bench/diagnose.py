"""Where lib.run's time goes beyond the bare pair: `python -m bench --profile` prints this per case.

It times, interleaved and by CPU time, the steps from the bare pair to lib.run: the two bare loops
one after the other, then advanced in lockstep (optionally reading one shared copy of the data),
then lib's own two generators in lockstep without recording, then lib.run itself.
"""

from __future__ import annotations

import cProfile
import gc
import pstats
import statistics
import time

import lib
from lib.engine.lockstep import loops

from .loops import bare_lockstep, bare_numpy, bare_torch


def breakdown(data: lib.Dataset, cfg: lib.Config, rounds: int = 5) -> list[str]:
    """Median CPU microseconds per step of each stage, as lines of text."""

    def lib_generators() -> None:
        manual, twin, _ = loops(data, cfg)
        for _ in range(cfg.iterations):
            next(manual)
            next(twin)

    stages = {
        "bare numpy": lambda: bare_numpy(data, cfg),
        "bare torch": lambda: bare_torch(data, cfg),
        "bare lockstep": lambda: bare_lockstep(data, cfg),
        "bare lockstep, one shared copy of X": lambda: bare_lockstep(data, cfg, share_memory=True),
        "lib's generators in lockstep, no recording": lib_generators,
        "lib.run": lambda: lib.run(data, cfg),
    }
    seconds: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(rounds):
        for name, stage in stages.items():
            gc.collect()
            started = time.process_time()
            stage()
            seconds[name].append(time.process_time() - started)
    per_step = {name: statistics.median(s) / cfg.iterations * 1e6 for name, s in seconds.items()}
    pair = per_step["bare numpy"] + per_step["bare torch"]
    lines = [f"  bare pair (numpy + torch, one after the other): {pair:8.1f} us/step  1.00"]
    lines += [
        f"  {name + ':':<47}{us:8.1f} us/step  {us / pair:.2f}" for name, us in per_step.items()
    ]
    return lines


def profile(case) -> None:
    """Print the CPU-time breakdown and the top of a cProfile of lib.run for one case."""
    data = case.data()
    print(f"\nWhere the time goes, {case.label} (median CPU time per step, and / bare pair):")
    print("\n".join(breakdown(data, case.cfg)))
    with cProfile.Profile() as prof:
        lib.run(data, case.cfg)
    print(f"cProfile of lib.run, {case.label} (cProfile inflates the cost of small calls):")
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)
