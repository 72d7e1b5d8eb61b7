"""Standardisation: features rescaled to mean 0 and std 1, with the means and stds kept to show.

Shared by the data sets (sine_poly's standardised version) and the CSV upload (prepare's
standardize=True); both import it from here, so neither needs the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engine.data import Dataset


@dataclass(frozen=True)
class Scaling:
    """The per-feature means and standard deviations used to standardise, so pages can show them."""

    feature_names: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]  # population standard deviation (ddof=0), as sklearn's StandardScaler

    def frame(self) -> pd.DataFrame:
        """One row per feature: feature, mean, std."""
        return pd.DataFrame({"feature": self.feature_names, "mean": self.means, "std": self.stds})


def standardize(X: np.ndarray, feature_names: Sequence[str]) -> tuple[np.ndarray, Scaling]:
    """(X - mean) / std per column; a constant column cannot be standardised and is refused."""
    X = np.asarray(X, dtype=np.float64)
    means = X.mean(axis=0)
    stds = X.std(axis=0)
    constant = [
        name
        for name, s, mu in zip(feature_names, stds, means, strict=True)
        if s <= 1e-12 * max(1.0, abs(mu))
    ]
    if constant:
        raise ValueError(
            f"cannot standardise constant feature{'s' if len(constant) > 1 else ''} "
            f"{', '.join(map(repr, constant))} (standard deviation 0); leave them out"
        )
    scaling = Scaling(tuple(feature_names), tuple(map(float, means)), tuple(map(float, stds)))
    return (X - means) / stds, scaling


def standardize_dataset(data: Dataset) -> tuple[Dataset, Scaling]:
    """A copy of data with standardised features (targets unchanged), and the Scaling used."""
    X, scaling = standardize(data.X, data.feature_names)
    return Dataset(X, data.y, feature_names=data.feature_names, name=data.name), scaling
