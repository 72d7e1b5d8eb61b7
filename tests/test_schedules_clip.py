"""Learning-rate schedules and gradient clipping: the hand twins against torch's own.

Config.scheduler (torch.optim.lr_scheduler's StepLR ... OneCycleLR), scheduler_kwargs and
clip_grad_norm (torch.nn.utils.clip_grad_norm_), in both loops; History.lr and History.clipped.
"""

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import lib
from lib.twins.optim import manual_optimizer, torch_optimizer
from lib.twins.schedules import SCHEDULERS, manual_scheduler, torch_scheduler

DATA = lib.datasets.linear(m=60, n=3, noise=0.1, seed=0)
# Keywords that make each schedule change the lr within a short run.
KWARGS = {
    "step": {"step_size": 10, "gamma": 0.5},
    "multistep": {"milestones": [15, 40, 40], "gamma": 0.3},
    "exponential": {"gamma": 0.98},
    "cosine": {"eta_min": 0.001},
    "linear": {"start_factor": 0.2, "total_iters": 30},
    "onecycle": {},
}
OPTIMIZERS = {"sgd": {"momentum": 0.9}, "adam": {}}


def config(**changes) -> lib.Config:
    base = dict(lr=0.05, iterations=60, batch_size=16, init="normal", seed=1)
    return lib.Config(**{**base, **changes})


@pytest.mark.parametrize(
    "scheduler,clip,optimizer,model",
    list(itertools.product(SCHEDULERS, (None, 0.3), OPTIMIZERS, ("linear", "mlp"))),
)
def test_both_loops_agree_under_every_schedule_with_and_without_clipping(
    scheduler, clip, optimizer, model
):
    cfg = config(
        scheduler=scheduler,
        scheduler_kwargs=KWARGS[scheduler],
        clip_grad_norm=clip,
        optimizer=optimizer,
        optimizer_kwargs=OPTIMIZERS[optimizer],
        model=model,
        hidden=4,
    )
    result = lib.run(DATA, cfg)
    assert result.done
    assert result.max_abs_diff < 1e-10
    m, t = result.manual, result.torch
    assert m.lr.shape == t.lr.shape == (cfg.iterations,)
    np.testing.assert_allclose(m.lr, t.lr, rtol=0, atol=1e-12)
    assert len(np.unique(m.lr)) > 1  # the schedule did change the lr
    np.testing.assert_allclose(m.grad_norm, t.grad_norm, rtol=1e-9)
    np.testing.assert_array_equal(m.clipped, t.clipped)
    assert m.clipped.any() == (clip is not None)


def _lr_sequences(name: str, kwargs: dict, optimizer: str, okw: dict, steps: int):
    """Each step's lr and momentum (Adam's beta1) under the hand schedule and torch's."""
    weights, param = np.zeros(1), torch.zeros(1, requires_grad=True)
    hand, twin = (
        manual_optimizer(optimizer, weights, 0.05, okw),
        torch_optimizer(optimizer, [param], 0.05, okw),
    )
    hand_s, twin_s = manual_scheduler(name, hand, kwargs), torch_scheduler(name, twin, kwargs)
    rows = []
    for _ in range(steps):
        group = twin.param_groups[0]
        momentum = "betas" if optimizer == "adam" else "momentum"
        hand_m = hand.betas[0] if optimizer == "adam" else hand.momentum
        twin_m = group["betas"][0] if optimizer == "adam" else group["momentum"]
        rows.append((hand.lr, group["lr"], hand_m, twin_m))
        assert momentum in group
        twin.step()
        twin_s.step()
        hand_s.step()
    return np.array(rows)


