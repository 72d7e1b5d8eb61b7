"""Dataset, the shared batch order, and the shared initial weights."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from .config import Config

MAX_SAMPLES = 1_000_000
MAX_FEATURES = 1_000


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs X of shape (m, n) and targets y of shape (m,), float64, finite, read-only."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...] = ()
    name: str = "data"
    true_weights: tuple[float, ...] | None = field(default=None, repr=False)  # [w.., b] if known

    def __post_init__(self) -> None:
        X, y = _checked_arrays(self.X, self.y)
        names = _checked_names(self.feature_names, X.shape[1])
        X.flags.writeable = False
        y.flags.writeable = False
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "feature_names", names)
        if self.true_weights is not None:
            try:
                true_weights = tuple(float(v) for v in self.true_weights)
            except (TypeError, ValueError):
                raise ValueError(
                    f"true_weights must be a list of numbers; got {self.true_weights!r}"
                ) from None
            object.__setattr__(self, "true_weights", true_weights)

    @property
    def m(self) -> int:
        """Number of samples."""
        return self.X.shape[0]

    @property
    def n(self) -> int:
        """Number of features."""
        return self.X.shape[1]

    def with_ones(self) -> np.ndarray:
        """X with a column of ones appended: the bias is a weight whose input is always 1."""
        return np.hstack([self.X, np.ones((self.m, 1))])


def _checked_arrays(X, y) -> tuple[np.ndarray, np.ndarray]:
    """X (m, n) and y (m,) as contiguous float64 copies, or a ValueError saying what is wrong."""
    X = _as_float_array("X", X)
    y = _as_float_array("y", y)
    if X.ndim == 1:
        raise ValueError(
            f"X must be 2-D, shape (samples, features); got 1-D of length {len(X)} "
            "(for one feature use X.reshape(-1, 1))"
        )
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, shape (samples, features); got shape {X.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, shape (samples,); got shape {y.shape}")
    _check_shape(X, y)
    for label, arr in (("X", X), ("y", y)):
        bad = ~np.isfinite(arr)
        if bad.any():
            where = np.argwhere(bad)[0]
            kind = "NaN" if np.isnan(arr[tuple(where)]) else "inf"
            raise ValueError(
                f"{label} contains {kind} (first at index {tuple(int(i) for i in where)}); "
                "remove or fill non-finite values first"
            )
    return np.ascontiguousarray(X), np.ascontiguousarray(y)


def _check_shape(X: np.ndarray, y: np.ndarray) -> None:
    m, n = X.shape
    if m < 1:
        raise ValueError("X must have at least one sample (row); got 0")
    if n < 1:
        raise ValueError("X must have at least one feature (column); got 0")
    if len(y) != m:
        raise ValueError(
            f"X and y must have the same number of samples; got {m} rows in X and {len(y)} in y"
        )
    if m > MAX_SAMPLES or n > MAX_FEATURES:
        raise ValueError(
            f"data is too large: at most {MAX_SAMPLES:,} samples and {MAX_FEATURES:,} "
            f"features; got {m:,} x {n:,}"
        )


def _checked_names(feature_names, n: int) -> tuple[str, ...]:
    if isinstance(feature_names, str):
        raise ValueError(
            "feature_names must be a list of names, one per feature; "
            f"got the string {feature_names!r}"
        )
    names = tuple(str(s) for s in feature_names) or tuple(f"x{j + 1}" for j in range(n))
    if len(names) != n:
        raise ValueError(
            f"feature_names must name each of the {n} features; got {len(names)} names"
        )
    return names


def _as_float_array(label: str, values) -> np.ndarray:
    try:
        complex_values = np.iscomplexobj(values)
    except ValueError as err:  # a ragged list cannot even be looked at as an array
        raise ValueError(
            f"{label} must contain only numbers, in rows of equal length ({err})"
        ) from None
    if complex_values:
        raise ValueError(f"{label} must contain real numbers; got complex numbers")
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(np.float64, copy=True)
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{label} must contain only numbers ({err})") from None
    return arr


def weight_names(data: Dataset, cfg: Config) -> list[str]:
    """Names of all the weights, in their documented order.

    linear and logistic: [w_1 .. w_n, bias]; mlp: torch's parameter order,
    [W1 row by row, b1, W2, b2].
    """
    return cfg.layout(data.n).names(data.feature_names)


def rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators from one seed: (initial weights, batch order)."""
    init_seq, batch_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(init_seq), np.random.default_rng(batch_seq)


