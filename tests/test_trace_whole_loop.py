"""lib.engine.trace on the whole loop: a validation split, accumulation, clipping and schedules.

The Stepper's rows are the Dataset's rows each batch used, each micro-batch of an accumulated step
is there with its share of the loss and of the gradient, and the shares add up to the step's
gradient (a check that a test here breaks); lr, clip factor and validation loss are lib.run's.
"""

import dataclasses
import itertools

import numpy as np
import pytest

import lib
from lib.engine import trace
from lib.engine.data import split_rows
from lib.engine.trace import SUM_TOLERANCE, MicroBatches, Stepper

DATA = lib.datasets.linear(m=40, n=3, noise=0.1, seed=1)
_X = np.random.default_rng(2).normal(size=(40, 2))
BLOBS = lib.Dataset(_X, (_X @ [1.0, -1.0] > 0).astype(float))

WHOLE = dict(
    accumulate=3, clip_grad_norm=0.5, scheduler="step", scheduler_kwargs={"step_size": 4},
    val_fraction=0.3, eval_every=2,
)  # fmt: skip
CASES = {
    "everything, sgd": (DATA, lib.Config(lr=0.05, batch_size=6, iterations=14, **WHOLE)),
    "everything, adam, mlp": (
        DATA,
        lib.Config(
            lr=0.01,
            batch_size=5,
            iterations=10,
            optimizer="adam",
            model="mlp",
            hidden=3,
            init="normal",
            **WHOLE,
        ),
    ),
    "accumulate without zero_grad, clipped hard": (
        DATA,
        lib.Config(
            lr=0.05, batch_size=6, iterations=10, accumulate=4, zero_grad=False, clip_grad_norm=0.05
        ),
    ),
    "logistic, onecycle, full-batch micro-batches": (
        BLOBS,
        lib.Config(
            lr=0.1,
            batch_size=40,
            iterations=8,
            model="logistic",
            loss="bce",
            scheduler="onecycle",
            accumulate=2,
            val_fraction=0.25,
            eval_every=3,
        ),
    ),
    "sse, drop_last, cosine": (
        DATA,
        lib.Config(
            lr=1e-3,
            batch_size=7,
            iterations=9,
            loss="sse",
            drop_last=True,
            scheduler="cosine",
            accumulate=2,
            val_fraction=0.1,
            eval_every=1,
        ),
    ),
    "accumulate large": (DATA, lib.Config(lr=0.05, batch_size=1, iterations=3, accumulate=200)),
    "val_fraction near 1": (
        DATA,
        lib.Config(lr=0.05, batch_size=4, iterations=6, val_fraction=0.95, eval_every=1),
    ),
}


def stepped(data, cfg):
    """A Stepper taken through every step, with each Step as it was taken."""
    stepper = Stepper(data, cfg)
    return stepper, [stepper.next() for _ in range(cfg.iterations)]


@pytest.mark.parametrize("case", CASES)
def test_histories_are_lib_runs_with_lr_clipping_and_validation(case):
    data, cfg = CASES[case]
    result = lib.run(data, cfg)
    stepper, steps = stepped(data, cfg)
    for loop in ("manual", "torch"):
        ours, theirs = stepper.history(loop), getattr(result, loop)
        for name in ("loss", "weights", "grad_norm", "lr", "clipped", "val_loss"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name), name)
        for step in steps:
            side = getattr(step, loop)
            assert side.step_loss == theirs.loss[step.t]
            assert (side.lr is None) == (cfg.scheduler is None)
            if side.lr is not None:
                assert side.lr == theirs.lr[step.t]
    evaluated = [step.t for step in steps if step.manual.val_loss is not None]
    assert evaluated == [t for t in range(cfg.iterations) if stepper.evaluates(t)]
    np.testing.assert_array_equal(evaluated, result.val_steps)
    for loop in ("manual", "torch"):
        shown = [getattr(step, loop).val_loss for step in steps if step.t in evaluated]
        np.testing.assert_array_equal(shown, getattr(result, loop).val_loss)


