"""Step through: both loops one step at a time, every number of the current step side by side."""

import math

import numpy as np
import streamlit as st

import lib
from lib.trace import SAMPLE_TERMS, Stepper
from pages.common import LOSS_LABELS, fingerprint, sidebar_config, through_navigation

MAX_ITERATIONS = 10_000  # Run to step N computes every step before N; this keeps it to a few seconds


def act(action: str) -> None:
    """Button callback: move the stepper before the page draws, so the page shows the new step at once."""
    stepper: Stepper = st.session_state["step_stepper"]
    try:
        if action == "run_to":
            stepper.run_to(int(st.session_state["step_target"]))
        else:
            getattr(stepper, action)()
    except ValueError as err:
        st.session_state["step_error"] = str(err)


def number_columns(frame, *skip: str) -> dict:
    """Six significant digits for the values, and the |Δ| columns in scientific notation (they are ~1e-16)."""
    value, tiny = st.column_config.NumberColumn(format="%.6g"), st.column_config.NumberColumn(format="%.1e")
    return {c: (tiny if c.startswith("|Δ") else value) for c in frame.columns if c not in skip}


through_navigation()
st.title("Step through")
st.markdown(
    "Both loops take one step at a time, on the same batch from the same weights. The numbers below are "
    "read out of the two running loop functions — their own variables, right after the step — or computed "
    "from them (each sample's loss term, the |manual − torch| differences); the losses and weights are the "
    "ones `lib.run` records. The step number counts from 0."
)

picked = sidebar_config("step_through")


# What each loss convention's criterion does with the per-sample terms, in torch's words.
CRITERIA = {
    "mse": "MSELoss() is their mean",
    "half_mse": "the half_mse loss (½ × MSELoss()) is their mean",
    "sse": 'MSELoss(reduction="sum") is their sum',
    "bce": "BCEWithLogitsLoss() is their mean",
}


def batch_caption(step, cfg: lib.Config) -> str:
    """What each column of the batch table holds, for this loss and model, with the column's measured mean or sum."""
    bce = cfg.loss == "bce"
    if bce:
        output = (
            "each loop's logit, the model's output (`z` in the hand loop, `outputs` in torch; BCEWithLogitsLoss "
            "applies the sigmoid itself), and p = sigmoid(logit), the model's probability that the target is 1 "
            "(the hand loop's `h`)"
        )
        how = ", computed from the logit as log(1 + e^logit) − target·logit, which cannot overflow"
    else:
        output = "each loop's prediction, the model's output (`z` in the hand loop, `outputs` in torch)"
        how = ""
    term, reduction = SAMPLE_TERMS[cfg.loss]
    m, t = step.manual.loss_from_terms, step.torch.loss_from_terms
    measured = f"Here the {reduction} of the column is {m:.6g} (manual) and {t:.6g} (torch)"
    agree = all(math.isclose(a, b, rel_tol=1e-9) for a, b in ((m, step.manual.loss), (t, step.torch.loss)))
    return (
        f"One row per sample: its row in the data, its inputs and target (as the hand loop holds them; the last "
        f"column says how far torch's copies are from them), {output}, and the sample's term of the loss, "
        f"{term}{how}: {CRITERIA[cfg.loss]}. {measured}"
        + (", the losses shown above." if agree else ".")
        + " The |Δ| columns are |manual − torch|."
    )


def weights_caption(cfg: lib.Config) -> str:
    """What the gradient and update columns hold, and what zero_grad off changes in them."""
    h = "h = sigmoid(z)" if cfg.loss == "bce" else "h = z"
    text = (
        f"Gradient, manual: the hand loop's −d_weights (it holds the negative gradient, built from target − h, "
        f"{h}). Gradient, torch: each parameter's .grad after loss.backward(). Update = after − before."
    )
    if not cfg.zero_grad:
        text += (
            " zero_grad is off, so neither d_weights nor .grad is reset: both hold the sum of this step's gradient "
            "and every earlier step's, and the optimizer steps with that sum."
        )
    return text


def diverged_text(step, cfg: lib.Config) -> str:
    """Why the run stopped at this step, from the step's own numbers where they say it."""
    text = f"The loops diverged at step {step.t}: a number stopped being finite. There are no later steps."
    kwargs = {**lib.optim.defaults(cfg.optimizer), **cfg.optimizer_kwargs}
    m = step.manual
    with np.errstate(invalid="ignore"):
        zero_to_nan = int(np.sum((m.gradient == 0) & np.isfinite(m.weights_before) & np.isnan(m.weights_after)))
    divides = kwargs.get("eps") == 0 and kwargs.get("initial_accumulator_value", 0) == 0
    if divides and zero_to_nan:
        return text + (
            f" {zero_to_nan:,} weight{'s' if zero_to_nan > 1 else ''} whose gradient at this step was exactly 0 "
            f"came out of the update as NaN. With eps = 0, {lib.optim.TORCH_NAMES[cfg.optimizer]} divides by a "
            "denominator that is 0 for a weight whose every gradient so far was 0, and 0/0 is NaN, at any learning "
            "rate: set eps above 0."
        )
    return text + f" A learning rate smaller than {cfg.lr:g} may keep the run finite."


