"""The real data sets shipped in lib/io/data/: their files, their presets' claims, both loops."""

import math

import numpy as np
import pytest
import torch

import lib
from lib.io import datasets
from lib.io.datasets import CLASSIFICATION, PRESETS, REGRESSION


@pytest.fixture
def one_thread():
    """One torch thread: on a loaded two-core machine, two threads make each small bce call about a
    thousand times slower (10 ms against 10 us) without changing a number the test reads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_shipped_file_is_inside_the_package_and_read_by_name():
    package = datasets.DATA_DIR.resolve()
    assert package.parent == (datasets.Path(lib.__file__).resolve().parent / "io")
    for name in ("planets.csv", "diabetes.csv", "breast_cancer.csv"):
        assert datasets.data_file(name).is_file()
    with pytest.raises(ValueError, match=r"ships no data file named 'iris\.csv'; it ships "):
        datasets.data_file("iris.csv")
    with pytest.raises(ValueError, match="ships no data file"):
        datasets.data_file("../datasets.py")


def test_the_files_hold_the_published_tables():
    diabetes = datasets.diabetes_frame()
    assert diabetes.shape == (442, 11) and diabetes.notna().all().all()
    assert list(diabetes.columns[:4]) == ["age", "sex", "bmi", "bp"]
    assert set(diabetes["sex"]) == {1, 2}  # the raw (unscaled) table: sex coded 1 and 2
    cancer = datasets.breast_cancer_frame()
    assert cancer.shape == (569, 31) and cancer.notna().all().all()
    assert set(cancer["malignant"]) == {0, 1} and cancer["malignant"].sum() == 212
    # The descr file's ranges: mean radius 6.981 to 28.11, worst area 185.2 to 4254.
    assert (cancer["mean_radius"].min(), cancer["mean_radius"].max()) == (6.981, 28.11)
    assert (cancer["worst_area"].min(), cancer["worst_area"].max()) == (185.2, 4254.0)


def test_real_presets_say_so_and_the_synthetic_ones_do_not():
    real = {key for key, p in PRESETS.items() if p.real}
    assert {"kepler", "escape_velocity", "diabetes", "breast_cancer"} == real
    assert all(not PRESETS[key].seeded for key in real)
    assert PRESETS["diabetes"].task == REGRESSION
    assert PRESETS["breast_cancer"].task == CLASSIFICATION
    # A Preset made with the old positional fields is not real.
    old = datasets.Preset("x", "X", datasets.linear, {"lr": 0.1}, REGRESSION, "about")
    assert old.real is False


def test_diabetes_preset_converges_to_least_squares_as_its_description_says():
    preset = PRESETS["diabetes"]
    data = preset.make()
    assert data.m >= 100 and data.n == 10
    np.testing.assert_allclose(data.X.mean(axis=0), 0.0, atol=1e-12)
    cfg = preset.config(data)
    result = lib.run(data, cfg)
    assert result.done and result.max_abs_diff <= 1e-10
    assert cfg.batch_size == data.m
    A = data.with_ones()
    best = np.mean((A @ np.linalg.lstsq(A, data.y, rcond=None)[0] - data.y) ** 2)
    for loss in (result.manual.loss, result.torch.loss):
        assert loss[-1] < 0.11 * loss[0]
        assert loss[-1] == pytest.approx(best, rel=1e-3)  # "the least-squares value"
    first, last = result.torch.loss[0], result.torch.loss[-1]
    text = (
        f"at lr {cfg.lr:g} brings the mean squared error from {first:,.0f} to {last:,.0f} in "
        f"{cfg.iterations:,} steps"
    )
    assert text in " ".join(preset.about.split())
    share = 1 - last / data.y.var()
    assert f"explains {share:.0%} of the target's variance ({data.y.var():,.0f})" in preset.about
    bias = result.torch.weights[-1][-1]
    assert f"The bias comes out as {bias:.1f}, the mean progression" in preset.about
    assert f"{data.y.mean():.1f}" == f"{bias:.1f}"


def test_breast_cancer_preset_converges_as_its_description_says(one_thread):
    preset = PRESETS["breast_cancer"]
    data = preset.make()
    assert data.m >= 100 and data.n == 30 and set(np.unique(data.y)) == {0.0, 1.0}
    cfg = preset.config(data)
    result = lib.run(data, cfg)
    assert result.done and result.max_abs_diff <= 1e-10
    first, last = result.torch.loss[0], result.torch.loss[-1]
    assert first == pytest.approx(math.log(2), abs=1e-12)
    assert last < 0.1 * first and result.manual.loss[-1] < 0.1 * first
    wrong = int(((data.with_ones() @ result.torch.weights[-1] > 0) != (data.y == 1.0)).sum())
    about = " ".join(preset.about.split())
    assert f"{data.m} tumours, {int(data.y.sum())} of them malignant" in about
    assert f"full batch at lr {cfg.lr:g}" in about and cfg.batch_size == data.m
    assert f"from {first:.3f} (ln 2" in about
    assert f"to {last:.3f} in {cfg.iterations:,} steps" in about
    assert f"misclassifies {wrong} of the {data.m} tumours" in about


def test_the_convergence_checks_fail_on_settings_that_do_not_converge():
    """The claims above are measured: with a tenth of the steps they are false, and seen so."""
    preset = PRESETS["diabetes"]
    data = preset.make()
    short = lib.run(data, preset.config(data, iterations=5))
    about = " ".join(preset.about.split())
    last = short.torch.loss[-1]
    assert f"to {last:,.0f} in" not in about
    assert f"The bias comes out as {short.torch.weights[-1][-1]:.1f}," not in about
