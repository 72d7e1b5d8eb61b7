"""lib.trace: stepping the real loop generators gives exactly lib.run's numbers, every line of
them."""

import itertools
import math

import numpy as np
import pytest

import lib
from lib.engine.trace import Stepper
from lib.twins.manual import SLOPES

DATA = lib.datasets.linear(m=40, n=3, noise=0.1, seed=1)
_X = np.random.default_rng(2).normal(size=(40, 2))
BLOBS = lib.Dataset(_X, (_X @ [1.0, -1.0] > 0).astype(float))  # two classes, 0 and 1

SSE_FULL_BATCH = lib.Config(
    lr=1e-3, batch_size=100, iterations=12, loss="sse", zero_grad=False, init="normal", seed=3
)
CASES = {
    "mse minibatch": (DATA, lib.Config(lr=0.05, batch_size=8, iterations=25)),
    "sse full batch, no zero_grad, normal init": (DATA, SSE_FULL_BATCH),
    "half_mse no bias": (
        DATA,
        lib.Config(lr=0.1, batch_size=7, iterations=20, loss="half_mse", bias=False),
    ),
    "mixed conventions": (
        DATA,
        lib.Config(lr=0.02, batch_size=8, iterations=15, manual_loss="half_mse"),
    ),
    "float32 torch": (
        DATA,
        lib.Config(lr=0.05, batch_size=8, iterations=15, torch_dtype="float32"),
    ),
    "adam": (DATA, lib.Config(lr=0.05, batch_size=8, iterations=15, optimizer="adam")),
    "logistic": (BLOBS, lib.Config(lr=0.1, batch_size=8, iterations=15, model="logistic")),
    "mlp": (
        DATA,
        lib.Config(lr=0.05, batch_size=8, iterations=15, model="mlp", hidden=4, init="normal"),
    ),
}


def assert_same_history(a: lib.History, b: lib.History) -> None:
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.grad_norm, b.grad_norm)


@pytest.mark.parametrize("case", CASES)
def test_stepping_gives_lib_run_histories_exactly(case):
    data, cfg = CASES[case]
    result = lib.run(data, cfg)
    stepper = Stepper(data, cfg)
    for _ in range(cfg.iterations):
        stepper.next()
    assert stepper.step == cfg.iterations - 1 and stepper.at_end
    assert_same_history(stepper.history("manual"), result.manual)
    assert_same_history(stepper.history("torch"), result.torch)


@pytest.mark.parametrize("case", CASES)
def test_every_number_of_a_step_matches_run_and_the_data(case):
    data, cfg = CASES[case]
    result = lib.run(data, cfg)
    stepper = Stepper(data, cfg)
    order = lib.batch_indices(data.m, cfg.batch_size, cfg.seed)
    for t, idx in zip(range(cfg.iterations), order, strict=False):
        step = stepper.next()
        rows = np.arange(data.m)[idx]
        for loop in ("manual", "torch"):
            side, history = getattr(step, loop), getattr(result, loop)
            np.testing.assert_array_equal(side.indices, rows)
            np.testing.assert_allclose(
                side.inputs, data.X[rows], rtol=1e-6 if loop == "torch" else 0
            )
            np.testing.assert_allclose(
                side.labels, data.y[rows], rtol=1e-6 if loop == "torch" else 0
            )
            assert side.loss == history.loss[t]
            np.testing.assert_array_equal(side.weights_before, history.weights[t])
            np.testing.assert_array_equal(side.weights_after, history.weights[t + 1])
            assert math.isclose(
                np.linalg.norm(side.gradient.astype(np.float64)),
                history.grad_norm[t],
                rel_tol=1e-14,
            )
            assert side.predictions.shape == side.sample_loss.shape == (len(rows),)
        if cfg.optimizer == "sgd":
            np.testing.assert_allclose(
                step.manual.update, -cfg.lr * step.manual.gradient, rtol=1e-12, atol=1e-15
            )
        # The batch loss is the mean of the per-sample terms (sse: their sum), under each loop's own
        # convention.
        for side, convention in ((step.manual, cfg.loss_for("manual")), (step.torch, cfg.loss)):
            reduce = np.sum if convention == "sse" else np.mean
            rel = 1e-6 if side is step.torch and cfg.torch_dtype == "float32" else 1e-12
            assert reduce(side.sample_loss) == pytest.approx(side.loss, rel=rel)


