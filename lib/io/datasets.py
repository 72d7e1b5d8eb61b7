"""Data sets: synthetic ones, small real ones shipped in lib/io/data/, and PRESETS.

Each synthetic one is seeded: the same arguments give the same numbers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..engine.config import Config
from ..engine.data import MAX_SAMPLES, Dataset
from . import scaling
from .csv_data import read_csv


def _check(name: str, value, low, high, kind=int) -> None:
    ok = (
        isinstance(value, (int, np.integer))
        if kind is int
        else isinstance(value, (int, float, np.integer, np.floating))
    )
    if isinstance(value, bool) or not ok or not (low <= value <= high) or value != value:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name} must be {what} from {low:,} to {high:,}; got {value!r}")


def linear(m: int = 200, n: int = 3, noise: float = 0.1, seed: int = 0) -> Dataset:
    """y = X @ w_true + b_true + noise * N(0, 1), with X ~ N(0, 1) and w_true, b_true ~ U(-2, 2)."""
    _check("m", m, 1, 1_000_000)
    _check("n", n, 1, 1_000)
    _check("noise", noise, 0.0, 1e6, float)
    _check("seed", seed, 0, 2**32 - 1)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    w_true = rng.uniform(-2.0, 2.0, size=n)
    b_true = rng.uniform(-2.0, 2.0)
    y = X @ w_true + b_true + noise * rng.normal(size=m)
    return Dataset(
        X,
        y,
        name=f"linear (m={m}, n={n}, noise={noise:g}, seed={seed})",
        true_weights=(*w_true, b_true),
    )


# --- Presets for a learner's first hour --------------------------------------------------------


def classic(m: int = 50, noise: float = 0.5, seed: int = 0) -> Dataset:
    """y = 3 x1 - 2 x2 + noise * N(0, 1), x ~ U(0, 10), no intercept: for the classic settings.

    The classic hand-written loop (lr 1e-4, 50,000 full-batch steps, 1/2 mean squared error, no
    bias, zero init) needs inputs of size about ten: its Hessian X^T X / m then has eigenvalues
    of about 9 and 70, so lr * lambda stays far below 2 (stable) and the slow direction shrinks
    by about exp(-1e-4 * 9 * 50,000) = exp(-45): the run ends at the least-squares answer.
    """
    _check("m", m, 2, 1_000_000)
    _check("noise", noise, 0.0, 1e6, float)
    _check("seed", seed, 0, 2**32 - 1)
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 10.0, size=(m, 2))
    w_true = np.array([3.0, -2.0])
    y = X @ w_true + noise * rng.normal(size=m)
    return Dataset(
        X,
        y,
        name=f"classic (y = 3 x1 - 2 x2, m={m}, noise={noise:g}, seed={seed})",
        true_weights=(*w_true, 0.0),
    )


def sine_poly(
    m: int = 100, degree: int = 3, noise: float = 0.1, standardize: bool = False, seed: int = 0
) -> Dataset:
    """y = sin(x) + noise * N(0, 1), x ~ U(0, 2 pi), with features x, x^2, .., x^degree.

    Unscaled, x^3 reaches about 250 while x stays below 6.3, so the largest curvature of the
    squared loss is over 100,000 times the smallest (seed 0, degree 3): only a tiny learning rate
    is stable and the small directions barely move.
    standardize=True rescales each feature to mean 0 and standard deviation 1 (see `standardize`).
    """
    _check("m", m, 2, 1_000_000)
    _check("degree", degree, 1, 9)
    _check("noise", noise, 0.0, 1e6, float)
    _check("seed", seed, 0, 2**32 - 1)
    if not isinstance(standardize, (bool, np.bool_)):
        raise ValueError(f"standardize must be True or False; got {standardize!r}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 2 * np.pi, size=m)
    y = np.sin(x) + noise * rng.normal(size=m)
    X = np.column_stack([x**k for k in range(1, degree + 1)])
    names = tuple("x" if k == 1 else f"x^{k}" for k in range(1, degree + 1))
    label = "standardised" if standardize else "unscaled"
    data = Dataset(
        X,
        y,
        feature_names=names,
        name=f"sine + x..x^{degree} {label} (m={m}, noise={noise:g}, seed={seed})",
    )
    return standardize_dataset(data)[0] if standardize else data


def correlated(m: int = 200, rho: float = 0.95, noise: float = 0.1, seed: int = 0) -> Dataset:
    """y = 2 x1 + 0.5 x2 + noise * N(0, 1), where x1, x2 ~ N(0, 1) have correlation rho.

    The loss is a long thin valley along x1 - x2 (curvature ratio about (1 + rho) / (1 - rho) = 39),
    so a learning rate large enough to cross the valley quickly bounces from wall to wall: zig-zag.
    """
    _check("m", m, 2, 1_000_000)
    _check("rho", rho, -0.999, 0.999, float)
    _check("noise", noise, 0.0, 1e6, float)
    _check("seed", seed, 0, 2**32 - 1)
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(m, 2))
    X = np.column_stack([z[:, 0], rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]])
    w_true = np.array([2.0, 0.5])
    y = X @ w_true + noise * rng.normal(size=m)
    return Dataset(
        X,
        y,
        name=f"correlated (rho={rho:g}, m={m}, noise={noise:g}, seed={seed})",
        true_weights=(*w_true, 0.0),
    )


def blobs(m: int = 200, distance: float = 3.0, spread: float = 1.0, seed: int = 0) -> Dataset:
    """Two round Gaussian clouds in 2-D, labelled 0 and 1 (half each), shuffled.

    Their centres are `distance` apart, and each has standard deviation `spread`.

    They overlap: the best line for the clouds (the midline between the centres) puts a fraction
    Phi(-distance / (2 spread)) of the points on the wrong side, 6.7% for the defaults.
    """
    _check("m", m, 2, 1_000_000)
    _check("distance", distance, 0.0, 1e3, float)
    _check("spread", spread, 1e-6, 1e3, float)
    _check("seed", seed, 0, 2**32 - 1)
    rng = np.random.default_rng(seed)
    y = (np.arange(m) >= m // 2).astype(np.float64)
    # Class 0 sits at -c and class 1 at +c, with |2c| = distance, on the diagonal.
    c = np.array([1.0, 1.0]) * distance / (2 * np.sqrt(2))
    X = np.where(y[:, None] == 1.0, c, -c) + spread * rng.normal(size=(m, 2))
    order = rng.permutation(m)
    return Dataset(
        X[order],
        y[order],
        name=f"blobs (m={m}, distance={distance:g}, spread={spread:g}, seed={seed})",
    )


def moons(m: int = 200, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Two interleaved half circles labelled 0 (upper) and 1 (lower).

    Each arc reaches into the other's hollow.
    """
    _check("m", m, 2, 1_000_000)
    _check("noise", noise, 0.0, 1e3, float)
    _check("seed", seed, 0, 2**32 - 1)
    rng = np.random.default_rng(seed)
    y = (np.arange(m) >= m // 2).astype(np.float64)
    t = rng.uniform(0.0, np.pi, size=m)
    upper = np.column_stack([np.cos(t), np.sin(t)])
    lower = np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)])
    X = np.where(y[:, None] == 1.0, lower, upper) + noise * rng.normal(size=(m, 2))
    order = rng.permutation(m)
    return Dataset(X[order], y[order], name=f"moons (m={m}, noise={noise:g}, seed={seed})")


