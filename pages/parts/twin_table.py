"""The twin-lines table: the five phases of a step, the torch line beside its hand-written twin."""

from __future__ import annotations

import lib
from lib.lessons.explain import PHASES, phase_source


def _one_line(code: str) -> str:
    """A phase's code lines (comments dropped) on one line, for a table cell."""
    lines = [
        line.strip()
        for line in code.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    out = ""
    for line in lines:
        out += line.split("  #")[0] + (" " if line.endswith(":") else "; ")
    return out.rstrip("; ").replace("|", "\\|")


def twin_lines_markdown(manual=lib.manual_loop) -> str:
    """A markdown table of the five phases: the torch line beside its hand-written twin.

    The cells are sliced from inspect.getsource of lib.torch_loop and the hand loop
    (lib.manual_loop, or lib.manual_mlp_loop for the mlp), the functions lib.run calls, so the table
    shows the code that runs.
    """
    hand, torch = phase_source(manual), phase_source(lib.torch_loop)
    rows = ["| step | torch | by hand (numpy) |", "|---|---|---|"]
    for phase in PHASES:
        rows.append(
            f"| {phase.lstrip('# ')} | `{_one_line(torch[phase])}` | `{_one_line(hand[phase])}` |"
        )
    return "\n".join(rows)
