"""Compare the loops: the hand-written numpy loop and the torch loop, run in lockstep and
charted."""

import dataclasses
import math
import time

import numpy as np
import pandas as pd
import streamlit as st

import lib
from lib.lessons.explain import phase_source
from pages.parts.cached import LAST_RUN, fingerprint, least_squares, twin_phases
from pages.parts.navigation import (
    PITFALLS_LINK,
    close_sidebar_on_a_narrow_screen,
    through_navigation,
)
from pages.parts.run_cache import ChartPayload, run_key, shared_runs
from pages.parts.sidebar import SOURCE, sidebar_config
from pages.parts.twin_table import twin_lines_markdown

LIVE_AFTER = 1.0  # seconds; shorter runs just appear, longer ones show progress and live charts
# seconds from the click to the page drawn: one visitor's run must not hold a shared server long
TIME_LIMIT = 60.0
FINAL_DRAW = 1.5  # seconds kept from TIME_LIMIT for drawing the result once the loops have stopped
# seconds between progress reports: the bar moves, and a Stop click is seen this soon
PROGRESS_EVERY = 0.25
REDRAW_SHARE = 0.1  # at most this share of a long run's time goes into redrawing its live charts
# seconds between checks for Streamlit's own Stop during a long run (see notice_a_stop)
WATCH_EVERY = 1.0
# seconds: a run the page starts by itself when it opens (say from a link) must take no longer
AUTO_RUN = 5.0
# the run's first steps, timed, to estimate a long run before it starts
PROBE_STEPS, PROBE_SECONDS = 100, 0.3
MAX_TABLE_ROWS = 12  # weights in the final-weights table before it scrolls
# numbers in a history download (about 150 MB of CSV); longer runs are refused
MAX_DOWNLOAD_VALUES = 4_000_000
# this page's own keys start with "compare_"; the controls' keys are in pages/parts/
state = st.session_state

started = time.perf_counter()
through_navigation()
st.title("Compare the loops")
st.markdown(
    "Two training loops run side by side on the same data, the same batches and the same "
    "starting weights: one written by hand in numpy, every derivative worked out on paper, and "
    "the standard PyTorch loop (`zero_grad`, forward, loss, `backward`, `step`).  \n"
    "Solid blue is the hand loop, dashed orange is torch (on the loss chart of a run with a "
    "validation split, the dash marks the held-out rows' loss instead, and torch's is the thin "
    "line): where the loops agree, the lines lie on top of each other, and the last chart shows "
    "by how much they differ at each step (the summary says it relative to the weights too, and "
    "from which step, if any, they part). "
    "Change the settings in the sidebar and press **Run** (on a narrow screen the sidebar hides: "
    "the » button opens it, « closes it)."
)

# ----------------------------------------------------------- controls (shared with the other pages)
picked = sidebar_config("compare")
run_clicked = state.get("run", False)
log_scale, show_target = state.get("log_scale", True), state.get("show_target", True)

# A run whose script ended before the run did left its partial Result behind: the app's Stop (or any
# other click) reran the page, or Streamlit's own Stop ended the script and notice_a_stop reran it.
# Keep it.
if state.get("compare_running"):
    state["compare_running"] = False
    state.pop("compare_watching", None)
    partial = state.pop("compare_partial", None)
    record = state.pop("compare_running_record", None)
    if partial is not None and (record is not None or picked is not None):
        record = record or {"data": picked[0], "source": state.get(SOURCE), "settings": None}
        state[LAST_RUN] = {**record, "result": dataclasses.replace(partial, stopped="stopped")}


def notice_a_stop() -> None:
    """Rerun the page if a long run's script ended without a rerun: that is what Streamlit's own
    Stop does.

    Runs every WATCH_EVERY seconds (a fragment with run_every) from the moment a run goes live. A
    fragment never interrupts the script, so it only gets to run once the script has ended; if the
    run it watches is still marked as running then, the script was stopped, and the rerun shows the
    steps taken, as the app's Stop does. A run that ends normally reruns the page itself, which ends
    these checks.
    """
    if state.get("compare_watching") and state.get("compare_running"):
        st.rerun()


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def about(steps: float) -> int:
    """A number of steps to two significant figures, as an estimate is said."""
    return int(float(f"{steps:.2g}"))


