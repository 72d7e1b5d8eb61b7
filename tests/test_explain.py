"""lib.explain: every sentence of the code map is checked by real torch code, and the checks can fail."""

import inspect
import textwrap

import numpy as np
import pytest
import torch

import lib
from lib import explain
from lib.trace import Stepper

DATA = lib.datasets.linear(m=60, n=3, noise=0.1, seed=4)
CFG = lib.Config(lr=0.05, batch_size=16, iterations=10)
CLAIM = {c.key: c for c in explain.CLAIMS}


def evidence(key, data=DATA, cfg=CFG):
    return explain.verify(CLAIM[key], data, cfg)


def test_rows_follow_the_phases_and_every_row_has_a_claim():
    assert [r.phase for r in explain.ROWS] == list(explain.PHASES)
    assert {c.row for c in explain.CLAIMS} == {r.key for r in explain.ROWS}
    assert len(CLAIM) == len(explain.CLAIMS)


@pytest.mark.parametrize("func", [lib.manual_loop, lib.torch_loop, lib.manual_mlp_loop])
def test_phase_source_is_sliced_from_the_running_function(func):
    phases = explain.phase_source(func)
    assert list(phases) == [explain.SETUP, *explain.PHASES]
    source = inspect.getsource(func)
    lines = source.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith(explain.SETUP))
    last = max(i for i, line in enumerate(lines) if line.strip().startswith("yield "))
    # Joined back together (each phase re-indented), the phases are exactly the body up to the yield.
    body = "\n".join(lines[first:last])
    rebuilt = [textwrap.dedent(p) for p in phases.values()]
    assert "".join(x.replace(" ", "").replace("\n", "") for x in rebuilt) == body.replace(" ", "").replace("\n", "")
    for marker, text in phases.items():
        assert text.startswith(marker)
        assert all(line.strip() in source for line in text.splitlines())


@pytest.mark.parametrize("row", explain.ROWS, ids=lambda r: r.key)
def test_row_headlines_are_lines_of_the_source(row):
    assert row.manual in explain.phase_source(lib.manual_loop)[row.phase]
    assert row.torch in explain.phase_source(lib.torch_loop)[row.phase]


def test_torch_phases_hold_the_five_lines():
    phases = explain.phase_source(lib.torch_loop)
    five = ("optimizer.zero_grad()", "outputs = net(inputs)", "loss = criterion(outputs, labels)")
    five += ("loss.backward()", "optimizer.step()")
    for phase, line in zip(explain.PHASES, five, strict=True):
        assert line in phases[phase]


def test_phase_source_names_a_missing_comment():
    def loop(batches):
        # Model: nothing
        for _ in batches:
            yield 0

    with pytest.raises(ValueError, match="no phase comment '# Reset the gradient'"):
        explain.phase_source(loop)


def test_zero_grad_sets_none():
    e = evidence("zero_grad_none")
    assert e.ok
    assert e.measured == {
        "weight.grad after zero_grad()": "None",
        "bias.grad after zero_grad()": "None",
        "with set_to_none=False": "zeros",
    }


def test_zero_grad_check_fails_if_zero_grad_left_zeros(monkeypatch):
    real = torch.optim.Optimizer.zero_grad
    monkeypatch.setattr(torch.optim.Optimizer, "zero_grad", lambda self, set_to_none=True: real(self, False))
    e = evidence("zero_grad_none")
    assert not e.ok
    assert e.measured["weight.grad after zero_grad()"] == "a tensor"


def test_backward_adds_twice_the_gradient():
    e = evidence("backward_adds")
    assert e.ok
    assert e.measured["second .grad / first .grad (min)"] == 2.0 and e.measured["(max)"] == 2.0


def test_forward_same():
    e = evidence("forward_same")
    assert e.ok
    assert e.measured["max |z - outputs|"] < 1e-14
    assert e.measured["outputs.grad_fn"] == "AddmmBackward0"


def test_hand_loop_needs_no_loss_value():
    e = evidence("hand_no_loss_value")
    assert e.ok
    assert e.measured == {"loss values the loop saw": "NaN", "max |Δ weights| after 5 steps": 0.0}


def test_torch_needs_the_loss_tensor_not_its_value():
    e = evidence("torch_needs_root")
    assert e.ok
    assert "does not require grad" in e.measured["torch.tensor(loss.item()).backward()"]
    assert e.measured["max |.grad(loss) - .grad(loss + 1000)|"] == 0.0


def test_hand_d_weights_is_minus_the_gradient():
    e = evidence("negative_gradient")
    assert e.ok
    assert e.measured["max |d_weights + .grad|"] < 1e-13
    assert e.measured["max |d_weights - .grad|"] > 0.1


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_mse_is_a_mean_with_no_half(model):
    cfg = CFG.replace(model=model, hidden=3, init="normal")
    e = evidence("mse_no_half", cfg=cfg)
    assert e.ok
    assert e.measured == {"MSELoss / mean((outputs - labels)²)": 1.0, "grad MSELoss / grad ½·mean": 2.0}


@pytest.mark.parametrize("batch_size", [1, 16, 1000])
def test_sum_multiplies_the_gradient_by_the_batch_size(batch_size):
    e = evidence("sum_times_batch", cfg=CFG.replace(batch_size=batch_size))
    assert e.ok
    expected = min(batch_size, DATA.m)
    assert e.measured == {"grad sum / grad mean": float(expected), "batch size": expected}


def test_same_update():
    e = evidence("same_update")
    assert e.ok
    assert max(e.measured.values()) < 1e-15


