"""A preset's suggested settings: put into the controls when it is chosen, put back to the defaults
when the learner leaves it, and the note that says what a change of data source did."""

from __future__ import annotations

from types import MappingProxyType

import streamlit as st

import lib
from lib.io.datasets import PRESETS
from pages.parts.cached import preset_data
from pages.parts.labels import (
    ALL_PRESETS,
    DEFAULTS,
    RUN_DECIDED,
    SCHEDULE_SETTINGS,
    optimizer_defaults,
)
from pages.parts.widgets import same

# session_state key: {"preset": key, "values": {widget key: value it set}}
PRESET_SET = "controls_preset_set"
# session_state key: what the last change of data source did (see set_note)
PRESET_NOTE = "controls_preset_note"


def _widget_values(name: str, kwargs: dict) -> dict:
    """Optimizer kwargs as widget values by key: {"adam_beta1": 0.9, "adam_eps": 1e-08, ...}."""
    out = {}
    for arg, value in kwargs.items():
        if arg == "betas":
            out[f"{name}_beta1"], out[f"{name}_beta2"] = float(value[0]), float(value[1])
        else:
            out[f"{name}_{arg}"] = value if isinstance(value, bool) else float(value)
    return out


# Widget keys in words, for the sentences that say what a change of data source did to them.
SETTING_NAMES = MappingProxyType(
    {
        "lr": "lr",
        "batch_size": "batch size",
        "iterations": "iterations",
        "model": "model",
        "hidden": "hidden units",
        "activation": "activation",
        "loss": "loss",
        "optimizer": "optimizer",
        "bias": "Learn a bias",
        "init": "initial weights",
        "init_values": "the initial weights typed in",
        "zero_grad": "zero_grad",
        "scheduler": "learning-rate schedule",
        "clip_grad_norm": "clip max_norm",
        "accumulate": "accumulate",
        "val_fraction": "val_fraction",
        "eval_every": "eval_every",
        "drop_last": "drop_last",
    }
)
# Every schedule setting's widget key and default: {"step_gamma": 0.1, ...}.
SCHEDULE_DEFAULTS = MappingProxyType(
    {
        f"{name}_{arg}": default
        for name, settings in SCHEDULE_SETTINGS.items()
        for arg, _, _, _, default, _ in settings
    }
)


def preset_dataset(key: str, seed: int = 0) -> lib.Dataset:
    """The data of a preset of lib's (built once per server) or of the app's own (a few rows)."""
    if key in PRESETS:
        return preset_data(key, seed)
    return ALL_PRESETS[key].make(int(seed))


def _setting(key: str, value) -> str:
    """A control and its value in words: "batch size 32", "Learn a bias on", "sgd momentum 0"."""
    name = SETTING_NAMES.get(key) or key.replace("_", " ", 1)
    shown = (
        ("on" if value else "off")
        if isinstance(value, bool)
        else f"{value:g}"
        if isinstance(value, float)
        else value
    )
    return f"{name} {shown}"


def _default_value(key: str):
    """What a control shows before anyone changes it (the optimizers' settings: torch's
    defaults)."""
    if key in DEFAULTS:
        return DEFAULTS[key]
    if key == "init_values":
        return ""
    if key in SCHEDULE_DEFAULTS:
        return SCHEDULE_DEFAULTS[key]
    name = key.split("_", 1)[0]
    return _widget_values(name, optimizer_defaults(name))[key]


def preset_values(key: str, seed: int = 0) -> dict:
    """A preset's suggested settings as widget values by key: everything the data source's help
    says it sets."""
    preset = ALL_PRESETS[key]
    # the data's size is all it reads (a full batch becomes m)
    cfg = preset.config(preset_dataset(key, seed))
    values = {
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "iterations": cfg.iterations,
        "model": cfg.model,
        "loss": cfg.loss,
        "bias": cfg.bias,
        "zero_grad": cfg.zero_grad,
        "optimizer": cfg.optimizer,
        "hidden": cfg.hidden,
        "activation": cfg.activation,
    }
    if isinstance(cfg.init, str):
        values["init"] = cfg.init
    else:
        values["init"], values["init_values"] = "custom", ", ".join(f"{v:g}" for v in cfg.init)
    values.update(
        _widget_values(cfg.optimizer, {**optimizer_defaults(cfg.optimizer), **cfg.optimizer_kwargs})
    )
    values.update(_loop_values(cfg))
    return values


def _loop_values(cfg: lib.Config) -> dict:
    """The whole loop's widget values of a Config: the schedule (with its settings), clipping,
    accumulation, the validation split, eval_every and drop_last; 0 and "none" stand for None."""
    values = {
        "scheduler": cfg.scheduler or "none",
        "clip_grad_norm": cfg.clip_grad_norm or 0.0,
        "accumulate": cfg.accumulate,
        "val_fraction": cfg.val_fraction,
        "eval_every": cfg.eval_every or 0,
        "drop_last": cfg.drop_last,
    }
    if cfg.scheduler is not None:
        for arg, *_ in SCHEDULE_SETTINGS[cfg.scheduler]:
            key = f"{cfg.scheduler}_{arg}"
            value = cfg.scheduler_kwargs.get(arg, SCHEDULE_DEFAULTS[key])
            if key in RUN_DECIDED and value == getattr(cfg, RUN_DECIDED[key]):
                value = SCHEDULE_DEFAULTS[key]  # 0: the run's own, as the widget says
            values[key] = ", ".join(map(str, value)) if arg == "milestones" else value
    return values


def change_source() -> None:
    """on_change of the data source: a preset puts its suggested settings into the widgets, once;
    leaving a preset puts back the defaults of what it had set and the user has not changed
    since."""
    state = st.session_state
    source, before = state.get("data"), state.pop(PRESET_SET, None)
    state.pop(PRESET_NOTE, None)
    if source in ALL_PRESETS:
        values = preset_values(source, int(state.get("seed", 0)))
        st.session_state.update(values)
        state[PRESET_SET] = {"preset": source, "values": values}
        set_note(
            source,
            "Its suggested settings are now in the controls; change any of them freely.",
            values,
        )
        return
    if before is None:
        return
    title = ALL_PRESETS[before["preset"]].title
    reset, kept = {}, []
    for key, value in before["values"].items():
        if not same(state.get(key), value):
            kept.append(key)
        elif not same(value, _default_value(key)):
            reset[key] = _default_value(key)
    st.session_state.update(reset)
    words = []
    if reset:
        shown = ", ".join(_setting(key, value) for key, value in reset.items())
        words.append(f"Back to the defaults for what the *{title}* preset had set: {shown}.")
    if kept:
        shown = ", ".join(_setting(key, state.get(key)) for key in kept)
        words.append(f"Kept as you changed them after choosing the preset: {shown}.")
    if words:
        set_note(source, " ".join(words), {key: state.get(key) for key in (*reset, *kept)})


def set_note(source: str, text: str, values: dict) -> None:
    """Say what a change of data source did, for as long as the controls it names still hold
    those values."""
    st.session_state[PRESET_NOTE] = {"source": source, "text": text, "values": values}


def shown_note(source: str) -> str | None:
    """The note of set_note, while the source and the values it speaks of are unchanged; else it
    is dropped."""
    state = st.session_state
    note = state.get(PRESET_NOTE)
    if note is None:
        return None
    if note["source"] == source and all(
        same(state.get(key), value) for key, value in note["values"].items()
    ):
        return note["text"]
    del state[PRESET_NOTE]
    return None
