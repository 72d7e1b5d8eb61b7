"""The sidebar the training pages share (data, model, loss, optimizer, lr, batch size, iterations), and helpers.

Every control has the same key on every page, `persist_state="session"` and `bind="query-params"`: a
setting made on one page is there on the others, and it is in the URL, under the control's key, so a
copied link reopens it. A page calls `sidebar_config(page)` and gets the Dataset and Config back.
"""

from __future__ import annotations

import hashlib
import math
import re
import urllib.parse
from types import MappingProxyType

import numpy as np
import streamlit as st
from streamlit.runtime.state import get_session_state

import lib
from lib.engine import lockstep as run_checks
from lib.io.csv_data import numeric_columns, prepare, read_csv, text_columns
from lib.io.datasets import PRESETS
from lib.lessons.explain import PHASES, phase_source

KEEP = MappingProxyType({"persist_state": "session", "bind": "query-params"})  # kept across pages, and in the URL
LAST_RUN = "compare_last_run"  # session_state key: {"data": Dataset, "result": Result, "source": dict}
SOURCE = "controls_source"  # session_state key: where the current data comes from (see _source)
UPLOAD = "controls_upload"  # session_state key: (file name, bytes) of the uploaded CSV, kept across pages
# The Pitfalls lab's tab on a learning rate above the stability limit, opened by its URL (the tab is bound to it).
PITFALLS_LINK = "/pitfalls?" + urllib.parse.urlencode({"pitfall": "4 · lr above the limit"})
NAVIGATION_CHECKED = "controls_navigation_checked"  # set once through_navigation has looked, this session
URL_CHECKED = "controls_url_checked"  # set by the first run: its notes on the link's parameters (see url_notes)
PRESET_SET = "controls_preset_set"  # session_state key: {"preset": key, "values": {widget key: value it set}}
PRESET_NOTE = "controls_preset_note"  # session_state key: what the last change of data source did (see _note)
COLUMNS_FOR = "controls_columns_for"  # session_state key: (name, digest) of the file the column choice is for
COLUMNS_NOTE = "controls_columns_note"  # session_state key: the new file's column choice, in words, while it holds
DROP_LABEL = "Drop rows with missing values"  # the checkbox; CSV messages name it instead of drop_missing=True
MAX_NUMBERS = 5_000_000  # samples x features of the synthetic data: 40 MB of float64, plenty here

