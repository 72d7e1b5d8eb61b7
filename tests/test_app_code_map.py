"""AppTest of the Code map page: the code shown is the source of the loops that ran, the values
are lib.run's."""

import inspect
import re
import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import lib
from lib import explain
from lib.io.export import twin_sources

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "code_map.py")
DATA = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)  # the shared sidebar's defaults
CFG = lib.Config(lr=0.05, batch_size=32, iterations=500, loss="mse")


@pytest.fixture(scope="module")
def at():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def is_slice_of_source(block: str, source: str) -> bool:
    """True when block is a run of consecutive source lines, dedented."""
    lines, wanted = source.splitlines(), block.splitlines()
    return any(
        textwrap.dedent("\n".join(lines[i : i + len(wanted)])) == block
        for i in range(len(lines) - len(wanted) + 1)
    )


def codes(at: AppTest, cfg: lib.Config = CFG) -> dict[str, str]:
    """The page's code blocks by role, in page order: the setup expander; per row the left column
    (hand code, its values, and under the update the hand optimizer's step) then the right one
    (under the update, the torch optimizer's construction); then the rows of the rest of the loop
    that cfg runs (the hand code and what it calls, its values; the same for torch); then the
    whole functions."""
    blocks = [c.value for c in at.code]
    # With an optimizer that keeps state (momentum, moments), the update row also shows it in both
    # columns.
    with_state = any(b.startswith("optimizer.") for b in blocks)
    names = ["setup hand", "setup torch"]
    for row in explain.ROWS:
        update = row.key == "update"
        names += [f"{row.key} hand", f"{row.key} hand values"] + (["hand step"] if update else [])
        names += ["hand state"] if update and with_state else []
        names += [f"{row.key} torch", f"{row.key} torch values"] + (
            ["torch optimizer"] if update else []
        )
        names += ["torch state"] if update and with_state else []
    for row in explain.loop_rows_for(cfg):
        hand, twin = explain.loop_row_code(row, cfg)
        for side, shown in (("hand", hand), ("torch", twin)):
            names += [f"{row.key} {side} {k}" for k in range(len(shown))]
            names += [f"{row.key} {side} values"] if row.key != "modes" else []
    names += ["whole hand", "whole torch"]
    assert len(blocks) == len(names)
    return dict(zip(names, blocks, strict=True))


def assert_code_is_source(at: AppTest, cfg: lib.Config, hand_step) -> None:
    """The whole functions are their source; each phase shown is a slice of the loops as this
    configuration runs them (lib.io.export.twin_sources: the source less the branches not taken)."""
    blocks = codes(at, cfg)
    manual, torch = inspect.getsource(lib.manual_loop), inspect.getsource(lib.torch_loop)
    # st.code drops the last newline
    assert blocks["whole hand"] == manual.rstrip("\n")
    assert blocks["whole torch"] == torch.rstrip("\n")
    sources = twin_sources(DATA, cfg)
    specialised = sources["manual_loop"], sources["torch_loop"]
    assert is_slice_of_source(blocks["setup hand"], specialised[0])
    assert is_slice_of_source(blocks["setup torch"], specialised[1])
    for row in explain.ROWS:
        hand, twin = blocks[f"{row.key} hand"], blocks[f"{row.key} torch"]
        assert hand.startswith(row.phase) and twin.startswith(row.phase)
        assert is_slice_of_source(hand, specialised[0]), row.key
        assert is_slice_of_source(twin, specialised[1]), row.key
        assert row.torch in twin
        heading = next(m.value for m in at.markdown if m.value.startswith(f"### {row.title}:"))
        # the hand line named in the row's heading is in the hand code shown
        shown = heading.split("`")[1]
        assert shown in hand, (row.key, shown)
        if cfg.model == "linear" and cfg.loss == "mse":
            assert shown == row.manual
    assert blocks["hand step"] == inspect.getsource(hand_step).rstrip("\n")


def test_the_code_shown_is_the_source_of_the_loops(at):
    assert_code_is_source(at, CFG, lib.optim.SGD.step)
    assert codes(at)["torch optimizer"] == "optimizer = torch.optim.SGD(net.parameters(), lr=0.05)"


