"""Compare the loops: the hand-written numpy loop and the torch loop, run in lockstep and charted."""

import dataclasses
import time

import pandas as pd
import streamlit as st

import lib
from pages.common import least_squares, linear_data, twin_lines_markdown

MAX_NUMBERS = 5_000_000  # samples x features: 40 MB of float64, plenty for a teaching app
LIVE_AFTER = 1.0  # seconds; shorter runs just appear, longer ones show progress and live charts
state = st.session_state  # this page's keys start with "compare_"
KEEP = {"persist_state": "session"}  # settings survive a visit to another page

st.title("Compare the loops")
st.markdown(
    "Two training loops run side by side on the same data, the same batches and the same starting weights: "
    "one written by hand in numpy, every derivative worked out on paper, and the standard PyTorch loop "
    "(`zero_grad`, forward, loss, `backward`, `step`).  \n"
    "Solid blue is the hand loop, dashed orange is torch: the lines lie on top of each other, and the last "
    "chart shows they differ by about 1e-16, float64 rounding. Change the settings on the left and press **Run**."
)

# ------------------------------------------------------------------ controls
with st.sidebar:
    st.header("Training")
    lr = st.number_input(
        "Learning rate (lr)", min_value=1e-6, max_value=100.0, value=0.05, step=0.01, format="%g", key="lr", **KEEP
    )
    batch_size = st.number_input(
        "Batch size",
        min_value=1,
        max_value=1_000_000,
        value=32,
        key="batch_size",
        **KEEP,
        help="At least the number of samples means full batch.",
    )
    iterations = st.number_input(
        "Iterations (optimizer steps)",
        min_value=1,
        max_value=lib.MAX_ITERATIONS,
        value=500,
        step=100,
        key="iterations",
        **KEEP,
    )
    run_clicked = st.button("Run", key="run", type="primary", width="stretch")
    with st.expander("Data: y = X·w + b + noise"):
        n_features = st.number_input("Features", min_value=1, max_value=1_000, value=3, key="n_features", **KEEP)
        samples = st.number_input("Samples", min_value=1, max_value=1_000_000, value=200, key="samples", **KEEP)
        noise = st.number_input(
            "Noise (std)", min_value=0.0, max_value=100.0, value=0.1, format="%g", key="noise", **KEEP
        )
    with st.expander("Loss, model and seed"):
        loss = st.selectbox(
            "Loss convention",
            ("mse", "half_mse", "sse"),
            format_func={
                "mse": "MSELoss(): mean of squared errors",
                "half_mse": "½ · mean: the classic hand loop",
                "sse": "MSELoss(reduction='sum')",
            }.get,
            key="loss",
            **KEEP,
        )
        bias = st.checkbox("Learn a bias", value=True, key="bias", **KEEP)
        init = st.selectbox("Initial weights", ("zeros", "normal", "custom"), key="init", **KEEP)
        init_values = ""
        if init == "custom":
            init_values = st.text_input(
                "Initial weights, comma-separated",
                placeholder="e.g. 0.5, -1, 2, 0",
                key="init_values",
                **KEEP,
                help="One number per weight, laid out [w_1 .. w_n, bias].",
            )
        seed = st.number_input("Seed", min_value=0, max_value=2**32 - 1, value=0, key="seed", **KEEP)
    st.header("Display")
    log_scale = st.toggle("Log scale for loss and gradient norm", value=True, key="log_scale", **KEEP)
    show_target = st.toggle("Show the least-squares solution", value=True, key="show_target", **KEEP)

settings = {
    "lr": lr, "batch_size": batch_size, "iterations": iterations, "n_features": n_features, "samples": samples,
    "noise": noise, "loss": loss, "bias": bias, "init": init, "init_values": init_values, "seed": seed,
}  # fmt: skip

# A run that a Stop click (or any other click) interrupted left its partial Result behind: keep it.
if state.get("compare_running"):
    state["compare_running"] = False
    partial = state.pop("compare_partial", None)
    if partial is not None:
        state["compare_result"] = dataclasses.replace(partial, stopped="stopped")
        state["compare_result_settings"] = state.pop("compare_running_settings", None)


