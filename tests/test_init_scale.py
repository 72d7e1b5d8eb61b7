"""The "normal" initial weights are what lib/data.py's comment says, and so is its comparison
with nn.Linear."""

import inspect

import numpy as np
import pytest
import torch

import lib


def comments(func) -> str:
    """The comments of a function's source as one line of text, however they are wrapped."""
    lines = inspect.getsource(func).splitlines()
    return " ".join(line.split("#", 1)[1].strip() for line in lines if line.strip().startswith("#"))


def test_normal_init_is_n_0_1_over_fan_in_for_weights_and_biases():
    source = comments(lib.initial_weights)
    assert "like nn.Linear's scale" not in source
    assert "every weight and bias of a layer ~ N(0, 1/fan_in)" in source
    n, hidden = 50, 256
    data = lib.Dataset(np.zeros((2, n)), np.zeros(2))
    cfg = lib.Config(model="mlp", hidden=hidden, init="normal", seed=3)
    W1, b1, W2, b2 = cfg.layout(n).views(lib.initial_weights(data, cfg))
    assert np.var(W1) == pytest.approx(1 / n, rel=0.05)  # 12,800 draws: about 1% sampling error
    # The first layer's biases share its scale (256 draws).
    assert np.var(b1) == pytest.approx(1 / n, rel=0.3)
    assert np.var(W2) == pytest.approx(1 / hidden, rel=0.3)
    assert abs(b2[0]) < 5 / np.sqrt(hidden)
    linear = lib.initial_weights(
        lib.Dataset(np.zeros((2, 1000)), np.zeros(2)), lib.Config(init="normal")
    )
    assert np.var(linear) == pytest.approx(1 / 1000, rel=0.15)


def test_nn_linear_draws_uniform_with_a_third_of_that_variance():
    torch.manual_seed(0)
    layer = torch.nn.Linear(100, 300, dtype=torch.float64)
    weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    bound = 1 / np.sqrt(100)
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(weight).max() <= bound and np.abs(bias).max() <= bound
    assert np.var(weight) == pytest.approx(1 / (3 * 100), rel=0.03)
    assert "of variance 1/(3 fan_in): these start sqrt(3) times wider" in comments(
        lib.initial_weights
    )
