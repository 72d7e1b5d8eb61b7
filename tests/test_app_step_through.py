"""AppTest of the Step-through page: the buttons move both loops, and every number shown is
lib.run's."""

import itertools
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import lib
from lib import explain
from lib.io.export import twin_sources

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "step_through.py")
# The page's defaults.
DATA = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
CFG = lib.Config(lr=0.05, batch_size=32, iterations=500, loss="mse")
MAX_ITERATIONS = 10_000  # pages/step_through.py's: the page steps through this many at most


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
    rows = np.arange(DATA.m)[
        next(b for i, b in enumerate(lib.batch_indices(DATA.m, CFG.batch_size, 0)) if i == t)
    ]
    np.testing.assert_array_equal(batch["sample (row)"], rows)
    np.testing.assert_array_equal(batch[["x1", "x2", "x3"]], DATA.X[rows])
    np.testing.assert_array_equal(batch["target"], DATA.y[rows])
    for loop in ("manual", "torch"):
        history = getattr(result, loop)
        np.testing.assert_array_equal(weights[f"before ({loop})"], history.weights[t])
        np.testing.assert_array_equal(weights[f"after ({loop})"], history.weights[t + 1])
        np.testing.assert_array_equal(
            weights[f"update ({loop})"], history.weights[t + 1] - history.weights[t]
        )
        assert np.linalg.norm(weights[f"gradient ({loop})"]) == pytest.approx(
            history.grad_norm[t], rel=1e-14
        )
        assert float(at.metric[0 if loop == "manual" else 1].value) == pytest.approx(
            history.loss[t], rel=1e-5
        )
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
    np.testing.assert_allclose(
        term, (batch["target"] - batch["prediction (manual)"]) ** 2 / 2, rtol=1e-12
    )
    # its mean is the loss beside it, not twice it
    assert f"{term.mean():.6g}" == at.metric[0].value
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
    # the logistic model's output is a logit, not a probability
    assert "prediction (manual)" not in batch
    logit, p = batch["logit (manual)"], batch["p = sigmoid(logit) (manual)"]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-logit)), rtol=1e-12)
    term = batch["−[target·log p + (1 − target)·log(1 − p)] (manual)"]
    y = batch["target"]
    np.testing.assert_allclose(term, -(y * np.log(p) + (1 - y) * np.log(1 - p)), rtol=1e-9)
    assert f"{term.mean():.6g}" == at.metric[0].value
    text = captions(at)
    assert "each loop's logit" in text and "BCEWithLogitsLoss() is their mean" in text
    assert "h = sigmoid(outputs)" in text


def test_without_zero_grad_the_page_says_the_gradient_is_a_sum_over_steps():
    at = page()
    at.checkbox(key="zero_grad").uncheck().run()
    click(at, "step_start")
    click(at, "step_next")
    text = captions(at)
    assert "this step's gradient only" not in text
    assert "it holds the sum of the gradients of every step so far" in text
    # ... which is what the numbers say: step 1's gradient is step 0's plus step 1's own batch
    # gradient.
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
    at.selectbox(key="model").set_value(
        "mlp"
    ).run()  # all-zero weights: every gradient but b2's is 0
    at.selectbox(key="optimizer").set_value("adam").run()
    at.number_input(key="adam_eps").set_value(0.0).run()
    click(at, "step_start")
    warning = at.warning[-1].value
    assert "diverged at step 0" in warning
    weights = at.dataframe[1].value
    nan = int((weights["gradient (manual)"] == 0).sum())
    assert nan == 8 * 3 + 8 + 8 and weights["after (manual)"].isna().sum() == nan  # W1, b1, W2: 0/0
    assert (
        f"{nan:,} weights whose gradient at this step was exactly 0 came out of the update as NaN"
        in warning
    )
    assert "learning rate smaller" not in warning  # no lr helps 0/0


def test_an_lr_divergence_does_not_blame_eps():
    at = page()
    at.number_input(key="lr").set_value(100.0).run()
    at.number_input(key="step_target").set_value(499)
    click(at, "step_run_to")
    warning = at.warning[0].value
    assert (
        "A learning rate smaller than 100 may keep the run finite." in warning
        and "eps =" not in warning
    )
    # The title no longer promises steps up to 499.
    assert at.subheader[0].value.endswith(
        f"this run diverged at step {shown_step(at)}, its last step"
    )