SOURCES = ("synthetic", *PRESETS, "csv")
# What the data-source list shows; the URL keeps the keys (?data=classic), which links already hold.
SOURCE_LABELS = MappingProxyType(
    {
        "synthetic": "Synthetic: y = X·w + b + noise (you choose its size)",
        **{key: f"Preset: {preset.title}" for key, preset in PRESETS.items()},
        "csv": "Your own CSV file",
    }
)
LOSSES_FOR = MappingProxyType(
    {"linear": ("mse", "half_mse", "sse"), "logistic": ("bce",), "mlp": ("mse", "half_mse", "sse", "bce")}
)
LOSS_LABELS = MappingProxyType(
    {
        "mse": "mse: MSELoss(), the mean of squared errors",
        "half_mse": "half_mse: ½ × the mean of squared errors (the classic preset's convention)",
        "sse": 'sse: MSELoss(reduction="sum"), the sum of squared errors',
        "bce": "bce: BCEWithLogitsLoss(), for a two-class target of 0s and 1s",
    }
)
MODEL_LABELS = MappingProxyType(
    {
        "linear": "linear: regression, z = X·w + b (z = X·w without a bias)",
        "logistic": "logistic: a two-class classifier; its probability that the target is 1 is sigmoid(X·w + b) "
        "(sigmoid(X·w) without a bias)",
        "mlp": "mlp: one hidden layer (tanh or ReLU), then a linear output",
    }
)
OPTIMIZER_LABELS = MappingProxyType(
    {
        "sgd": "torch.optim.SGD",
        "adam": "torch.optim.Adam",
        "adamw": "torch.optim.AdamW",
        "rmsprop": "torch.optim.RMSprop",
        "adagrad": "torch.optim.Adagrad",
    }
)
# The widgets of the optimizers' keyword arguments: (min, max, step) of each number; the rest are switches.
KWARG_RANGES = MappingProxyType(
    {
        "momentum": (0.0, 1.0, 0.05),
        "dampening": (0.0, 1.0, 0.05),
        "weight_decay": (0.0, 10.0, 0.001),
        "eps": (0.0, 1.0, 1e-8),
        "alpha": (0.0, 1.0, 0.01),
        "lr_decay": (0.0, 10.0, 0.001),
        "initial_accumulator_value": (0.0, 100.0, 0.1),
        "beta1": (0.0, 0.999999, 0.01),  # torch requires betas below 1
        "beta2": (0.0, 0.999999, 0.001),
    }
)
# The help of each optimizer's keyword arguments: under "<optimizer>_<arg>" where the optimizers differ (one text
# each, exact for it), else under "<arg>", shared by the optimizers that take it (see kwarg_help).
# g is the gradient as the optimizer uses it: .grad, negated by maximize, plus weight_decay × weights (not AdamW).
KWARG_HELP = MappingProxyType(
    {
        "sgd_momentum": "A velocity v that is set to g at the first step (no dampening), then "
        "v = momentum·v + (1 − dampening)·g; the step is lr·v (nesterov: lr·(g + momentum·v)). 0 turns it off: "
        "plain SGD steps by lr·g.",
        "rmsprop_momentum": "A buffer b = momentum·b + g / (√v + eps) (centered: √(v − ḡ²) + eps), from b = 0; "
        "the step is lr·b. 0 turns it off: the step is then lr·g / (√v + eps).",
        "sgd_weight_decay": "Adds weight_decay × weights to the gradient (L2), after maximize's sign change and "
        "before the velocity takes it in.",
        "adam_weight_decay": "Adds weight_decay × weights to the gradient (L2), after maximize's sign change and "
        "before the moments take it in. With decoupled_weight_decay it multiplies the weights by "
        "1 − lr·weight_decay before the step instead (as AdamW).",
        "adamw_weight_decay": "Multiplies the weights by 1 − lr·weight_decay before each step (decoupled: the "
        "gradient and its moments never see it). torch's default is 0.01, so AdamW shrinks the weights even at its "
        "defaults.",
        "rmsprop_weight_decay": "Adds weight_decay × weights to the gradient (L2), after maximize's sign change and "
        "before v (and ḡ, when centered) take it in.",
        "adagrad_weight_decay": "Adds weight_decay × weights to the gradient (L2), after maximize's sign change and "
        "before its square is added to the sum.",
        "adam_eps": "Added to √v̂ (v after its bias correction; amsgrad: the largest so far) in the step's "
        "denominator: the step is lr·m̂ / (√v̂ + eps). A weight whose g (.grad, plus weight_decay × weights if set) "
        "has been 0 at every step so far steps by 0/eps = 0. With eps = 0 it steps by 0/0 = NaN and the run stops.",
        "adamw_eps": "Added to √v̂ (v after its bias correction; amsgrad: the largest so far) in the step's "
        "denominator: the step is lr·m̂ / (√v̂ + eps), after the decay. A weight whose .grad has been 0 at every step "
        "so far steps by 0/eps = 0 (the decay still shrinks it). With eps = 0 it steps by 0/0 = NaN and the run "
        "stops.",
        "rmsprop_eps": "Added to √v (centered: √(v − ḡ²)) in the step's denominator: the step is lr·g / (√v + eps). "
        "A weight whose g (.grad, plus weight_decay × weights if set) has been 0 at every step so far steps by "
        "0/eps = 0. With eps = 0 it steps by 0/0 = NaN and the run stops.",
        "adagrad_eps": "Added to √sum in the step's denominator: the step is lr·g / (√sum + eps). A weight whose g "
        "(.grad, plus weight_decay × weights if set) has been 0 at every step so far steps by 0/eps = 0. With "
        "eps = 0 it steps by 0/0 = NaN and the run stops, unless initial_accumulator_value > 0.",
        "dampening": "SGD: the new gradient enters the velocity scaled by 1 − dampening, from the second step on "
        "(the first step sets v = g). Must be 0 with nesterov.",
        "nesterov": "SGD: step by lr·(g + momentum·v), with v the velocity just updated, instead of lr·v "
        "(a look-ahead). Needs momentum > 0 and dampening 0.",
        "maximize": "Use −.grad: the step climbs the loss instead of descending it (weight decay, if any, still "
        "pulls the weights towards 0).",
        "beta1": "betas[0]: m = beta1·m + (1 − beta1)·g, the running mean of the gradient (first moment), from 0; "
        "the step divides m by 1 − beta1^t to undo that start.",
        "beta2": "betas[1]: v = beta2·v + (1 − beta2)·g², the running mean of the squared gradient (second "
        "moment), from 0; the step divides v by 1 − beta2^t to undo that start.",
        "amsgrad": "Divide by the square root of the largest second moment v so far (bias-corrected by this "
        "step's 1 − beta2^t) instead of the current v's.",
        "decoupled_weight_decay": "Multiply the weights by 1 − lr·weight_decay before the step (as AdamW) instead "
        "of adding weight_decay × weights to the gradient. Does nothing while weight_decay is 0.",
        "alpha": "v = alpha·v + (1 − alpha)·g², the running mean of the squared gradient; it starts from 0 "
        "and, unlike Adam's, is not corrected for that start.",
        "centered": "Also keep the running mean ḡ = alpha·ḡ + (1 − alpha)·g and divide by √(v − ḡ²) + eps, the "
        "square root of an estimate of the gradient's variance, instead of √v + eps.",
        "lr_decay": "The step size at step t (t = 1 at the first step) is lr / (1 + (t − 1)·lr_decay).",
        "initial_accumulator_value": "The per-weight sum of squared gradients starts from this value instead of 0. "
        "The step is lr·g / (√sum + eps), with lr after lr_decay and this step's g² in the sum.",
    }
)
DEFAULTS = MappingProxyType(
    {
        "lr": 0.05,
        "batch_size": 32,
        "iterations": 500,
        "data": "synthetic",
        "samples": 200,
        "n_features": 3,
        "noise": 0.1,
        "model": "linear",
        "hidden": 8,
        "activation": "tanh",
        "loss": "mse",
        "optimizer": "sgd",
        "bias": True,
        "init": "zeros",
        "zero_grad": True,
        "seed": 0,
    }
)


