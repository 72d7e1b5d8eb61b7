"""AppTest of the Step-through page: the buttons move both loops, and every number shown is lib.run's."""

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import lib

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "step_through.py")
# The page's defaults.
DATA = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
CFG = lib.Config(lr=0.05, batch_size=32, iterations=500, loss="mse")


@pytest.fixture(scope="module")
def result():
    return lib.run(DATA, CFG)


def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def shown_step(at: AppTest) -> int:
    title = at.subheader[0].value  # "Step t of 0 – 99"
    return int(title.split()[1])


def assert_step_matches_run(at: AppTest, result: lib.Result) -> None:
    t = shown_step(at)
    batch, weights = at.dataframe[0].value, at.dataframe[1].value
    rows = np.arange(DATA.m)[next(b for i, b in enumerate(lib.batch_indices(DATA.m, CFG.batch_size, 0)) if i == t)]
    np.testing.assert_array_equal(batch["sample (row)"], rows)
    np.testing.assert_array_equal(batch[["x1", "x2", "x3"]], DATA.X[rows])
    np.testing.assert_array_equal(batch["target"], DATA.y[rows])
    for loop in ("manual", "torch"):
        history = getattr(result, loop)
        np.testing.assert_array_equal(weights[f"before ({loop})"], history.weights[t])
        np.testing.assert_array_equal(weights[f"after ({loop})"], history.weights[t + 1])
        np.testing.assert_array_equal(weights[f"update ({loop})"], history.weights[t + 1] - history.weights[t])
        assert np.linalg.norm(weights[f"gradient ({loop})"]) == pytest.approx(history.grad_norm[t], rel=1e-14)
        assert float(at.metric[0 if loop == "manual" else 1].value) == pytest.approx(history.loss[t], rel=1e-5)
    assert list(weights.index) == ["w_1", "w_2", "w_3", "bias"]
    assert (weights["|Δ after|"] <= 1e-12).all()


def test_opens_not_started_with_every_button():
    at = page()
    assert "Not started" in at.info[0].value
    for key in ("step_start", "step_previous", "step_next", "step_run_to", "step_reset"):
        assert at.button(key=key)
    assert at.button(key="step_previous").disabled and not at.button(key="step_start").disabled
    assert not at.dataframe


def test_stepping_forward_and_back_gives_lib_run_numbers(result):
    at = page()
    click(at, "step_start")
    assert shown_step(at) == 0 and at.button(key="step_start").disabled
    assert_step_matches_run(at, result)
    for expected in (1, 2, 3):
        click(at, "step_next")
        assert shown_step(at) == expected
        assert_step_matches_run(at, result)
    first_batch = at.dataframe[0].value.copy()
    click(at, "step_next")
    click(at, "step_previous")
    assert shown_step(at) == 3
    assert_step_matches_run(at, result)
    assert at.dataframe[0].value.equals(first_batch)
    for expected in (2, 1, 0):
        click(at, "step_previous")
        assert shown_step(at) == expected
        assert_step_matches_run(at, result)


def test_run_to_step_n_then_back_and_reset(result):
    at = page()
    at.number_input(key="step_target").set_value(57)
    click(at, "step_run_to")
    assert shown_step(at) == 57
    assert_step_matches_run(at, result)
    click(at, "step_previous")
    assert shown_step(at) == 56
    assert_step_matches_run(at, result)
    at.number_input(key="step_target").set_value(499)
    click(at, "step_run_to")
    assert shown_step(at) == 499 and at.button(key="step_next").disabled
    assert_step_matches_run(at, result)
    click(at, "step_reset")
    assert "Not started" in at.info[0].value


def test_a_new_configuration_starts_a_new_run():
    at = page()
    click(at, "step_start")
    click(at, "step_next")
    at.number_input(key="lr").set_value(0.01).run()
    assert not at.exception
    assert "Not started" in at.info[0].value
    click(at, "step_start")
    result = lib.run(DATA, CFG.replace(lr=0.01, iterations=1))
    np.testing.assert_array_equal(at.dataframe[1].value["after (torch)"], result.torch.weights[1])


