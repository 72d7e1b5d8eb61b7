"""Step through: both loops one step at a time, every number of the current step side by side."""

import math
import textwrap
import time

import numpy as np
import pandas as pd
import streamlit as st

import lib
from lib.engine.data import SharedOrder
from lib.engine.trace import SAMPLE_TERMS, Stepper
from lib.lessons.explain import ROWS, SETUP, row_values, show
from lib.twins.schedules import TORCH_NAMES as SCHEDULER_NAMES
from pages.parts.cached import fingerprint, twin_phases
from pages.parts.labels import LOSS_LABELS
from pages.parts.navigation import through_navigation
from pages.parts.sidebar import sidebar_config

# Run to step N computes every step before N; this keeps it to a few seconds (micro-batches, when
# accumulating: a step runs `accumulate` of them)
MAX_ITERATIONS = 10_000
NO_LINE = "# none: this configuration skips this line"  # a phase the Config leaves out
LAST = len(ROWS) - 1  # the update, the step's last line: after a whole step, the line that just ran
SPEEDS = (0.5, 1.0, 2.0, 5.0, 10.0)  # play's moves per second
DEFAULT_SPEED = 2.0
UNITS = {"step": "a step at a time", "line": "a line at a time"}


def act(action: str) -> None:
    """Button callback: move the stepper before the page draws, so the page shows the new step at
    once."""
    state = st.session_state
    stepper: Stepper = state["step_stepper"]
    # a hand on the buttons pauses play
    state.update(step_playing=False, step_play_note=None, step_phase=LAST)
    try:
        if action == "run_to":
            stepper.run_to(int(state["step_target"]))
        else:
            getattr(stepper, action)()
    except ValueError as err:
        state["step_error"] = str(err)


def can_move(stepper: Stepper, unit: str) -> bool:
    """Whether there is a next line ("line") or a next step ("step") to move to."""
    if unit == "line" and stepper.step >= 0 and st.session_state.get("step_phase", LAST) < LAST:
        return True
    return not stepper.at_end


def move(stepper: Stepper, unit: str) -> None:
    """One move forward: the next line of the step on screen (or the next step's first), or the
    next whole step."""
    state = st.session_state
    if unit == "line" and stepper.step >= 0 and state.get("step_phase", LAST) < LAST:
        state["step_phase"] += 1
    elif not stepper.at_end:
        # both generators run the whole step; the page then shows its lines one by one
        stepper.next()
        state["step_phase"] = 0 if unit == "line" else LAST


def line(direction: int) -> None:
    """Button callback for Next line (+1) and Previous line (-1)."""
    state = st.session_state
    stepper: Stepper = state["step_stepper"]
    state.update(step_playing=False, step_play_note=None)
    phase = state.get("step_phase", LAST)
    try:
        if direction > 0:
            move(stepper, "line")
        elif stepper.step >= 0 and phase > 0:
            state["step_phase"] = phase - 1
        elif stepper.step >= 0:  # from a step's first line back to the previous step's last
            stepper.previous()
            state["step_phase"] = LAST
    except ValueError as err:
        state["step_error"] = str(err)


def start_play() -> None:
    """Play's callback: the first move comes at once, the next ones at the speed chosen."""
    state = st.session_state
    stepper: Stepper = state["step_stepper"]
    if not can_move(stepper, state.get("step_unit_kept", "step")):
        # The button can be a step behind: the step buttons move the run without redrawing it.
        state["step_play_note"] = f"Nothing to play: step {stepper.step} is this run's last step."
        return
    state.update(step_playing=True, step_moved_at=-math.inf, step_play_note=None)


def pause() -> None:
    """Pause's callback: the next tick finds play off and moves nothing."""
    st.session_state["step_playing"] = False


def keep(key: str) -> None:
    """Keep a play setting apart from its widget, whose key Streamlit forgets when the learner
    leaves the page."""
    st.session_state[f"{key}_kept"] = st.session_state[key]


def tick(stepper: Stepper, cfg: lib.Config, total: int) -> None:
    """One play move, unless the last one was less than half a beat ago; play stops itself where
    the run ends."""
    state = st.session_state
    unit = state.get("step_unit_kept", "step")
    now = time.monotonic()
    # A click on a widget inside the fragment also runs it: only a run about a beat after the last
    # move moves.
    if now - state.get("step_moved_at", -math.inf) >= 0.5 / state.get(
        "step_speed_kept", DEFAULT_SPEED
    ):
        try:
            move(stepper, unit)
        except ValueError as err:
            state.update(step_playing=False, step_error=str(err))
            return
        state["step_moved_at"] = now
    if not can_move(stepper, unit):
        state.update(step_playing=False, step_play_note=end_note(stepper, cfg, total))