def split_rows(m: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows a run trains on and the rows it holds out for validation, each sorted.

    round(val_fraction * m) rows (at least one when val_fraction > 0) are drawn without
    replacement by a generator of their own, the seed's third: the batch order and the init do not
    move when validation is switched on.
    """
    if val_fraction == 0:
        return np.arange(m), np.arange(0)
    n_val = max(1, round(val_fraction * m))
    split_seq = np.random.SeedSequence(seed).spawn(3)[2]  # children 0 and 1 are rngs'
    held_out = np.sort(np.random.default_rng(split_seq).choice(m, size=n_val, replace=False))
    return np.setdiff1d(np.arange(m), held_out), held_out


def initial_weights(data: Dataset, cfg: Config) -> np.ndarray:
    """The one initial weight vector both loops start from, laid out as weight_names:
    [w_1 .. w_n, bias], or [W1 row by row, b1, W2, b2] for the mlp (no biases without bias)."""
    n_params = cfg.n_params(data.n)
    if isinstance(cfg.init, str):
        if cfg.init == "zeros":
            return np.zeros(n_params)
        # "normal": every weight and bias of a layer ~ N(0, 1/fan_in) (standard deviation
        # 1/sqrt(fan_in)), seeded and in numpy. nn.Linear's own init is U(-1/sqrt(fan_in),
        # 1/sqrt(fan_in)), of variance 1/(3 fan_in): these start sqrt(3) times wider.
        rng = rngs(cfg.seed)[0]
        if cfg.model == "mlp":
            first = cfg.hidden * (data.n + int(cfg.bias))
            return np.concatenate(
                [
                    rng.normal(0.0, 1.0 / np.sqrt(data.n), size=first),
                    rng.normal(0.0, 1.0 / np.sqrt(cfg.hidden), size=n_params - first),
                ]
            )
        return rng.normal(0.0, 1.0 / np.sqrt(data.n), size=n_params)
    if len(cfg.init) != n_params:
        layout = cfg.layout(data.n).description()
        raise ValueError(
            f"init must have {n_params} numbers for {data.n} features "
            f"{'with' if cfg.bias else 'without'} bias, laid out {layout}; "
            f"got {len(cfg.init)}"
        )
    return np.array(cfg.init, dtype=np.float64)


def epoch_batches(
    rng: np.random.Generator, m: int, batch_size: int, drop_last: bool = False
) -> list[np.ndarray | slice]:
    """One epoch's batches: full batch in natural order, or slices of one seeded permutation.

    As DataLoader(shuffle=True) does, the last short batch is kept unless drop_last.
    """
    if batch_size >= m:
        return [slice(None)] if batch_size == m or not drop_last else []
    order = rng.permutation(m)
    stop = m - m % batch_size if drop_last else m
    return [order[start : start + batch_size] for start in range(0, stop, batch_size)]


def batch_indices(
    m: int, batch_size: int, seed: int, drop_last: bool = False
) -> Iterator[np.ndarray | slice]:
    """Endless batch order, epoch after epoch (epoch_batches with the seed's batch generator)."""
    rng = rngs(seed)[1]
    while True:
        batches = epoch_batches(rng, m, batch_size, drop_last)
        if drop_last and not batches:  # without drop_last an epoch always has a batch
            raise ValueError(
                f"drop_last with batch_size {batch_size:,} > {m:,} rows leaves no batch"
            )
        yield from batches


def loader(
    inputs: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, drop_last: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The hand DataLoader: endless (inputs, labels) batches, an index permutation per epoch."""
    for idx in batch_indices(len(inputs), batch_size, seed, drop_last):
        yield inputs[idx], labels[idx]


class SharedOrder(torch.utils.data.Sampler):
    """The shared batch order as a DataLoader sampler that yields whole batches of indices.

    With batch_size=None the DataLoader indexes the TensorDataset once per batch with these
    indices: one indexing call makes a batch, where batch_size=b would fetch b samples one by one
    and stack them. Each pass over it is an epoch, drawn from the same generator as the hand loader.
    """

    def __init__(self, m: int, batch_size: int, seed: int, drop_last: bool = False) -> None:
        self.m, self.batch_size, self.drop_last = m, batch_size, drop_last
        self.rng = rngs(seed)[1]
        self.last: np.ndarray | slice | None = None  # the batch handed out last (for a page)

    def __iter__(self) -> Iterator[torch.Tensor | slice]:
        for idx in epoch_batches(self.rng, self.m, self.batch_size, self.drop_last):
            self.last = idx
            yield idx if isinstance(idx, slice) else torch.from_numpy(idx)

    def __len__(self) -> int:
        if self.batch_size >= self.m:
            return int(self.batch_size == self.m or not self.drop_last)
        return self.m // self.batch_size if self.drop_last else -(-self.m // self.batch_size)


def torch_loader(
    inputs: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    dtype: torch.dtype = torch.float64,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """A torch DataLoader over the same batches, epoch after epoch; labels shaped (batch, 1)."""
    # Shares the numpy memory when writable float64; read-only memory is copied (torch would warn).
    inputs, labels = (
        torch.as_tensor(a if a.flags.writeable else a.copy()).to(dtype) for a in (inputs, labels)
    )
    dataset = TensorDataset(inputs, labels.unsqueeze(1))
    order = SharedOrder(len(inputs), batch_size, seed, drop_last)
    loader = DataLoader(dataset, sampler=order, batch_size=None)
    if drop_last and not len(order):
        raise ValueError(
            f"drop_last with batch_size {batch_size:,} > {len(inputs):,} rows leaves no batch"
        )
    while True:  # every epoch
        yield from loader


def least_squares(data: Dataset, bias: bool) -> np.ndarray:
    """The closed-form minimiser of every loss convention here: lstsq on [X, 1] (or X)."""
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a lib.Dataset; got {type(data).__name__}")
    A = data.with_ones() if bias else data.X
    return np.linalg.lstsq(A, data.y, rcond=None)[0]
