"""Every optimizer and every model: the hand-written twin agrees with torch, step by step."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lib
from lib.engine import lockstep as run_module
from lib.twins.layout import Layout
from lib.twins.manual import manual_loop, sigmoid
from lib.twins.optim import MANUAL, OPTIMIZERS
from lib.twins.torch_side import make_model, share_one_vector, torch_loss

TOL = 1e-10


def classes(m: int, n: int, seed: int) -> lib.Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    y = (X @ rng.normal(size=n) + 0.3 * rng.normal(size=m) > 0).astype(float)
    return lib.Dataset(X, y)


def optimizer_kwargs(name: str) -> st.SearchStrategy:
    """Keyword arguments torch accepts for each optimizer, drawn over their documented ranges."""
    unit = st.floats(0.0, 0.95)
    decay = st.sampled_from([0.0, 0.0, 1e-3, 0.1])
    if name == "sgd":
        return st.one_of(
            st.fixed_dictionaries(
                {}, optional={"momentum": unit, "dampening": unit, "weight_decay": decay}
            ),
            st.fixed_dictionaries(
                {"momentum": st.floats(0.1, 0.95), "nesterov": st.just(True)},
                optional={"weight_decay": decay},
            ),
            st.fixed_dictionaries({"maximize": st.just(True)}),
        )
    if name in ("adam", "adamw"):
        optional = {
            "betas": st.tuples(st.floats(0.5, 0.95), st.floats(0.9, 0.9999)),
            "eps": st.sampled_from([1e-8, 1e-6]),
            "weight_decay": decay,
            "amsgrad": st.booleans(),
        }
        if name == "adam":
            optional["decoupled_weight_decay"] = st.booleans()
        return st.fixed_dictionaries({}, optional=optional)
    if name == "rmsprop":
        return st.fixed_dictionaries(
            {},
            optional={
                "alpha": st.floats(0.8, 0.999),
                "momentum": unit,
                "centered": st.booleans(),
                "weight_decay": decay,
            },
        )
    return st.fixed_dictionaries(
        {},
        optional={
            "lr_decay": st.sampled_from([0.0, 0.01]),
            "weight_decay": decay,
            "initial_accumulator_value": st.sampled_from([0.0, 0.1]),
        },
    )


@pytest.mark.parametrize("name", OPTIMIZERS)
@settings(max_examples=25)
@given(data=st.data())
def test_each_optimizer_agrees_with_torch(name, data):
    kwargs = data.draw(optimizer_kwargs(name), label="optimizer_kwargs")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    cfg = lib.Config(
        lr=data.draw(st.sampled_from([1e-3, 1e-2, 5e-2]), label="lr"),
        batch_size=data.draw(st.sampled_from([1, 7, 32, 1000]), label="batch_size"),
        iterations=data.draw(st.integers(1, 40), label="iterations"),
        init="normal",
        seed=seed,
        optimizer=name,
        optimizer_kwargs=kwargs,
        bias=data.draw(st.booleans(), label="bias"),
    )
    result = lib.run(lib.datasets.linear(m=60, n=3, seed=seed), cfg)
    assert result.stopped is None
    assert result.max_abs_diff <= TOL
    # The optimizer really moved the weights (a no-op optimizer would agree trivially).
    assert not np.array_equal(result.manual.weights[0], result.manual.weights[-1])


@pytest.mark.parametrize("model", ["logistic", "mlp"])
@settings(max_examples=25)
@given(data=st.data())
def test_each_model_agrees_with_torch(model, data):
    seed = data.draw(st.integers(0, 2**16), label="seed")
    classify = model == "logistic" or data.draw(st.booleans(), label="classify")
    dataset = classes(50, 3, seed) if classify else lib.datasets.linear(m=50, n=3, seed=seed)
    cfg = lib.Config(
        model=model,
        loss="bce"
        if classify
        else data.draw(st.sampled_from(["mse", "half_mse", "sse"]), label="loss"),
        lr=data.draw(st.sampled_from([1e-3, 1e-2, 0.1]), label="lr"),
        batch_size=data.draw(st.sampled_from([1, 8, 1000]), label="batch_size"),
        iterations=data.draw(st.integers(1, 30), label="iterations"),
        init="normal",
        seed=seed,
        bias=data.draw(st.booleans(), label="bias"),
        hidden=data.draw(st.integers(1, 6), label="hidden"),
        activation=data.draw(st.sampled_from(["tanh", "relu"]), label="activation"),
        optimizer=data.draw(st.sampled_from(OPTIMIZERS), label="optimizer"),
    )
    result = lib.run(dataset, cfg)
    # sse with a large lr may blow up; both loops must say so at one step.
    if result.stopped == "diverged":
        assert math.isfinite(result.manual.loss[: result.diverged_at].sum())
        return
    assert result.stopped is None
    assert result.max_abs_diff <= TOL


def autograd_gradient(
    model: str, loss: str, X, y, w, bias: bool, hidden: int = 4, activation: str = "tanh"
):
    net = make_model(Layout(model, X.shape[1], bias, hidden, activation), torch.float64)
    share_one_vector(net, w, torch.float64)
    out = torch_loss(loss)(net(torch.tensor(X)), torch.tensor(y).unsqueeze(1))
    out.backward()
    return out.item(), np.concatenate([p.grad.numpy().ravel() for p in net.parameters()])


@pytest.mark.parametrize("seed", range(5))
def test_logistic_gradient_is_sigmoid_minus_y(seed):
    data = classes(20, 3, seed)
    w = np.random.default_rng(seed).normal(size=4)
    loss, grad = autograd_gradient("logistic", "bce", data.X, data.y, w, bias=True)
    X = data.with_ones()
    z = X @ w
    np.testing.assert_allclose(X.T @ (sigmoid(z) - data.y) / len(z), grad, atol=1e-14)
    # The hand loop's inline bce and its backward pass give torch's loss and gradient.
    step = manual_loop(iter([(X, data.y)]), w, 0.0, layout=Layout("logistic", 3), loss_name="bce")
    hand_loss, _, hand_grad = next(step)
    assert hand_loss == pytest.approx(loss, abs=1e-14)
    np.testing.assert_allclose(hand_grad, grad, atol=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_mlp_backprop_matches_autograd(activation, bias, loss):
    hidden, n = 4, 3
    data = classes(16, n, 1) if loss == "bce" else lib.datasets.linear(m=16, n=n, seed=1)
    cfg = lib.Config(
        model="mlp",
        loss=loss,
        hidden=hidden,
        activation=activation,
        bias=bias,
        init="normal",
        seed=3,
    )
    w = lib.initial_weights(data, cfg)
    expected_loss, expected = autograd_gradient(
        "mlp", loss, data.X, data.y, w, bias, hidden, activation
    )
    step = lib.manual_mlp_loop(
        iter([(data.X, data.y)]), w, 0.0, loss, hidden=hidden, activation=activation, bias=bias
    )
    got_loss, _, got = next(step)
    assert got_loss == pytest.approx(expected_loss, abs=1e-14)
    np.testing.assert_allclose(got, expected, atol=1e-14)
    assert np.abs(expected).max() > 1e-3  # a real gradient, not an all-zero one


def test_mlp_layout_is_torchs_parameter_order():
    n, hidden = 3, 4
    cfg = lib.Config(model="mlp", hidden=hidden)
    w = np.arange(cfg.n_params(n), dtype=float)
    layout = cfg.layout(n)
    net = make_model(layout, torch.float64)
    share_one_vector(net, w, torch.float64)
    W1, b1, W2, b2 = layout.views(w)
    torch_params = [p.detach().numpy() for p in net.parameters()]
    for mine, theirs in zip((W1, b1, W2, b2), torch_params, strict=True):
        np.testing.assert_array_equal(mine.ravel(), theirs.ravel())
    assert lib.weight_names(lib.datasets.linear(m=5, n=n), cfg)[:2] == ["W1[0,0]", "W1[0,1]"]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"optimizer": "nadam"}, "optimizer must be one of"),
        (
            {"optimizer": "sgd", "optimizer_kwargs": {"betas": (0.9, 0.99)}},
            "unknown argument 'betas'",
        ),
        ({"optimizer": "adam", "optimizer_kwargs": {"lr": 0.1}}, "must not contain lr"),
        (
            {"optimizer": "adam", "optimizer_kwargs": {"betas": (1.5, 0.9)}},
            "Invalid beta parameter",
        ),
        (
            {"optimizer": "sgd", "optimizer_kwargs": {"nesterov": True}},
            "Nesterov momentum requires",
        ),
        ({"optimizer": "rmsprop", "optimizer_kwargs": {"foreach": True}}, "implementation"),
        ({"optimizer": "sgd", "optimizer_kwargs": {"momentum": float("nan")}}, "momentum"),
        ({"optimizer": "sgd", "optimizer_kwargs": "momentum=0.9"}, "must be a dict"),
        ({"model": "cnn"}, "model must be one of"),
        ({"model": "logistic", "loss": "mse"}, "needs loss='bce'"),
        ({"model": "linear", "loss": "bce"}, "needs a classifier"),
        ({"model": "mlp", "hidden": 0}, "hidden must be"),
        ({"model": "mlp", "activation": "gelu"}, "activation must be"),
    ],
)
def test_bad_optimizer_and_model_settings_are_explained(kwargs, words):
    with pytest.raises(ValueError, match=words):
        lib.Config(**kwargs)


def test_manual_optimizers_accept_exactly_torchs_keywords():
    import inspect

    for name, hand in MANUAL.items():
        torch_cls = getattr(
            torch.optim,
            {
                "sgd": "SGD",
                "adam": "Adam",
                "adamw": "AdamW",
                "rmsprop": "RMSprop",
                "adagrad": "Adagrad",
            }[name],
        )
        ours = set(inspect.signature(hand).parameters) - {"weights", "lr"}
        theirs = set(inspect.signature(torch_cls).parameters) - {
            "params",
            "lr",
            "foreach",
            "fused",
            "differentiable",
            "capturable",
        }
        assert ours == theirs, name


def test_logistic_needs_binary_targets():
    with pytest.raises(ValueError, match="0 or 1"):
        lib.run(lib.datasets.linear(m=20), lib.Config(model="logistic"))


@pytest.mark.parametrize("bias", [True, False])
def test_every_parameter_tensors_norm_is_recorded_even_when_only_some_weights_are(bias):
    data = lib.datasets.linear(m=40, n=6, seed=2)
    cfg = lib.Config(model="mlp", hidden=40, bias=bias, init="normal", iterations=12, lr=0.05)
    result = lib.run(data, cfg)
    n_params = cfg.n_params(data.n)
    assert n_params > run_module.MAX_RECORDED_WEIGHTS  # so only some weights keep a history
    assert (
        result.manual.weights.shape == (13, len(result.recorded))
        and len(result.recorded) < n_params
    )
    assert result.tensor_names == (("W1", "b1", "W2", "b2") if bias else ("W1", "W2"))
    # The final norms equal those of the torch model rebuilt from the run's own final weights.
    final = lib.run(data, cfg.replace(iterations=12))  # same run again: deterministic
    np.testing.assert_array_equal(final.torch.param_norms, result.torch.param_norms)
    _, twin, _ = run_module.loops(data, cfg)
    for _ in range(12):
        _, w, _ = next(twin)
    sizes = [data.n * 40, 40, 40, 1] if bias else [data.n * 40, 40]
    pieces = np.split(w, np.cumsum(sizes)[:-1])
    np.testing.assert_allclose(
        result.torch.param_norms[-1], [np.linalg.norm(p) for p in pieces], rtol=1e-14
    )
    assert result.manual.param_norms.shape == (13, len(sizes))
    np.testing.assert_allclose(result.manual.param_norms, result.torch.param_norms, rtol=1e-12)


def test_small_models_derive_tensor_norms_from_their_weights():
    data = lib.datasets.linear(m=30, n=3, seed=1)
    result = lib.run(data, lib.Config(iterations=20))
    w = result.manual.weights
    np.testing.assert_allclose(
        result.manual.param_norms[:, 0], np.linalg.norm(w[:, :3], axis=1), rtol=1e-15
    )
    np.testing.assert_allclose(result.manual.param_norms[:, 1], np.abs(w[:, 3]), rtol=1e-15)


def expected_state(name: str, kwargs: dict) -> set[str]:
    """The state torch keeps for each optimizer and settings, by its documentation (its keys)."""
    if name == "sgd":
        return {"momentum_buffer"} if kwargs.get("momentum", 0) else set()
    if name in ("adam", "adamw"):
        return {"step", "exp_avg", "exp_avg_sq"} | (
            {"max_exp_avg_sq"} if kwargs.get("amsgrad") else set()
        )
    if name == "rmsprop":
        extra = {"grad_avg"} if kwargs.get("centered") else set()
        return (
            {"square_avg"} | extra | ({"momentum_buffer"} if kwargs.get("momentum", 0) else set())
        )
    return {"step", "sum"}


@pytest.mark.parametrize("name", OPTIMIZERS)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_each_optimizers_state_is_torchs_state_at_every_step(name, data):
    """Velocity, moments, sums and step counts of the hand optimizer equal torch's .state."""
    from lib.engine.trace import Stepper

    kwargs = data.draw(optimizer_kwargs(name), label="optimizer_kwargs")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    model = data.draw(st.sampled_from(["linear", "mlp"]), label="model")
    cfg = lib.Config(
        lr=1e-2, batch_size=7, iterations=6, init="normal", seed=seed, optimizer=name,
        optimizer_kwargs=kwargs, model=model, hidden=3,
    )  # fmt: skip
    stepper = Stepper(lib.datasets.linear(m=30, n=2, seed=seed), cfg)
    for t in range(cfg.iterations):
        step = stepper.next()
        state = {key: (attr, hand, twin) for attr, key, hand, twin in step.optimizer_state}
        assert set(state) == expected_state(name, kwargs)
        for attr, hand, twin in state.values():
            if np.ndim(hand) == 0:
                assert hand == twin == t + 1  # the step count
            else:
                assert hand.shape == twin.shape == (len(stepper.init),)
                np.testing.assert_allclose(
                    hand, twin, rtol=1e-9, atol=1e-12, err_msg=f"{attr} at step {t}"
                )
                # A buffer that stayed at zero would agree trivially.
                assert np.any(hand != 0), f"{attr} never filled"
        frame = step.state_frame(stepper.weight_names)
        assert len(frame) == len(stepper.init)
        assert len(frame.columns) == 3 * sum(np.ndim(h) == 1 for _, h, _ in state.values())


