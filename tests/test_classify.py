"""lib.classify: accuracy per step and the decision boundary of both loops.

Checked against torch's own forward pass.
"""

import dataclasses

import numpy as np
import pytest
import torch

import lib
from lib.io.datasets import PRESETS
from lib.twins.torch_side import make_model, share_one_vector

BLOBS = PRESETS["blobs"].build()
SHORT = PRESETS["blobs"].config(BLOBS, iterations=60)


def torch_probabilities(cfg: lib.Config, X: np.ndarray, w: np.ndarray) -> np.ndarray:
    net = make_model(cfg.layout(X.shape[1]), torch.float64)
    share_one_vector(net, w, torch.float64)
    with torch.no_grad():
        return torch.sigmoid(net(torch.tensor(X))).numpy()[:, 0]


@pytest.mark.parametrize(
    "cfg",
    [SHORT, SHORT.replace(bias=False), SHORT.replace(model="mlp", hidden=4, init="normal"),
     SHORT.replace(model="mlp", hidden=3, init="normal", activation="relu", bias=False)],
)  # fmt: skip
def test_accuracy_is_torchs_own_forward_pass_thresholded(cfg):
    result = lib.run(BLOBS, cfg)
    steps, manual, twin = lib.classify.accuracy(BLOBS, result, points=7)
    assert steps[0] == 0 and steps[-1] == result.steps - 1 and len(steps) == 7
    for t, a_manual, a_torch in zip(steps, manual, twin, strict=True):
        p = torch_probabilities(cfg, BLOBS.X, result.torch.weights[t + 1])
        assert a_torch == np.mean((p > 0.5) == (BLOBS.y == 1))
        # Identical but for a logit at 0 ± 1e-16.
        assert a_manual == pytest.approx(a_torch, abs=1 / BLOBS.m)


def test_logistic_accuracy_on_blobs_stays_within_what_the_best_line_allows():
    """The preset says the best line misclassifies 15 of 200 (seed 0): no better than 185/200."""
    result = lib.run(BLOBS, PRESETS["blobs"].config(BLOBS))
    _, manual, twin = lib.classify.accuracy(BLOBS, result)
    assert np.nanmax(twin) <= 185 / 200 and np.nanmax(manual) <= 185 / 200
    assert twin[-1] > 0.85


def test_boundary_is_torchs_probability_on_the_grid():
    result = lib.run(BLOBS, SHORT.replace(model="mlp", hidden=4, init="normal"))
    b = lib.classify.boundary(BLOBS, result, step=10, size=9)
    assert b.manual.shape == b.torch.shape == (9, 9) and b.step == 10
    A, B = np.meshgrid(b.x1, b.x2)
    grid = np.column_stack([A.ravel(), B.ravel()])
    expected = torch_probabilities(result.config, grid, result.torch.weights[11]).reshape(9, 9)
    np.testing.assert_allclose(b.torch, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b.manual, b.torch, atol=1e-12)
    assert b.x1.min() < BLOBS.X[:, 0].min() and b.x2.max() > BLOBS.X[:, 1].max()


def test_bad_requests_are_named_in_words():
    result = lib.run(BLOBS, SHORT)
    regression = lib.datasets.linear(m=50, n=2, seed=0)
    with pytest.raises(ValueError, match="two-class run"):
        lib.classify.accuracy(regression, lib.run(regression, lib.Config(iterations=5)))
    with pytest.raises(ValueError, match="step must be a whole number from 0 to 59"):
        lib.classify.boundary(BLOBS, result, step=60)
    with pytest.raises(ValueError, match="points must be"):
        lib.classify.accuracy(BLOBS, result, points=1)
    three = lib.Dataset(np.column_stack([BLOBS.X, BLOBS.X[:, 0]]), BLOBS.y)
    with pytest.raises(ValueError, match="over two features; this data has 3"):
        lib.classify.boundary(three, lib.run(three, SHORT))


def test_a_diverged_step_has_no_accuracy():
    """BCE's gradient is bounded, so these runs do not overflow by themselves.

    The non-finite weights of a diverged run are put into a real run's history to check they give
    NaN, not a number.
    """
    result = lib.run(BLOBS, SHORT.replace(iterations=20))
    weights = result.manual.weights.copy()
    weights[8:] = np.nan
    broken = dataclasses.replace(result, manual=dataclasses.replace(result.manual, weights=weights))
    steps, manual, twin = lib.classify.accuracy(BLOBS, broken, points=20)
    assert np.isnan(manual[steps >= 7]).all() and np.isfinite(manual[steps < 7]).all()
    assert np.isfinite(twin).all()
