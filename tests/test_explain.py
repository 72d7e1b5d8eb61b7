"""lib.explain: every sentence of the code map is checked by real torch code, and the checks can
fail."""

import dataclasses
import inspect
import textwrap

import numpy as np
import pytest
import torch

import lib
from lib import explain
from lib.engine.frames import arguments_of, function_of
from lib.engine.trace import Stepper
from lib.twins.manual import SLOPES

DATA = lib.datasets.linear(m=60, n=3, noise=0.1, seed=4)
CFG = lib.Config(lr=0.05, batch_size=16, iterations=10)
CLAIM = {c.key: c for c in explain.CLAIMS}


def evidence(key, data=DATA, cfg=CFG):
    return explain.verify(CLAIM[key], data, cfg)


def test_rows_follow_the_phases_and_every_row_has_a_claim():
    assert [r.phase for r in explain.ROWS] == list(explain.PHASES)
    rows = {r.key for r in explain.ROWS} | {r.key for r in explain.LOOP_ROWS}
    assert {c.row for c in explain.CLAIMS} == rows
    assert len(CLAIM) == len(explain.CLAIMS)


@pytest.mark.parametrize("func", [lib.manual_loop, lib.torch_loop])
def test_phase_source_is_sliced_from_the_running_function(func):
    phases = explain.phase_source(func)
    assert list(phases) == [explain.SETUP, *explain.PHASES]
    source = inspect.getsource(func)
    lines = source.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith(explain.SETUP))
    last = max(i for i, line in enumerate(lines) if line.strip().startswith("yield "))
    # Joined back together (each phase re-indented), the phases are exactly the body up to the
    # yield.
    body = "\n".join(lines[first:last])
    rebuilt = [textwrap.dedent(p) for p in phases.values()]
    assert "".join(x.replace(" ", "").replace("\n", "") for x in rebuilt) == body.replace(
        " ", ""
    ).replace("\n", "")
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
    monkeypatch.setattr(
        torch.optim.Optimizer, "zero_grad", lambda self, set_to_none=True: real(self, False)
    )
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
    assert e.measured["max |manual outputs - torch outputs|"] < 1e-14
    assert e.measured["outputs.grad_fn"] == "AddmmBackward0"


def test_backward_adds_check_fails_when_backward_overwrites(monkeypatch):
    """A torch whose backward() replaced .grad instead of adding to it: the check says the claim
    does not hold."""

    def overwrite(self, *args, **kwargs):
        leaves = explain._parameters_reached(self.grad_fn)
        for leaf, grad in zip(leaves, torch.autograd.grad(self, leaves), strict=True):
            leaf.grad = grad

    monkeypatch.setattr(torch.Tensor, "backward", overwrite)
    e = evidence("backward_adds")
    assert not e.ok
    assert e.measured["(max)"] == 1.0


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (CFG, {"hand inputs' last column": "all ones", "outputs.grad_fn": "AddmmBackward0"}),
        (CFG.replace(bias=False),
         {"hand inputs' last column": "features", "outputs.grad_fn": "MmBackward0"}),
        (CFG.replace(model="mlp", hidden=3, init="normal"), {"net": "Linear → Tanh → Linear"}),
        (CFG.replace(model="mlp", hidden=3, init="normal", activation="relu", bias=False),
         {"net": "Linear → ReLU → Linear"}),
    ],
)  # fmt: skip
def test_forward_same_for_each_model_and_bias(cfg, expected):
    e = explain.verify(CLAIM["forward_same"], DATA, cfg, 3)
    assert e.ok, e
    assert e.measured["max |manual outputs - torch outputs|"] < 1e-14
    assert expected.items() <= e.measured.items()


def test_forward_sentence_follows_the_model_and_bias():
    say = CLAIM["forward_same"].sentence
    assert "column of ones (the bias)" in say(CFG)
    assert "no column of ones: there is no bias here" in say(CFG.replace(bias=False))
    mlp = say(CFG.replace(model="mlp", activation="relu", bias=False))
    assert "relu(inputs @ W1.T) @ W2" in mlp and "ones" not in mlp


def test_forward_check_fails_on_the_wrong_layers_or_predictions(monkeypatch):
    cfg = CFG.replace(model="mlp", hidden=3, init="normal")
    real = explain.make_model
    monkeypatch.setattr(
        explain,
        "make_model",
        lambda layout, dtype: real(dataclasses.replace(layout, activation="relu"), dtype),
    )
    e = explain.verify(CLAIM["forward_same"], DATA, cfg)
    assert not e.ok and e.measured["net"] == "Linear → ReLU → Linear"
    monkeypatch.setattr(explain, "make_model", real)
    monkeypatch.setattr(lib.trace.Step, "diff", lambda self, field: np.ones(3))
    assert not explain.verify(CLAIM["forward_same"], DATA, CFG).ok


