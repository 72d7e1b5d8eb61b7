"""CSV upload: bytes -> checked DataFrame -> Dataset, every problem explained in words (ValueError).

The page flow is: read_csv(raw) once, offer numeric_columns(frame) as the target and feature
choices, then prepare(frame, target, features, standardize=..., drop_missing=..., classifier=...).
Nothing from the file is ever evaluated: pandas' C parser reads text into numbers and strings.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import pandas as pd

from ..engine.data import Dataset
from .scaling import Scaling
from .scaling import standardize as standardize_columns

# 5 MB: far more than a teaching data set needs, small enough for a shared server.
MAX_CSV_BYTES = 5_000_000
MAX_CSV_ROWS = 100_000


def _size(n: int) -> str:
    if n < 1_000:
        return f"{n:,} bytes"
    if n < 1_000_000:
        return f"{n / 1e3:.1f} kB"
    return f"{n / 1e6:.1f} MB"


def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(str(s)) for s in list(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _header(text: str) -> list[str]:
    """The column names as written on the first record (quotes understood, spaces trimmed)."""
    try:
        return [cell.strip() for cell in next(csv.reader(io.StringIO(text)))]
    except (StopIteration, csv.Error):
        return []


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _ragged(text: str, width: int, err: Exception) -> str:
    """Say which line has more fields than the header names, or else pass pandas' own words on."""
    match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
    if match:
        expected, line, saw = match.groups()
        return (
            f"line {line} has {saw} fields but the header names {expected} columns; "
            "check for extra commas"
        )
    try:
        for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if len(row) > width:
                return (
                    f"line {line} has {len(row)} fields but the header names {width} columns; "
                    "check for extra commas"
                )
    except csv.Error:
        pass
    return str(err).strip().removeprefix("Error tokenizing data. C error: ")


def read_csv(
    raw: bytes, *, max_bytes: int = MAX_CSV_BYTES, max_rows: int = MAX_CSV_ROWS
) -> pd.DataFrame:
    """Parse an uploaded comma-separated file with a header row; any problem is a ValueError."""
    text = _decode(raw, max_bytes)
    header = _header(text)
    _check_header(header)
    frame = _parse(text, len(header), max_rows)
    _booleans_as_numbers(frame)
    _check_rows(frame, max_rows)
    return frame


def _decode(raw: bytes, max_bytes: int) -> str:
    """The uploaded bytes as text, refused when they are too many, empty, not UTF-8, or binary."""
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise ValueError(
            "the CSV must be given as bytes (the uploaded file's contents); "
            f"got {type(raw).__name__}"
        )
    if len(raw) > max_bytes:
        raise ValueError(
            f"the file is {_size(len(raw))}, over the {_size(max_bytes)} limit; "
            "upload a smaller sample"
        )
    if not raw.strip():
        raise ValueError(
            "the file is empty; upload a CSV with a header row and at least one data row"
        )
    try:
        # -sig: a byte-order mark, as Excel writes, is not part of the first name.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"the file is not UTF-8 text (byte {raw[err.start]:#04x} at position {err.start:,} "
            "is not valid UTF-8); "
            "save it as 'CSV UTF-8' (an Excel .xlsx file must be exported to CSV first)"
        ) from None
    if "\x00" in text:
        raise ValueError(
            "the file contains NUL bytes, so it is not a text CSV; export it as 'CSV UTF-8'"
        )
    return text


def _check_header(header: list[str]) -> None:
    """Refuse a header of one column, of numbers only (no header row), or naming a column twice."""
    if len(header) == 1:
        sep = next(
            (name for char, name in ((";", "semicolons"), ("\t", "tabs")) if char in header[0]),
            None,
        )
        hint = f"; it looks separated by {sep}: save it with commas" if sep else ""
        raise _one_column(header[0], hint)
    if header and all(_is_number(name) for name in header):
        raise ValueError(
            "the first line holds only numbers "
            f"({', '.join(header[:5])}{', ...' if len(header) > 5 else ''}); "
            "it must name the columns: add a header row"
        )
    duplicates = _duplicates(header)
    if duplicates:
        where = "; ".join(
            f"{name!r} (columns {', '.join(map(str, cols))})" for name, cols in duplicates.items()
        )
        raise ValueError(f"duplicate column names: {where}; every column needs its own name")


