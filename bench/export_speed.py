"""How long lib's script specialiser takes: twin_sources (what the twin table and the Code map
show) and to_script, per configuration, median of 3 in one process.

python -m bench.export_speed                  this tree's lib
python -m bench.export_speed --against REV    also a git revision's lib (extracted to a temporary
                                              directory and run in its own process), and the ratio

Not part of `make bench`: it measures lib.io.export alone, in seconds (CPU time of this process,
which machine load disturbs less than the wall clock; both are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (label, Config keywords): the case the issue names first, then one of each kind of branch
CASES = (
    ("cosine", {"iterations": 20, "scheduler": "cosine"}),
    ("default", {"iterations": 20}),
    ("adam + onecycle", {"iterations": 20, "optimizer": "adam", "scheduler": "onecycle"}),
    ("mlp relu bce", {"iterations": 20, "model": "mlp", "activation": "relu", "loss": "bce"}),
    (
        "mlp, clip, accumulate 3, val 0.2",
        {
            "iterations": 20,
            "model": "mlp",
            "clip_grad_norm": 1.0,
            "accumulate": 3,
            "val_fraction": 0.2,
            "eval_every": 4,
        },
    ),
)


def measure(repeats: int = 3) -> dict[str, dict[str, float]]:
    """{label: {"cpu": s, "wall": s}} for twin_sources on data of 3 features, and for the whole
    short script of lib.datasets.linear() (lib.datasets.moons() for the bce loss)."""
    import numpy as np

    import lib
    from lib.io.export import twin_sources

    shape = lib.Dataset(np.zeros((2, 3)), np.array([0.0, 1.0]), name="shape")
    linear, moons = lib.datasets.linear(), lib.datasets.moons()
    twin_sources(shape, lib.Config(iterations=2))  # imports and first-call costs
    out = {}
    for label, kwargs in CASES:
        for what, call in (
            ("twin_sources", lambda cfg: twin_sources(shape, cfg.replace(batch_size=1))),
            ("to_script", lambda cfg: lib.to_script(moons if cfg.loss == "bce" else linear, cfg)),
        ):
            cpu, wall = [], []
            for seed in range(repeats):  # a new Config each time: nothing can be reused
                cfg = lib.Config(seed=seed, **kwargs)
                t, p = time.perf_counter(), time.process_time()
                call(cfg)
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - p)
            out[f"{what}: {label}"] = {
                "cpu": statistics.median(cpu),
                "wall": statistics.median(wall),
            }
    return out


def _baseline(rev: str) -> dict[str, dict[str, float]]:
    """measure() of lib as it is at git revision rev, in a process of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "lib"], check=True, capture_output=True
        ).stdout
        archive_path = Path(tmp) / "lib.tar"
        archive_path.write_bytes(archive)
        with tarfile.open(archive_path) as tar:
            tar.extractall(tmp, filter="data")
        env = {**os.environ, "PYTHONPATH": tmp}
        code = (
            f"import sys, json; sys.path.append({str(ROOT)!r}); "
            "from bench.export_speed import measure; print(json.dumps(measure()))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=tmp, check=True, capture_output=True
        )
        return json.loads(done.stdout.decode().strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export_speed")
    parser.add_argument("--against", help="a git revision whose lib to time as well")
    args = parser.parse_args()
    now = measure()
    before = _baseline(args.against) if args.against else None
    print(f"{'case':48} {'cpu s':>8} {'wall s':>8}" + ("   before cpu s   ratio" if before else ""))
    for label, t in now.items():
        line = f"{label:48} {t['cpu']:8.3f} {t['wall']:8.3f}"
        if before:
            old = before[label]["cpu"]
            line += f"   {old:12.3f}   {old / t['cpu']:5.1f}x"
        print(line)


if __name__ == "__main__":
    main()