@pytest.mark.parametrize(
    ("name", "hand_class"),
    [
        ("adam", lib.optim.Adam),
        ("rmsprop", lib.optim.RMSprop),
        ("adamw", lib.optim.AdamW),
        ("adagrad", lib.optim.Adagrad),
    ],
)
def test_the_chosen_optimizers_hand_written_step_is_shown(name, hand_class):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.selectbox(key="optimizer").set_value(name).run()
    assert not at.exception
    assert_code_is_source(at, CFG.replace(optimizer=name), hand_class.step)
    assert (
        f"torch.optim.{lib.optim.TORCH_NAMES[name]}(net.parameters()"
        in codes(at)["torch optimizer"]
    )
    assert "does not hold here" not in "\n".join(m.value for m in at.markdown)


def test_the_optimizer_settings_are_in_the_torch_call_and_the_values_are_lib_runs():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.number_input(key="sgd_momentum").set_value(0.9).run()
    at.checkbox(key="sgd_nesterov").check().run()
    at.number_input(key="map_step").set_value(5).run()
    assert not at.exception
    assert codes(at)["torch optimizer"].endswith("lr=0.05, momentum=0.9, nesterov=True)")
    result = lib.run(
        DATA, CFG.replace(iterations=6, optimizer_kwargs={"momentum": 0.9, "nesterov": True})
    )
    assert (
        f"weights after = {explain.show(result.manual.weights[6])}"
        in codes(at)["update hand values"]
    )
    assert (
        f"weights after = {explain.show(result.torch.weights[6])}"
        in codes(at)["update torch values"]
    )
    # The velocity after step 5, in both loops: lib.optim.SGD.velocity and torch's momentum_buffer.
    stepper = lib.trace.Stepper(
        DATA, CFG.replace(iterations=6, optimizer_kwargs={"momentum": 0.9, "nesterov": True})
    )
    hand_velocity = stepper.run_to(5).optimizer_state[0][2]
    assert codes(at)["hand state"] == f"optimizer.velocity = {explain.show(hand_velocity)}"
    assert codes(at)["torch state"].startswith("optimizer.state[·]['momentum_buffer'] = [")


def test_the_mlp_shows_its_own_hand_loop():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.selectbox(key="model").set_value("mlp").run()
    assert not at.exception
    assert_code_is_source(at, CFG.replace(model="mlp"), lib.optim.SGD.step)
    assert "dW1 += delta1.T @ inputs" in codes(at)["backward hand"]
    assert "does not hold here" not in "\n".join(m.value for m in at.markdown)
    result = lib.run(DATA, CFG.replace(model="mlp", iterations=2))
    assert (
        f"weights after = {explain.show(result.manual.weights[2])}"
        in codes(at)["update hand values"]
    )


def test_every_claim_is_shown_checked(at):
    text = "\n".join(m.value for m in at.markdown)
    for claim in explain.CLAIMS:
        if claim.about(CFG) and claim.applies(CFG):
            assert f":green[**✓**] {claim.sentence(CFG)}" in text, claim.key
        # another optimizer's claim (momentum, Adam, RMSprop, Adagrad): not on plain SGD's page
        else:
            assert claim.sentence(CFG) not in text, claim.key
    assert "does not hold here" not in text
    for row in explain.ROWS:
        assert explain.row_text(row, CFG) in text


def values_of(at: AppTest, row: str) -> tuple[str, str]:
    blocks = codes(at)
    return blocks[f"{row} hand values"], blocks[f"{row} torch values"]


@pytest.mark.parametrize("t", [0, 7])
def test_live_values_are_those_of_lib_run(at, t):
    at.number_input(key="map_step").set_value(t).run()
    assert not at.exception
    result = lib.run(DATA, CFG.replace(iterations=t + 1))
    hand, twin = values_of(at, "update")
    for loop, block in (("manual", hand), ("torch", twin)):
        weights = getattr(result, loop).weights
        assert f"weights before = {explain.show(weights[t])}" in block
        assert f"weights after = {explain.show(weights[t + 1])}" in block
    hand, twin = values_of(at, "loss")
    assert f"loss = {explain.show(result.manual.loss[t])}" in hand
    assert f"loss = {explain.show(result.torch.loss[t])}" in twin
    assert "loss.grad_fn = MseLossBackward0" in twin
    hand, twin = values_of(at, "reset")
    assert (
        ".grad before zero_grad() = None" in twin if t == 0 else "None" not in twin.splitlines()[0]
    )
    assert ".grad after = None" in twin


