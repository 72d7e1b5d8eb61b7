"""The bad-input catalogue (issue 5, part 5): every bad input is answered in words, never with a
traceback.

Four surfaces, each a table: the lib API (a ValueError whose message names the field), CSV files
(through lib.csv_data and through the Compare page's uploader), the Compare page's controls, and the
URL's query parameters (AppTest of app.py). After every bad input on the page, a good one must still
give a run. Two static checks close it: no non-constant text rendered with unsafe_allow_html (or
st.html), and nothing in lib/, pages/ or app.py evaluates or unpickles anything.
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import lib
from lib import Config, Dataset
from lib.io.csv_data import MAX_CSV_BYTES, MAX_CSV_ROWS, prepare, read_csv
from pages.parts.cached import LAST_RUN

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 60  # s: the first run imports torch and runs the default steps on a shared machine

SMALL = lib.datasets.linear(m=20, n=2, seed=1)  # 2 features + bias: 3 weights


def bug(reason: str, raises=None):
    """A case that shows a real bug: it must fail until fixed (strict), so the marker goes when the
    fix lands."""
    return pytest.mark.xfail(strict=True, reason=reason, raises=raises)


# ============================================================ 1. the lib API
# (call, words the message must contain (regex), the names it must mention)

LIB_CASES = [
    # --- Config: numbers
    pytest.param(
        lambda: Config(lr="abc"), r"must be a finite number > 0", ["lr", "abc"], id="lr-text"
    ),
    pytest.param(
        lambda: Config(lr=math.nan), r"must be a finite number > 0", ["lr", "nan"], id="lr-nan"
    ),
    pytest.param(
        lambda: Config(lr=math.inf), r"must be a finite number > 0", ["lr", "inf"], id="lr-inf"
    ),
    pytest.param(
        lambda: Config(lr=1e308 * 10), r"must be a finite number", ["lr"], id="lr-overflow"
    ),
    pytest.param(
        lambda: Config(lr=-0.1), r"must be a finite number > 0", ["lr", "-0.1"], id="lr-negative"
    ),
    pytest.param(lambda: Config(lr=0), r"must be a finite number > 0", ["lr"], id="lr-zero"),
    pytest.param(lambda: Config(lr=None), r"must be a finite number", ["lr", "None"], id="lr-none"),
    pytest.param(lambda: Config(lr=True), r"must be a finite number", ["lr", "True"], id="lr-bool"),
    pytest.param(lambda: Config(lr=1j), r"must be a finite number", ["lr"], id="lr-complex"),
    pytest.param(
        lambda: Config(batch_size=0), r"whole number >= 1", ["batch_size"], id="batch-zero"
    ),
    pytest.param(
        lambda: Config(batch_size=-3),
        r"whole number >= 1",
        ["batch_size", "-3"],
        id="batch-negative",
    ),
    pytest.param(
        lambda: Config(batch_size=2.5), r"whole number", ["batch_size", "2.5"], id="batch-fraction"
    ),
    pytest.param(
        lambda: Config(batch_size="32"), r"whole number", ["batch_size", "'32'"], id="batch-text"
    ),
    pytest.param(lambda: Config(batch_size=True), r"whole number", ["batch_size"], id="batch-bool"),
    pytest.param(
        lambda: Config(iterations=0),
        r"whole number from 1 to 1,000,000",
        ["iterations"],
        id="iter-zero",
    ),
    pytest.param(
        lambda: Config(iterations=10**12), r"from 1 to 1,000,000", ["iterations"], id="iter-huge"
    ),
    pytest.param(
        lambda: Config(iterations=math.nan), r"whole number", ["iterations", "nan"], id="iter-nan"
    ),
    pytest.param(lambda: Config(iterations=1e3), r"whole number", ["iterations"], id="iter-float"),
    pytest.param(lambda: Config(seed=-1), r"whole number from 0", ["seed"], id="seed-negative"),
    pytest.param(
        lambda: Config(seed=2**40),
        r"whole number from 0 to 4,294,967,295",
        ["seed"],
        id="seed-huge",
    ),
    pytest.param(lambda: Config(seed=1.5), r"whole number", ["seed"], id="seed-fraction"),
    pytest.param(
        lambda: Config(model="mlp", hidden=0), r"from 1 to 256", ["hidden"], id="hidden-zero"
    ),
    pytest.param(
        lambda: Config(model="mlp", hidden=10**6), r"from 1 to 256", ["hidden"], id="hidden-huge"
    ),
    pytest.param(
        lambda: Config(model="mlp", hidden=4.0), r"whole number", ["hidden"], id="hidden-float"
    ),
    # --- Config: names and switches
    pytest.param(
        lambda: Config(loss="l1"), r"must be one of .*'mse'", ["loss", "'l1'"], id="loss-unknown"
    ),
    pytest.param(lambda: Config(loss=3), r"must be one of", ["loss"], id="loss-int"),
    pytest.param(
        lambda: Config(optimizer="lbfgs"),
        r"one of .*'adam'",
        ["optimizer", "lbfgs"],
        id="optim-unknown",
    ),
    pytest.param(
        lambda: Config(optimizer=["sgd"]), r"must be one of", ["optimizer"], id="optim-list"
    ),
    pytest.param(
        lambda: Config(model="cnn"), r"one of .*'linear'", ["model", "cnn"], id="model-unknown"
    ),
    pytest.param(lambda: Config(model=None), r"must be one of", ["model", "None"], id="model-none"),
    pytest.param(
        lambda: Config(model="mlp", activation="sigmoid"),
        r"'tanh' or 'relu'",
        ["activation"],
        id="act",
    ),
    pytest.param(lambda: Config(bias="yes"), r"True or False", ["bias", "yes"], id="bias-text"),
    pytest.param(lambda: Config(zero_grad=1), r"True or False", ["zero_grad"], id="zero-grad-int"),
    pytest.param(
        lambda: Config(torch_dtype="float16"), r"one of .*'float64'", ["torch_dtype"], id="dtype"
    ),
    pytest.param(
        lambda: Config(model="logistic", loss="mse"),
        r"classifier .*needs",
        ["logistic", "bce"],
        id="lg-mse",
    ),
    pytest.param(
        lambda: Config().replace(learning_rate=0.1),
        r"unknown Config field",
        ["learning_rate"],
        id="repl",
    ),
    # --- Config: init
    pytest.param(
        lambda: Config(init="ones"),
        r"'zeros', 'normal' or a list",
        ["init", "ones"],
        id="init-name",
    ),
    pytest.param(
        lambda: Config(init=[1.0, math.nan]), r"only finite numbers", ["init", "NaN"], id="init-nan"
    ),
    pytest.param(
        lambda: Config(init=[math.inf, 0.0]), r"only finite numbers", ["init", "inf"], id="init-inf"
    ),
    pytest.param(
        lambda: Config(init=[[1, 2], [3, 4]]), r"flat list of numbers", ["init"], id="init-2d"
    ),
    pytest.param(lambda: Config(init=[]), r"flat list of numbers", ["init"], id="init-empty"),
    pytest.param(lambda: Config(init=["a", "b"]), r"list of numbers", ["init"], id="init-text"),
    pytest.param(lambda: Config(init=None), r"list of numbers", ["init"], id="init-none"),
    # --- Config: optimizer_kwargs
    pytest.param(
        lambda: Config(optimizer_kwargs=[1, 2]),
        r"must be a dict",
        ["optimizer_kwargs"],
        id="kw-list",
    ),
    pytest.param(
        lambda: Config(optimizer_kwargs={"foo": 1}),
        r"unknown argument 'foo'",
        ["optimizer_kwargs"],
        id="kw-unknown",
    ),
    pytest.param(
        lambda: Config(optimizer_kwargs={"momentum": -1}),
        r"momentum",
        ["optimizer_kwargs"],
        id="kw-momentum-neg",
    ),
    pytest.param(
        lambda: Config(optimizer_kwargs={"momentum": math.nan}),
        r"must be finite",
        ["momentum"],
        id="kw-nan",
    ),
    pytest.param(
        lambda: Config(optimizer_kwargs={"weight_decay": math.inf}),
        r"must be finite",
        ["weight_decay"],
        id="kw-inf",
    ),
    pytest.param(
        lambda: Config(optimizer_kwargs={"momentum": "0.9"}),
        r"a number or True/False",
        ["momentum"],
        id="kw-text",
    ),
    pytest.param(
        lambda: Config(optimizer_kwargs={"lr": 0.1}),
        r"must not contain lr",
        ["Config.lr"],
        id="kw-lr",
    ),
    pytest.param(
        lambda: Config(optimizer_kwargs={"nesterov": True}),
        r"(?i)nesterov",
        ["optimizer_kwargs"],
        id="kw-nesterov",
    ),
    pytest.param(
        lambda: Config(optimizer="adam", optimizer_kwargs={"betas": (0.9,)}),
        r"betas",
        ["optimizer_kwargs"],
        id="kw-betas-one",
    ),
    # --- Config: the whole loop (issue 12): accumulation, the validation split, drop_last
    pytest.param(
        lambda: Config(accumulate=0),
        r"whole number from 1 to 1,024",
        ["accumulate", "0"],
        id="acc-zero",
    ),
    pytest.param(
        lambda: Config(accumulate=-2),
        r"whole number from 1 to 1,024",
        ["accumulate", "-2"],
        id="acc-negative",
    ),
    pytest.param(
        lambda: Config(accumulate=1_025),
        r"whole number from 1 to 1,024",
        ["accumulate", "1,025"],
        id="acc-huge",
    ),
    pytest.param(
        lambda: Config(accumulate=2.0), r"whole number", ["accumulate", "2.0"], id="acc-float"
    ),
    pytest.param(
        lambda: Config(accumulate="4"), r"whole number", ["accumulate", "'4'"], id="acc-text"
    ),
    pytest.param(lambda: Config(accumulate=True), r"whole number", ["accumulate"], id="acc-bool"),
    pytest.param(
        lambda: Config(accumulate=None), r"whole number", ["accumulate", "None"], id="acc-none"
    ),
    pytest.param(
        lambda: Config(val_fraction=1.0),
        r"from 0 up to but not including 1",
        ["val_fraction", "1.0"],
        id="val-one",
    ),
    pytest.param(
        lambda: Config(val_fraction=1.5),
        r"from 0 up to but not including 1",
        ["val_fraction", "1.5"],
        id="val-above",
    ),
    pytest.param(
        lambda: Config(val_fraction=-0.1),
        r"from 0 up to but not including 1",
        ["val_fraction", "-0.1"],
        id="val-negative",
    ),
    pytest.param(
        lambda: Config(val_fraction=math.nan),
        r"from 0 up to but not including 1",
        ["val_fraction", "nan"],
        id="val-nan",
    ),
    pytest.param(
        lambda: Config(val_fraction=math.inf),
        r"from 0 up to but not including 1",
        ["val_fraction", "inf"],
        id="val-inf",
    ),
    pytest.param(
        lambda: Config(val_fraction=True), r"a number from 0", ["val_fraction"], id="val-bool"
    ),
    pytest.param(
        lambda: Config(val_fraction="0.2"),
        r"a number from 0",
        ["val_fraction", "'0.2'"],
        id="val-text",
    ),
    pytest.param(
        lambda: Config(val_fraction=None), r"a number from 0", ["val_fraction"], id="val-none"
    ),
    pytest.param(
        lambda: Config(eval_every=0),
        r"whole number from 1 to 1,000,000",
        ["eval_every", "0"],
        id="eval-zero",
    ),
    pytest.param(
        lambda: Config(eval_every=-5),
        r"whole number from 1",
        ["eval_every", "-5"],
        id="eval-negative",
    ),
    pytest.param(
        lambda: Config(eval_every=2.5), r"whole number", ["eval_every", "2.5"], id="eval-fraction"
    ),
    pytest.param(
        lambda: Config(eval_every=10.0), r"whole number", ["eval_every", "10.0"], id="eval-float"
    ),
    pytest.param(
        lambda: Config(eval_every="10"), r"whole number", ["eval_every", "'10'"], id="eval-text"
    ),
    pytest.param(lambda: Config(eval_every=True), r"whole number", ["eval_every"], id="eval-bool"),
    pytest.param(
        lambda: Config(drop_last=1), r"True or False", ["drop_last", "1"], id="drop-last-int"
    ),
    pytest.param(
        lambda: Config(drop_last="yes"), r"True or False", ["drop_last", "yes"], id="drop-last-text"
    ),
    pytest.param(
        lambda: Config(drop_last=None), r"True or False", ["drop_last", "None"], id="drop-last-none"
    ),
    # --- Dataset
    pytest.param(lambda: Dataset(np.ones(5), np.ones(5)), r"2-D.*reshape", ["X"], id="X-1d"),
    pytest.param(
        lambda: Dataset(np.ones((2, 2, 2)), np.ones(2)),
        r"must be 2-D",
        ["X", "(2, 2, 2)"],
        id="X-3d",
    ),
    pytest.param(
        lambda: Dataset(np.ones((5, 2)), np.ones((5, 2))),
        r"must be 1-D",
        ["y", "(5, 2)"],
        id="y-2d",
    ),
    pytest.param(
        lambda: Dataset(np.ones((5, 2)), np.ones(4)),
        r"same number of samples",
        ["X", "y"],
        id="X-y-lengths",
    ),
    pytest.param(
        lambda: Dataset(np.ones((0, 2)), np.ones(0)), r"at least one sample", ["X"], id="X-empty"
    ),
    pytest.param(
        lambda: Dataset(np.ones((3, 0)), np.ones(3)),
        r"at least one feature",
        ["X"],
        id="X-no-columns",
    ),
    pytest.param(
        lambda: Dataset([[1.0], [math.nan]], [1, 2]),
        r"contains NaN .*index \(1, 0\)",
        ["X"],
        id="X-nan",
    ),
    pytest.param(
        lambda: Dataset([[1.0], [2.0]], [1, math.inf]), r"contains inf", ["y"], id="y-inf"
    ),
    pytest.param(lambda: Dataset([["a", "b"]], [1]), r"only numbers", ["X", "'a'"], id="X-text"),
    pytest.param(lambda: Dataset([[1, 2], [3]], [1, 2]), r"only numbers", ["X"], id="X-ragged"),
    pytest.param(lambda: Dataset(None, None), r"must be 2-D", ["X"], id="X-none"),
    pytest.param(
        lambda: Dataset(np.ones((2, 1001)), np.ones(2)),
        r"too large",
        ["1,000 features"],
        id="X-wide",
    ),
    pytest.param(
        lambda: Dataset(np.ones((2, 2)), np.ones(2), feature_names=("a",)),
        r"name each",
        ["feature_names"],
        id="names",
    ),
    pytest.param(
        lambda: Dataset(np.ones((2, 1)) * (1 + 2j), np.ones(2)),
        r"(?i)complex|real|numbers",
        ["X"],
        id="X-complex",
        marks=[
            pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning"),
        ],
    ),
    pytest.param(
        lambda: Dataset(np.ones((2, 2)), np.ones(2), feature_names="ab"),
        r"names|list",
        ["feature_names"],
        id="names-string",
    ),
    pytest.param(
        lambda: Dataset(np.ones((2, 1)), np.ones(2), true_weights="ab"),
        r"numbers",
        ["true_weights"],
        id="true-weights-text",
    ),
    # --- lib.run
    pytest.param(
        lambda: lib.run(None, Config()),
        r"must be a lib.Dataset",
        ["data", "NoneType"],
        id="run-data",
    ),
    pytest.param(
        lambda: lib.run(SMALL, {"lr": 0.1}), r"must be a lib.Config", ["cfg", "dict"], id="run-cfg"
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(iterations=2), time_limit=-1),
        r"seconds >= 0",
        ["time_limit"],
        id="run-tl-neg",
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(iterations=2), time_limit=math.nan),
        r"seconds",
        ["time_limit"],
        id="run-tl-nan",
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(iterations=2), progress_every=-1),
        r"seconds",
        ["progress_every"],
        id="run-pe",
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(iterations=2), time_limit="5"),
        r"seconds",
        ["time_limit"],
        id="run-tl-text",
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(iterations=2), progress_every=None),
        r"seconds",
        ["progress_every"],
        id="run-pe-none",
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(iterations=2), progress=5, progress_every=0),
        r"callable|function",
        ["progress"],
        id="run-progress-int",
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(iterations=2, init=[1.0])),
        r"must have 3 numbers",
        ["init"],
        id="run-init-len",
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(model="logistic", iterations=2)),
        r"0 or 1",
        ["bce"],
        id="run-bce-targets",
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(model="mlp", hidden=256, iterations=1_000_000)),
        r"capped .* at most 62,500 iterations",
        ["iterations"],
        id="run-memory-cap",
    ),
    pytest.param(
        lambda: lib.run(Dataset([[1.0], [2.0]], [1.0, 2.0]), Config(val_fraction=0.9)),
        r"holds out all 2 rows and leaves no training rows",
        ["val_fraction", "0.9"],
        id="run-val-no-training-rows",
    ),
    pytest.param(
        lambda: lib.run(Dataset([[1.0]], [1.0]), Config(val_fraction=0.01)),
        r"leaves no training rows",
        ["val_fraction"],
        id="run-val-one-row",
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(batch_size=21, drop_last=True)),
        r"drop_last with batch_size 21 > 20 training rows leaves no batch",
        ["drop_last", "batch_size"],
        id="run-drop-last-too-big",
    ),
    pytest.param(
        lambda: lib.run(SMALL, Config(batch_size=17, drop_last=True, val_fraction=0.2)),
        r"batch_size 17 > 16 training rows",
        ["drop_last", "batch_size"],
        id="run-drop-last-after-split",
    ),
    # --- exports
    pytest.param(
        lambda: lib.to_script("data", Config()),
        r"must be a lib.Dataset",
        ["data"],
        id="script-data",
    ),
    pytest.param(
        lambda: lib.to_script(SMALL, None), r"must be a lib.Config", ["cfg"], id="script-cfg"
    ),
    pytest.param(
        lambda: lib.to_script(SMALL, Config(), csv_name=5),
        r"file name",
        ["csv_name"],
        id="script-csv-int",
    ),
    pytest.param(
        lambda: lib.to_script(SMALL, Config(), csv_name="  "),
        r"file name",
        ["csv_name"],
        id="script-csv-sp",
    ),
    pytest.param(
        lambda: lib.to_script(SMALL, Config(), csv_name="d.csv", target=3),
        r"column name",
        ["target"],
        id="script-tg",
    ),
    pytest.param(
        lambda: lib.to_script(Dataset(np.zeros((700_000, 2)), np.zeros(700_000)), Config()),
        r"too many to embed",
        ["csv_name"],
        id="script-too-big",
    ),
    pytest.param(
        lambda: lib.to_script(SMALL, Config(model="logistic")), r"0 or 1", ["bce"], id="script-bce"
    ),
    pytest.param(
        lambda: lib.history_csv(None), r"must be a lib.Result", ["result"], id="history-csv"
    ),
    pytest.param(
        lambda: lib.history_json("run"), r"must be a lib.Result", ["result"], id="history-json"
    ),
    # --- lib.datasets.linear
    pytest.param(
        lambda: lib.datasets.linear(m=0), r"whole number from 1", ["m"], id="linear-m-zero"
    ),
    pytest.param(
        lambda: lib.datasets.linear(m=-5),
        r"whole number from 1",
        ["m", "-5"],
        id="linear-m-negative",
    ),
    pytest.param(
        lambda: lib.datasets.linear(m=2.5), r"whole number", ["m", "2.5"], id="linear-m-fraction"
    ),
    pytest.param(
        lambda: lib.datasets.linear(m="10"), r"whole number", ["m", "'10'"], id="linear-m-text"
    ),
    pytest.param(lambda: lib.datasets.linear(m=10**9), r"to 1,000,000", ["m"], id="linear-m-huge"),
    pytest.param(
        lambda: lib.datasets.linear(n=0), r"whole number from 1 to 1,000", ["n"], id="linear-n-zero"
    ),
    pytest.param(lambda: lib.datasets.linear(n=10**6), r"to 1,000", ["n"], id="linear-n-huge"),
    pytest.param(
        lambda: lib.datasets.linear(n=None), r"whole number", ["n", "None"], id="linear-n-none"
    ),
    pytest.param(
        lambda: lib.datasets.linear(noise=-1),
        r"a number from 0",
        ["noise"],
        id="linear-noise-negative",
    ),
    pytest.param(
        lambda: lib.datasets.linear(noise=math.nan),
        r"a number from 0",
        ["noise", "nan"],
        id="noise-nan",
    ),
    pytest.param(
        lambda: lib.datasets.linear(noise=math.inf),
        r"a number from 0",
        ["noise", "inf"],
        id="noise-inf",
    ),
    pytest.param(
        lambda: lib.datasets.linear(noise="0.1"), r"a number", ["noise"], id="linear-noise-text"
    ),
    pytest.param(
        lambda: lib.datasets.linear(seed=-1),
        r"whole number from 0",
        ["seed"],
        id="linear-seed-negative",
    ),
    pytest.param(
        lambda: lib.least_squares("data", True),
        r"must be a lib.Dataset",
        ["data"],
        id="least-squares-data",
    ),
]


def check_words(err: Exception, names: list[str]) -> None:
    """The message names each field and reads as a sentence, not as a traceback."""
    text = str(err)
    for name in names:
        assert name in text, f"{name!r} not named in: {text}"
    assert "Traceback" not in text and "\n" not in text


@pytest.mark.parametrize("call, words, names", LIB_CASES)
def test_lib_answers_bad_input_in_words(call, words, names):
    with pytest.raises(ValueError, match=words) as info:
        call()
    check_words(info.value, names)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param('d.csv"""; INJECTED = 1; """', id="closes-the-docstring"),
        pytest.param('d.csv"""\nINJECTED = 1  #\'\nINJECTED = 2  #', id="quotes-and-newlines"),
        pytest.param("d.csv'\nINJECTED = 1\n'", id="single-quotes-and-newlines"),
    ],
)
def test_a_csv_name_cannot_inject_code_into_the_script(name):
    """A file name is data: quotes and newlines in it must not become statements of the exported
    script.

    The page passes the uploaded file's name as csv_name, and a learner runs the script it
    downloads.
    """
    try:
        script = lib.to_script(SMALL, Config(iterations=2), csv_name=name, target="y")
    except ValueError as err:  # refusing such a name, in words, is fine too
        check_words(err, ["csv_name"])
        return
    tree = ast.parse(script)
    assigned = {
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for t in node.targets
        if hasattr(t, "id")
    }
    assert "INJECTED" not in assigned
    # read by its very name
    assert any(isinstance(n, ast.Constant) and n.value == name for n in ast.walk(tree))