def show_steps(data: lib.Dataset, cfg: lib.Config) -> None:
    """The step buttons and every number of the current step, for this data and Config."""
    if cfg.iterations > MAX_ITERATIONS:
        st.caption(f"This page steps through the first {MAX_ITERATIONS:,} of the {cfg.iterations:,} iterations.")
        cfg = cfg.replace(iterations=MAX_ITERATIONS)
    settings = (fingerprint(data), cfg)
    if st.session_state.get("step_config") != settings:
        # A new configuration is a new run: start it from the init. The same one keeps its place.
        st.session_state["step_stepper"] = Stepper(data, cfg)
        st.session_state["step_config"] = settings
    stepper: Stepper = st.session_state["step_stepper"]

    buttons = st.columns([1, 1, 1, 1.2, 1.2, 1], vertical_alignment="bottom")
    buttons[0].button(
        "Start", key="step_start", on_click=act, args=("next",), disabled=stepper.step >= 0, type="primary"
    )
    buttons[1].button("Previous step", key="step_previous", on_click=act, args=("previous",), disabled=stepper.step < 0)
    buttons[2].button("Next step", key="step_next", on_click=act, args=("next",), disabled=stepper.at_end)
    # The target is set through session state only, so a smaller iteration count can clamp it without a warning.
    last = cfg.iterations - 1
    st.session_state["step_target"] = min(st.session_state.get("step_target", min(10, last)), last)
    buttons[3].number_input("step N", 0, last, key="step_target")
    buttons[4].button("Run to step N", key="step_run_to", on_click=act, args=("run_to",))
    buttons[5].button("Reset", key="step_reset", on_click=act, args=("reset",), disabled=stepper.step < 0)

    if error := st.session_state.pop("step_error", None):
        st.error(error)

    step = stepper.current
    if step is None:
        st.info(
            f"Not started: both loops hold the initial weights "
            f"({cfg.init if isinstance(cfg.init, str) else 'the custom ones'}). Press **Start** to run step 0, "
            f"or pick a step N and press **Run to step N**."
        )
        return

    batch = len(step.manual.indices)
    epoch_steps = -(-data.m // cfg.batch_size)
    if stepper.diverged_at is None:
        st.subheader(f"Step {step.t}  ·  this run has steps 0 to {cfg.iterations - 1}")
    else:  # known once the run has reached it
        st.subheader(f"Step {step.t}  ·  this run diverged at step {stepper.diverged_at}, its last step")
    st.caption(
        f"Epoch {step.t // epoch_steps + 1}, batch {step.t % epoch_steps + 1} of {epoch_steps}: {batch} samples. "
        f"Model {cfg.model} · loss convention {LOSS_LABELS[cfg.loss]} · optimizer {cfg.optimizer} · "
        f"learning rate {cfg.lr:g}."
    )
    if stepper.diverged_at is not None and step.t == stepper.diverged_at:
        st.warning(diverged_text(step, cfg))

    cols = st.columns(3)
    cols[0].metric("loss, manual loop", f"{step.manual.loss:.6g}")
    cols[1].metric("loss, torch loop", f"{step.torch.loss:.6g}")
    cols[2].metric("largest |manual − torch| in this step", f"{step.max_diff:.2g}")

    st.markdown("#### The batch")
    st.caption(batch_caption(step, cfg))
    frame = step.batch_frame(data.feature_names)
    st.dataframe(frame, hide_index=True, column_config=number_columns(frame, "sample (row)"), width="stretch")

    st.markdown("#### The weights")
    st.caption(weights_caption(cfg))
    weights = step.weights_frame(stepper.weight_names)
    st.dataframe(weights, column_config=number_columns(weights), width="stretch")

    show_optimizer_state(step, stepper.weight_names, cfg)


def show_optimizer_state(step, weight_names: tuple[str, ...], cfg: lib.Config) -> None:
    """What each optimizer carries from step to step, after this step: the hand attributes beside torch's state."""
    st.markdown("#### The optimizer's state")
    optimizer = lib.optim.TORCH_NAMES[cfg.optimizer]
    kwargs = {**lib.optim.defaults(cfg.optimizer), **cfg.optimizer_kwargs}
    carried = (
        "zero_grad is off, so .grad (and the hand loop's d_weights) is never reset: it holds the sum of the "
        "gradients of every step so far, and each update uses that sum."
    )
    if not step.optimizer_state:
        text = f"torch.optim.{optimizer} with these settings keeps no state between steps"
        if cfg.optimizer == "sgd":  # SGD without momentum: the update is -lr times the (signed, decayed) gradient
            g = "−.grad" if kwargs["maximize"] else ".grad"
            g = f"({g} + weight_decay × weights)" if kwargs["weight_decay"] else g
            text += f": the update is −lr × {g}"
            text += ", and .grad holds this step's gradient only." if cfg.zero_grad else f". But {carried}"
            text += " (momentum > 0 would add a velocity buffer.)"
        else:
            text += "." + ("" if cfg.zero_grad else f" But {carried}")
        st.caption(text)
        return
    counts = " · ".join(
        f"`optimizer.{attr}` = {hand:g} (manual), `state['{key}']` = {twin:g} (torch)"
        for attr, key, hand, twin in step.step_counts
    )
    st.caption(
        f"What torch.optim.{optimizer} carries from one step to the next, after this step: the hand optimizer's "
        "attributes (lib.optim) beside torch's `optimizer.state[param]`, flattened in the weights' order. "
        + (f"Step counters: {counts}." if counts else "")
        + ("" if cfg.zero_grad else f" Besides the optimizer, {carried}")
    )
    frame = step.state_frame(weight_names)
    if len(frame.columns):
        st.dataframe(frame, column_config=number_columns(frame), width="stretch")


# No st.stop(): after a run ended by it, the next rerun put the shared sidebar back to its defaults
# (seen with AppTest and streamlit 1.67 when another page has the same widget keys).
if picked is not None:
    show_steps(*picked)