def steps_per_second(data: lib.Dataset, cfg: lib.Config) -> tuple[float, int]:
    """Both loops' steps per second for this Config, and over how many of its first steps that
    was timed.

    At most PROBE_STEPS steps or PROBE_SECONDS; inf (start it) if they diverge or cannot run, which
    the run itself then says. Timed in this thread's CPU time: on a server busy with other visitors'
    runs the wall time of a few steps says more about them than about this run, and the default run
    must still start.
    """
    key = (fingerprint(data), cfg)
    cached = state.get("compare_rate")
    if cached is not None and cached[0] == key:
        return cached[1]
    # progress_every=0 checks the time limit after every step, so even a slow model's probe ends in
    # time.
    first = cfg.replace(iterations=min(cfg.iterations, PROBE_STEPS))
    cpu = time.thread_time()
    try:
        probe = lib.run(data, first, progress_every=0, time_limit=PROBE_SECONDS)
    except ValueError:
        return math.inf, 0
    seconds = time.thread_time() - cpu
    rate = math.inf if probe.stopped == "diverged" or seconds <= 0 else probe.steps / seconds
    state["compare_rate"] = (key, (rate, probe.steps))
    return rate, probe.steps


# ------------------------------------------------------------ layout: placeholders drawn into below
status = st.empty()  # progress bar and Stop while a long run goes; the run's ending afterwards
# the numbers of the run on show; emptied while a new run goes, so no old numbers stay
summary = st.empty()
left, right = st.columns(2)
slots = {
    "loss": left.empty(),
    "weights": right.empty(),
    "grad_norm": left.empty(),
    "diff": right.empty(),
}
# full width, below: only where the weights chart cannot show every weight
slots["param_norms"] = st.empty()
slots["lr"] = st.empty()  # full width, below: the learning rate per step, with a schedule
classes = st.empty()  # accuracy and the decision boundary, for a two-class run (loss "bce")
extras = st.empty()  # the downloads of the run on show


def draw_charts(result: lib.Result, data: lib.Dataset, live: bool = False) -> None:
    """Draw (or redraw) the four charts into their placeholders, and the tensor norms for bigger
    models.

    live: fewer points per line (lib.charts.live_points), for a run still going that is redrawn
    every second or so.
    """
    norms = len(result.weight_names) > lib.charts.MAX_WEIGHT_SERIES or result.config.model == "mlp"
    points = lib.charts.live_points(result, norms, data.m) if live else lib.charts.MAX_POINTS
    reference = least_squares(data, result.config) if show_target else None

    def build() -> dict:
        charts = lib.charts.all_charts(
            result, log_loss=log_scale, reference=reference, max_points=points, samples=data.m
        )
        if norms:
            charts["param_norms"] = lib.charts.param_norms_chart(result, max_points=points)
        return charts

    # A run this server keeps for every session keeps its charts too, built and converted once.
    charts = None
    if not live:
        options = (log_scale, reference is not None, points)
        charts = runs.charts(run_key(data, result.config), result, options, build)
    charts = build() if charts is None else charts
    for name in ("param_norms", "lr"):
        if name not in charts:
            slots[name].empty()
    for name, chart in charts.items():
        if isinstance(chart, ChartPayload):
            slots[name].vega_lite_chart(chart.spec_dict(), width="stretch")
        else:
            slots[name].altair_chart(chart, width="stretch")


def draw_classifier(result: lib.Result, data: lib.Dataset) -> None:
    """For a two-class run: accuracy per step of both loops, and their decision boundaries over
    two features.

    Drawn for a finished (or stopped) run only: accuracy is measured on the whole data at many
    steps.
    """
    if not lib.classify.is_classifier(result):
        classes.empty()
        return
    with classes.container():
        if len(result.recorded) != result.config.n_params(data.n):
            st.info(
                "Accuracy and the decision boundary are not drawn: this model has "
                f"{result.n_params:,} weights, and a run keeps the history of only "
                f"{len(result.recorded):,} of them, so the loops' classifiers cannot be "
                "evaluated from it."
            )
            return
        left, right = st.columns(2)
        left.altair_chart(lib.charts.accuracy_chart(data, result), width="stretch")
        if data.n != 2:
            right.caption(
                "No decision-boundary picture: it is drawn over two features, and this data has "
                f"{data.n}."
            )
            return
        try:
            chart = lib.charts.boundary_chart(data, result)
        except ValueError as err:
            right.caption(f"No decision-boundary picture: {err}.")
        else:
            right.altair_chart(chart, width="stretch")


