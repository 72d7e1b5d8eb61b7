"""Learning-rate map: final loss over a grid of learning rates and batch sizes, for both loops, run
on every core (lib.sweep), with the stability limit 2/λ_max drawn across it."""

import dataclasses
import math
import time
import urllib.parse

import numpy as np
import streamlit as st

import lib
from lib.charts.sweep import SELECTION, diff_map_chart, loss_map_chart
from lib.engine.data import split_rows
from lib.lessons.sweep import agreement_sentence, cap_sentence, full_batch_limit, limit_sentence
from pages.parts.cached import fingerprint
from pages.parts.links import link_asked, note_link
from pages.parts.navigation import through_navigation
from pages.parts.sidebar import sidebar_config
from pages.parts.widgets import KEEP, Drawn, set_by_state_api

# The grid's controls (their keys are this page's link parameters)
LR_RANGE = (1e-6, 100.0)  # as the sidebar's lr control, so every cell opens on the Compare page
DEFAULT_LRS = (0.001, 3.0, 6)  # smallest, largest, how many
MAX_LRS = 12
BATCH_OPTIONS = ("1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "full")
DEFAULT_BATCHES = ("8", "32", "full")
OWN = ("lrmap_lr_low", "lrmap_lr_high", "lrmap_lr_count", "lrmap_batches")
# Caps, so that the page never holds a shared server long
MAX_STEPS = 120_000  # cells x iterations (x micro-batches per step, with accumulation)
MAX_CELL_ITERATIONS = 20_000  # per cell: a worker's recorded history stays small
TIME_LIMIT = 60.0  # seconds for the whole sweep
# seconds of estimated wall time of a map the page runs by itself (on opening, after a change)
AUTO_SECONDS = 5.0
PROBE_STEPS, PROBE_SECONDS = 50, 0.3  # a cell's first steps, timed, for that estimate
REDRAW_EVERY = 1.0  # seconds between live redraws of the maps
state = st.session_state  # this page's own keys start with "lrmap_"

through_navigation()
st.title("Learning-rate map")
st.markdown(
    "Which learning rates train, and how does the answer move with the batch size? Each cell of "
    "the maps below is a whole run of both loops, the hand-written numpy loop and the torch "
    "loop, with that learning rate and batch size and every other setting from the sidebar; the "
    "cells run side by side, one per core. The colour is the run's **final loss**: the loss of "
    "its last step's batch (for full batch, of the whole training set); darker is lower. The "
    "sidebar's own learning rate and batch size are not used here: the grid replaces them."
)


def grid_controls(drawn: Drawn) -> tuple[float, float, int, list[str]]:
    """The grid's controls: the lr range, how many lrs, which batch sizes."""
    low, high, count = DEFAULT_LRS
    cols = st.columns([1, 1, 1, 3])
    with cols[0]:
        low = drawn.number("Smallest lr", "lrmap_lr_low", *LR_RANGE, low, format="%g")
    with cols[1]:
        high = drawn.number("Largest lr", "lrmap_lr_high", *LR_RANGE, high, format="%g")
    with cols[2]:
        count = drawn.number("Learning rates", "lrmap_lr_count", 2, MAX_LRS, count)
    with cols[3]:
        default = None if set_by_state_api("lrmap_batches") else list(DEFAULT_BATCHES)
        sizes = st.multiselect(
            "Batch sizes",
            BATCH_OPTIONS,
            default,
            key="lrmap_batches",
            help="full: every training row in one batch. Sizes at least the training rows are "
            "full batch too, and drawn as that one row.",
            **KEEP,
        )
        drawn["lrmap_batches"] = (sizes, "a list of " + ", ".join(BATCH_OPTIONS))
    return low, high, count, sizes


def the_grid(low: float, high: float, count: int, sizes: list[str], rows: int):
    """(lrs, batch sizes) of the controls, or the reason there are none, in words."""
    if not high > low:
        return f"The largest lr ({high:g}) must be above the smallest ({low:g})."
    if not sizes:
        return "Choose at least one batch size."
    # Log-spaced, rounded to three significant figures, so that each cell's link reads plainly.
    lrs = sorted({float(f"{x:.3g}") for x in np.geomspace(low, high, count)})
    batches = sorted({min(rows, int(b)) if b != "full" else rows for b in sizes})
    return lrs, batches


def caps(cfg: lib.Config, cells: int) -> str | None:
    """Why this grid is too much for the page, naming the cap; None if it fits."""
    if cfg.iterations > MAX_CELL_ITERATIONS:
        return (
            f"This page runs at most {MAX_CELL_ITERATIONS:,} iterations per cell; the sidebar asks "
            f"for {cfg.iterations:,}. Lower the iterations in the sidebar."
        )
    work = cells * cfg.iterations * cfg.accumulate
    if work > MAX_STEPS:
        what, parts = "cells × iterations", f"{cells:,} cells × {cfg.iterations:,} iterations"
        if cfg.accumulate > 1:
            what += " × micro-batches per step"
            parts += f" × {cfg.accumulate:,} micro-batches"
        return (
            f"This page runs at most {MAX_STEPS:,} steps in all ({what}); {parts} is {work:,}. "
            f"Use at most {max(1, MAX_STEPS // (cells * cfg.accumulate)):,} iterations, or fewer "
            "cells. (lib.sweep in a notebook goes further.)"
        )
    return None


def estimate(data: lib.Dataset, cfg: lib.Config, grid, key) -> float:
    """Seconds the map should take on this machine's cores: the slowest cell (smallest lr,
    largest batch) timed over its first steps, in this thread's CPU time (a busy server's wall
    time says more about the other visitors); inf if that cell cannot be timed."""
    cached = state.get("lrmap_estimate")
    if cached is not None and cached[0] == key:
        return cached[1]
    lrs, batches = grid
    first = cfg.replace(
        lr=lrs[0], batch_size=batches[-1], iterations=min(cfg.iterations, PROBE_STEPS)
    )
    cpu = time.thread_time()
    probe = lib.run(data, first, progress_every=0, time_limit=PROBE_SECONDS)
    seconds = time.thread_time() - cpu
    per_step = seconds / probe.steps if probe.steps and seconds > 0 else math.inf
    cells = len(lrs) * len(batches)
    guess = per_step * cfg.iterations * cells / min(lib.lessons.sweep.cores(), cells)
    state["lrmap_estimate"] = (key, guess)
    return guess


def compare_link(cell: lib.lessons.sweep.Cell) -> str:
    """The Compare page's URL with this page's settings (the URL's own parameters: the sidebar's
    controls keep theirs there) and the cell's lr and batch size."""
    params = [(k, v) for k in st.query_params if k not in OWN for v in st.query_params.get_all(k)]
    params = [(k, v) for k, v in params if k not in ("lr", "batch_size")]
    params += [("lr", f"{cell.lr:g}"), ("batch_size", str(cell.batch_size))]
    return "/compare?" + urllib.parse.urlencode(params)


def cell_label(cell: lib.lessons.sweep.Cell, rows: int) -> str:
    """A cell as the chooser lists it."""
    batch = f"full batch ({rows:,})" if cell.batch_size >= rows else f"batch {cell.batch_size:,}"
    if cell.diverged_at is not None:
        return f"lr {cell.lr:g} · {batch} · diverged at step {cell.diverged_at:,}"
    return f"lr {cell.lr:g} · {batch} · final loss {cell.final_loss[0]:.4g}"


def draw_maps(sweep: lib.Sweep, slots: dict, rows: int, limit, final: bool) -> list:
    """Both loops' loss maps side by side and the difference map; on the final draw, clicking a
    cell selects it: the selected (lr, batch_size) points, if any."""
    picked = []
    for loop in lib.engine.lockstep.LOOPS:
        chart = loss_map_chart(sweep, loop, full=rows, limit=limit, select=final)
        if not final:
            slots[loop].altair_chart(chart, width="stretch")
            continue
        event = slots[loop].altair_chart(
            chart,
            width="stretch",
            on_select="rerun",
            selection_mode=SELECTION,
            key=f"lrmap_pick_{loop}",
        )
        picked += event.selection.get(SELECTION, [])
    slots["diff"].altair_chart(diff_map_chart(sweep, full=rows), width="stretch")
    return picked


def adopt_interrupted() -> None:
    """A sweep whose script was interrupted (Stop, another click, Streamlit's own Stop) left its
    partial Sweep behind: keep its finished cells as the map of its settings."""
    key = state.pop("lrmap_running", None)
    partial = state.pop("lrmap_partial", None)
    if key is not None and partial is not None:
        state["lrmap_result"] = (key, dataclasses.replace(partial, stopped="stopped"))


def run_live(data, cfg, grid, key, slots, rows, limit) -> None:
    """Run the sweep, filling the maps in as cells finish, with a progress bar and Stop."""
    lrs, batches = grid
    state["lrmap_running"] = key
    with slots["status"].container():
        bar = st.progress(0.0, text="Starting the worker processes…")
        st.button("Stop", key="lrmap_stop", help="Keeps the cells that have finished.")
    drawn_at = [time.perf_counter()]

    def progress(partial: lib.Sweep) -> None:
        # Every st call is a point where a click ends this script: the partial Sweep is saved
        # first, for the rerun to keep (adopt_interrupted).
        state["lrmap_partial"] = partial
        done = len(partial.cells)
        text = f"{done:,} of {partial.total:,} cells · {partial.seconds:.0f} s"
        if partial.waiting:
            text = (
                "Waiting for another map on this server to finish (one runs at a time, on every "
                f"core) · {partial.seconds:.0f} s"
            )
        bar.progress(done / partial.total, text=text)
        if done and time.perf_counter() - drawn_at[0] >= REDRAW_EVERY:
            draw_maps(partial, slots, rows, limit, final=False)
            drawn_at[0] = time.perf_counter()

    try:
        sweep = lib.sweep(data, cfg, lrs, batches, progress, time_limit=TIME_LIMIT)
    except RuntimeError as err:
        state.pop("lrmap_running", None)
        slots["status"].error(f"The map could not be finished: {err}.")
        st.stop()
    state.pop("lrmap_running", None)
    state.pop("lrmap_partial", None)
    state["lrmap_result"] = (key, sweep)
    slots["status"].empty()


def notes(sweep: lib.Sweep, limit, why: str, rows: int) -> list[str]:
    """What the maps show, in words, for this sweep."""
    out = [sweep.message() + f" The sweep took {sweep.seconds:.1f} s."]
    if sweep.stopped == "time limit":
        out.append(
            f"Blank cells did not finish within this page's {TIME_LIMIT:.0f} s: use fewer cells or "
            "fewer iterations (lib.sweep in a notebook has no such limit)."
        )
    elif not sweep.done:
        out.append("Blank cells did not finish; press **Draw the map** to run them all.")
    diverged = sum(c.diverged_at is not None for c in sweep.cells)
    if diverged:
        out.append(
            f"Grey cells diverged ({diverged:,} of {len(sweep.cells):,}): ✕ k is the step at "
            "which a loss, a gradient or a weight of either loop first became non-finite."
        )
    if cap_sentence(sweep):
        out.append(cap_sentence(sweep))
    out.append(limit_sentence(limit, why, sweep, rows))
    if sweep.cells:
        out.append(agreement_sentence(sweep))
    return out


def chooser(sweep: lib.Sweep, picked: list, rows: int) -> None:
    """Choose a cell (or click it on a map) and open it on the Compare page."""
    cells = sorted(sweep.cells, key=lambda c: (c.lr, c.batch_size))
    if not cells:
        return
    labels = [cell_label(c, rows) for c in cells]
    if picked and picked[-1] != state.get("lrmap_seen_pick"):
        state["lrmap_seen_pick"] = picked[-1]  # a new click on a map: the chooser follows it
        hit = sweep.cell(float(picked[-1]["lr"]), int(picked[-1]["batch_size"]))
        if hit is not None:
            state["lrmap_cell"] = cell_label(hit, rows)
    if state.get("lrmap_cell") not in labels:
        state.pop("lrmap_cell", None)
    st.subheader("Open a cell on the Compare page")
    label = st.selectbox(
        "Cell (or click one on a map)", labels, key="lrmap_cell", help="Finished cells only."
    )
    cell = cells[labels.index(label)]
    st.link_button("Open it on the Compare page ↗", compare_link(cell))
    caption = (
        "Opens a new tab with this page's sidebar settings and the cell's lr and batch size; the "
        "Compare page runs it as it opens if it is short (a long run waits for **Run**)."
    )
    if state.get("data") == "csv":
        caption += " A link cannot carry your CSV file: upload it there again."
    st.caption(caption)


# ------------------------------------------------------------------ controls
picked = sidebar_config("lr_map", own=OWN)
asked = link_asked("lrmap_url_checked", lambda key: key in OWN)
drawn = Drawn()
low, high, count, sizes = grid_controls(drawn)
if asked is not None:
    for note in note_link("lrmap_url_checked", asked, drawn):
        st.warning(note)
if picked is None:
    st.stop()  # the sidebar says why
data, cfg = picked
train = split_rows(data.m, cfg.val_fraction, cfg.seed)[0]
rows = len(train)
grid = the_grid(low, high, count, sizes, rows)
if isinstance(grid, str):
    st.warning(grid)
    st.stop()
lrs, batches = grid
cells = len(lrs) * len(batches)
problem = caps(cfg, cells)
if problem is None:
    try:
        lib.lessons.sweep.check_sweep(data, cfg, lrs, batches)
    except ValueError as err:
        problem = f"Cannot map these settings: {err}."
if problem is not None:
    st.warning(problem)
    st.stop()
st.caption(
    f"{len(lrs)} learning rates from {lrs[0]:g} to {lrs[-1]:g} (log-spaced) × {len(batches)} "
    f"batch sizes = {cells:,} runs of {cfg.iterations:,} steps, on up to "
    f"{min(lib.lessons.sweep.cores(), cells)} worker processes."
)
# What decides the map: the data, every Config field but the two the grid replaces, the grid.
fields = tuple(
    (f, getattr(cfg, f)) for f in cfg.__dataclass_fields__ if f not in ("lr", "batch_size")
)
key = (fingerprint(data), repr(fields), tuple(lrs), tuple(batches))

# ------------------------------------------------------------------ the run
adopt_interrupted()
clicked = st.button("Draw the map", key="lrmap_run", type="primary")
slots = {"status": st.empty()}
left, right = st.columns(2)
slots["manual"], slots["torch"] = left.empty(), right.empty()
slots["diff"] = st.empty()
limit, why = full_batch_limit(data, cfg)
shown = state.get("lrmap_result")
fresh = shown is not None and shown[0] == key
if clicked or (not fresh and estimate(data, cfg, grid, key) <= AUTO_SECONDS):
    run_live(data, cfg, grid, key, slots, rows, limit)
elif not fresh:
    guess = estimate(data, cfg, grid, key)
    about = f" (about {guess:.0f} s here)" if math.isfinite(guess) else ""
    slots["status"].info(
        f"This map is {cells:,} runs of {cfg.iterations:,} steps{about}: press **Draw the map** "
        "to run them (a Stop button keeps the cells that have finished)."
    )
    st.stop()
sweep = state["lrmap_result"][1]
picked_cells = draw_maps(sweep, slots, rows, limit, final=True)
for line in notes(sweep, limit, why, rows):
    st.markdown(line)
chooser(sweep, picked_cells, rows)
