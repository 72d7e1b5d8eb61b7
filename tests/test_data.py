"""Dataset checks, the shared batch order, the shared initial weights and the synthetic data."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lib
from lib import data as data_module


def epochs(m: int, batch_size: int, seed: int, count: int) -> list[list[np.ndarray]]:
    """The first `count` epochs of lib.batch_indices, each a list of index arrays over range(m)."""
    batches = lib.batch_indices(m, batch_size, seed)
    per_epoch = math.ceil(m / batch_size)
    everything = np.arange(m)
    return [[everything[next(batches)] for _ in range(per_epoch)] for _ in range(count)]


# Dataset validation ---------------------------------------------------------------------------


def test_valid_dataset_is_float64_read_only_and_named():
    X = [[1, 2], [3, 4], [5, 6]]
    data = lib.Dataset(X, [1, 2, 3])
    assert data.X.dtype == np.float64 and data.y.dtype == np.float64
    assert (data.m, data.n) == (3, 2)
    assert data.feature_names == ("x1", "x2")
    with pytest.raises(ValueError):
        data.X[0, 0] = 9.0  # read-only: both loops must see the very same numbers
    np.testing.assert_array_equal(data.with_ones(), [[1, 2, 1], [3, 4, 1], [5, 6, 1]])


def test_dataset_copies_its_input():
    X = np.ones((4, 2))
    data = lib.Dataset(X, np.zeros(4))
    X[0, 0] = 7.0
    assert data.X[0, 0] == 1.0


def test_column_y_is_accepted_as_flat():
    data = lib.Dataset(np.ones((5, 2)), np.arange(5.0).reshape(-1, 1))
    assert data.y.shape == (5,)


def test_one_dimensional_X_gets_a_reshape_hint():
    with pytest.raises(ValueError, match=r"^X must be 2-D") as caught:
        lib.Dataset(np.arange(5.0), np.arange(5.0))
    assert "reshape(-1, 1)" in str(caught.value)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.ones((2, 3, 4)), np.ones(2), r"^X must be 2-D.*\(2, 3, 4\)"),
        (np.ones(()), np.ones(1), r"^X must be 2-D"),
        (np.ones((4, 2)), np.ones((4, 2)), r"^y must be 1-D.*\(4, 2\)"),
        (np.ones((0, 3)), np.ones(0), r"^X must have at least one sample"),
        (np.ones((3, 0)), np.ones(3), r"^X must have at least one feature"),
        (
            np.ones((4, 2)),
            np.ones(5),
            r"^X and y must have the same number of samples; got 4 rows in X and 5 in y",
        ),
        ([["a", "b"], ["c", "d"]], [1, 2], r"^X must contain only numbers"),
        ([[1.0], [2.0]], ["one", "two"], r"^y must contain only numbers"),
        ([[1.0], [None]], [1, 2], r"^X contains NaN"),
        ([[1.0, 2.0], [3.0, 4.0]], [[1, 2], [3]], r"^y must contain only numbers"),
    ],
)
def test_bad_shapes_and_contents_are_refused(X, y, match):
    with pytest.raises(ValueError, match=match):
        lib.Dataset(X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["X", "y"])
def test_non_finite_values_are_refused_with_their_position(bad, where):
    X, y = np.ones((4, 3)), np.ones(4)
    if where == "X":
        X[2, 1] = bad
        position = "(2, 1)"
    else:
        y[3] = bad
        position = "(3,)"
    kind = "NaN" if np.isnan(bad) else "inf"
    with pytest.raises(ValueError, match=rf"^{where} contains {kind}") as caught:
        lib.Dataset(X, y)
    assert position in str(caught.value)


def test_feature_names_must_match_the_columns():
    with pytest.raises(ValueError, match=r"^feature_names must name each of the 2 features"):
        lib.Dataset(np.ones((3, 2)), np.ones(3), feature_names=("a",))


def test_weight_names_follow_the_layout():
    data = lib.Dataset(np.ones((3, 2)), np.ones(3), feature_names=("size", "x2"))
    assert lib.weight_names(data, lib.Config()) == ["w_1 (size)", "w_2", "bias"]
    assert lib.weight_names(data, lib.Config(bias=False)) == ["w_1 (size)", "w_2"]


# Synthetic data -------------------------------------------------------------------------------


def test_linear_is_seeded_and_matches_its_true_weights():
    a = lib.datasets.linear(m=50, n=4, noise=0.0, seed=3)
    b = lib.datasets.linear(m=50, n=4, noise=0.0, seed=3)
    c = lib.datasets.linear(m=50, n=4, noise=0.0, seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)
    assert (a.m, a.n) == (50, 4) and len(a.true_weights) == 5
    # Without noise, y is exactly X @ w_true + b_true.
    w = np.array(a.true_weights)
    np.testing.assert_allclose(a.with_ones() @ w, a.y, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"m": 0}, "m"),
        ({"n": 0}, "n"),
        ({"noise": -1.0}, "noise"),
        ({"noise": math.nan}, "noise"),
        ({"seed": -1}, "seed"),
    ],
)
def test_linear_refuses_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        lib.datasets.linear(**kwargs)


# Initial weights ------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_initial_weights_shapes_and_kinds(bias):
    data = lib.datasets.linear(m=20, n=3, seed=0)
    n_params = 3 + int(bias)
    zeros = lib.initial_weights(data, lib.Config(init="zeros", bias=bias))
    np.testing.assert_array_equal(zeros, np.zeros(n_params))
    normal = lib.initial_weights(data, lib.Config(init="normal", bias=bias, seed=5))
    assert normal.shape == (n_params,) and np.all(normal != 0)
    np.testing.assert_array_equal(
        normal, lib.initial_weights(data, lib.Config(init="normal", bias=bias, seed=5))
    )
    assert not np.array_equal(
        normal, lib.initial_weights(data, lib.Config(init="normal", bias=bias, seed=6))
    )
    explicit = list(range(1, n_params + 1))
    np.testing.assert_array_equal(
        lib.initial_weights(data, lib.Config(init=explicit, bias=bias)), explicit
    )


# Batch order ----------------------------------------------------------------------------------


@given(m=st.integers(2, 70), batch_size=st.integers(1, 69), seed=st.integers(0, 2**32 - 1))
def test_each_epoch_is_a_permutation_with_the_short_batch_kept(m, batch_size, seed):
    if batch_size >= m:
        batch_size = m - 1
    first, second, third = epochs(m, batch_size, seed, 3)
    for epoch in (first, second, third):
        sizes = [len(b) for b in epoch]
        # Every batch is full except the last, which holds what is left over (DataLoader's
        # drop_last=False).
        assert sizes[:-1] == [batch_size] * (len(sizes) - 1)
        assert sizes[-1] == m - batch_size * (len(sizes) - 1)
        assert sorted(np.concatenate(epoch).tolist()) == list(range(m))
    # The same seed replays the same order; each epoch draws a fresh permutation.
    assert all(
        np.array_equal(a, b) for a, b in zip(first, epochs(m, batch_size, seed, 1)[0], strict=True)
    )
    if m >= 8:
        orders = [np.concatenate(e) for e in (first, second, third)]
        assert not (np.array_equal(orders[0], orders[1]) and np.array_equal(orders[1], orders[2]))


@given(m=st.integers(1, 50), extra=st.integers(0, 100), seed=st.integers(0, 1000))
def test_full_batch_is_every_sample_in_natural_order(m, extra, seed):
    batches = lib.batch_indices(m, m + extra, seed)
    for _ in range(3):
        np.testing.assert_array_equal(np.arange(m)[next(batches)], np.arange(m))


def test_different_seeds_give_different_orders():
    assert not np.array_equal(
        np.concatenate(epochs(40, 7, 0, 1)[0]), np.concatenate(epochs(40, 7, 1, 1)[0])
    )


@pytest.mark.parametrize("batch_size", [1, 7, 32, 200])
def test_numpy_and_torch_loaders_give_the_same_batches(batch_size):
    data = lib.datasets.linear(m=45, n=2, seed=9)
    numpy_batches = data_module.loader(data.X, data.y, batch_size, 11)
    torch_batches = data_module.torch_loader(data.X, data.y, batch_size, 11)
    for _ in range(20):
        (x_np, y_np), (x_t, y_t) = next(numpy_batches), next(torch_batches)
        assert x_t.dtype == torch.float64
        # Shaped like nn.Linear's outputs, so MSELoss does not broadcast.
        assert y_t.shape == (len(y_np), 1)
        np.testing.assert_array_equal(x_t.numpy(), x_np)
        np.testing.assert_array_equal(y_t.numpy()[:, 0], y_np)


# Least squares --------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_least_squares_solves_the_normal_equations(bias):
    data = lib.datasets.linear(m=80, n=4, noise=0.5, seed=2)
    A = data.with_ones() if bias else data.X
    w = lib.least_squares(data, bias)
    assert w.shape == (4 + int(bias),)
    # At the minimum the residual is orthogonal to every column: A^T (A w - y) = 0.
    np.testing.assert_allclose(A.T @ (A @ w - data.y), 0, atol=1e-9)


def test_least_squares_recovers_noiseless_true_weights():
    data = lib.datasets.linear(m=30, n=3, noise=0.0, seed=8)
    np.testing.assert_allclose(lib.least_squares(data, True), data.true_weights, atol=1e-10)
