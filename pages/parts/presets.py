"""A preset's suggested settings: put into the controls when it is chosen, put back to the defaults
when the learner leaves it, and the note that says what a change of data source did."""

from __future__ import annotations

from types import MappingProxyType

import streamlit as st

from lib.io.datasets import PRESETS
from pages.parts.cached import preset_data
from pages.parts.labels import DEFAULTS, optimizer_defaults
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
    }
)


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
    name = key.split("_", 1)[0]
    return _widget_values(name, optimizer_defaults(name))[key]


def preset_values(key: str, seed: int = 0) -> dict:
    """A preset's suggested settings as widget values by key: everything the data source's help
    says it sets."""
    preset = PRESETS[key]
    # the data's size is all it reads (a full batch becomes m)
    cfg = preset.config(preset_data(key, seed))
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
    return values


def change_source() -> None:
    """on_change of the data source: a preset puts its suggested settings into the widgets, once;
    leaving a preset puts back the defaults of what it had set and the user has not changed
    since."""
    state = st.session_state
    source, before = state.get("data"), state.pop(PRESET_SET, None)
    state.pop(PRESET_NOTE, None)
    if source in PRESETS:
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
    title = PRESETS[before["preset"]].title
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