def _one_column(name: str, hint: str = "") -> ValueError:
    """The error for a file of one column, named name; hint may say what separates it instead."""
    return ValueError(
        f"the file has only one column ({name!r}); a data set needs a target column "
        f"and at least one feature column, separated by commas{hint}"
    )


def _duplicates(header: list[str]) -> dict[str, list[int]]:
    """Each non-blank name that appears more than once, with the (1-based) columns it heads."""
    seen: dict[str, int] = {}
    duplicates: dict[str, list[int]] = {}
    for position, name in enumerate(header, start=1):
        if name and name in seen:
            duplicates.setdefault(name, [seen[name]]).append(position)
        seen.setdefault(name, position)
    return duplicates


def _parse(text: str, width: int, max_rows: int) -> pd.DataFrame:
    """pandas' C parser on the text (one row past max_rows, to tell), the column names trimmed."""
    try:
        with warnings.catch_warnings():
            # pandas only warns when a data row is longer than the header (and then drops
            # data): refuse instead.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO(text),
                engine="c",
                index_col=False,  # never the first column as index, even for longer rows
                nrows=max_rows + 1,
                skipinitialspace=True,
                low_memory=False,
            )
    except pd.errors.EmptyDataError:
        raise ValueError(
            "the file has no columns; upload a CSV with a header row and data rows"
        ) from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as err:
        raise ValueError(
            f"the file could not be read as CSV: {_ragged(text, width, err)}"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _booleans_as_numbers(frame: pd.DataFrame) -> None:
    """Turn, in place, each column of True/False and blanks into 1.0/0.0/NaN."""
    for column in frame.columns:
        # True/False with blanks comes back as objects; as 1.0/0.0/NaN it is an ordinary
        # numeric column.
        values = frame[column]
        if values.dtype == object and values.notna().any():
            present = values.dropna()
            if all(isinstance(v, (bool, np.bool_)) for v in present):
                frame[column] = values.map(
                    lambda v: float(v) if isinstance(v, (bool, np.bool_)) else np.nan
                )


def _check_rows(frame: pd.DataFrame, max_rows: int) -> None:
    """Refuse a table of one column, of no data rows, or of more than max_rows rows."""
    if frame.shape[1] < 2:
        raise _one_column(frame.columns[0])
    if len(frame) == 0:
        raise ValueError("the file has column names but no data rows")
    if len(frame) > max_rows:
        raise ValueError(
            f"the file has more than {max_rows:,} data rows, the limit; upload a sample of the rows"
        )


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Columns holding only numbers (or True/False) and blanks: the target and feature choices."""
    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]


def text_columns(frame: pd.DataFrame) -> list[str]:
    """Columns holding anything but numbers; they cannot be features or the target."""
    return [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]


def column_report(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per column: name, kind ("number" or "text"), missing values, distinct values."""
    numeric = set(numeric_columns(frame))
    return pd.DataFrame(
        {
            "column": list(frame.columns),
            "kind": ["number" if c in numeric else "text" for c in frame.columns],
            "missing": [int(frame[c].isna().sum()) for c in frame.columns],
            "distinct": [int(frame[c].nunique()) for c in frame.columns],
        }
    )


def _first_text(column: pd.Series) -> str:
    """Where a text column first holds a non-number, e.g. "data row 3 holds 'abc'"."""
    as_numbers = pd.to_numeric(column, errors="coerce")
    bad = column.notna() & as_numbers.isna()
    if not bad.any():
        return "it is not read as numbers"
    row = int(np.flatnonzero(bad.to_numpy())[0])
    return f"data row {row + 1} holds {str(column.iloc[row])[:40]!r}"


def _infinite(used: pd.DataFrame) -> str:
    """Which chosen columns hold inf or -inf, and in how many rows.

    E.g. "column 'x' holds infinite values (...)".
    """
    where = np.isinf(used.to_numpy())
    if not where.any():
        return ""
    columns = [c for c, bad in zip(used.columns, where.any(axis=0), strict=True) if bad]
    plural = len(columns) > 1
    rows = int(where.any(axis=1).sum())
    per_column = ", ".join(
        f"{c!r}: {int(n)}" for c, n in zip(used.columns, where.sum(axis=0), strict=True) if n
    )
    return (
        f"column{'s' if plural else ''} {_names(columns)} hold{'' if plural else 's'} "
        "infinite values (inf or -inf, "
        f"in {rows:,} of {len(used):,} rows; per column: {per_column})"
    )


@dataclass(frozen=True, eq=False)
class Prepared:
    """A Dataset made from a CSV, with what was done to get it (for the page to show)."""

    data: Dataset
    target: str
    features: tuple[str, ...]
    scaling: Scaling | None = None  # the means and stds used when standardised
    dropped_rows: int = 0  # rows left out because of missing values (drop_missing=True)
    ignored_columns: tuple[str, ...] = ()  # text columns left out of the default features


def prepare(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str] | None = None,
    *,
    standardize: bool = False,
    drop_missing: bool = False,
    classifier: bool = False,
    name: str = "uploaded CSV",
    drop_option: str = "drop_missing=True",
) -> Prepared:
    """Check the chosen columns and build the Dataset; features=None: every other numeric column.

    standardize rescales each feature to mean 0 and std 1 (the target is left alone);
    drop_missing leaves out rows with a blank in any chosen column; classifier requires a 0/1
    target. `name` is usually the uploaded file's name; the Dataset is named after it.
    `drop_option` is how the messages name the way to drop rows with missing values (an app
    passes its checkbox's label).
    """
    if not isinstance(frame, pd.DataFrame) or frame.shape[0] == 0:
        raise ValueError("there is no table to use; read a CSV with read_csv first")
    columns = list(frame.columns)
    if not isinstance(target, str) or target not in columns:
        raise ValueError(f"there is no column named {target!r}; the columns are {_names(columns)}")
    text = set(text_columns(frame))
    if features is None:
        chosen, ignored = _default_features(columns, target, text)
    else:
        chosen, ignored = _listed_features(columns, target, features), ()
    _check_numeric(frame, target, chosen, text)
    used = frame[[*chosen, target]].astype(np.float64)
    used, dropped = _without_missing(used, drop_missing, drop_option)
    _refuse_infinite(used, drop_missing, drop_option)
    y = used[target].to_numpy()
    _check_target(y, target, classifier)
    X = used[chosen].to_numpy()
    scaling = None
    if standardize:
        X, scaling = standardize_columns(X, chosen)
    data = Dataset(X, y, feature_names=tuple(chosen), name=_dataset_name(name, target, chosen))
    return Prepared(data, target, tuple(chosen), scaling, dropped, ignored)


