"""lib.speed: the step timings' structure, units and consistency (never how fast), and the
sentence's numbers."""

import ast
import inspect
import math
import re
from types import MappingProxyType

import numpy as np
import pytest
import torch

import lib
from lib import explain, speed
from lib.engine.frames import function_of
from lib.engine.lockstep import loops
from lib.lessons.speed import PHASES, StepCosts, speed_sentence, step_costs, step_times
from lib.twins.manual import manual_loop
from lib.twins.torch_side import torch_loop

DATA = lib.datasets.linear(m=64, n=3, noise=0.1, seed=0)
CFG = lib.Config(lr=0.01, batch_size=8, iterations=100)


@pytest.fixture(scope="module")
def costs() -> StepCosts:
    return step_costs(DATA, CFG, repeats=5)


def test_step_costs_structure_and_units(costs):
    assert (costs.batch, costs.features, costs.n_params) == (8, 3, 4)
    assert costs.threads == torch.get_num_threads()
    assert 1 <= costs.repeats <= 5
    for phases in (costs.manual_phases, costs.torch_phases):
        assert tuple(phases) == PHASES
        assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in phases.values())
    assert costs.manual_us > 0 and costs.torch_us > 0
    assert set(costs.one_row_us) == {"manual", "torch"} and min(costs.one_row_us.values()) > 0
    assert set(costs.call_us) == {"torch", "numpy"} and min(costs.call_us.values()) > 0
    assert costs.ratio == costs.torch_us / costs.manual_us
    assert isinstance(costs.manual_phases, MappingProxyType)
    with pytest.raises(AttributeError):
        costs.torch_us = 1.0  # frozen


def test_microseconds_agree_with_lib_run_seconds(costs):
    # Units, not speed: lib.run's own wall time per step is the same order of magnitude as
    # step_costs' microseconds (a factor of 1000 either way would be ns or ms); lib.run's includes
    # recording and the noise.
    result = lib.run(DATA, CFG.replace(iterations=200))
    per_step_us = 1e6 * (result.manual.seconds + result.torch.seconds) / result.steps
    assert 0.05 < per_step_us / (costs.manual_us + costs.torch_us) < 50


def test_phases_add_up_to_about_the_whole_step(costs):
    # The phases are timed one by one, so their sum only roughly matches the whole step: a generous
    # factor.
    for phases, whole in (
        (costs.manual_phases, costs.manual_us),
        (costs.torch_phases, costs.torch_us),
    ):
        assert 0.2 < sum(phases.values()) / whole < 5


def test_the_counted_operations_are_where_the_loop_does_tensor_work(costs):
    ops = costs.torch_ops
    assert tuple(ops) == PHASES and all(isinstance(k, int) and k >= 0 for k in ops.values())
    assert ops["forward"] >= 1 and ops["loss"] >= 1 and ops["backward"] >= 1 and ops["step"] >= 1
    assert costs.ops_per_step == sum(ops.values())


@pytest.mark.parametrize(
    ("func", "mlp"),
    [(manual_loop, False), (manual_loop, True), (torch_loop, False), (torch_loop, True)],
)
def test_each_timed_phase_is_the_loops_own_source(func, mlp):
    # What is exec'd per phase is sliced from the loop function itself, so it cannot drift from the
    # loop. One manual_loop runs every model: the mlp's phases are its source too.
    data = lib.datasets.moons(m=40, seed=0) if mlp else DATA
    cfg = lib.Config(model="mlp", loss="bce", batch_size=8, hidden=4) if mlp else CFG
    manual, twin, _ = loops(data, cfg)
    gen = twin if func is torch_loop else manual
    next(gen)
    assert function_of(gen) is func
    texts = speed.phase_texts(gen)
    source = explain.phase_source(func)
    assert tuple(texts) == PHASES
    assert texts["batch"] == "next(batches)"
    for name, marker in zip(PHASES[1:6], explain.PHASES, strict=True):
        assert texts[name] == source[marker] and texts[name].startswith(marker)
    yielded = [
        line.strip()[len("yield ") :]
        for line in inspect.getsource(func).splitlines()
        if line.strip().startswith("yield ")
    ]
    assert [ast.dump(ast.parse(text, mode="eval")) for text in yielded] == [
        ast.dump(ast.parse(texts["record"], mode="eval"))
    ]
    if func is torch_loop:
        for name in ("zero_grad", "forward", "loss", "backward", "step"):
            assert speed.TORCH_LINES[name] in texts[name]
    assert [name for name, _ in speed._phase_code(gen)] == list(PHASES)


@pytest.mark.parametrize(
    "cfg",
    [
        lib.Config(optimizer="adam", batch_size=8),
        lib.Config(zero_grad=False, batch_size=64),  # full batch: no indexing, no reset
        lib.Config(model="mlp", hidden=4, batch_size=1),
    ],
    ids=["adam", "full batch, no zero_grad", "mlp, batch 1"],
)
def test_other_configurations_measure_and_read(cfg):
    c = step_costs(DATA, cfg, repeats=3)
    assert c.manual_us > 0 and c.torch_us > 0 and c.batch == min(cfg.batch_size, DATA.m)
    assert speed.us(c.torch_us) in speed_sentence(c)