def kwarg_help(optimizer: str, arg: str) -> str | None:
    """The help of one optimizer's keyword argument: its own text if it has one, else the one it shares."""
    return KWARG_HELP.get(f"{optimizer}_{arg}", KWARG_HELP.get(arg))


def zero_mlp_warning(cfg: lib.Config) -> str:
    """What the sidebar says when an MLP starts from all-zero weights, built from cfg so that every clause applies
    (tests/test_optimizers_models.py checks each clause against both loops)."""
    kwargs = {**optimizer_defaults(cfg.optimizer), **cfg.optimizer_kwargs}
    hidden = "W1, b1 and W2" if cfg.bias else "W1 and W2"
    words = [
        "All of this network's initial weights are zero, so its hidden layer cannot learn. Every hidden unit "
        f"computes {cfg.activation}(0) = 0, so W2's gradient (a product with those zeros) is zero, and so is "
        + ("that of W1 and of b1, which pass" if cfg.bias else "that of W1, which passes")
        + " through W2 = 0."
    ]
    adagrad = cfg.optimizer == "adagrad"
    if kwargs.get("eps", 1.0) == 0 and not (adagrad and kwargs["initial_accumulator_value"] > 0):
        start = " and initial_accumulator_value 0" if adagrad else ""
        words.append(
            f"With eps = 0{start}, {OPTIMIZER_LABELS[cfg.optimizer]} divides those zero gradients by 0: the first "
            f"update of {hidden} is 0/0 = NaN, and the run stops at its first step."
        )
    else:
        despite = [name for arg, name in (("momentum", "momentum"), ("weight_decay", "weight decay"),
                   ("maximize", "maximize")) if kwargs.get(arg)]  # fmt: skip
        if not cfg.zero_grad:
            despite.append("zero_grad off (a sum of zero gradients is zero)")
        even = f", even with {' and '.join(despite)}," if despite else ","
        words.append(
            f"A zero gradient leaves a zero weight at zero with {OPTIMIZER_LABELS[cfg.optimizer]}{even} so {hidden} "
            "stay 0 at every step: "
            + (
                "the network gives every input the same output, its output bias b2, the only weight that can move."
                if cfg.bias
                else "nothing moves, and the network's output is 0 for every input."
            )
        )
    words.append(
        "Choose **normal** initial weights under *Start* (the moons preset does): the hidden units then start "
        "different and can learn different features."
    )
    return " ".join(words)


# ------------------------------------------------------------------ data, cached at numpy level


def through_navigation() -> None:
    """Make sure the page runs inside app.py's navigation, even when a link to it is a fresh server's first request.

    Until st.navigation has run once in the process, Streamlit takes an app with a pages/ folder for an
    old-style multipage app, and a first request for /step_through runs that file alone: no page titles,
    no wide layout, and every module of pages/ listed as a page. Switching that mode off and rerunning
    runs app.py, which shows the page asked for. (It reads Streamlit's PagesManager, which is internal:
    tests/test_browser.py opens a fresh server on a page link to notice if that ever changes.)
    """
    from streamlit.runtime.pages_manager import PagesManager

    # Once per session: a rerun later on (when a page runs on its own, as AppTest runs it) would drop the click
    # that started that run. It used to be once per server, by an st.cache_data that was meant for the data.
    if st.session_state.get(NAVIGATION_CHECKED):
        return
    st.session_state[NAVIGATION_CHECKED] = True
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


@st.cache_data(max_entries=16, show_spinner=False)
def _linear_arrays(n: int, m: int, noise: float, seed: int):
    """The numpy arrays of lib.datasets.linear (cached at numpy level: a Dataset is rebuilt around them)."""
    data = lib.datasets.linear(m=m, n=n, noise=noise, seed=seed)
    return data.X, data.y, data.true_weights, data.name


def linear_data(n: int, m: int, noise: float, seed: int) -> lib.Dataset:
    """lib.datasets.linear(m, n, noise, seed), built once per argument set per server."""
    X, y, true_weights, name = _linear_arrays(int(n), int(m), float(noise), int(seed))
    return lib.Dataset(X, y, name=name, true_weights=true_weights)


@st.cache_data(max_entries=32, show_spinner=False)
def _preset_arrays(key: str, seed: int):
    data = PRESETS[key].make(seed)
    return data.X, data.y, data.feature_names, data.name, data.true_weights


def preset_data(key: str, seed: int) -> lib.Dataset:
    """PRESETS[key].make(seed), built once per argument set per server."""
    X, y, names, name, true_weights = _preset_arrays(key, int(seed) if PRESETS[key].seeded else 0)
    return lib.Dataset(X, y, feature_names=names, name=name, true_weights=true_weights)


@st.cache_data(max_entries=8, show_spinner="Reading the CSV…")
def _csv_frame(raw: bytes):
    return read_csv(raw)


@st.cache_data(max_entries=16, show_spinner=False)
def _csv_arrays(raw: bytes, name: str, target: str, features: tuple, standardize: bool, drop: bool, classifier: bool):
    prepared = prepare(
        _csv_frame(raw),
        target,
        list(features),
        standardize=standardize,
        drop_missing=drop,
        classifier=classifier,
        name=name,
        drop_option=f"the checkbox {DROP_LABEL}",
    )
    data = prepared.data
    return data.X, data.y, data.feature_names, data.name, prepared.dropped_rows


