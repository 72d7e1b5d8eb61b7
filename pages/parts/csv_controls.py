"""The CSV upload and its column pickers: the file kept across pages, the target and feature
columns, and what a new file does to the columns chosen for the last one."""

from __future__ import annotations

import hashlib

import streamlit as st

import lib
from lib.io.csv_data import numeric_columns, text_columns
from pages.parts.cached import csv_frame
from pages.parts.labels import DROP_LABEL
from pages.parts.links import plain
from pages.parts.widgets import Drawn, same

# session_state key: (file name, bytes) of the uploaded CSV, kept across pages
UPLOAD = "controls_upload"
# session_state key: (name, digest) of the file the column choice is for
COLUMNS_FOR = "controls_columns_for"
# session_state key: the new file's column choice, in words, while it holds
COLUMNS_NOTE = "controls_columns_note"


def _store_upload() -> None:
    """on_change of the file uploader: keep the file's bytes, which outlive the widget across
    page switches."""
    file = st.session_state.get("csv_file")
    if file is None:
        st.session_state.pop(UPLOAD, None)
    else:
        st.session_state[UPLOAD] = (file.name, file.getvalue())


def csv_controls(drawn: Drawn) -> dict:
    """The upload and its column pickers; the choices, or {"problem": words} when the file cannot
    be used."""
    _uploader()
    upload = st.session_state.get(UPLOAD)
    if upload is None:
        return {
            "problem": "upload a CSV file in the sidebar (Data), or pick another data source",
            "waiting": True,
        }
    name, raw = upload
    if st.session_state.get("csv_file") is None:
        st.caption(f"Using **{name}**, uploaded earlier. Upload another file to replace it.")
    try:
        frame = csv_frame(raw)
    except ValueError as err:
        return {"problem": f"{name}: {err}"}
    numeric = numeric_columns(frame)
    if not numeric:
        return {
            "problem": f"{name}: no column holds only numbers, so there is nothing to learn from"
        }
    _start_over_for_a_new_file(
        drawn, (name, hashlib.blake2b(raw, digest_size=16).hexdigest()), numeric
    )
    return {"name": name, "raw": raw, **_column_pickers(drawn, numeric, text_columns(frame))}


def _uploader() -> None:
    st.file_uploader(
        "CSV file with a header row",
        type=["csv", "txt"],
        key="csv_file",
        on_change=_store_upload,
        help=f"At most {lib.csv_data.MAX_CSV_BYTES / 1e6:g} MB and {lib.csv_data.MAX_CSV_ROWS:,} "
        f"rows; numbers only in the columns you use (blanks too, if you tick {DROP_LABEL}). A "
        "copied link keeps your settings but not the file.",
    )


def _start_over_for_a_new_file(
    drawn: Drawn, this_file: tuple[str, str], numeric: list[str]
) -> None:
    """A new file gets its own column choice, said in a note while the file and those columns
    hold."""
    state = st.session_state
    before = state.get(COLUMNS_FOR)
    state[COLUMNS_FOR] = this_file
    if before not in (
        None,
        this_file,
    ):  # the columns chosen for another file mean nothing for this one
        drawn.write(target=numeric[-1], features=numeric[:-1])
        others = (
            ", ".join(plain(c) for c in numeric[:-1])
            or "none: the file has no other numeric column"
        )
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
        if note["file"] == this_file and all(
            same(state.get(k), v) for k, v in note["values"].items()
        ):
            st.caption(note["text"])
        else:
            del state[COLUMNS_NOTE]


def _column_pickers(drawn: Drawn, numeric: list[str], text: list[str]) -> dict:
    """The target and feature columns, and what to do to them before training."""
    target = drawn.select("Target column (what to predict)", numeric, "target", default=numeric[-1])
    others = [c for c in numeric if c != target]
    chosen = st.session_state.get("features")
    if chosen is not None and any(
        c not in others for c in chosen
    ):  # a column that became the target
        drawn.write(features=[c for c in chosen if c in others])
    features = drawn.multi("Feature columns", others, "features", others)
    if text:
        st.caption(f"Text columns, not usable as numbers: {', '.join(text)}.")
    standardize = drawn.check(
        "Standardise the features",
        "standardize",
        False,
        help="Rescale each feature to mean 0 and std 1.",
    )
    drop = drawn.check(DROP_LABEL, "drop_missing", False)
    return {"target": target, "features": tuple(features), "standardize": standardize, "drop": drop}