LONG = {
    "step": {"step_size": 70, "gamma": 0.7},
    "multistep": {"milestones": [100, 250, 250, 900], "gamma": 0.5},
    "exponential": {"gamma": 0.995},
    "cosine": {"T_max": 150, "eta_min": 0.002},  # past T_max the cosine climbs again
    "linear": {"start_factor": 0.05, "end_factor": 0.8, "total_iters": 600},
    "onecycle": {"max_lr": 0.2, "total_steps": 1000},
}


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("optimizer,okw", [("sgd", {"momentum": 0.9}), ("adam", {})])
def test_each_hand_schedule_sets_torchs_lr_for_a_thousand_steps(name, optimizer, okw):
    rows = _lr_sequences(name, LONG[name], optimizer, okw, 1000)
    np.testing.assert_allclose(rows[:, 0], rows[:, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(rows[:, 2], rows[:, 3], rtol=0, atol=1e-12)
    assert len(np.unique(rows[:, 1])) > 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_lr": 0.1, "total_steps": 1000, "three_phase": True, "anneal_strategy": "linear"},
        {"max_lr": 0.1, "total_steps": 1000, "base_momentum": 0.5, "max_momentum": 0.99},
    ],
)
@pytest.mark.parametrize(
    "optimizer,okw", [("sgd", {"momentum": 0.9}), ("adam", {}), ("rmsprop", {"momentum": 0.5})]
)
def test_onecycle_cycles_momentum_or_beta1_as_torch_does(kwargs, optimizer, okw):
    rows = _lr_sequences("onecycle", kwargs, optimizer, okw, 1000)
    np.testing.assert_allclose(rows[:, 0], rows[:, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(rows[:, 2], rows[:, 3], rtol=0, atol=1e-12)
    assert rows[:, 3].min() < rows[0, 3]  # the momentum did move


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_onecycles_momentum_cycling_changes_the_run_and_both_loops_follow(optimizer):
    cfg = config(scheduler="onecycle", optimizer=optimizer, optimizer_kwargs=OPTIMIZERS[optimizer])
    cycled = lib.run(DATA, cfg)
    fixed = lib.run(DATA, cfg.replace(scheduler_kwargs={"cycle_momentum": False}))
    assert cycled.max_abs_diff < 1e-10 and fixed.max_abs_diff < 1e-10
    assert np.abs(cycled.manual.weights[-1] - fixed.manual.weights[-1]).max() > 1e-6


def test_grad_norm_is_the_norm_before_clipping_as_clip_grad_norm_returns_it():
    cfg = lib.Config(lr=0.05, iterations=1, batch_size=DATA.m, clip_grad_norm=0.1)
    result = lib.run(DATA, cfg)
    # torch by hand: the same full batch from the same (zero) init
    net = nn.Linear(DATA.n, 1, dtype=torch.float64)
    nn.init.zeros_(net.weight), nn.init.zeros_(net.bias)
    x = torch.tensor(DATA.X)
    loss = nn.MSELoss()(net(x), torch.tensor(DATA.y).reshape(-1, 1))
    loss.backward()
    total = float(nn.utils.clip_grad_norm_(net.parameters(), 0.1))
    assert total > 0.1
    assert result.torch.grad_norm[0] == pytest.approx(total, rel=1e-12)
    assert result.manual.grad_norm[0] == pytest.approx(total, rel=1e-12)
    unclipped = lib.run(DATA, cfg.replace(clip_grad_norm=None))
    assert unclipped.manual.grad_norm[0] == pytest.approx(total, rel=1e-12)
    assert result.manual.clipped.tolist() == result.torch.clipped.tolist() == [True]
    # the clipped step has length lr * max_norm (SGD without momentum)
    step = np.linalg.norm(result.manual.weights[1] - result.manual.weights[0])
    assert step == pytest.approx(0.05 * 0.1, rel=1e-5)
    np.testing.assert_allclose(result.manual.weights[1], result.torch.weights[1], atol=1e-15)


def test_clipping_changes_the_weights_only_when_it_clips():
    cfg = config(iterations=80)
    plain = lib.run(DATA, cfg)
    loose = lib.run(DATA, cfg.replace(clip_grad_norm=1e9))
    tight = lib.run(DATA, cfg.replace(clip_grad_norm=0.2))
    assert not loose.manual.clipped.any() and not loose.torch.clipped.any()
    np.testing.assert_array_equal(loose.manual.weights, plain.manual.weights)
    np.testing.assert_array_equal(loose.torch.weights, plain.torch.weights)
    assert tight.max_abs_diff < 1e-10
    assert np.abs(tight.manual.weights[-1] - plain.manual.weights[-1]).max() > 1e-3
    # clipped exactly where clip_grad_norm_'s clip_coef is below 1
    for h in (tight.manual, tight.torch):
        np.testing.assert_array_equal(h.clipped, 0.2 / (h.grad_norm + 1e-6) < 1)
    assert 0 < tight.manual.clipped.sum() <= cfg.iterations


def test_the_defaults_keep_the_constant_lr_and_clip_nothing():
    cfg = lib.Config(iterations=20)
    assert (cfg.scheduler, cfg.scheduler_kwargs, cfg.clip_grad_norm) == (None, {}, None)
    result = lib.run(DATA, cfg)
    for h in (result.manual, result.torch):
        np.testing.assert_array_equal(h.lr, np.full(20, cfg.lr))
        assert h.clipped.dtype == bool and not h.clipped.any()


def test_the_runs_lengths_are_the_defaults_and_follow_replace():
    cfg = lib.Config(lr=0.2, iterations=300, scheduler="cosine")
    assert cfg.scheduler_kwargs == {"T_max": 300}
    one = lib.Config(lr=0.2, iterations=300, scheduler="onecycle")
    assert one.scheduler_kwargs == {"total_steps": 300, "max_lr": 0.2}
    again = one.replace(iterations=500, lr=0.1)
    assert again.scheduler_kwargs == {"total_steps": 500, "max_lr": 0.1}
    kept = lib.Config(iterations=300, scheduler="cosine", scheduler_kwargs={"T_max": 50})
    assert kept.replace(iterations=400).scheduler_kwargs == {"T_max": 50}
    epochs = lib.Config(
        iterations=300, scheduler="onecycle", scheduler_kwargs={"epochs": 3, "steps_per_epoch": 100}
    )
    assert "total_steps" not in epochs.scheduler_kwargs
    assert cfg.replace(scheduler=None).scheduler_kwargs == {}
    assert lib.Config(scheduler="multistep", scheduler_kwargs={"milestones": [3, 5]}) == (
        lib.Config(scheduler="multistep", scheduler_kwargs={"milestones": (3, 5)})
    )


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"scheduler": "cyclic"}, "scheduler"),
        ({"scheduler": 3}, "scheduler"),
        ({"scheduler": "step"}, "scheduler_kwargs"),  # step_size missing
        ({"scheduler": "exponential"}, "scheduler_kwargs"),  # gamma missing
        ({"scheduler": "multistep"}, "scheduler_kwargs"),  # milestones missing
        ({"scheduler": "step", "scheduler_kwargs": {"step_size": 5, "gama": 0.1}}, "gama"),
        ({"scheduler": "cosine", "scheduler_kwargs": {"optimizer": None}}, "scheduler_kwargs"),
        ({"scheduler": "cosine", "scheduler_kwargs": {"T_max": 0}}, "scheduler_kwargs"),
        ({"scheduler": "cosine", "scheduler_kwargs": {"eta_min": math.nan}}, "scheduler_kwargs"),
        ({"scheduler": "step", "scheduler_kwargs": {"step_size": "5"}}, "scheduler_kwargs"),
        ({"scheduler": "multistep", "scheduler_kwargs": {"milestones": 5}}, "milestones"),
        ({"scheduler": "linear", "scheduler_kwargs": {"start_factor": 2.0}}, "scheduler_kwargs"),
        ({"scheduler": "onecycle", "scheduler_kwargs": {"total_steps": 10}}, "total_steps"),
        ({"scheduler": "onecycle", "scheduler_kwargs": {"anneal_strategy": "x"}}, "anneal"),
        ({"scheduler": "onecycle", "optimizer": "adagrad"}, "scheduler_kwargs"),  # no momentum
        ({"scheduler": "step", "scheduler_kwargs": [("step_size", 5)]}, "scheduler_kwargs"),
        ({"scheduler_kwargs": {"gamma": 0.5}}, "scheduler_kwargs"),  # no scheduler
        ({"clip_grad_norm": 0}, "clip_grad_norm"),
        ({"clip_grad_norm": -1.0}, "clip_grad_norm"),
        ({"clip_grad_norm": math.nan}, "clip_grad_norm"),
        ({"clip_grad_norm": math.inf}, "clip_grad_norm"),
        ({"clip_grad_norm": "1"}, "clip_grad_norm"),
        ({"clip_grad_norm": True}, "clip_grad_norm"),
    ],
)
def test_every_bad_value_is_a_value_error_naming_its_field(changes, field):
    with pytest.raises(ValueError, match=field):
        lib.Config(iterations=100, **changes)