def fingerprint(data: lib.Dataset) -> tuple:
    """A value that is equal for equal data sets (Dataset compares by identity)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(data.X.tobytes())
    digest.update(data.y.tobytes())
    return data.name, data.X.shape, digest.hexdigest()


@st.cache_data(max_entries=16, show_spinner=False)
def _least_squares(_data: lib.Dataset, key: tuple, bias: bool) -> np.ndarray:
    return lib.least_squares(_data, bias)


def least_squares(data: lib.Dataset, cfg: lib.Config) -> np.ndarray | None:
    """The closed-form answer a linear model with a squared loss approaches; None for the other models."""
    if cfg.model != "linear":
        return None
    return _least_squares(data, fingerprint(data), cfg.bias)


def last_run() -> tuple[lib.Dataset, lib.Result] | None:
    """The Compare page's latest run in this session, with its data (st.session_state[LAST_RUN]), or None."""
    record = st.session_state.get(LAST_RUN)
    return None if record is None else (record["data"], record["result"])


# ------------------------------------------------------------------ the controls


def optimizer_defaults(name: str) -> dict:
    """The keyword arguments of the hand-written optimizer (the same as torch's), with their defaults."""
    return lib.optim.defaults(name)


# The warning for the MLP the sidebar offers first (tanh, a bias, plain SGD, zero_grad on), as a name to look for.
ZERO_MLP = zero_mlp_warning(lib.Config(model="mlp"))


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
    {"lr": "lr", "batch_size": "batch size", "iterations": "iterations", "model": "model", "hidden": "hidden units",
     "activation": "activation", "loss": "loss", "optimizer": "optimizer", "bias": "Learn a bias",
     "init": "initial weights", "init_values": "the initial weights typed in", "zero_grad": "zero_grad"}
)  # fmt: skip


def _setting(key: str, value) -> str:
    """A control and its value in words: "batch size 32", "Learn a bias on", "sgd momentum 0"."""
    name = SETTING_NAMES.get(key) or key.replace("_", " ", 1)
    shown = (
        ("on" if value else "off") if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else value
    )
    return f"{name} {shown}"


def _default_value(key: str):
    """What a control shows before anyone changes it (the optimizers' settings: torch's defaults)."""
    if key in DEFAULTS:
        return DEFAULTS[key]
    if key == "init_values":
        return ""
    name = key.split("_", 1)[0]
    return _widget_values(name, optimizer_defaults(name))[key]


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def preset_values(key: str, seed: int = 0) -> dict:
    """A preset's suggested settings as widget values by key: everything the data source's help says it sets."""
    preset = PRESETS[key]
    cfg = preset.config(preset_data(key, seed))  # the data's size is all it reads (a full batch becomes m)
    values = {"lr": cfg.lr, "batch_size": cfg.batch_size, "iterations": cfg.iterations, "model": cfg.model,
              "loss": cfg.loss, "bias": cfg.bias, "zero_grad": cfg.zero_grad, "optimizer": cfg.optimizer,
              "hidden": cfg.hidden, "activation": cfg.activation}  # fmt: skip
    if isinstance(cfg.init, str):
        values["init"] = cfg.init
    else:
        values["init"], values["init_values"] = "custom", ", ".join(f"{v:g}" for v in cfg.init)
    values.update(_widget_values(cfg.optimizer, {**optimizer_defaults(cfg.optimizer), **cfg.optimizer_kwargs}))
    return values


def _change_source() -> None:
    """on_change of the data source: a preset puts its suggested settings into the widgets, once; leaving a preset
    puts back the defaults of what it had set and the user has not changed since."""
    state = st.session_state
    source, before = state.get("data"), state.pop(PRESET_SET, None)
    state.pop(PRESET_NOTE, None)
    if source in PRESETS:
        values = preset_values(source, int(state.get("seed", 0)))
        st.session_state.update(values)
        state[PRESET_SET] = {"preset": source, "values": values}
        _note(source, "Its suggested settings are now in the controls; change any of them freely.", values)
        return
    if before is None:
        return
    title = PRESETS[before["preset"]].title
    reset, kept = {}, []
    for key, value in before["values"].items():
        if not _same(state.get(key), value):
            kept.append(key)
        elif not _same(value, _default_value(key)):
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
        _note(source, " ".join(words), {key: state.get(key) for key in (*reset, *kept)})


def _note(source: str, text: str, values: dict) -> None:
    """Say what a change of data source did, for as long as the controls it names still hold those values."""
    st.session_state[PRESET_NOTE] = {"source": source, "text": text, "values": values}


def _shown_note(source: str) -> str | None:
    """The note of _note, while the source and the values it speaks of are unchanged; else it is dropped."""
    state = st.session_state
    note = state.get(PRESET_NOTE)
    if note is None:
        return None
    if note["source"] == source and all(_same(state.get(key), value) for key, value in note["values"].items()):
        return note["text"]
    del state[PRESET_NOTE]
    return None