# ============================================================ 2. CSV files, through lib.csv_data

GOOD_CSV = b"x1,x2,y\n1,0.5,2.1\n2,0.1,3.9\n3,0.7,6.2\n4,0.2,7.8\n5,0.9,10.1\n"

READ_CASES = [
    pytest.param(b"", r"the file is empty", ["header row"], id="empty"),
    pytest.param(b" \n\n \r\n", r"the file is empty", [], id="blank-lines"),
    pytest.param(b"y\n1\n2\n", r"only one column", ["'y'", "feature column"], id="one-column"),
    pytest.param(
        b"x;y\n1;2\n", r"only one column .*separated by semicolons", ["commas"], id="semicolons"
    ),
    pytest.param(b"x\ty\n1\t2\n", r"separated by tabs", ["commas"], id="tabs"),
    pytest.param(
        b"x,x,y\n1,2,3\n", r"duplicate column names", ["'x'", "columns 1, 2"], id="duplicate-header"
    ),
    pytest.param(
        "x,y\n1,caf\xe9\n".encode("latin-1"), r"not UTF-8 .*byte 0xe9", ["CSV UTF-8"], id="latin-1"
    ),
    pytest.param(b"x,y\n1,\x002\n", r"contains NUL bytes", ["CSV UTF-8"], id="nul-bytes"),
    pytest.param(
        b"PK\x03\x04\x14\x00\x06\x00" + bytes(64), r"NUL bytes|not UTF-8", [], id="zip-xlsx"
    ),
    pytest.param(bytes(range(256)) * 8, r"not UTF-8", [], id="binary-junk"),
    pytest.param(b"x,y\n", r"column names but no data rows", [], id="header-only"),
    pytest.param(b"1,2\n3,4\n", r"holds only numbers .*add a header row", [], id="no-header"),
    pytest.param(
        b"x,y\n1,2\n3,4,5\n", r"line 3 has 3 fields .*2 columns", ["extra commas"], id="ragged-row"
    ),
    pytest.param(b'x,y\n"1,2\n3,4\n', r"could not be read as CSV", [], id="unclosed-quote"),
    pytest.param(
        b"x,y\n" + b"1,2\n" * 1_300_000,
        r"over the 5.0 MB limit",
        ["smaller sample"],
        id="oversized",
    ),
    pytest.param(
        b"x,y\n" + b"1,2\n" * (MAX_CSV_ROWS + 1),
        r"more than 100,000 data rows",
        [],
        id="too-many-rows",
    ),
    pytest.param("x,y\n1,2\n", r"must be given as bytes", ["str"], id="text-not-bytes"),
    pytest.param(None, r"must be given as bytes", ["NoneType"], id="none"),
]