def test_divergence_is_said_in_words():
    at = page()
    at.number_input(key="lr").set_value(100.0).run()
    at.number_input(key="step_target").set_value(499)
    click(at, "step_run_to")
    result = lib.run(DATA, CFG.replace(lr=100.0))
    assert result.diverged_at is not None
    assert shown_step(at) == result.diverged_at
    assert f"diverged at step {result.diverged_at}" in at.warning[0].value


def test_state_survives_page_switches():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/step_through.py").run()
    assert not at.exception
    at.number_input(key="batch_size").set_value(16).run()
    click(at, "step_start")
    click(at, "step_next")
    click(at, "step_next")
    before = at.dataframe[1].value.copy()
    at.switch_page("pages/code_map.py").run()
    assert not at.exception
    at.switch_page("pages/step_through.py").run()
    assert not at.exception
    assert shown_step(at) == 2
    assert at.number_input(key="batch_size").value == 16
    assert at.dataframe[1].value.equals(before)


def test_an_mlp_with_adam_steps_through_with_lib_run_numbers():
    at = page()
    at.selectbox(key="data").set_value("moons").run()
    at.selectbox(key="optimizer").set_value("adam").run()
    at.number_input(key="step_target").set_value(12)
    click(at, "step_run_to")
    assert shown_step(at) == 12
    preset = lib.datasets.PRESETS["moons"]
    data = preset.make(0)
    result = lib.run(data, preset.config(data, optimizer="adam", iterations=13))
    weights = at.dataframe[1].value
    assert len(weights) == len(lib.weight_names(data, result.config))
    for loop in ("manual", "torch"):
        np.testing.assert_array_equal(weights[f"after ({loop})"], getattr(result, loop).weights[13])
    assert any("Model mlp · loss convention bce" in c.value for c in at.caption)


def test_adams_moments_and_step_count_are_shown_beside_torchs_state():
    at = page()
    at.selectbox(key="optimizer").set_value("adam").run()
    at.number_input(key="step_target").set_value(4).run()
    click(at, "step_run_to")
    assert shown_step(at) == 4
    state = at.dataframe[2].value
    stepper = lib.trace.Stepper(DATA, CFG.replace(optimizer="adam", iterations=5))
    stepper.run_to(4)
    hand_opt, torch_opt = stepper.optimizers
    np.testing.assert_array_equal(state["exp_avg (manual)"], hand_opt.exp_avg)
    np.testing.assert_array_equal(state["exp_avg_sq (manual)"], hand_opt.exp_avg_sq)
    torch_m = np.concatenate(
        [torch_opt.state[p]["exp_avg"].numpy().ravel() for p in torch_opt.param_groups[0]["params"]]
    )
    np.testing.assert_array_equal(state["exp_avg (torch)"], torch_m)
    assert (state["|Δ exp_avg_sq|"] <= 1e-12).all()
    assert "max_exp_avg_sq (manual)" not in state  # only with amsgrad=True
    caption = "\n".join(c.value for c in at.caption)
    assert "`optimizer.t` = 5 (manual), `state['step']` = 5 (torch)" in caption


def test_plain_sgd_says_it_keeps_no_state():
    at = page()
    click(at, "step_start")
    assert len(at.dataframe) == 2
    assert any("keeps no state between steps" in c.value for c in at.caption)


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_the_batch_columns_are_named_for_the_loss_term_and_add_up_to_the_loss_shown():
    at = page()
    at.selectbox(key="loss").set_value("half_mse").run()
    click(at, "step_start")
    batch = at.dataframe[0].value
    term = batch["½·(target − prediction)² (manual)"]
    np.testing.assert_allclose(term, (batch["target"] - batch["prediction (manual)"]) ** 2 / 2, rtol=1e-12)
    assert f"{term.mean():.6g}" == at.metric[0].value  # its mean is the loss beside it, not twice it
    text = captions(at)
    assert "½·(target − prediction)²: the half_mse loss (½ × MSELoss()) is their mean" in text
    assert f"Here the mean of the column is {term.mean():.6g} (manual)" in text
    assert "(label − prediction)²" not in text

    at.selectbox(key="loss").set_value("sse").run()
    click(at, "step_start")
    batch = at.dataframe[0].value
    assert f"{batch['(target − prediction)² (torch)'].sum():.6g}" == at.metric[1].value
    assert 'MSELoss(reduction="sum") is their sum' in captions(at)