def end_note(stepper: Stepper, cfg: lib.Config, total: int) -> str:
    """Why play stopped by itself, in words."""
    t = stepper.step
    if stepper.diverged_at is not None:
        return (
            f"Play stopped by itself at step {t}: the loops diverged there, so this run has no "
            "later step."
        )
    if total > cfg.iterations:
        return (
            f"Play stopped by itself at step {t}, the last of the first {cfg.iterations:,} steps "
            f"this page steps through (of {total:,} iterations)."
        )
    return (
        f"Play stopped by itself at step {t}, the run's last step ({total:,} iterations, counted "
        "from step 0)."
    )


def code_lines(code: str) -> str:
    """A phase's source as it runs, without its full-line comments (the Code map shows those)."""
    kept = [text for text in code.splitlines() if text.strip() and not text.strip().startswith("#")]
    return textwrap.dedent("\n".join(kept))


def watch(pairs: list[tuple[str, object]]) -> str:
    """One `name = value` line per value a line produced."""
    return "\n".join(f"{name} = {show(value)}" for name, value in pairs)


def show_lines(step, stepper: Stepper, cfg: lib.Config, phase: int) -> None:
    """The step's five lines in both loops, read from the loop functions that run, the current
    one highlighted."""
    manual_fn, torch_fn = stepper.functions
    hand, twin = twin_phases(stepper.data, stepper.config)
    row = ROWS[phase]
    st.markdown(f"#### The line that just ran: {row.title}")
    where = (
        "the last of the step's five lines; all five ran, in this order, in both loops"
        if phase == LAST
        else f"line {phase + 1} of the step's five; ✓ marks the lines before it, · the ones "
        "still to come"
    )
    st.caption(
        f"Step {step.t}, {where}. Each torch line beside its hand-written twin, read from the "
        f"source of `lib.{manual_fn.__name__}` and `lib.{torch_fn.__name__}`, the functions that "
        "run, less the branches this configuration does not take (comment lines left out). A "
        "loop runs a whole step at a time, from one `yield` to the next, so the page walks the "
        "lines afterwards: the values under the table are the ones the highlighted line produced "
        "in this step." + accumulate_note(cfg)
    )
    head = st.columns([1.1, 3, 3])
    head[0].markdown("**line**")
    head[1].markdown(f"**by hand (numpy)**, `lib.{manual_fn.__name__}`")
    head[2].markdown(f"**PyTorch**, `lib.{torch_fn.__name__}`")
    cols = st.columns([1.1, 3, 3])
    cols[0].markdown("each batch")
    for col, side in ((cols[1], hand), (cols[2], twin)):
        col.code(per_batch(side[SETUP]), language="python", wrap_lines=True)
    for k, r in enumerate(ROWS):
        cells = st.container(border=True) if k == phase else st.container()
        cols = cells.columns([1.1, 3, 3])
        if k == phase:
            cols[0].markdown(f":orange-background[**▶ {r.title}**]")
        else:
            cols[0].markdown(f"{'✓' if k < phase else '·'} {r.title}")
        for col, side in ((cols[1], hand), (cols[2], twin)):
            col.code(code_lines(side[r.phase]) or NO_LINE, language="python", wrap_lines=True)
    hand_values, twin_values = row_values(step, row.key)
    if row.key == "update":
        hand_values, twin_values = (
            hand_values + update_extras(step.manual),
            twin_values + (update_extras(step.torch)),
        )
    st.markdown(f"##### What {row.title} computed in step {step.t}")
    left, right = st.columns(2)
    left.code(watch(hand_values), language="python", wrap_lines=True)
    right.code(watch(twin_values), language="python", wrap_lines=True)
    if row.key == "reset" and not cfg.zero_grad:
        st.caption(
            "zero_grad is off, so neither loop has a reset line in this configuration (in the "
            "whole functions, `if zero_grad:` is false) and nothing is reset: after is before."
        )
    elif row.key == "forward":
        st.caption(
            "`weights` are the weights before this step's update: the ones the forward pass used."
        )


def accumulate_note(cfg: lib.Config) -> str:
    """With accumulate > 1: which lines ran how often in a step, and whose values are shown."""
    k = cfg.accumulate
    if k == 1:
        return ""
    reset = "the reset once, before the first" if cfg.zero_grad else "no reset (zero_grad is off)"
    return (
        f" With accumulate = {k}, the forward pass, the loss and the backward pass ran once for "
        f"each of the step's {k} micro-batches ({reset}) and the update once, after the last: the "
        "values of lines 2 to 4 are the last micro-batch's."
    )


