"""Presets: shapes, seeds, binary targets, stable suggested settings, both loops agree on each."""

import math
from types import MappingProxyType

import numpy as np
import pytest

import lib
from lib import datasets
from lib.engine import lockstep
from lib.io.datasets import CLASSIFICATION, PRESETS, REGRESSION

SEEDED = [key for key, p in PRESETS.items() if p.seeded]
REGRESSIONS = [key for key, p in PRESETS.items() if p.task == REGRESSION]
# the synthetic ones (their classes balanced and rows shuffled by the seed); the real sets are
# tested in test_datasets_real.py
CLASSIFIERS = [key for key, p in PRESETS.items() if p.task == CLASSIFICATION and p.seeded]


def hessian_eigenvalues(data: lib.Dataset, cfg: lib.Config) -> np.ndarray:
    """Eigenvalues of the full-batch Hessian of a linear model's squared error, cfg's convention."""
    A = data.with_ones() if cfg.bias else data.X
    k = {"mse": 2 / data.m, "half_mse": 1 / data.m, "sse": 2.0}[cfg.loss]
    return np.linalg.eigvalsh(k * A.T @ A)


def test_registry_lists_every_preset_the_issue_asks_for_and_is_read_only():
    assert {
        "classic",
        "linear",
        "sine_poly",
        "sine_poly_standardized",
        "correlated",
        "blobs",
        "moons",
    } <= set(PRESETS)
    assert any(not p.seeded for p in PRESETS.values()), "at least one real (unseeded) data set"
    assert isinstance(PRESETS, MappingProxyType)
    with pytest.raises(TypeError):
        PRESETS["new"] = PRESETS["linear"]
    with pytest.raises(TypeError):
        PRESETS["linear"].suggested["lr"] = 1.0
    for key, preset in PRESETS.items():
        assert preset.key == key and preset.title and preset.about
        assert preset.task in (REGRESSION, CLASSIFICATION)


@pytest.mark.parametrize("key", list(PRESETS))
def test_preset_builds_a_named_float_dataset_and_a_valid_config(key):
    preset = PRESETS[key]
    data = preset.make()
    assert isinstance(data, lib.Dataset)
    assert data.name and data.name != "data"
    assert (
        data.X.dtype == np.float64
        and data.X.shape == (data.m, data.n)
        and data.y.shape == (data.m,)
    )
    assert len(data.feature_names) == data.n
    cfg = preset.config(data)
    assert isinstance(cfg, lib.Config)
    # A full-batch suggestion becomes exactly m, so a batch-size slider bounded by m can show it.
    assert cfg.batch_size <= data.m
    assert preset.config(data, lr=0.123).lr == 0.123


@pytest.mark.parametrize("key", SEEDED)
def test_seeded_preset_is_deterministic_and_seed_changes_it(key):
    a, b, c = PRESETS[key].make(seed=7), PRESETS[key].make(seed=7), PRESETS[key].make(seed=8)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.name == b.name
    assert not np.array_equal(a.X, c.X)


@pytest.mark.parametrize("key", CLASSIFIERS)
def test_classification_targets_are_zero_one_floats_half_each_and_shuffled(key):
    data = PRESETS[key].make(seed=3)
    assert data.y.dtype == np.float64
    assert set(np.unique(data.y).tolist()) == {0.0, 1.0}
    assert int(data.y.sum()) == data.m - data.m // 2
    # Shuffled rows: a minibatch of the first 32 rows holds both classes.
    assert 0 < data.y[:32].sum() < 32
    assert data.n == 2


def test_blobs_are_separated_by_distance_and_moons_are_not_linearly_separable():
    blobs = datasets.blobs(m=400, distance=6.0, spread=0.5, seed=1)
    centres = [blobs.X[blobs.y == k].mean(axis=0) for k in (0.0, 1.0)]
    assert np.linalg.norm(centres[1] - centres[0]) == pytest.approx(6.0, rel=0.05)
    moons = datasets.moons(m=400, noise=0.0, seed=1)
    # Noise-free moons lie exactly on their circles: the upper one centred at (0, 0), the lower at
    # (1, 0.5).
    upper, lower = moons.X[moons.y == 0.0], moons.X[moons.y == 1.0]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0)
    # The best least-squares line still misclassifies points: the classes interleave.
    w = lib.least_squares(moons, bias=True)
    assert ((moons.with_ones() @ w > 0.5) != (moons.y == 1.0)).sum() > 10


@pytest.mark.parametrize("key", list(PRESETS))
def test_both_loops_agree_on_every_preset(key):
    preset = PRESETS[key]
    data = preset.make()
    result = lib.run(data, preset.config(data, iterations=25))
    assert result.done, result.message()
    assert result.max_abs_diff <= 1e-10