def weights_table(result: lib.Result, data: lib.Dataset) -> None:
    """The final weights of both loops, their difference, and the least-squares solution where
    there is one."""
    m, t = result.manual.weights[-1], result.torch.weights[-1]
    frame = pd.DataFrame(
        {"weight": result.weight_names, "manual": m, "torch": t, "|Δ|": np.abs(m - t)}
    )
    reference = least_squares(data, result.config) if show_target else None
    if reference is not None:
        frame["least squares"] = reference[result.recorded]
    after = f"all {result.steps:,} steps" if result.done else f"the run's {result.steps:,} steps"
    text = f"**Final weights**, after {after}"
    if len(result.recorded) < result.n_params:
        text += (
            f": the {len(result.recorded):,} of its {result.n_params:,} weights whose history the "
            "run keeps"
        )
    # A long table goes into an expander, so the charts stay near the top; a few weights are shown
    # as they are.
    place = (
        st.container()
        if len(frame) <= MAX_TABLE_ROWS
        else st.expander(f"{text}: {len(frame):,} rows")
    )
    if len(frame) <= MAX_TABLE_ROWS:
        place.markdown(text + ".")
    number = st.column_config.NumberColumn(format="%.6g")
    config = {"manual": number, "torch": number, "least squares": number}
    config["|Δ|"] = st.column_config.NumberColumn(
        format="%.1e", help="|manual − torch| for this weight."
    )
    height = "auto" if len(frame) <= MAX_TABLE_ROWS else 36 * (MAX_TABLE_ROWS + 1)
    place.dataframe(
        frame,
        hide_index=True,
        column_config=config,
        height=height,
        width="content",
        key="compare_weights",
    )
    if reference is not None:
        bias = "with a column of ones for the bias" if result.config.bias else "without a bias"
        st.caption(
            "Least squares: the weights that minimise the squared loss on the whole data, "
            f"`np.linalg.lstsq` on the inputs {bias}."
        )


def speed_note(result: lib.Result, data: lib.Dataset, key: tuple, place) -> None:
    """Why torch's step takes longer than numpy's, measured on this run's data and model when
    asked for.

    lib.speed.step_costs takes a fraction of a second (a couple of seconds for a big model), so it
    runs on a click, never by itself and never while a run is live; the sentence is kept for the
    data and Config it measured.
    """
    done = state.get("compare_speed")
    if done is not None and done[0] == key:
        place.caption(done[1])
        return
    slower = result.torch.steps_per_second < result.manual.steps_per_second
    label = (
        "Why is torch slower per step?" if slower else "Time one step of each loop, phase by phase"
    )
    tip = (
        "Times one step of each loop, whole and phase by phase, on this data and model: under a "
        "second."
    )
    if place.button(label, key="compare_measure_speed", help=tip):
        try:
            sentence = lib.speed.speed_sentence(lib.speed.step_costs(data, result.config))
        except ValueError as err:
            place.caption(f"Could not time these settings: {err}.")
            return
        state["compare_speed"] = (key, sentence)
        place.caption(sentence)


problem = None
waiting = None  # why a run the page would have started by itself waits for Run
settings = None if picked is None else (fingerprint(picked[0]), picked[1])
start = picked is not None and run_clicked
runs = shared_runs()
if picked is not None and not run_clicked and LAST_RUN not in state:
    # Once on the first visit, so a newcomer sees the two loops agree straight away; but only a
    # short run: a link must not start minutes of training for whoever opens it. A run this server
    # has already made for someone else costs nothing to show.
    if runs.get(run_key(*picked)) is not None:
        start = True
    else:
        rate, timed = steps_per_second(*picked)
        start = picked[1].iterations / rate <= AUTO_RUN
        if not start:
            waiting = (picked[1].iterations, rate, timed)