# --- Small real data sets, shipped inside the package in lib/io/data/ ----------------------------
# Inside the package, so that an installed lib finds them (pyproject.toml lists them as package
# data); their sources, licences and citations are in docs/DATA.md.

DATA_DIR = Path(__file__).resolve().parent / "data"
PLANETS_CSV = DATA_DIR / "planets.csv"
DIABETES_CSV = DATA_DIR / "diabetes.csv"
BREAST_CANCER_CSV = DATA_DIR / "breast_cancer.csv"


def data_file(name: str) -> Path:
    """The path of a CSV file shipped with lib ("planets.csv", "diabetes.csv", ...)."""
    path = DATA_DIR / str(name)
    if path.parent != DATA_DIR or not path.is_file():
        shipped = sorted(p.name for p in DATA_DIR.glob("*.csv"))
        raise ValueError(f"lib ships no data file named {name!r}; it ships {', '.join(shipped)}")
    return path


def planets_frame() -> pd.DataFrame:
    """The shipped planets table (eight planets and Pluto; sources in docs/DATA.md) as a CSV."""
    return read_csv(PLANETS_CSV.read_bytes())


def diabetes_frame() -> pd.DataFrame:
    """The diabetes table of Efron et al. (2004): 442 patients, ten baseline measurements, and
    "progression", a measure of the disease one year later (docs/DATA.md)."""
    return read_csv(DIABETES_CSV.read_bytes())


