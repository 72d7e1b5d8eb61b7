"""The whole training loop (issue 12): schedules, clipping, accumulation, a validation split and
drop_last, in both loops and in lib.run's records.

The references here are written in the test: the batch order from the documented rule (a
permutation of the training rows per epoch from the seed's batch generator, full batch in natural
order, DataLoader's drop_last), the gradient of the mse by hand, the validation loss with torch's
own modules and criteria on the held-out rows, the lr sequence with torch's own schedulers.
"""

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, note, settings
from hypothesis import strategies as st
from torch import nn

import lib
from bench import timing
from bench.loops import bare_torch_whole, hand_loop_alone
from lib.engine.data import rngs, split_rows
from lib.twins.schedules import SCHEDULERS

# ---------------------------------------------------------------- references written here


def shuffled_batches(m: int, batch_size: int, seed: int, drop_last: bool):
    """The documented batch order over m training rows: one permutation per epoch from the seed's
    batch generator, sliced; full batch in natural order; DataLoader's drop_last."""
    rng = rngs(seed)[1]
    while True:
        if batch_size >= m:
            yield np.arange(m)
            continue
        order = rng.permutation(m)
        stop = m - m % batch_size if drop_last else m
        for start in range(0, stop, batch_size):
            yield order[start : start + batch_size]


def replay_sgd(data: lib.Dataset, cfg: lib.Config, scale_losses: bool = True) -> dict:
    """Plain SGD on a linear model with the mse, accumulation, clipping and zero_grad by hand.

    Each step: `accumulate` micro-batches, each loss / accumulate (unless not scale_losses, a
    false variant), their gradients summed into the buffer (kept across steps without zero_grad),
    the norm before clipping, the buffer scaled to max_norm where longer, then the update.
    """
    assert cfg.model == "linear" and cfg.loss == "mse" and cfg.optimizer == "sgd"
    assert not cfg.optimizer_kwargs and cfg.scheduler is None
    train = split_rows(data.m, cfg.val_fraction, cfg.seed)[0]
    A = (data.with_ones() if cfg.bias else data.X)[train]
    y = data.y[train]
    order = shuffled_batches(len(train), cfg.batch_size, cfg.seed, cfg.drop_last)
    k = cfg.accumulate
    share = k if scale_losses else 1
    w = lib.initial_weights(data, cfg)
    grad = np.zeros_like(w)
    out = {"loss": [], "grad_norm": [], "weights": [w.copy()], "clipped": [], "sizes": []}
    for _ in range(cfg.iterations):
        if cfg.zero_grad:
            grad = np.zeros_like(w)
        loss = 0.0
        for _ in range(k):
            idx = next(order)
            error = A[idx] @ w - y[idx]
            loss += np.mean(error**2) / share
            grad += 2 / len(idx) * A[idx].T @ error / share
            out["sizes"].append(len(idx))
        norm = float(np.sqrt(grad @ grad))
        clipped = False
        if cfg.clip_grad_norm is not None:
            factor = cfg.clip_grad_norm / (norm + 1e-6)
            clipped = factor < 1
            grad = grad * min(factor, 1.0)
        w = w - cfg.lr * grad
        out["loss"].append(loss)
        out["grad_norm"].append(norm)
        out["weights"].append(w.copy())
        out["clipped"].append(clipped)
    return {key: np.array(v) for key, v in out.items()}


def torch_model(data: lib.Dataset, cfg: lib.Config, weights: np.ndarray) -> nn.Module:
    """torch's own model for the Config, loaded with flat weights in parameters() order."""
    n = data.n
    if cfg.model == "mlp":
        act = nn.Tanh() if cfg.activation == "tanh" else nn.ReLU()
        net = nn.Sequential(
            nn.Linear(n, cfg.hidden, bias=cfg.bias, dtype=torch.float64),
            act,
            nn.Linear(cfg.hidden, 1, bias=cfg.bias, dtype=torch.float64),
        )
    else:
        net = nn.Linear(n, 1, bias=cfg.bias, dtype=torch.float64)
    nn.utils.vector_to_parameters(torch.tensor(weights), net.parameters())
    return net


