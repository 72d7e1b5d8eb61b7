"""The sidebar's help texts (pages.parts.labels): every formula in them is the one torch.optim
computes."""

import inspect
import math

import numpy as np
import pytest
import torch

import lib
from pages.parts.labels import (
    KWARG_HELP,
    KWARG_RANGES,
    LOSS_LABELS,
    MODEL_LABELS,
    kwarg_help,
    zero_mlp_warning,
)

LR = 0.1


def torch_steps(name: str, kwargs: dict, grads, w0: float = 0.0):
    """One weight stepped by torch.optim.<name> with the given gradients: its values after each
    step, and the optimizer (for its state)."""
    w = torch.tensor([w0], dtype=torch.float64, requires_grad=True)
    optimizer = lib.optim.torch_optimizer(name, [w], LR, kwargs)
    values = []
    for g in grads:
        w.grad = torch.tensor([g], dtype=torch.float64)
        optimizer.step()
        values.append(float(w.detach()[0]))
    return values, optimizer.state[w]


def test_momentum_first_step_sets_the_velocity_to_g_without_dampening():
    help_ = kwarg_help("sgd", "momentum")
    assert (
        "set to g at the first step (no dampening), then v = momentum·v + (1 − dampening)·g"
        in help_
    )
    assert "RMSprop" not in help_ and "0 turns it off: plain SGD steps by lr·g" in help_
    assert "the step is lr·v" in help_
    momentum, dampening, g1, g2 = 0.9, 0.5, 2.0, 3.0
    values, state = torch_steps("sgd", {"momentum": momentum, "dampening": dampening}, [g1, g2])
    v1 = g1  # not (1 - dampening) * g1
    assert values[0] == pytest.approx(-LR * v1, rel=1e-15)
    v2 = momentum * v1 + (1 - dampening) * g2
    assert values[1] == pytest.approx(values[0] - LR * v2, rel=1e-15)
    assert float(state["momentum_buffer"][0]) == pytest.approx(v2)
    assert "from the second step on (the first step sets v = g)" in KWARG_HELP["dampening"]


def test_nesterov_steps_along_g_plus_momentum_times_the_new_velocity():
    assert "step by lr·(g + momentum·v), with v the velocity just updated" in KWARG_HELP["nesterov"]
    values, _ = torch_steps("sgd", {"momentum": 0.9, "nesterov": True}, [2.0, 3.0])
    v1, v2 = 2.0, 0.9 * 2.0 + 3.0
    assert values[0] == pytest.approx(-LR * (2.0 + 0.9 * v1))
    assert values[1] == pytest.approx(values[0] - LR * (3.0 + 0.9 * v2))


def test_rmsprop_momentum_buffer_starts_at_zero_and_takes_g_over_the_root():
    help_ = kwarg_help("rmsprop", "momentum")
    assert help_.startswith("A buffer b = momentum·b + g / (√v + eps)") and "SGD" not in help_
    assert "0 turns it off: the step is then lr·g / (√v + eps)" in help_
    alpha, eps, momentum, g1, g2 = 0.9, 1e-8, 0.5, 2.0, -1.0
    values, _ = torch_steps("rmsprop", {"alpha": alpha, "eps": eps, "momentum": momentum}, [g1, g2])
    v1 = (1 - alpha) * g1**2
    b1 = g1 / (math.sqrt(v1) + eps)  # momentum * 0 + ...
    v2 = alpha * v1 + (1 - alpha) * g2**2
    b2 = momentum * b1 + g2 / (math.sqrt(v2) + eps)
    assert values == pytest.approx([-LR * b1, -LR * b1 - LR * b2], rel=1e-12)
    (off,), _ = torch_steps("rmsprop", {"alpha": alpha, "eps": eps}, [g1])
    # momentum 0: lr·g / (√v + eps)
    assert off == pytest.approx(-LR * g1 / (math.sqrt(v1) + eps), rel=1e-12)
    (plain,), _ = torch_steps("sgd", {}, [g1])
    assert plain == pytest.approx(-LR * g1, rel=1e-15)  # SGD's momentum 0: lr·g


