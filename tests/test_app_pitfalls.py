"""AppTest of the Pitfalls lab page: it runs, and each switch reproduces its pitfall with the
numbers lib gives."""

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import lib
from lib import pitfalls

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "pitfalls.py")
TOGGLES = {  # in the order the page draws them
    "zero_grad": "pitfall_zero_grad",
    "accumulate": "pitfall_accumulate",
    "running_loss": "pitfall_running_loss",
    "mixed": "pitfall_mixed",
    "limit": "pitfall_limit",
    "float32": "pitfall_float32",
    "no_grad": "pitfall_no_grad",
}


def page(iterations: int = 60) -> AppTest:
    """The page, run once with a short run so each test stays fast."""
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    # iterations (the learning rate is the last input)
    at.sidebar.number_input[-2].set_value(iterations)
    return at.run()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def text(at: AppTest) -> str:
    return "\n".join(str(md.value) for md in at.markdown)


@pytest.fixture(scope="module")
def default() -> AppTest:
    return page()


def test_page_runs_with_every_switch_off(default):
    assert not default.exception
    assert [t.key for t in default.toggle] == list(TOGGLES.values())
    assert not any(t.value for t in default.toggle)
    assert not default.metric  # nothing is run until a switch asks for it
    assert default.sidebar.number_input[-2].label == "iterations"


def test_stability_limit_is_shown_beside_the_learning_rate(default):
    assert default.sidebar.number_input[-1].label == "learning rate"
    shown = next(md.value for md in default.sidebar.markdown if "Stability limit" in md.value)
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    limit = pitfalls.stability_limit(data, lib.Config(batch_size=32, loss="mse"))
    assert f"{limit:.4g}" in shown


def switched(name: str) -> AppTest:
    """The page after turning on one pitfall's switch."""
    at = page()
    at.toggle(key=TOGGLES[name]).set_value(True)
    at = at.run()
    assert not at.exception
    return at


def test_forgotten_zero_grad_switch_shows_agreeing_loops_and_a_larger_gradient():
    at = switched("zero_grad")
    shown = metrics(at)
    assert float(shown["largest |manual − torch| over the run"]) <= 1e-10
    grad = next(m for m in at.metric if m.label == "gradient norm, last step")
    correct = float(re.search(r"correct run: (\S+)", grad.delta).group(1))
    assert float(grad.value) > 10 * correct
    assert len(at.tabs[0].get("vega_lite_chart")) >= 2


def test_running_loss_switch_shows_the_real_error_and_the_code_that_ran():
    at = switched("running_loss")
    # st.code drops the final newline; everything else is the source of the function that ran.
    assert any(
        c.value == inspect.getsource(pitfalls.running_loss_loop).rstrip("\n") for c in at.code
    )
    [error] = at.error
    assert error.value.startswith(
        "RuntimeError: Trying to backward through the graph a second time"
    )
    nodes = int(re.search(r"holds \*\*([\d,]+) autograd nodes", text(at)).group(1).replace(",", ""))
    assert nodes > 100  # 100 steps, several nodes each
    assert "retain_graph=True" in text(at)


def labels(dot: str) -> list[str]:
    """The node names of a DOT drawing from lib.autograd_graph (the first line of each label)."""
    return re.findall(r'label="([^"\\]*)', dot)


def test_running_loss_tab_draws_the_graph_growing_one_step_at_a_time():
    """Issue 13: the running_loss tab draws the graph running_loss holds after steps 1, 2 and 3:
    one more AddBackward0 and one more loss graph each step, over the same AccumulateGrad leaves,
    as the caption says."""
    at = switched("running_loss")
    graphs = [labels(g.proto.spec) for g in at.tabs[1].get("graphviz_chart")]
    assert len(graphs) == 3
    adds = [g.count("AddBackward0") for g in graphs]
    losses = [g.count("MseLossBackward0") for g in graphs]
    leaves = [g.count("AccumulateGrad") for g in graphs]
    assert adds == losses == [1, 2, 3], graphs
    assert leaves[0] == leaves[1] == leaves[2] >= 1


