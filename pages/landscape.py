"""Loss landscape: the loss over two chosen weights, with both loops' paths drawn on it step by
step."""

import math

import numpy as np
import streamlit as st

import lib
from lib.charts import landscape_chart, path_rows, surface_cells
from lib.lessons.landscape import full_data_loss, surface
from pages.parts.cached import last_run
from pages.parts.navigation import through_navigation

# grid points x samples x weights: a grid map (not exact) beyond this gets fewer cells
GRID_BUDGET = 50_000_000
state = st.session_state  # this page's keys start with "landscape_"

through_navigation()
st.title("Loss landscape")
st.markdown(
    "Pick two weights. The colour is the loss on the **whole data set** when those two weights "
    "take the values on the axes and every other weight is held fixed; lighter is lower. On top, "
    "the path each loop took in these two weights, step by step: solid blue is the hand loop, "
    "dashed orange is torch, drawn over each other because they agree. The ring (hand loop) and "
    "the cross (torch) mark the step chosen with the slider."
)


def default_run() -> tuple[lib.Dataset, lib.Result]:
    """A short full-batch run of two weights whose path bends: unequal curvatures and a learning
    rate near the edge."""
    data = lib.datasets.linear(m=20, n=1, noise=0.5, seed=29)
    cfg = lib.Config(lr=0.7, batch_size=20, iterations=25)
    return data, lib.run(data, cfg)


# ------------------------------------------------------------------ which run
run = last_run()  # the Compare page's latest run, if any
if run is None:
    if "landscape_default" not in state:
        state["landscape_default"] = default_run()
    data, result = state["landscape_default"]
    st.info(
        "No run from the Compare page yet, so this page made its own short example: a line "
        "y = w·x + b fitted to 20 samples, full batch, lr 0.7, 25 steps. Open the Compare page "
        "(a short run of the sidebar's settings starts as it opens; a long one waits for "
        "**Run**) and come back to map that run."
    )
    st.page_link("pages/compare.py", label="Compare the loops", icon="📈")
else:
    data, result = run
    st.caption(f"Your last run on the Compare page ({data.name}): {result.message()}")

cfg = result.config
names = list(result.weight_names)
n_all = cfg.n_params(data.n)
if len(names) < n_all:
    st.warning(
        f"This model has {n_all:,} weights, and runs of models that big keep the history of only "
        f"{len(names)} of them, so the other weights' values along the way are not known and no "
        "map can be drawn. Use a smaller model (fewer hidden units) on the Compare page to map "
        "it."
    )
    st.stop()
if len(names) < 2:
    st.warning(
        "This model has a single weight, and a map needs two. Add a feature or turn on the bias "
        "on the Compare page."
    )
    st.stop()

# ------------------------------------------------------------------ controls
# a new run gets fresh widgets (its options differ)
sig = abs(hash((tuple(names), result.steps, repr(cfg))))
left, right = st.columns(2)
i = left.selectbox(
    "Weight on the x axis",
    range(len(names)),
    0,
    format_func=names.__getitem__,
    key=f"landscape_x{sig}",
)
j = right.selectbox(
    "Weight on the y axis",
    range(len(names)),
    1,
    format_func=names.__getitem__,
    key=f"landscape_y{sig}",
)
diverged = result.stopped == "diverged"
start = result.steps
if diverged:
    # Open before the blow-up: the last step whose batch loss was finite and under 1,000 times the
    # first.
    calm = np.flatnonzero(
        np.isfinite(result.manual.loss)
        & (result.manual.loss <= 1e3 * max(result.manual.loss[0], 1))
    )
    start = int(calm[-1]) if calm.size else 0
if result.steps > 0:
    k = st.slider(
        "Show the path up to step",
        0,
        result.steps,
        start,
        key=f"landscape_k{sig}",
        help="The ring marks where the weights are after this many steps (0 is the starting "
        "point).",
    )
else:
    k = 0
    st.caption("This run stopped before its first step: only the starting point is drawn.")
only_two = n_all == 2
if only_two:
    hold = "final"
else:
    hold = st.radio(
        "Hold the other weights at",
        ("final", "step"),
        index=1 if diverged else 0,
        format_func={"final": "their final values", "step": "their values at the step shown"}.get,
        horizontal=True,
        key=f"landscape_hold{sig}",
    )
with st.expander("Map settings"):
    size = st.select_slider("Grid cells per side", (20, 40, 60, 80, 100), 80, key="landscape_size")
    zoom = st.toggle(
        "Fit the map to the path shown so far",
        value=False,
        key="landscape_zoom",
        disabled=hold == "step",
        help="Off: the map covers the whole run and stays put as you move the slider. With the "
        "other weights held at the step shown, the map always fits the path so far.",
    )

if i == j:
    st.warning("Choose two different weights: the map needs one for each axis.")
    st.stop()