def _open_link(asked: dict[str, list[str]]) -> None:
    """The session's first run: the data source the link names (it is not bound to the URL, see _data_controls),
    and, for a preset, its suggested settings in every control the link does not set itself."""
    raw = asked.get("data")
    source = raw[-1].strip() if raw else None
    if source not in SOURCES:
        return  # none asked, or url_notes names it
    st.session_state.update({"data": source})
    if source not in PRESETS:
        return
    values = {key: value for key, value in preset_values(source).items() if key not in asked}
    st.session_state.update(values)
    st.session_state[PRESET_SET] = {"preset": source, "values": values}
    linked = sorted(key for key in preset_values(source) if key in asked)
    note = "The link names this preset, so its suggested settings are in the controls"
    if linked:
        note += f", but for {', '.join(SETTING_NAMES.get(key, key) for key in linked)}, which the link sets itself"
    _note(source, note + ". Change any of them freely.", {key: st.session_state.get(key) for key in values})


def _store_upload() -> None:
    """on_change of the file uploader: keep the file's bytes, which outlive the widget across page switches."""
    file = st.session_state.get("csv_file")
    if file is None:
        st.session_state.pop(UPLOAD, None)
    else:
        st.session_state[UPLOAD] = (file.name, file.getvalue())


def _set_by_state_api(key: str) -> bool:
    """Whether st.session_state[key] was set in this run (or by a callback before it) and not yet taken in by the
    widget: the test Streamlit makes before its "created with a default value" warning. It is internal, so a
    Streamlit without it counts as never, and tests/test_app_controls.py then fails on the warnings."""
    try:
        return get_session_state().is_new_state_value(key)
    except AttributeError:
        return False


class Drawn(dict):
    """key -> (value, what the control accepts, in words): what the link's parameters are checked against.

    A widget whose value was just set through st.session_state (by a callback such as _change_source, or earlier
    in the run) is drawn without a default: Streamlit ignores the default then anyway, and logs "created with a
    default value but also had its value set via the Session State API" when one is given. Once Streamlit has
    taken the value in (the next run after a click), the widget is drawn with its default again, which also keeps
    a value equal to it out of the URL.
    """

    def write(self, **values) -> None:
        """Set widgets that are drawn later in this run."""
        st.session_state.update(values)

    def number(self, label: str, key: str, low, high, default, **kw):
        whole = isinstance(low, int) and isinstance(high, int)
        if whole:
            # A float widget shown without decimals: Streamlit turns a linked whole number into an int
            # itself, and int("inf") would crash the page; a float widget falls back to its default.
            kw = {"step": 1.0, "format": "%.0f", **{k: float(v) if k == "step" else v for k, v in kw.items()}}
            shown = "min" if _set_by_state_api(key) else float(default)
            value = st.number_input(label, float(low), float(high), shown, key=key, **KEEP, **kw)
            value = round(value)
        else:
            shown = "min" if _set_by_state_api(key) else default
            value = st.number_input(label, low, high, shown, key=key, **KEEP, **kw)
        self[key] = (
            value,
            f"a whole number from {low:,} to {high:,}" if whole else f"a number from {low:g} to {high:g}",
        )
        return value

    def select(self, label: str, options, key: str, default=None, bind: bool = True, **kw):
        options = tuple(options)
        index = 0 if _set_by_state_api(key) or default not in options else options.index(default)
        keep = KEEP if bind else {"persist_state": "session"}
        value = st.selectbox(label, options, index=index, key=key, **keep, **kw)
        self[key] = (value, "one of " + ", ".join(map(str, options)))
        return value

    def check(self, label: str, key: str, default: bool, toggle: bool = False, **kw) -> bool:
        shown = False if _set_by_state_api(key) else default
        value = (st.toggle if toggle else st.checkbox)(label, shown, key=key, **KEEP, **kw)
        self[key] = (value, "true or false")
        return value

    def text(self, label: str, key: str, **kw) -> str:
        value = st.text_input(label, key=key, **KEEP, **kw)
        self[key] = (value, "text")
        return value

    def slider(self, label: str, key: str, low, high, default, step, **kw):
        value = st.slider(label, low, high, default, step, key=key, **KEEP, **kw)
        self[key] = (value, f"a number from {low:g} to {high:g} in steps of {step:g}")
        return value

    def multi(self, label: str, options, key: str, default, **kw) -> list:
        value = st.multiselect(label, options, None if _set_by_state_api(key) else default, key=key, **KEEP, **kw)
        self[key] = (value, "column names of the file")
        return value


def _matches(raw: list[str], value) -> bool:
    """Whether a control shows what the link asked for."""
    if isinstance(value, list):
        asked = [part for item in raw for part in item.split(",") if part]
        return sorted(asked) == sorted(map(str, value))
    text = raw[-1].strip()
    if isinstance(value, bool):
        return text.lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(text), value, rel_tol=1e-9, abs_tol=0.0)
        except ValueError:
            return False
    return text == str(value)


def literal(text) -> str:
    """Text from a link or a file shown as itself in markdown: a one-line code span, fenced by more backticks
    than it holds, so that nothing in it (links, emphasis, HTML) is rendered."""
    text = " ".join(str(text).split())
    if not text:
        return "(nothing)"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plain(text) -> str:
    """Text that may hold a link's or a file's words, shown in markdown as typed: the characters that could
    start a link, emphasis, HTML, maths or code are backslash-escaped."""
    return re.sub(r"([\\`*_\[\]<>$~|])", r"\\\1", str(text))