def test_a_classifier_shows_its_logit_and_probability_and_the_bce_term():
    at = page()
    at.selectbox(key="data").set_value("blobs").run()
    click(at, "step_start")
    batch = at.dataframe[0].value
    assert "prediction (manual)" not in batch  # the logistic model's output is a logit, not a probability
    logit, p = batch["logit (manual)"], batch["p = sigmoid(logit) (manual)"]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-logit)), rtol=1e-12)
    term = batch["−[target·log p + (1 − target)·log(1 − p)] (manual)"]
    y = batch["target"]
    np.testing.assert_allclose(term, -(y * np.log(p) + (1 - y) * np.log(1 - p)), rtol=1e-9)
    assert f"{term.mean():.6g}" == at.metric[0].value
    text = captions(at)
    assert "each loop's logit" in text and "BCEWithLogitsLoss() is their mean" in text
    assert "h = sigmoid(z)" in text


def test_without_zero_grad_the_page_says_the_gradient_is_a_sum_over_steps():
    at = page()
    at.checkbox(key="zero_grad").uncheck().run()
    click(at, "step_start")
    click(at, "step_next")
    text = captions(at)
    assert "this step's gradient only" not in text
    assert "it holds the sum of the gradients of every step so far" in text
    # ... which is what the numbers say: step 1's gradient is step 0's plus step 1's own batch gradient.
    stepper = lib.trace.Stepper(DATA, CFG.replace(iterations=2))
    fresh = [stepper.next() for _ in range(2)]
    shown = at.dataframe[1].value["gradient (torch)"].to_numpy()
    np.testing.assert_allclose(shown, fresh[0].torch.gradient + fresh[1].torch.gradient, rtol=1e-12)

    at.checkbox(key="zero_grad").check().run()
    click(at, "step_start")
    assert "and .grad holds this step's gradient only" in captions(at)


def test_plain_sgds_update_formula_is_the_one_the_numbers_follow():
    at = page()
    at.checkbox(key="sgd_maximize").check().run()
    at.number_input(key="sgd_weight_decay").set_value(0.5).run()
    click(at, "step_start")
    click(at, "step_next")
    assert "the update is −lr × (−.grad + weight_decay × weights)" in captions(at)
    w = at.dataframe[1].value
    expected = -CFG.lr * (-w["gradient (torch)"] + 0.5 * w["before (torch)"])
    np.testing.assert_allclose(w["update (torch)"], expected, rtol=1e-9, atol=1e-15)


def test_eps_zero_divergence_names_the_zero_over_zero():
    at = page()
    at.selectbox(key="model").set_value("mlp").run()  # all-zero weights: every gradient but b2's is 0
    at.selectbox(key="optimizer").set_value("adam").run()
    at.number_input(key="adam_eps").set_value(0.0).run()
    click(at, "step_start")
    warning = at.warning[-1].value
    assert "diverged at step 0" in warning
    weights = at.dataframe[1].value
    nan = int((weights["gradient (manual)"] == 0).sum())
    assert nan == 8 * 3 + 8 + 8 and weights["after (manual)"].isna().sum() == nan  # W1, b1, W2: 0/0
    assert f"{nan:,} weights whose gradient at this step was exactly 0 came out of the update as NaN" in warning
    assert "learning rate smaller" not in warning  # no lr helps 0/0


def test_an_lr_divergence_does_not_blame_eps():
    at = page()
    at.number_input(key="lr").set_value(100.0).run()
    at.number_input(key="step_target").set_value(499)
    click(at, "step_run_to")
    warning = at.warning[0].value
    assert "A learning rate smaller than 100 may keep the run finite." in warning and "eps =" not in warning
    # The title no longer promises steps up to 499.
    assert at.subheader[0].value.endswith(f"this run diverged at step {shown_step(at)}, its last step")