@pytest.mark.parametrize("raw, words, names", READ_CASES)
def test_read_csv_answers_bad_files_in_words(raw, words, names):
    with pytest.raises(ValueError, match=words) as info:
        read_csv(raw)
    check_words(info.value, names)


def test_the_size_limit_is_checked_before_parsing():
    # the oversized case above is over the limit
    assert len(b"x,y\n" + b"1,2\n" * 1_300_000) > MAX_CSV_BYTES
    with pytest.raises(ValueError, match=r"over the 100 bytes limit"):
        read_csv(GOOD_CSV * 10, max_bytes=100)


PREPARE_CASES = [
    pytest.param(
        b"x,y\n1,a\n2,b\n",
        "y",
        None,
        {},
        r"not numeric \(data row 1 holds 'a'\)",
        ["'y'"],
        id="text-target",
    ),
    pytest.param(
        b"x,t,y\n1,a,2\n2,b,3\n", "y", ["t"], {}, r"is not numeric", ["'t'"], id="text-feature"
    ),
    pytest.param(
        b"t,y\na,2\nb,3\n",
        "y",
        None,
        {},
        r"no numeric feature columns",
        ["'t'"],
        id="only-text-features",
    ),
    pytest.param(
        b"x,y\n1,\n2,3\n3,4\n",
        "y",
        None,
        {},
        r"1 of 3 rows has missing values",
        ["'y': 1"],
        id="blank",
    ),
    pytest.param(
        b"x,y\nNaN,1\n2,3\n",
        "y",
        None,
        {},
        r"missing values",
        ["'x': 1", "drop_missing"],
        id="nan-text",
    ),
    pytest.param(
        b"x,y\n1,\n2,\n",
        "y",
        None,
        {"drop_missing": True},
        r"every row has a missing value",
        ["'y'"],
        id="all-blank",
    ),
    pytest.param(b"x,y\n1,0\ninf,1\n", "y", None, {}, r"holds infinite values", ["'x'"], id="inf"),
    pytest.param(
        b"x,y\n1e400,0\n2,1\n", "y", None, {}, r"infinite values", ["'x'"], id="overflowing-number"
    ),
    pytest.param(
        b"x,y\n1,5\n2,5\n",
        "y",
        None,
        {},
        r"is constant \(every row holds 5\)",
        ["'y'"],
        id="constant",
    ),
    pytest.param(
        b"x,y\n1,0\n2,1\n3,2\n",
        "y",
        None,
        {"classifier": True},
        r"classifier needs a target of 0s and 1s.*3 distinct values",
        ["'y'"],
        id="non-binary-target",
    ),
    pytest.param(
        b"x,y\n1,0\n2,1\n", "z", None, {}, r"no column named 'z'", ["'x', 'y'"], id="unknown-target"
    ),
    pytest.param(b"x,y\n1,0\n2,1\n", 0, None, {}, r"no column named 0", [], id="target-int"),
    pytest.param(
        b"x,y\n1,0\n2,1\n",
        "y",
        ["x", "y"],
        {},
        r"also listed as a feature",
        ["'y'"],
        id="target-feature",
    ),
    pytest.param(
        b"x,y\n1,0\n2,1\n",
        "y",
        "x",
        {},
        r"must be a list of column names",
        ["features"],
        id="features-str",
    ),
    pytest.param(b"x,y\n1,0\n2,1\n", "y", [], {}, r"no features chosen", [], id="no-features"),
    pytest.param(
        b"x,y\n1,0\n2,1\n",
        "y",
        ["x", "x"],
        {},
        r"listed more than once",
        ["'x'"],
        id="feature-twice",
    ),
    pytest.param(
        b"x,y\n1,0\n2,1\n", "y", ["w"], {}, r"no column named 'w'", [], id="unknown-feature"
    ),
]