# Every switch the sidebar offers each optimizer, at once: ZERO_MLP says none of them moves a
# zero weight.
ZERO_MLP_KWARGS = {
    "sgd": [
        {},
        {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True},
        {"momentum": 0.5, "dampening": 0.5},
    ],
    "adam": [
        {},
        {"weight_decay": 0.1, "amsgrad": True, "maximize": True},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
    ],
    "adamw": [{}, {"weight_decay": 0.5, "amsgrad": True, "maximize": True}],
    "rmsprop": [{}, {"momentum": 0.9, "centered": True, "weight_decay": 0.1, "maximize": True}],
    "adagrad": [
        {},
        {"lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.5, "maximize": True},
        {"eps": 0.0, "initial_accumulator_value": 0.5},
    ],
}
ZERO_MLP_CASES = [(name, i) for name, sets in ZERO_MLP_KWARGS.items() for i in range(len(sets))]


def zero_mlp_run(
    name: str,
    kwargs: dict,
    activation: str,
    bias: bool,
    zero_grad: bool = True,
    iterations: int = 20,
):
    data = lib.datasets.PRESETS["moons"].make()
    cfg = lib.Config(
        model="mlp",
        hidden=5,
        activation=activation,
        init="zeros",
        iterations=iterations,
        lr=0.05,
        optimizer=name,
        optimizer_kwargs=kwargs,
        bias=bias,
        zero_grad=zero_grad,
    )
    return data, cfg, lib.run(data, cfg)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize(("name", "which"), ZERO_MLP_CASES)
def test_an_mlp_from_zero_weights_learns_only_its_output_bias(name, which, activation, bias):
    """pages.parts.labels.zero_mlp_warning: W1, b1 and W2 stay exactly 0 in both loops.

    With every optimizer and switch: the output is b2 for every input, and b2 is the only weight
    that moves (nothing moves without a bias); zero_grad is off in one case of each optimizer (the
    second), where zero gradients add up to zero."""
    from pages.parts.labels import OPTIMIZER_LABELS, optimizer_defaults, zero_mlp_warning

    data, cfg, result = zero_mlp_run(
        name, ZERO_MLP_KWARGS[name][which], activation, bias, zero_grad=which != 1
    )
    warning = zero_mlp_warning(cfg)
    kwargs = {**optimizer_defaults(name), **cfg.optimizer_kwargs}
    assert (
        f"with {OPTIMIZER_LABELS[name]}" in warning and f"computes {activation}(0) = 0" in warning
    )
    for arg, words in (
        ("momentum", "momentum"),
        ("weight_decay", "weight decay"),
        ("maximize", "maximize"),
    ):
        assert (words in warning) == bool(kwargs.get(arg)), arg  # named exactly when it is set
    assert ("zero_grad off" in warning) == (not cfg.zero_grad)
    assert "NaN" not in warning and "eps" not in warning
    if bias:
        assert "W1, b1 and W2 stay 0 at every step" in warning and "its output bias b2" in warning
    else:
        assert (
            "W1 and W2 stay 0 at every step" in warning
            and "b1" not in warning
            and "b2" not in warning
        )
        assert "nothing moves, and the network's output is 0 for every input" in warning
    assert result.done and result.diverged_at is None
    n_hidden = 5 * (data.n + 2) if bias else 5 * (data.n + 1)  # W1 (5 x 2), b1, W2
    assert cfg.n_params(data.n) == n_hidden + bias
    for loop in ("manual", "torch"):
        weights = getattr(result, loop).weights
        assert not np.any(weights[:, :n_hidden]), loop  # W1, b1 and W2: zero at every step
        if bias:
            assert np.all(weights[1:, n_hidden] != 0), loop  # b2 moves from the first step on
        else:
            assert not np.any(weights), loop  # nothing moves
        # Every input gets the same output: b2 (0 without a bias).
        net = make_model(cfg.layout(data.n), torch.float64)
        share_one_vector(net, weights[-1], torch.float64)
        with torch.no_grad():
            outputs = net(torch.from_numpy(data.X.copy()))[:, 0].numpy()
        np.testing.assert_array_equal(
            outputs, np.full(data.m, weights[-1, n_hidden] if bias else 0.0)
        )
    assert result.max_abs_diff <= TOL


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop", "adagrad"])
def test_an_mlp_from_zero_weights_with_eps_zero_gets_nan_at_its_first_step(name, bias):
    """zero_mlp_warning with eps = 0 (Adagrad: and initial_accumulator_value 0): updates are 0/0."""
    from pages.parts.labels import zero_mlp_warning

    data, cfg, result = zero_mlp_run(name, {"eps": 0.0}, "tanh", bias)
    warning = zero_mlp_warning(cfg)
    assert (
        "With eps = 0" + (" and initial_accumulator_value 0" if name == "adagrad" else ", ")
        in warning
    )
    hidden = "W1, b1 and W2" if bias else "W1 and W2"
    assert (
        f"the first update of {hidden} is 0/0 = NaN, and the run stops at its first step" in warning
    )
    assert "stay 0 at every step" not in warning
    assert result.diverged_at == 0
    n_hidden = 5 * (data.n + 2) if bias else 5 * (data.n + 1)
    for loop in ("manual", "torch"):
        assert np.all(np.isnan(getattr(result, loop).weights[1, :n_hidden])), loop
    # A weight that has had a gradient is fine with eps = 0: b2's first step is finite.
    if bias:
        assert np.isfinite(result.torch.weights[1, n_hidden])


def test_an_mlp_from_normal_weights_learns_in_its_hidden_layer():
    """zero_mlp_warning's advice: from normal weights the hidden units start different, all move."""
    data = lib.datasets.PRESETS["moons"].make()
    cfg = lib.Config(model="mlp", hidden=5, init="normal", iterations=20, lr=0.05)
    result = lib.run(data, cfg)
    W1 = result.torch.weights[:, :10].reshape(-1, 5, 2)
    assert len({tuple(row) for row in W1[0]}) == 5  # five different hidden units
    assert np.all(W1[-1] != W1[0])  # every weight of the hidden layer moved