def test_hand_loop_needs_no_loss_value():
    e = explain.verify(CLAIM["manual_no_loss_value"], DATA, CFG, 4)
    assert e.ok
    assert e.measured == {
        "loss values the loop saw": "NaN",
        "max |Δ weights| over steps 0 to 4": 0.0,
    }


def greedy_loop(
    batches,
    init,
    lr,
    *,
    layout,
    loss_name="mse",
    optimizer_name="sgd",
    optimizer_kwargs=None,
    zero_grad=True,
    scheduler_name=None,
    scheduler_kwargs=None,
    clip_grad_norm=None,
    **whole_loop,  # accumulate, validation, eval_every: this loop has none of them
):
    """A hand loop whose step depends on the loss value (scaled by it): the claim is false."""
    weights = np.array(init, dtype=np.float64)
    for inputs, labels in batches:
        outputs = inputs @ weights
        loss = np.mean((labels - outputs) ** 2)
        weights += (
            lr * (1 + loss) * SLOPES[loss_name](len(labels)) * (inputs.T @ (labels - outputs))
        )
        yield loss, weights, weights


def test_hand_loss_check_fails_for_a_loop_that_uses_the_loss_value(monkeypatch):
    real = explain.loops

    def greedy_loops(data, cfg):
        manual, twin, init = real(data, cfg)
        return greedy_loop(**arguments_of(manual)), twin, init

    monkeypatch.setattr(explain, "loops", greedy_loops)
    e = explain.verify(CLAIM["manual_no_loss_value"], DATA, CFG, 2)
    assert not e.ok
    assert e.measured["loss values the loop saw"] == "NaN"
    # The loop it was given, recompiled.
    assert e.note == "greedy_loop run with its loss replaced by NaN"


def test_loss_blind_weights_changes_only_the_loss_lines():
    """The recompiled loop sees NaN where it computed the loss, and nothing else: its weights are
    lib.run's."""
    cfg = CFG.replace(model="mlp", hidden=3, init="normal", optimizer="adam")
    manual = lib.engine.lockstep.loops(DATA, cfg)[0]
    losses, weights = explain.loss_blind_weights(function_of(manual), arguments_of(manual), 4)
    assert all(np.isnan(losses))
    np.testing.assert_array_equal(
        weights, lib.run(DATA, cfg.replace(iterations=4)).manual.weights[1:]
    )
    # The real loop is left alone.
    assert not np.isnan(next(lib.engine.lockstep.loops(DATA, cfg)[0])[0])


def test_torch_needs_the_loss_tensor_not_its_value():
    e = evidence("torch_needs_root")
    assert e.ok
    assert e.measured == {
        "parameters the graph from loss.grad_fn reaches": "2 of 2",
        "max |.grad − .grad with the loss's value set to NaN|": 0.0,
    }


def test_root_check_fails_when_backward_needs_the_value_or_misses_a_parameter():
    net = torch.nn.Linear(3, 1, dtype=torch.float64)
    inputs, labels = torch.tensor(DATA.X[:8]), torch.tensor(DATA.y[:8]).unsqueeze(1)
    assert explain.root_evidence(net, torch.nn.MSELoss(), inputs, labels).ok
    # exp's backward multiplies by its own result, the loss value: overwriting it changes .grad.
    e = explain.root_evidence(
        net, lambda o, y: torch.exp(torch.nn.functional.mse_loss(o, y)), inputs, labels
    )
    assert not e.ok
    # A parameter the graph never reaches.
    net.unused = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    e = explain.root_evidence(net, torch.nn.MSELoss(), inputs, labels)
    assert not e.ok and e.measured["parameters the graph from loss.grad_fn reaches"] == "2 of 3"