def test_step_lines_are_the_loop_variables():
    data, cfg = CASES["mse minibatch"]
    step = Stepper(data, cfg).run_to(3)
    m, t = step.manual.lines, step.torch.lines
    # The hand loop's own variables: inputs carry the column of ones, outputs = inputs @ weights
    # before the update, h = outputs (mse), delta = -dloss/doutputs = 2/batch (labels - h), neg_grad
    # = -gradient.
    np.testing.assert_array_equal(m["inputs"][:, -1], np.ones(len(m["labels"])))
    np.testing.assert_allclose(m["outputs"], m["inputs"] @ step.manual.weights_before, rtol=1e-14)
    np.testing.assert_array_equal(m["h"], m["outputs"])
    batch = len(m["labels"])
    assert batch == cfg.batch_size
    np.testing.assert_allclose(
        m["delta"], SLOPES["mse"](batch) * (m["labels"] - m["h"]), rtol=1e-15
    )
    np.testing.assert_array_equal(m["neg_grad"], -step.manual.gradient)
    np.testing.assert_allclose(m["neg_grad"], m["inputs"].T @ m["delta"], rtol=1e-14)
    assert m["loss"] == step.manual.loss
    assert not {"z", "error", "d_weights"} & set(m)  # the names before the rename are gone
    grad = np.concatenate([g.ravel() for g in t["grad"].values()])
    np.testing.assert_array_equal(grad, step.torch.gradient)
    assert set(t["grad"]) == {"weight", "bias"}
    assert t["loss.grad_fn"] == "MseLossBackward0"
    assert t["outputs"].shape == (cfg.batch_size, 1)


def test_forward_then_back_gives_the_same_numbers_without_rerunning():
    data, cfg = CASES["mse minibatch"]
    stepper = Stepper(data, cfg)
    first = [stepper.next() for _ in range(6)]
    stepper.run_to(12)
    taken = stepper.taken
    back = [stepper.previous() for _ in range(7)][::-1]  # steps 5 .. 11
    assert stepper.taken == taken  # nothing ran again
    assert back[0] is first[5]
    assert stepper.previous().t == 4
    result = lib.run(data, cfg)
    for step in back:
        np.testing.assert_array_equal(step.manual.weights_after, result.manual.weights[step.t + 1])
        np.testing.assert_array_equal(step.torch.weights_after, result.torch.weights[step.t + 1])


def test_a_step_that_left_the_cache_is_recomputed_identically():
    data, cfg = CASES["sse full batch, no zero_grad, normal init"]
    stepper = Stepper(data, cfg, keep=2)
    early = stepper.run_to(2)
    stepper.run_to(10)
    assert len(stepper._cache) == 2
    again = stepper.run_to(2)  # evicted: replayed from the init
    assert again is not early
    for loop in ("manual", "torch"):
        a, b = getattr(early, loop), getattr(again, loop)
        for field in (
            "loss",
            "gradient",
            "weights_before",
            "weights_after",
            "predictions",
            "reset_before",
        ):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_reset_line_buffers_follow_zero_grad():
    data, cfg = CASES["mse minibatch"]
    stepper = Stepper(data, cfg)
    s0, s1 = stepper.next(), stepper.next()
    np.testing.assert_array_equal(s0.manual.reset_before, np.zeros(4))  # neg_grad starts as zeros
    assert s0.torch.reset_before is None  # .grad starts as None
    np.testing.assert_array_equal(s1.manual.reset_before, s0.manual.lines["neg_grad"])
    np.testing.assert_array_equal(s1.torch.reset_before, s0.torch.gradient)
    np.testing.assert_array_equal(s1.manual.reset_after, np.zeros(4))
    assert s1.torch.reset_after is None

    kept = Stepper(data, cfg.replace(zero_grad=False))
    kept.next()
    k1 = kept.next()
    np.testing.assert_array_equal(k1.manual.reset_after, k1.manual.reset_before)
    np.testing.assert_array_equal(k1.torch.reset_after, k1.torch.reset_before)
    # Without the reset, this step's gradient is last step's plus this batch's.
    assert not np.allclose(k1.torch.gradient, s1.torch.gradient)


def test_run_to_forward_skips_copies_but_not_numbers():
    data, cfg = CASES["mse minibatch"]
    stepper = Stepper(data, cfg, keep=3)
    step = stepper.run_to(20)
    assert sorted(stepper._cache) == [18, 19, 20]
    result = lib.run(data, cfg)
    np.testing.assert_array_equal(step.torch.weights_before, result.torch.weights[20])
    assert stepper.current is step


def test_divergence_stops_where_lib_run_stops():
    cfg = lib.Config(lr=20.0, batch_size=40, iterations=400)
    result = lib.run(DATA, cfg)
    assert result.diverged_at is not None
    stepper = Stepper(DATA, cfg)
    step = stepper.run_to(cfg.iterations - 1)
    assert stepper.diverged_at == result.diverged_at == step.t == stepper.last_step
    assert stepper.at_end and stepper.next() is step
    with np.errstate(invalid="ignore"):
        for loop in ("manual", "torch"):
            a, b = stepper.history(loop), getattr(result, loop)
            np.testing.assert_array_equal(a.loss, b.loss)
            np.testing.assert_array_equal(a.weights, b.weights)


