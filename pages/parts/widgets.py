"""The widget registry: Drawn draws each control with the keeping every page shares (the session
and the URL) and records what it accepts, for the link checks of pages/parts/links.py."""

from __future__ import annotations

from types import MappingProxyType

import streamlit as st
from streamlit.runtime.state import get_session_state

# kept across pages, and in the URL
KEEP = MappingProxyType({"persist_state": "session", "bind": "query-params"})


def same(a, b) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def set_by_state_api(key: str) -> bool:
    """Whether st.session_state[key] was set in this run (or by a callback before it) and not yet
    taken in by the widget: the test Streamlit makes before its "created with a default value"
    warning. It is internal, so a Streamlit without it counts as never, and
    tests/test_app_controls.py then fails on the warnings."""
    try:
        return get_session_state().is_new_state_value(key)
    except AttributeError:
        return False


class Drawn(dict):
    """key -> (value, what the control accepts, in words): what the link's parameters are checked
    against.

    A widget whose value was just set through st.session_state (by a callback such as change_source,
    or earlier in the run) is drawn without a default: Streamlit ignores the default then anyway,
    and logs "created with a default value but also had its value set via the Session State API"
    when one is given. Once Streamlit has taken the value in (the next run after a click), the
    widget is drawn with its default again, which also keeps a value equal to it out of the URL.
    """

    def write(self, **values) -> None:
        """Set widgets that are drawn later in this run."""
        st.session_state.update(values)

    def number(self, label: str, key: str, low, high, default, **kw):
        whole = isinstance(low, int) and isinstance(high, int)
        if whole:
            # A float widget shown without decimals: Streamlit turns a linked whole number into an
            # int itself, and int("inf") would crash the page; a float widget falls back to its
            # default.
            kw = {
                "step": 1.0,
                "format": "%.0f",
                **{k: float(v) if k == "step" else v for k, v in kw.items()},
            }
            shown = "min" if set_by_state_api(key) else float(default)
            value = st.number_input(label, float(low), float(high), shown, key=key, **KEEP, **kw)
            value = round(value)
        else:
            shown = "min" if set_by_state_api(key) else default
            value = st.number_input(label, low, high, shown, key=key, **KEEP, **kw)
        self[key] = (
            value,
            f"a whole number from {low:,} to {high:,}"
            if whole
            else f"a number from {low:g} to {high:g}",
        )
        return value

    def select(self, label: str, options, key: str, default=None, bind: bool = True, **kw):
        options = tuple(options)
        index = 0 if set_by_state_api(key) or default not in options else options.index(default)
        keep = KEEP if bind else {"persist_state": "session"}
        value = st.selectbox(label, options, index=index, key=key, **keep, **kw)
        self[key] = (value, "one of " + ", ".join(map(str, options)))
        return value

    def check(self, label: str, key: str, default: bool, toggle: bool = False, **kw) -> bool:
        shown = False if set_by_state_api(key) else default
        value = (st.toggle if toggle else st.checkbox)(label, shown, key=key, **KEEP, **kw)
        self[key] = (value, "true or false")
        return value

    def text(self, label: str, key: str, default: str = "", **kw) -> str:
        shown = None if set_by_state_api(key) else default
        value = st.text_input(label, shown, key=key, **KEEP, **kw) or ""
        self[key] = (value, "text")
        return value

    def slider(self, label: str, key: str, low, high, default, step, **kw):
        value = st.slider(label, low, high, default, step, key=key, **KEEP, **kw)
        self[key] = (value, f"a number from {low:g} to {high:g} in steps of {step:g}")
        return value

    def multi(self, label: str, options, key: str, default, **kw) -> list:
        value = st.multiselect(
            label, options, None if set_by_state_api(key) else default, key=key, **KEEP, **kw
        )
        self[key] = (value, "column names of the file")
        return value