def held_out_loss(data: lib.Dataset, cfg: lib.Config, weights: np.ndarray, rows) -> float:
    """The criterion on the given rows with torch's own modules, under torch.no_grad()."""
    criterion = {
        "mse": nn.MSELoss(),
        "half_mse": nn.MSELoss(),
        "sse": nn.MSELoss(reduction="sum"),
        "bce": nn.BCEWithLogitsLoss(),
    }[cfg.loss]
    X, y = torch.tensor(data.X[rows]), torch.tensor(data.y[rows])[:, None]
    with torch.no_grad():
        value = criterion(torch_model(data, cfg, weights)(X), y).item()
    return value / 2 if cfg.loss == "half_mse" else value


def close_weights(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


# ---------------------------------------------------------------- parity over every combination

SHORT_KWARGS = {  # each schedule moves the lr within a dozen steps
    None: {},
    "step": {"step_size": 2, "gamma": 0.5},
    "multistep": {"milestones": [2, 4], "gamma": 0.3},
    "exponential": {"gamma": 0.8},
    "cosine": {},
    "linear": {"start_factor": 0.25, "total_iters": 4},
    "onecycle": {},
}
OPTIMIZER_KWARGS = {
    "sgd": {"momentum": 0.9},
    "adam": {},
    "adamw": {"weight_decay": 0.1},
    "rmsprop": {"momentum": 0.5},
    "adagrad": {},
}


@st.composite
def whole_loops(draw) -> tuple[lib.Dataset, lib.Config]:
    model = draw(st.sampled_from(["linear", "logistic", "mlp"]))
    classify = model == "logistic" or (model == "mlp" and draw(st.booleans()))
    m, data_seed = draw(st.integers(4, 40)), draw(st.integers(0, 50))
    if classify:
        data = lib.datasets.blobs(m=m, seed=data_seed)
        loss = "bce"
    else:
        data = lib.datasets.linear(m=m, n=draw(st.integers(1, 3)), noise=0.3, seed=data_seed)
        loss = draw(st.sampled_from(["mse", "half_mse", "sse"]))
    optimizer = draw(st.sampled_from(sorted(OPTIMIZER_KWARGS)))
    scheduler = draw(st.sampled_from([None, *SCHEDULERS]))
    if scheduler == "onecycle" and optimizer == "adagrad":  # Adagrad has no momentum to cycle
        scheduler = "linear"
    val_fraction = draw(st.sampled_from([0.0, 0.2, 0.5]))
    n_train = len(split_rows(m, val_fraction, 0)[0])
    batch_size = draw(st.integers(1, 45))
    lr = 10 ** draw(st.floats(-3, -1))
    if loss == "sse":
        lr /= min(batch_size, n_train)
    cfg = lib.Config(
        lr=lr,
        batch_size=batch_size,
        iterations=draw(st.integers(1, 12)),
        loss=loss,
        model=model,
        hidden=draw(st.integers(1, 5)),
        activation=draw(st.sampled_from(["tanh", "relu"])),
        bias=draw(st.booleans()),
        init=draw(st.sampled_from(["zeros", "normal"])),
        seed=draw(st.integers(0, 2**32 - 1)),
        zero_grad=draw(st.booleans()),
        optimizer=optimizer,
        optimizer_kwargs=OPTIMIZER_KWARGS[optimizer],
        scheduler=scheduler,
        scheduler_kwargs=SHORT_KWARGS[scheduler],
        clip_grad_norm=draw(st.sampled_from([None, 0.05, 1.0, 100.0])),
        accumulate=draw(st.integers(1, 4)),
        val_fraction=val_fraction,
        eval_every=draw(st.sampled_from([None, 1, 2, 5])),
        drop_last=draw(st.booleans()) and batch_size <= n_train,
    )
    return data, cfg


def assert_agree(a: np.ndarray, b: np.ndarray) -> None:
    """Equal to 1e-10 (relative once values outgrow 1) wherever both are finite."""
    both = np.isfinite(a) & np.isfinite(b)
    np.testing.assert_allclose(a[both], b[both], rtol=1e-9, atol=1e-10)


@settings(max_examples=50)
@given(case=whole_loops())
def test_both_loops_agree_to_1e_10_on_every_combination(case):
    """scheduler x clipping x accumulation x validation x drop_last x optimizer x model."""
    data, cfg = case
    result = lib.run(data, cfg)
    note(f"{cfg}\nsteps={result.steps} stopped={result.stopped} diff={result.max_abs_diff}")
    m, t = result.manual, result.torch
    wm, wt = m.weights, t.weights
    finite = np.isfinite(wm).all(axis=1) & np.isfinite(wt).all(axis=1)
    assert finite[:-1].all() and (finite.all() or result.stopped == "diverged")
    assert result.steps == cfg.iterations or result.stopped == "diverged"
    scale = np.maximum(1.0, np.maximum(np.abs(wm), np.abs(wt)).max(axis=1))
    assert np.all(np.abs(wm - wt).max(axis=1)[finite] <= 1e-10 * scale[finite])
    np.testing.assert_array_equal(wm[0], lib.initial_weights(data, cfg))
    for name in ("loss", "grad_norm", "lr"):
        assert getattr(m, name).shape == getattr(t, name).shape == (result.steps,)
        assert_agree(getattr(m, name), getattr(t, name))
    np.testing.assert_array_equal(m.clipped, t.clipped)
    assert m.clipped.dtype == bool and (cfg.clip_grad_norm is not None or not m.clipped.any())
    # validation: the same held-out rows and the same passes in both loops
    every = cfg.eval_interval
    n_evals = result.steps // every if cfg.val_fraction > 0 else 0
    np.testing.assert_array_equal(
        result.val_steps, np.arange(every - 1, result.steps, every)[:n_evals]
    )
    assert m.val_loss.shape == t.val_loss.shape == (n_evals,)
    assert_agree(m.val_loss, t.val_loss)
    held_out = max(1, round(cfg.val_fraction * data.m)) if cfg.val_fraction > 0 else 0
    assert len(result.val_rows) == held_out


# ---------------------------------------------------------------- schedules through lib.run

TORCH_CLASSES = {
    "step": torch.optim.lr_scheduler.StepLR,
    "multistep": torch.optim.lr_scheduler.MultiStepLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "linear": torch.optim.lr_scheduler.LinearLR,
    "onecycle": torch.optim.lr_scheduler.OneCycleLR,
}
LONG_KWARGS = {  # each moves the lr all through a thousand steps
    "step": {"step_size": 70, "gamma": 0.7},
    "multistep": {"milestones": [100, 250, 900], "gamma": 0.5},
    "exponential": {"gamma": 0.997},
    "cosine": {"T_max": 150, "eta_min": 1e-4},
    "linear": {"start_factor": 0.05, "end_factor": 0.8, "total_iters": 600},
    "onecycle": {"max_lr": 0.01},  # total_steps: the run's 1,000
}


@pytest.mark.parametrize("name", SCHEDULERS)
def test_lib_runs_lr_is_torchs_own_schedule_over_a_thousand_accumulated_steps(name):
    """tests/test_schedules_clip.py checks each hand schedule against torch's, object to object;
    this checks what lib.run records: History.lr of both loops, one lr per optimizer step (two
    micro-batches each), equal to torch's own scheduler stepped after each optimizer.step()."""
    data = lib.datasets.linear(m=12, n=1, noise=0.1, seed=0)
    cfg = lib.Config(
        lr=1e-3,
        batch_size=4,
        iterations=1000,
        accumulate=2,
        optimizer="sgd",
        optimizer_kwargs={"momentum": 0.9},
        scheduler=name,
        scheduler_kwargs=LONG_KWARGS[name],
        clip_grad_norm=1.0,
    )
    result = lib.run(data, cfg)
    assert result.done and result.max_abs_diff < 1e-10
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=1e-3, momentum=0.9)
    kwargs = {"total_steps": 1000} if name == "onecycle" else {}
    scheduler = TORCH_CLASSES[name](optimizer, **LONG_KWARGS[name], **kwargs)
    expected = []
    for _ in range(1000):
        expected.append(optimizer.param_groups[0]["lr"])
        param.grad = torch.ones(1)
        optimizer.step()
        scheduler.step()
    assert len(np.unique(expected)) > 2
    for h in (result.manual, result.torch):
        np.testing.assert_allclose(h.lr, expected, rtol=0, atol=1e-15)


