"""lib.landscape: the loss over two chosen weights, checked against a direct evaluation at grid
points."""

import warnings

import numpy as np
import pytest
import torch

import lib
from lib.lessons.landscape import full_data_loss, surface
from lib.twins.torch_side import make_model, share_one_vector, torch_loss

SQUARED = ("mse", "half_mse", "sse")


def classes(m: int = 60, n: int = 2, seed: int = 0) -> lib.Dataset:
    """Two classes split by a noisy random line: targets 0 and 1."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    y = (X @ rng.normal(size=n) + 0.3 * rng.normal(size=m) > 0).astype(float)
    return lib.Dataset(X, y)


def full_weights_at(result: lib.Result, s, a: int, b: int) -> np.ndarray:
    """Every weight at grid cell (a, b): the held (last finite manual) weights with the two
    chosen ones replaced."""
    w = result.manual.weights[-1].copy()
    w[s.i], w[s.j] = s.a_values[a], s.b_values[b]
    return w


def torch_full_loss(data: lib.Dataset, cfg: lib.Config, w: np.ndarray) -> float:
    """The loss of the whole data set as torch computes it: the model loaded with w, the
    criterion on its outputs."""
    net = make_model(cfg.layout(data.n), torch.float64)
    share_one_vector(net, w, torch.float64)
    with torch.no_grad():
        outputs = net(torch.from_numpy(np.array(data.X))).squeeze(-1)
        return float(torch_loss(cfg.loss)(outputs, torch.from_numpy(np.array(data.y))))


@pytest.mark.parametrize("loss", SQUARED)
@pytest.mark.parametrize("bias", [True, False])
def test_the_exact_surface_is_the_full_data_loss_at_random_cells(loss, bias):
    data = lib.datasets.linear(m=40, n=3, noise=0.3, seed=2)
    # Mini-batches and few steps: the final weights are not the minimum, so every term of the
    # quadratic counts.
    cfg = lib.Config(
        lr=0.02, batch_size=8, iterations=25, loss=loss, bias=bias, init="normal", seed=1
    )
    result = lib.run(data, cfg)
    rng = np.random.default_rng(0)
    n_weights = len(result.weight_names)
    pairs = [(0, 1), (n_weights - 1, 0), (1, n_weights - 1)]
    for i, j in pairs:
        s = surface(data, result, i, j, size=25)
        assert s.exact and (s.i, s.j) == (i, j)
        assert s.loss.shape == (25, 25) and np.isfinite(s.loss).all()
        cells = rng.integers(0, 25, size=(12, 2))
        stack = np.array([full_weights_at(result, s, a, b) for a, b in cells])
        direct = full_data_loss(data, cfg, stack)
        np.testing.assert_allclose(s.loss[cells[:, 1], cells[:, 0]], direct, rtol=1e-10, atol=1e-12)
        # ...and full_data_loss itself is torch's criterion on the whole data set.
        for w, value in zip(stack[:3], direct[:3], strict=True):
            assert value == pytest.approx(torch_full_loss(data, cfg, w), rel=1e-12)


@pytest.mark.parametrize(
    "cfg",
    [
        lib.Config(model="logistic", lr=0.5, batch_size=16, iterations=30, init="normal"),
        lib.Config(model="logistic", lr=0.5, batch_size=60, iterations=30, bias=False),
        lib.Config(model="mlp", hidden=3, lr=0.2, batch_size=16, iterations=30, init="normal"),
        lib.Config(
            model="mlp",
            hidden=3,
            activation="relu",
            lr=0.1,
            iterations=30,
            init="normal",
            bias=False,
        ),
        lib.Config(model="mlp", hidden=4, loss="bce", lr=0.3, iterations=30, init="normal", seed=3),
    ],
    ids=["logistic", "logistic-nobias", "mlp-tanh", "mlp-relu-nobias", "mlp-bce"],
)
def test_the_grid_surface_is_torchs_criterion_at_grid_points(cfg):
    data = classes() if cfg.loss == "bce" else lib.datasets.linear(m=60, n=2, noise=0.2, seed=1)
    result = lib.run(data, cfg)
    last = len(result.weight_names) - 1
    for i, j in [(0, 1), (last, 0)]:
        s = surface(data, result, i, j, size=12)
        assert not s.exact
        assert s.loss.shape == (12, 12) and np.isfinite(s.loss).all()
        for a, b in [(0, 0), (11, 5), (3, 11), (7, 7)]:
            w = full_weights_at(result, s, a, b)
            assert s.loss[b, a] == pytest.approx(
                torch_full_loss(data, cfg, w), rel=1e-10, abs=1e-12
            )


def test_the_grid_spans_both_trajectories_up_to_the_chosen_step():
    data = lib.datasets.linear(m=50, n=2, seed=0)
    result = lib.run(data, lib.Config(lr=0.1, batch_size=10, iterations=40))
    for upto, rows in [(None, 41), (10, 11), (0, 1), (10**6, 41)]:
        s = surface(data, result, 0, 2, upto=upto)
        path = np.vstack([result.manual.weights[:rows], result.torch.weights[:rows]])
        assert s.a_values.min() < path[:, 0].min() and path[:, 0].max() < s.a_values.max()
        assert s.b_values.min() < path[:, 2].min() and path[:, 2].max() < s.b_values.max()
    assert np.all(np.diff(s.a_values) > 0) and np.all(np.diff(s.b_values) > 0)


def test_the_held_weights_are_the_final_ones():
    """At the cell nearest the final (a, b), the surface is close to the run's final full-data
    loss."""
    data = lib.datasets.linear(m=50, n=3, seed=4)
    cfg = lib.Config(lr=0.05, batch_size=50, iterations=20)
    result = lib.run(data, cfg)
    s = surface(data, result, 0, 1, size=41)
    final = result.manual.weights[-1]
    w = final.copy()
    a, b = np.abs(s.a_values - final[0]).argmin(), np.abs(s.b_values - final[1]).argmin()
    w[0], w[1] = s.a_values[a], s.b_values[b]
    assert s.loss[b, a] == pytest.approx(full_data_loss(data, cfg, w[None])[0], rel=1e-12)


@pytest.mark.parametrize(
    "i, j", [(0, 0), (-1, 0), (0, 4), (4, 1), (0.0, 1), (1, 1.5), ("w_1", 1), (True, 2), (None, 1)]
)
def test_bad_indices_are_a_value_error(i, j):
    data = lib.datasets.linear(m=20, n=3, seed=0)
    result = lib.run(data, lib.Config(iterations=3))  # 4 weights: 0 .. 3
    with pytest.raises(ValueError, match="two different weights"):
        surface(data, result, i, j)


def test_numpy_integer_indices_are_fine():
    data = lib.datasets.linear(m=20, n=3, seed=0)
    result = lib.run(data, lib.Config(iterations=3))
    assert surface(data, result, np.int64(0), np.int64(3), size=5).loss.shape == (5, 5)


def test_a_model_with_only_some_weights_recorded_is_refused_in_words():
    data = lib.datasets.linear(m=20, n=3, seed=0)
    # 40 * (3 + 2) + 1 = 201 weights, 128 recorded.
    cfg = lib.Config(model="mlp", hidden=40, iterations=3)
    result = lib.run(data, cfg)
    assert len(result.weight_names) < cfg.n_params(data.n)
    with pytest.raises(ValueError, match="only some of them were recorded"):
        surface(data, result, 0, 1)


def test_a_diverged_run_uses_its_finite_part_without_warnings():
    data = lib.datasets.linear(m=50, n=2, seed=0)
    cfg = lib.Config(lr=5.0, batch_size=50, iterations=2000)
    result = lib.run(data, cfg)
    assert result.stopped == "diverged"
    assert not np.isfinite(result.manual.weights[-1]).all() or not np.isfinite(
        result.manual.loss[-1]
    )
    with warnings.catch_warnings():
        # lib never prints, and numpy overflow warnings would be printing.
        warnings.simplefilter("error")
        s = surface(data, result, 0, 1, size=15)
        early = surface(data, result, 0, 1, size=15, upto=5)
    for grid in (s.a_values, s.b_values, early.a_values, early.b_values):
        assert np.isfinite(grid).all()
    # The grid spans only finite weights, and the early view only the first steps.
    finite = result.manual.weights[np.isfinite(result.manual.weights).all(axis=1)]
    assert s.a_values.max() >= finite[:, 0].max() and s.a_values.min() <= finite[:, 0].min()
    first = np.vstack([result.manual.weights[:6], result.torch.weights[:6]])[:, 0]
    assert early.a_values.min() < first.min() and first.max() < early.a_values.max()
    assert early.a_values.max() - early.a_values.min() < 2 * (first.max() - first.min()) + 1
    assert s.a_values.max() - s.a_values.min() > 1e100
    # Held at the last finite weights (about 1e154), the loss overflows: cells are nan or inf, never
    # a warning.
    assert not np.isfinite(s.loss).any()


def test_a_diverged_run_cut_before_it_blew_up_gives_a_finite_map():
    """What the page does for a diverged run: cut the Result at an early step, then map it."""
    data = lib.datasets.linear(m=50, n=2, seed=0)
    cfg = lib.Config(lr=5.0, batch_size=50, iterations=2000)
    result = lib.run(data, cfg)
    k = 6
    cut = {
        loop: lib.History(h.loss[:k], h.weights[: k + 1], h.grad_norm[:k])
        for loop, h in (("manual", result.manual), ("torch", result.torch))
    }
    early = lib.Result(
        cut["manual"], cut["torch"], cfg, result.weight_names, step_diff=result.step_diff[: k + 1],
        recorded=result.recorded,
    )  # fmt: skip
    s = surface(data, early, 0, 1, size=15)
    assert np.isfinite(s.loss).all()
    w = result.manual.weights[k].copy()
    w[0], w[1] = s.a_values[3], s.b_values[9]
    assert s.loss[9, 3] == pytest.approx(full_data_loss(data, cfg, w[None])[0], rel=1e-10)


def test_full_data_loss_of_a_stack_is_each_rows_loss():
    data = classes(m=30, n=3, seed=5)
    cfg = lib.Config(model="mlp", hidden=2, loss="bce")
    rng = np.random.default_rng(1)
    stack = rng.normal(size=(4, cfg.n_params(data.n)))
    values = full_data_loss(data, cfg, stack)
    assert values.shape == (4,)
    for w, value in zip(stack, values, strict=True):
        assert value == pytest.approx(torch_full_loss(data, cfg, w), rel=1e-12)
