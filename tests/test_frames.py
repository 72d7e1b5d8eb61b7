"""lib.engine.frames reads the loops' frames: every exposed name is there, nothing else goes out.

And lib.engine.lockstep.ends_run, the one step rule: a step is the last exactly where a loss, a
weight or a gradient of either loop is not finite.
"""

import inspect
import itertools

import numpy as np
import pytest
import torch

import lib
from lib.engine.frames import (
    EXPOSED,
    all_values,
    arguments_of,
    batch_rows,
    function_of,
    values_of,
)
from lib.engine.lockstep import ends_run, loops
from lib.twins import manual, torch_side
from lib.twins.manual import SLOPES, manual_loop, sigmoid
from lib.twins.torch_side import torch_loop, torch_loss

REGRESSION = lib.datasets.linear(m=30, n=3, noise=0.1, seed=2)
_X = np.random.default_rng(3).normal(size=(30, 3))
CLASSES = lib.Dataset(_X, (_X @ [1.0, -1.0, 0.5] > 0).astype(float))  # two classes, 0 and 1

MODELS = [
    ("linear", "tanh"),
    ("logistic", "tanh"),
    ("mlp", "tanh"),
    ("mlp", "relu"),
]
CASES = [
    (model, activation, loss, bias)
    for model, activation in MODELS
    for loss in lib.LOSSES
    for bias in (True, False)
    if not (model == "linear" and loss == "bce") and not (model == "logistic" and loss != "bce")
]


def case_id(case) -> str:
    model, activation, loss, bias = case
    return f"{model}{'-' + activation if model == 'mlp' else ''}-{loss}{'' if bias else '-nobias'}"


def started(model: str, activation: str, loss: str, bias: bool):
    """Both loops of a run of this model and loss, each one step in: (data, cfg, init, manual,
    torch, manual's step, torch's step)."""
    data = CLASSES if loss == "bce" else REGRESSION
    cfg = lib.Config(
        model=model, activation=activation, loss=loss, bias=bias, hidden=4, init="normal",
        batch_size=8, lr=0.01, iterations=3, seed=1,
    )  # fmt: skip
    hand, twin, init = loops(data, cfg)
    return data, cfg, init, hand, twin, next(hand), next(twin)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_exposed_name_is_in_the_frame_at_the_yield(case):
    model, _, loss, bias = case
    data, cfg, init, hand, twin, (_, w_m, g_m), (_, w_t, _) = started(*case)
    assert function_of(hand) is manual_loop and function_of(twin) is torch_loop
    expected = manual.EXPOSED + (manual.EXPOSED_MLP if model == "mlp" else ())
    values = all_values(hand)
    assert sorted(values) == sorted(expected)  # every name, and for a linear model no layer's
    assert sorted(all_values(twin)) == sorted(torch_side.EXPOSED)
    # The live objects, not copies: the very arrays the loops yield and update.
    assert values["weights"] is w_m and values_of(twin, "weights")["weights"] is w_t
    np.testing.assert_array_equal(values["neg_grad"], -g_m)
    # What the names hold: h the prediction (bce: the sigmoid of the logits), and
    # delta = -dloss/doutputs = SLOPES[loss](m) * (labels - h), the derivative of the inline loss.
    outputs, labels, h = values["outputs"], values["labels"], values["h"]
    np.testing.assert_array_equal(h, sigmoid(outputs) if loss == "bce" else outputs)
    np.testing.assert_allclose(
        values["delta"], SLOPES[loss](len(labels)) * (labels - h), rtol=1e-15, atol=1e-17
    )
    z = torch.tensor(outputs, requires_grad=True)
    torch_loss(loss)(z.unsqueeze(1), torch.tensor(labels).unsqueeze(1)).backward()
    np.testing.assert_allclose(values["delta"], -z.grad.numpy(), rtol=1e-12, atol=1e-15)
    torch_value = values_of(twin, "loss")["loss"].item()  # the loss tensor, the graph's root
    assert float(values["loss"]) == pytest.approx(torch_value, rel=1e-12)
    if model == "mlp":  # the layers' values, from the weights before this step's update
        W1, b1, W2, b2 = cfg.layout(data.n).views(init)
        np.testing.assert_allclose(values["a1"], values["inputs"] @ W1.T + b1, rtol=1e-13)
        np.testing.assert_allclose(values["h1"] @ W2 + b2, outputs, rtol=1e-13, atol=1e-15)
        # W1 .. b2 are views of the live weights (b1, b2 constant zeros without a bias).
        assert np.shares_memory(values["W1"], w_m) and np.shares_memory(values["W2"], w_m)
        assert np.shares_memory(values["b2"], w_m) == bias
    else:
        assert values["inputs"].shape[1] == data.n + bias  # the column of ones is the bias's input