def breast_cancer_frame() -> pd.DataFrame:
    """The Wisconsin Diagnostic Breast Cancer table: 569 tumours, 30 measurements of their cell
    nuclei, and "malignant" (1) or benign (0) (docs/DATA.md)."""
    return read_csv(BREAST_CANCER_CSV.read_bytes())


def _standardised(frame: pd.DataFrame, target: str, name: str) -> Dataset:
    """Every column but target as a standardised feature, against target."""
    names = tuple(c for c in frame.columns if c != target)
    data = Dataset(
        frame[list(names)].to_numpy(dtype=np.float64),
        frame[target].to_numpy(dtype=np.float64),
        feature_names=names,
        name=name,
    )
    return standardize_dataset(data)[0]


def diabetes() -> Dataset:
    """Disease progression one year on against ten baseline measurements, each standardised."""
    return _standardised(
        diabetes_frame(),
        "progression",
        "diabetes: progression after one year ~ 10 baseline measurements (standardised)",
    )


def breast_cancer() -> Dataset:
    """Malignant (1) or benign (0) against the 30 nucleus measurements, each standardised."""
    return _standardised(
        breast_cancer_frame(),
        "malignant",
        "breast cancer (Wisconsin diagnostic): malignant ~ 30 measurements (standardised)",
    )


def kepler() -> Dataset:
    """Kepler's third law on real planets: log10 period (years) against log10 semi-major axis (au).

    T^2 is proportional to a^3, so the fit is log10 T = 1.5 log10 a + b with b close to 0.
    """
    frame = planets_frame()
    X = np.log10(frame[["semi_major_axis_au"]].to_numpy())
    y = np.log10(frame["orbital_period_years"].to_numpy())
    return Dataset(
        X,
        y,
        feature_names=("log10 a (au)",),
        name="planets: Kepler's third law (log10 period ~ log10 distance)",
    )


def escape_velocity() -> Dataset:
    """Escape velocity of real planets: log10 v against log10 mass and log10 radius.

    v = sqrt(2 G M / R), so the fit is log10 v = 0.5 log10 M - 0.5 log10 R + b.
    """
    frame = planets_frame()
    X = np.log10(frame[["mass_1e24_kg", "mean_radius_km"]].to_numpy())
    y = np.log10(frame["escape_velocity_km_s"].to_numpy())
    return Dataset(
        X,
        y,
        feature_names=("log10 mass (1e24 kg)", "log10 radius (km)"),
        name="planets: escape velocity (log10 v ~ log10 mass + log10 radius)",
    )


# --- Standardisation ---------------------------------------------------------------------------
# It lives in lib/io/scaling.py, shared with the CSV upload; the names stay here too, as before.

Scaling = scaling.Scaling
standardize = scaling.standardize
standardize_dataset = scaling.standardize_dataset


# --- The registry the pages list ---------------------------------------------------------------

REGRESSION, CLASSIFICATION = "regression", "classification"
# A batch_size at least m: every step sees every sample (Preset.config(data) makes it m).
FULL_BATCH = MAX_SAMPLES