@pytest.mark.parametrize("raw, target, features, kwargs, words, names", PREPARE_CASES)
def test_prepare_answers_bad_columns_in_words(raw, target, features, kwargs, words, names):
    frame = read_csv(raw)
    with pytest.raises(ValueError, match=words) as info:
        prepare(frame, target, features, **kwargs)
    check_words(info.value, names)


def test_prepare_refuses_a_missing_table():
    with pytest.raises(ValueError, match=r"no table to use; read a CSV with read_csv first"):
        prepare(None, "y")


# ============================================================ the page, driven by AppTest


def new_app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def texts(at: AppTest) -> list[str]:
    """Every piece of text the page shows: markdown, captions, alerts, exceptions."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "exception", "text")
    return [
        str(getattr(el, "value", None) or getattr(el, "message", ""))
        for kind in kinds
        for el in at.get(kind)
    ]


def alerts(at: AppTest, *kinds: str) -> list[str]:
    return [el.value for kind in kinds for el in at.get(kind)]


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def assert_no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    for text in texts(at):
        assert "Traceback" not in text and 'File "' not in text, text


def expected_charts(at: AppTest) -> int:
    """Four charts, and the parameter norms too where the weights chart shows only some weights (or
    the MLP)."""
    result = at.session_state[LAST_RUN]["result"]
    return 4 + (
        result.config.model == "mlp" or len(result.weight_names) > lib.charts.MAX_WEIGHT_SERIES
    )


def assert_usable(at: AppTest, *fixes: tuple[str, object]) -> None:
    """Put the bad setting right (fixes: (key, value) pairs), pick a good lr and press Run, in one
    rerun: the run appears, with its four charts and every step taken, and no error."""
    for key, value in fixes:
        widget(at, key).set_value(value)
    at.number_input(key="lr").set_value(0.02)
    at.button(key="run").click().run()
    assert_no_traceback(at)
    assert not at.error, alerts(at, "error")
    assert len(charts(at)) == expected_charts(at)
    steps = [m.value for m in at.metric if m.label == "Steps taken"]
    assert steps == [f"{int(at.number_input(key='iterations').value):,}"]


def widget(at: AppTest, key: str):
    for kind in ("number_input", "selectbox", "checkbox", "toggle", "text_input", "multiselect"):
        found = [w for w in at.get(kind) if getattr(w, "key", None) == key]
        if found:
            return found[0]
    raise KeyError(f"no widget with key {key!r}")


# ============================================================ 3. the controls


def _set(**values):
    """Set some controls, then rerun once."""

    def step(at: AppTest) -> None:
        for key, value in values.items():
            widget(at, key).set_value(value)
        at.run()

    return step


def _run_with(**values):
    """Set some controls and press Run, in one rerun."""

    def step(at: AppTest) -> None:
        for key, value in values.items():
            widget(at, key).set_value(value)
        at.button(key="run").click().run()

    return step


def _custom_init(text: str):
    return _steps(_set(init="custom"), _set(init_values=text))


def _steps(*steps):
    def run_all(at: AppTest) -> None:
        for step in steps:
            step(at)

    return run_all


# (what the learner does, "error" or "warning", words that must be in it, how to put it right)
CONTROL_CASES = [
    pytest.param(
        _run_with(lr=10.0),
        "warning",
        r"Diverged at step \d+: .*smaller learning rate than 10",
        (),
        id="lr-10-diverges",
    ),
    pytest.param(
        _custom_init("1, abc"),
        "error",
        r"initial weights must be numbers separated by commas; got '1, abc'",
        (("init", "zeros"),),
        id="init-not-numbers",
    ),
    pytest.param(
        _custom_init("1, 2"),
        "error",
        r"init must have 4 numbers for 3 features with bias",
        (("init_values", "0.5, -1, 2, 0"),),
        id="init-wrong-length",
    ),
    pytest.param(
        _custom_init("1, nan, 2, 3"),
        "error",
        r"init must contain only finite numbers",
        (("init_values", "1, 0, 2, 3"),),
        id="init-nan",
    ),
    pytest.param(
        _custom_init("1, 1e999, 2, 3"),
        "error",
        r"init must contain only finite numbers",
        (("init", "normal"),),
        id="init-overflow",
    ),
    pytest.param(
        _custom_init(" , ,"),
        "error",
        r"init must be a flat list of numbers, one per weight",
        (("init", "zeros"),),
        id="init-empty",
    ),
    pytest.param(
        _set(samples=1_000_000, n_features=1_000),
        "error",
        r"samples x features must be at most 5,000,000",
        (("n_features", 3),),
        id="data-too-large",
    ),
    pytest.param(
        _steps(_set(model="mlp"), _set(hidden=256, iterations=1_000_000)),
        "error",
        r"capped at 8,000,000 .*at most 62,500 iterations",
        (("iterations", 200),),
        id="memory-cap",
    ),
    pytest.param(
        _set(model="logistic"),
        "error",
        r"needs targets of 0 and 1",
        (("model", "linear"),),
        id="classifier-on-regression-data",
    ),
    pytest.param(
        _set(sgd_nesterov=True),
        "error",
        r"(?i)nesterov momentum requires a momentum",
        (("sgd_nesterov", False),),
        id="nesterov-without-momentum",
    ),
]


@pytest.mark.parametrize("act, kind, words, fix", CONTROL_CASES)
def test_controls_answer_bad_settings_in_words(act, kind, words, fix):
    at = new_app()
    act(at)
    assert_no_traceback(at)
    shown = alerts(at, kind)
    assert any(re.search(words, text) for text in shown), shown
    if kind == "error":
        # the page says nothing else was lost
        assert any("settings are kept" in text for text in shown)
    assert_usable(at, *fix)


NUMBER_KEYS = ("lr", "batch_size", "iterations", "samples", "n_features", "noise", "seed")


@pytest.mark.parametrize(
    "key, value",
    [
        ("lr", 1000.0),
        ("lr", -1.0),
        ("lr", math.nan),
        ("batch_size", 0),
        ("iterations", 10**7),
        ("samples", 10**7),
    ],
)
def test_out_of_range_numbers_never_reach_the_run(key, value):
    """The number inputs have bounds; a value outside them (which the browser refuses) is not
    used."""
    at = new_app()
    box = at.number_input(key=key)
    assert box.min is not None and box.max is not None
    box.set_value(value).run()
    assert_no_traceback(at)
    now = at.number_input(key=key).value
    assert box.min <= now <= box.max
    assert_usable(at)


def test_every_number_input_has_bounds():
    at = new_app()
    keys = {box.key for box in at.number_input}
    assert set(NUMBER_KEYS) <= keys
    for box in at.number_input:
        assert box.min is not None and box.max is not None, box.key
        assert math.isfinite(box.min) and math.isfinite(box.max), box.key


# CSV uploads on the page: the sidebar's uploader (data source "csv"), then a good file must work.
UPLOAD_CASES = [
    pytest.param(
        "semi.csv", b"x;y\n1;2\n3;4\n", "linear", r"separated by semicolons", id="semicolons"
    ),
    pytest.param(
        "excel.csv", "x,y\n1,caf\xe9\n".encode("latin-1"), "linear", r"not UTF-8 text", id="latin-1"
    ),
    pytest.param("junk.csv", b"PK\x03\x04" + bytes(100), "linear", r"NUL bytes", id="binary"),
    pytest.param(
        "head.csv", b"x,y\n", "linear", r"column names but no data rows", id="header-only"
    ),
    pytest.param("empty.csv", b"", "linear", r"the file is empty", id="empty"),
    pytest.param(
        "const.csv", b"x,y\n1,5\n2,5\n3,5\n", "linear", r"'y' is constant", id="constant-target"
    ),
    pytest.param(
        "gaps.csv",
        b"x,y\n1,\n2,3\n3,4\n",
        "linear",
        r"rows? (has|have) missing values",
        id="missing",
    ),
    pytest.param(
        "txt.csv",
        b"x,y\n1,a\n2,b\n",
        "linear",
        r"no column holds only numbers|not numeric|no features chosen",
        id="text",
    ),
    pytest.param(
        "three.csv",
        b"x,y\n1,0\n2,1\n3,2\n4,1\n",
        "logistic",
        r"0s and 1s|targets of 0 and 1",
        id="non-binary-classifier",
    ),
]


@pytest.mark.parametrize("name, raw, model, words", UPLOAD_CASES)
def test_a_bad_upload_is_named_in_words_and_a_good_one_then_runs(name, raw, model, words):
    at = new_app()
    widget(at, "data").set_value("csv").run()
    at.file_uploader(key="csv_file").set_value((name, raw, "text/csv")).run()
    if model != "linear":
        widget(at, "model").set_value(model).run()
    assert_no_traceback(at)
    errors = alerts(at, "error")
    assert any(re.search(words, text) for text in errors), errors
    at.file_uploader(key="csv_file").set_value(("good.csv", GOOD_CSV, "text/csv"))
    assert_usable(at, ("model", "linear"))
    assert widget(at, "target").value == "y"
    # the run is on the uploaded file (the data's name comes from it)
    assert "good" in " ".join(texts(at))


# ============================================================ 4. the URL's query parameters
# (query, the parameter the note must name); every other control keeps its default.

URL_CASES = [
    pytest.param({"lr": "abc"}, "lr", id="lr-text"),
    pytest.param({"lr": "nan"}, "lr", id="lr-nan"),
    pytest.param({"lr": "inf"}, "lr", id="lr-inf"),
    pytest.param({"lr": "-1"}, "lr", id="lr-negative"),
    pytest.param({"lr": "0"}, "lr", id="lr-zero"),
    pytest.param({"lr": "1e999"}, "lr", id="lr-overflow"),
    pytest.param({"batch_size": "0"}, "batch_size", id="batch-zero"),
    pytest.param({"batch_size": "-3"}, "batch_size", id="batch-negative"),
    pytest.param({"batch_size": "nan"}, "batch_size", id="batch-nan"),
    pytest.param({"batch_size": "inf"}, "batch_size", id="batch-inf"),
    pytest.param({"iterations": str(10**12)}, "iterations", id="iterations-huge"),
    pytest.param({"iterations": "-inf"}, "iterations", id="iterations-minus-inf"),
    pytest.param({"iterations": "many"}, "iterations", id="iterations-text"),
    pytest.param({"seed": "-1"}, "seed", id="seed-negative"),
    pytest.param({"seed": "9" * 30}, "seed", id="seed-huge"),
    pytest.param({"seed": "inf"}, "seed", id="seed-inf"),
    pytest.param({"samples": "0"}, "samples", id="samples-zero"),
    pytest.param({"samples": "-inf"}, "samples", id="samples-minus-inf"),
    pytest.param({"n_features": "1000000"}, "n_features", id="features-huge"),
    pytest.param({"noise": "nan"}, "noise", id="noise-nan"),
    pytest.param({"loss": "l1"}, "loss", id="loss-unknown"),
    pytest.param({"optimizer": "lbfgs"}, "optimizer", id="optimizer-unknown"),
    pytest.param({"model": "cnn"}, "model", id="model-unknown"),
    pytest.param({"init": "ones"}, "init", id="init-unknown"),
    pytest.param({"data": "nope"}, "data", id="data-unknown"),
    pytest.param({"bias": "maybe"}, "bias", id="checkbox-text"),
    pytest.param({"bias": "2"}, "bias", id="checkbox-number"),
    pytest.param({"zero_grad": ""}, "zero_grad", id="checkbox-blank"),
    pytest.param({"log_scale": "yes"}, "log_scale", id="toggle-text"),
    pytest.param({"sgd_momentum": "-1"}, "sgd_momentum", id="momentum-negative"),
    pytest.param({"model": "mlp", "init": "normal", "hidden": "9999"}, "hidden", id="hidden-huge"),
    pytest.param({"no_such_setting": "1"}, "no_such_setting", id="unknown-parameter"),
]

_baselines: dict[tuple, dict] = {}


def baseline(query: dict) -> dict:
    """Each control's value when the link holds only the good parameters of a case: what a bad one
    falls back to."""
    key = tuple(sorted(query.items()))
    if key not in _baselines:
        at = new_app(query)
        assert not at.exception and not at.warning
        kinds = ("number_input", "selectbox", "checkbox", "toggle", "text_input")
        _baselines[key] = {w.key: w.value for kind in kinds for w in at.get(kind) if w.key}
    return _baselines[key]


def note_for(at: AppTest, key: str) -> list[str]:
    return [
        text for text in alerts(at, "warning", "info") if re.search(rf"\b{re.escape(key)}\b", text)
    ]


@pytest.mark.parametrize("query, key", URL_CASES)
def test_a_bad_link_parameter_falls_back_to_the_default_with_a_note(query, key):
    good = {k: v for k, v in query.items() if k != key}
    expected = baseline(good)
    at = new_app(query)
    assert_no_traceback(at)
    assert note_for(at, key), alerts(at, "warning", "info")
    assert not at.error, alerts(at, "error")
    if key in expected:
        assert widget(at, key).value == expected[key]
    if LAST_RUN not in at.session_state:
        # the page starts a run by itself only when it estimates it under compare.AUTO_RUN
        # seconds at this machine's measured speed, which a loaded machine can miss: Run then
        at.button(key="run").click().run()
        assert_no_traceback(at)
    assert len(charts(at)) == expected_charts(at)  # the run appears: the page is in working order


def test_several_bad_link_parameters_are_each_named():
    at = new_app({"lr": "abc", "batch_size": "0", "loss": "l1", "iterations": "1e12"})
    assert_no_traceback(at)
    for key in ("lr", "batch_size", "loss", "iterations"):
        assert note_for(at, key), (key, alerts(at, "warning", "info"))
    assert_usable(at)


def test_a_good_link_is_taken_without_a_note():
    """The other side of the fallback: a valid link sets the controls and says nothing."""
    at = new_app({"lr": "0.1", "batch_size": "16", "iterations": "300", "loss": "half_mse"})
    assert_no_traceback(at)
    assert not at.warning and not at.error
    assert at.number_input(key="lr").value == pytest.approx(0.1)
    assert at.number_input(key="batch_size").value == 16
    assert at.number_input(key="iterations").value == 300
    assert widget(at, "loss").value == "half_mse"
    assert [m.value for m in at.metric if m.label == "Steps taken"] == ["300"]


def outside_code_spans(markdown: str) -> str:
    """What markdown would still interpret: code spans and backslash-escaped characters taken out.

    As CommonMark reads them: a run of n backticks opens a span that the next run of exactly n
    backticks closes (an unmatched run is literal text), and a backslash before punctuation makes it
    literal.
    """
    out, i = [], 0
    while i < len(markdown):
        char = markdown[i]
        if char == "\\" and i + 1 < len(markdown) and markdown[i + 1] in PUNCTUATION:
            i += 2
            continue
        if char != "`":
            out.append(char)
            i += 1
            continue
        run = re.match(r"`+", markdown[i:]).group()
        close = re.search(rf"(?<!`){run}(?!`)", markdown[i + len(run) :])
        if close is None:
            out.append(run)
            i += len(run)
        else:
            i += len(run) + close.end()
    return "".join(out)


PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def test_outside_code_spans_reads_backticks_and_escapes_as_commonmark_does():
    assert outside_code_spans("a `b` c") == "a  c"
    assert outside_code_spans("a `` x ` y `` c") == "a  c"
    assert outside_code_spans("`lr=x` [k](u) `` tail") == " [k](u) `` tail"
    assert outside_code_spans(r"\[k\](u) \`x` y") == "k(u) x` y"


LINK = "[log in here](https://evil.example/login)"


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(
            {"lr": f"x` {LINK} `"},
            id="note-of-a-number",
        ),
        pytest.param({"loss": f"`` {LINK} ``"}, id="note-of-a-name"),
        pytest.param(
            {"init": "custom", "init_values": LINK},
            id="error-of-init-values",
        ),
    ],
)
def test_text_from_a_link_is_shown_as_text_not_as_markdown(query):
    """A shared link must not put a clickable link (or any markdown) of its author's on the app's
    page."""
    at = new_app(query)
    assert_no_traceback(at)
    shown = alerts(at, "markdown", "caption", "error", "warning", "info", "success")
    # the bad value is named (or this test tests nothing)
    assert any("evil.example" in text for text in shown)
    for text in shown:
        assert "](https://evil.example" not in outside_code_spans(text), text


# ============================================================ static checks: HTML, eval, unpickling

PAGE_FILES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]
CODE_FILES = [*PAGE_FILES, *sorted((ROOT / "lib").rglob("*.py"))]  # every layer of lib
HTML_RENDERERS = {"html"}  # st.html, components.html: always HTML


def _name(node: ast.AST) -> str:
    """Dotted name of a call's function: 'st.markdown', 'pickle.loads', 'eval'."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _name(node.func) + "()"
    return "?"