@pytest.mark.parametrize("case", CASES[:1] + CASES[-1:], ids=case_id)
def test_values_of_refuses_a_name_that_is_not_exposed(case):
    _, _, _, hand, twin, _, _ = started(*case)
    for gen in (hand, twin):
        for name in ("batches", "lr", "zero_grad", "dW1", "read_grad", "no_such_name"):
            if name in EXPOSED[gen.gi_code.co_name]:
                continue
            with pytest.raises(KeyError, match=name):
                values_of(gen, name)
        with pytest.raises(KeyError):
            values_of(gen, "weights", "batches")  # one unknown name refuses the lot
        assert set(values_of(gen, "weights", "loss")) == {"weights", "loss"}


def test_arguments_of_reads_a_fresh_loop_and_refuses_a_started_one():
    cfg = lib.Config(model="mlp", hidden=3, optimizer="adam", zero_grad=False, iterations=2)
    hand, twin, _ = loops(REGRESSION, cfg)
    for gen in (hand, twin):
        arguments = arguments_of(gen)
        assert list(arguments) == list(inspect.signature(function_of(gen)).parameters)
        assert arguments["layout"] == cfg.layout(REGRESSION.n)
        assert (arguments["optimizer_name"], arguments["zero_grad"]) == ("adam", False)
        next(gen)
        with pytest.raises(ValueError, match="already started"):
            arguments_of(gen)


def test_batch_rows_are_the_rows_of_the_shared_order():
    cfg = lib.Config(batch_size=7, iterations=10, seed=4)
    hand, _, _ = loops(REGRESSION, cfg)
    batches = arguments_of(hand)["batches"]
    order = lib.batch_indices(REGRESSION.m, cfg.batch_size, cfg.seed)
    for idx in itertools.islice(order, 6):
        next(hand)
        np.testing.assert_array_equal(
            batch_rows(batches, REGRESSION.m), np.arange(REGRESSION.m)[idx]
        )


# ------------------------------------------------------------------------------- the step rule

ARGUMENTS = ("loss_m", "loss_t", "w_m", "w_t", "g_m", "g_t")


def chunk(steps: int = 5, weights: int = 4) -> dict[str, np.ndarray]:
    """A chunk of finite steps as lib.run hands it to ends_run: losses, and rows of weights and
    gradients, large and small numbers included."""
    rng = np.random.default_rng(0)
    values = {name: rng.normal(size=steps) for name in ARGUMENTS[:2]}
    values |= {name: rng.normal(size=(steps, weights)) for name in ARGUMENTS[2:]}
    values["w_m"][0, 0], values["g_t"][1, 2] = 1e300, -1e-300
    return values


def test_a_finite_chunk_never_ends_the_run():
    result = ends_run(*chunk().values())
    assert result.shape == (5,) and result.dtype == bool and not result.any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", ARGUMENTS)
@pytest.mark.parametrize("row", [0, 2, 4])
def test_one_bad_number_ends_the_run_at_its_row_only(name, bad, row):
    values = chunk()
    if name.startswith("loss"):
        values[name][row] = bad
    else:
        values[name][row, 3] = bad
    expected = np.zeros(5, dtype=bool)
    expected[row] = True
    np.testing.assert_array_equal(ends_run(*values.values()), expected)


@pytest.mark.parametrize("name", ARGUMENTS)
def test_the_rule_on_one_step_of_numbers_and_vectors(name):
    """The Stepper and the scripts call ends_run on one step: two numbers and four vectors."""
    values = {k: v[0] for k, v in chunk().items()}
    values = {k: float(v) if k.startswith("loss") else v for k, v in values.items()}
    assert not ends_run(*values.values())
    if name.startswith("loss"):
        values[name] = float("nan")
    else:
        values[name] = values[name].copy()
        values[name][1] = np.inf
    assert ends_run(*values.values())


@pytest.mark.parametrize("batch_size", [5, 100], ids=["minibatch", "full batch"])
def test_batch_rows_index_the_training_rows_with_a_validation_split(batch_size):
    # The loops see the training rows only: batch_rows counts in them, m is their number, and the
    # training rows map its indices to the Dataset's rows.
    cfg = lib.Config(batch_size=batch_size, iterations=10, seed=4, val_fraction=0.4)
    train, held_out = lib.engine.data.split_rows(REGRESSION.m, cfg.val_fraction, cfg.seed)
    hand, twin, _ = loops(REGRESSION, cfg)
    loaders = arguments_of(hand)["batches"], arguments_of(twin)["batches"]
    order = lib.batch_indices(len(train), cfg.batch_size, cfg.seed)
    for idx in itertools.islice(order, 6):
        next(hand), next(twin)
        expected = np.arange(len(train))[idx]
        for batches, gen in zip(loaders, (hand, twin), strict=True):
            rows = batch_rows(batches, len(train))
            np.testing.assert_array_equal(rows, expected)
            inputs = values_of(gen, "inputs")["inputs"]
            inputs = inputs.numpy() if isinstance(inputs, torch.Tensor) else inputs
            # the rows are the data rows the batch used, and none of them is held out
            np.testing.assert_array_equal(inputs[:, :3], REGRESSION.X[train[rows]])
            assert not np.isin(train[rows], held_out).any()