def url_notes(asked: dict[str, list[str]], drawn: dict) -> list[str]:
    """One sentence per link parameter that the controls could not take, naming it and what was used."""
    notes = []
    for key, raw in asked.items():
        if key not in drawn:
            notes.append(f"The link's parameter {literal(key)} is not a setting that applies here, so it was ignored.")
            continue
        value, allowed = drawn[key]
        if not _matches(raw, value):
            shown = literal(f"{key}={', '.join(raw)[:60]}")
            notes.append(f"The link's {shown} cannot be used: {key} must be {allowed}. Using {literal(value)} instead.")
    return notes


def _optimizer_controls(drawn: Drawn, name: str) -> dict:
    """The chosen optimizer's keyword arguments as widgets; returns those that differ from torch's defaults."""
    defaults = optimizer_defaults(name)
    chosen = {}
    for arg, default in defaults.items():
        if isinstance(default, bool):
            chosen[arg] = drawn.check(arg, f"{name}_{arg}", default, help=kwarg_help(name, arg))
        elif arg == "betas":
            cols = st.columns(2)
            betas = []
            for col, part, value in zip(cols, ("beta1", "beta2"), default, strict=True):
                low, high, step = KWARG_RANGES[part]
                with col:
                    betas.append(
                        drawn.number(
                            part,
                            f"{name}_{part}",
                            low,
                            high,
                            float(value),
                            step=step,
                            format="%g",
                            help=kwarg_help(name, part),
                        )
                    )
            chosen[arg] = tuple(betas)
        else:
            low, high, step = KWARG_RANGES[arg]
            chosen[arg] = drawn.number(
                arg, f"{name}_{arg}", low, high, float(default), step=step, format="%g", help=kwarg_help(name, arg)
            )
    return {arg: value for arg, value in chosen.items() if value != defaults[arg]}


def _csv_controls(drawn: Drawn) -> dict:
    """The upload and its column pickers; the choices, or {"problem": words} when the file cannot be used."""
    st.file_uploader(
        "CSV file with a header row",
        type=["csv", "txt"],
        key="csv_file",
        on_change=_store_upload,
        help=f"At most {lib.csv_data.MAX_CSV_BYTES / 1e6:g} MB and {lib.csv_data.MAX_CSV_ROWS:,} rows; "
        f"numbers only in the columns you use (blanks too, if you tick {DROP_LABEL}). A copied "
        "link keeps your settings but not the file.",
    )
    upload = st.session_state.get(UPLOAD)
    if upload is None:
        return {"problem": "upload a CSV file in the sidebar (Data), or pick another data source", "waiting": True}
    name, raw = upload
    if st.session_state.get("csv_file") is None:
        st.caption(f"Using **{name}**, uploaded earlier. Upload another file to replace it.")
    try:
        frame = _csv_frame(raw)
    except ValueError as err:
        return {"problem": f"{name}: {err}"}
    numeric, text = numeric_columns(frame), text_columns(frame)
    if not numeric:
        return {"problem": f"{name}: no column holds only numbers, so there is nothing to learn from"}
    this_file, before = (name, hashlib.blake2b(raw, digest_size=16).hexdigest()), st.session_state.get(COLUMNS_FOR)
    st.session_state[COLUMNS_FOR] = this_file
    state = st.session_state
    if before not in (None, this_file):  # the columns chosen for another file mean nothing for this one
        drawn.write(target=numeric[-1], features=numeric[:-1])
        others = ", ".join(plain(c) for c in numeric[:-1]) or "none: the file has no other numeric column"
        text = (
            f"A new file, so the column choice starts over: the target is its last numeric column, "
            f"{plain(numeric[-1])}, and the features are all the other numeric columns ({others})."
        )
        state[COLUMNS_NOTE] = {
            "file": this_file,
            "text": text,
            "values": {"target": numeric[-1], "features": numeric[:-1]},
        }
    note = state.get(COLUMNS_NOTE)
    if note is not None:  # said while the file and the columns it names are unchanged
        if note["file"] == this_file and all(_same(state.get(k), v) for k, v in note["values"].items()):
            st.caption(note["text"])
        else:
            del state[COLUMNS_NOTE]
    target = drawn.select("Target column (what to predict)", numeric, "target", default=numeric[-1])
    others = [c for c in numeric if c != target]
    chosen = st.session_state.get("features")
    if chosen is not None and any(c not in others for c in chosen):  # a column that became the target
        drawn.write(features=[c for c in chosen if c in others])
    features = drawn.multi("Feature columns", others, "features", others)
    if text:
        st.caption(f"Text columns, not usable as numbers: {', '.join(text)}.")
    standardize = drawn.check(
        "Standardise the features", "standardize", False, help="Rescale each feature to mean 0 and std 1."
    )
    drop = drawn.check(DROP_LABEL, "drop_missing", False)
    return {"name": name, "raw": raw, "target": target, "features": tuple(features), "standardize": standardize,
            "drop": drop}  # fmt: skip