# The twin table, drawn before a run starts so it stays fresh while a long run is live.
if start:
    on_show = picked
elif LAST_RUN in state:
    on_show = state[LAST_RUN]["data"], state[LAST_RUN]["result"].config
else:
    on_show = picked
st.subheader("The five lines, twin by twin")
st.caption(
    "Each torch line beside its hand-written twin, taken from the source of the two functions "
    "that run, less the branches this configuration does not take. The Code map page explains "
    "each row."
)
# Code spans do not wrap, so on a phone the table ran off the screen: inside this table they may.
st.html(
    "<style>.st-key-compare_twins table code { white-space: pre-wrap; overflow-wrap: anywhere; }"
    ".st-key-compare_twins table { table-layout: auto; width: 100%; }</style>"
)
with st.container(key="compare_twins"):
    if on_show is None:  # no run yet and the controls hold no valid configuration: every branch
        phases = phase_source(lib.manual_loop), phase_source(lib.torch_loop)
    else:
        phases = twin_phases(*on_show)
    st.markdown(twin_lines_markdown(*phases))

if start and run_clicked:  # on a phone the open sidebar would cover the run about to be drawn
    close_sidebar_on_a_narrow_screen()
if start:
    data, cfg = picked
    record = {"data": data, "source": state.get(SOURCE), "settings": settings}
    state["compare_running"], state["compare_running_record"] = True, record
    live = {}

    def on_progress(partial: lib.Result) -> None:
        # Every st call, and every use of st.session_state, is a point where a Stop click ends this
        # script; the partial Result saved here is what the rerun shows, so it is saved before
        # anything is drawn.
        state["compare_partial"] = partial
        now = time.perf_counter()
        if now - started < LIVE_AFTER:
            return
        if not live:
            # the last run's numbers and downloads would sit beside this run's charts
            summary.empty()
            extras.empty()
            classes.empty()
            with status.container():
                st.fragment(notice_a_stop, run_every=WATCH_EVERY)()
                live["bar"] = st.progress(0.0)
                st.button("Stop", key="stop", help="End the run now and keep the steps taken.")
            state["compare_watching"] = True  # set after the fragment's first run, which is inline
            live["redraw"] = now
        text = f"Step {partial.steps:,} of {cfg.iterations:,}"
        if partial.steps and now > begun:
            # The pace so far, redraws and all, is what the cap counts: say early what will fit.
            fits = partial.steps + partial.steps / (now - begun) * max(0.0, begun + limit - now)
            if fits < cfg.iterations:
                text += (
                    f" · at this pace about {about(fits):,} steps fit in the {TIME_LIMIT:g} s "
                    "cap, where it stops"
                )
        live["bar"].progress(partial.steps / cfg.iterations, text=text)
        if now >= live["redraw"]:
            draw_charts(partial, data, live=True)
            # Redraw at most REDRAW_SHARE of the time, so the live charts do not slow the run much.
            live["redraw"] = now + max(1.0, (time.perf_counter() - now) / REDRAW_SHARE)

    key = run_key(data, cfg)
    result = runs.get(key)
    if result is None and (other := runs.claim(key)) is not None:
        # Another session is computing this very run: wait for it rather than compute it twice.
        with status.container():
            st.info(
                "Another visitor on this server started a run with these same settings on the "
                "same data: waiting for it, which is quicker than computing it a second time."
            )
        other.wait(max(0.0, TIME_LIMIT - FINAL_DRAW - (time.perf_counter() - started)))
        status.empty()
        result = runs.get(key)
        if result is None:  # it ended without a result to share (a Stop, the time limit)
            other = runs.claim(key)
    if result is not None:
        state[LAST_RUN] = {**record, "result": result, "shared": True}
    else:
        finished = None
        try:
            # The cap counts from the click to the result drawn: what the visitor waits, not what
            # the loops take.
            begun = time.perf_counter()
            limit = max(0.0, TIME_LIMIT - FINAL_DRAW - (begun - started))
            finished = lib.run(
                data, cfg, progress=on_progress, progress_every=PROGRESS_EVERY, time_limit=limit
            )
        except ValueError as err:  # the controls check what lib.run checks: a safety net
            problem = str(err)
        else:
            state[LAST_RUN] = {**record, "result": finished}
        finally:
            # However the run ended (a Stop ends this script inside lib.run), no one waits on it.
            if other is None:
                runs.finish(key, finished)
    # Not in a `finally`: when a click or Stop ends the script inside lib.run, these stay for the
    # next run to find.
    state["compare_running"] = False
    for key in ("compare_partial", "compare_running_record", "compare_watching"):
        state.pop(key, None)
    if live:
        # Draw the result in a fresh run: it replaces the live bar and charts as a Stop's rerun
        # does, and a full run ends notice_a_stop's checks.
        st.rerun()

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
    notes.append(
        (st.warning, f"{result.message()} (The wall-time cap here is {TIME_LIMIT:g} s per run.)")
    )