# ---------------------------------------------------------------- accumulation

BASE = lib.Config(
    lr=0.05,
    iterations=12,
    init="normal",
    seed=3,
    optimizer="sgd",
    optimizer_kwargs={"momentum": 0.9},
    scheduler="cosine",
    clip_grad_norm=0.8,
    eval_every=2,
)


def run_pair(m: int, k: int, b: int, **changes) -> tuple[lib.Result, lib.Result]:
    data = lib.datasets.linear(m=m, n=2, noise=0.5, seed=1)
    cfg = BASE.replace(**changes)
    return (
        lib.run(data, cfg.replace(accumulate=k, batch_size=b)),
        lib.run(data, cfg.replace(batch_size=k * b)),
    )


@pytest.mark.parametrize(
    "m,k,b,changes",
    [
        (20, 2, 5, {}),  # m divisible by k*b: each step's micro-batches are one batch's rows
        (24, 4, 3, {}),
        (30, 3, 10, {}),  # k*b = m: full batch against k thirds of a permutation
        (20, 3, 50, {}),  # full batch: every micro-batch is all the rows
        (10, 5, 1, {"optimizer": "adam", "optimizer_kwargs": {}}),
        (25, 2, 5, {"val_fraction": 0.2}),  # 20 training rows
    ],
)
def test_accumulate_k_of_batch_b_is_batch_k_times_b_on_the_same_rows(m, k, b, changes):
    acc, big = run_pair(m, k, b, **changes)
    assert acc.done and big.done
    for loop in ("manual", "torch"):
        a, c = getattr(acc, loop), getattr(big, loop)
        assert close_weights(a.weights, c.weights) < 1e-10
        np.testing.assert_allclose(a.loss, c.loss, rtol=1e-10)
        np.testing.assert_allclose(a.grad_norm, c.grad_norm, rtol=1e-10)
        np.testing.assert_array_equal(a.clipped, c.clipped)
        np.testing.assert_allclose(a.val_loss, c.val_loss, rtol=1e-10)
    assert close_weights(acc.manual.weights[0], acc.manual.weights[-1]) > 1e-3  # it trained