@pytest.mark.parametrize(
    "key", [k for k in REGRESSIONS if PRESETS[k].suggested.get("batch_size", 0) >= 1000]
)
def test_suggested_full_batch_learning_rate_is_stable(key):
    """Full-batch gradient descent on a quadratic is stable when lr * lambda_max < 2.

    With momentum the bound is 2 (1 + momentum).
    """
    preset = PRESETS[key]
    data = preset.make()
    cfg = preset.config(data)
    momentum = dict(cfg.optimizer_kwargs).get("momentum", 0.0)
    assert cfg.lr * hessian_eigenvalues(data, cfg).max() < 2 * (1 + momentum)


def test_classic_preset_has_the_classic_settings_and_converges_within_them():
    preset = PRESETS["classic"]
    data = preset.make()
    cfg = preset.config(data)
    assert (cfg.lr, cfg.iterations, cfg.loss, cfg.bias, cfg.init) == (
        1e-4,
        50_000,
        "half_mse",
        False,
        "zeros",
    )
    assert cfg.batch_size == data.m
    # Full-batch GD shrinks the distance to the least-squares answer by max|1 - lr * lambda| per
    # step.
    lam = hessian_eigenvalues(data, cfg)
    assert np.max(np.abs(1 - cfg.lr * lam)) ** cfg.iterations < 1e-6
    # ... but not in a handful of steps: the slow direction needs thousands, which is why the loop
    # runs so long.
    assert np.max(np.abs(1 - cfg.lr * lam)) ** 1000 > 0.1


def test_sine_poly_shows_why_scaling_matters():
    raw, scaled = PRESETS["sine_poly"], PRESETS["sine_poly_standardized"]
    raw_limit = 2 / hessian_eigenvalues(raw.make(), raw.config()).max()
    scaled_limit = 2 / hessian_eigenvalues(scaled.make(), scaled.config()).max()
    assert scaled_limit > 1000 * raw_limit
    assert raw.config().lr < raw_limit < scaled.config().lr < scaled_limit
    assert datasets.sine_poly(degree=5).feature_names == ("x", "x^2", "x^3", "x^4", "x^5")


def test_standardize_records_means_and_stds_and_rescales():
    raw = datasets.sine_poly(m=300, seed=4)
    scaled = datasets.sine_poly(m=300, seed=4, standardize=True)
    again, scaling = datasets.standardize_dataset(raw)
    np.testing.assert_allclose(scaled.X, again.X)
    np.testing.assert_allclose(scaled.X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled.X.std(axis=0), 1.0)
    np.testing.assert_allclose(scaling.means, raw.X.mean(axis=0))
    np.testing.assert_allclose(scaling.stds, raw.X.std(axis=0))
    np.testing.assert_array_equal(scaled.y, raw.y)
    table = scaling.frame()
    assert list(table.columns) == ["feature", "mean", "std"] and list(table["feature"]) == [
        "x",
        "x^2",
        "x^3",
    ]


def test_standardize_refuses_a_constant_feature_by_name():
    X = np.column_stack([np.arange(5.0), np.full(5, 3.0)])
    with pytest.raises(
        ValueError, match=r"cannot standardise constant feature 'flat' \(standard deviation 0\)"
    ):
        datasets.standardize(X, ["ramp", "flat"])


def test_correlated_features_have_the_asked_correlation():
    data = datasets.correlated(m=5000, rho=0.9, seed=2)
    assert np.corrcoef(data.X.T)[0, 1] == pytest.approx(0.9, abs=0.02)
    lam = hessian_eigenvalues(data, lib.Config(bias=False))
    assert lam.max() / lam.min() == pytest.approx(19, rel=0.2)  # (1 + rho) / (1 - rho)


def test_planets_table_obeys_keplers_third_law_and_the_escape_velocity_formula():
    """A check on the shipped numbers: a typo in data/planets.csv breaks one of these laws."""
    planets = datasets.planets_frame()
    assert len(planets) == 9 and planets["body"].iloc[2] == "Earth"
    a, period = planets["semi_major_axis_au"], planets["orbital_period_years"]
    np.testing.assert_allclose(period**2 / a**3, 1.0, rtol=0.01)
    G = 6.674e-11
    v = np.sqrt(2 * G * planets["mass_1e24_kg"] * 1e24 / (planets["mean_radius_km"] * 1e3)) / 1e3
    np.testing.assert_allclose(planets["escape_velocity_km_s"], v, rtol=0.01)


def test_planet_presets_recover_the_physical_exponents():
    slope, intercept = lib.least_squares(datasets.kepler(), bias=True)
    assert slope == pytest.approx(1.5, abs=0.005) and intercept == pytest.approx(0.0, abs=0.005)
    w_mass, w_radius, _ = lib.least_squares(datasets.escape_velocity(), bias=True)
    assert w_mass == pytest.approx(0.5, abs=0.01) and w_radius == pytest.approx(-0.5, abs=0.01)