@dataclass(frozen=True)
class Preset:
    """A named data set with a Config that suits it; `suggested` holds lib.Config keywords."""

    key: str
    title: str
    build: Callable[..., Dataset]
    suggested: Mapping[str, Any]
    task: str = REGRESSION  # "regression" (targets any number) | "classification" (targets 0 and 1)
    about: str = ""  # one or two sentences for the page
    real: bool = False  # True: measurements of the real world (a shipped file), not generated

    @property
    def seeded(self) -> bool:
        """True when the data are random and make(seed) draws them; False for the real data sets."""
        return "seed" in inspect.signature(self.build).parameters

    def make(self, seed: int = 0) -> Dataset:
        """The data set with its default size; seed is passed on when the builder is random."""
        return self.build(seed=seed) if self.seeded else self.build()

    def config(self, data: Dataset | None = None, **changes) -> Config:
        """The suggested Config with any fields changed.

        Given the data, a full batch becomes batch_size=m.
        """
        values = {**self.suggested, **changes}
        if data is not None and values.get("batch_size", 0) > data.m:
            values["batch_size"] = data.m
        return Config(**values)


def _preset(
    key: str,
    title: str,
    build,
    task: str = REGRESSION,
    about: str = "",
    real: bool = False,
    **suggested,
) -> Preset:
    return Preset(key, title, build, MappingProxyType(suggested), task, about, real)


def _sine_poly_standardized(
    m: int = 100, degree: int = 3, noise: float = 0.1, seed: int = 0
) -> Dataset:
    """sine_poly with standardize=True."""
    return sine_poly(m=m, degree=degree, noise=noise, standardize=True, seed=seed)


_BCE = MappingProxyType({"model": "logistic", "loss": "bce"})

PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        p.key: p
        for p in (
            _preset(
                "classic",
                "Classic hand-written loop",
                classic,
                about="The classic hand-written loop's settings: lr 1e-4, 50,000 full-batch "
                "steps, no bias, zero initial weights and the half_mse loss (½ × the mean of "
                "squared errors). The inputs lie between 0 and 10 and y = 3·x1 − 2·x2 + noise has "
                "no intercept; the run ends at the least-squares weights.",
                lr=1e-4,
                batch_size=FULL_BATCH,
                iterations=50_000,
                loss="half_mse",
                bias=False,
                init="zeros",
            ),
            _preset(
                "linear",
                "Linear example",
                linear,
                about="The app's default synthetic data (200 samples of three random features, a "
                "bias and noise of standard deviation 0.1), here with lr 0.01 and 1,000 steps in "
                "batches of 32.",
                lr=0.01,
                batch_size=32,
                iterations=1000,
                loss="mse",
            ),
            _preset(
                "sine_poly",
                "Sine with polynomial features (unscaled)",
                sine_poly,
                about="x, x², x³ for x from 0 to 2π: x³ reaches about 250 while x stays below "
                "6.3, 40 times less. Full-batch gradient descent is stable only for lr below "
                "8e-05 (this preset takes 5e-05), and in 5,000 steps the mean squared error falls "
                "only from 0.49 to 0.29, where least squares reaches 0.015 (seed 0). Compare with "
                "the standardised version.",
                lr=5e-5,
                batch_size=FULL_BATCH,
                iterations=5000,
                loss="mse",
            ),
            _preset(
                "sine_poly_standardized",
                "Sine with polynomial features (standardised)",
                _sine_poly_standardized,
                about="The same features rescaled to mean 0 and standard deviation 1: lr up to "
                "0.34 is stable, over 4,000 times more than unscaled, and this preset's lr 0.2 "
                "brings the mean squared error down to 0.018 in 5,000 steps (seed 0).",
                lr=0.2,
                batch_size=FULL_BATCH,
                iterations=5000,
                loss="mse",
            ),
            _preset(
                "correlated",
                "Correlated features (zig-zag)",
                correlated,
                about="Two features with correlation 0.95 make the loss a narrow valley. At lr "
                "0.45, full-batch gradient descent bounces across it (the error across the valley "
                "changes sign every step and shrinks only to 0.73 of itself) while creeping along "
                "it (0.955 of itself per step; seed 0).",
                lr=0.45,
                batch_size=FULL_BATCH,
                iterations=200,
                loss="mse",
                bias=False,
            ),
            _preset(
                "kepler",
                "Planets: Kepler's third law (real data)",
                kepler,
                real=True,
                about="Eight planets and Pluto: log10 of the orbital period against log10 of the "
                "semi-major axis (the mean distance from the Sun). The run's slope comes out as "
                "1.50 and its bias as 0.00: T² is proportional to a³.",
                lr=0.1,
                batch_size=FULL_BATCH,
                iterations=1000,
                loss="mse",
            ),
            _preset(
                "escape_velocity",
                "Planets: escape velocity (real data)",
                escape_velocity,
                real=True,
                about="log10 escape velocity against log10 mass and log10 radius: with momentum "
                "0.98 the weights come out as 0.50 and -0.50 in 3,000 steps, as v = sqrt(2GM/R) "
                "says. Heavier planets are bigger (the two inputs' correlation is 0.99), so plain "
                "gradient descent creeps: with momentum 0 the weights are still 0.28 and 0.10 "
                "after the 3,000 steps.",
                lr=0.05,
                batch_size=FULL_BATCH,
                iterations=3000,
                loss="mse",
                optimizer="sgd",
                optimizer_kwargs=MappingProxyType({"momentum": 0.98}),
            ),
            _preset(
                "diabetes",
                "Diabetes progression (real data)",
                diabetes,
                real=True,
                about="442 diabetes patients: ten baseline measurements (age, sex, body mass "
                "index, blood pressure and six blood serum values), each standardised, against "
                "a measure of the disease's progression one year later. Full-batch gradient "
                "descent at lr 0.2 brings the mean squared error from 29,074 to 2,860 in 1,000 "
                "steps, the least-squares value: the fit explains 52% of the target's variance "
                "(5,930). The bias comes out as 152.1, the mean progression, because every "
                "standardised feature has mean 0.",
                lr=0.2,
                batch_size=FULL_BATCH,
                iterations=1000,
                loss="mse",
            ),
            _preset(
                "blobs",
                "Two blobs (classification)",
                blobs,
                task=CLASSIFICATION,
                about="Two round Gaussian clouds labelled 0 and 1, their centres 3 apart and each "
                "of standard deviation 1: they overlap, so no straight line separates them. With "
                "seed 0 the best line still misclassifies 15 of the 200 points; in the long run "
                "6.7% of the points lie beyond the midline, on the other class's side.",
                lr=0.1,
                batch_size=32,
                iterations=1000,
                **_BCE,
            ),
            _preset(
                "moons",
                "Two moons (classification)",
                moons,
                task=CLASSIFICATION,
                about="Two interleaved half circles labelled 0 and 1: no straight line separates "
                "them (with seed 0 the best one misclassifies 20 of the 200 points), but the "
                "suggested network, 16 tanh units trained for 2,000 steps, classifies all 200 "
                "correctly.",
                lr=0.5,
                batch_size=32,
                iterations=2000,
                loss="bce",
                model="mlp",
                hidden=16,
                activation="tanh",
                init="normal",  # zero init would give every hidden unit the same weights forever
            ),
            _preset(
                "breast_cancer",
                "Breast cancer diagnosis (real data, classification)",
                breast_cancer,
                task=CLASSIFICATION,
                real=True,
                about="569 tumours, 212 of them malignant: 30 measurements of the cell nuclei "
                "in a digitised image of a fine-needle aspirate (for each of ten features its "
                "mean, its standard error and the mean of its three largest values), each "
                "standardised. Logistic regression, full batch at lr 0.5, "
                "brings the bce loss from 0.693 (ln 2: every probability is 0.5 at zero weights) "
                "to 0.053 in 500 steps, and then misclassifies 7 of the 569 tumours it was "
                "trained on.",
                lr=0.5,
                batch_size=FULL_BATCH,
                iterations=500,
                **_BCE,
            ),
        )
    }
)
