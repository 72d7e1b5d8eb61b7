"""Compare the loops: the hand-written numpy loop and the torch loop, run in lockstep and charted."""

import dataclasses
import time

import pandas as pd
import streamlit as st

import lib
from pages.common import (
    LAST_RUN,
    SOURCE,
    fingerprint,
    least_squares,
    sidebar_config,
    through_navigation,
    twin_lines_markdown,
)

LIVE_AFTER = 1.0  # seconds; shorter runs just appear, longer ones show progress and live charts
TIME_LIMIT = 60.0  # seconds of wall time per run: one visitor's run must not hold a shared server for long
MAX_DOWNLOAD_VALUES = 4_000_000  # numbers in a history download (about 150 MB of CSV); longer runs are refused
state = st.session_state  # this page's own keys start with "compare_"; the controls' keys are in pages/common.py

through_navigation()
st.title("Compare the loops")
st.markdown(
    "Two training loops run side by side on the same data, the same batches and the same starting weights: "
    "one written by hand in numpy, every derivative worked out on paper, and the standard PyTorch loop "
    "(`zero_grad`, forward, loss, `backward`, `step`).  \n"
    "Solid blue is the hand loop, dashed orange is torch: the lines lie on top of each other, and the last "
    "chart shows they differ by about 1e-16, float64 rounding. Change the settings on the left and press **Run**."
)

# ------------------------------------------------------------------ controls (shared with the other pages)
picked = sidebar_config("compare")
run_clicked = state.get("run", False)
log_scale, show_target = state.get("log_scale", True), state.get("show_target", True)

# A run that a Stop click (or any other click) interrupted left its partial Result behind: keep it.
if state.get("compare_running"):
    state["compare_running"] = False
    partial = state.pop("compare_partial", None)
    record = state.pop("compare_running_record", None)
    if partial is not None and (record is not None or picked is not None):
        record = record or {"data": picked[0], "source": state.get(SOURCE), "settings": None}
        state[LAST_RUN] = {**record, "result": dataclasses.replace(partial, stopped="stopped")}


# ------------------------------------------------------------------ layout: placeholders drawn into below
status = st.empty()  # progress bar and Stop while a long run goes; the run's ending afterwards
summary = st.container()
left, right = st.columns(2)
slots = {"loss": left.empty(), "weights": right.empty(), "grad_norm": left.empty(), "diff": right.empty()}
slots["param_norms"] = st.empty()  # full width, below: only where the weights chart cannot show every weight


def draw_charts(result: lib.Result, data: lib.Dataset) -> None:
    """Draw (or redraw) the four charts into their placeholders, and the tensor norms for bigger models."""
    reference = least_squares(data, result.config) if show_target else None
    charts = lib.charts.all_charts(result, log_loss=log_scale, reference=reference)
    if len(result.weight_names) > lib.charts.MAX_WEIGHT_SERIES or result.config.model == "mlp":
        charts["param_norms"] = lib.charts.param_norms_chart(result)
    else:
        slots["param_norms"].empty()
    for name, chart in charts.items():
        slots[name].altair_chart(chart, width="stretch")


problem = None
settings = None if picked is None else (fingerprint(picked[0]), picked[1])
if picked is not None and (run_clicked or LAST_RUN not in state):
    # Runs on Run, and once on the first visit so a newcomer sees the two loops agree straight away.
    data, cfg = picked
    started = time.perf_counter()
    record = {"data": data, "source": state.get(SOURCE), "settings": settings}
    state["compare_running"], state["compare_running_record"] = True, record
    live = {}

    def on_progress(partial: lib.Result) -> None:
        # Save first: every st call below is a point where a Stop click ends this script.
        state["compare_partial"] = partial
        if time.perf_counter() - started < LIVE_AFTER:
            return
        now = time.perf_counter()
        if not live:
            with status.container():
                live["bar"] = st.progress(0.0)
                st.button("Stop", key="stop", help="End the run now and keep the steps taken.")
            live["redraw"] = now
        done = partial.steps / cfg.iterations
        live["bar"].progress(done, text=f"Step {partial.steps:,} of {cfg.iterations:,}")
        if now >= live["redraw"]:
            draw_charts(partial, data)
            # Redraw at most a quarter of the time, so the live charts do not slow the run much.
            live["redraw"] = now + max(1.0, 3 * (time.perf_counter() - now))

    try:
        result = lib.run(data, cfg, progress=on_progress, progress_every=0.5, time_limit=TIME_LIMIT)
    except ValueError as err:  # the controls check what lib.run checks, so this is a safety net
        problem = str(err)
    else:
        state[LAST_RUN] = {**record, "result": result}
    finally:
        state["compare_running"] = False
        state.pop("compare_partial", None)
        state.pop("compare_running_record", None)

