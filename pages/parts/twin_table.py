"""The twin-lines table: the five phases of a step, the torch line beside its hand-written twin."""

from __future__ import annotations

from lib.lessons.explain import PHASES


def _one_line(code: str) -> str:
    """A phase's code lines (comments dropped) on one line, for a table cell."""
    lines = [
        line.strip()
        for line in code.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    out = ""
    for line in lines:
        code = line.split("  #")[0].rstrip()  # a trailing comment goes, then the colon shows
        out += code + (" " if code.endswith(":") else "; ")
    return out.rstrip("; ").replace("|", "\\|")


def twin_lines_markdown(hand: dict[str, str], torch: dict[str, str]) -> str:
    """A markdown table of the five phases: the torch line beside its hand-written twin.

    hand and torch are the loops' phases (lib.explain.phase_source), as
    pages.parts.cached.twin_phases gives them for the run on screen: lib's own source, so the table
    shows the code that runs.
    """
    rows = ["| step | torch | by hand (numpy) |", "|---|---|---|"]
    for phase in PHASES:
        cells = [_one_line(side[phase]) for side in (torch, hand)]
        shown = [f"`{cell}`" if cell else "none: this configuration skips it" for cell in cells]
        rows.append(f"| {phase.lstrip('# ')} | {shown[0]} | {shown[1]} |")
    return "\n".join(rows)