def test_centered_rmsprop_divides_by_the_root_of_the_variance_estimate():
    help_ = KWARG_HELP["centered"]
    assert (
        "divide by √(v − ḡ²) + eps, the square root of an estimate of the gradient's variance"
        in help_
    )
    assert "divide by an estimate of its variance" not in help_
    alpha, eps, grads = 0.9, 1e-8, [2.0, -1.0]
    values, _ = torch_steps("rmsprop", {"alpha": alpha, "eps": eps, "centered": True}, grads)
    v = mean = w = 0.0
    for g, got in zip(grads, values, strict=True):
        v, mean = alpha * v + (1 - alpha) * g**2, alpha * mean + (1 - alpha) * g
        w -= LR * g / (math.sqrt(v - mean**2) + eps)
        assert got == pytest.approx(w, rel=1e-12)


def test_alpha_is_not_bias_corrected_and_betas_are():
    assert "unlike Adam's, is not corrected for that start" in KWARG_HELP["alpha"]
    (w,), _ = torch_steps("rmsprop", {"alpha": 0.99, "eps": 0.0}, [2.0])
    # lr / sqrt(1 - alpha) = 10 lr, not lr
    assert w == pytest.approx(-LR * 2.0 / math.sqrt(0.01 * 4.0))
    for part in ("beta1", "beta2"):
        assert (
            f"the step divides {'m' if part == 'beta1' else 'v'} by 1 − {part}^t"
            in KWARG_HELP[part]
        )
    beta1, beta2, eps, grads = 0.8, 0.9, 1e-8, [2.0, -1.0, 0.5]
    values, _ = torch_steps("adam", {"betas": (beta1, beta2), "eps": eps}, grads)
    m = v = w = 0.0
    for t, (g, got) in enumerate(zip(grads, values, strict=True), start=1):
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g**2
        w -= LR * (m / (1 - beta1**t)) / (math.sqrt(v / (1 - beta2**t)) + eps)
        assert got == pytest.approx(w, rel=1e-12)


def test_amsgrad_divides_by_the_largest_second_moment_so_far():
    assert (
        "largest second moment v so far (bias-corrected by this step's 1 − beta2^t)"
        in KWARG_HELP["amsgrad"]
    )
    beta1, beta2, eps, grads = 0.5, 0.5, 1e-8, [4.0, 0.1]
    values, _ = torch_steps("adam", {"betas": (beta1, beta2), "eps": eps, "amsgrad": True}, grads)
    m1, v1 = 0.5 * 4.0, 0.5 * 16.0
    m2, v2 = 0.5 * m1 + 0.05, 0.5 * v1 + 0.5 * 0.01
    step2 = (m2 / (1 - beta1**2)) / (math.sqrt(max(v1, v2) / (1 - beta2**2)) + eps)
    assert values[1] - values[0] == pytest.approx(-LR * step2, rel=1e-12)