def parse_init(choice: str, text: str):
    """The init for lib.Config: a name, or the numbers typed in."""
    if choice != "custom":
        return choice
    try:
        return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"initial weights must be numbers separated by commas; got {text!r}") from None


def build(settings: dict) -> tuple[lib.Dataset, lib.Config]:
    """The Dataset and Config the widgets describe; ValueError in words if they do not make one."""
    if settings["samples"] * settings["n_features"] > MAX_NUMBERS:
        raise ValueError(
            f"samples x features must be at most {MAX_NUMBERS:,} here; got {settings['samples']:,} x "
            f"{settings['n_features']:,}. Use fewer samples or fewer features."
        )
    data = linear_data(settings["n_features"], settings["samples"], settings["noise"], settings["seed"])
    cfg = lib.Config(
        lr=settings["lr"],
        batch_size=settings["batch_size"],
        iterations=settings["iterations"],
        loss=settings["loss"],
        bias=settings["bias"],
        init=parse_init(settings["init"], settings["init_values"]),
        seed=settings["seed"],
    )
    return data, cfg


# ------------------------------------------------------------------ layout: placeholders drawn into below
status = st.empty()  # progress bar and Stop while a long run goes; the run's ending afterwards
summary = st.container()
left, right = st.columns(2)
slots = {"loss": left.empty(), "weights": right.empty(), "grad_norm": left.empty(), "diff": right.empty()}


def draw_charts(result: lib.Result, reference) -> None:
    """Draw (or redraw) the four charts into their placeholders."""
    label = "least-squares solution"
    charts = lib.charts.all_charts(result, log_loss=log_scale, reference=reference, reference_label=label)
    for name, chart in charts.items():
        slots[name].altair_chart(chart, width="stretch")


def reference_for(settings: dict):
    if not show_target:
        return None
    args = (settings["n_features"], settings["samples"], settings["noise"], settings["seed"], settings["bias"])
    return least_squares(*args)


try:
    data, cfg = build(settings)
    problem = None
except ValueError as err:
    problem = str(err)

if problem is None and (run_clicked or "compare_result" not in state):
    # Runs on Run, and once on the first visit so a newcomer sees the two loops agree straight away.
    started = time.perf_counter()
    reference = reference_for(settings)
    state["compare_running"], state["compare_running_settings"] = True, settings
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
            draw_charts(partial, reference)
            # Redraw at most a quarter of the time, so the live charts do not slow the run much.
            live["redraw"] = now + max(1.0, 3 * (time.perf_counter() - now))

    try:
        result = lib.run(data, cfg, progress=on_progress, progress_every=0.5)
    except ValueError as err:  # e.g. custom initial weights of the wrong length
        problem = str(err)
    else:
        state["compare_result"], state["compare_result_settings"] = result, settings
    finally:
        state["compare_running"] = False
        state.pop("compare_partial", None)

# ------------------------------------------------------------------ the result on show
result: lib.Result | None = state.get("compare_result")
status.empty()  # the progress bar and Stop button, if the run was long enough to show them
notes = []
if problem is not None:
    notes.append((st.error, f"Cannot run these settings: {problem}. Your other settings are kept."))
if result is not None and result.stopped == "diverged":
    notes.append((st.warning, result.message()))
elif result is not None and result.stopped is not None:
    notes.append((st.info, result.message()))
if result is not None and problem is None and state.get("compare_result_settings") != settings:
    notes.append((st.info, "The settings have changed since this run: press **Run** to see them."))
if notes:
    with status.container():
        for show, text in notes:
            show(text)
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
    draw_charts(result, reference_for(state.get("compare_result_settings") or settings))

st.subheader("The five lines, twin by twin")
st.caption(
    "Each torch line beside its hand-written twin, taken from the source of the two functions that ran. "
    "The Code map page explains each row."
)
st.markdown(twin_lines_markdown())