@pytest.mark.parametrize(
    "m,k,b,changes",
    [
        (10, 2, 3, {}),  # 10 rows: short batches, and steps that straddle two epochs
        (21, 2, 5, {}),
        # the sum: k micro-batches / k is 1/k of batch k*b's loss and gradient (unclipped: clipping
        # both to max_norm would hide the factor)
        (20, 2, 5, {"loss": "sse", "clip_grad_norm": None}),
    ],
)
def test_accumulation_is_not_batch_k_times_b_where_the_rows_differ(m, k, b, changes):
    acc, big = run_pair(m, k, b, **changes)
    assert acc.done and big.done
    assert close_weights(acc.manual.weights, big.manual.weights) > 1e-6
    assert close_weights(acc.torch.weights, big.torch.weights) > 1e-6


@pytest.mark.parametrize(
    "changes",
    [
        {"accumulate": 3, "batch_size": 4, "clip_grad_norm": 1.5, "val_fraction": 0.25},
        {"accumulate": 1, "batch_size": 5},
        {"accumulate": 2, "batch_size": 7, "clip_grad_norm": 4.0, "zero_grad": False},
        {"accumulate": 2, "batch_size": 4, "drop_last": True, "clip_grad_norm": 2.0},
        {"accumulate": 4, "batch_size": 100},  # full batch
    ],
)
def test_each_step_is_the_sum_of_its_scaled_micro_batches_and_the_norm_is_before_clipping(changes):
    """loss[t] = sum of the micro-batch losses / accumulate; grad_norm[t] the norm before clipping;
    clipped[t] where clip_grad_norm_ scaled it; the update uses the clipped sum. A replay written
    here; and the same replay without the / accumulate is not what lib records."""
    data = lib.datasets.linear(m=18, n=2, noise=0.5, seed=2)
    cfg = lib.Config(lr=0.1, iterations=15, init="normal", seed=7, **changes)
    result = lib.run(data, cfg)
    expected = replay_sgd(data, cfg)
    for h in (result.manual, result.torch):
        np.testing.assert_allclose(h.loss, expected["loss"], rtol=1e-10)
        np.testing.assert_allclose(h.grad_norm, expected["grad_norm"], rtol=1e-10)
        np.testing.assert_array_equal(h.clipped, expected["clipped"])
        assert close_weights(h.weights, expected["weights"]) < 1e-10
    if cfg.clip_grad_norm is not None:  # some steps clipped and some did not, or it proves less
        assert 0 < expected["clipped"].sum() < cfg.iterations
        assert (expected["grad_norm"][expected["clipped"]] > cfg.clip_grad_norm).all()
    if cfg.accumulate > 1:
        unscaled = replay_sgd(data, cfg, scale_losses=False)
        assert not np.allclose(result.manual.loss, unscaled["loss"], rtol=1e-6)