def test_effective_learning_rate_predicted_beside_measured(at):
    at.selectbox(key="map_other").set_value("sse").run()
    assert not at.exception
    line = next(m.value for m in at.markdown if m.value.startswith("First step at batch size"))
    ratio = lib.effective_lr_ratio("mse", "sse", 32)
    assert (
        f"the gradients differ by `lib.effective_lr_ratio` = **{explain.show(ratio, 6)}**" in line
    )
    assert f"first-step formula: **{explain.show(ratio, 6)}**" in line
    assert (
        f"measured from one real step of both loops: **{explain.show(ratio, 6)}** :green[**✓**]"
        in line
    )


def test_sum_convention_changes_the_measured_numbers():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.selectbox(key="loss").set_value("sse").run()
    assert not at.exception
    text = "\n".join(m.value for m in [*at.markdown, *at.caption])
    assert "grad sum / grad mean: `32`" in text  # the batch size
    assert "does not hold here" not in text


@pytest.mark.parametrize(
    ("optimizer", "kwargs", "key"),
    [
        ("sgd", {"momentum": 0.9}, "first_step_momentum"),
        ("adam", {}, "first_step_adam"),
        ("rmsprop", {}, "first_step_rmsprop"),
        ("adagrad", {}, "first_step_adagrad"),
    ],
)
def test_the_chosen_optimizers_first_step_is_explained_and_checked(optimizer, kwargs, key):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update(
        {"optimizer": optimizer, **{f"{optimizer}_{k}": str(v) for k, v in kwargs.items()}}
    )
    at.run()
    assert not at.exception
    text = "\n".join(m.value for m in at.markdown)
    claim = next(c for c in explain.CLAIMS if c.key == key)
    cfg = CFG.replace(optimizer=optimizer, optimizer_kwargs=kwargs)
    assert f":green[**✓**] {claim.sentence(cfg)}" in text
    others = [c for c in explain.CLAIMS if c.key.startswith("first_step") and c.key != key]
    assert not any(c.sentence(cfg) in text for c in others)


def test_measured_lines_name_the_step_on_screen(at):
    """The checks run on the step picked, and their captions say so (they said "step 0" for every
    step)."""
    at.number_input(key="map_step").set_value(7).run()
    assert not at.exception
    captions = [c.value for c in at.caption if c.value.startswith("Measured (")]
    assert any("step 7 of this run" in c for c in captions)
    assert not any("step 0 of this run" in c for c in captions)
    first = [c for c in captions if "the first step of this run" in c]
    # first-step sentences are about step 0, and say "first step"
    assert all("step 7" not in c for c in first)


@pytest.mark.parametrize(
    ("params", "absent", "present"),
    [
        (
            {"model": "mlp", "init": "normal"},
            ["column of ones"],
            ["chain rule", "Linear → Tanh → Linear"],
        ),
        ({"bias": "false"}, ["a last column of ones"], ["no bias here"]),
        (
            {"optimizer": "adam"},
            ["With plain SGD the hand loop moves"],
            ["hardly the step", "lib.optim.Adam"],
        ),
    ],
)
def test_the_page_text_follows_the_configuration(params, absent, present):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update(params)
    at.run()
    assert not at.exception
    text = "\n".join(m.value for m in [*at.markdown, *at.caption])
    assert "does not hold here" not in text
    for phrase in absent:
        assert phrase not in text, phrase
    for phrase in present:
        assert phrase in text, phrase


def test_full_batch_rmsprop_says_where_the_loops_part():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params.update({"optimizer": "rmsprop", "batch_size": "200", "iterations": "2000"})
    at.run()
    assert not at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert "agree to float64 rounding at every step" not in text
    result = lib.run(DATA, CFG.replace(optimizer="rmsprop", batch_size=200, iterations=2000))
    parts = explain.agreement(result)["parts_at"]
    assert parts is not None and f"from step {parts:,}" in text


def test_a_finite_blow_up_is_named_with_a_link_to_the_pitfall():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"lr": "1", "iterations": "400"})
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    result = lib.run(DATA, CFG.replace(lr=1.0, iterations=400))
    assert explain.growth_warning(DATA, result) in warnings
    assert any("Diverging: the loss grew ×10^" in w for w in warnings)
    link = next(m.value for m in at.markdown if "Pitfalls lab, tab 4" in m.value)
    assert "/pitfalls?pitfall=4+%C2%B7+lr+above+the+limit" in link
    # the tab the link opens
    assert '"4 · lr above the limit"' in (ROOT / "pages" / "pitfalls.py").read_text()


def step_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Step "))