@pytest.mark.parametrize(
    "build, kwargs, words",
    [
        (datasets.classic, {"m": 1}, "m must be a whole number from 2"),
        (datasets.sine_poly, {"degree": 0}, "degree must be a whole number from 1 to 9"),
        (datasets.sine_poly, {"standardize": "yes"}, "standardize must be True or False"),
        (datasets.correlated, {"rho": 1.0}, "rho must be a number from -0.999 to 0.999"),
        (datasets.blobs, {"spread": 0.0}, "spread must be a number"),
        (datasets.moons, {"seed": -1}, "seed must be a whole number"),
    ],
)
def test_bad_preset_arguments_are_explained(build, kwargs, words):
    with pytest.raises(ValueError, match=words):
        build(**kwargs)


# --- Every number in a preset's description is measured here -----------------------------------


def fewest_misclassified(X: np.ndarray, y: np.ndarray) -> int:
    """The fewest points any straight line misclassifies, exactly (2-D points in general position).

    A best line can be moved until it passes through two of the points without changing how it
    classifies the others, and a line through two points can be nudged to put each of them on either
    side; so the answer is the fewest errors among the other points, over every line through two
    points, either way round.
    """
    ones, best = y == 1.0, len(y)
    for i in range(len(y) - 1):
        d, rel = X[i + 1 :] - X[i], X - X[i]
        # One row per line through i and a later j.
        side = d[:, :1] * rel[None, :, 1] - d[:, 1:] * rel[None, :, 0]
        above, below = side > 0, side < 0
        errors = np.minimum(
            (above & ~ones).sum(1) + (below & ones).sum(1),
            (below & ~ones).sum(1) + (above & ones).sum(1),
        )
        best = min(best, int(errors.min()))
    return best


def test_fewest_misclassified_is_exact_on_small_cases():
    X = np.array([[0.0, 0.0], [1.0, 0.1], [0.2, 1.0], [1.1, 1.2]])
    assert fewest_misclassified(X, np.array([0.0, 0.0, 1.0, 1.0])) == 0  # y < 0.5 splits them
    # XOR: no line gets all four.
    assert fewest_misclassified(X, np.array([0.0, 1.0, 1.0, 0.0])) == 1


def test_blobs_overlap_as_their_description_says():
    preset = PRESETS["blobs"]
    data = preset.make(0)
    assert "a straight line separates them" not in preset.about
    assert "3 apart and each of standard deviation 1" in preset.about
    fewest = fewest_misclassified(data.X, data.y)
    assert f"the best line still misclassifies {fewest} of the {data.m} points" in (preset.about)
    for seed in range(1, 5):  # no straight line separates them with other seeds either
        other = preset.make(seed)
        assert fewest_misclassified(other.X, other.y) > 0
    # In the long run: a point lies beyond the midline x1 + x2 = 0 with probability
    # Phi(-distance / (2 spread)).
    share = 0.5 * math.erfc(3.0 / 2 / math.sqrt(2))
    assert f"in the long run {share:.1%} of the points lie beyond the midline" in preset.about
    many = datasets.blobs(m=200_000, seed=0)
    assert np.mean((many.X.sum(axis=1) > 0) != (many.y == 1.0)) == pytest.approx(share, abs=0.003)


def test_moons_description_numbers():
    preset = PRESETS["moons"]
    data = preset.make(0)
    assert (
        f"the best one misclassifies {fewest_misclassified(data.X, data.y)} of the {data.m} points"
        in preset.about
    )
    cfg = preset.config(data)
    assert (cfg.hidden, cfg.activation, cfg.iterations) == (16, "tanh", 2000)
    assert "16 tanh units trained for 2,000 steps, classifies all 200 correctly" in preset.about
    # The hand loop alone (its agreement with torch is test_both_loops_agree_on_every_preset's):
    # torch's BCEWithLogitsLoss costs milliseconds a call on a busy machine, numpy microseconds.
    manual = lockstep.loops(data, cfg)[0]
    for _ in range(cfg.iterations):
        weights = next(manual)[1]
    W1, b1, W2, b2 = cfg.layout(data.n).views(weights)
    logits = np.tanh(data.X @ W1.T + b1) @ W2 + b2[0]
    assert np.all((logits > 0) == (data.y == 1.0))