def test_hand_neg_grad_is_minus_the_gradient():
    e = evidence("negative_gradient")
    assert e.ok
    assert e.measured["max |neg_grad + .grad|"] < 1e-13
    assert e.measured["max |neg_grad - .grad|"] > 0.1
    g = np.array([0.5, -2.0])
    # A buffer holding the gradient itself: the claim is false.
    assert not explain.sign_evidence(g, g).ok
    assert explain.sign_evidence(-g, g).ok


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_mse_is_a_mean_with_no_half(model):
    cfg = CFG.replace(model=model, hidden=3, init="normal")
    e = explain.verify(CLAIM["mse_no_half"], DATA, cfg, 2)
    assert e.ok
    assert e.measured == {
        "MSELoss / mean((outputs - labels)²)": 1.0,
        "torch's MSELoss .grad / the hand ½·mean gradient": 2.0,
    }


def test_mse_check_compares_torch_with_the_hand_loop_and_can_fail(monkeypatch):
    """If torch's MSELoss had the ½ the hand loop has, the check would say so (it used to compare
    two torch losses)."""
    real = explain.torch_loss
    monkeypatch.setattr(
        explain, "torch_loss", lambda name: real("half_mse" if name == "mse" else name)
    )
    e = evidence("mse_no_half")
    assert not e.ok
    assert e.measured["torch's MSELoss .grad / the hand ½·mean gradient"] == 1.0


@pytest.mark.parametrize("batch_size", [1, 16, 1000])
def test_sum_multiplies_the_gradient_by_the_batch_size(batch_size):
    e = evidence("sum_times_batch", cfg=CFG.replace(batch_size=batch_size))
    assert e.ok
    expected = min(batch_size, DATA.m)
    assert e.measured == {"grad sum / grad mean": float(expected), "batch size": expected}


def test_sum_check_fails_when_the_sum_is_a_mean(monkeypatch):
    real = explain.torch_loss
    monkeypatch.setattr(explain, "torch_loss", lambda name: real("mse" if name == "sse" else name))
    assert not evidence("sum_times_batch").ok


def test_same_update():
    e = explain.verify(CLAIM["same_update"], DATA, CFG, 5)
    assert e.ok
    assert max(e.measured.values()) < 1e-15


def test_same_update_is_not_about_weight_decay_and_its_check_fails_there():
    cfg = CFG.replace(optimizer_kwargs={"weight_decay": 0.5}, init="normal")
    assert not CLAIM["same_update"].about(cfg)
    e = explain.verify(CLAIM["same_update"], DATA, cfg, 1)
    assert not e.ok
    assert e.measured["max |torch update + lr * .grad|"] > 1e-4


@pytest.mark.parametrize(
    ("loss", "other", "expected"),
    [
        ("mse", "half_mse", 2.0),
        ("half_mse", "mse", 0.5),
        ("sse", "mse", 16.0),
        ("sse", "half_mse", 32.0),
    ],
)
def test_effective_lr_predicted_and_measured(loss, other, expected):
    e = explain.effective_lr(DATA, CFG.replace(loss=loss), other)
    assert e.ok
    assert (
        e.measured["predicted"] == expected == lib.effective_lr_ratio(loss, other, CFG.batch_size)
    )
    assert e.measured["measured"] == pytest.approx(expected, rel=1e-12)


def test_effective_lr_does_not_apply_to_cross_entropy():
    X = np.random.default_rng(0).normal(size=(40, 2))
    blobs = lib.Dataset(X, (X @ [1.0, -1.0] > 0).astype(float))  # two classes, 0 and 1
    cfg = lib.Config(model="logistic", iterations=5)
    assert not CLAIM["effective_lr"].about(cfg)
    five = {r.key for r in explain.ROWS}
    assert all(c.applies(CFG) for c in explain.CLAIMS if c.row in five)
    for key in ("zero_grad_none", "backward_adds", "negative_gradient", "same_update"):
        assert evidence(key, blobs, cfg).ok, key


def test_every_claim_holds_on_a_different_configuration():
    cfg = lib.Config(
        lr=0.01, batch_size=8, iterations=3, loss="sse", bias=False, init="normal", seed=5
    )
    claims = [c for c in explain.CLAIMS if c.applies(cfg)]  # the whole loop's rows shown here too
    assert {c.row for c in claims} >= {"loader", "modes"}
    failed = {c.key: e for c in claims if not (e := explain.verify(c, DATA, cfg)).ok}
    assert not failed


def test_a_check_that_cannot_run_fails_in_words():
    def broken(data, cfg):
        raise RuntimeError("no graph")

    claim = explain.Claim("broken", "loss", "A sentence.", broken)
    e = explain.verify(claim, DATA, CFG)
    assert not e.ok
    assert e.note == "the check could not run: RuntimeError: no graph"