def test_previous_before_the_first_step_and_reset():
    data, cfg = CASES["mse minibatch"]
    stepper = Stepper(data, cfg)
    assert stepper.current is None and stepper.previous() is None and stepper.step == -1
    stepper.run_to(4)
    stepper.reset()
    assert stepper.step == -1 and stepper.taken == 0 and stepper.current is None
    np.testing.assert_array_equal(
        stepper.next().manual.weights_before, lib.initial_weights(data, cfg)
    )


def test_functions_are_the_loops_that_run():
    data, cfg = CASES["mse minibatch"]
    assert Stepper(data, cfg).functions == (lib.manual_loop, lib.torch_loop)
    data, cfg = CASES["mlp"]  # one hand loop for every model: the mlp runs manual_loop too
    assert Stepper(data, cfg).functions == (lib.manual_loop, lib.torch_loop)


@pytest.mark.parametrize(
    ("n", "words"),
    [(-1, "from 0 to 24"), (25, "from 0 to 24"), (1.5, "whole number"), (True, "whole number")],
)
def test_bad_steps_are_refused_in_words(n, words):
    data, cfg = CASES["mse minibatch"]
    with pytest.raises(ValueError, match=words):
        Stepper(data, cfg).run_to(n)


def test_bad_arguments_are_refused_in_words():
    with pytest.raises(ValueError, match=r"lib\.Config"):
        Stepper(DATA, "fast")
    with pytest.raises(ValueError, match="keep"):
        Stepper(DATA, lib.Config(), keep=0)


def test_batches_cycle_through_epochs_as_batch_indices_does():
    # 40 samples in batches of 7: six batches an epoch, the last short.
    data, cfg = CASES["half_mse no bias"]
    stepper = Stepper(data, cfg)
    seen = [stepper.next().manual.indices for _ in range(6)]
    assert [len(s) for s in seen] == [7, 7, 7, 7, 7, 5]
    assert sorted(itertools.chain.from_iterable(seen)) == list(range(40))


def test_the_largest_difference_of_a_step_covers_the_optimizer_state():
    import dataclasses

    data = lib.datasets.linear(m=30, n=2, seed=1)
    step = Stepper(data, lib.Config(optimizer="adam", iterations=2)).next()
    assert step.optimizer_state and step.max_diff < 1e-12
    attr, key, hand, _ = step.optimizer_state[1]  # exp_avg, both loops
    off = dataclasses.replace(step, optimizer_state=((attr, key, hand, hand + 0.5),))
    assert off.max_diff == pytest.approx(0.5)


TERM_CASES = [
    (model, loss, bias)
    for model, losses in (
        ("linear", ("mse", "half_mse", "sse")),
        ("logistic", ("bce",)),
        ("mlp", lib.LOSSES),
    )
    for loss in losses
    for bias in (True, False)
]


@pytest.mark.parametrize(("model", "loss", "bias"), TERM_CASES)
def test_the_loss_column_adds_up_to_the_loss_shown_for_every_convention(model, loss, bias):
    """The per-sample column is the sample's term of the loss: its mean (sse: its sum) is the
    step's loss."""
    data = BLOBS if loss == "bce" else DATA
    cfg = lib.Config(
        lr=0.01,
        batch_size=8,
        iterations=4,
        loss=loss,
        model=model,
        bias=bias,
        init="normal",
        hidden=3,
    )
    stepper = Stepper(data, cfg)
    reduce = np.sum if loss == "sse" else np.mean
    term = {
        "mse": "(target − prediction)²",
        "half_mse": "½·(target − prediction)²",
        "sse": "(target − prediction)²",
        "bce": "−[target·log p + (1 − target)·log(1 − p)]",
    }[loss]
    for _ in range(cfg.iterations):
        step = stepper.next()
        frame = step.batch_frame(data.feature_names)
        for loop in ("manual", "torch"):
            side = getattr(step, loop)
            column = frame[f"{term} ({loop})"].to_numpy()
            assert reduce(column) == pytest.approx(side.loss, rel=1e-12)
            assert side.loss_from_terms == pytest.approx(side.loss, rel=1e-12)
            output = frame[f"{'logit' if loss == 'bce' else 'prediction'} ({loop})"].to_numpy()
            target = frame["target"].to_numpy()
            # The model's output is a logit; p is its sigmoid, the model's P(target = 1).
            if loss == "bce":
                p = frame[f"p = sigmoid(logit) ({loop})"].to_numpy()
                np.testing.assert_allclose(p, 1 / (1 + np.exp(-output)), rtol=1e-12)
                np.testing.assert_allclose(
                    column, -(target * np.log(p) + (1 - target) * np.log(1 - p)), rtol=1e-9
                )
            else:
                half = 0.5 if loss == "half_mse" else 1.0
                np.testing.assert_allclose(column, half * (target - output) ** 2, rtol=1e-12)
                assert not any(c.startswith("p = ") for c in frame.columns)
        assert (frame["|Δ loss term|"] <= 1e-12).all()