def test_mixed_conventions_switch_shows_predicted_equal_to_measured():
    at = switched("mixed")
    shown = metrics(at)
    predicted = lib.effective_lr_ratio("half_mse", "mse", 32)
    assert float(shown["predicted step factor, hand / torch"]) == pytest.approx(predicted)
    assert float(shown["measured from the first update"]) == pytest.approx(predicted)
    assert float(shown["largest |manual − torch| over the run"]) > 1e-3


def test_mixed_conventions_sse_against_mse_is_the_batch_size():
    at = page()
    at.selectbox(key="pitfall_hand_loss").set_value("sse")
    at.toggle(key=TOGGLES["mixed"]).set_value(True)
    at = at.run()
    assert not at.exception
    assert float(metrics(at)["measured from the first update"]) == pytest.approx(32)


def test_crossing_the_stability_limit_grows_the_loss_and_staying_below_shrinks_it():
    at = switched("limit")
    sentence = next(md.value for md in at.markdown if md.value.startswith("Mistaken run"))
    above_start, above_end = map(
        float, re.search(r"went from (\S+) to (\S+) in", sentence).groups()
    )
    below_start, below_end = map(
        float, re.search(r"correct run: from (\S+) to (\S+) in", sentence).groups()
    )
    assert above_end > 1e3 * above_start
    assert below_end < below_start


def test_float32_switch_shows_a_drift_float64_does_not_have():
    at = switched("float32")
    shown = metrics(at)
    assert 1e-10 < float(shown["largest |manual − torch| over the run, torch in float32"]) < 1e-3
    assert float(shown["largest |manual − torch| over the run, both float64"]) < 1e-12
    # Beside each absolute difference, the relative one, named as on every page.
    deltas = {m.label: m.delta for m in at.metric}
    relative = deltas["largest |manual − torch| over the run, torch in float32"]
    assert relative.startswith(f"{lib.explain.RELATIVE_NAME}: ")
    absolute = float(shown["largest |manual − torch| over the run, torch in float32"])
    assert 0 < float(relative.rsplit(": ", 1)[1]) <= 1.05 * absolute  # both rounded for display


def test_every_switch_on_at_once_runs_and_off_again_clears():
    at = page()
    for key in TOGGLES.values():
        at.toggle(key=key).set_value(True)
    at = at.run()
    assert not at.exception
    assert len(at.metric) >= 10
    for key in TOGGLES.values():
        at.toggle(key=key).set_value(False)
    at = at.run()
    assert not at.exception
    assert not at.metric


