"""`python -m bench --gap`: torch's time per step against numpy's as the batch and features grow.

Each cell is lib.speed.step_times on synthetic linear data: the fastest next() of each of the two
generators lib.run zips, over several interleaved rounds of the whole grid, in one thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lib
from lib import speed

NS = (3, 30, 100, 300)
BATCHES = (1, 32, 1_000, 10_000)
QUICK_NS = (3, 30)
QUICK_BATCHES = (1, 32)
HEADING = "## torch against numpy per step, as the batch and the features grow"


def case(n: int, batch: int) -> tuple[lib.Dataset, lib.Config]:
    """Linear data with n features and at least two batches per epoch (so batches are shuffled
    and indexed)."""
    data = lib.datasets.linear(m=max(2 * batch, 1_000), n=n, noise=0.1, seed=0)
    # A small lr: with n=300 and batch 1, lr 0.01 diverges, and the timing should be of finite
    # numbers.
    return data, lib.Config(lr=1e-4, batch_size=batch, iterations=1_000, loss="mse")


def measure(
    ns=NS,
    batches=BATCHES,
    rounds: int = 3,
    repeats: int = 30,
    budget: float = 0.2,
    log: Callable = print,
) -> list[dict]:
    """One row per (n, batch): each loop's fastest step in us over `rounds` interleaved rounds of
    the grid."""
    if not (isinstance(rounds, int) and rounds >= 1):
        raise ValueError(f"rounds must be a whole number >= 1; got {rounds!r}")
    cases = {(n, b): case(n, b) for n in ns for b in batches}
    best = {key: [float("inf"), float("inf"), 0] for key in cases}
    for r in range(rounds):
        for key, (data, cfg) in cases.items():
            manual_us, torch_us, tried = speed.step_times(data, cfg, repeats, budget)
            row = best[key]
            row[0], row[1], row[2] = min(row[0], manual_us), min(row[1], torch_us), row[2] + tried
        log(f"  gap round {r + 1}/{rounds} done")
    return [
        {"n": n, "batch": b, "manual_us": m, "torch_us": t, "ratio": t / m, "steps": k}
        for (n, b), (m, t, k) in best.items()
    ]


def _us(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def table(rows: list[dict]) -> list[str]:
    """A markdown grid: features down, batch across; each cell torch / numpy, then the two times
    in us."""
    ns = sorted({r["n"] for r in rows})
    batches = sorted({r["batch"] for r in rows})
    cell = {(r["n"], r["batch"]): r for r in rows}
    lines = [
        "| features n | " + " | ".join(f"batch {b:,}" for b in batches) + " |",
        "|---:|" + "---:|" * len(batches),
    ]
    for n in ns:
        cells = []
        for b in batches:
            r = cell[(n, b)]
            cells.append(
                f"**{speed.times(r['ratio'])}** ({_us(r['torch_us'])} / {_us(r['manual_us'])} µs)"
            )
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


BREAKDOWN = ((3, 32), (100, 1_000))  # (n, batch) whose step is broken down phase by phase


def breakdown(cases=BREAKDOWN, tries: int = 3, budget: float = 0.2) -> list[str]:
    """lib.speed.step_costs phase by phase for a few grid cells (the call with the fastest torch
    step of `tries`)."""
    if not (isinstance(tries, int) and tries >= 1):
        raise ValueError(f"tries must be a whole number >= 1; got {tries!r}")
    measured = []
    for n, batch in cases:
        data, cfg = case(n, batch)
        measured.append(
            min(
                (speed.step_costs(data, cfg, budget=budget) for _ in range(tries)),
                key=lambda c: c.torch_us,
            )
        )
    head = "| phase | " + " | ".join(
        f"n={c.features}, batch {c.batch:,}: torch / numpy µs (torch ops)" for c in measured
    )
    lines = [head + " |", "|---|" + "---:|" * len(measured)]
    for phase in (*speed.PHASES, "whole step"):
        cells = []
        for c in measured:
            if phase == "whole step":
                cells.append(f"**{_us(c.torch_us)} / {_us(c.manual_us)}** ({c.ops_per_step})")
            else:
                ops = "" if c.torch_ops is None else f" ({c.torch_ops[phase]})"
                cells.append(f"{_us(c.torch_phases[phase])} / {_us(c.manual_phases[phase])}{ops}")
        name = phase if phase == "whole step" else f"{phase}: `{speed.TORCH_LINES[phase]}`"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    one_row = ", ".join(
        f"n={c.features}: {_us(c.one_row_us['torch'])} / {_us(c.one_row_us['manual'])} µs"
        for c in measured
    )
    call = measured[0].call_us
    lines += [
        "",
        f"The same steps on one-row batches (torch / numpy): {one_row}. A 1-element add: torch.add "
        f"{call['torch']:.2f} µs, np.add {call['numpy']:.2f} µs.",
    ]
    return lines


def section(rows: list[dict], rounds: int, machine: list[str], phases: list[str] = ()) -> list[str]:
    """The RESULTS.md section: heading, where and how it was measured, the grid (and the phase
    breakdown)."""
    steps = min(r["steps"] for r in rows)
    return [
        HEADING,
        "",
        *machine,
        "",
        "Each cell: torch's time per step / numpy's, then both in µs (torch / numpy), for "
        "lib.run's own two",
        "generators (`lib.speed.step_times`: next() of each, timed alone with "
        "time.perf_counter_ns after 3",
        f"warm-up steps). Fastest step over {rounds} interleaved rounds of the grid (at least "
        f"{steps} timed steps",
        "per cell in all): interference from the other processes on this shared machine only adds "
        "time. Data:",
        "`lib.datasets.linear(m=max(2 * batch, 1000), n)`, so every batch is drawn by shuffled "
        "indexing; mse,",
        "plain SGD, lr 1e-4, one torch and BLAS thread.",
        "",
        *table(rows),
        *(
            [
                "",
                "Phase by phase (`lib.speed.step_costs`: each phase's own source lines from the "
                "loop function, exec'd",
                "on the loop's own objects, the fastest of up to 30 tries; the call with the "
                "fastest torch step of 3).",
                "In brackets, the aten operations torch dispatched in that phase "
                "(TorchDispatchMode):",
                "",
                *phases,
            ]
            if phases
            else []
        ),
    ]


def write_section(path: Path, lines: list[str]) -> None:
    """Put the section at the end of path, replacing an earlier copy of it (which is always
    last)."""
    text = path.read_text() if path.exists() else ""
    if HEADING in text:
        text = text[: text.index(HEADING)]
    text = text.rstrip("\n") + "\n\n" if text.strip() else ""
    path.write_text(text + "\n".join(lines) + "\n")


def kept_section(path: Path) -> list[str]:
    """The section as it stands in path (empty if there is none), for a rewrite of the rest to
    keep."""
    text = path.read_text() if path.exists() else ""
    return text[text.index(HEADING) :].rstrip("\n").splitlines() if HEADING in text else []