@pytest.mark.parametrize("case", CASES)
def test_rows_are_the_dataset_rows_each_micro_batch_used(case):
    data, cfg = CASES[case]
    train, held_out = split_rows(data.m, cfg.val_fraction, cfg.seed)
    order = lib.batch_indices(len(train), cfg.batch_size, cfg.seed, cfg.drop_last)
    _, steps = stepped(data, cfg)
    for step in steps:
        micro = [train[idx] for idx in itertools.islice(order, cfg.accumulate)]
        for side in (step.manual, step.torch):
            assert len(side.micro_indices) == cfg.accumulate
            for got, want in zip(side.micro_indices, micro, strict=True):
                np.testing.assert_array_equal(got, want)
            # the frame's batch is the step's last micro-batch: its rows, its inputs and targets
            np.testing.assert_array_equal(side.indices, micro[-1])
            np.testing.assert_allclose(side.inputs, data.X[side.indices], rtol=1e-6)
            np.testing.assert_allclose(side.labels, data.y[side.indices], rtol=1e-6)
            assert not np.isin(side.indices, held_out).any()


def test_full_batch_with_a_validation_split_is_every_training_row_and_no_other():
    cfg = lib.Config(lr=0.05, batch_size=100, iterations=2, val_fraction=0.5)
    step = Stepper(DATA, cfg).next()
    train, held_out = split_rows(DATA.m, 0.5, cfg.seed)
    np.testing.assert_array_equal(step.manual.indices, train)
    np.testing.assert_array_equal(step.torch.indices, train)
    assert len(step.manual.indices) == 20 and not np.isin(step.manual.indices, held_out).any()


@pytest.mark.parametrize("case", CASES)
def test_the_micro_batches_shares_add_up_to_the_steps_gradient_and_loss(case):
    data, cfg = CASES[case]
    stepper = Stepper(data, cfg)
    for _ in range(min(cfg.iterations, 5)):
        step = stepper.next()
        micro = stepper.micro_batches()
        assert micro.adds_up, (micro.gradient_gap, micro.loss_gap, micro.norm_gap)
        assert micro.t == step.t and micro.accumulate == cfg.accumulate
        assert micro.gradient.shape == (2, cfg.accumulate, len(stepper.init))
        # the last share is the loop's own `loss` at the yield (loss / accumulate)
        assert micro.loss[0, -1] == pytest.approx(step.manual.loss, rel=1e-12)
        assert micro.loss[1, -1] == pytest.approx(step.torch.loss, rel=1e-12)
        frame = micro.frame()
        assert list(frame["micro-batch"]) == list(range(1, cfg.accumulate + 1))
        assert list(frame["samples"]) == [len(r) for r in step.manual.micro_indices]
        assert stepper.micro_batches(step.t) is micro  # kept, not run again


def test_a_micro_batch_left_out_or_taken_from_another_step_breaks_the_sum():
    data, cfg = CASES["everything, sgd"]
    stepper = Stepper(data, cfg)
    stepper.run_to(3)
    micro = stepper.micro_batches()
    assert micro.adds_up
    fewer = dataclasses.replace(
        micro, rows=micro.rows[:-1], loss=micro.loss[:, :-1], gradient=micro.gradient[:, :-1]
    )
    assert not fewer.adds_up and (fewer.gradient_gap > SUM_TOLERANCE).all()
    stepper.run_to(4)
    other = stepper.micro_batches(4)
    swapped = dataclasses.replace(micro, gradient=other.gradient, loss=other.loss)
    assert not swapped.adds_up
    # clipping applied to the sum is part of the claim: without the factor it does not hold
    assert micro.factor.max() < 1
    unclipped = dataclasses.replace(micro, factor=np.ones(2))
    assert not unclipped.adds_up and (unclipped.gradient_gap > SUM_TOLERANCE).all()
    nan = dataclasses.replace(micro, step_gradient=np.full_like(micro.step_gradient, np.nan))
    assert not nan.adds_up


def test_without_zero_grad_the_sum_holds_only_with_what_the_reset_left():
    data, cfg = CASES["accumulate without zero_grad, clipped hard"]
    stepper = Stepper(data, cfg)
    stepper.run_to(2)
    micro = stepper.micro_batches()
    assert micro.adds_up and np.abs(micro.carried).max() > 0
    assert not dataclasses.replace(micro, carried=np.zeros_like(micro.carried)).adds_up