def _data_controls(drawn: Drawn) -> dict:
    # Not bound to the URL: a bound selectbox writes its shown label there, and links hold the keys (?data=classic).
    # _open_link reads the key from a link, and _source_to_url writes it.
    source = drawn.select(
        "Data source", SOURCES, "data", DEFAULTS["data"], bind=False, on_change=_change_source,
        format_func=SOURCE_LABELS.__getitem__,
        help="A preset also sets lr, batch size, iterations, the model (with its hidden layer), loss, bias, "
        "optimizer (with its settings), initial weights and zero_grad to values that suit it; going back to "
        "synthetic data or a CSV file puts back the defaults of those you have not changed since.",
    )  # fmt: skip
    _source_to_url(source)
    note = _shown_note(source)
    if source == "synthetic":
        st.caption("y = X·w + b + noise, with X, w, b drawn from the seed.")
        if note:
            st.caption(note)
        samples = drawn.number("Samples", "samples", 1, lib.engine.data.MAX_SAMPLES, DEFAULTS["samples"])
        n = drawn.number("Features", "n_features", 1, lib.engine.data.MAX_FEATURES, DEFAULTS["n_features"])
        noise = drawn.number("Noise (std)", "noise", 0.0, 100.0, DEFAULTS["noise"], format="%g")
        return {"source": source, "samples": samples, "n": n, "noise": noise}
    if note:
        st.caption(note)
    if source == "csv":
        return {"source": source, **_csv_controls(drawn)}
    preset = PRESETS[source]
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
    # Drawn for every model (greyed out but for the mlp): a preset's value then reaches the URL at once,
    # which streamlit 1.67 does not do for a bound widget that was never drawn before.
    cols, mlp_only = st.columns(2), {"disabled": model != "mlp", "help": "The mlp's hidden layer."}
    with cols[0]:
        hidden = drawn.number("Hidden units", "hidden", 1, lib.engine.config.MAX_HIDDEN, DEFAULTS["hidden"], **mlp_only)
    with cols[1]:
        activation = drawn.select(
            "Activation", lib.engine.config.ACTIVATIONS, "activation", DEFAULTS["activation"], **mlp_only
        )
    allowed = LOSSES_FOR[model]
    if st.session_state.get("loss", allowed[0]) not in allowed:  # e.g. "mse" after switching to logistic
        drawn.write(loss=allowed[0])
    loss = drawn.select("Loss convention", allowed, "loss", DEFAULTS["loss"])
    st.caption(LOSS_LABELS[loss])
    if model != "linear":
        st.caption("A classifier (loss bce) needs targets of 0 and 1: the blobs or moons preset, or a 0/1 column.")
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
            help="One number per weight, laid out [w_1 .. w_n, bias] (mlp: [W1 row by row, b1, W2, b2]); "
            "without a bias, leave the biases out.",
        )
    zero_grad = drawn.check(
        "Reset the gradient each step (zero_grad)",
        "zero_grad",
        DEFAULTS["zero_grad"],
        help="Off: both loops skip the reset, so d_weights and .grad hold the sum of every step's gradient so "
        "far, and each update uses that sum.",
    )
    seed = drawn.number(
        "Seed (data, batch order, normal init)", "seed", 0, lib.engine.config.MAX_SEED, DEFAULTS["seed"]
    )
    return {"bias": bias, "init": init, "init_values": init_values, "zero_grad": zero_grad, "seed": seed}


def parse_init(choice: str, text: str):
    """The init for lib.Config: a name, or the numbers typed in."""
    if choice != "custom":
        return choice
    try:
        return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"initial weights must be numbers separated by commas; got {text!r}") from None


def _build(v: dict) -> tuple[lib.Dataset, lib.Config, dict]:
    """The Dataset and Config the controls describe, and where the data came from; ValueError in words."""
    if v.get("problem"):
        raise ValueError(v["problem"])
    cfg = lib.Config(
        lr=v["lr"],
        batch_size=int(v["batch_size"]),
        iterations=int(v["iterations"]),
        loss=v["loss"],
        bias=v["bias"],
        init=parse_init(v["init"], v["init_values"]),
        seed=int(v["seed"]),
        zero_grad=v["zero_grad"],
        optimizer=v["optimizer"],
        optimizer_kwargs=v["optimizer_kwargs"],
        model=v["model"],
        hidden=int(v["hidden"]),
        activation=v["activation"],
    )
    source = {"kind": v["source"]}
    if v["source"] == "synthetic":
        if v["samples"] * v["n"] > MAX_NUMBERS:
            raise ValueError(
                f"samples x features must be at most {MAX_NUMBERS:,} here; got {v['samples']:,} x {v['n']:,}. "
                "Use fewer samples or fewer features"
            )
        data = linear_data(v["n"], v["samples"], v["noise"], v["seed"])
    elif v["source"] == "csv":
        args = (v["standardize"], v["drop"], cfg.loss == "bce")
        X, y, names, name, dropped = _csv_arrays(v["raw"], v["name"], v["target"], v["features"], *args)
        data = lib.Dataset(X, y, feature_names=names, name=name)
        # The exported script reads the file itself: as is only when nothing was rescaled or left out.
        as_is = not v["standardize"] and dropped == 0
        source.update(file=v["name"], target=v["target"], as_is=as_is, dropped=dropped)
    else:
        data = preset_data(v["source"], v["seed"])
    if cfg.loss == "bce" and not np.isin(data.y, (0.0, 1.0)).all():
        shown = ", ".join(f"{t:g}" for t in np.unique(data.y)[:4])
        raise ValueError(
            f"the bce loss trains a classifier, which needs targets of 0 and 1, but {data.name} has targets like "
            f"{shown}. Choose the blobs or moons preset or a 0/1 target column, or "
            + (
                "the linear model with a squared loss (logistic trains with bce only)"
                if cfg.model == "logistic"
                else "a squared loss (mse)"
            )
        )
    run_checks.check_run(data, cfg)  # the checks lib.run makes (e.g. iterations x weights is capped)
    lib.initial_weights(data, cfg)  # custom initial weights of the wrong length
    return data, cfg, source