elif result is not None and result.stopped is not None:
    notes.append((st.info, result.message()))
if (
    result is not None
    and result.stopped != "diverged"
    and (growth := lib.explain.growth_warning(shown["data"], result))
):
    notes.append((st.warning, f"{growth} [See why in the Pitfalls lab, tab 4]({PITFALLS_LINK})."))
if waiting is not None:
    iterations, rate, timed = waiting
    text = (
        f"This run has not started: its {iterations:,} steps would take about "
        f"{duration(iterations / rate)} here (both loops take about {rate:,.0f} steps per "
        f"second, timed on its first {timed:,} steps), and the page starts a run by itself only "
        f"when it takes under {AUTO_RUN:g} s. Its settings are filled in: press **Run** to start "
        "it."
    )
    if iterations / rate > TIME_LIMIT - FINAL_DRAW:
        near = float(f"{rate * (TIME_LIMIT - FINAL_DRAW):.2g}")
        text += f" A run stops at the {TIME_LIMIT:g} s cap, so it would end near step {near:,.0f}."
    notes.append((st.info, text))
elif (
    result is not None and picked is not None and problem is None and shown["settings"] != settings
):
    notes.append((st.info, "The settings have changed since this run: press **Run** to see them."))
if notes:
    with status.container():
        for show, text in notes:
            show(text)


def downloads(data: lib.Dataset, result: lib.Result, source: dict | None) -> None:
    """Download buttons for the run on show: its history as CSV and JSON, and a script that
    reruns it."""
    cols = st.columns(3)
    history_downloads(cols[:2], data, result)
    script_download(cols[2], data, result, source or {})


def history_downloads(cols: list, data: lib.Dataset, result: lib.Result) -> None:
    """The run's history as CSV and as JSON, or why it is too long to offer."""
    values = 2 * result.steps * (3 + result.manual.weights.shape[1])
    too_long = values > MAX_DOWNLOAD_VALUES
    # Callables: the files are built only when a button is clicked, not on every rerun.
    cols[0].download_button(
        "History (CSV)",
        lambda: lib.history_csv(result),
        "twins_history.csv",
        "text/csv",
        key="download_csv",
        on_click="ignore",
        disabled=too_long,
        width="stretch",
    )
    cols[0].caption("Tidy: one row per step, loop, metric and value.")
    cols[1].download_button(
        "History and settings (JSON)",
        lambda: lib.history_json(result, data),
        "twins_run.json",
        "application/json",
        key="download_json",
        on_click="ignore",
        disabled=too_long,
        width="stretch",
    )
    cols[1].caption(
        "Both loops' losses, weights and gradient norms, with the Config and the data's "
        "description."
    )
    if too_long:
        st.caption(
            f"This history has {values:,} numbers, more than the {MAX_DOWNLOAD_VALUES:,} offered "
            "here: run fewer iterations, or call `lib.history_csv(lib.run(data, cfg))` in a "
            "notebook."
        )