def test_a_replayed_order_that_is_off_is_caught(monkeypatch):
    # The micro-batches' rows come from the shared order drawn again: drawn from another seed, the
    # rows are wrong, the last is not the loader's, and the shares no longer add up.
    data, cfg = CASES["everything, sgd"]
    real = trace.batch_indices
    monkeypatch.setattr(trace, "batch_indices", lambda m, b, seed, d: real(m, b, seed + 1, d))
    stepper = Stepper(data, cfg)
    step = stepper.next()
    assert not np.array_equal(step.manual.micro_indices[-1], step.manual.indices)
    assert not stepper.micro_batches().adds_up


@pytest.mark.parametrize("max_norm, clipped", [(1e-3, True), (1e6, False)])
def test_the_clip_factor_is_torchs_formula_and_says_whether_it_clipped(max_norm, clipped):
    cfg = lib.Config(lr=0.05, batch_size=6, iterations=6, clip_grad_norm=max_norm, accumulate=2)
    result = lib.run(DATA, cfg)
    _, steps = stepped(DATA, cfg)
    for step in steps:
        for loop in ("manual", "torch"):
            side = getattr(step, loop)
            assert side.norm == getattr(result, loop).grad_norm[step.t]
            assert side.clip_factor == min(1.0, max_norm / (side.norm + 1e-6))
            assert side.clipped is clipped is bool(getattr(result, loop).clipped[step.t])
            if clipped:  # the gradient step() used is the clipped one: of length max_norm
                assert np.linalg.norm(side.gradient) == pytest.approx(max_norm, rel=1e-5)


def test_without_the_new_settings_the_new_fields_are_empty():
    step = Stepper(DATA, lib.Config(lr=0.05, batch_size=8, iterations=3)).next()
    for side in (step.manual, step.torch):
        assert side.lr is side.norm is side.clip_factor is side.clipped is side.val_loss is None
        assert side.step_loss == side.loss and len(side.micro_indices) == 1


def test_micro_batches_of_a_step_not_held_are_refused_in_words():
    stepper = Stepper(DATA, lib.Config(lr=0.05, batch_size=8, iterations=3))
    with pytest.raises(ValueError, match="run to it first"):
        stepper.micro_batches()
    stepper.next()
    with pytest.raises(ValueError, match="step 2 is not one the Stepper holds"):
        stepper.micro_batches(2)


def test_a_micro_batches_frame_names_its_rows():
    rows = (np.arange(3), np.arange(3, 15))
    micro = MicroBatches(
        0, rows, np.ones((2, 2)), np.ones((2, 2, 1)), np.zeros((2, 1)), np.ones(2),
        np.full(2, 2.0), np.full((2, 1), 2.0),
    )  # fmt: skip
    assert micro.adds_up
    assert list(micro.frame()["rows"]) == ["0, 1, 2", "3, 4, 5, 6, 7, 8, 9, 10, … (4 more)"]


def test_the_clip_gap_measures_that_the_gradient_was_scaled_by_the_factor():
    cfg = lib.Config(lr=0.05, batch_size=6, iterations=3, clip_grad_norm=1e-3)
    side = Stepper(DATA, cfg).next().manual
    assert side.clipped and side.clip_gap <= SUM_TOLERANCE
    # a gradient that was not scaled is as long as the norm, not factor × norm
    unscaled = dataclasses.replace(side, gradient=side.gradient / side.clip_factor)
    assert unscaled.clip_gap > 0.1
    assert Stepper(DATA, cfg.replace(clip_grad_norm=None)).next().manual.clip_gap is None


def test_a_float32_torch_loop_is_held_to_its_own_rounding_and_no_looser_for_the_hand_loop():
    cfg = lib.Config(
        lr=0.05, batch_size=8, iterations=3, accumulate=3, clip_grad_norm=0.5, torch_dtype="float32"
    )
    stepper = Stepper(DATA, cfg)
    step = stepper.next()
    micro = stepper.micro_batches()
    hand, twin = micro.tolerance
    assert hand == SUM_TOLERANCE and 1e-6 < twin < 1e-4
    assert micro.adds_up and step.torch.clip_gap <= twin
    # float32 rounding is far above the float64 tolerance: held to that, the torch sums fail
    assert micro.gradient_gap[1] > SUM_TOLERANCE
    assert not dataclasses.replace(micro, tolerance=(SUM_TOLERANCE, SUM_TOLERANCE)).adds_up
    # and a share left out fails at float32's tolerance too
    fewer = dataclasses.replace(
        micro, rows=micro.rows[:-1], loss=micro.loss[:, :-1], gradient=micro.gradient[:, :-1]
    )
    assert not fewer.adds_up