def test_classic_description():
    preset = PRESETS["classic"]
    data = preset.make(0)
    assert data.X.min() >= 0 and data.X.max() <= 10
    assert data.true_weights == (3.0, -2.0, 0.0)
    assert (
        "lr 1e-4, 50,000 full-batch steps, no bias, zero initial weights and the half_mse loss"
        in preset.about
    )
    cfg = preset.config(data)
    assert (cfg.lr, cfg.batch_size, cfg.iterations, cfg.bias, cfg.init, cfg.loss) == (
        1e-4,
        50,
        50_000,
        False,
        "zeros",
        "half_mse",
    )
    # "the run ends at the least-squares weights":
    # test_classic_preset_has_the_classic_settings_and_converges_...


def test_linear_description_is_the_apps_default_data():
    from pages.parts.labels import DEFAULTS

    preset = PRESETS["linear"]
    for seed in (0, 5):
        default = datasets.linear(
            m=DEFAULTS["samples"], n=DEFAULTS["n_features"], noise=DEFAULTS["noise"], seed=seed
        )
        np.testing.assert_array_equal(preset.make(seed).X, default.X)
        np.testing.assert_array_equal(preset.make(seed).y, default.y)
    assert (DEFAULTS["samples"], DEFAULTS["n_features"], DEFAULTS["noise"]) == (200, 3, 0.1)
    cfg = preset.config()
    assert (
        f"lr {cfg.lr:g} and {cfg.iterations:,} steps in batches of {cfg.batch_size}" in preset.about
    )
    assert "the default run" not in preset.about  # the default run has lr 0.05 and 500 steps


def test_sine_poly_descriptions():
    raw, scaled = PRESETS["sine_poly"], PRESETS["sine_poly_standardized"]
    data = raw.make(0)
    x, x3 = data.X[:, 0], data.X[:, 2]
    assert x.max() < 6.3 and round(x3.max(), -1) == 250 and round(x3.max() / x.max(), -1) == 40
    assert "x³ reaches about 250 while x stays below 6.3, 40 times less" in raw.about
    cfg = raw.config(data)
    limit = 2 / hessian_eigenvalues(data, cfg).max()
    assert f"stable only for lr below {limit:.1g} (this preset takes {cfg.lr:.0e})" in raw.about
    loss = lib.run(data, cfg).torch.loss
    w = lib.least_squares(data, bias=True)
    best = np.mean((data.with_ones() @ w - data.y) ** 2)
    assert (
        f"falls only from {loss[0]:.2g} to {loss[-1]:.2g}, where least squares reaches {best:.2g}"
        in raw.about
    )

    sdata = scaled.make(0)
    scfg = scaled.config(sdata)
    slimit = 2 / hessian_eigenvalues(sdata, scfg).max()
    assert f"lr up to {slimit:.2g} is stable" in scaled.about and slimit / limit > 4000
    assert f"over 4,000 times more than unscaled, and this preset's lr {scfg.lr:g}" in scaled.about
    assert f"down to {lib.run(sdata, scfg).torch.loss[-1]:.2g} in 5,000 steps" in scaled.about
    assert scfg.iterations == cfg.iterations == 5000


def test_correlated_description():
    preset = PRESETS["correlated"]
    data = preset.make(0)
    cfg = preset.config(data)
    assert round(np.corrcoef(data.X.T)[0, 1], 2) == 0.95 and "correlation 0.95" in preset.about
    low, high = hessian_eigenvalues(data, cfg)
    # Full-batch GD multiplies the error by these.
    across, along = (
        1 - cfg.lr * high,
        1 - cfg.lr * low,
    )
    assert across < 0 < along  # across the valley the sign flips every step
    assert f"At lr {cfg.lr:g}" in preset.about
    assert f"shrinks only to {abs(across):.2f} of itself" in preset.about
    assert f"({along:.3f} of itself per step" in preset.about


def test_planet_descriptions():
    kepler = PRESETS["kepler"]
    slope, bias = lib.run(kepler.make(), kepler.config(kepler.make())).torch.weights[-1]
    assert abs(bias) < 0.005
    assert (
        f"The run's slope comes out as {slope:.2f} and its bias as {abs(bias):.2f}" in kepler.about
    )

    escape = PRESETS["escape_velocity"]
    data = escape.make()
    cfg = escape.config(data)
    assert dict(cfg.optimizer_kwargs) == {"momentum": 0.98} and cfg.iterations == 3000
    w_mass, w_radius, _ = lib.run(data, cfg).torch.weights[-1]
    assert f"the weights come out as {w_mass:.2f} and {w_radius:.2f} in 3,000 steps" in escape.about
    assert f"correlation is {np.corrcoef(data.X.T)[0, 1]:.2f}" in escape.about
    plain_mass, plain_radius, _ = lib.run(data, cfg.replace(optimizer_kwargs={})).torch.weights[-1]
    assert (
        f"the weights are still {plain_mass:.2f} and {plain_radius:.2f} after the 3,000 steps"
        in escape.about
    )