def test_each_optimizers_eps_help_names_its_denominator_and_what_eps_zero_does():
    # the widget offers eps = 0, so the help must say what it does
    assert KWARG_RANGES["eps"][0] == 0.0
    for name in ("adam", "adamw", "rmsprop", "adagrad"):
        help_ = kwarg_help(name, "eps")
        assert help_ is KWARG_HELP[f"{name}_eps"] and "so it is never 0" not in help_
        assert (
            "steps by 0/eps = 0" in help_
            and "With eps = 0 it steps by 0/0 = NaN and the run stops" in help_
        )
        (safe,), _ = torch_steps(name, {}, [0.0], w0=1.0)
        (nan,), _ = torch_steps(name, {"eps": 0.0}, [0.0], w0=1.0)
        # AdamW: its decay
        assert safe == pytest.approx(1.0 - LR * 0.01 if name == "adamw" else 1.0, rel=1e-15)
        assert math.isnan(nan), name
    assert "(the decay still shrinks it)" in KWARG_HELP["adamw_eps"]
    # The denominators: Adam's and AdamW's √v̂ + eps (v bias-corrected), RMSprop's √v + eps,
    # Adagrad's √sum + eps.
    eps, g = 0.5, 2.0
    for name in ("adam", "adamw"):
        assert "the step is lr·m̂ / (√v̂ + eps)" in KWARG_HELP[f"{name}_eps"]
        (w,), _ = torch_steps(name, {"eps": eps, "weight_decay": 0.0}, [g], w0=0.0)
        # m̂ = g and √v̂ = |g| at the first step
        assert w == pytest.approx(-LR * g / (abs(g) + eps), rel=1e-12)
    assert "the step is lr·g / (√v + eps)" in KWARG_HELP["rmsprop_eps"]
    (w,), _ = torch_steps("rmsprop", {"eps": eps, "alpha": 0.75}, [g])
    assert w == pytest.approx(-LR * g / (math.sqrt(0.25 * g * g) + eps), rel=1e-12)
    help_ = KWARG_HELP["adagrad_eps"]
    assert (
        "the step is lr·g / (√sum + eps)" in help_
        and "unless initial_accumulator_value > 0" in help_
    )
    (w,), _ = torch_steps("adagrad", {"eps": eps}, [g])
    assert w == pytest.approx(-LR * g / (abs(g) + eps), rel=1e-12)
    (kept,), _ = torch_steps(
        "adagrad", {"eps": 0.0, "initial_accumulator_value": 0.5}, [0.0], w0=1.0
    )
    assert kept == 1.0
    # "a weight whose g (.grad, plus weight_decay × weights if set) has been 0": weight decay makes
    # g nonzero.
    for name in ("adam", "rmsprop", "adagrad"):
        assert (
            "whose g (.grad, plus weight_decay × weights if set) has been 0"
            in KWARG_HELP[f"{name}_eps"]
        )
        (decayed,), _ = torch_steps(name, {"eps": 0.0, "weight_decay": 0.1}, [0.0], w0=1.0)
        assert math.isfinite(decayed) and decayed < 1.0, name


def test_each_optimizers_weight_decay_help_says_where_the_decay_enters():
    for name in (
        "sgd",
        "adam",
        "rmsprop",
        "adagrad",
    ):  # L2: weight_decay × w is added to the gradient
        help_ = kwarg_help(name, "weight_decay")
        assert help_.startswith(
            "Adds weight_decay × weights to the gradient (L2), after maximize's sign change"
        )
        (w,), _ = torch_steps(name, {"weight_decay": 0.5, "maximize": True}, [2.0], w0=1.0)
        (same,), _ = torch_steps(name, {"maximize": False}, [-2.0 + 0.5 * 1.0], w0=1.0)
        # the same step as a gradient of −.grad + wd·w
        assert w == pytest.approx(same, rel=1e-12), name
    (w,), _ = torch_steps("sgd", {"weight_decay": 0.5, "maximize": True}, [2.0], w0=1.0)
    assert w == pytest.approx(1.0 - LR * (-2.0 + 0.5 * 1.0))
    # Adam's and RMSprop's moments, Adagrad's sum, SGD's velocity take the decayed gradient in.
    _, state = torch_steps("sgd", {"weight_decay": 0.5, "momentum": 0.9}, [2.0], w0=1.0)
    assert float(state["momentum_buffer"][0]) == pytest.approx(2.5)
    _, state = torch_steps("adam", {"weight_decay": 0.5}, [2.0], w0=1.0)
    assert float(state["exp_avg"][0]) == pytest.approx(0.1 * 2.5)
    _, state = torch_steps("rmsprop", {"weight_decay": 0.5, "centered": True}, [2.0], w0=1.0)
    assert float(state["square_avg"][0]) == pytest.approx(0.01 * 2.5**2)
    assert float(state["grad_avg"][0]) == pytest.approx(0.01 * 2.5)
    assert "before v (and ḡ, when centered) take it in" in KWARG_HELP["rmsprop_weight_decay"]
    _, state = torch_steps("adagrad", {"weight_decay": 0.5}, [2.0], w0=1.0)
    assert float(state["sum"][0]) == pytest.approx(2.5**2)
    assert "before its square is added to the sum" in KWARG_HELP["adagrad_weight_decay"]
    # AdamW (and Adam with decoupled_weight_decay) shrinks the weights first; the moments never see
    # the decay.
    assert (
        "multiplies the weights by 1 − lr·weight_decay before the step instead"
        in KWARG_HELP["adam_weight_decay"]
    )
    help_ = KWARG_HELP["adamw_weight_decay"]
    assert (
        help_.startswith("Multiplies the weights by 1 − lr·weight_decay before each step")
        and "L2" not in help_
    )
    assert (
        "torch's default is 0.01" in help_ and lib.optim.defaults("adamw")["weight_decay"] == 0.01
    )
    for name, kwargs in (
        ("adamw", {"weight_decay": 0.5}),
        ("adam", {"weight_decay": 0.5, "decoupled_weight_decay": True}),
    ):
        (w,), state = torch_steps(name, {**kwargs, "eps": 1e-8}, [2.0], w0=1.0)
        assert w == pytest.approx(1.0 * (1 - LR * 0.5) - LR * 2.0 / (2.0 + 1e-8), rel=1e-12)
        assert float(state["exp_avg"][0]) == pytest.approx(0.1 * 2.0)  # the gradient alone
    assert "still pulls the weights towards 0" in KWARG_HELP["maximize"]
    assert "Does nothing while weight_decay is 0" in KWARG_HELP["decoupled_weight_decay"]
    plain, _ = torch_steps("adam", {}, [2.0, 1.0], w0=1.0)
    assert torch_steps("adam", {"decoupled_weight_decay": True}, [2.0, 1.0], w0=1.0)[0] == plain


