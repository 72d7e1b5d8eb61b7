"""Exports: the standalone script reproduces lib.run outside the repository; CSV and JSON hold
the run."""

from __future__ import annotations

import ast
import functools
import inspect
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lib
from lib import csv_data

# The venv's interpreter: numpy and torch importable, lib not (with -I, outside the repo).
PYTHON = sys.executable
DATA = lib.datasets.linear(m=40, n=3, noise=0.1, seed=1)
# Too many numbers to write as lists: base64 (renamed, so that the script cannot make it again with
# lib.datasets.linear).
_BIG = lib.datasets.linear(m=3_000, n=4, noise=0.5, seed=7)
BIG = lib.Dataset(_BIG.X, _BIG.y, name="linear draws, renamed")
BLOBS = lib.datasets.blobs(m=60, seed=2)
# Each script costs a torch import (seconds on a busy machine), so each case combines several
# features.
# fmt: off
CASES = {
    "mse, float32 torch, big data": (
        BIG, lib.Config(lr=0.05, batch_size=64, iterations=40, torch_dtype="float32"),
    ),
    "half_mse, no bias, batch 1, normal init": (
        DATA, lib.Config(lr=0.02, batch_size=1, iterations=90, loss="half_mse", bias=False,
                         init="normal", seed=3),
    ),
    "sse, batch 7, no zero_grad, hand loop on mse": (
        DATA, lib.Config(lr=0.001, batch_size=7, iterations=60, loss="sse", zero_grad=False,
                         manual_loss="mse", seed=5),
    ),
    "full batch, adam, explicit init": (
        DATA, lib.Config(lr=0.05, batch_size=500, iterations=60, init=[0.5, -1.0, 2.0, 0.25],
                         optimizer="adam", optimizer_kwargs={"betas": (0.8, 0.99)}),
    ),
    "mlp relu, sgd nesterov": (
        DATA, lib.Config(lr=0.01, batch_size=8, iterations=60, model="mlp", hidden=4,
                         activation="relu", init="normal", optimizer="sgd",
                         optimizer_kwargs={"momentum": 0.9, "nesterov": True}),
    ),
    "logistic, bce": (BLOBS, lib.Config(lr=0.1, batch_size=10, iterations=50, model="logistic")),
    "rmsprop centered with momentum, mlp tanh without bias": (
        DATA, lib.Config(lr=0.01, batch_size=8, iterations=40, model="mlp", hidden=3, bias=False,
                         init="normal", optimizer="rmsprop",
                         optimizer_kwargs={"centered": True, "momentum": 0.5}),
    ),
    "adagrad with decays, logistic without bias, no zero_grad": (
        BLOBS, lib.Config(lr=0.1, batch_size=10, iterations=40, model="logistic", bias=False,
                          zero_grad=False, optimizer="adagrad",
                          optimizer_kwargs={"lr_decay": 0.01, "weight_decay": 0.1}),
    ),
    "adamw amsgrad, mlp bce": (
        BLOBS, lib.Config(lr=0.01, batch_size=16, iterations=40, model="mlp", hidden=4, loss="bce",
                          init="normal", optimizer="adamw", optimizer_kwargs={"amsgrad": True}),
    ),
    "sgd momentum with dampening and weight decay": (
        DATA, lib.Config(lr=1e-3, batch_size=5, iterations=40, optimizer_kwargs={
            "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ),
    "the app's default run": (DATA, lib.Config(lr=0.05, batch_size=32, iterations=500)),
    "diverges": (DATA, lib.Config(lr=5.0, batch_size=40, iterations=200)),
}
# fmt: on
# The Config and data the short script is written for: lib.Config()'s run on the default data set,
# and the app's default sidebar run on it.
DEFAULT_DATA = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
DEFAULT_RUNS = {
    "lib.Config()": lib.Config(),
    "the app's default": lib.Config(lr=0.05, batch_size=32, iterations=500),
}


def run_script(text: str, folder: Path) -> tuple[str, dict]:
    """Run a script in folder with an interpreter that cannot import lib; its output and
    last-line JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "twin_loops.py"
    path.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # -I: no PYTHONPATH, no user site-packages, and not even the script's own folder on sys.path.
    done = subprocess.run(
        [PYTHON, "-I", path.name], cwd=folder, env=env, capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"script failed:\n{done.stdout}\n{done.stderr}"
    last = done.stdout.strip().splitlines()[-1]
    return done.stdout, json.loads(last)


def assert_reproduces(result: lib.Result, weights: dict) -> None:
    for loop in ("manual", "torch"):
        expected = getattr(result, loop).weights[-1]
        got = np.array(weights[loop], dtype=np.float64)
        assert got.shape == expected.shape, loop
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, equal_nan=True, err_msg=loop)


def test_lib_is_not_importable_where_the_scripts_run(tmp_path):
    probe = (
        "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('lib') is None else 1)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    assert (
        subprocess.run([PYTHON, "-I", "-c", probe], cwd=tmp_path, env=env, check=False).returncode
        == 0
    )
    assert not Path(tmp_path, "lib").exists()


def cached_scripts(cases: dict[str, tuple[lib.Dataset, lib.Config]]) -> Callable[..., str]:
    """lib.to_script of each named case, written once per test process (a short script takes
    seconds to specialise): the tests that read a case's script and the one that runs it share
    the text."""

    @functools.cache
    def script(name: str, full: bool = False) -> str:
        return lib.to_script(*cases[name], full=full)

    return script


script_of = cached_scripts(CASES)
# Each script is its own test item, so pytest-xdist spreads the scripts' torch imports and runs over
# the workers: the short script of every case, and the full one (all branches kept) of two.
FULL = ("mlp relu, sgd nesterov", "diverges")
SCRIPTS = [(name, False) for name in CASES] + [(name, True) for name in FULL]


@pytest.mark.parametrize(
    "name, full", SCRIPTS, ids=[f"{n} (full)" if full else n for n, full in SCRIPTS]
)
def test_scripts_reproduce_lib_run(tmp_path, name, full):
    """The case's exported script, run outside the repo without lib, ends at lib.run's final
    weights (1e-12). A short script also imports only numpy, torch and the standard library (what
    test_short_scripts_import_only_numpy_torch_and_the_standard_library checked, on the text that
    is run; the full one's imports are checked in test_full_script_is_built_from_lib_source)."""
    data, cfg = CASES[name]
    result = lib.run(data, cfg)
    # The stop rule is exercised, not just the happy path.
    if name == "diverges":
        assert result.stopped == "diverged"
    else:
        assert result.stopped is None and result.steps > 0
    text = script_of(name, full)
    if name == "mse, float32 torch, big data":
        assert "base64" in text
    if not full:
        assert_imports_only_numpy_torch_and_the_standard_library(text)
    stdout, weights = run_script(text, tmp_path)
    assert_reproduces(result, weights)
    assert f"{result.steps:,} steps of {result.config.iterations:,}" in stdout
    assert ("diverged at step" in stdout) == (name == "diverges")


def test_csv_dataset_is_read_by_file_name(tmp_path):
    """A Dataset from an uploaded CSV: the script reads the same file, by name, from its own
    folder."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 2)) * [1.0, 10.0]
    y = X @ [0.5, -0.05] + 1.0 + 0.1 * rng.normal(size=30)
    frame = pd.DataFrame(
        {"label": ["a"] * 30, "area": X[:, 0], "rooms": X[:, 1], "price": y, "extra": 1.0}
    )
    raw = frame.to_csv(index=False).encode()
    prepared = csv_data.prepare(
        csv_data.read_csv(raw), "price", ["area", "rooms"], name="houses.csv"
    )
    cfg = lib.Config(lr=0.01, batch_size=4, iterations=70)
    text = lib.to_script(prepared.data, cfg, csv_name="houses.csv", target="price")
    assert "houses.csv" in text and repr(float(X[0, 0])) not in text  # referenced, not embedded
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "houses.csv").write_bytes(raw)
    stdout, weights = run_script(text, folder)
    assert "differs from the data" not in stdout
    assert_reproduces(lib.run(prepared.data, cfg), weights)


def test_csv_script_explains_a_missing_file(tmp_path):
    text = lib.to_script(DATA, lib.Config(iterations=5), csv_name="missing.csv", target="y")
    path = tmp_path / "s.py"
    path.write_text(text)
    done = subprocess.run(
        [PYTHON, "-I", path.name], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "cannot read 'missing.csv'" in done.stderr and "Traceback" not in done.stderr


def test_full_script_is_built_from_lib_source():
    """full=True: lib's functions appear verbatim, every branch kept, and nothing imports lib.

    One manual_loop runs every model (manual_mlp_loop, a wrapper lib.run never calls, is not
    needed); the weight layout, both batch loaders and the step rule come with the loops.
    """
    from lib.engine.data import loader, torch_loader
    from lib.engine.lockstep import ends_run
    from lib.twins.layout import Layout

    text = lib.to_script(DATA, lib.Config(iterations=5), full=True)
    loops = (lib.manual_loop, lib.torch_loop, lib.batch_indices, lib.optim.SGD)
    for func in (*loops, Layout, loader, torch_loader, ends_run):
        assert inspect.getsource(func).strip() in text, func.__name__
    assert_imports_only_numpy_torch_and_the_standard_library(text)


def assert_imports_only_numpy_torch_and_the_standard_library(text: str) -> None:
    tree = ast.parse(text)
    imported = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"numpy", "torch"}, imported
    defined = [
        n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
    ] + [  # X, y = linear(...) defines both
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in ast.walk(n.targets[0])
        if isinstance(t, ast.Name)
    ]
    assert len(defined) == len(set(defined)), "a name is defined twice in the script"


def test_history_csv_is_the_tidy_frame():
    result = lib.run(DATA, CASES["full batch, adam, explicit init"][1])
    frame = pd.read_csv(io.BytesIO(lib.history_csv(result)))
    assert list(frame.columns) == ["step", "loop", "metric", "value"]
    expected = result.frame()
    assert len(frame) == len(expected)
    # An exact round trip.
    np.testing.assert_array_equal(frame["value"].to_numpy(), expected["value"].to_numpy())
    assert (frame["loop"].astype(str).to_numpy() == expected["loop"].astype(str).to_numpy()).all()
    assert set(frame["metric"]) == {"loss", "grad_norm", *result.weight_names}


def test_history_json_holds_config_data_and_histories():
    cfg = CASES["full batch, adam, explicit init"][1]
    result = lib.run(DATA, cfg)
    doc = json.loads(lib.history_json(result, DATA), parse_constant=_refuse)
    assert lib.Config(**doc["config"]) == cfg
    assert doc["data"]["samples"] == DATA.m and doc["data"]["feature_names"] == list(
        DATA.feature_names
    )
    assert doc["weight_names"] == list(result.weight_names) and doc["steps"] == result.steps
    for loop in ("manual", "torch"):
        h = getattr(result, loop)
        np.testing.assert_array_equal(np.array(doc[loop]["weights"]), h.weights)
        np.testing.assert_array_equal(np.array(doc[loop]["loss"]), h.loss)


def test_history_json_of_a_diverged_run_is_strict_json():
    result = lib.run(DATA, CASES["diverges"][1])
    doc = json.loads(lib.history_json(result), parse_constant=_refuse)  # NaN or Infinity raise
    assert doc["stopped"] == "diverged" and doc["data"] is None
    assert None in doc["manual"]["loss"] + [v for row in doc["manual"]["weights"] for v in row]


def _refuse(token: str):
    raise AssertionError(f"non-standard JSON constant {token}")


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: lib.to_script("data", lib.Config()), "data must be a lib.Dataset"),
        (lambda: lib.to_script(DATA, {"lr": 0.1}), "cfg must be a lib.Config"),
        (lambda: lib.to_script(DATA, lib.Config(), csv_name=""), "csv_name must be a file name"),
        (lambda: lib.to_script(DATA, lib.Config(init=[1.0, 2.0])), "init must have 4 numbers"),
        (lambda: lib.to_script(DATA, lib.Config(), full="yes"), "full must be True or False"),
        (lambda: lib.history_csv(None), "result must be a lib.Result"),
        (lambda: lib.history_json("result"), "result must be a lib.Result"),
    ],
)
def test_bad_arguments_are_explained(call, words):
    with pytest.raises(ValueError, match=words):
        call()


@pytest.mark.parametrize("full", [False, True])
def test_scripts_name_the_difference_as_the_pages_do(tmp_path, full):
    data, cfg = lib.datasets.linear(m=40, n=2, seed=0), lib.Config(iterations=30)
    out, weights = run_script(lib.to_script(data, cfg, full=full), tmp_path)
    line = next(line for line in out.splitlines() if line.startswith(lib.explain.DIFF_NAME))
    diff = np.max(np.abs(np.array(weights["manual"]) - np.array(weights["torch"])))
    relative = diff / max(1.0, np.max(np.abs(weights["manual"] + weights["torch"])))
    assert line == (
        f"{lib.explain.DIFF_NAME} after the last step: {diff:.3g} ({lib.explain.RELATIVE_NAME}: "
        f"{relative:.3g})"
    )