def test_the_messages_say_what_is_allowed():
    with pytest.raises(ValueError, match=r"one of 'step', 'multistep'.*'onecycle'"):
        lib.Config(scheduler="cyclic")
    with pytest.raises(ValueError, match="needs step_size; allowed: step_size, gamma"):
        lib.Config(scheduler="step")
    with pytest.raises(ValueError, match="finite number > 0"):
        lib.Config(clip_grad_norm=0)


def _script_weights(text: str, tmp_path) -> dict:
    path = tmp_path / "run.py"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("full", [False, True], ids=["short", "full"])
@pytest.mark.parametrize(
    "cfg",
    [
        config(scheduler="onecycle", clip_grad_norm=0.3, optimizer="adam", model="mlp", hidden=3),
        config(scheduler="multistep", scheduler_kwargs=KWARGS["multistep"], clip_grad_norm=0.3),
        config(scheduler="cosine", optimizer="sgd", optimizer_kwargs={"momentum": 0.9}),
    ],
    ids=["onecycle-clip-adam-mlp", "multistep-clip", "cosine"],
)
def test_the_script_reruns_lib_run_with_a_schedule_and_clipping(cfg, full, tmp_path):
    weights = _script_weights(lib.to_script(DATA, cfg, full=full), tmp_path)
    result = lib.run(DATA, cfg)
    np.testing.assert_allclose(weights["manual"], result.manual.weights[-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(weights["torch"], result.torch.weights[-1], rtol=0, atol=1e-12)


def test_the_default_script_holds_no_schedule_or_clipping():
    text = lib.to_script(DATA, lib.Config())
    assert "schedul" not in text and "clip" not in text and "step_lr" not in text
    clipped = lib.to_script(DATA, lib.Config(clip_grad_norm=1.0))
    assert "clip_grad_norm_(" in clipped and "schedul" not in clipped


def test_the_stepper_records_the_norm_before_clipping_as_lib_run_does():
    cfg = config(iterations=10, scheduler="onecycle", clip_grad_norm=0.3, model="mlp", hidden=3)
    stepper = lib.trace.Stepper(DATA, cfg)
    stepper.run_to(9)
    result = lib.run(DATA, cfg)
    for loop in ("manual", "torch"):
        np.testing.assert_allclose(
            stepper.history(loop).grad_norm, getattr(result, loop).grad_norm, rtol=1e-12
        )