def test_adagrads_lr_decay_and_initial_accumulator():
    assert (
        "lr / (1 + (t − 1)·lr_decay)" in KWARG_HELP["lr_decay"]
        and "t = 1 at the first step" in KWARG_HELP["lr_decay"]
    )
    assert (
        "The step is lr·g / (√sum + eps), with lr after lr_decay and this step's g² in the sum"
        in (KWARG_HELP["initial_accumulator_value"])
    )
    lr_decay, start, eps, grads = 0.5, 2.0, 1e-10, [2.0, -1.0, 3.0]
    values, _ = torch_steps(
        "adagrad",
        {"lr_decay": lr_decay, "initial_accumulator_value": start, "eps": eps},
        grads,
        w0=1.0,
    )
    total, w = start, 1.0
    for t, (g, got) in enumerate(zip(grads, values, strict=True), start=1):
        total += g * g
        w -= LR / (1 + (t - 1) * lr_decay) * g / (math.sqrt(total) + eps)
        assert got == pytest.approx(w, rel=1e-12)


def test_every_keyword_the_sidebar_offers_has_help_and_a_shared_text_names_no_single_optimizer():
    shared = {}
    for name in lib.OPTIMIZERS:
        for arg in lib.optim.defaults(name):
            for key in ("beta1", "beta2") if arg == "betas" else (arg,):
                assert kwarg_help(name, key), (name, key)
                if f"{name}_{key}" not in KWARG_HELP:
                    shared.setdefault(key, set()).add(name)
    # A text under the argument's own name serves every optimizer that has no text of its own for
    # it.
    for key in ("momentum", "eps", "weight_decay"):
        assert key not in KWARG_HELP and key not in shared, key
    for key, users in shared.items():
        if len(users) > 1:
            assert not any(f"{OPTIMIZER_NAMES[n]}:" in KWARG_HELP[key] for n in users), key


OPTIMIZER_NAMES = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
}


def test_model_and_loss_labels():
    assert "z = X·w without a bias" in MODEL_LABELS["linear"]
    assert "its probability that the target is 1 is sigmoid(X·w + b)" in MODEL_LABELS["logistic"]
    # BCEWithLogitsLoss treats the output z as a logit: its term is -[y log p + (1 - y) log(1 - p)],
    # p = sigmoid(z).
    z, y = (
        torch.tensor([-1.5, 0.3, 2.0], dtype=torch.float64),
        torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64),
    )
    p = torch.sigmoid(z)
    expected = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert float(torch.nn.BCEWithLogitsLoss()(z, y)) == pytest.approx(float(expected), rel=1e-12)
    assert "(the classic hand loop)" not in LOSS_LABELS["half_mse"]
    assert lib.datasets.PRESETS["classic"].suggested["loss"] == "half_mse"
    assert "the sum of squared errors" in LOSS_LABELS["sse"]