def test_effective_lr_check_fails_when_the_step_is_zero():
    # At the least-squares minimum of a noiseless full batch the gradient is zero: nothing to
    # measure.
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
    # |update| / lr: about 1 for Adam and Adagrad, 1 / sqrt(1 - alpha) for RMSprop.
    if moves is not None:
        assert e.measured[f"weights moved by {moves:.4g}·lr (to 0.1 %)"] == "4 of 4"
        assert (
            e.measured["moved less (|g| near or below eps)"] == 0 == e.measured["not moved (g = 0)"]
        )


def test_the_first_step_check_tells_the_optimizers_apart():
    """RMSprop's formula (no bias correction) does not predict Adam's first step: the check can
    fail."""
    cfg = CFG.replace(optimizer="adam", init="normal", iterations=1)
    step = Stepper(DATA, cfg).next()
    wrong = explain.first_step_prediction(cfg.replace(optimizer="rmsprop"), step.torch.gradient)
    right = explain.first_step_prediction(cfg, step.torch.gradient)
    np.testing.assert_allclose(step.torch.update, right, rtol=1e-12, atol=1e-15)
    assert np.abs(step.torch.update - wrong).max() > 5 * cfg.lr


@pytest.mark.parametrize(
    ("optimizer", "kwargs"),
    [("sgd", {}), ("sgd", {"momentum": 0.9, "weight_decay": 0.1}), ("adamw", {}),
     ("rmsprop", {"centered": True}), ("adagrad", {"initial_accumulator_value": 0.1}),
     ("adam", {"maximize": True})],
)  # fmt: skip
def test_first_step_claims_are_not_about_other_settings(optimizer, kwargs):
    """Plain SGD, weight decay, centering, a head start or maximize: no first-step sentence is
    shown."""
    cfg = CFG.replace(optimizer=optimizer, optimizer_kwargs=kwargs)
    assert not [c.key for c in explain.CLAIMS if c.key.startswith("first_step") and c.about(cfg)]


def test_adam_first_step_sentence_is_measured_on_every_weight_at_the_minimum():
    """Started at the least-squares weights, |g| is far below eps: no weight moves by lr, and the
    check says so."""
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    start = tuple(lib.least_squares(data, True))
    cfg = lib.Config(optimizer="adam", batch_size=200, init=start, iterations=3)
    e = explain.verify(CLAIM["first_step_adam"], data, cfg)
    assert e.ok, e  # the sentence allows for it: "one with a gradient near or below eps moves less"
    assert e.measured["weights moved by 1·lr (to 0.1 %)"] == "0 of 4"
    assert e.measured["moved less (|g| near or below eps)"] == 4


def test_adam_first_step_on_a_zero_mlp_counts_the_weights_that_do_not_move():
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    # All-zero init: only b2's g is not 0.
    cfg = lib.Config(optimizer="adam", model="mlp", hidden=4, iterations=3)
    e = explain.verify(CLAIM["first_step_adam"], data, cfg)
    assert e.ok, e
    assert e.measured["weights moved by 1·lr (to 0.1 %)"] == "1 of 21"
    assert e.measured["not moved (g = 0)"] == 20


def test_first_step_evidence_fails_on_a_wrong_update():
    cfg = CFG.replace(optimizer="adam", init="normal")
    g = np.array([0.3, -2.0, 0.0, 1e-12])
    right = explain.first_step_prediction(cfg, g)
    assert explain.first_step_evidence(cfg, g, right).ok
    assert not explain.first_step_evidence(cfg, g, 10 * right).ok  # RMSprop-sized: 10·lr
    moved_zero = right.copy()
    moved_zero[2] = cfg.lr  # a weight with g = 0 that moved
    assert not explain.first_step_evidence(cfg, g, moved_zero).ok


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "adagrad"])
def test_effective_lr_with_an_adaptive_optimizer_is_near_one_and_checked(optimizer):
    cfg = CFG.replace(optimizer=optimizer, init="normal")
    e = explain.effective_lr(DATA, cfg, "half_mse")
    assert e.ok, e
    assert e.measured["gradient factor c"] == 2.0
    assert (
        e.measured["predicted"] == pytest.approx(1.0, abs=1e-6) and e.measured["predicted"] != 1.0
    )
    assert e.measured["measured"] == pytest.approx(e.measured["predicted"], rel=1e-9)
    assert "hardly the step" in CLAIM["effective_lr"].sentence(cfg)
    assert "hardly" not in CLAIM["effective_lr"].sentence(CFG)