# ---------------------------------------------------------------- validation

VAL_CASES = {
    "linear mse": (lib.datasets.linear(m=40, n=3, noise=0.5, seed=0), {}),
    "linear sse, no bias": (
        lib.datasets.linear(m=40, n=2, noise=0.5, seed=1),
        {"loss": "sse", "bias": False, "lr": 0.002},
    ),
    "logistic": (lib.datasets.blobs(m=40, seed=0), {"model": "logistic", "lr": 0.3}),
    "mlp relu bce, accumulate": (
        lib.datasets.blobs(m=40, seed=2),
        {"model": "mlp", "hidden": 4, "activation": "relu", "loss": "bce", "accumulate": 3},
    ),
    "mlp half_mse, adam, onecycle": (
        lib.datasets.linear(m=40, n=2, noise=0.3, seed=3),
        {
            "model": "mlp",
            "hidden": 3,
            "loss": "half_mse",
            "optimizer": "adam",
            "scheduler": "onecycle",
        },
    ),
}


@pytest.mark.parametrize("name", VAL_CASES)
def test_val_loss_is_the_criterion_on_the_held_out_rows_with_the_weights_after_val_steps(name):
    data, changes = VAL_CASES[name]
    cfg = lib.Config(
        **{
            "lr": 0.05,
            "batch_size": 8,
            "iterations": 20,
            "init": "normal",
            "seed": 5,
            "val_fraction": 0.25,
            "eval_every": 3,
            **changes,
        }
    )
    result = lib.run(data, cfg)
    assert result.done
    np.testing.assert_array_equal(result.val_steps, [2, 5, 8, 11, 14, 17])
    rows = result.val_rows
    assert len(rows) == 10 and np.all(np.diff(rows) > 0) and rows[0] >= 0 and rows[-1] < data.m
    for h in (result.manual, result.torch):
        assert h.val_loss.shape == (6,)
        expected = [held_out_loss(data, cfg, h.weights[s + 1], rows) for s in result.val_steps]
        np.testing.assert_allclose(h.val_loss, expected, rtol=1e-10, atol=1e-12)
        # a false reading: the weights before the step, or the training rows, are not it
        before = [held_out_loss(data, cfg, h.weights[s], rows) for s in result.val_steps]
        assert not np.allclose(h.val_loss, before, rtol=1e-6)
        train = np.setdiff1d(np.arange(data.m), rows)
        on_train = [held_out_loss(data, cfg, h.weights[s + 1], train) for s in result.val_steps]
        assert not np.allclose(h.val_loss, on_train, rtol=1e-6)
    frame = result.frame()
    val = frame[frame["metric"] == "val_loss"]
    assert len(val) == 12 and set(val["step"]) == {s + 1 for s in result.val_steps}
    torch_val = val[val["loop"] == "torch"].sort_values("step")["value"].to_numpy()
    np.testing.assert_array_equal(torch_val, result.torch.val_loss)


@pytest.mark.parametrize("clip", [None, 1.0])
def test_val_loss_is_read_at_every_evaluating_step_across_the_recorders_chunks(clip):
    """lib.run records steps in chunks of CHUNK_STEPS: an eval_every that does not divide it puts
    evaluations on both sides of every chunk boundary (with clipping, the per-step reading path;
    without, the tight loop cut at the evaluating steps)."""
    data = lib.datasets.linear(m=64, n=3, seed=2)
    cfg = lib.Config(lr=0.05, batch_size=8, iterations=700, val_fraction=0.25, eval_every=7,
                     clip_grad_norm=clip, seed=3)  # fmt: skip
    assert lib.engine.lockstep.CHUNK_STEPS % 7
    result = lib.run(data, cfg)
    np.testing.assert_array_equal(result.val_steps, np.arange(6, 700, 7))
    for h in (result.manual, result.torch):
        expected = [held_out_loss(data, cfg, h.weights[s + 1], result.val_rows)
                    for s in result.val_steps]  # fmt: skip
        np.testing.assert_allclose(h.val_loss, expected, rtol=1e-10, atol=1e-12)