def test_zero_mlp_warning_shows_only_the_clauses_that_apply():
    """Each clause is checked against both loops in tests/test_optimizers_models.py; here, which
    ones appear."""
    plain = zero_mlp_warning(lib.Config(model="mlp"))
    assert "b1" in plain and "its output bias b2, the only weight that can move" in plain
    assert "eps" not in plain and "0 without a bias" not in plain and "even with" not in plain
    off = zero_mlp_warning(lib.Config(model="mlp", bias=False, activation="relu"))
    assert "b1" not in off and "b2" not in off and "relu(0) = 0" in off
    assert "nothing moves, and the network's output is 0 for every input" in off
    nan = zero_mlp_warning(lib.Config(model="mlp", optimizer="adam", optimizer_kwargs={"eps": 0.0}))
    assert "With eps = 0, torch.optim.Adam divides those zero gradients by 0" in nan
    assert "stay 0 at every step" not in nan and "initial_accumulator_value" not in nan
    kept = zero_mlp_warning(
        lib.Config(
            model="mlp",
            optimizer="adagrad",
            optimizer_kwargs={"eps": 0.0, "initial_accumulator_value": 0.5},
        )
    )
    assert "NaN" not in kept and "stay 0 at every step" in kept


def test_custom_init_without_bias_leaves_the_biases_out():
    data = lib.datasets.linear(m=10, n=2)
    assert len(lib.initial_weights(data, lib.Config(bias=False, init=[1.0, 2.0]))) == 2
    with pytest.raises(ValueError, match="without bias"):
        lib.initial_weights(data, lib.Config(bias=False, init=[1.0, 2.0, 3.0]))
    cfg = lib.Config(model="mlp", hidden=2, bias=False, init=list(np.arange(6.0)))  # W1 (2 x 2), W2
    assert lib.weight_names(data, cfg) == [
        "W1[0,0]",
        "W1[0,1]",
        "W1[1,0]",
        "W1[1,1]",
        "W2[0]",
        "W2[1]",
    ]


def test_the_sidebar_help_names_what_it_does():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../pages/step_through.py", default_timeout=60)
    at.run()
    help_ = at.selectbox(key="data").help
    for words in (
        "lr",
        "batch size",
        "iterations",
        "the model (with its hidden layer)",
        "loss",
        "bias",
        "optimizer (with its settings)",
        "initial weights",
        "zero_grad",
    ):
        assert words in help_
    at.selectbox(key="data").set_value("classic").run()
    assert not at.checkbox(key="bias").value and at.number_input(key="lr").value == 1e-4
    assert (
        at.selectbox(key="loss").value == "half_mse"
        and at.number_input(key="iterations").value == 50_000
    )
    at.selectbox(key="data").set_value("moons").run()
    assert at.selectbox(key="init").value == "normal" and at.number_input(key="hidden").value == 16
    assert (at.selectbox(key="model").value, at.selectbox(key="loss").value) == ("mlp", "bce")
    at.selectbox(key="data").set_value("escape_velocity").run()
    assert at.number_input(key="sgd_momentum").value == 0.98
    assert not at.exception

    assert (
        "without a bias, leave the biases out"
        in at.selectbox(key="init").set_value("custom").run().text_input(key="init_values").help
    )
    assert (
        "neg_grad and .grad hold the sum of every step's gradient so far"
        in at.checkbox(key="zero_grad").help
    )


def test_the_csv_help_says_blanks_are_allowed_when_dropped():
    import pandas as pd
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../pages/step_through.py", default_timeout=60)
    at.run()
    at.selectbox(key="data").set_value("csv").run()
    assert (
        "(blanks too, if you tick Drop rows with missing values)"
        in at.get("file_uploader")[0].proto.help
    )
    frame = pd.DataFrame({"x": [1.0, None, 3.0], "y": [2.0, 4.0, 6.0]})
    with pytest.raises(ValueError, match="missing values"):
        lib.csv_data.prepare(frame, "y", ["x"])
    assert lib.csv_data.prepare(frame, "y", ["x"], drop_missing=True).dropped_rows == 1


# ------------------------------------------------- the whole loop's help (issue 12): torch's own


def torch_lrs(name: str, kwargs: dict, steps: int, optimizer: str = "sgd", lr: float = LR):
    """The lr each of `steps` optimizer steps uses under torch's scheduler, and the optimizer's
    momentum (or beta1) at each step."""
    from pages.parts.labels import SCHEDULE_CLASSES

    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = lib.optim.torch_optimizer(optimizer, [w], lr, {})
    scheduler = getattr(torch.optim.lr_scheduler, SCHEDULE_CLASSES[name])(opt, **kwargs)
    lrs, momenta = [], []
    for _ in range(steps):
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["betas"][0] if "betas" in group else group.get("momentum"))
        w.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
        scheduler.step()
    return np.array(lrs), momenta