def script_download(col, data: lib.Dataset, result: lib.Result, source: dict) -> None:
    """A script that reruns the run, with its data written in or read from the CSV file."""
    csv_kwargs = {}
    if source.get("kind") == "csv" and source.get("as_is"):
        csv_kwargs = {"csv_name": source["file"], "target": source["target"]}
        note = (
            f"Needs only numpy and torch. It reads **{source['file']}** by name: put the file "
            "next to the script."
        )
    elif source.get("kind") == "csv":
        done = "cleaned of rows with missing values" if source.get("dropped") else "standardised"
        note = (
            "Needs only numpy and torch. The data is written into the script, because it was "
            f"{done} here."
        )
    elif lib.io.export.regenerated_data(data) is not None:
        note = (
            "Needs only numpy and torch; the script makes the data again from its seed with lib's "
            "own generator and checks it bit for bit. Run it with `python twins_run.py`."
        )
    else:
        note = (
            "Needs only numpy and torch; the data is written into the script. Run it with `python "
            "twins_run.py`."
        )
    embeddable = csv_kwargs or data.m * (data.n + 1) <= lib.io.export.MAX_EMBEDDED
    col.download_button(
        "Script that reruns it (.py)",
        lambda: lib.to_script(data, result.config, **csv_kwargs),
        "twins_run.py",
        "text/x-python",
        key="download_script",
        on_click="ignore",
        disabled=not embeddable,
        width="stretch",
    )
    col.caption(note if embeddable else "This data set is too large to write into a script.")
    col.download_button(
        "Notebook that reruns it (.ipynb)",
        lambda: lib.to_notebook(data, result.config, **csv_kwargs),
        "twins_run.ipynb",
        "application/x-ipynb+json",
        key="download_notebook",
        on_click="ignore",
        disabled=not embeddable,
        width="stretch",
    )
    reads = f" It reads **{source['file']}** by name too." if csv_kwargs else ""
    col.caption(
        "The same code as a Jupyter notebook, a cell per phase, with an Altair chart of both "
        f"loops' loss; needs numpy, torch and altair.{reads}"
        if embeddable
        else "This data set is too large to write into a notebook."
    )


if result is not None:
    with summary.container():
        m, t = result.manual, result.torch

        def final(h: lib.History) -> str:
            return f"{h.loss[-1]:.6g}" if h.steps else "none"

        cols = st.columns([1, 1, 3])
        columns = {"final loss": [final(m), final(t)]}
        if len(result.val_rows):
            columns["final validation loss"] = [
                f"{h.val_loss[-1]:.6g}" if len(h.val_loss) else "none" for h in (m, t)
            ]
        cols[0].metric("Steps taken", f"{result.steps:,}")
        agreement = lib.explain.agreement(result)
        cols[1].metric(
            lib.explain.DIFF_NAME.capitalize(),
            f"{result.max_abs_diff:.1e}",
            f"{lib.explain.RELATIVE_NAME}: {agreement['max_relative']:.2g}",
            delta_color="off",
            delta_arrow="off",
            help="Over every weight after every step; relative: each step's difference divided "
            "by max(1, the largest |weight| then).",
        )
        st.caption(lib.explain.agreement_text(result, agreement))
        if shown.get("shared"):
            st.caption(
                "This server had already run these settings on this data for another visitor, so "
                "that run is shown, not computed again: the same settings on the same data give "
                "the same numbers, and its wall times are that run's."
            )
        cols[2].table(
            pd.DataFrame(
                {
                    **columns,
                    "wall time": [f"{m.seconds:.3f} s", f"{t.seconds:.3f} s"],
                    "steps per second": [
                        f"{m.steps_per_second:,.0f}",
                        f"{t.steps_per_second:,.0f}",
                    ],
                },
                index=["manual (numpy)", "torch"],
            )
        )
        speed_note(
            result,
            shown["data"],
            shown.get("settings") or (fingerprint(shown["data"]), result.config),
            cols[2],
        )
        if show_target and result.config.model != "linear":
            st.caption(
                "No least-squares solution on the weights chart or in the table: it exists only "
                "for the linear model."
            )
        weights_table(result, shown["data"])
    draw_charts(result, shown["data"])
    draw_classifier(result, shown["data"])
    with extras.container():
        st.subheader("Take this run home")
        downloads(shown["data"], result, shown.get("source"))