def _default_features(
    columns: list[str], target: str, text: set[str]
) -> tuple[list[str], tuple[str, ...]]:
    """(every numeric column but the target, the text columns left out); none numeric: refused."""
    chosen = [c for c in columns if c != target and c not in text]
    ignored = tuple(c for c in columns if c != target and c in text)
    if not chosen:
        raise ValueError(
            "there are no numeric feature columns: "
            f"besides the target {target!r} the file has only "
            f"text columns {_names(ignored)}"
        )
    return chosen, ignored


def _listed_features(columns: list[str], target: str, features: Sequence[str]) -> list[str]:
    """The features as listed; refused when not names, none, unknown, repeated, or the target."""
    if isinstance(features, str) or not all(isinstance(f, str) for f in features):
        raise ValueError(f"features must be a list of column names; got {features!r}")
    chosen = list(features)
    if not chosen:
        raise ValueError(
            "no features chosen; choose at least one feature column besides the target"
        )
    unknown = [f for f in chosen if f not in columns]
    if unknown:
        raise ValueError(
            f"there is no column named {_names(unknown)}; the columns are {_names(columns)}"
        )
    twice = sorted({f for f in chosen if chosen.count(f) > 1})
    if twice:
        raise ValueError(
            f"feature {_names(twice)} is listed more than once; list each feature once"
        )
    if target in chosen:
        raise ValueError(
            f"the target {target!r} is also listed as a feature; a column cannot predict itself, "
            "so leave it out of the features"
        )
    return chosen


