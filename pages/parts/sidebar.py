"""The sidebar the training pages share (data, model, loss, optimizer, lr, batch size, iterations).

Every control has the same key on every page, `persist_state="session"` and `bind="query-params"`: a
setting made on one page is there on the others, and it is in the URL, under the control's key, so a
copied link reopens it. A page calls `sidebar_config(page)` and gets the Dataset and Config back.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import lib
from pages.parts.build import build
from pages.parts.csv_controls import csv_controls
from pages.parts.labels import (
    ACCUMULATE_HELP,
    ALL_PRESETS,
    CLIP_HELP,
    DEFAULTS,
    DROP_LAST_HELP,
    EVAL_EVERY_HELP,
    KWARG_RANGES,
    LOSS_LABELS,
    LOSSES_FOR,
    MODEL_LABELS,
    OPTIMIZER_LABELS,
    SCHEDULE_CHOICES,
    SCHEDULE_CLASSES,
    SCHEDULE_FORMULAS,
    SCHEDULE_HELP,
    SCHEDULE_KWARG_HELP,
    SCHEDULE_SETTINGS,
    SOURCE_LABELS,
    SOURCES,
    VAL_FRACTION_HELP,
    kwarg_help,
    loop_summary,
    optimizer_defaults,
    zero_mlp_warning,
)
from pages.parts.links import link_asked, note_link, open_link, plain
from pages.parts.presets import change_source, shown_note
from pages.parts.widgets import Drawn, set_by_state_api

# session_state keys: where the current data comes from (see _built), and the first run's notes on
# the link's parameters (see url_notes).
SOURCE = "controls_source"
URL_CHECKED = "controls_url_checked"


def _optimizer_controls(drawn: Drawn, name: str) -> dict:
    """The chosen optimizer's keyword arguments as widgets; those that differ from torch's
    defaults."""
    defaults = optimizer_defaults(name)
    chosen = {}
    for arg, default in defaults.items():
        if isinstance(default, bool):
            chosen[arg] = drawn.check(arg, f"{name}_{arg}", default, help=kwarg_help(name, arg))
        elif arg == "betas":
            cols = st.columns(2)
            betas = []
            for col, part, value in zip(cols, ("beta1", "beta2"), default, strict=True):
                with col:
                    betas.append(_kwarg_number(drawn, name, part, value))
            chosen[arg] = tuple(betas)
        else:
            chosen[arg] = _kwarg_number(drawn, name, arg, default)
    return {arg: value for arg, value in chosen.items() if value != defaults[arg]}


def _kwarg_number(drawn: Drawn, name: str, arg: str, default) -> float:
    """The number box of one keyword argument of optimizer name (beta1 and beta2 for betas)."""
    low, high, step = KWARG_RANGES[arg]
    return drawn.number(
        arg,
        f"{name}_{arg}",
        low,
        high,
        float(default),
        step=step,
        format="%g",
        help=kwarg_help(name, arg),
    )


def _data_controls(drawn: Drawn) -> dict:
    # Not bound to the URL: a bound selectbox writes its shown label there, and links hold the keys
    # (?data=classic). open_link reads the key from a link, and _source_to_url writes it.
    source = drawn.select(
        "Data source",
        SOURCES,
        "data",
        DEFAULTS["data"],
        bind=False,
        on_change=change_source,
        format_func=SOURCE_LABELS.__getitem__,
        help="A preset also sets lr, batch size, iterations, the model (with its hidden layer), "
        "loss, bias, optimizer (with its settings), initial weights, zero_grad, the schedule, "
        "clipping, accumulation and the validation split to values that suit it; going back to "
        "synthetic data or a CSV file puts back the defaults of those you have not changed "
        "since.",
    )
    _source_to_url(source)
    note = shown_note(source)
    if source == "synthetic":
        st.caption("y = X·w + b + noise, with X, w, b drawn from the seed.")
        if note:
            st.caption(note)
        samples = drawn.number(
            "Samples", "samples", 1, lib.engine.data.MAX_SAMPLES, DEFAULTS["samples"]
        )
        n = drawn.number(
            "Features", "n_features", 1, lib.engine.data.MAX_FEATURES, DEFAULTS["n_features"]
        )
        noise = drawn.number("Noise (std)", "noise", 0.0, 100.0, DEFAULTS["noise"], format="%g")
        return {"source": source, "samples": samples, "n": n, "noise": noise}
    if note:
        st.caption(note)
    if source == "csv":
        return {"source": source, **csv_controls(drawn)}
    preset = ALL_PRESETS[source]
    st.caption(f"**{preset.title}.** {preset.about}")
    return {"source": source}


def _source_to_url(source: str) -> None:
    """Keep ?data= in the URL as a bound widget would: the key, left out when it is the default."""
    wanted = None if source == DEFAULTS["data"] else source
    if st.query_params.get_all("data") != ([wanted] if wanted else []):
        if wanted:
            st.query_params["data"] = wanted
        else:
            del st.query_params["data"]


def _model_controls(drawn: Drawn) -> dict:
    model = drawn.select("Model", lib.MODELS, "model", DEFAULTS["model"])
    st.caption(MODEL_LABELS[model])
    # Drawn for every model (greyed out but for the mlp): a preset's value then reaches the URL at
    # once, which streamlit 1.67 does not do for a bound widget that was never drawn before.
    cols, mlp_only = st.columns(2), {"disabled": model != "mlp", "help": "The mlp's hidden layer."}
    with cols[0]:
        hidden = drawn.number(
            "Hidden units",
            "hidden",
            1,
            lib.engine.config.MAX_HIDDEN,
            DEFAULTS["hidden"],
            **mlp_only,
        )
    with cols[1]:
        activation = drawn.select(
            "Activation",
            lib.engine.config.ACTIVATIONS,
            "activation",
            DEFAULTS["activation"],
            **mlp_only,
        )
    allowed = LOSSES_FOR[model]
    if (
        st.session_state.get("loss", allowed[0]) not in allowed
    ):  # e.g. "mse" after switching to logistic
        drawn.write(loss=allowed[0])
    loss = drawn.select("Loss convention", allowed, "loss", DEFAULTS["loss"])
    st.caption(LOSS_LABELS[loss])
    if model != "linear":
        st.caption(
            "A classifier (loss bce) needs targets of 0 and 1: the blobs or moons preset, or a "
            "0/1 column."
        )
    return {"model": model, "hidden": hidden, "activation": activation, "loss": loss}


def _start_controls(drawn: Drawn) -> dict:
    bias = drawn.check("Learn a bias", "bias", DEFAULTS["bias"])
    init = drawn.select("Initial weights", ("zeros", "normal", "custom"), "init", DEFAULTS["init"])
    init_values = ""
    if init == "custom":
        init_values = drawn.text(
            "Initial weights, comma-separated",
            "init_values",
            placeholder="e.g. 0.5, -1, 2, 0",
            help="One number per weight, laid out [w_1 .. w_n, bias] (mlp: [W1 row by row, b1, "
            "W2, b2]); without a bias, leave the biases out.",
        )
    zero_grad = drawn.check(
        "Reset the gradient each step (zero_grad)",
        "zero_grad",
        DEFAULTS["zero_grad"],
        help="Off: both loops skip the reset, so neg_grad and .grad hold the sum of every "
        "step's gradient so far, and each update uses that sum.",
    )
    seed = drawn.number(
        "Seed (data, batch order, normal init)",
        "seed",
        0,
        lib.engine.config.MAX_SEED,
        DEFAULTS["seed"],
    )
    return {
        "bias": bias,
        "init": init,
        "init_values": init_values,
        "zero_grad": zero_grad,
        "seed": seed,
    }


def _schedule_controls(drawn: Drawn) -> dict:
    """The scheduler and the chosen one's settings, as the widgets hold them (see
    build.schedule_kwargs)."""
    name = drawn.select(
        "Scheduler", SCHEDULE_CHOICES, "scheduler", DEFAULTS["scheduler"], help=SCHEDULE_HELP
    )
    st.caption(SCHEDULE_FORMULAS[name])
    if name == "none":
        return {"scheduler": None, "scheduler_raw": {}}
    st.caption(f"torch.optim.lr_scheduler.{SCHEDULE_CLASSES[name]}, and its hand-written twin.")
    raw = {}
    for arg, kind, low, high, default, step in SCHEDULE_SETTINGS[name]:
        key, tip = f"{name}_{arg}", SCHEDULE_KWARG_HELP[f"{name}_{arg}"]
        if kind == "bool":
            raw[arg] = drawn.check(arg, key, default, help=tip)
        elif kind == "choice":
            raw[arg] = drawn.select(arg, low, key, default, help=tip)
        elif kind == "steps":
            raw[arg] = drawn.text(arg, key, default, help=tip)
        elif kind == "int":
            raw[arg] = drawn.number(arg, key, low, high, default, step=step, help=tip)
        else:
            raw[arg] = drawn.number(arg, key, low, high, default, step=step, format="%g", help=tip)
    return {"scheduler": name, "scheduler_raw": raw}


def _step_controls(drawn: Drawn) -> dict:
    """Gradient clipping (0: off) and gradient accumulation."""
    clip = drawn.number(
        "Clip the gradient norm at max_norm (0: no clipping)",
        "clip_grad_norm",
        0.0,
        1e6,
        DEFAULTS["clip_grad_norm"],
        step=0.1,
        format="%g",
        help=CLIP_HELP,
    )
    accumulate = drawn.number(
        "Micro-batches per step (accumulate)",
        "accumulate",
        1,
        lib.engine.config.MAX_ACCUMULATE,
        DEFAULTS["accumulate"],
        help=ACCUMULATE_HELP,
    )
    return {"clip_grad_norm": clip, "accumulate": accumulate}


def _validation_controls(drawn: Drawn) -> dict:
    """The held-out share, how often it is evaluated (0: lib's about 200 passes), drop_last."""
    share = drawn.number(
        "Held-out share for validation (val_fraction)",
        "val_fraction",
        0.0,
        0.99,
        DEFAULTS["val_fraction"],
        step=0.05,
        format="%g",
        help=VAL_FRACTION_HELP,
    )
    every = drawn.number(
        "Validate every (steps; 0: about 200 passes)",
        "eval_every",
        0,
        lib.MAX_ITERATIONS,
        DEFAULTS["eval_every"],
        disabled=share == 0,
        help=EVAL_EVERY_HELP,
    )
    drop_last = drawn.check(
        "Drop each epoch's last short batch (drop_last)",
        "drop_last",
        DEFAULTS["drop_last"],
        help=DROP_LAST_HELP,
    )
    return {"val_fraction": share, "eval_every": every, "drop_last": drop_last}


def sidebar_config(page: str, own: tuple[str, ...] = ()) -> tuple[lib.Dataset, lib.Config] | None:
    """Draw the training controls in the sidebar; the Dataset and Config they describe, or None
    (said in words).

    page "compare" also gets the Run button (key "run") and the display toggles ("log_scale",
    "show_target"). On the session's first run, every link parameter the controls could not take is
    named in a warning.
    """
    # `own`: the page's own link parameters (its step, say), which the page checks itself.
    asked = link_asked(URL_CHECKED, lambda key: key not in own)
    if asked is not None:
        open_link(asked)
    drawn = Drawn()
    with st.sidebar:
        v, summary = _training_controls(drawn, page)
    _link_notes(asked, drawn)
    picked = _built(v)
    if picked is not None:
        _summary(summary, *picked)
    return picked


def _training_controls(drawn: Drawn, page: str) -> tuple[dict, st.delta_generator.DeltaGenerator]:
    """Every control, in the sidebar's order: their values, and the place for the summary line."""
    v: dict = {}
    st.header("Training")
    v["lr"] = drawn.number(
        "Learning rate (lr)", "lr", 1e-6, 100.0, DEFAULTS["lr"], step=0.01, format="%g"
    )
    v["batch_size"] = drawn.number(
        "Batch size",
        "batch_size",
        1,
        lib.engine.data.MAX_SAMPLES,
        DEFAULTS["batch_size"],
        help="At least the number of samples means full batch.",
    )
    v["iterations"] = drawn.number(
        "Iterations (optimizer steps)",
        "iterations",
        1,
        lib.MAX_ITERATIONS,
        DEFAULTS["iterations"],
        step=100,
    )
    if page == "compare":
        st.button("Run", key="run", type="primary", width="stretch")
    summary = st.empty()
    with st.expander("Data"):
        v.update(_data_controls(drawn))
    with st.expander("Model and loss"):
        v.update(_model_controls(drawn))
    with st.expander("Optimizer"):
        v["optimizer"] = drawn.select(
            "Optimizer", lib.OPTIMIZERS, "optimizer", DEFAULTS["optimizer"]
        )
        st.caption(
            f"{OPTIMIZER_LABELS[v['optimizer']]} and its hand-written twin; lr is set above."
        )
        v["optimizer_kwargs"] = _optimizer_controls(drawn, v["optimizer"])
    with st.expander("Start: weights, seed, zero_grad"):
        v.update(_start_controls(drawn))
    with st.expander("Learning-rate schedule"):
        v.update(_schedule_controls(drawn))
    with st.expander("Clipping and accumulation"):
        v.update(_step_controls(drawn))
    with st.expander("DataLoader and validation"):
        v.update(_validation_controls(drawn))
    if page == "compare":
        _display_controls(drawn, linear=v.get("model") == "linear")
    return v, summary


def _display_controls(drawn: Drawn, linear: bool) -> None:
    """The Compare page's display toggles."""
    st.header("Display")
    drawn.check("Log scale for loss and gradient norm", "log_scale", True, toggle=True)
    drawn.check(
        "Show the least-squares solution",
        "show_target",
        True,
        toggle=True,
        disabled=not linear,
        help=None if linear else "It exists only for the linear model.",
    )


def _link_notes(asked: dict[str, list[str]] | None, drawn: Drawn) -> None:
    """The link's parameters the controls could not take, in words: noted on the first run."""
    state = st.session_state
    if asked is not None:
        note_link(URL_CHECKED, asked, drawn)
    # The notes belong to the link: shown until the learner's first click. A rerun the page asks for
    # itself (after a run, say) keeps URL_CHECKED "just set", so the notes are still shown then.
    if state[URL_CHECKED] and set_by_state_api(URL_CHECKED):
        for note in state[URL_CHECKED]:
            st.warning(note)


def _built(v: dict) -> tuple[lib.Dataset, lib.Config] | None:
    """The Dataset and Config of the controls' values; None, said in words, if they cannot run."""
    state = st.session_state
    try:
        data, cfg, source = build(v)
    except ValueError as err:
        state.pop(SOURCE, None)
        if v.get("waiting"):
            st.info(f"To train on your own data, {v['problem']}.")
        else:
            st.error(f"Cannot use these settings: {plain(err)}. Your other settings are kept.")
        return None
    state[SOURCE] = source
    return data, cfg


def _summary(
    summary: st.delta_generator.DeltaGenerator, data: lib.Dataset, cfg: lib.Config
) -> None:
    """The zero-MLP warning where it applies, and the summary line under the training controls."""
    if cfg.model == "mlp" and not np.any(lib.initial_weights(data, cfg)):
        st.warning(zero_mlp_warning(cfg))
    kwargs = ", ".join(
        f"{k}={val:g}" if not isinstance(val, (bool, tuple)) else f"{k}={val}"
        for k, val in cfg.optimizer_kwargs.items()
    )
    summary.caption(
        f"{data.name} · {data.m:,} samples · model {cfg.model} · loss {cfg.loss} · {cfg.optimizer}"
        + (f" ({kwargs})" if kwargs else "")
        + "".join(f"  \n{line}" for line in loop_summary(data, cfg))
    )