def test_each_schedules_formula_is_torchs_lr_at_every_step():
    from pages.parts.labels import SCHEDULE_FORMULAS, SCHEDULE_KWARG_HELP

    t = np.arange(300)
    cases = {
        "step": ({"step_size": 40, "gamma": 0.5}, LR * 0.5 ** (t // 40)),
        "multistep": (
            {"milestones": [50, 120, 120], "gamma": 0.5},
            LR * 0.5 ** ((t >= 50).astype(int) + 2 * (t >= 120)),
        ),
        "exponential": ({"gamma": 0.99}, LR * 0.99**t),
        # past T_max the cosine climbs again, as the help says
        "cosine": (
            {"T_max": 100, "eta_min": 0.01},
            0.01 + (LR - 0.01) * (1 + np.cos(np.pi * t / 100)) / 2,
        ),
        "linear": (
            {"start_factor": 0.25, "end_factor": 0.75, "total_iters": 80},
            LR * (0.25 + 0.5 * np.minimum(t, 80) / 80),
        ),
    }
    for name, (kwargs, formula) in cases.items():
        got, _ = torch_lrs(name, kwargs, len(t))
        np.testing.assert_allclose(got, formula, rtol=1e-12, err_msg=name)
    assert "lr₀ · gamma^⌊t / step_size⌋" in SCHEDULE_FORMULAS["step"]
    assert "a milestone listed twice counts twice" in SCHEDULE_KWARG_HELP["multistep_milestones"]
    assert "lr₀ · gamma^t" in SCHEDULE_FORMULAS["exponential"]
    assert "(1 + cos(π·t / T_max)) / 2" in SCHEDULE_FORMULAS["cosine"]
    assert "and up again after it" in SCHEDULE_KWARG_HELP["cosine_T_max"]
    assert "min(t, total_iters) / total_iters" in SCHEDULE_FORMULAS["linear"]
    cosine, _ = torch_lrs("cosine", {"T_max": 100, "eta_min": 0.01}, 201)
    assert cosine[100] == pytest.approx(0.01) and cosine[200] == pytest.approx(LR)
    # a formula that is not torch's fails: StepLR's first multiplication is at step step_size
    got, _ = torch_lrs("step", {"step_size": 40, "gamma": 0.5}, 80)
    assert not np.allclose(got, LR * 0.5 ** ((np.arange(80) + 1) // 40))


def test_onecycle_help_its_start_peak_end_and_the_momentum_it_sets():
    from pages.parts.labels import SCHEDULE_FORMULAS, SCHEDULE_KWARG_HELP

    steps, max_lr, div, final = 500, 0.2, 25.0, 1e4
    kwargs = {"max_lr": max_lr, "total_steps": steps, "pct_start": 0.3}
    lrs, momenta = torch_lrs("onecycle", kwargs, steps)
    assert "step 0 uses max_lr / div_factor" in SCHEDULE_KWARG_HELP["onecycle_div_factor"]
    assert lrs[0] == pytest.approx(max_lr / div, rel=1e-12)
    assert "reached at step pct_start · iterations − 1" in SCHEDULE_KWARG_HELP["onecycle_pct_start"]
    assert int(np.argmax(lrs)) == round(0.3 * steps) - 1 and lrs.max() == pytest.approx(max_lr)
    assert "when max_lr is 0" in SCHEDULE_FORMULAS["onecycle"]
    # pct_start · iterations − 1 = 148.5 is between steps 148 and 149: neither reaches max_lr
    odd, _ = torch_lrs("onecycle", {**kwargs, "pct_start": 0.299}, steps)
    assert (
        "between two steps when that is not a whole number"
        in SCHEDULE_KWARG_HELP["onecycle_pct_start"]
    )
    assert odd.max() < max_lr and int(np.argmax(odd)) in (148, 149)
    assert (
        "max_lr / (div_factor · final_div_factor)"
        in SCHEDULE_KWARG_HELP["onecycle_final_div_factor"]
    )
    assert lrs[-1] == pytest.approx(max_lr / (div * final), rel=1e-9)
    # SGD at momentum 0 trains with momentum: 0.95 at step 0, 0.85 at the peak, 0.95 at the end
    help_ = SCHEDULE_KWARG_HELP["onecycle_cycle_momentum"]
    assert "SGD with momentum 0 trains with momentum then" in help_
    assert momenta[0] == pytest.approx(0.95) and momenta[149] == pytest.approx(0.85)
    assert momenta[-1] == pytest.approx(0.95)
    _, betas = torch_lrs("onecycle", kwargs, 2, optimizer="adam")
    assert betas[0] == pytest.approx(0.95)  # Adam's beta1, not its 0.9
    assert "Adagrad has neither, so with Adagrad switch this off" in help_
    with pytest.raises(ValueError, match="momentum"):
        lib.Config(optimizer="adagrad", scheduler="onecycle")
    lib.Config(
        optimizer="adagrad", scheduler="onecycle", scheduler_kwargs={"cycle_momentum": False}
    )
    assert "0: the lr set above" in SCHEDULE_KWARG_HELP["onecycle_max_lr"]
    assert lib.Config(lr=0.3, scheduler="onecycle").scheduler_kwargs["max_lr"] == 0.3


def test_the_clip_help_is_clip_grad_norm_s_factor_even_just_below_max_norm():
    from pages.parts.labels import CLIP_HELP

    assert "multiplied by min(1, max_norm / (norm + 1e-6))" in CLIP_HELP
    assert "keeps the norm before clipping" in CLIP_HELP and "0: no clipping" in CLIP_HELP
    for norm, max_norm in ((5.0, 1.0), (1.0 - 1e-7, 1.0), (0.5, 1.0)):
        g = torch.tensor([norm * 0.6, norm * 0.8], dtype=torch.float64)
        w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        w.grad = g.clone()
        torch.nn.utils.clip_grad_norm_([w], max_norm)
        factor = min(1.0, max_norm / (norm + 1e-6))
        np.testing.assert_allclose(w.grad.numpy(), g.numpy() * factor, rtol=1e-14)
    # just below max_norm it still scales: "only above max_norm" would be false
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    w.grad = torch.tensor([1.0 - 1e-7], dtype=torch.float64)
    torch.nn.utils.clip_grad_norm_([w], 1.0)
    assert float(w.grad[0]) < 1.0 - 1e-7


def test_the_loader_and_validation_help_say_what_lib_does():
    from pages.parts.labels import (
        ACCUMULATE_HELP,
        DROP_LAST_HELP,
        EVAL_EVERY_HELP,
        VAL_FRACTION_HELP,
    )

    assert "round(val_fraction × rows) of them, at least one" in VAL_FRACTION_HELP
    assert len(lib.engine.data.split_rows(200, 0.2, 0)[1]) == 40
    assert len(lib.engine.data.split_rows(3, 0.1, 0)[1]) == 1  # round(0.3) is 0: at least one
    assert "every ⌈iterations / 200⌉ steps" in EVAL_EVERY_HELP
    assert lib.Config(iterations=1001, val_fraction=0.2).eval_interval == math.ceil(1001 / 200)
    data = lib.io.datasets.linear(m=50)
    result = lib.run(data, lib.Config(iterations=12, val_fraction=0.2, eval_every=5))
    assert list(result.val_steps) == [4, 9]  # after step eval_every, 2·eval_every
    assert "optimizer.zero_grad() before a step's first micro-batch" in ACCUMULATE_HELP
    assert "loss = criterion(outputs, labels) / accumulate" in ACCUMULATE_HELP
    source = inspect.getsource(lib.torch_loop)
    assert "loss = loss / accumulate" in source and "i % accumulate == 0" in source
    assert "each epoch's last, shorter batch is left out" in DROP_LAST_HELP
    kept = list(lib.engine.data.SharedOrder(10, 4, 0, drop_last=False))
    dropped = list(lib.engine.data.SharedOrder(10, 4, 0, drop_last=True))
    assert [len(b) for b in kept] == [4, 4, 2] and [len(b) for b in dropped] == [4, 4]