def test_step_times_are_positive_and_counted():
    manual_us, torch_us, tried = step_times(DATA, CFG, repeats=4)
    assert manual_us > 0 and torch_us > 0 and 1 <= tried <= 4


def make(**changes) -> StepCosts:
    """A StepCosts with round numbers, to read the sentence against."""
    values = dict(
        batch=32,
        features=3,
        n_params=4,
        threads=1,
        repeats=30,
        manual_us=9.5,
        torch_us=123.0,
        one_row_us=MappingProxyType({"manual": 8.0, "torch": 117.0}),
        manual_phases=MappingProxyType(
            dict(zip(PHASES, (1.7, 1.1, 0.9, 1.8, 1.8, 1.2, 0.3), strict=True))
        ),
        torch_phases=MappingProxyType(
            dict(zip(PHASES, (9.8, 11.4, 9.8, 15.6, 39.1, 26.4, 4.7), strict=True))
        ),
        torch_ops=MappingProxyType(dict(zip(PHASES, (3, 0, 2, 1, 10, 2, 3), strict=True))),
        call_us=MappingProxyType({"torch": 0.84, "numpy": 0.26}),
    )
    return StepCosts(**{**values, **changes})


def test_the_sentence_says_the_measured_numbers():
    text = speed_sentence(make())
    assert text.startswith("Torch took 13× numpy's time per step here (123 µs against 9.50 µs;")
    assert "batches of 32 rows, 4 weights, 1 thread, fastest of 30 steps each" in text
    assert (
        "nearly all of it is a fixed cost" in text
        and "one-row batches its step took 117 µs (95% as long)" in text
    )
    assert "Its 21 tensor operations would cost about 17.6 µs" in text  # 21 x 0.84
    assert "a 1-element torch.add (0.84 µs; np.add 0.26 µs)" in text
    assert (
        "backward() took 39.1 µs for 10 tensor operations, "
        "against 1.80 µs for the hand-written gradient" in text
    )
    assert "optimizer.zero_grad() took 11.4 µs with no tensor operation at all" in text


def test_every_number_in_the_sentence_of_a_real_measurement_is_one_of_its_numbers(costs):
    text = speed_sentence(costs)
    shown = set(re.findall(r"[\d,]+(?:\.\d+)? [µm]s", text))
    measured = [
        costs.manual_us,
        costs.torch_us,
        *costs.one_row_us.values(),
        *costs.call_us.values(),
    ]
    measured += [*costs.manual_phases.values(), *costs.torch_phases.values()]
    if costs.torch_ops is not None:
        measured.append(costs.ops_per_step * costs.call_us["torch"])
    assert shown and shown <= {speed.us(m) for m in measured}


def test_the_sentence_follows_what_was_measured():
    grows = speed_sentence(
        make(
            torch_us=600.0,
            manual_us=160.0,
            one_row_us=MappingProxyType({"manual": 8, "torch": 110}),
        )
    )
    assert (
        "3.8× numpy's time" in grows
        and "most of it grows with the batch" in grows
        and "18% as long" in grows
    )
    assert "fixed cost" not in grows and "machinery" not in grows
    assert "the largest gap: backward() took 39.1 µs" in grows
    faster = speed_sentence(make(torch_us=50.0, manual_us=100.0))
    assert faster.startswith("Here torch's step took 50.0 µs against numpy's 100 µs (2.0× faster;")
    uncounted = speed_sentence(make(torch_ops=None))
    assert "tensor operations" not in uncounted and "0.84 µs" in uncounted
    one_row = speed_sentence(
        make(batch=1, one_row_us=MappingProxyType({"manual": 9.5, "torch": 123.0}))
    )
    assert "one-row batches" not in one_row and "batches of 1 rows" in one_row


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: step_costs("data", CFG), "lib.Dataset"),
        (lambda: step_costs(DATA, {"lr": 0.1}), "lib.Config"),
        (lambda: step_costs(DATA, CFG, repeats=0), "repeats must be a whole number from 1"),
        (lambda: step_costs(DATA, CFG, repeats=True), "repeats must be a whole number"),
        (lambda: step_costs(DATA, CFG, repeats=2.5), "repeats must be a whole number"),
        (lambda: step_costs(DATA, CFG, budget=0), "budget must be a number of seconds > 0"),
        (lambda: step_costs(DATA, CFG, budget=float("nan")), "budget must be"),
        (lambda: step_times(DATA, CFG, budget="1"), "budget must be"),
        (lambda: speed_sentence(None), "what lib.speed.step_costs returns"),
        (lambda: speed_sentence({"torch_us": 1}), "StepCosts"),
    ],
)
def test_bad_input_is_a_value_error_in_words(call, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        call()


def test_bce_on_real_valued_targets_is_refused_in_words():
    with pytest.raises(ValueError, match="0 or 1"):
        step_costs(DATA, lib.Config(model="logistic"))


def test_formatting_helpers():
    assert (
        speed.us(53_143) == "53.1 ms"
        and speed.us(1234.4) == "1,234 µs"
        and speed.us(12.34) == "12.3 µs"
        and speed.us(1.234) == "1.23 µs"
    )
    assert speed.times(13.6) == "14×" and speed.times(3.84) == "3.8×"
    assert np.isclose(make().ratio, 123 / 9.5)