def test_the_default_eval_interval_is_about_200_passes_and_no_split_means_no_validation():
    data = lib.datasets.linear(m=30, n=1, seed=0)
    cfg = lib.Config(lr=0.01, batch_size=8, iterations=450, val_fraction=0.2)
    assert cfg.eval_interval == 3  # ceil(450 / 200)
    result = lib.run(data, cfg)
    np.testing.assert_array_equal(result.val_steps, np.arange(2, 450, 3))
    assert result.manual.val_loss.shape == result.torch.val_loss.shape == (150,)
    plain = lib.run(data, cfg.replace(val_fraction=0.0, iterations=20))
    assert plain.val_steps.shape == plain.val_rows.shape == plain.manual.val_loss.shape == (0,)
    assert "val_loss" not in set(plain.frame()["metric"])
    assert lib.Config(iterations=100).eval_interval == 1
    assert lib.Config(iterations=201).eval_interval == 2


def test_the_held_out_rows_never_reach_training_and_are_the_same_in_both_loops():
    """Poison the held-out rows' targets: the training histories do not move by a bit, the
    validation loss does, in both loops alike."""
    data = lib.datasets.linear(m=30, n=2, noise=0.3, seed=4)
    cfg = lib.Config(
        lr=0.05,
        batch_size=4,
        iterations=40,
        init="normal",
        seed=9,
        val_fraction=0.3,
        eval_every=4,
        accumulate=2,
        clip_grad_norm=0.5,
        scheduler="exponential",
        scheduler_kwargs={"gamma": 0.95},
    )
    result = lib.run(data, cfg)
    rows = result.val_rows
    assert len(rows) == 9
    y = np.array(data.y)
    y[rows] = 1e3
    poisoned = lib.run(lib.Dataset(data.X, y), cfg)
    np.testing.assert_array_equal(poisoned.val_rows, rows)
    for loop in ("manual", "torch"):
        a, b = getattr(result, loop), getattr(poisoned, loop)
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.loss, b.loss)
        assert (np.abs(a.val_loss - b.val_loss) > 1e3).all()
    np.testing.assert_allclose(result.manual.val_loss, result.torch.val_loss, rtol=1e-12)
    # the false case: poison a training row and the training moves
    y = np.array(data.y)
    y[np.setdiff1d(np.arange(data.m), rows)[0]] = 1e3
    assert not np.array_equal(
        lib.run(lib.Dataset(data.X, y), cfg).manual.weights, result.manual.weights
    )


@pytest.mark.parametrize("batch_size", [4, 7, 100])
def test_with_a_split_the_loops_train_on_the_training_rows_as_if_they_were_the_data(batch_size):
    """The documented sense in which validation leaves the batches alone: the init is the same,
    and the batch order is the seed's permutation over the training rows, exactly as a run on a
    Dataset of those rows alone."""
    data = lib.datasets.linear(m=33, n=2, noise=0.3, seed=6)
    cfg = lib.Config(
        lr=0.05, batch_size=batch_size, iterations=25, init="normal", seed=11, accumulate=2
    )
    split = lib.run(data, cfg.replace(val_fraction=0.3))
    whole = lib.run(data, cfg)
    np.testing.assert_array_equal(split.manual.weights[0], whole.manual.weights[0])
    train = np.setdiff1d(np.arange(data.m), split.val_rows)
    np.testing.assert_array_equal(train, split_rows(data.m, 0.3, cfg.seed)[0])
    alone = lib.run(lib.Dataset(data.X[train], data.y[train]), cfg)
    for loop in ("manual", "torch"):
        a, b = getattr(split, loop), getattr(alone, loop)
        assert close_weights(a.weights, b.weights) < 1e-12
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
    if batch_size < len(train):  # minibatches: the split run is not the run on all rows
        assert close_weights(split.manual.weights, whole.manual.weights) > 1e-6