def _check_numeric(frame: pd.DataFrame, target: str, chosen: list[str], text: set[str]) -> None:
    """Refuse a text target or text features, saying where the first non-number is."""
    if target in text:
        raise ValueError(
            f"the target {target!r} is not numeric ({_first_text(frame[target])}); "
            "choose a numeric target column"
        )
    text_features = [f for f in chosen if f in text]
    if text_features:
        where = (
            _first_text(frame[text_features[0]])
            if len(text_features) == 1
            else "; ".join(f"{f!r}: {_first_text(frame[f])}" for f in text_features[:5])
        )
        raise ValueError(
            f"feature column{'s' if len(text_features) > 1 else ''} {_names(text_features)} "
            f"{'are' if len(text_features) > 1 else 'is'} not numeric ({where}); leave "
            f"{'them' if len(text_features) > 1 else 'it'} out of the features"
        )


def _without_missing(
    used: pd.DataFrame, drop_missing: bool, drop_option: str
) -> tuple[pd.DataFrame, int]:
    """(the rows without missing values, how many were left out).

    Without drop_missing, any missing value is refused.
    """
    missing = used.isna()
    if not missing.to_numpy().any():
        return used, 0
    rows = int(missing.any(axis=1).sum())
    per_column = ", ".join(f"{c!r}: {int(n)}" for c, n in missing.sum().items() if n)
    if not drop_missing:
        message = (
            f"{rows:,} of {len(used):,} rows {'has' if rows == 1 else 'have'} missing values "
            f"(empty, NA or NaN; per column: {per_column}); "
            f"leave those rows out with {drop_option}, or fill them in"
        )
        infinite = _infinite(used)
        if infinite:
            message += (
                f". Besides, {infinite}: they are not missing values, "
                "so replace them or remove those rows"
            )
        raise ValueError(message)
    used = used[~missing.any(axis=1)]
    if len(used) == 0:
        raise ValueError(
            f"every row has a missing value in the chosen columns ({per_column}); nothing is left"
        )
    return used, rows


def _refuse_infinite(used: pd.DataFrame, drop_missing: bool, drop_option: str) -> None:
    """Refuse inf and -inf in the chosen columns (dropping missing values keeps them)."""
    infinite = _infinite(used)
    if infinite:
        kept = (
            f", and {drop_option} does not leave them out: they are not missing values"
            if drop_missing
            else ""
        )
        raise ValueError(f"{infinite}{kept}; replace them or remove those rows")


def _check_target(y: np.ndarray, target: str, classifier: bool) -> None:
    """Refuse a constant target, and for a classifier a target that is not 0s and 1s."""
    if np.ptp(y) == 0:
        raise ValueError(
            f"the target {target!r} is constant (every row holds {y[0]:g}); "
            "there is nothing to learn, "
            "choose another target"
        )
    if classifier:
        values = np.unique(y)
        if not set(values.tolist()) <= {0.0, 1.0}:
            shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
            raise ValueError(
                f"a classifier needs a target of 0s and 1s, but {target!r} holds "
                f"{len(values):,} distinct values "
                f"({shown}); choose a two-class column coded 0 and 1, or recode it"
            )


def _dataset_name(name: str, target: str, chosen: list[str]) -> str:
    """The Dataset's name: the file's stem, the target and the features (or how many).

    E.g. "cars: mpg ~ hp".
    """
    source = PurePath(str(name)).stem or "CSV"
    about = ", ".join(chosen) if len(chosen) <= 4 else f"{len(chosen)} features"
    return f"{source}: {target} ~ {about}"


def dataset_from_frame(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str] | None = None,
    *,
    standardize: bool = False,
    drop_missing: bool = False,
    classifier: bool = False,
    name: str = "uploaded CSV",
) -> Dataset:
    """prepare(...).data: just the Dataset."""
    return prepare(
        frame,
        target,
        features,
        standardize=standardize,
        drop_missing=drop_missing,
        classifier=classifier,
        name=name,
    ).data