def html_calls(source: str) -> list[tuple[int, str, bool]]:
    """(line, call, renders only constant text) for each call that renders HTML."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        flag = next((k.value for k in node.keywords if k.arg == "unsafe_allow_html"), None)
        unsafe = flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False)
        if not unsafe and name.split(".")[-1] not in HTML_RENDERERS:
            continue
        body = (
            node.args[0]
            if node.args
            else next((k.value for k in node.keywords if k.arg == "body"), None)
        )
        constant = isinstance(body, ast.Constant) and isinstance(body.value, str)
        found.append((node.lineno, name, constant))
    return sorted(found)


def test_the_html_scan_sees_what_it_must():
    snippet = (
        "st.markdown('<b>x</b>', unsafe_allow_html=True)\n"
        "st.markdown(f'<b>{name}</b>', unsafe_allow_html=True)\n"
        "st.markdown(text)\n"
        "st.html(page)\n"
        "st.caption(text, unsafe_allow_html=flag)\n"
    )
    assert html_calls(snippet) == [(1, "st.markdown", True), (2, "st.markdown", False),
                                   (4, "st.html", False), (5, "st.caption", False)]  # fmt: skip


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_html_is_rendered_only_from_constant_text(path):
    """Every unsafe_allow_html=True or st.html call of a page renders a constant string (none of
    them today)."""
    for line, name, constant in html_calls(path.read_text()):
        assert constant, (
            f"{path.name}:{line}: {name}(..., unsafe_allow_html=True) "
            "renders text that is not a constant"
        )


FORBIDDEN_CALLS = {
    "eval", "exec", "compile", "__import__", "pickle.load", "pickle.loads", "marshal.load",
    "marshal.loads", "torch.load", "pd.read_pickle", "pandas.read_pickle", "joblib.load",
    "dill.load", "dill.loads", "shelve.open", "yaml.load", "yaml.unsafe_load", "cloudpickle.loads",
    "builtins.eval", "builtins.exec",
}  # fmt: skip
FORBIDDEN_MODULES = {"pickle", "marshal", "shelve", "dill", "joblib", "cloudpickle"}


def evaluations(source: str) -> list[str]:
    """Every place that evaluates code or unpickles data: forbidden calls,
    np.load(allow_pickle=True), imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if name in FORBIDDEN_CALLS:
                found.append(f"{node.lineno}: {name}()")
            pickles = any(k.arg == "allow_pickle"
                          and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                          for k in node.keywords)  # fmt: skip
            if pickles:
                found.append(f"{node.lineno}: {name}(allow_pickle=...)")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            found += [
                f"{node.lineno}: import {m}"
                for m in modules
                if m.split(".")[0] in FORBIDDEN_MODULES
            ]
    return sorted(found, key=lambda text: int(text.split(":")[0]))


