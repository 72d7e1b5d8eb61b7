"""Peak memory of one long lib.run, and the time to chart it; run in a fresh process by bench.

python -m bench.memory --steps 1000000 --threads 1   prints one JSON object on stdout.

Method (Linux): after the imports, the data and a 10-step warm-up run, the resident set size
(VmRSS in /proc/self/status) is the baseline, and writing "5" to /proc/self/clear_refs resets the
kernel's peak RSS (VmHWM) to it; VmHWM after the run, minus the baseline, is what the run added at
its peak. Without clear_refs it falls back to ru_maxrss, which may hide a run smaller than an
earlier import-time peak.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import time


def status_mb(field: str) -> float | None:
    """A Vm* line of /proc/self/status in MB, or None where there is no such file."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> str:
    """Reset the peak RSS to the current RSS; returns the method the numbers are then measured
    by."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return "ru_maxrss"
    return "VmHWM after clear_refs"


def peak_mb() -> float:
    """Peak resident set size of this process since the last reset, in MB."""
    hwm = status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Run the measurement and print it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    import lib

    torch.set_num_threads(args.threads)
    try:
        from lib import charts
    except ImportError:
        charts = None
    if charts is not None and not hasattr(charts, "all_charts"):
        charts = None

    data = lib.datasets.linear(m=256, n=3, noise=0.1, seed=0)
    cfg = lib.Config(lr=0.01, batch_size=32, iterations=args.steps, loss="mse")
    warm = lib.run(data, cfg.replace(iterations=10))
    if charts is not None:
        charts.all_charts(warm)  # imports altair and builds once, so the baseline holds them
    gc.collect()
    method = reset_peak()
    baseline = status_mb("VmRSS") if method != "ru_maxrss" else peak_mb()

    started = time.perf_counter()
    result = lib.run(data, cfg)
    run_seconds = time.perf_counter() - started
    after_run = peak_mb()
    out = {
        "steps": result.steps,
        "config": "n=3, m=256, batch 32, mse, lr 0.01",
        "run_seconds": run_seconds,
        "method": method,
        "baseline_mb": baseline,
        "run_peak_mb": after_run,
        "run_added_mb": after_run - baseline,
        "recorded_mb": sum(
            h.loss.nbytes + h.weights.nbytes + h.grad_norm.nbytes
            for h in (result.manual, result.torch)
        )
        / 2**20,
        "charts": None,
    }
    if charts is not None:
        build, serialise = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            built = charts.all_charts(result)
            t1 = time.perf_counter()
            items = built.values() if isinstance(built, dict) else built
            for chart in items:
                # What st.altair_chart does before sending: inline the data, validate.
                chart.to_dict()
            t2 = time.perf_counter()
            build.append(t1 - t0)
            serialise.append(t2 - t1)
        out["charts"] = {
            "count": len(built),
            "build_ms_first": build[0] * 1e3,
            "build_ms_median": statistics.median(build) * 1e3,
            "to_dict_ms_median": statistics.median(serialise) * 1e3,
            "peak_added_mb": peak_mb() - baseline,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