# ---------------------------------------------------------------- play, and the line that just ran
#
# AppTest runs the play fragment only inside a whole script run, never on its timer: each at.run()
# is one beat here. The page moves at most once per half beat (a click inside the fragment also runs
# it), so a test that wants a move marks the last move as long ago.
# tests/test_browser_step_through.py checks the timer itself in a real browser.


def beat(at: AppTest) -> AppTest:
    """One tick of play, as if the timer fired a beat after the last move."""
    at.session_state["step_moved_at"] = float("-inf")
    at.run()
    assert not at.exception, at.exception
    return at


def playing(at: AppTest) -> bool:
    return bool(at.session_state["step_playing"])


def small_page(iterations: int) -> AppTest:
    at = page()
    at.number_input(key="iterations").set_value(iterations).run()
    assert not at.exception
    return at


def test_play_moves_one_step_per_beat_and_stops_by_itself_at_the_end(result):
    at = small_page(4)
    click(at, "step_play")
    assert shown_step(at) == 0 and playing(at)  # the first move comes at once
    keys = {b.key for b in at.button}
    assert "step_pause" in keys and "step_play" not in keys
    for expected in (1, 2, 3):
        beat(at)
        assert shown_step(at) == expected
        # the first steps of the 4-step run are the 500-step run's
        assert_step_matches_run(at, result)
    assert not playing(at)
    assert (
        at.info[0].value
        == "Play stopped by itself at step 3, the run's last step (4 iterations, counted from "
        "step 0)."
    )
    assert at.button(key="step_play").disabled and at.button(key="step_next").disabled
    beat(at)
    assert shown_step(at) == 3 and not playing(at)


def test_pause_holds_the_step_and_play_goes_on_from_it():
    at = small_page(20)
    click(at, "step_play")
    beat(at)
    assert shown_step(at) == 1
    click(at, "step_pause")
    assert not playing(at) and shown_step(at) == 1
    for _ in range(3):
        beat(at)
    assert shown_step(at) == 1 and not at.info  # paused by hand: no "stopped by itself"
    click(at, "step_play")
    assert shown_step(at) == 2 and playing(at)


def test_play_moves_at_most_once_a_half_beat():
    at = small_page(20)
    at.selectbox(key="step_speed").set_value(0.5).run()  # a beat is 2 s
    click(at, "step_play")
    assert shown_step(at) == 0
    at.run()  # well within a second of the last move: a run of the page, not a beat
    at.run()
    assert shown_step(at) == 0 and playing(at)
    beat(at)
    assert shown_step(at) == 1


def test_a_hand_on_the_step_buttons_pauses_play():
    at = small_page(20)
    click(at, "step_play")
    beat(at)
    click(at, "step_next")
    assert shown_step(at) == 2 and not playing(at)
    beat(at)
    assert shown_step(at) == 2


def test_play_stops_by_itself_where_the_run_diverges():
    at = page()
    at.number_input(key="lr").set_value(100.0).run()
    at.selectbox(key="step_speed").set_value(10.0).run()
    click(at, "step_play")
    for _ in range(200):
        if not playing(at):
            break
        beat(at)
    diverged = lib.run(DATA, CFG.replace(lr=100.0)).diverged_at
    assert not playing(at) and shown_step(at) == diverged
    assert (
        f"Play stopped by itself at step {diverged}: the loops diverged there" in at.info[0].value
    )
    assert f"diverged at step {diverged}" in at.warning[0].value
    assert at.button(key="step_play").disabled and at.button(key="step_line").disabled


def test_play_at_the_page_limit_says_where_it_stopped():
    at = small_page(MAX_ITERATIONS + 5)
    at.number_input(key="step_target").set_value(MAX_ITERATIONS - 2)
    click(at, "step_run_to")
    click(at, "step_play")
    assert shown_step(at) == MAX_ITERATIONS - 1 and not playing(at)
    assert at.info[0].value == (
        f"Play stopped by itself at step {MAX_ITERATIONS - 1}, the last of the first "
        f"{MAX_ITERATIONS:,} steps this page steps through (of {MAX_ITERATIONS + 5:,} "
        "iterations)."
    )


def test_changing_a_setting_stops_play_and_starts_a_new_run():
    at = small_page(20)
    click(at, "step_play")
    beat(at)
    at.number_input(key="lr").set_value(0.01).run()
    assert not at.exception and not playing(at)
    assert "Not started" in at.info[0].value
    beat(at)
    assert "Not started" in at.info[0].value
    at.number_input(key="lr").set_value(1e9).run()  # out of range: no run at all, and no traceback
    assert not at.exception and not playing(at)