def test_the_chosen_step_is_in_the_link():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["map_step"] = "7"
    at.run()
    assert not at.exception
    assert step_caption(at).startswith("Step 7:")
    assert not [w for w in at.warning if "map_step" in w.value]
    at.number_input(key="map_step").set_value(12).run()
    assert step_caption(at).startswith("Step 12:")
    assert float(at.query_params["map_step"]) == 12


@pytest.mark.parametrize("value", ["99999", "inf", "abc", "-3"])
def test_a_bad_step_in_the_link_is_named_and_a_step_shown(value):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["map_step"] = value
    at.run()
    assert not at.exception
    assert step_caption(at).startswith("Step 1:")
    assert any(f"map_step=`{value}`" in w.value and "from 0 to 499" in w.value for w in at.warning)


def test_adams_step_counter_is_explained_beside_the_step_number():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"optimizer": "adam", "map_step": "1"})
    at.run()
    assert not at.exception
    caption = next(
        c.value for c in at.caption if c.value.startswith("The optimizer's state after step 1")
    )
    assert (
        "count the steps taken, from 1: after step 1 (this page counts from 0) they hold 2."
        in caption
    )
    assert "optimizer.t = 2" in "\n".join(c.value for c in at.code)


def test_a_classifier_shows_logits_not_predictions():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"data": "blobs", "iterations": "30"})
    at.run()
    assert not at.exception
    blocks = "\n".join(c.value for c in at.code)
    assert "outputs (the logits) = " in blocks and "outputs (the predictions)" not in blocks
    assert "4. Backward pass" in "\n".join(m.value for m in at.markdown)


# ---------------------------------------------------------------- the rest of the loop

WHOLE = CFG.replace(
    iterations=40,
    accumulate=3,
    clip_grad_norm=0.5,
    scheduler="step",
    scheduler_kwargs={"step_size": 3},
    val_fraction=0.2,
    eval_every=2,
)


def whole_page(monkeypatch, cfg: lib.Config, step: int = 1) -> AppTest:
    """The page on cfg, as if the sidebar had built it (it has no controls for every field)."""
    import pages.parts.sidebar as sidebar

    monkeypatch.setattr(sidebar, "sidebar_config", lambda page, own=(): (DATA, cfg))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["map_step"] = str(step)
    at.run()
    assert not at.exception
    return at


def is_selection_of(block: str, source: str) -> bool:
    """Every line of block but the `...` gaps is a line of source, in source's order."""
    lines, at = [line.strip() for line in source.splitlines()], 0
    for line in block.splitlines():
        if line.strip() != "...":
            if line.strip() not in lines[at:]:
                return False
            at = lines.index(line.strip(), at) + 1
    return True


def assert_rest_of_the_loop(at: AppTest, cfg: lib.Config, t: int) -> str:
    """Each row cfg runs is on the page with its code (lines of the loops as cfg runs them, then
    the functions they call, whole), its values (the Stepper's), its text and every claim held."""
    blocks = codes(at, cfg)
    sources = twin_sources(DATA, cfg)
    texts = sources["manual_loop"], sources["torch_loop"]
    markdown = "\n".join(m.value for m in at.markdown)
    step = lib.trace.Stepper(DATA, cfg).run_to(t)
    for row in explain.LOOP_ROWS:
        heading = f"### {row.title}: `{row.manual}` ↔ `{row.torch}`"
        assert (heading in markdown) == row.shown(cfg), row.key
        if not row.shown(cfg):
            continue
        hand, twin = explain.loop_row_code(row, cfg, *texts)
        for side, expected, text in (("hand", hand, texts[0]), ("torch", twin, texts[1])):
            for k, (_, code) in enumerate(expected):
                assert blocks[f"{row.key} {side} {k}"] == code, (row.key, side, k)
            first = expected[0][1]
            assert first == explain.NO_TWIN or is_selection_of(first, text), (row.key, side)
        hand_values, twin_values = explain.loop_row_values(step, row.key)
        if row.key != "modes":
            assert blocks[f"{row.key} hand values"] == values(hand_values)
            assert blocks[f"{row.key} torch values"] == values(twin_values)
        assert explain.loop_row_text(row, cfg, DATA) in markdown
        for claim in explain.claims_for(row.key, cfg):
            assert f":green[**✓**] {claim.sentence(cfg)}" in markdown, claim.key
    assert "does not hold here" not in markdown
    return markdown