def test_the_evaluation_scan_sees_what_it_must():
    snippet = (
        "x = eval(text)\n"
        "import pickle\n"
        "w = torch.load(f)\n"
        "a = np.load(f, allow_pickle=True)\n"
        "b = np.load(f)\n"
        "c = ast.literal_eval(t)\n"
    )
    assert evaluations(snippet) == [
        "1: eval()",
        "2: import pickle",
        "3: torch.load()",
        "4: np.load(allow_pickle=...)",
    ]


# The files allowed to compile and run code, only the project's own source and never a user's text:
# lib/lessons/speed.py times each phase of the two loops by exec'ing that phase's own lines, read
# from the loop functions with inspect (lib.explain.phase_source); lib/lessons/explain.py's
# loss_blind_weights compiles the hand loop again from its own source with `loss = nan`;
# lib/lessons/line_order.py rebuilds both loops from their own source with the lines of a step in
# an order check_order accepts (a permutation of lib.ORDER's names: no text from a user or a link);
# lib/io/export.py runs a lib.datasets generator's own source, as the short script writes it, to
# check it makes the run's arrays bit for bit (its arguments are literals, read by
# ast.literal_eval).
OWN_SOURCE_RUNNERS = {
    "lib/lessons/speed.py": {"compile()", "exec()"},
    "lib/lessons/explain.py": {"exec()"},  # compiles through lib/engine/source.py
    "lib/lessons/line_order.py": {"exec()"},  # compiles through lib/engine/source.py
    "lib/io/export.py": {"exec()"},  # compiles through lib/engine/source.py
    "lib/engine/source.py": {"compile()"},  # the one lock around parsing and compiling lib's code
}