def test_effective_lr_check_fails_when_predicted_as_for_sgd(monkeypatch):
    """The old check ran plain SGD whatever the optimizer: predicting Adam's step as SGD's fails
    against torch."""
    real = explain.first_step_prediction
    monkeypatch.setattr(
        explain,
        "first_step_prediction",
        lambda cfg, g, w=None: real(cfg.replace(optimizer="sgd"), g),
    )
    e = explain.effective_lr(DATA, CFG.replace(optimizer="adam"), "half_mse")
    assert not e.ok
    assert e.measured["predicted"] == pytest.approx(2.0)


def test_momentum_check_fails_if_the_buffer_starts_dampened(monkeypatch):
    cfg = CFG.replace(optimizer_kwargs={"momentum": 0.9, "dampening": 0.5}, init="normal")
    assert explain.verify(CLAIM["first_step_momentum"], DATA, cfg).ok
    real = lib.trace.state_pairs

    # As if torch had started the buffer at (1 - dampening) * g.
    def dampened(name, hand, torch_opt):
        return [
            (a, k, h, 0.5 * t if k == "momentum_buffer" else t)
            for a, k, h, t in real(name, hand, torch_opt)
        ]

    monkeypatch.setattr(lib.trace, "state_pairs", dampened)
    assert not explain.verify(CLAIM["first_step_momentum"], DATA, cfg).ok


def test_agreement_holds_for_sgd_and_parts_for_full_batch_rmsprop():
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)  # the sidebar's defaults
    sgd = lib.run(data, lib.Config(iterations=500))
    a = explain.agreement(sgd)
    assert a["parts_at"] is None and a["max_relative"] < explain.AGREE
    assert "agree at every step" in explain.agreement_text(sgd)
    rms = lib.run(data, lib.Config(optimizer="rmsprop", batch_size=200, iterations=1000))
    a = explain.agreement(rms)
    assert a["parts_at"] is not None  # measured here: from step 331, gradient norm about 1e-9
    relative = rms.step_diff[1:] / np.maximum(np.abs(rms.torch.weights[1:]).max(axis=1), 1)
    assert relative[a["parts_at"]] > explain.AGREE >= relative[: a["parts_at"]].max()
    assert a["grad_norm_there"] == rms.torch.grad_norm[a["parts_at"]]
    text = explain.agreement_text(rms)
    assert f"from step {a['parts_at']:,}" in text and "at every step" not in text


def test_row_texts_follow_the_configuration():
    rows = {r.key: r for r in explain.ROWS}
    mlp = CFG.replace(model="mlp")
    assert "column of ones" in explain.row_text(rows["forward"], CFG)
    assert "column of ones" not in explain.row_text(rows["forward"], CFG.replace(bias=False))
    assert "column of ones" not in explain.row_text(rows["forward"], mlp)
    assert "chain rule" in explain.row_text(rows["backward"], mlp)
    assert "inputsᵀ · (labels − h)" not in explain.row_text(rows["backward"], mlp)
    assert "1/m for `BCEWithLogitsLoss()`" in explain.row_text(
        rows["backward"], lib.Config(model="logistic")
    )
    assert '2 for `MSELoss(reduction="sum")`' in explain.row_text(
        rows["backward"], CFG.replace(loss="sse")
    )
    assert "switched off in both loops" in explain.row_text(
        rows["reset"], CFG.replace(zero_grad=False)
    )
    assert "switched off" not in explain.row_text(rows["reset"], CFG)
    adam = explain.row_text(rows["update"], CFG.replace(optimizer="adam"))
    assert "lib.optim.Adam" in adam and "SGD.step()" not in adam


@pytest.mark.parametrize(
    "cfg", [CFG, CFG.replace(model="mlp"), CFG.replace(bias=False, loss="sse")]
)
def test_no_row_says_backward_derives_the_same_numbers(cfg):
    """.grad is minus neg_grad: "the same numbers" was false (issue 9, finding 12)."""
    for row in explain.ROWS:
        assert "derives the same numbers by" not in explain.row_text(row, cfg)
    assert "opposite sign" in explain.row_text(explain.ROWS[3], cfg)


def test_the_reset_is_explained_by_carry_over_not_by_the_batch_sum():
    """The batch sum is one matrix product; the reset is needed because += carries over.

    Issue 9, finding 13.

    One manual_loop runs every model, the mlp too: its reset line is the one explained."""
    source = inspect.getsource(lib.manual_loop)
    assert "is a sum over the batch" not in source
    assert (
        "the backward pass adds into it" in explain.phase_source(lib.manual_loop)[explain.PHASES[0]]
    )
    assert "carry over" in explain.ROWS[0].text
    assert "sum over the batch, so each step starts it from zero" not in explain.ROWS[0].text


