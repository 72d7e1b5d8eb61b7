"""lib/io/scaling.py: the standardisation the data sets and the CSV upload share.

It has its own module so that lib/io/datasets.py and lib/io/csv_data.py do not import each other
both ways (csv_data once took Scaling from datasets, which took read_csv from csv_data inside a
function).
"""

import ast
import pathlib

import numpy as np
import pytest

import lib
from lib.engine.data import Dataset
from lib.io import csv_data, datasets, scaling

IO = pathlib.Path(lib.__file__).parent / "io"


def imported_modules(path: pathlib.Path) -> list[tuple[str, bool]]:
    """(module, at the top of the file) for every `from .x import ...` in path."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    return [
        (node.module or "", id(node) in top)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1
    ]


def test_csv_data_and_datasets_do_not_import_each_other_both_ways():
    assert ("scaling", True) in imported_modules(IO / "csv_data.py")
    assert all(module != "datasets" for module, _ in imported_modules(IO / "csv_data.py"))
    # datasets reads the shipped planets table with read_csv, imported once at the top.
    assert ("csv_data", True) in imported_modules(IO / "datasets.py")
    assert all(at_top for _, at_top in imported_modules(IO / "datasets.py"))


def test_the_old_names_are_the_shared_objects():
    assert datasets.Scaling is scaling.Scaling is csv_data.Scaling is lib.datasets.Scaling
    assert datasets.standardize is scaling.standardize is lib.datasets.standardize
    assert datasets.standardize_dataset is scaling.standardize_dataset


def test_standardize_gives_mean_0_std_1_and_keeps_the_means_and_stds():
    X = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 60.0]])
    Z, used = scaling.standardize(X, ("a", "b"))
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(Z.std(axis=0), 1.0)
    assert used == scaling.Scaling(("a", "b"), (2.0, 30.0), tuple(map(float, X.std(axis=0))))
    assert used.frame().to_dict("list") == {
        "feature": ["a", "b"],
        "mean": [2.0, 30.0],
        "std": list(used.stds),
    }


def test_standardize_names_every_constant_feature():
    X = np.column_stack([np.full(4, 2.0), np.arange(4.0), np.full(4, -1e9)])
    with pytest.raises(ValueError) as err:
        scaling.standardize(X, ["flat", "ramp", "big"])
    assert str(err.value) == (
        "cannot standardise constant features 'flat', 'big' (standard deviation 0); leave them out"
    )


def test_standardize_dataset_keeps_the_targets_and_names():
    data = Dataset(np.array([[0.0], [2.0]]), np.array([5.0, 7.0]), feature_names=("x",), name="two")
    scaled, used = scaling.standardize_dataset(data)
    np.testing.assert_array_equal(scaled.X, [[-1.0], [1.0]])
    np.testing.assert_array_equal(scaled.y, data.y)
    assert (scaled.name, scaled.feature_names, used.means, used.stds) == (
        "two",
        ("x",),
        (1.0,),
        (1.0,),
    )