def test_leaving_the_page_pauses_play():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/step_through.py").run()
    click(at, "step_play")
    beat(at)
    assert shown_step(at) == 1 and playing(at)
    at.switch_page("pages/code_map.py").run()
    assert not at.exception
    at.switch_page("pages/step_through.py").run()
    assert not at.exception and not playing(at)
    assert at.button(key="step_play") and shown_step(at) == 1
    beat(at)
    assert shown_step(at) == 1


def code_of(source: str, phase: str) -> str:
    """A phase's source without its comment lines: what the page's table shows for it."""
    kept = [
        line
        for line in explain.phase_source(source, missing="")[phase].splitlines()
        if not line.strip().startswith("#")
    ]
    return textwrap.dedent("\n".join(kept)) or "# none: this configuration skips this line"


def per_batch_of(source: str) -> str:
    """The loop's lines from its `for` line to the reset, less comment lines: the page's first
    row."""
    setup = explain.phase_source(source, missing="")[explain.SETUP].splitlines()
    start = next(i for i, line in enumerate(setup) if line.strip().startswith("for "))
    kept = [line for line in setup[start:] if line.strip() and not line.strip().startswith("#")]
    return textwrap.dedent("\n".join(kept))


def watch_text(pairs) -> str:
    return "\n".join(f"{name} = {explain.show(value)}" for name, value in pairs)


def assert_line_shown(
    at: AppTest, t: int, k: int, cfg: lib.Config = CFG, data: lib.Dataset = DATA
) -> None:
    """Step t's line k (0-4) is highlighted, the table holds the loops' source, the values are
    row_values'."""
    assert shown_step(at) == t
    labels = [
        m.value
        for m in at.main.markdown
        if re.match(r"(:orange-background\[\*\*▶ |✓ |· )\d\. ", m.value)
    ]
    assert len(labels) == 5
    row = explain.ROWS[k]
    assert labels[k] == f":orange-background[**▶ {row.title}**]"
    assert all(label.startswith("✓") for label in labels[:k]) and all(
        label.startswith("·") for label in labels[k + 1 :]
    )
    stepper = lib.trace.Stepper(data, cfg)
    step = stepper.run_to(t)
    # The loops as this configuration runs them: their source less the branches it skips.
    sources = twin_sources(data, cfg)
    code = [c.value for c in at.main.code]
    # first the lines each batch runs before the reset: the for line (torch: and net.train())
    assert code[0] == per_batch_of(sources["manual_loop"])
    assert code[1] == per_batch_of(sources["torch_loop"])
    assert "net.train()" in code[1] and "net.train()" not in code[0]
    for j, r in enumerate(explain.ROWS):
        assert code[2 + 2 * j] == code_of(sources["manual_loop"], r.phase)
        assert code[3 + 2 * j] == code_of(sources["torch_loop"], r.phase)
    hand, twin = explain.row_values(step, row.key)
    assert code[12] == watch_text(hand) and code[13] == watch_text(twin)
    assert any(m.value == f"##### What {row.title} computed in step {t}" for m in at.main.markdown)


def test_next_line_walks_the_five_lines_of_each_step_with_their_values():
    at = page()
    click(at, "step_line")  # from the init: step 0 runs, and its first line is the one on screen
    assert_line_shown(at, 0, 0)
    assert "neg_grad before the reset = [0. 0. 0. 0.]" in at.main.code[12].value
    assert ".grad before zero_grad() = None" in at.main.code[13].value
    for k in range(1, 5):
        click(at, "step_line")
        assert_line_shown(at, 0, k)
    click(at, "step_line")  # after the update, the next step's reset
    assert_line_shown(at, 1, 0)
    click(at, "step_line_back")
    assert_line_shown(at, 0, 4)
    click(at, "step_next")  # a whole step: its last line, the update, is the one that just ran
    assert_line_shown(at, 1, 4)
    assert "the last of the step's five lines" in captions(at)


def test_previous_line_goes_back_to_the_init():
    at = page()
    click(at, "step_line")
    click(at, "step_line")
    click(at, "step_line_back")
    assert_line_shown(at, 0, 0)
    click(at, "step_line_back")
    assert "Not started" in at.info[0].value and at.button(key="step_line_back").disabled