def test_the_classic_per_sample_loop_is_the_half_mse_convention_without_bias():
    """What the Code map says of the classic five-line mapping.

    Per sample, ½·sum, /m in the update, no bias, neg_grad the negative gradient. Written out here
    as the classic loop, it matches lib.run's half_mse run."""
    data = lib.datasets.linear(m=40, n=3, noise=0.1, seed=1)
    alpha, steps = 0.1, 20
    weights = [0.0] * data.n
    for _ in range(steps):
        neg_grad = [0.0] * data.n
        for k in range(data.m):
            h = sum(x * w for x, w in zip(data.X[k], weights, strict=True))
            for j in range(data.n):
                neg_grad[j] += (data.y[k] - h) * data.X[k][j]
        weights = [w + alpha * d / data.m for w, d in zip(weights, neg_grad, strict=True)]
    cfg = lib.Config(lr=alpha, batch_size=data.m, iterations=steps, loss="half_mse", bias=False)
    result = lib.run(data, cfg)
    np.testing.assert_allclose(result.torch.weights[-1], weights, rtol=1e-12)
    mse = lib.run(data, cfg.replace(loss="mse", iterations=1))  # MSELoss(): twice the classic step
    np.testing.assert_allclose(mse.torch.weights[1], 2 * result.torch.weights[1], rtol=1e-12)


def test_a_finite_blow_up_is_named_with_the_stability_limit():
    """Issue 10, bug 5: lr = 1 grows the loss by 22 orders of magnitude without a NaN; sse at
    0.05 by 244."""
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    result = lib.run(data, lib.Config(lr=1.0, iterations=500))
    assert result.diverged_at is None
    growth = explain.loss_growth(result)
    assert (
        growth["decades"] >= 20
        and result.torch.loss[growth["step"]] > explain.GROWTH * result.torch.loss[0]
    )
    assert (result.torch.loss[: growth["step"]] <= explain.GROWTH * result.torch.loss[0]).all()
    text = explain.growth_warning(data, result)
    limit = lib.pitfalls.stability_limit(data, result.config)
    assert f"×10^{growth['decades']} since step 0" in text and f"lr = {limit:.4g}" in text
    sse = lib.run(data, lib.Config(lr=0.05, loss="sse", iterations=300))
    assert "×10^" in explain.growth_warning(data, sse)


@pytest.mark.parametrize(
    "cfg",
    [lib.Config(lr=0.05, iterations=500), lib.Config(model="mlp", init="normal", iterations=300)],
)
def test_a_converging_run_gets_no_growth_warning(cfg):
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    assert explain.growth_warning(data, lib.run(data, cfg)) is None


def test_growth_warning_without_a_limit_for_momentum():
    """The 2/λ_max limit is plain SGD's: with momentum the warning does not quote it."""
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    result = lib.run(
        data,
        lib.Config(optimizer="sgd", optimizer_kwargs={"momentum": 0.99}, lr=0.5, iterations=300),
    )
    assert result.diverged_at is None  # finite, 11 orders of magnitude up
    text = explain.growth_warning(data, result)
    assert "×10^11" in text and "stability limit" not in text and "smaller than 0.5" in text


def test_the_forward_claim_names_where_backward_meets_the_outputs_and_sees_a_wrong_place(
    monkeypatch,
):
    claim = next(c for c in explain.CLAIMS if c.check is explain.check_forward_same)
    half = CFG.replace(loss="half_mse")
    # half_mse: the loss's ½ comes first, so the outputs' node is the second step back.
    assert "second from the loss" in claim.sentence(half)
    assert "first from the loss" in claim.sentence(CFG)
    for cfg, depth in ((CFG, 1), (half, 2)):
        e = explain.verify(claim, DATA, cfg, 2)
        assert e.ok and e.measured["steps from loss.grad_fn back to outputs.grad_fn"] == depth
    # A criterion that adds a node of its own (×1) moves the outputs one step further back: the
    # sentence for MSELoss() would then be false, and the check says so.
    real = explain.torch_loss
    monkeypatch.setattr(explain, "torch_loss", lambda name: lambda o, y: real(name)(o, y) * 1.0)
    e = explain.verify(claim, DATA, CFG, 2)
    assert not e.ok and e.measured["steps from loss.grad_fn back to outputs.grad_fn"] == 2