def test_the_split_is_seeded_and_does_not_depend_on_the_batch():
    data = lib.datasets.linear(m=50, n=1, seed=0)
    cfg = lib.Config(iterations=3, val_fraction=0.2, seed=4)
    rows = lib.run(data, cfg).val_rows
    np.testing.assert_array_equal(lib.run(data, cfg.replace(batch_size=5)).val_rows, rows)
    np.testing.assert_array_equal(lib.run(data, cfg.replace(accumulate=3)).val_rows, rows)
    assert not np.array_equal(lib.run(data, cfg.replace(seed=5)).val_rows, rows)
    assert len(lib.run(lib.datasets.linear(m=3, n=1), cfg.replace(val_fraction=0.01)).val_rows) == 1


def test_the_no_training_rows_message_is_exact_for_a_one_row_dataset():
    one_row = lib.Dataset([[1.0]], [2.0])
    for fraction in (0.5, 0.01, 1e-9):  # every one of them holds out the only row
        with pytest.raises(ValueError, match="val_fraction") as info:
            lib.run(one_row, lib.Config(val_fraction=fraction))
        assert "smaller val_fraction" not in str(info.value)
        assert "all 1 rows" not in str(info.value)
        assert "use val_fraction=0" in str(info.value)


def test_the_no_training_rows_advice_names_a_fraction_that_works():
    data = lib.datasets.linear(m=10, n=1, seed=0)
    with pytest.raises(ValueError, match=r"below (\S+)") as info:
        lib.run(data, lib.Config(val_fraction=0.96, iterations=2))
    limit = float(re.search(r"below (\S+)", str(info.value)).group(1))
    lib.run(data, lib.Config(val_fraction=limit - 1e-9, iterations=2))  # just below: it trains
    with pytest.raises(ValueError, match="no training rows"):
        lib.run(data, lib.Config(val_fraction=limit, iterations=2))


# ---------------------------------------------------------------- drop_last


def test_drop_last_drops_the_short_batch_of_every_epoch():
    data = lib.datasets.linear(m=10, n=2, noise=0.3, seed=8)
    cfg = lib.Config(lr=0.1, batch_size=4, iterations=9, init="normal", seed=2, drop_last=True)
    dropped, kept = lib.run(data, cfg), lib.run(data, cfg.replace(drop_last=False))
    expected = replay_sgd(data, cfg)
    assert set(expected["sizes"]) == {4}  # 10 rows in 4s: two batches an epoch, 2 rows dropped
    for h in (dropped.manual, dropped.torch):
        assert close_weights(h.weights, expected["weights"]) < 1e-10
        np.testing.assert_allclose(h.loss, expected["loss"], rtol=1e-10)
    # without drop_last the third step is the short batch of 2: the runs part there, not before
    assert close_weights(dropped.manual.weights[:3], kept.manual.weights[:3]) == 0.0
    assert close_weights(dropped.manual.weights[3], kept.manual.weights[3]) > 1e-6
    assert replay_sgd(data, cfg.replace(drop_last=False))["sizes"][2] == 2
    assert close_weights(kept.manual.weights, replay_sgd(data, kept.config)["weights"]) < 1e-10


def test_drop_last_with_a_batch_of_all_training_rows_is_full_batch_and_one_more_is_refused():
    data = lib.datasets.linear(m=10, n=1, seed=0)
    cfg = lib.Config(batch_size=8, iterations=3, drop_last=True, val_fraction=0.2)  # 8 train rows
    result = lib.run(data, cfg)
    assert result.done and result.max_abs_diff < 1e-10
    with pytest.raises(ValueError, match=r"drop_last with batch_size 9 > 8 training rows"):
        lib.run(data, cfg.replace(batch_size=9))
    assert lib.run(data, cfg.replace(batch_size=9, drop_last=False)).done


# ---------------------------------------------------------------- partial results


def check_partial(result: lib.Result, full: lib.Result) -> None:
    """A partial Result's validation matches its steps, and is the full run's beginning."""
    every = result.config.eval_interval
    n = result.steps // every
    np.testing.assert_array_equal(result.val_steps, full.val_steps[:n])
    assert (result.val_steps < result.steps).all()
    for loop in ("manual", "torch"):
        h = getattr(result, loop)
        assert h.val_loss.shape == (n,)
        np.testing.assert_array_equal(h.val_loss, getattr(full, loop).val_loss[:n])
    frame = result.frame()
    assert (frame["metric"] == "val_loss").sum() == 2 * n