def values(pairs) -> str:
    return "\n".join(f"{name} = {explain.show(value)}" for name, value in pairs)


def test_the_loader_and_the_modes_are_shown_and_the_rest_is_named_as_absent(at):
    assert_rest_of_the_loop(at, CFG, round(at.number_input(key="map_step").value))
    absent = next(c.value for c in at.caption if c.value.startswith("Not in this configuration"))
    for row in explain.LOOP_ROWS[2:]:
        assert row.title.lower() in absent
    # torch_loader's source
    assert "DataLoader(dataset, sampler=order, batch_size=None)" in codes(at)["loader torch 1"]
    assert codes(at)["modes hand 0"] == explain.NO_TWIN


def test_every_line_of_the_whole_loop_is_shown_beside_its_twin_and_checked(monkeypatch):
    at = whole_page(monkeypatch, WHOLE, 3)
    markdown = assert_rest_of_the_loop(at, WHOLE, 3)
    assert not [c for c in at.caption if c.value.startswith("Not in this configuration")]
    assert "3 micro-batches of 32, 32, 32 samples" in "\n".join(c.value for c in at.caption)
    assert "with torch.no_grad():" in codes(at, WHOLE)["validation torch 0"]
    assert "def clip_grad_norm_(" in codes(at, WHOLE)["clip hand 1"]
    assert "class StepLR(Schedule):" in codes(at, WHOLE)["schedule hand 1"]
    assert "`lr_t = 0.05 · 0.1^⌊t / 3⌋`" in markdown
    # the step-size comparison of two conventions is left out with clipping, and says why
    assert "map_other" not in [box.key for box in at.selectbox]
    assert any("clipping scales both steps" in c.value for c in at.caption)


def test_a_false_sentence_of_the_rest_of_the_loop_shows_as_not_holding(monkeypatch):
    from lib.engine import lockstep

    real = lockstep.torch_loader

    def own_order(inputs, labels, batch_size, seed, dtype, drop_last=False):
        return real(inputs, labels, batch_size, seed + 1, dtype, drop_last)

    monkeypatch.setattr(lockstep, "torch_loader", own_order)
    cfg = CFG.replace(seed=11)  # a run no other test has cached
    at = whole_page(monkeypatch, cfg, 2)
    markdown = "\n".join(m.value for m in at.markdown)
    sentence = explain.loader_text(cfg)
    assert f":red[**✗**] **does not hold here:** {sentence}" in markdown


def test_a_long_run_is_followed_for_its_first_steps_with_its_own_schedule_and_interval(
    monkeypatch,
):
    long = CFG.replace(iterations=20_000, scheduler="cosine", val_fraction=0.2)
    at = whole_page(monkeypatch, long, 150)
    markdown = "\n".join(m.value for m in at.markdown)
    assert "This page follows the first 10,000 of the 20,000 iterations." in [
        c.value for c in at.caption
    ]
    # T_max and the validation interval are the whole run's, not the first steps'
    assert "CosineAnnealingLR(optimizer, T_max=20000)" in markdown
    assert "Every 100 optimizer steps (100 passes in this run of 10,000)" in markdown
    assert "does not hold here" not in markdown


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_the_backward_row_draws_the_graph_backward_walks_for_the_step_on_show(model):
    """Issue 13: the backward row's drawing is the autograd graph of the step shown, from the loss
    to one AccumulateGrad leaf per parameter tensor, each named; the MLP's chain shows both
    layers."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["iterations"] = "20"
    at.run()
    if model == "mlp":
        at.selectbox(key="model").set_value("mlp").run()
    at.number_input(key="map_step").set_value(3).run()
    assert not at.exception
    [chart] = at.get("graphviz_chart")
    dot = chart.proto.spec
    assert dot.startswith("digraph") and "loss ->" in dot
    leaves = re.findall(r"AccumulateGrad", dot)
    tensors = 4 if model == "mlp" else 2  # weight and bias of each Linear
    assert len(leaves) == tensors, dot
    if model == "mlp":
        assert "TanhBackward0" in dot and dot.count("AddmmBackward0") == 2, dot
    # the graph of this step, as lib builds it (not some fixed picture)
    cfg = at.session_state["map_config"][1]
    assert cfg.model == model
    assert dot == lib.lessons.autograd_graph.step_graph(DATA, cfg, 3)
    assert dot != lib.lessons.autograd_graph.step_graph(DATA, cfg.replace(bias=False), 3)