def test_play_a_line_at_a_time_stops_after_the_last_steps_update():
    at = small_page(2)
    at.selectbox(key="step_unit").set_value("line").run()
    click(at, "step_play")
    assert_line_shown(at, 0, 0, CFG.replace(iterations=2))
    for t, k in [(0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]:
        assert playing(at)
        beat(at)
        assert_line_shown(at, t, k, CFG.replace(iterations=2))
    assert (
        not playing(at)
        and "Play stopped by itself at step 1, the run's last step" in at.info[0].value
    )


def test_the_mlp_shows_its_own_loop_and_without_zero_grad_says_nothing_is_reset():
    at = page()
    at.selectbox(key="model").set_value("mlp").run()
    at.checkbox(key="zero_grad").uncheck().run()
    for _ in range(6):
        click(at, "step_line")  # step 1's reset: the buffers hold step 0's gradient
    cfg = at.session_state["step_config"][1]  # the page's Config: the sidebar's mlp defaults
    assert cfg.model == "mlp" and not cfg.zero_grad
    assert_line_shown(at, 1, 0, cfg)
    assert lib.trace.Stepper(DATA, cfg).functions[0] is lib.manual_loop
    assert at.main.code[2].value == "# none: this configuration skips this line"
    assert "delta1 = np.outer(delta, W2)" in at.main.code[8].value  # the hand MLP's backward pass
    assert (
        "zero_grad is off, so neither loop has a reset line in this configuration (in the "
        "whole functions, `if zero_grad:` is false) and nothing is reset" in captions(at)
    )


def test_at_the_last_step_there_is_nothing_to_play_until_reset():
    at = page()
    at.number_input(key="step_target").set_value(499)
    click(at, "step_run_to")
    assert at.button(key="step_play").disabled
    click(at, "step_reset")
    assert not at.button(key="step_play").disabled
    click(at, "step_play")
    assert shown_step(at) == 0 and playing(at)


def test_the_steps_difference_is_shown_absolute_and_relative_as_every_page_names_them():
    at = click(page(), "step_start")
    diff = at.metric[2]
    assert diff.label == f"{explain.DIFF_NAME} in this step"
    stepper = lib.trace.Stepper(DATA, CFG)
    step = stepper.next()
    assert float(diff.value) == pytest.approx(step.max_diff, rel=0.05, abs=1e-300)
    weights = np.concatenate([step.manual.weights_after, step.torch.weights_after])
    assert diff.delta == f"{explain.RELATIVE_NAME}: {explain.relative(step.max_diff, weights):.2g}"


# ------------------------------------------------------------ the whole loop (issue 12)
# The sidebar has no controls for these settings yet: the tests hand the page its Config through
# sidebar_config, the one call the page gets its data and Config from.
WHOLE = lib.Config(
    lr=0.05, batch_size=16, iterations=40, accumulate=3, clip_grad_norm=0.5, scheduler="step",
    scheduler_kwargs={"step_size": 4}, val_fraction=0.25, eval_every=3,
)  # fmt: skip


def whole_page(monkeypatch, cfg: lib.Config, data: lib.Dataset = DATA) -> AppTest:
    import pages.parts.sidebar as sidebar

    monkeypatch.setattr(sidebar, "sidebar_config", lambda page, own=(): (data, cfg))
    return page()


def frame_with(at: AppTest, column: str):
    """The one table on the page that has this column (or this index name)."""
    frames = [
        d.value for d in at.dataframe if column in d.value.columns or d.value.index.name == column
    ]
    assert len(frames) == 1, [list(d.value.columns) for d in at.dataframe]
    return frames[0]


def run_to(at: AppTest, t: int) -> AppTest:
    at.number_input(key="step_target").set_value(t)
    return click(at, "step_run_to")


def test_an_accumulated_clipped_scheduled_validated_step_shows_lib_runs_numbers(monkeypatch):
    result = lib.run(DATA, WHOLE)
    at = run_to(whole_page(monkeypatch, WHOLE), 2)  # step 2 evaluates: (2 + 1) % 3 == 0
    t = shown_step(at)
    assert t == 2
    train = lib.engine.data.split_rows(DATA.m, WHOLE.val_fraction, WHOLE.seed)[0]
    order = lib.batch_indices(len(train), WHOLE.batch_size, WHOLE.seed)
    micro = [train[idx] for idx in itertools.islice(order, 9)][6:]  # batches 6, 7, 8: step 2's
    assert (
        "3 micro-batches, epoch 1, batches 7 to 9 of 10: 48 samples. The loops train on 150 of "
        "the 200 rows; 50 are held out for validation." in captions(at)
    )
    batch = frame_with(at, "sample (row)")  # the last micro-batch's rows, from the Dataset
    np.testing.assert_array_equal(batch["sample (row)"], micro[-1])
    np.testing.assert_array_equal(batch[["x1", "x2", "x3"]], DATA.X[micro[-1]])
    assert not np.isin(batch["sample (row)"], result.val_rows).any()
    shares = frame_with(at, "micro-batch")
    assert list(shares["samples"]) == [16, 16, 16]
    assert list(shares["rows"]) == [
        ", ".join(map(str, rows[:8])) + ", … (8 more)" for rows in micro
    ]
    for loop in ("manual", "torch"):
        total = shares[f"loss / accumulate ({loop})"].sum()
        assert total == pytest.approx(getattr(result, loop).loss[t], rel=1e-12)
    assert float(at.metric[0].value) == pytest.approx(result.manual.loss[t], rel=1e-5)
    assert any(
        s.value.startswith("✓ In both loops the 3 gradient shares add up") for s in at.success
    )
    extras = frame_with(at, "value")
    for loop, history in (("manual", result.manual), ("torch", result.torch)):
        assert extras.loc["norm = ‖gradient‖ before clipping", loop] == history.grad_norm[t]
        factor = min(1.0, 0.5 / (history.grad_norm[t] + 1e-6))
        assert extras.loc["clip factor = min(1, max_norm / (norm + 1e-6))", loop] == factor
        assert extras.loc["‖gradient‖ optimizer.step() used", loop] == pytest.approx(0.5)
        assert extras.loc["lr this step used", loop] == history.lr[t]
        assert extras.loc["val_loss after this step", loop] == history.val_loss[0]
    assert result.manual.clipped[t]
    weights = frame_with(at, "gradient (manual)")  # the gradient step() used: clipped to 0.5
    assert np.linalg.norm(weights["gradient (torch)"]) == pytest.approx(0.5)
    assert (
        "Gradient, torch: each parameter's .grad after the last micro-batch's loss.backward(): "
        "the sum of the 3 shares. Both are the gradient the optimizer used, after "
        "clip_grad_norm_ scaled it by this step's clip factor (below)." in captions(at)
    )
    assert any("clipped: yes in both loops" in s.value for s in at.success)
    assert any(s.value.startswith("✓ `clip_grad_norm_` measures") for s in at.success)
    assert (
        "After this step's update both loops computed the loss on the 50 held-out rows (every 3 "
        "steps)" in captions(at)
    )
    assert not at.error


def test_a_step_that_does_not_evaluate_says_when_the_next_one_does(monkeypatch):
    result = lib.run(DATA, WHOLE)
    at = run_to(whole_page(monkeypatch, WHOLE), 6)
    assert (
        "This step did not evaluate the 50 held-out rows: the loops do after steps 2, 5, … "
        "(every 3 steps); the next is step 8." in captions(at)
    )
    extras = frame_with(at, "value")
    assert "val_loss after this step" not in extras.index
    assert extras.loc["lr this step used", "torch"] == result.torch.lr[6] == 0.05 * 0.1
    click(at, "step_next")
    click(at, "step_next")
    extras = frame_with(at, "value")
    assert extras.loc["val_loss after this step", "manual"] == result.manual.val_loss[2]
    at = run_to(at, 39)
    assert "no later step of this run does" in captions(at)


def test_the_update_row_shows_the_lines_the_configuration_runs_and_their_values(monkeypatch):
    at = click(whole_page(monkeypatch, WHOLE), "step_start")
    code = [c.value for c in at.main.code]
    update_hand, update_torch = code[10], code[11]
    assert "clip_grad_norm_(neg_grad, clip_grad_norm)" in update_hand
    assert "nn.utils.clip_grad_norm_(net.parameters(), clip_grad_norm)" in update_torch
    assert "scheduler.step()" in update_hand and "scheduler.step()" in update_torch
    assert "torch.no_grad()" in update_torch and "net.eval()" in update_torch
    step = lib.trace.Stepper(DATA, WHOLE).next()
    assert f"norm (before clipping) = {explain.show(step.manual.norm)}" in code[12]
    assert f"step_lr (the lr this step used) = {explain.show(step.torch.lr)}" in code[13]
    assert "With accumulate = 3, the forward pass, the loss and the backward pass ran once" in (
        captions(at)
    )
    # without these settings, none of their lines, tables or sentences
    at = click(whole_page(monkeypatch, CFG), "step_start")
    code = [c.value for c in at.main.code]
    for text in ("clip_grad_norm_", "scheduler.step()", "no_grad", "val_loss", "accumulate"):
        assert not any(text in c for c in code[:12]), text
    assert not any(m.value.startswith("#### The update's other lines") for m in at.markdown)
    assert not any(m.value.startswith("#### The step's") for m in at.markdown)
    assert "micro-batch" not in captions(at)


def test_a_hand_clip_that_does_not_scale_is_caught_on_the_page(monkeypatch):
    # The claim is false when clip_grad_norm_ measures the norm but leaves the gradient as it is.
    import lib.twins.manual as manual

    monkeypatch.setattr(
        manual, "clip_grad_norm_", lambda neg_grad, max_norm: np.linalg.norm(neg_grad)
    )
    at = click(whole_page(monkeypatch, WHOLE), "step_start")
    errors = [e.value for e in at.error]
    assert any("✗" in e and "is not clip factor × norm long" in e for e in errors), errors
    assert any(e.startswith("✗ The shares do not add up") for e in errors), errors


def test_micro_batches_that_are_not_the_steps_are_caught_on_the_page(monkeypatch):
    real = lib.engine.trace.batch_indices
    monkeypatch.setattr(
        lib.engine.trace, "batch_indices", lambda m, b, seed, d: real(m, b, seed + 1, d)
    )
    at = click(whole_page(monkeypatch, WHOLE), "step_start")
    assert any(
        e.value.startswith("✗ The last micro-batch run again is not the batch") for e in at.error
    )
    assert not at.success or not any(s.value.startswith("✓ In both loops") for s in at.success)


def test_accumulate_at_its_largest_spans_epochs_and_adds_up(monkeypatch):
    cfg = lib.Config(
        lr=0.01, batch_size=1, iterations=2, accumulate=lib.engine.config.MAX_ACCUMULATE
    )
    result = lib.run(DATA, cfg)
    at = click(whole_page(monkeypatch, cfg), "step_start")
    assert (
        "1024 micro-batches, epoch 1 batch 1 to epoch 6 batch 24 (200 batches an epoch): 1,024 "
        "samples." in captions(at)
    )
    shares = frame_with(at, "micro-batch")
    assert len(shares) == 1024 and (shares["samples"] == 1).all()
    assert shares["loss / accumulate (torch)"].sum() == pytest.approx(result.torch.loss[0])
    assert any(s.value.startswith("✓ In both loops the 1024 gradient shares") for s in at.success)


def test_a_validation_split_near_one_trains_on_the_few_rows_left(monkeypatch):
    cfg = lib.Config(lr=0.05, batch_size=32, iterations=5, val_fraction=0.99, eval_every=1)
    result = lib.run(DATA, cfg)
    at = click(whole_page(monkeypatch, cfg), "step_start")
    assert (
        "Epoch 1, batch 1 of 1: 2 samples. The loops train on 2 of the 200 rows; 198 are held "
        "out for validation." in captions(at)
    )
    rows = frame_with(at, "sample (row)")["sample (row)"].to_numpy()
    np.testing.assert_array_equal(rows, np.setdiff1d(np.arange(DATA.m), result.val_rows))
    extras = frame_with(at, "value")
    assert list(extras.index) == ["val_loss after this step"]
    assert extras.loc["val_loss after this step", "torch"] == result.torch.val_loss[0]
    assert "the 198 held-out rows" in captions(at)


def test_settings_that_leave_no_training_rows_are_refused_in_words(monkeypatch):
    cfg = lib.Config(lr=0.05, batch_size=32, iterations=5, val_fraction=0.999)
    at = whole_page(monkeypatch, cfg)
    assert not at.exception
    assert at.error[0].value.startswith("Cannot step through these settings: val_fraction 0.999")


def test_a_capped_run_keeps_the_whole_runs_schedule_and_eval_interval(monkeypatch):
    cfg = lib.Config(
        lr=0.05, batch_size=16, iterations=20_000, scheduler="cosine", val_fraction=0.1
    )
    at = run_to(whole_page(monkeypatch, cfg), 1)
    capped = at.session_state["step_config"][1]
    assert capped.iterations == MAX_ITERATIONS
    assert capped.eval_interval == cfg.eval_interval == 100
    assert capped.scheduler_kwargs["T_max"] == 20_000
    # step 1's lr is the one of a 20,000-step cosine, not of a 10,000-step one
    whole = cfg.replace(iterations=3, eval_every=100, scheduler_kwargs=dict(cfg.scheduler_kwargs))
    lr = lib.run(DATA, whole).manual.lr[1]
    assert lr != lib.run(DATA, cfg.replace(iterations=MAX_ITERATIONS)).manual.lr[1]
    assert frame_with(at, "value").loc["lr this step used", "manual"] == lr


def test_without_zero_grad_the_shares_add_up_with_what_the_reset_left(monkeypatch):
    cfg = lib.Config(
        lr=0.01, batch_size=8, iterations=5, accumulate=2, zero_grad=False, clip_grad_norm=0.2
    )
    at = run_to(whole_page(monkeypatch, cfg), 3)
    ok = [s.value for s in at.success if s.value.startswith("✓ In both loops")]
    assert ok and "what the skipped reset left in the buffer (the previous step's gradient" in ok[0]
    assert (
        "this step's gradient is added to what the previous step left there (its clipped "
        "gradient), and clip_grad_norm_ scales that sum" in captions(at)
    )
    assert "no reset (zero_grad is off)" in captions(at)


def test_a_large_accumulate_caps_the_steps_by_their_micro_batches(monkeypatch):
    cfg = lib.Config(lr=0.01, batch_size=4, iterations=50, accumulate=1024)
    at = whole_page(monkeypatch, cfg)
    assert (
        "This page steps through the first 9 of the 50 iterations (9,216 micro-batches: each "
        "step runs 1,024)." in captions(at)
    )
    assert at.number_input(key="step_target").max == 8
    assert at.session_state["step_config"][1].iterations == 9


def test_every_steps_lr_under_onecycle_is_lib_runs_in_both_loops(monkeypatch):
    cfg = lib.Config(lr=0.1, batch_size=16, iterations=6, scheduler="onecycle")
    result = lib.run(DATA, cfg)
    assert len(set(result.torch.lr)) == 6  # the lr moves every step
    at = whole_page(monkeypatch, cfg)
    for t in range(6):
        click(at, "step_next" if t else "step_start")
        extras = frame_with(at, "value")
        assert list(extras.index) == ["lr this step used"]
        assert extras.loc["lr this step used", "manual"] == result.manual.lr[t]
        assert extras.loc["lr this step used", "torch"] == result.torch.lr[t]
        assert (
            f"This step used lr = {result.manual.lr[t]:.6g} in the hand loop (its optimizer's "
            f"`lr`) and {result.torch.lr[t]:.6g} in torch" in captions(at)
        )
    assert "learning rate 0.1 under OneCycleLR (this step's lr is below)." in captions(at)


def test_a_float32_torch_loop_adds_up_at_float32s_tolerance_and_says_so(monkeypatch):
    cfg = WHOLE.replace(torch_dtype="float32")
    at = click(whole_page(monkeypatch, cfg), "step_start")
    ok = [s.value for s in at.success]
    assert any(s.startswith("✓ In both loops the 3 gradient shares") for s in ok), ok
    twin = lib.engine.trace.sum_tolerance("float32", 3)  # 16 float32 roundings per share
    assert f"{twin:.0e}" == "6e-06"
    assert all("allowed: 1e-10 manual, 6e-06 torch in float32)" in s for s in ok), ok


def test_a_diverged_accumulated_clipped_step_says_its_sums_cannot_be_checked(monkeypatch):
    cfg = lib.Config(lr=1e30, batch_size=16, iterations=50, accumulate=2, clip_grad_norm=1e300)
    result = lib.run(DATA, cfg)
    assert result.stopped == "diverged"
    at = run_to(whole_page(monkeypatch, cfg), 49)
    assert shown_step(at) == result.diverged_at
    errors = [e.value for e in at.error]
    assert "The shares cannot be added up: a number of this step is not finite." in errors
    assert not any(s.value.startswith("✓ In both loops") for s in at.success)