def test_the_scan_reads_every_layer_of_lib_and_each_runner_is_there():
    scanned = {str(p.relative_to(ROOT)) for p in CODE_FILES}
    assert {"lib/twins/manual.py", "lib/engine/lockstep.py", "lib/io/export.py"} <= scanned
    for path, allowed in OWN_SOURCE_RUNNERS.items():
        assert path in scanned
        found = {f.split(": ", 1)[1] for f in evaluations((ROOT / path).read_text())}
        assert found == allowed, path  # an entry allows no more than its file does


@pytest.mark.parametrize("path", CODE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_is_evaluated_or_unpickled(path):
    allowed = OWN_SOURCE_RUNNERS.get(str(path.relative_to(ROOT)), set())
    assert [
        found for found in evaluations(path.read_text()) if found.split(": ", 1)[1] not in allowed
    ] == []


def test_the_speed_module_runs_only_the_loops_own_lines():
    """What lib/speed.py compiles is, phase by phase, a slice of the running loop functions'
    source."""
    import inspect

    from lib.engine.frames import function_of
    from lib.engine.lockstep import loops

    manual, torch_gen, _ = loops(lib.datasets.linear(m=20, n=2, seed=0), lib.Config(iterations=2))
    for gen in (manual, torch_gen):
        source = inspect.getsource(function_of(gen))
        texts = lib.speed.phase_texts(gen)
        for phase, text in texts.items():
            if phase in ("batch", "record"):
                continue
            assert all(line.strip() in source for line in text.splitlines()), phase


def test_loss_blind_weights_runs_only_the_loops_own_source(monkeypatch):
    """What lib/lessons/explain.py compiles is the loop function's own source, its `loss = ...`
    lines made `loss = nan` and nothing else."""
    import inspect
    import textwrap

    from lib.engine.frames import arguments_of, function_of
    from lib.engine.lockstep import loops
    from lib.lessons import explain

    compiled = []

    real = explain.compile_tree

    def spy(tree, *args, **kwargs):
        compiled.append(tree)
        return real(tree, *args, **kwargs)

    # explain compiles through lib.engine.source's lock; its name in explain is the spy's place.
    monkeypatch.setattr(explain, "compile_tree", spy)
    manual = loops(lib.datasets.linear(m=20, n=2, seed=0), lib.Config(iterations=2))[0]
    func = function_of(manual)
    explain.loss_blind_weights(func, arguments_of(manual), 1)
    [tree] = compiled
    own = ast.parse(textwrap.dedent(inspect.getsource(func)))
    for node in ast.walk(own):
        names = [getattr(t, "id", None) for t in getattr(node, "targets", ())]
        if isinstance(node, ast.Assign) and names == ["loss"]:
            node.value = ast.Name("nan", ast.Load())
    assert ast.dump(tree) == ast.dump(own)
    text = ast.unparse(tree)
    assert "loss = nan" in text and "np.mean((labels - h) ** 2)" not in text
