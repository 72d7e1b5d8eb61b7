"""A link's parameters: checked against the controls and named in words when they cannot be used,
the data source a link names, and text from a link or a file shown as itself in markdown."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import streamlit as st

from pages.parts.labels import ALL_PRESETS, SOURCES
from pages.parts.presets import PRESET_SET, SETTING_NAMES, preset_values, set_note


def link_asked(checked: str, wanted: Callable[[str], bool]) -> dict[str, list[str]] | None:
    """The link's parameters whose key `wanted` accepts, on the session's first run of a page's link
    check (until st.session_state has `checked`); None on every run after it."""
    if checked in st.session_state:
        return None
    return {key: st.query_params.get_all(key) for key in st.query_params if wanted(key)}


def note_link(checked: str, asked: dict[str, list[str]], drawn: dict) -> list[str]:
    """The notes of url_notes on the link's parameters, kept under `checked`, which ends the check
    for the session (see link_asked)."""
    st.session_state[checked] = notes = url_notes(asked, drawn)
    return notes


def open_link(asked: dict[str, list[str]]) -> None:
    """The session's first run: the data source the link names (it is not bound to the URL, see
    _data_controls), and, for a preset, its suggested settings in every control the link does not
    set itself."""
    raw = asked.get("data")
    source = raw[-1].strip() if raw else None
    if source not in SOURCES:
        return  # none asked, or url_notes names it
    st.session_state.update({"data": source})
    if source not in ALL_PRESETS:
        return
    values = {key: value for key, value in preset_values(source).items() if key not in asked}
    st.session_state.update(values)
    st.session_state[PRESET_SET] = {"preset": source, "values": values}
    linked = sorted(key for key in preset_values(source) if key in asked)
    note = "The link names this preset, so its suggested settings are in the controls"
    if linked:
        note += (
            f", but for {', '.join(SETTING_NAMES.get(key, key) for key in linked)}, which the "
            "link sets itself"
        )
    set_note(
        source,
        note + ". Change any of them freely.",
        {key: st.session_state.get(key) for key in values},
    )


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
    """Text from a link or a file shown as itself in markdown: a one-line code span, fenced by
    more backticks than it holds, so that nothing in it (links, emphasis, HTML) is rendered."""
    text = " ".join(str(text).split())
    if not text:
        return "(nothing)"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plain(text) -> str:
    """Text that may hold a link's or a file's words, shown in markdown as typed: the characters
    that could start a link, emphasis, HTML, maths or code are backslash-escaped."""
    return re.sub(r"([\\`*_\[\]<>$~|])", r"\\\1", str(text))


def url_notes(asked: dict[str, list[str]], drawn: dict) -> list[str]:
    """One sentence per link parameter that the controls could not take, naming it and what was
    used."""
    notes = []
    for key, raw in asked.items():
        if key not in drawn:
            notes.append(
                f"The link's parameter {literal(key)} is not a setting that applies here, so it "
                "was ignored."
            )
            continue
        value, allowed = drawn[key]
        if not _matches(raw, value):
            shown = literal(f"{key}={', '.join(raw)[:60]}")
            notes.append(
                f"The link's {shown} cannot be used: {key} must be {allowed}. Using "
                f"{literal(value)} instead."
            )
    return notes
