"""Config validation: every bad value is refused with a ValueError naming the field and what is
allowed."""

import math
import re

import numpy as np
import pytest

import lib


def refused(match: str, **fields) -> str:
    """Build a Config from fields, expect a ValueError matching `match`, and return its message."""
    with pytest.raises(ValueError, match=match) as caught:
        lib.Config(**fields)
    return str(caught.value)


@pytest.mark.parametrize(
    "lr", [0, 0.0, -0.01, -1, math.nan, math.inf, -math.inf, "0.1", None, True, False, [0.1]]
)
def test_bad_lr_names_field_and_range(lr):
    message = refused(r"^lr must be", lr=lr)
    assert "finite" in message and "> 0" in message


@pytest.mark.parametrize("batch_size", [0, -3, 1.5, 2.0, "32", True, None])
def test_bad_batch_size_names_field_and_range(batch_size):
    message = refused(r"^batch_size must be", batch_size=batch_size)
    assert "whole number" in message and ">= 1" in message


@pytest.mark.parametrize("iterations", [0, -1, lib.MAX_ITERATIONS + 1, 10**9, 10.0, True, "100"])
def test_bad_iterations_names_field_and_range(iterations):
    message = refused(r"^iterations must be", iterations=iterations)
    assert "from 1 to" in message
    # The cap is written out, so the user knows the largest allowed value.
    assert f"{lib.MAX_ITERATIONS:,}" in message


def test_iterations_cap_itself_is_allowed():
    assert lib.Config(iterations=lib.MAX_ITERATIONS).iterations == lib.MAX_ITERATIONS
    assert lib.Config(iterations=1).iterations == 1


@pytest.mark.parametrize("loss", ["MSE", "l1", "", 3])
def test_unknown_loss_lists_the_choices(loss):
    message = refused(r"^loss must be one of", loss=loss)
    for name in lib.LOSSES:
        assert repr(name) in message


@pytest.mark.parametrize("init", ["ones", "Zeros", "", "uniform"])
def test_bad_init_string_lists_the_choices(init):
    message = refused(r"^init must be", init=init)
    assert "'zeros'" in message and "'normal'" in message and "list of numbers" in message


@pytest.mark.parametrize(
    "init", [[0.0, math.nan], [math.inf, 1.0], (-math.inf,), np.array([1.0, np.nan])]
)
def test_non_finite_init_is_refused(init):
    message = refused(r"^init must", init=init)
    assert "finite" in message


@pytest.mark.parametrize("init", [[], [[1.0, 2.0]], ["a", "b"], [None]])
def test_malformed_init_is_refused(init):
    refused(r"^init must", init=init)


@pytest.mark.parametrize("seed", [-1, -(2**40), 2**32, 1.0, "0", True])
def test_bad_seed_names_field_and_range(seed):
    message = refused(r"^seed must be", seed=seed)
    assert "from 0 to" in message


@pytest.mark.parametrize("field", ["bias", "zero_grad"])
@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_flags_must_be_booleans(field, value):
    refused(rf"^{field} must be True or False", **{field: value})


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("length_delta", [-1, 1])
def test_init_of_wrong_length_names_n_params_and_layout(bias, length_delta):
    data = lib.datasets.linear(m=10, n=3, seed=1)
    n_params = 3 + int(bias)
    cfg = lib.Config(init=[0.5] * (n_params + length_delta), bias=bias, iterations=2)
    layout = "[w_1 .. w_n, bias]" if bias else "[w_1 .. w_n]"
    for call in (lambda: lib.initial_weights(data, cfg), lambda: lib.run(data, cfg)):
        with pytest.raises(ValueError, match=r"^init must have") as caught:
            call()
        message = str(caught.value)
        assert f"{n_params} numbers" in message
        assert layout in message
        assert f"got {n_params + length_delta}" in message


def test_good_values_are_normalised():
    cfg = lib.Config(
        lr=np.float32(0.5),
        batch_size=np.int64(8),
        iterations=np.int32(3),
        init=np.array([1, 2, 3, 4]),
    )
    assert type(cfg.lr) is float and cfg.lr == 0.5
    assert cfg.init == (1.0, 2.0, 3.0, 4.0)
    assert cfg.n_params(3) == 4
    assert lib.Config(bias=False).n_params(3) == 3


def test_config_is_frozen_and_replace_validates():
    cfg = lib.Config()
    with pytest.raises(AttributeError):
        cfg.lr = 1.0  # type: ignore[misc]
    assert cfg.replace(lr=0.5).lr == 0.5
    assert cfg.lr == 0.01
    with pytest.raises(ValueError, match=r"^lr must be"):
        cfg.replace(lr=-1)
    with pytest.raises(ValueError, match=re.escape("unknown Config fields: learning_rate")):
        cfg.replace(learning_rate=0.1)


def test_same_config_is_equal():
    assert lib.Config(lr=0.1, init=[1, 2]) == lib.Config(lr=0.1, init=(1.0, 2.0))