def per_batch(setup: str) -> str:
    """The lines the loop runs for every batch before the reset: the `for` line, and torch's
    `net.train()` (from the loop's setup phase, as the source has them)."""
    lines = setup.splitlines()
    start = next((i for i, text in enumerate(lines) if text.strip().startswith("for ")), None)
    return code_lines("\n".join(lines[start:])) if start is not None else NO_LINE


def update_extras(side) -> list[tuple[str, object]]:
    """The values the update's other lines set in this step, where the configuration runs them."""
    values = []
    if side.norm is not None:
        values += [("norm (before clipping)", side.norm), ("clip factor", side.clip_factor)]
    if side.lr is not None:
        values.append(("step_lr (the lr this step used)", side.lr))
    if side.val_loss is not None:
        values.append(("val_loss", side.val_loss))
    return values


def number_columns(frame, *skip: str) -> dict:
    """Six significant digits for the values, and the |Δ| columns in scientific notation (they
    are ~1e-16)."""
    value, tiny = (
        st.column_config.NumberColumn(format="%.6g"),
        st.column_config.NumberColumn(format="%.1e"),
    )
    return {c: (tiny if c.startswith("|Δ") else value) for c in frame.columns if c not in skip}


through_navigation()
st.title("Step through")
st.markdown(
    "Both loops take one step at a time, on the same batch from the same weights. The numbers "
    "below are read out of the two running loop functions — their own variables, right after the "
    "step — or computed from them (each sample's loss term, the |manual − torch| differences); "
    "the losses and weights are the ones `lib.run` records. The step number counts from 0. "
    "**Play** moves on by itself; **Next line** walks a step's five lines, each torch line "
    "beside its hand-written twin, with the values each produced."
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
    """What each column of the batch table holds, for this loss and model, with the column's
    measured mean or sum."""
    bce = cfg.loss == "bce"
    if bce:
        output = (
            "each loop's logit, the model's output (`outputs` in both loops; "
            "BCEWithLogitsLoss applies the sigmoid itself), and p = sigmoid(logit), the model's "
            "probability that the target is 1 (the hand loop's `h`)"
        )
        how = ", computed from the logit as log(1 + e^logit) − target·logit, which cannot overflow"
    else:
        output = "each loop's prediction, the model's output (`outputs` in both loops)"
        how = ""
    term, reduction = SAMPLE_TERMS[cfg.loss]
    m, t = step.manual.loss_from_terms, step.torch.loss_from_terms
    k = cfg.accumulate
    measured = f"Here the {reduction} of the column is {m:.6g} (manual) and {t:.6g} (torch)"
    agree = all(
        math.isclose(a / k, b, rel_tol=1e-9)
        for a, b in ((m, step.manual.loss), (t, step.torch.loss))
    )
    which = "One row per sample"
    if k > 1:
        which = (
            f"The step's last micro-batch ({k} of {k}), whose values the loops hold at their "
            "`yield`; one row per sample"
        )
    shown = (
        ", the losses shown above" if k == 1 else f"; divided by {k}, the `loss` each loop holds"
    )
    return (
        f"{which}: its row in the data, its inputs and target (as the hand loop holds "
        f"them; the last column says how far torch's copies are from them), {output}, and the "
        f"sample's term of the loss, {term}{how}: {CRITERIA[cfg.loss]}. {measured}"
        + (f"{shown}." if agree else ".")
        + " The |Δ| columns are |manual − torch|."
    )


def weights_caption(cfg: lib.Config) -> str:
    """What the gradient and update columns hold, and what accumulation, clipping and zero_grad
    off change in them."""
    h = "h = sigmoid(outputs)" if cfg.loss == "bce" else "h = outputs"
    backward = "loss.backward()"
    if cfg.accumulate > 1:
        backward = f"the last micro-batch's loss.backward(): the sum of the {cfg.accumulate} shares"
    text = (
        "Gradient, manual: the hand loop's −neg_grad (it holds the negative gradient, built "
        f"from target − h, {h}). Gradient, torch: each parameter's .grad after {backward}."
    )
    if cfg.clip_grad_norm is not None:
        text += (
            " Both are the gradient the optimizer used, after clip_grad_norm_ scaled it by this "
            "step's clip factor (below)."
        )
    text += " Update = after − before."
    if not cfg.zero_grad and cfg.clip_grad_norm is None:
        text += (
            " zero_grad is off, so neither neg_grad nor .grad is reset: both hold the sum of "
            "this step's gradient and every earlier step's, and the optimizer steps with that "
            "sum."
        )
    elif not cfg.zero_grad:
        text += (
            " zero_grad is off, so neither neg_grad nor .grad is reset: this step's gradient is "
            "added to what the previous step left there (its clipped gradient), and "
            "clip_grad_norm_ scales that sum before the optimizer steps with it."
        )
    return text


def diverged_text(step, cfg: lib.Config) -> str:
    """Why the run stopped at this step, from the step's own numbers where they say it."""
    text = (
        f"The loops diverged at step {step.t}: a number stopped being finite. There are no later "
        "steps."
    )
    kwargs = {**lib.optim.defaults(cfg.optimizer), **cfg.optimizer_kwargs}
    m = step.manual
    with np.errstate(invalid="ignore"):
        zero_to_nan = int(
            np.sum((m.gradient == 0) & np.isfinite(m.weights_before) & np.isnan(m.weights_after))
        )
    divides = kwargs.get("eps") == 0 and kwargs.get("initial_accumulator_value", 0) == 0
    if divides and zero_to_nan:
        return text + (
            f" {zero_to_nan:,} weight{'s' if zero_to_nan > 1 else ''} whose gradient at this "
            "step was exactly 0 came out of the update as NaN. With eps = 0, "
            f"{lib.optim.TORCH_NAMES[cfg.optimizer]} divides by a denominator that is 0 for a "
            "weight whose every gradient so far was 0, and 0/0 is NaN, at any learning rate: set "
            "eps above 0."
        )
    return text + f" A learning rate smaller than {cfg.lr:g} may keep the run finite."


def show_steps(data: lib.Dataset, cfg: lib.Config) -> None:
    """Set up the run for this data and Config (a new one starts from the init), then draw its
    steps."""
    state = st.session_state
    total = cfg.iterations
    # Every step runs `accumulate` micro-batches: the page's limit counts micro-batches.
    most = max(1, MAX_ITERATIONS // cfg.accumulate)
    if cfg.iterations > most:
        micro = (
            f" ({most * cfg.accumulate:,} micro-batches: each step runs {cfg.accumulate:,})"
            if cfg.accumulate > 1
            else ""
        )
        st.caption(
            f"This page steps through the first {most:,} of the {cfg.iterations:,} "
            f"iterations{micro}."
        )
        # What the run decides from its length stays the whole run's (the validation interval, a
        # schedule's T_max or total_steps): the steps shown are lib.run's first steps.
        cfg = cfg.replace(
            iterations=most,
            eval_every=cfg.eval_interval,
            scheduler_kwargs=dict(cfg.scheduler_kwargs),
        )
    settings = (fingerprint(data), cfg)
    if state.get("step_config") != settings:
        # A new configuration is a new run: start it from the init, paused. The same one keeps its
        # place.
        try:
            state["step_stepper"] = Stepper(data, cfg)
        except ValueError as err:  # lib.run's checks of data and Config together
            state.pop("step_config", None)
            st.error(f"Cannot step through these settings: {err}.")
            return
        state["step_config"] = settings
        state.update(step_phase=LAST, step_playing=False, step_play_note=None)
    if "step_speed" not in state:
        # The speed box is drawn on this page only, so Streamlit forgets its key when the learner
        # leaves the page: coming back (or arriving) finds play paused instead of resuming by
        # itself.
        state["step_playing"] = False
    play_controls(state["step_stepper"])
    timer = wanted_timer()
    st.fragment(run_every=timer)(steps_view)(data, cfg, total, timer)


def play_controls(stepper: Stepper) -> None:
    """Play or Pause, the speed and what a move is, outside the fragment: each of them reruns the
    whole page.

    run_every is fixed when the fragment is defined, so anything that starts, stops or times play
    needs a whole-page run anyway; and a click on a widget outside the fragment is never lost,
    whereas a click inside it that arrives while a whole-page run is rebuilding the fragment is
    dropped by Streamlit.
    """
    state = st.session_state
    unit = state.get("step_unit_kept", "step")
    play = st.columns([1, 1.2, 1.4, 2.4], vertical_alignment="bottom")
    state["step_play_drawn"] = drawn = (state.get("step_playing", False), can_move(stepper, unit))
    if drawn[0]:
        play[0].button("⏸ Pause", key="step_pause", on_click=pause, type="primary")
    else:
        play[0].button(
            "▶ Play",
            key="step_play",
            on_click=start_play,
            disabled=not drawn[1],
            help="Moves on by itself at the speed chosen, and stops at the run's last step or "
            "where it diverges.",
        )
    speed = state.get("step_speed_kept", DEFAULT_SPEED)
    play[1].selectbox(
        "Speed",
        SPEEDS,
        index=SPEEDS.index(speed),
        format_func=lambda s: f"{s:g} per second",
        key="step_speed",
        on_change=keep,
        args=("step_speed",),
        help="Play's moves per second, as asked for: on a busy machine or a slow connection they "
        "come slower.",
    )
    play[2].selectbox(
        "Play moves",
        tuple(UNITS),
        index=tuple(UNITS).index(unit),
        format_func=UNITS.get,
        key="step_unit",
        on_change=keep,
        args=("step_unit",),
    )


def wanted_timer() -> float | None:
    """Seconds between play's moves while playing, None while paused."""
    state = st.session_state
    return 1 / state.get("step_speed_kept", DEFAULT_SPEED) if state.get("step_playing") else None


def steps_view(data: lib.Dataset, cfg: lib.Config, total: int, timer: float | None) -> None:
    """The fragment: one play move if playing, then the page; with run_every, Streamlit runs it
    once a beat."""
    if st.session_state.get("step_playing"):
        tick(st.session_state["step_stepper"], cfg, total)
    draw_steps(data, cfg)
    # Play stopped by itself, a step button paused it, or moved to or from the run's last step: a
    # whole-page run redraws the Play button (outside this fragment) and defines the fragment again
    # with the timer wanted.
    state = st.session_state
    now = (
        state.get("step_playing", False),
        can_move(state["step_stepper"], state.get("step_unit_kept", "step")),
    )
    if wanted_timer() != timer or now != state.get("step_play_drawn"):
        st.rerun()


def draw_steps(data: lib.Dataset, cfg: lib.Config) -> None:
    """The step buttons, the play controls, and every number of the current step."""
    state = st.session_state
    stepper: Stepper = state["step_stepper"]
    step_buttons(stepper, cfg.iterations - 1)
    line_buttons(stepper)
    if error := state.pop("step_error", None):
        st.error(error)
    if note := state.get("step_play_note"):
        st.info(note)
    step = stepper.current
    if step is None:
        st.info(
            "Not started: both loops hold the initial weights "
            f"({cfg.init if isinstance(cfg.init, str) else 'the custom ones'}). Press **Start** "
            "to run step 0, **Play** to let it move on by itself, **Next line** to walk step 0 "
            "line by line, or pick a step N and press **Run to step N**."
        )
        return
    phase = state.get("step_phase", LAST)
    step_heading(step, stepper, data, cfg)
    show_lines(step, stepper, cfg, phase)
    if phase < LAST:
        st.caption(
            f"Below: the whole of step {step.t}, as both loops left it after all five lines (the "
            f"view above is at line {phase + 1})."
        )
    step_metrics(step)
    st.markdown("#### The batch")
    st.caption(batch_caption(step, cfg))
    frame = step.batch_frame(data.feature_names)
    st.dataframe(
        frame, hide_index=True, column_config=number_columns(frame, "sample (row)"), width="stretch"
    )
    st.markdown("#### The weights")
    st.caption(weights_caption(cfg))
    weights = step.weights_frame(stepper.weight_names)
    st.dataframe(weights, column_config=number_columns(weights), width="stretch")
    if cfg.accumulate > 1:
        show_micro_batches(stepper, step, cfg)
    show_step_extras(stepper, step, cfg)
    show_optimizer_state(step, stepper.weight_names, cfg)


def step_buttons(stepper: Stepper, last: int) -> None:
    """Start, Previous step, Next step, step N with Run to step N, and Reset."""
    state = st.session_state
    buttons = st.columns([1, 1, 1, 1.2, 1.2, 1], vertical_alignment="bottom")
    buttons[0].button(
        "Start",
        key="step_start",
        on_click=act,
        args=("next",),
        disabled=stepper.step >= 0,
        type="primary",
    )
    buttons[1].button(
        "Previous step",
        key="step_previous",
        on_click=act,
        args=("previous",),
        disabled=stepper.step < 0,
    )
    buttons[2].button(
        "Next step", key="step_next", on_click=act, args=("next",), disabled=stepper.at_end
    )
    # The target is set through session state only, so a smaller iteration count can clamp it
    # without a warning.
    state["step_target"] = min(state.get("step_target", min(10, last)), last)
    buttons[3].number_input("step N", 0, last, key="step_target")
    buttons[4].button("Run to step N", key="step_run_to", on_click=act, args=("run_to",))
    buttons[5].button(
        "Reset", key="step_reset", on_click=act, args=("reset",), disabled=stepper.step < 0
    )


def line_buttons(stepper: Stepper) -> None:
    """Previous line and Next line: a step's five lines one at a time."""
    lines = st.columns([1, 1, 4], vertical_alignment="bottom")
    lines[0].button(
        "Previous line", key="step_line_back", on_click=line, args=(-1,), disabled=stepper.step < 0
    )
    lines[1].button(
        "Next line",
        key="step_line",
        on_click=line,
        args=(1,),
        disabled=not can_move(stepper, "line"),
        help="The next of the step's five lines (after a step's last line, the first line of the "
        "next step).",
    )


def step_heading(step, stepper: Stepper, data: lib.Dataset, cfg: lib.Config) -> None:
    """Which step this is, of which epoch and batches, with which settings; why the run stopped
    there."""
    if stepper.diverged_at is None:
        st.subheader(f"Step {step.t}  ·  this run asks for steps 0 to {cfg.iterations - 1}")
    else:  # known once the run has reached it
        st.subheader(
            f"Step {step.t}  ·  this run diverged at step {stepper.diverged_at}, its last step"
        )
    lr = f"learning rate {cfg.lr:g}"
    if cfg.scheduler is not None:
        lr = (
            f"learning rate {cfg.lr:g} under {SCHEDULER_NAMES[cfg.scheduler]} (this step's lr is "
            "below)"
        )
    st.caption(
        f"{where_in_epochs(step, stepper, cfg)} Model {cfg.model} · loss convention "
        f"{LOSS_LABELS[cfg.loss]} · optimizer {cfg.optimizer}"
        + "".join(
            f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}"
            for k, v in cfg.optimizer_kwargs.items()
        )
        + f" · {lr}."
    )
    if stepper.diverged_at is not None and step.t == stepper.diverged_at:
        st.warning(diverged_text(step, cfg))


def where_in_epochs(step, stepper: Stepper, cfg: lib.Config) -> str:
    """The epoch and batch (or, accumulating, the batches) of this step, its samples, and the
    training rows the loops see."""
    train, held_out = len(stepper.train_rows), len(stepper.val_rows)
    per_epoch = len(SharedOrder(train, cfg.batch_size, cfg.seed, cfg.drop_last))
    k = cfg.accumulate
    first, last = step.t * k, step.t * k + k - 1  # batches of the run, counted from 0
    samples = sum(len(rows) for rows in step.manual.micro_indices)
    plural = "s" if samples != 1 else ""
    if k == 1:
        text = f"Epoch {first // per_epoch + 1}, batch {first % per_epoch + 1} of {per_epoch}: "
        text += f"{samples:,} sample{plural}."
    else:
        (e1, b1), (e2, b2) = divmod(first, per_epoch), divmod(last, per_epoch)
        span = (
            f"epoch {e1 + 1}, batches {b1 + 1} to {b2 + 1} of {per_epoch}"
            if e1 == e2
            else f"epoch {e1 + 1} batch {b1 + 1} to epoch {e2 + 1} batch {b2 + 1} ({per_epoch} "
            "batches an epoch)"
        )
        text = f"{k} micro-batches, {span}: {samples:,} sample{plural}."
    if held_out:
        text += (
            f" The loops train on {train:,} of the {stepper.data.m:,} rows; {held_out:,} are "
            "held out for validation."
        )
    return text


def step_metrics(step) -> None:
    """Both loops' loss of this step, and how far apart the loops are in it."""
    cols = st.columns(3)
    # the step's loss, as lib.run records it (accumulating: the sum of the micro-batches' shares)
    cols[0].metric("loss, manual loop", f"{step.manual.step_loss:.6g}")
    cols[1].metric("loss, torch loop", f"{step.torch.step_loss:.6g}")
    rel = lib.explain.relative(
        step.max_diff, np.concatenate([step.manual.weights_after, step.torch.weights_after])
    )
    cols[2].metric(
        f"{lib.explain.DIFF_NAME} in this step",
        f"{step.max_diff:.2g}",
        f"{lib.explain.RELATIVE_NAME}: {rel:.2g}",
        delta_color="off",
        delta_arrow="off",
        help="Over every number of the step: batch, predictions, losses, gradient, weights, "
        "optimizer state.",
    )


def show_micro_batches(stepper: Stepper, step, cfg: lib.Config) -> None:
    """Every micro-batch of an accumulated step: its rows, its loss share and its gradient share,
    and whether the shares add up to the step's gradient and loss (measured)."""
    k = cfg.accumulate
    st.markdown(f"#### The step's {k} micro-batches")
    micro = stepper.micro_batches(step.t)
    st.caption(
        f"accumulate = {k}: each optimizer step runs the forward pass, the loss and "
        f"`backward()` on {k} batches in turn, dividing each loss by {k}, and every backward adds "
        "its gradient into the same buffer (`neg_grad`, `.grad`); `optimizer.step()` runs once, "
        "after the last. The tables above are the last micro-batch's: its values are the ones "
        f"the loops hold at their `yield`. Here each micro-batch is run again alone from the "
        "step's weights by the same two loop functions, its loss and gradient divided by "
        f"{k}: its share. The |Δ| columns are |manual − torch|."
    )
    frame = micro.frame()
    st.dataframe(
        frame,
        hide_index=True,
        column_config=number_columns(frame, "micro-batch", "rows", "samples"),
        width="stretch",
    )
    ok, text = micro_sum_text(micro, step, cfg)
    (st.success if ok else st.error)(text)


def micro_sum_text(micro, step, cfg: lib.Config) -> tuple[bool, str]:
    """Whether the shares add up (and the last micro-batch is the loaders'), in words."""
    k, gaps = cfg.accumulate, (micro.gradient_gap, micro.loss_gap)
    if not all(np.isfinite(g).all() for g in gaps):
        return False, "The shares cannot be added up: a number of this step is not finite."
    rows_ok = all(
        np.array_equal(micro.rows[-1], side.indices) for side in (step.manual, step.torch)
    )
    carried = (
        ""
        if cfg.zero_grad
        else "what the skipped reset left in the buffer (the previous step's gradient: zero_grad "
        "is off) plus "
    )
    clip = ", once scaled by the clip factor," if cfg.clip_grad_norm is not None else ""
    gap = max(float(np.max(g)) for g in gaps)
    if micro.norm is not None:
        gap = max(gap, float(np.max(micro.norm_gap)))
    said = (
        f"In both loops {carried}the {k} gradient shares add up to the gradient{clip} that "
        f"`optimizer.step()` used, and the {k} loss shares to the step's loss "
        f"({step.manual.step_loss:.6g} manual, {step.torch.step_loss:.6g} torch, the loss "
        f"`lib.run` records)"
        + (" and their sum's norm to the norm clipping measured" if micro.norm is not None else "")
        + f": the largest gap is {gap:.1e} of the largest share (allowed: {allowed(micro)})."
    )
    if micro.adds_up and rows_ok:
        return True, "✓ " + said
    if not rows_ok:
        return False, (
            "✗ The last micro-batch run again is not the batch the loaders handed out last, so "
            "these shares are not this step's."
        )
    return False, (
        f"✗ The shares do not add up: the largest gap is {gap:.1e} of the largest share "
        f"(allowed: {allowed(micro)})."
    )


def allowed(holder) -> str:
    """The gap a check allows, in words: one number, or the hand loop's and torch's (float32)."""
    hand, twin = holder.tolerance
    return f"{hand:.0e}" if hand == twin else f"{hand:.0e} manual, {twin:.0e} torch in float32"


def show_step_extras(stepper: Stepper, step, cfg: lib.Config) -> None:
    """The update's other lines, where this configuration runs them: clipping, the schedule's lr
    and the validation pass, both loops side by side."""
    rows = extras_rows(stepper, step, cfg)
    validating = len(stepper.val_rows) > 0
    if not rows and not validating:
        return
    parts = [
        name
        for name, on in (
            ("clipping", cfg.clip_grad_norm is not None),
            ("the learning rate", cfg.scheduler is not None),
            ("validation", validating),
        )
        if on
    ]
    heading = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    st.markdown(f"#### The update's other lines: {heading}")
    if rows:
        frame = pd.DataFrame(rows, columns=["value", "manual", "torch", "|Δ|"]).set_index("value")
        st.dataframe(frame, column_config=number_columns(frame), width="stretch")
    if cfg.clip_grad_norm is not None:
        ok, text = clip_text(stepper, step, cfg)
        (st.success if ok else st.error)(text)
    if cfg.scheduler is not None:
        st.caption(lr_text(step, cfg))
    if validating:
        st.caption(validation_text(stepper, step, cfg))


def extras_rows(stepper: Stepper, step, cfg: lib.Config) -> list[tuple]:
    """(what, manual, torch, |Δ|) for each number of the update's other lines this step set."""
    m, t = step.manual, step.torch
    values = []
    if cfg.clip_grad_norm is not None:
        lengths = [float(np.linalg.norm(side.gradient)) for side in (m, t)]
        values += [
            ("norm = ‖gradient‖ before clipping", m.norm, t.norm),
            ("max_norm", cfg.clip_grad_norm, cfg.clip_grad_norm),
            ("clip factor = min(1, max_norm / (norm + 1e-6))", m.clip_factor, t.clip_factor),
            ("‖gradient‖ optimizer.step() used", *lengths),
        ]
    if cfg.scheduler is not None:
        values.append(("lr this step used", m.lr, t.lr))
    if m.val_loss is not None:
        values.append(("val_loss after this step", m.val_loss, t.val_loss))
    with np.errstate(invalid="ignore"):
        return [(name, a, b, abs(a - b)) for name, a, b in values]


def clip_text(stepper: Stepper, step, cfg: lib.Config) -> tuple[bool, str]:
    """What clip_grad_norm_ did in this step, and whether the gradient step() used shows it."""
    m, t = step.manual, step.torch
    gaps = (m.clip_gap, t.clip_gap)
    if not all(math.isfinite(g) for g in gaps):
        return False, "Clipping cannot be checked at this step: its norm is not finite."
    said = {True: "yes", False: "no"}
    clipped = (
        f"clipped: {said[m.clipped]} in both loops"
        if m.clipped == t.clipped
        else f"clipped: {said[m.clipped]} (manual), {said[t.clipped]} (torch)"
    )
    text = (
        "`clip_grad_norm_` measures one norm over every weight's gradient after the last "
        f"`backward()` and scales the whole gradient, in place, by the clip factor, so "
        f"`optimizer.step()` gets a gradient no longer than max_norm = {cfg.clip_grad_norm:g}. "
        f"This step's norm is {m.norm:.6g} (manual) and {t.norm:.6g} (torch): {clipped}."
    )
    gap = max(gaps)
    if all(g <= tol for g, tol in zip(gaps, stepper.tolerance, strict=True)):
        return True, (
            f"✓ {text} The gradient `optimizer.step()` used is clip factor × norm long in both "
            f"loops (gap {gap:.1e} of the norm; allowed: {allowed(stepper)})."
        )
    return False, (
        f"✗ {text} But the gradient `optimizer.step()` used is not clip factor × norm long: "
        f"the gap is {gap:.1e} of the norm (allowed: {allowed(stepper)})."
    )


def lr_text(step, cfg: lib.Config) -> str:
    """The lr this step used under the schedule, and who set it."""
    return (
        f"With {SCHEDULER_NAMES[cfg.scheduler]}, `scheduler.step()` runs after every "
        "`optimizer.step()` and sets the next step's lr. This step used lr = "
        f"{step.manual.lr:.6g} in the hand loop (its optimizer's `lr`) and {step.torch.lr:.6g} "
        'in torch (`optimizer.param_groups[0]["lr"]`), both read as `step_lr` at the yield; '
        f"both optimizers were built with the Config's lr, {cfg.lr:g}."
    )


def validation_text(stepper: Stepper, step, cfg: lib.Config) -> str:
    """Whether this step evaluated the held-out rows, and when the loops do."""
    every, n = cfg.eval_interval, len(stepper.val_rows)
    rows = f"the {n:,} held-out row{'s' if n != 1 else ''}"
    if step.manual.val_loss is not None:
        return (
            f"After this step's update both loops computed the loss on {rows} (every {every:,} "
            "steps): torch under `net.eval()` and `torch.no_grad()`, the hand loop by the forward "
            "pass and the loss alone (`evaluate`)."
        )
    nxt = ((step.t + 1) // every + 1) * every - 1  # evaluating steps: (t + 1) % every == 0
    later = (
        f"the next is step {nxt:,}"
        if nxt <= cfg.iterations - 1
        else "no later step of this run does"
    )
    return (
        f"This step did not evaluate {rows}: the loops do after steps {every - 1:,}, "
        f"{2 * every - 1:,}, … (every {every:,} steps); {later}."
    )


def show_optimizer_state(step, weight_names: tuple[str, ...], cfg: lib.Config) -> None:
    """What each optimizer carries from step to step, after this step: the hand attributes beside
    torch's state."""
    st.markdown("#### The optimizer's state")
    optimizer = lib.optim.TORCH_NAMES[cfg.optimizer]
    kwargs = {**lib.optim.defaults(cfg.optimizer), **cfg.optimizer_kwargs}
    carried = (
        "zero_grad is off, so .grad (and the hand loop's neg_grad) is never reset: it holds the "
        "sum of the gradients of every step so far, and each update uses that sum."
    )
    if not step.optimizer_state:
        text = f"torch.optim.{optimizer} with these settings keeps no state between steps"
        if (
            cfg.optimizer == "sgd"
        ):  # SGD without momentum: the update is -lr times the (signed, decayed) gradient
            g = "−.grad" if kwargs["maximize"] else ".grad"
            g = f"({g} + weight_decay × weights)" if kwargs["weight_decay"] else g
            text += f": the update is −lr × {g}"
            text += (
                ", and .grad holds this step's gradient only."
                if cfg.zero_grad
                else f". But {carried}"
            )
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
        f"What torch.optim.{optimizer} carries from one step to the next, after this step: the "
        "hand optimizer's attributes (lib.optim) beside torch's `optimizer.state[param]`, "
        "flattened in the weights' order. "
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
else:
    # settings that cannot run stop play; fixing them starts paused
    st.session_state["step_playing"] = False