@pytest.mark.parametrize(
    ("loss", "other", "expected"),
    [("mse", "half_mse", 2.0), ("half_mse", "mse", 0.5), ("sse", "mse", 16.0), ("sse", "half_mse", 32.0)],
)
def test_effective_lr_predicted_and_measured(loss, other, expected):
    e = explain.effective_lr(DATA, CFG.replace(loss=loss), other)
    assert e.ok
    assert e.measured["predicted"] == expected == lib.effective_lr_ratio(loss, other, CFG.batch_size)
    assert e.measured["measured"] == pytest.approx(expected, rel=1e-12)


def test_effective_lr_does_not_apply_to_cross_entropy():
    X = np.random.default_rng(0).normal(size=(40, 2))
    blobs = lib.Dataset(X, (X @ [1.0, -1.0] > 0).astype(float))  # two classes, 0 and 1
    cfg = lib.Config(model="logistic", iterations=5)
    assert not CLAIM["effective_lr"].applies(cfg)
    assert all(c.applies(CFG) for c in explain.CLAIMS)
    for key in ("zero_grad_none", "backward_adds", "negative_gradient", "same_update"):
        assert evidence(key, blobs, cfg).ok, key


def test_every_claim_holds_on_a_different_configuration():
    cfg = lib.Config(lr=0.01, batch_size=8, iterations=3, loss="sse", bias=False, init="normal", seed=5)
    failed = {c.key: e for c in explain.CLAIMS if not (e := explain.verify(c, DATA, cfg)).ok}
    assert not failed


def test_a_check_that_cannot_run_fails_in_words():
    def broken(data, cfg):
        raise RuntimeError("no graph")

    claim = explain.Claim("broken", "loss", "A sentence.", broken)
    e = explain.verify(claim, DATA, CFG)
    assert not e.ok
    assert e.note == "the check could not run: RuntimeError: no graph"


def test_effective_lr_check_fails_when_the_step_is_zero():
    # At the least-squares minimum of a noiseless full batch the gradient is zero: nothing to measure.
    X = np.random.default_rng(0).normal(size=(20, 2))
    data = lib.Dataset(X, X @ np.array([1.0, -2.0]))
    cfg = lib.Config(batch_size=20, bias=False, init=(1.0, -2.0))
    e = explain.effective_lr(data, cfg, "half_mse")
    assert not e.ok
    assert np.isnan(e.measured["measured"])


@pytest.mark.parametrize(
    ("optimizer", "kwargs", "key", "moves"),
    [
        ("sgd", {"momentum": 0.9}, "first_step_momentum", None),
        ("sgd", {"momentum": 0.9, "nesterov": True, "dampening": 0.0}, "first_step_momentum", None),
        ("sgd", {"momentum": 0.5, "dampening": 0.5}, "first_step_momentum", None),
        ("adam", {}, "first_step_adam", 1.0),
        ("adam", {"amsgrad": True, "betas": (0.5, 0.9)}, "first_step_adam", 1.0),
        ("adamw", {"weight_decay": 0.0}, "first_step_adam", 1.0),
        ("rmsprop", {}, "first_step_rmsprop", 10.0),
        ("rmsprop", {"alpha": 0.75, "momentum": 0.9}, "first_step_rmsprop", 2.0),
        ("adagrad", {"lr_decay": 0.1}, "first_step_adagrad", 1.0),
    ],
)
def test_each_optimizers_first_step_is_the_paper_formula(optimizer, kwargs, key, moves):
    cfg = CFG.replace(optimizer=optimizer, optimizer_kwargs=kwargs, init="normal")
    claim = CLAIM[key]
    assert claim.about(cfg)
    e = explain.verify(claim, DATA, cfg)
    assert e.ok, e
    if moves is not None:  # |update| / lr: about 1 for Adam and Adagrad, 1 / sqrt(1 - alpha) for RMSprop
        assert e.measured["|update| / lr, smallest"] == pytest.approx(moves, rel=1e-4)
        assert e.measured["largest"] == pytest.approx(moves, rel=1e-4)


def test_the_first_step_check_tells_the_optimizers_apart():
    """RMSprop's formula (no bias correction) does not predict Adam's first step: the check can fail."""
    cfg = CFG.replace(optimizer="adam", init="normal", iterations=1)
    step = Stepper(DATA, cfg).next()
    wrong = explain.first_step_prediction(cfg.replace(optimizer="rmsprop"), step.torch.gradient)
    right = explain.first_step_prediction(cfg, step.torch.gradient)
    np.testing.assert_allclose(step.torch.update, right, rtol=1e-12, atol=1e-15)
    assert np.abs(step.torch.update - wrong).max() > 5 * cfg.lr


@pytest.mark.parametrize(
    ("optimizer", "kwargs"),
    [("sgd", {}), ("sgd", {"momentum": 0.9, "weight_decay": 0.1}), ("adamw", {}), ("rmsprop", {"centered": True}),
     ("adagrad", {"initial_accumulator_value": 0.1}), ("adam", {"maximize": True})],
)  # fmt: skip
def test_first_step_claims_are_not_about_other_settings(optimizer, kwargs):
    """Plain SGD, weight decay, centering, a head start or maximize: no first-step sentence is shown."""
    cfg = CFG.replace(optimizer=optimizer, optimizer_kwargs=kwargs)
    assert not [c.key for c in explain.CLAIMS if c.key.startswith("first_step") and c.about(cfg)]
