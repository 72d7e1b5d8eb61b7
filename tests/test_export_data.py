"""The short script's data: a data set one of lib.datasets' seeded generators made is made again
in the script by that generator's own source, and checked there against the run's arrays, bit for
bit; any other data set is written into the script."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest

import lib
from lib.io.export import regenerated_data
from tests.test_export import DEFAULT_DATA

NOTE = "note: this numpy made other numbers than the run had"
GENERATED = {
    "linear": DEFAULT_DATA,
    "blobs": lib.datasets.blobs(m=60, seed=2),
    "moons": lib.datasets.moons(m=50, noise=0.2, seed=3),
    "correlated": lib.datasets.correlated(m=30, rho=0.5, seed=4),
    "classic": lib.datasets.classic(seed=1),
}


def module_level(text: str) -> tuple[dict, str]:
    """Run the script as an import would (its main() not called): its namespace and printout."""
    namespace: dict = {"__name__": "exported_script"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(text, "exported_script.py", "exec"), namespace)
    return namespace, printed.getvalue()


def assert_same_bits(namespace: dict, data: lib.Dataset) -> None:
    for name, expected in (("X", data.X), ("y", data.y)):
        got = namespace[name]
        assert got.dtype == np.float64 and got.shape == expected.shape, name
        assert got.tobytes() == expected.tobytes(), name


@pytest.mark.parametrize("name", GENERATED)
def test_a_generated_data_set_is_made_again_by_lib_s_generator(name):
    data = GENERATED[name]
    text = lib.to_script(data, lib.Config(iterations=5))
    assert regenerated_data(data) is not None
    assert f"\ndef {name}(" in text and "X = np.array([" not in text and "_check(" not in text
    assert repr(float(data.X[0, 0])) not in text  # no row written in
    namespace, printed = module_level(text)
    assert_same_bits(namespace, data)
    assert NOTE not in printed
    assert "made below by lib's generator" in " ".join(text.split('"""')[1].split())


def test_the_script_says_so_when_its_generator_makes_other_numbers():
    """The bit-for-bit check can fail: the same script with its generator called on another seed
    (as a numpy that draws other numbers would make) prints the note."""
    text = lib.to_script(DEFAULT_DATA, lib.Config())
    call = "X, y = linear(m=200, n=3, noise=0.1, seed=0)\n"
    assert text.count(call) == 1
    _, printed = module_level(text.replace(call, call.replace("seed=0", "seed=1")))
    assert NOTE in printed


@pytest.mark.parametrize(
    "data",
    [
        # the generator's name on other numbers
        lib.Dataset(DEFAULT_DATA.X * 2, DEFAULT_DATA.y, name=DEFAULT_DATA.name),
        # a noise the name rounds (noise=0.123457): the name's arguments make other numbers
        lib.datasets.linear(m=30, n=2, noise=0.123456789, seed=5),
        # a preset's data, standardised after the generator made it
        lib.datasets.sine_poly(m=20, standardize=True),
        lib.Dataset(np.arange(6.0).reshape(3, 2), [1.0, 2.0, 3.0], name="linear"),
    ],
    ids=["other numbers", "rounded name", "standardised", "no arguments"],
)
def test_other_data_is_written_into_the_script(data):
    assert regenerated_data(data) is None
    text = lib.to_script(data, lib.Config(iterations=5))
    assert "X = np.array([" in text and "hashlib" not in text
    assert "embedded below" in " ".join(text.split('"""')[1].split())
    namespace, _ = module_level(text)
    assert_same_bits(namespace, data)
    assert not re.search(r"^def (linear|sine_poly)\(", text, flags=re.M)


@pytest.mark.parametrize(
    ("preset", "words"),
    [
        (None, "makes the data again from its seed with lib's own generator"),
        ("sine_poly_standardized", "the data is written into the script"),
    ],
)
def test_the_compare_page_says_where_the_script_s_data_comes_from(preset, words):
    """The download's caption follows regenerated_data: the default data, lib.datasets.linear's as
    it stands, and a preset standardised after it was made (which the script cannot make again)."""
    from tests.test_app_controls import app

    at = app(**({"data": preset} if preset else {}))
    captions = [c.value for c in at.caption]
    assert any(words in c for c in captions), captions