WHOLE = lib.Config(
    lr=0.05,
    batch_size=4,
    iterations=30,
    init="normal",
    seed=1,
    accumulate=2,
    val_fraction=0.25,
    eval_every=3,
    clip_grad_norm=0.5,
    scheduler="step",
    scheduler_kwargs={"step_size": 5},
)
PARTIAL_DATA = lib.datasets.linear(m=24, n=2, noise=0.3, seed=3)


@pytest.mark.parametrize("stop_at", [1, 2, 3, 4, 8, 9, 29])
def test_a_run_stopped_by_progress_keeps_consistent_validation(stop_at):
    full = lib.run(PARTIAL_DATA, WHOLE)
    result = lib.run(PARTIAL_DATA, WHOLE, progress=lambda r: r.steps >= stop_at, progress_every=0)
    assert result.stopped == "stopped" and result.steps == stop_at
    check_partial(result, full)


def test_a_run_stopped_by_the_time_limit_keeps_consistent_validation():
    every_step = WHOLE.replace(eval_every=1)
    first = lib.run(PARTIAL_DATA, every_step, time_limit=0, progress_every=0)
    assert first.stopped == "time limit" and first.steps == 1
    check_partial(first, lib.run(PARTIAL_DATA, every_step))
    long = WHOLE.replace(iterations=200_000, eval_every=7)
    result = lib.run(PARTIAL_DATA, long, time_limit=0.3, progress_every=0.05)
    assert result.stopped == "time limit" and 0 < result.steps < long.iterations
    # the step schedule does not depend on the run's length: a short run is its beginning
    check_partial(result, lib.run(PARTIAL_DATA, long.replace(iterations=result.steps)))


def test_a_diverged_run_keeps_consistent_validation():
    data = lib.datasets.linear(m=20, n=2, noise=0.3, seed=0)
    cfg = lib.Config(
        lr=5.0, batch_size=4, iterations=400, val_fraction=0.2, eval_every=2, loss="sse"
    )
    result = lib.run(data, cfg)
    assert result.stopped == "diverged"
    n = result.steps // 2
    assert (
        result.val_steps.shape
        == result.manual.val_loss.shape
        == result.torch.val_loss.shape
        == (n,)
    )
    finite = np.isfinite(result.manual.val_loss) & np.isfinite(result.torch.val_loss)
    assert finite[: max(0, n - 1)].all()
    np.testing.assert_allclose(
        result.manual.val_loss[finite], result.torch.val_loss[finite], rtol=1e-9
    )


# ---------------------------------------------------------------- the bench compares like with like


@pytest.mark.parametrize("case", timing.whole_loop_cases(quick=True), ids=lambda c: c.label[:60])
def test_the_whole_loop_bench_rows_compare_like_with_like(case):
    """bench's bare whole torch loop (a DataLoader, train/eval, accumulation, clipping, the
    scheduler, validation under no_grad) and the hand loop alone end where lib.run ends."""
    data = case.data()
    cfg = case.cfg.replace(iterations=15)
    result = lib.run(data, cfg)
    assert result.done and close_weights(result.manual.weights[0], result.manual.weights[-1]) > 1e-6
    assert close_weights(bare_torch_whole(data, cfg), result.torch.weights[-1]) < 1e-10
    assert close_weights(hand_loop_alone(data, cfg), result.manual.weights[-1]) < 1e-10
    assert math.isfinite(result.max_abs_diff)


def test_onecycle_with_no_annealing_steps_is_refused_in_words_not_at_the_last_step():
    # pct_start 1.0: torch's OneCycleLR divides by zero at the run's last scheduler.step()
    with pytest.raises(ValueError, match="pct_start 1 leaves the annealing phase no steps"):
        lib.Config(scheduler="onecycle", scheduler_kwargs={"pct_start": 1.0}, iterations=50)
    cfg = lib.Config(scheduler="onecycle", scheduler_kwargs={"pct_start": 0.999}, iterations=50)
    result = lib.run(lib.datasets.linear(m=40, n=2, seed=1), cfg)
    assert result.done and result.max_abs_diff < 1e-10