def linked(**query) -> AppTest:
    """The page opened from a link with these query parameters."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params.update(query)
    at = at.run()
    assert not at.exception, at.exception
    return at


def test_a_teachers_link_opens_a_tab_with_its_switch_on_and_the_same_settings():
    at = linked(
        pitfall="4 · lr above the limit",
        pitfall_limit="true",
        pitfall_factor="1.5",
        pitfall_iterations="80",
    )
    assert at.session_state["pitfall"] == "4 · lr above the limit"
    assert at.toggle(key="pitfall_limit").value is True
    assert at.slider(key="pitfall_factor").value == 1.5
    assert at.number_input(key="pitfall_iterations").value == 80
    assert "learning rate of the mistake" in str(at.slider(key="pitfall_factor").label)
    shown = metrics(at)
    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    limit = pitfalls.stability_limit(data, lib.Config(batch_size=200, loss="mse"))
    assert shown["mistake: learning rate, 1.5× the limit"] == f"{1.5 * limit:.4g}"
    assert not at.warning or all("stability limit" in w.value for w in at.warning)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"pitfall_iterations": "inf"}, "iterations must be a whole number from 1 to 5,000"),
        ({"pitfall_lr": "-3"}, "pitfall_lr must be a number from 1e-06 to 1000"),
        ({"pitfall_loss": "huber"}, "pitfall_loss must be one of mse, half_mse, sse"),
        ({"pitfall_zero_grad": "maybe"}, "pitfall_zero_grad must be true or false"),
        (
            {"pitfall_factor": "9", "pitfall_limit": "true"},
            "pitfall_factor must be a number from 1.01 to 2",
        ),
        (
            {"pitfall_steps": "inf", "pitfall_running_loss": "true"},
            "pitfall_steps must be a number from 10 to 500",
        ),
        (
            {"pitfall_steps": "abc", "pitfall_running_loss": "true"},
            "pitfall_steps must be a number from 10 to 500",
        ),
        (
            {"pitfall": "7 · a tab that is not there"},
            "pitfall must be the name of one of the six tabs",
        ),
        ({"pitfall_colour": "red"}, "is not a setting that applies here"),
    ],
)
def test_a_bad_link_value_is_named_in_words_and_the_default_used(query, words):
    at = linked(**query)
    assert any(words in w.value for w in at.warning), [w.value for w in at.warning]


def test_link_parameters_of_other_pages_are_left_alone():
    at = linked(lr="0.2", optimizer="adam")
    assert not at.warning


# Issue 9: each sentence of the lab exact for the configuration on screen, measured where it has a
# number.

DEFAULT_DATA = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)


def set_and_run(at: AppTest, **values) -> AppTest:
    """Set widgets by key (toggles, sliders, inputs, selects), run, and assert the page raised
    nothing."""
    for key, value in values.items():
        widget = find(at, key)
        if widget is None:  # drawn only once a switch set before it is on: run, then set it
            at = at.run()
            widget = find(at, key)
        widget.set_value(value)
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


WIDGET_KINDS = ("toggle", "checkbox", "slider", "number_input", "selectbox")


def find(at: AppTest, key: str):
    return next((w for kind in WIDGET_KINDS for w in getattr(at, kind) if w.key == key), None)


def markdown_with(at: AppTest, words: str) -> str:
    return next(md.value for md in at.markdown if words in md.value)


def test_running_loss_error_is_placed_at_the_last_steps_node():
    at = set_and_run(page(), pitfall_running_loss=True, pitfall_steps=30)
    sentence = markdown_with(at, "torch's own error")
    assert "step 30's `MseLossBackward0`** (the last step's)" in sentence
    assert "step 1's" not in sentence
    failed = pitfalls.second_backward(
        DEFAULT_DATA, lib.Config(batch_size=32, iterations=60), steps=30
    )
    assert failed.failed_step == 30


def test_retain_graph_sentence_says_what_was_measured_for_the_linear_model_and_a_hidden_layer():
    at = switched("running_loss")
    assert "On this lab's model, `nn.Linear`, it silences the error" in text(at)
    hidden = markdown_with(at, "With a hidden layer")
    assert "does **not** silence" in hidden and "modified by an inplace operation" in hidden
    stale = markdown_with(at, "over 5 steps")
    assert " equals the sum of the 5 step gradients (largest difference " in stale
    assert " against " not in stale
    assert float(re.search(r"largest difference (\S+)\)", stale).group(1)) < 1e-12


@pytest.mark.parametrize("factor", [1.01, 1.6, 2.0])
def test_every_factor_of_the_slider_runs_and_prints_the_measured_error_factors(factor):
    at = set_and_run(page(), pitfall_limit=True, pitfall_factor=factor)
    limit = pitfalls.stability_limit(DEFAULT_DATA, lib.Config(batch_size=200))
    shown = metrics(at)
    assert float(
        shown[f"correct: learning rate, the limit ÷ {factor:g} ({1 / factor:.3g}×)"]
    ) == pytest.approx(limit / factor, rel=1e-3)
    sentence = markdown_with(at, "Mistaken run")
    above, below = map(
        float,
        re.search(r"\|1 − lr·λ_max\|: (\S+) at .* ([\d.e+-]+) at the limit ÷", sentence).groups(),
    )
    cfg = lib.Config(batch_size=200)
    assert above == pytest.approx(
        pitfalls.top_error_factor(DEFAULT_DATA, cfg, factor * limit), rel=1e-2
    )
    assert below == pytest.approx(
        pitfalls.top_error_factor(DEFAULT_DATA, cfg, limit / factor), abs=1e-3
    )
    assert above > 1 > below >= 0


def test_sse_minibatch_shows_the_hessian_it_uses():
    at = set_and_run(page(), pitfall_loss="sse", pitfall_full_batch=False)
    limit = pitfalls.stability_limit(DEFAULT_DATA, lib.Config(loss="sse", batch_size=32))
    sentence = markdown_with(at, "**The limit.**")
    assert r"H = $2\cdot\tfrac{b}{m} A^\top A$" in sentence
    assert "b = 32, m = 200" in sentence and f"${2 * 32 / 200:.4g}" in sentence
    assert f"**2/λ_max = {limit:.4g}**" in sentence
    assert limit == pytest.approx(0.0283, abs=1e-4)


def test_full_batch_shows_the_full_batch_hessian():
    at = set_and_run(page(), pitfall_loss="sse")
    sentence = markdown_with(at, "**The limit.**")
    assert r"Hessian H = $2\,A^\top A$" in sentence
    limit = pitfalls.stability_limit(DEFAULT_DATA, lib.Config(loss="sse", batch_size=200))
    assert f"**2/λ_max = {limit:.4g}**" in sentence


def test_standardising_sentence_gives_both_limits_from_the_data():
    at = switched("limit")
    sentence = markdown_with(at, "standardising these features")
    cfg = lib.Config(batch_size=200)
    before = pitfalls.stability_limit(DEFAULT_DATA, cfg)
    after = pitfalls.stability_limit(pitfalls.standardised(DEFAULT_DATA), cfg)
    word = "raises" if after > before else "lowers"
    assert f"{word} it from {before:.4g} to {after:.4g}" in sentence
    assert "lowers λ_max and raises the limit" not in sentence


@pytest.mark.parametrize(
    ("loss", "words"),
    [("mse", "divide each micro-batch's loss by k"), ("sse", "nothing to divide")],
)
def test_gradient_accumulation_steps_every_k_micro_batches(loss, words):
    at = set_and_run(page(), pitfall_zero_grad=True, pitfall_loss=loss)
    sentence = markdown_with(at, "gradient accumulation")
    assert "call `step()` and then `zero_grad()` once every k micro-batches" in sentence
    assert words in sentence


def test_float_texts_say_what_was_measured():
    at = switched("float32")
    assert "default dtype of `torch.tensor` on floats" not in text(at)
    assert "`torch.tensor` of a float64 numpy array keeps its dtype (`float64`)" in text(at)
    sentence = markdown_with(at, "compared in float64")
    assert "proves the code is the same" not in sentence
    assert (
        "differ by at most "
        f"{float(metrics(at)['largest |manual − torch| over the run, both float64']):.1e} on "
        "this run" in sentence
    )


# Every control at both ends of its range, with every switch on: the page shows no exception.

ENDS = {
    "pitfall_m": (2, 5_000),
    "pitfall_n": (1, 20),
    "pitfall_noise": (0.0, 100.0),
    "pitfall_seed": (0, 2**32 - 1),
    "pitfall_batch_size": (1, 5_000),
    "pitfall_iterations": (1, 5_000),
    "pitfall_lr": (1e-6, 1e3),
    "pitfall_steps": (10, 500),
    "pitfall_factor": (1.01, 2.0),
    "pitfall_full_batch": (False, True),
    "pitfall_loss": ("mse", "half_mse", "sse"),
    "pitfall_hand_loss": ("mse", "sse"),
    "pitfall_torch_loss": ("half_mse", "sse"),
    "pitfall_accumulate_k": (1, 16),
    "pitfall_micro_batch": (1, 5_000),
    "pitfall_val_fraction": (0.05, 0.5),
}


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, ends in ENDS.items() for v in ends])
def test_every_control_at_both_ends_with_every_switch_on(key, value):
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    settings = {
        "pitfall_iterations": 20,
        **{toggle: True for toggle in TOGGLES.values()},
        key: value,
    }
    at = set_and_run(at, **settings)
    assert len(at.metric) >= 10  # every tab drew its numbers
    # the one error is tab 2's, on purpose
    assert at.error[0].value.startswith("RuntimeError: Trying to backward")


def test_forgotten_zero_grad_sentence_gives_the_measured_medians():
    at = switched("zero_grad")
    cfg = lib.Config(batch_size=32, iterations=60)
    wrong, right = lib.run(DEFAULT_DATA, cfg.replace(zero_grad=False)), lib.run(DEFAULT_DATA, cfg)
    sentence = markdown_with(at, "**What it does.**")
    wrong_median, right_median = (
        np.median(r.manual.grad_norm[r.steps // 2 :]) for r in (wrong, right)
    )
    assert (
        f"is **{wrong_median:.3g}** without the reset against **{right_median:.3g}** with it"
        in sentence
    )
    # the old text claimed it without measuring it
    assert "swing around the minimum" not in sentence


# Issue 12: accumulate=k x batch b beside batch k·b (tab 1), validation without no_grad (tab 6).

HELD, FAILED = ":green[**✓**]", ":red[**✗**]"


def accumulated(**values) -> AppTest:
    """The page with the accumulation switch on, after setting these widgets."""
    return set_and_run(page(), pitfall_accumulate=True, **values)


def lib_gap(k: int, b: int, data=DEFAULT_DATA, **cfg) -> pitfalls.AccumulationGap:
    cfg = lib.Config(**{"lr": 0.01, "iterations": 60, **cfg})
    acc = lib.run(data, cfg.replace(accumulate=k, batch_size=b))
    return pitfalls.accumulation_gap(acc, lib.run(data, cfg.replace(batch_size=k * b)), data.m)


def test_accumulation_is_off_until_switched_on(default):
    assert find(default, "pitfall_accumulate_k") is None
    assert not any("trains as batch" in md.value for md in default.markdown)


def test_accumulation_on_the_same_rows_is_called_equal_with_libs_numbers():
    at = accumulated()
    gap = lib_gap(4, 10)
    assert gap.max_weight_diff <= 1e-10
    shown = metrics(at)
    assert shown["largest |w difference|, accumulate=4 × batch 10 against batch 40"] == (
        f"{gap.max_weight_diff:.1e}"
    )
    sentence = markdown_with(at, "trains as batch 40")
    assert sentence.startswith(HELD)
    assert "m = 200 is a multiple of k·b = 40" in sentence
    assert "the same permutation for the same seed and m" in sentence
    assert f"differ by at most **{gap.max_weight_diff:.1e}** (≤ 1e-10)" in sentence
    assert len(at.tabs[0].get("vega_lite_chart")) >= 1


def test_accumulation_on_other_rows_says_where_and_by_how_much():
    at = accumulated(pitfall_micro_batch=32)
    gap = lib_gap(4, 32)
    sentence = markdown_with(at, "do not cover the same rows")
    assert "m = 200 is not a multiple of k·b = 128" in sentence
    assert f"step {gap.shares_apart} is the first" in sentence
    assert f"differ from step {gap.first_apart} on, by up to **{gap.max_weight_diff:.3g}**" in (
        sentence
    )
    assert not any("trains as batch" in md.value for md in at.markdown)  # no claim of equal


def test_accumulation_with_sse_is_the_bigger_batch_at_lr_over_k():
    at = accumulated(pitfall_loss="sse", pitfall_lr=0.001)
    assert "every row weighs 0.25× in the accumulated loss" in text(at)
    sentence = markdown_with(at, "at lr × 0.25 = 0.00025")
    assert sentence.startswith(HELD)
    assert not any(
        md.value.startswith(HELD + " **accumulate=4 with batch 10 trains") for md in at.markdown
    )


def test_a_diverged_accumulation_is_not_called_equal():
    at = accumulated(pitfall_lr=1000.0)
    sentence = markdown_with(at, "yet the weights differ by up to")
    assert sentence.startswith(FAILED)
    assert "Relative to the weights' size" in sentence


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"pitfall_accumulate_k": 1, "pitfall_micro_batch": 7}, "k = 1: no accumulation"),
        ({"pitfall_accumulate_k": 16, "pitfall_micro_batch": 5_000}, "b = 5,000 ≥ m = 200"),
        ({"pitfall_accumulate_k": 16, "pitfall_micro_batch": 1}, "not a multiple of k·b = 16"),
        ({"pitfall_m": 2, "pitfall_micro_batch": 1}, "k·b = 4 ≥ m = 2"),
        ({"pitfall_iterations": 1, "pitfall_micro_batch": 32}, "this run ends before that"),
    ],
)
def test_accumulation_at_extreme_controls_says_what_it_measured(values, words):
    at = accumulated(**values)
    assert words in text(at)


def no_grad_tab(**values) -> AppTest:
    return set_and_run(page(), pitfall_no_grad=True, **values)


def test_validation_tab_shows_the_code_that_runs_and_the_measured_graph():
    at = no_grad_tab()
    assert any(c.value == inspect.getsource(pitfalls.validation_pass).rstrip("\n") for c in at.code)
    cfg = lib.Config(batch_size=32, iterations=60, val_fraction=0.2)
    leaky = pitfalls.validation_graph(DEFAULT_DATA, cfg, no_grad=False)
    shown = metrics(at)
    assert shown["autograd nodes, without no_grad"] == "5" == str(leaky.nodes)
    assert shown["bytes the graph holds, without no_grad"] == f"{leaky.held_bytes:,}"
    built = markdown_with(at, "Without `torch.no_grad()`, the validation loss")
    assert built.startswith(HELD) and "on the 40 held-out rows" in built
    assert f"the graph holds **{leaky.held_bytes:,} bytes**" in built
    assert markdown_with(at, "builds **no graph**").startswith(HELD)
    assert markdown_with(at, "same number either way").startswith(HELD)
    nodes, kept = pitfalls.kept_history(DEFAULT_DATA, cfg, 10)
    assert f"hold {nodes} nodes and {kept:,} bytes" in text(at)


def test_validation_tab_uses_the_held_out_share_on_screen():
    at = no_grad_tab(pitfall_val_fraction=0.5)
    assert "on the 100 held-out rows" in markdown_with(at, "Without `torch.no_grad()`")


def without_no_grad(net, criterion, inputs, labels, no_grad=True):
    """A validation pass that ignores no_grad: the mistake, whatever the caller asks."""
    net.eval()
    return criterion(net(inputs), labels)


def test_the_no_graph_claim_fails_on_the_page_when_no_grad_is_removed(monkeypatch):
    monkeypatch.setattr(pitfalls, "validation_pass", without_no_grad)
    at = no_grad_tab(pitfall_seed=9_001)  # a seed of its own: no cached measurement
    sentence = markdown_with(at, "with `torch.no_grad()` the pass still left")
    assert sentence.startswith(FAILED) and "5 nodes" in sentence
    assert not any("builds **no graph**" in md.value for md in at.markdown)


def test_train_and_eval_claims_are_measured_per_model():
    at = no_grad_tab()
    for model in ("this lab's model", "lib's MLP"):
        sentence = markdown_with(at, f"**{model}**")
        assert sentence.startswith(HELD) and "are no-ops" in sentence
    dropout = markdown_with(at, "**the MLP with nn.Dropout**")
    assert dropout.startswith(HELD) and "changes its outputs, by up to" in dropout
    norm = markdown_with(at, "**the MLP with nn.BatchNorm1d**")
    assert "changed its running statistics" in norm


def test_the_dropout_claim_fails_on_the_page_with_a_rate_of_zero(monkeypatch):
    monkeypatch.setattr(pitfalls, "DROPOUT_P", 0.0)
    at = no_grad_tab(pitfall_seed=9_002)
    sentence = markdown_with(at, "the MLP with nn.Dropout gave the same outputs")
    assert sentence.startswith(FAILED)


def test_batch_norm_on_one_held_out_row_is_left_out_in_words():
    at = no_grad_tab(pitfall_m=2, pitfall_val_fraction=0.05)
    assert "on the 1 held-out row has" in text(at)
    assert any("Left out here: the MLP with nn.BatchNorm1d" in c.value for c in at.caption)


def test_a_link_opens_the_validation_tab_with_its_switch_on():
    at = linked(
        pitfall="6 · validation without no_grad()",
        pitfall_no_grad="true",
        pitfall_val_fraction="0.3",
        pitfall_iterations="20",
    )
    assert at.session_state["pitfall"] == "6 · validation without no_grad()"
    assert at.toggle(key="pitfall_no_grad").value is True
    assert "on the 60 held-out rows" in markdown_with(at, "Without `torch.no_grad()`")


def test_the_accumulation_lines_shown_are_the_torch_loops_own():
    at = accumulated()
    shown = next(c.value for c in at.tabs[0].code if "optimizer.step()" in c.value)
    assert shown.startswith("# Reset the gradient")
    assert "loss / accumulate" in shown
    source = inspect.getsource(lib.torch_loop)
    assert all(line.strip() in source for line in shown.splitlines())


def test_sse_on_a_run_too_short_to_reach_the_epochs_end_says_so():
    at = accumulated(
        pitfall_loss="sse", pitfall_lr=0.001, pitfall_iterations=1, pitfall_micro_batch=32
    )
    sentence = markdown_with(at, "but sse is a sum")
    assert sentence.startswith("Over this run's 1 step the steps see the same rows")
    assert "this run ends before that" in sentence