def sidebar_config(page: str, own: tuple[str, ...] = ()) -> tuple[lib.Dataset, lib.Config] | None:
    """Draw the training controls in the sidebar; the Dataset and Config they describe, or None (said in words).

    page "compare" also gets the Run button (key "run") and the display toggles ("log_scale", "show_target").
    On the session's first run, every link parameter the controls could not take is named in a warning.
    """
    state = st.session_state
    first_run = URL_CHECKED not in state
    # `own`: the page's own link parameters (its step, say), which the page checks itself.
    asked = {key: st.query_params.get_all(key) for key in st.query_params if key not in own} if first_run else {}
    if first_run:
        _open_link(asked)
    drawn = Drawn()
    v: dict = {}
    with st.sidebar:
        st.header("Training")
        v["lr"] = drawn.number("Learning rate (lr)", "lr", 1e-6, 100.0, DEFAULTS["lr"], step=0.01, format="%g")
        v["batch_size"] = drawn.number(
            "Batch size", "batch_size", 1, lib.engine.data.MAX_SAMPLES, DEFAULTS["batch_size"],
            help="At least the number of samples means full batch.",
        )  # fmt: skip
        v["iterations"] = drawn.number(
            "Iterations (optimizer steps)", "iterations", 1, lib.MAX_ITERATIONS, DEFAULTS["iterations"], step=100
        )
        if page == "compare":
            st.button("Run", key="run", type="primary", width="stretch")
        summary = st.empty()
        with st.expander("Data"):
            v.update(_data_controls(drawn))
        with st.expander("Model and loss"):
            v.update(_model_controls(drawn))
        with st.expander("Optimizer"):
            v["optimizer"] = drawn.select("Optimizer", lib.OPTIMIZERS, "optimizer", DEFAULTS["optimizer"])
            st.caption(f"{OPTIMIZER_LABELS[v['optimizer']]} and its hand-written twin; lr is set above.")
            v["optimizer_kwargs"] = _optimizer_controls(drawn, v["optimizer"])
        with st.expander("Start: weights, seed, zero_grad"):
            v.update(_start_controls(drawn))
        if page == "compare":
            st.header("Display")
            drawn.check("Log scale for loss and gradient norm", "log_scale", True, toggle=True)
            linear = v.get("model") == "linear"
            drawn.check(
                "Show the least-squares solution",
                "show_target",
                True,
                toggle=True,
                disabled=not linear,
                help=None if linear else "It exists only for the linear model.",
            )
    if first_run:
        state[URL_CHECKED] = url_notes(asked, drawn)
    # The notes belong to the link: shown until the learner's first click. A rerun the page asks for itself (after a
    # run, say) keeps URL_CHECKED "just set", so the notes are still shown then.
    if state[URL_CHECKED] and _set_by_state_api(URL_CHECKED):
        for note in state[URL_CHECKED]:
            st.warning(note)
    try:
        data, cfg, source = _build(v)
    except ValueError as err:
        state.pop(SOURCE, None)
        if v.get("waiting"):
            st.info(f"To train on your own data, {v['problem']}.")
        else:
            st.error(f"Cannot use these settings: {plain(err)}. Your other settings are kept.")
        return None
    state[SOURCE] = source
    if cfg.model == "mlp" and not np.any(lib.initial_weights(data, cfg)):
        st.warning(zero_mlp_warning(cfg))
    kwargs = ", ".join(f"{k}={val:g}" if not isinstance(val, (bool, tuple)) else f"{k}={val}" for k, val in
                       cfg.optimizer_kwargs.items())  # fmt: skip
    summary.caption(
        f"{data.name} · {data.m:,} samples · model {cfg.model} · loss {cfg.loss} · {cfg.optimizer}"
        + (f" ({kwargs})" if kwargs else "")
    )
    return data, cfg


# ------------------------------------------------------------------ the twin-lines table


def _one_line(code: str) -> str:
    """A phase's code lines (comments dropped) on one line, for a table cell."""
    lines = [line.strip() for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]
    out = ""
    for line in lines:
        out += line.split("  #")[0] + (" " if line.endswith(":") else "; ")
    return out.rstrip("; ").replace("|", "\\|")


def twin_lines_markdown(manual=lib.manual_loop) -> str:
    """A markdown table of the five phases: the torch line beside its hand-written twin.

    The cells are sliced from inspect.getsource of lib.torch_loop and the hand loop (lib.manual_loop, or
    lib.manual_mlp_loop for the mlp), the functions lib.run calls, so the table shows the code that runs.
    """
    hand, torch = phase_source(manual), phase_source(lib.torch_loop)
    rows = ["| step | torch | by hand (numpy) |", "|---|---|---|"]
    for phase in PHASES:
        rows.append(f"| {phase.lstrip('# ')} | `{_one_line(torch[phase])}` | `{_one_line(hand[phase])}` |")
    return "\n".join(rows)
