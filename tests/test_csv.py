"""CSV upload: every bad file is a ValueError in words; good files, Datasets both loops agree on."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lib
from lib.io.csv_data import (
    MAX_CSV_BYTES,
    column_report,
    dataset_from_frame,
    numeric_columns,
    prepare,
    read_csv,
    text_columns,
)
from lib.io.datasets import PLANETS_CSV

GOOD = b"x1,x2,label,y\n1,10,a,0\n2,9,b,1\n3,7,a,1\n4,8,b,0\n5,5,a,1\n"

# (CSV bytes, read_csv keyword arguments, words the message must contain)
BAD_FILES = [
    pytest.param(b"", {}, ["the file is empty"], id="empty"),
    pytest.param(b" \n\n ", {}, ["the file is empty"], id="blank"),
    pytest.param(
        b"y\n1\n2\n",
        {},
        ["only one column ('y')", "target column", "feature column"],
        id="one-column",
    ),
    pytest.param(
        b"a;b\n1;2\n", {}, ["only one column", "separated by semicolons"], id="semicolons"
    ),
    pytest.param(b"a\tb\n1\t2\n", {}, ["only one column", "separated by tabs"], id="tabs"),
    pytest.param(
        b"x,y,x,z,y\n1,2,3,4,5\n",
        {},
        ["duplicate column names", "'x' (columns 1, 3)", "'y' (columns 2, 5)"],
        id="dup",
    ),
    pytest.param(
        b" x ,y,x\n1,2,3\n",
        {},
        ["duplicate column names", "'x' (columns 1, 3)"],
        id="dup-after-trim",
    ),
    pytest.param(
        "x,y\n1,café\n".encode("latin-1"),
        {},
        ["not UTF-8", "0xe9", "position 9", "CSV UTF-8"],
        id="latin1",
    ),
    pytest.param(
        "x,y\n1,2\n".encode("utf-16"), {}, ["not UTF-8", "0xff", "position 0"], id="utf16"
    ),
    pytest.param(
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xbf",
        {},
        ["not UTF-8", ".xlsx"],
        id="xlsx",
    ),
    pytest.param(b"x,y\n1,\x00\n", {}, ["NUL bytes"], id="nul"),
    pytest.param(
        GOOD, {"max_bytes": 40}, [f"{len(GOOD)} bytes, over the 40 bytes limit"], id="too-big"
    ),
    pytest.param(
        b"x,y\n" + b"1,2\n" * 2_000_000, {}, ["over the 5.0 MB limit"], id="too-big-default"
    ),
    pytest.param(
        b"x,y\n" + b"1,2\n" * 11, {"max_rows": 10}, ["more than 10 data rows"], id="too-many-rows"
    ),
    pytest.param(b"x,y\n", {}, ["column names but no data rows"], id="header-only"),
    pytest.param(
        b"1,2,3\n4,5,6\n", {}, ["first line holds only numbers", "add a header row"], id="no-header"
    ),
    pytest.param(
        b"x,y\n1,2,3\n4,5\n",
        {},
        ["line 2 has 3 fields", "header names 2 columns"],
        id="long-row-first",
    ),
    pytest.param(
        b"x,y\n1,2\n4,5,6\n",
        {},
        ["line 3 has 3 fields", "header names 2 columns"],
        id="long-row-later",
    ),
    pytest.param(b'x,y\n"1,2\n', {}, ["could not be read as CSV"], id="open-quote"),
]


@pytest.mark.parametrize("raw, kwargs, words", BAD_FILES)
def test_bad_file_is_explained_in_words(raw, kwargs, words):
    with pytest.raises(ValueError) as caught:
        read_csv(raw, **kwargs)
    message = str(caught.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "Traceback" not in message and "Error tokenizing" not in message


def frame(text: str) -> pd.DataFrame:
    return read_csv(text.encode())


MISSING = "a,b,c,y\n1,2,3,1\n2,,4,0\n3,5,,1\n4,6,7,0\n5,7,8,1\n"
TEXTY = "x,city,code,y\n1,Paris,3,0\n2,Rome,?,1\n3,Oslo,5,1\n"

# (CSV text, prepare keyword arguments, words the message must contain)
BAD_CHOICES = [
    pytest.param(
        GOOD.decode(),
        {"target": "price"},
        ["no column named 'price'", "'x1', 'x2', 'label', 'y'"],
        id="t?",
    ),
    pytest.param(
        GOOD.decode(),
        {"target": "y", "features": ["x1", "size"]},
        ["no column named 'size'"],
        id="f?",
    ),
    pytest.param(
        GOOD.decode(), {"target": "y", "features": []}, ["no features chosen"], id="no-features"
    ),
    pytest.param(
        GOOD.decode(),
        {"target": "y", "features": "x1"},
        ["must be a list of column names"],
        id="str",
    ),
    pytest.param(
        GOOD.decode(),
        {"target": "y", "features": ["x1", "y"]},
        ["target 'y' is also listed as a feature"],
        id="t-in-f",
    ),
    pytest.param(
        GOOD.decode(),
        {"target": "y", "features": ["x1", "x1"]},
        ["'x1' is listed more than once"],
        id="2x",
    ),
    pytest.param(
        GOOD.decode(),
        {"target": "label"},
        ["target 'label' is not numeric", "data row 1 holds 'a'"],
        id="text-target",
    ),
    pytest.param(
        TEXTY,
        {"target": "y", "features": ["x", "city"]},
        ["feature column 'city' is not numeric", "data row 1 holds 'Paris'", "leave it out"],
        id="text-feature",
    ),
    pytest.param(
        TEXTY,
        {"target": "y", "features": ["city", "code"]},
        ["feature columns 'city', 'code' are not numeric", "'code': data row 2 holds '?'"],
        id="text-features",
    ),
    pytest.param(
        "name,note,y\nA,b,1\nC,d,2\n",
        {"target": "y"},
        ["no numeric feature columns", "'name', 'note'"],
        id="all-text",
    ),
    pytest.param(
        MISSING,
        {"target": "y"},
        ["2 of 5 rows have missing values", "'b': 1", "'c': 1", "drop_missing=True"],
        id="missing",
    ),
    pytest.param(
        MISSING,
        {"target": "y", "features": ["a", "b"]},
        ["1 of 5 rows has missing values"],
        id="missing-1",
    ),
    pytest.param(
        "a,y\n,1\n,2\n",
        {"target": "y", "drop_missing": True},
        ["every row has a missing value"],
        id="all-missing",
    ),
    pytest.param(
        "a,y\n1,inf\n2,3\n", {"target": "y"}, ["column 'y' holds infinite values"], id="inf"
    ),
    pytest.param(
        "a,y\n-inf,inf\n2,3\n",
        {"target": "y"},
        ["columns 'a', 'y' hold infinite values"],
        id="infs",
    ),
    pytest.param(
        "a,y\n1,4\n2,4\n3,4\n",
        {"target": "y"},
        ["target 'y' is constant", "every row holds 4"],
        id="const",
    ),
    pytest.param(
        "a,y\n1,4\n2,\n3,4\n",
        {"target": "y", "drop_missing": True},
        ["target 'y' is constant"],
        id="const-after-drop",
    ),
    pytest.param(
        "a,y\n1,0\n2,1\n3,2\n",
        {"target": "y", "classifier": True},
        ["classifier needs a target of 0s and 1s", "3 distinct values (0, 1, 2)"],
        id="three-classes",
    ),
    pytest.param(
        "a,y\n1,-1\n2,1\n",
        {"target": "y", "classifier": True},
        ["2 distinct values (-1, 1)", "recode"],
        id="pm-one",
    ),
    pytest.param(
        "a,b,y\n1,5,0\n2,5,1\n",
        {"target": "y", "standardize": True},
        ["cannot standardise constant feature 'b'"],
        id="const-feature-standardised",
    ),
]


@pytest.mark.parametrize("text, kwargs, words", BAD_CHOICES)
def test_bad_choice_is_explained_in_words(text, kwargs, words):
    with pytest.raises(ValueError) as caught:
        prepare(frame(text), **kwargs)
    message = str(caught.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_good_file_default_features_skip_text_columns():
    table = read_csv(GOOD)
    assert numeric_columns(table) == ["x1", "x2", "y"] and text_columns(table) == ["label"]
    prepared = prepare(table, "y", name="uploads/shop data.csv")
    assert prepared.features == ("x1", "x2") and prepared.ignored_columns == ("label",)
    assert prepared.scaling is None and prepared.dropped_rows == 0
    data = prepared.data
    assert data.name == "shop data: y ~ x1, x2"
    assert data.feature_names == ("x1", "x2")
    np.testing.assert_array_equal(data.X, [[1, 10], [2, 9], [3, 7], [4, 8], [5, 5]])
    np.testing.assert_array_equal(data.y, [0, 1, 1, 0, 1])
    same = dataset_from_frame(table, "y", name="uploads/shop data.csv")
    np.testing.assert_array_equal(same.X, data.X)
    assert same.name == data.name


def test_column_report_counts_kinds_missing_and_distinct_values():
    report = column_report(frame(MISSING + "6,8,9,\n"))
    assert report.to_dict("list") == {
        "column": ["a", "b", "c", "y"],
        "kind": ["number"] * 4,
        "missing": [0, 1, 1, 1],
        "distinct": [6, 5, 5, 2],
    }


def test_drop_missing_drops_only_rows_blank_in_the_chosen_columns():
    table = frame(MISSING)
    both = prepare(table, "y", drop_missing=True)
    assert both.dropped_rows == 2 and both.data.m == 3
    np.testing.assert_array_equal(both.data.X[:, 0], [1, 4, 5])
    # Column c's blank does not matter when c is not chosen.
    only_ab = prepare(table, "y", ["a", "b"], drop_missing=True)
    assert only_ab.dropped_rows == 1 and only_ab.data.m == 4


def test_the_missing_values_message_names_the_way_to_drop_and_any_infinite_values():
    """The fix is named as the caller offers it (an app: its checkbox); an inf is not missing."""
    blanks = read_csv(b"x,y\n1,2\n,3\n4,5\n")
    with pytest.raises(ValueError) as raised:
        prepare(blanks, "y", drop_option="the checkbox Drop rows with missing values")
    message = str(raised.value)
    assert "1 of 3 rows has missing values (empty, NA or NaN; per column: 'x': 1)" in message
    assert (
        "leave those rows out with the checkbox Drop rows with missing values, or fill them in"
        in message
    )
    assert "drop_missing" not in message and "infinite" not in message
    both = read_csv(b"x,y\n1,2\n,3\ninf,4\n5,-inf\n")
    # pandas reads inf as a number, a blank as NaN.
    assert np.isinf(both["x"][2]) and np.isnan(both["x"][1])
    with pytest.raises(ValueError) as raised:
        prepare(both, "y")
    message = str(raised.value)
    assert "1 of 4 rows has missing values" in message and "drop_missing=True" in message
    assert "Besides, columns 'x', 'y' hold infinite values (inf or -inf, in 2 of 4 rows" in message
    assert "they are not missing values" in message
    # Dropping the blank row keeps the infinite ones, and the message says why they are still there.
    with pytest.raises(ValueError) as raised:
        prepare(
            both, "y", drop_missing=True, drop_option="the checkbox Drop rows with missing values"
        )
    message = str(raised.value)
    assert message.startswith("columns 'x', 'y' hold infinite values (inf or -inf, in 2 of 3 rows")
    assert (
        "the checkbox Drop rows with missing values does not leave them out: they are not missing"
        in message
    )
    assert np.isinf(both.dropna()[["x", "y"]].to_numpy()).any(axis=1).sum() == 2


def test_standardize_records_means_and_stds_from_the_file():
    table = read_csv(GOOD)
    prepared = prepare(table, "y", ["x1", "x2"], standardize=True)
    np.testing.assert_allclose(prepared.scaling.means, [3.0, 7.8])
    np.testing.assert_allclose(prepared.scaling.stds, table[["x1", "x2"]].std(ddof=0))
    np.testing.assert_allclose(prepared.data.X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(prepared.data.X.std(axis=0), 1.0)
    np.testing.assert_array_equal(prepared.data.y, table["y"])  # the target is never rescaled
    assert list(prepared.scaling.frame()["feature"]) == ["x1", "x2"]


@pytest.mark.parametrize(
    "text",
    [
        "a,y\n1,0\n2,1\n3,1\n",
        "a,y\n1,False\n2,True\n3,True\n",  # True/False read as 1/0
        "a,y\n1,0.0\n2,1.0\n3,1\n",
        # True/False with a blank: numeric once the blank row is dropped.
        "a,y\n1,False\n2,True\n9,\n3,True\n",
    ],
)
def test_classifier_accepts_a_zero_one_target(text):
    data = prepare(frame(text), "y", classifier=True, drop_missing=True).data
    np.testing.assert_array_equal(data.y, [0.0, 1.0, 1.0])


def test_byte_order_mark_quotes_and_spaces_in_the_header_are_handled():
    table = read_csv(b'\xef\xbb\xbf"size, m2" , price\n50, 100\n70, 150\n')
    assert list(table.columns) == ["size, m2", "price"]
    assert prepare(table, "price").data.feature_names == ("size, m2",)


def test_cell_text_is_data_never_code():
    table = read_csv(b"x,y,z\n1,__import__('os').system('false'),2\n3,=1+1,4\n")
    assert text_columns(table) == ["y"]
    assert table["y"].tolist() == ["__import__('os').system('false')", "=1+1"]


def test_size_and_row_caps_allow_files_at_the_limit():
    raw = b"x,y\n" + b"1,2\n" * 10
    assert len(read_csv(raw, max_rows=10)) == 10
    assert len(read_csv(raw, max_bytes=len(raw))) == 10
    assert MAX_CSV_BYTES == 5_000_000


def test_shipped_planets_csv_reads_like_an_upload_and_both_loops_agree():
    prepared = prepare(
        read_csv(PLANETS_CSV.read_bytes()),
        "escape_velocity_km_s",
        ["mass_1e24_kg", "mean_radius_km"],
        standardize=True,
        name=PLANETS_CSV.name,
    )
    assert prepared.ignored_columns == ()  # features were chosen, so nothing was left out silently
    assert prepared.data.name == "planets: escape_velocity_km_s ~ mass_1e24_kg, mean_radius_km"
    result = lib.run(prepared.data, lib.Config(lr=0.1, batch_size=4, iterations=30))
    assert result.done and result.max_abs_diff <= 1e-10


def test_csv_classifier_data_runs_through_both_loops():
    text = "a,b,y\n" + "".join(f"{i % 7},{(i * 3) % 5},{int(i % 7 > 3)}\n" for i in range(40))
    data = prepare(frame(text), "y", classifier=True, standardize=True).data
    result = lib.run(data, lib.Config(model="logistic", lr=0.5, batch_size=8, iterations=30))
    assert result.done and result.max_abs_diff <= 1e-10


@given(st.binary(max_size=200))
def test_any_bytes_give_a_frame_or_a_value_error(raw):
    try:
        table = read_csv(raw)
    except ValueError as err:
        assert str(err)
        return
    assert isinstance(table, pd.DataFrame) and table.shape[1] >= 2 and len(table) >= 1


NUMBERS = st.sampled_from(["0", "1", "1", "0", "2.5", "-3", "1e3", "7"])
ODD_CELLS = st.sampled_from(["", "inf", "nan", "abc", "True", '"1,5"'])


@st.composite
def csv_texts(draw) -> str:
    """Small CSVs, mostly well formed.

    A header, then rows of numbers with now and then a blank, a word, inf, or a row one cell too
    short or too long.
    """
    header = draw(
        st.lists(st.sampled_from(["a", "b", "c", "y"]), min_size=1, max_size=4, unique=True)
    )
    if draw(st.integers(0, 9)) == 0:
        header.append(draw(st.sampled_from(["a", "1"])))  # a duplicate or numeric name now and then
    cell = st.one_of(*[NUMBERS] * 15, ODD_CELLS)
    width = len(header)
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        length = width + draw(st.sampled_from([0] * 12 + [-1, 1]))
        rows.append(draw(st.lists(cell, min_size=max(length, 1), max_size=max(length, 1))))
    return "\n".join(",".join(row) for row in [header, *rows]) + "\n"


@given(csv_texts(), st.booleans(), st.booleans(), st.booleans())
def test_any_small_csv_is_read_and_prepared_or_explained(
    text, drop_missing, classifier, standardize
):
    try:
        table = read_csv(text.encode())
        prepared = prepare(
            table,
            table.columns[-1],
            drop_missing=drop_missing,
            classifier=classifier,
            standardize=standardize,
        )
    except ValueError as err:
        assert str(err)
        return
    data = prepared.data
    assert data.m == len(table) - prepared.dropped_rows >= 1
    assert np.isfinite(data.X).all() and np.isfinite(data.y).all()
    if classifier:
        assert set(np.unique(data.y).tolist()) == {0.0, 1.0}