# ------------------------------------------------------------------ the result on show
shown = state.get(LAST_RUN)
result: lib.Result | None = None if shown is None else shown["result"]
status.empty()  # the progress bar and Stop button, if the run was long enough to show them
notes = []
if problem is not None:
    notes.append((st.error, f"Cannot run these settings: {problem}. Your other settings are kept."))
if result is not None and result.stopped == "diverged":
    notes.append((st.warning, result.message()))
elif result is not None and result.stopped == "time limit":
    notes.append((st.warning, f"{result.message()} (The wall-time cap here is {TIME_LIMIT:g} s per run.)"))
elif result is not None and result.stopped is not None:
    notes.append((st.info, result.message()))
if result is not None and picked is not None and problem is None and shown["settings"] != settings:
    notes.append((st.info, "The settings have changed since this run: press **Run** to see them."))
if notes:
    with status.container():
        for show, text in notes:
            show(text)


def downloads(data: lib.Dataset, result: lib.Result, source: dict | None) -> None:
    """Download buttons for the run on show: its history as CSV and JSON, and a script that reruns it."""
    cols = st.columns(3)
    values = 2 * result.steps * (3 + result.manual.weights.shape[1])
    too_long = values > MAX_DOWNLOAD_VALUES
    # Callables: the files are built only when a button is clicked, not on every rerun.
    cols[0].download_button(
        "History (CSV)", lambda: lib.history_csv(result), "twins_history.csv", "text/csv",
        key="download_csv", on_click="ignore", disabled=too_long, width="stretch",
    )  # fmt: skip
    cols[0].caption("Tidy: one row per step, loop, metric and value.")
    cols[1].download_button(
        "History and settings (JSON)", lambda: lib.history_json(result, data), "twins_run.json", "application/json",
        key="download_json", on_click="ignore", disabled=too_long, width="stretch",
    )  # fmt: skip
    cols[1].caption("Both loops' losses, weights and gradient norms, with the Config and the data's description.")
    if too_long:
        st.caption(
            f"This history has {values:,} numbers, more than the {MAX_DOWNLOAD_VALUES:,} offered here: "
            "run fewer iterations, or call `lib.history_csv(lib.run(data, cfg))` in a notebook."
        )
    source = source or {}
    csv_kwargs = {}
    if source.get("kind") == "csv" and source.get("as_is"):
        csv_kwargs = {"csv_name": source["file"], "target": source["target"]}
        note = f"Needs only numpy and torch. It reads **{source['file']}** by name: put the file next to the script."
    elif source.get("kind") == "csv":
        note = (
            "Needs only numpy and torch. The data is written into the script, because it was "
            f"{'standardised' if not source.get('dropped') else 'cleaned of rows with missing values'} here."
        )
    else:
        note = "Needs only numpy and torch; the data is written into the script. Run it with `python twins_run.py`."
    embeddable = csv_kwargs or data.m * (data.n + 1) <= lib.export.MAX_EMBEDDED
    cols[2].download_button(
        "Script that reruns it (.py)", lambda: lib.to_script(data, result.config, **csv_kwargs), "twins_run.py",
        "text/x-python", key="download_script", on_click="ignore", disabled=not embeddable, width="stretch",
    )  # fmt: skip
    cols[2].caption(note if embeddable else "This data set is too large to write into a script.")


if result is not None:
    with summary:
        m, t = result.manual, result.torch

        def final(h: lib.History) -> str:
            return f"{h.loss[-1]:.6g}" if h.steps else "none"

        cols = st.columns([1, 1, 3])
        cols[0].metric("Steps taken", f"{result.steps:,}")
        cols[1].metric(
            "Largest |manual − torch|", f"{result.max_abs_diff:.1e}", help="Over every weight after every step."
        )
        cols[2].table(
            pd.DataFrame(
                {
                    "final loss": [final(m), final(t)],
                    "wall time": [f"{m.seconds:.3f} s", f"{t.seconds:.3f} s"],
                    "steps per second": [f"{m.steps_per_second:,.0f}", f"{t.steps_per_second:,.0f}"],
                },
                index=["manual (numpy)", "torch"],
            )
        )
        if show_target and result.config.model != "linear":
            st.caption("No least-squares line on the weights chart: it exists only for the linear model.")
    draw_charts(result, shown["data"])
    st.subheader("Take this run home")
    downloads(shown["data"], result, shown.get("source"))

st.subheader("The five lines, twin by twin")
st.caption(
    "Each torch line beside its hand-written twin, taken from the source of the two functions that ran. "
    "The Code map page explains each row."
)
model = result.config.model if result is not None else "linear"
st.markdown(twin_lines_markdown(lib.manual_mlp_loop if model == "mlp" else lib.manual_loop))