def cut(result: lib.Result, k: int) -> lib.Result:
    """The run as it stood after k steps: its last weights are the ones the others are then held
    at."""

    def first(h: lib.History) -> lib.History:
        return lib.History(h.loss[:k], h.weights[: k + 1], h.grad_norm[:k], h.seconds)

    return lib.Result(
        first(result.manual),
        first(result.torch),
        result.config,
        result.weight_names,
        step_diff=result.step_diff[: k + 1],
        recorded=result.recorded,
    )


# A grid map runs the model once per cell on the whole data set: fewer cells when that is a lot of
# work.
cost = data.m * n_all
exact_model = cfg.model == "linear"
if not exact_model and size * size * cost > GRID_BUDGET:
    size = max(10, math.isqrt(GRID_BUDGET // cost))
    st.caption(
        f"The grid is {size} × {size} here: each cell runs the model on all {data.m:,} samples."
    )

source = cut(result, k) if hold == "step" else result
try:
    s = surface(data, source, i, j, size=size, upto=k if zoom else None)
except ValueError as err:
    st.warning(f"No map for these settings: {err}.")
    st.stop()
# where surface holds them
held = source.manual.weights[np.isfinite(source.manual.weights).all(axis=1)][-1]

# ------------------------------------------------------------------ the chart
cells, overflowed = surface_cells(s)
if cells.empty:
    st.warning(
        "The loss overflows float64 everywhere on this map: the weights held fixed are too large "
        "(the run blew up near there). Move the slider back to a step before it blew up, with "
        "the other weights held at their values at the step shown."
    )
    st.stop()
best = lib.least_squares(data, cfg.bias) if exact_model else None
chart = landscape_chart(s, result, k, (names[i], names[j]), best=best)
st.altair_chart(chart, width="stretch")
rows = path_rows(k)

# ------------------------------------------------------------------ what the learner sees, in words
w_k = result.manual.weights[k]
on_map = held.copy()
on_map[i], on_map[j] = w_k[i], w_k[j]
map_loss, true_loss = (
    full_data_loss(data, cfg, np.array([on_map, w_k]))
    if np.isfinite(w_k).all()
    else (math.nan,) * 2
)
cols = st.columns(3)
cols[0].metric("Step shown", f"{k:,}")
cols[1].metric(
    "Loss on the map at the marker",
    f"{map_loss:.4g}",
    help="The two chosen weights at this step, every other weight where the map holds it.",
)
cols[2].metric(
    "Loss with every weight at this step",
    f"{true_loss:.4g}",
    help="The whole data set's loss at the weights the loop really had after this many steps.",
)

how = (
    "**Exact map.** For a linear model with a squared loss, the loss is a quadratic in any two "
    f"weights, so each of the {size * size:,} cells is computed from that formula; each cell "
    "shows the loss at its centre."
    if s.exact
    else f"**Map evaluated on a grid of {size} × {size} points.** The model was run on the whole "
    f"data set at each of the {size * size:,} grid points; each cell shows the loss at its "
    "centre, so detail smaller than a cell is not shown."
)
if only_two:
    held_text = (
        "This model has only these two weights, so the map is its whole loss: the marker's "
        "colour is the loss the loop had at that step."
    )
elif hold == "final":
    held_text = (
        "**The other weights are held at their final values.** The map is the loss as it looks "
        "at the end of the run. The loop moved every weight at every step, so at earlier steps "
        "the other weights had other values and the loop stood on a different map: its path can "
        "cut across these bands or run uphill here, and only the last point's colour is the loss "
        "the loop really had. The two numbers above show the difference. Choose *their values at "
        "the step shown* to see the map the loop stood on at that step."
    )
else:
    held_text = (
        "**The other weights are held at their values at the step shown**, so the map changes as "
        "you move the slider, and the marker's colour is the loss the loop had at that step (the "
        "two numbers above agree)."
    )
notes = [how, held_text]
if cfg.batch_size < data.m:
    notes.append(
        f"Each step used a batch of {cfg.batch_size} of the {data.m:,} samples and followed that "
        "batch's gradient, not the whole data set's, so even on the right map the path wiggles."
    )
if cfg.optimizer != "sgd" or cfg.optimizer_kwargs:
    notes.append(
        f"The optimizer ({cfg.optimizer}) does not step straight down the slope: it uses its own "
        "state (momentum, running averages), so the path can overshoot and curve."
    )
if exact_model:
    outside = not (
        s.a_values[0] <= best[i] <= s.a_values[-1] and s.b_values[0] <= best[j] <= s.b_values[-1]
    )
    notes.append(
        "The black diamond is the least-squares solution, where the loss of all weights together "
        "is lowest" + (" (it lies outside this view)." if outside else ".")
    )
if diverged:
    notes.append(
        f"This run diverged: {result.message()} The slider opened at step {start:,}, before the "
        "weights grew too large to map; move it right to watch the path fly off. The path is "
        "drawn up to its last finite step."
    )
if overflowed:
    notes.append(f"{overflowed:,} cells whose loss overflows float64 are left blank.")
if len(rows) < k + 1:
    notes.append(
        f"The path has {k + 1:,} points; {len(rows):,} of them are drawn (every early step, "
        "fewer later ones)."
    )
for note in notes:
    st.markdown(note)
