"""The line-order lab (lib.lessons.line_order): both loops rebuilt from their own source in another
order, agreeing with each other; orders that cannot run refused in words (and truly unable to run);
each verdict true where its misordering is, and false where it is not."""

import ast
import inspect
import itertools
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lib
from lib.engine.frames import arguments_of
from lib.engine.lockstep import loops
from lib.lessons import line_order as lo
from lib.twins import manual, torch_side

DATA = lib.datasets.linear(m=60, n=2, noise=0.1, seed=0)
# every line does something: a clip that acts, a schedule that changes the lr each step, validation
WHOLE = dict(
    lr=0.05,
    batch_size=8,
    iterations=12,
    clip_grad_norm=0.5,
    scheduler="step",
    scheduler_kwargs={"step_size": 1, "gamma": 0.8},
    val_fraction=0.2,
    eval_every=1,
)
CFG = lib.Config(**WHOLE)


def moved(*pairs: tuple[str, int]) -> list[str]:
    """ORDER with each named line moved to the given position."""
    order = list(lo.ORDER)
    for name, position in pairs:
        order.remove(name)
        order.insert(position, name)
    return order


NO_UPDATE = moved(("zero_grad", 3))  # forward, loss, backward, zero_grad, clip, step, ...
LAG = moved(("step", 0))  # step, zero_grad, forward, loss, backward, clip, ...
CLIP_NONE = moved(("clip", 3))  # zero_grad, forward, loss, clip, backward, step, ...
CLIP_STALE = ["forward", "loss", "clip", "step", "zero_grad", "backward", "scheduler", "validation"]
SCHEDULER_FIRST = moved(("scheduler", 5))  # ..., clip, scheduler, step, validation
# step() between the forward pass and backward(), finding the previous step's gradient
STEP_INSIDE = [
    "forward",
    "loss",
    "step",
    "zero_grad",
    "backward",
    "clip",
    "scheduler",
    "validation",
]


def test_the_order_as_written_rebuilds_each_loop_exactly():
    for func in (torch_side.torch_loop, manual.manual_loop):
        original = ast.unparse(lo.parse(textwrap.dedent(inspect.getsource(func))))
        assert ast.unparse(lo.rebuilt_tree(func, lo.ORDER)) == original
    moved_source = lo.rebuilt_source(torch_side.torch_loop, LAG)
    body = moved_source[moved_source.index("for i, (inputs, labels)") :]
    assert body.index("optimizer.step()") < body.index("optimizer.zero_grad()")
    assert body.index("optimizer.zero_grad()") < body.index("loss.backward()")


def test_line_source_is_the_file_text():
    source = inspect.getsource(torch_side.torch_loop)
    for name in lo.ORDER:
        for row in lo.line_source("torch", name).splitlines():
            assert row.strip() in source
    assert "torch.no_grad()" in lo.line_source("torch", "validation")
    assert "torch.no_grad()" not in lo.line_source("torch", lo.WITH_GRAD)
    compile(lo.line_source("torch", lo.WITH_GRAD), "<block>", "exec")  # its indentation is whole


def test_order_as_written_is_lib_run_bit_for_bit():
    expected = lib.run(DATA, CFG)
    got = lo.run_order(DATA, CFG, lo.ORDER).result
    for loop in ("manual", "torch"):
        e, g = getattr(expected, loop), getattr(got, loop)
        for field in ("loss", "weights", "grad_norm", "lr", "val_loss"):
            assert np.array_equal(getattr(e, field), getattr(g, field)), (loop, field)
    assert lib.ORDER == lo.ORDER
    assert np.array_equal(lo.run(DATA, CFG, order=LAG).torch.weights,
                          lo.run_order(DATA, CFG, LAG).result.torch.weights)  # fmt: skip


@pytest.mark.parametrize(
    ("order", "cfg", "words"),
    [
        (moved(("forward", 2)), CFG, "forward pass comes after it"),
        (moved(("backward", 1)), CFG, "backward() starts from `loss`"),
        (["forward", "loss"], CFG, "missing"),
        ([*lo.ORDER[:-1], "validation", "validation"], CFG, "repeated"),
        ("forward", CFG, "list of line names"),
        (LAG, lib.Config(accumulate=2, iterations=4), "accumulate=1"),
        (STEP_INSIDE, lib.Config(model="mlp", hidden=3, iterations=4), None),
        (LAG, lib.Config(optimizer="adam", iterations=4), "no gradient"),
    ],
)
def test_orders_that_cannot_run_are_refused_in_words(order, cfg, words):
    error = "cannot run on the mlp" if words is None else words
    with pytest.raises(ValueError, match=__import__("re").escape(error)):
        lo.check_order(order, cfg)
    with pytest.raises(ValueError):
        lo.run(DATA, cfg, order=order)


def _bypassing_check(cfg: lib.Config, order: list[str]) -> lo._Ordered:
    """The reordered lockstep built without check_order: what the refusal keeps from running."""
    lockstep = lo._Ordered(DATA, cfg, 0.25, tuple(order))
    lo.drive(lockstep, cfg, None, 0.25, None)
    return lockstep


def test_the_refusals_are_true():
    # the mlp: torch itself refuses step() between the forward pass and backward()
    mlp = lib.Config(model="mlp", hidden=3, iterations=4)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _bypassing_check(mlp, STEP_INSIDE)
    # ...and the same order runs on a linear model, in agreement, and on the mlp where step()
    # finds no gradient there (torch's SGD then leaves W2 alone)
    linear = lib.Config(iterations=4)
    assert lo.run_order(DATA, linear, STEP_INSIDE).result.max_abs_diff < 1e-10
    assert lo.run_order(DATA, mlp, moved(("step", 3))).result.max_abs_diff < 1e-10
    # the forward pass after the loss: there is nothing to score at the first step
    with pytest.raises(UnboundLocalError):  # the hand loop reads h, torch outputs
        _bypassing_check(lib.Config(iterations=2), moved(("forward", 2)))
    # a step with no gradient: torch's Adam skips it, the hand one counts it; the loops part
    adam = lib.Config(optimizer="adam", iterations=6, lr=0.05)
    assert _bypassing_check(adam, LAG).result().max_abs_diff > 1e-6
    # plain SGD treats both alike, so there the order runs
    assert lo.run_order(DATA, lib.Config(iterations=6), LAG).result.max_abs_diff < 1e-10


@settings(max_examples=60)
@given(
    order=st.permutations(list(lo.ORDER)),
    model=st.sampled_from(["linear", "mlp"]),
    optimizer=st.sampled_from(["sgd", "adam"]),
    no_grad=st.booleans(),
)
def test_every_runnable_order_keeps_the_loops_in_agreement(order, model, optimizer, no_grad):
    # forward, loss and backward in their relative order (any other is refused, tested above), the
    # other lines anywhere
    places = sorted(order.index(name) for name in ("forward", "loss", "backward"))
    for place, name in zip(places, ("forward", "loss", "backward"), strict=True):
        order[place] = name
    if not no_grad:
        order[order.index("validation")] = lo.WITH_GRAD
    cfg = lib.Config(**{**WHOLE, "iterations": 4}, model=model, hidden=3, optimizer=optimizer)
    try:
        lo.check_order(order, cfg)
    except ValueError:
        return  # refused in words (test_orders_that_cannot_run_are_refused_in_words)
    result = lo.run(DATA, cfg, order=order)
    assert result.done and result.steps == 4
    assert result.max_abs_diff < 1e-10
    assert np.allclose(result.manual.lr, result.torch.lr, rtol=0, atol=0)


def _hand_gradient(weights: np.ndarray, inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """d/dw of mean((inputs @ w - labels)^2), written out here (the test's own)."""
    return 2 / len(labels) * inputs.T @ (inputs @ weights - labels)


def _hand_batches(cfg: lib.Config, steps: int) -> list:
    gen = loops(DATA, cfg)[0]
    batches = list(itertools.islice(arguments_of(gen)["batches"], steps))
    gen.close()
    return batches


def test_no_update_verdict():
    plain = lib.Config(lr=0.05, batch_size=8, iterations=10)
    wrong, right = lo.lab(DATA, plain, NO_UPDATE), lo.lab(DATA, plain, lo.ORDER)
    for loop in ("manual", "torch"):
        weights = getattr(wrong.chosen.result, loop).weights
        assert np.array_equal(weights, np.repeat(weights[:1], len(weights), axis=0))
    assert (
        wrong.verdict("no_update").holds
        and "found no gradient" in wrong.verdict("no_update").measured
    )
    assert not right.verdict("no_update").holds
    assert "no update ever happens" in [v.text for v in wrong.shown]
    assert "no update ever happens" not in [v.text for v in right.shown]


def test_lag_verdict_the_update_uses_the_previous_batch():
    plain = lib.Config(lr=0.05, batch_size=8, iterations=10)
    wrong, right = lo.lab(DATA, plain, LAG), lo.lab(DATA, plain, lo.ORDER)
    batches = _hand_batches(plain, 10)
    for loop in ("manual", "torch"):
        w = getattr(wrong.chosen.result, loop).weights
        assert np.array_equal(w[1], w[0])  # step 0 found no gradient
        for t in range(1, 10):  # step t: minus lr times batch t-1's gradient (at the weights w_t)
            expected = -0.05 * _hand_gradient(w[t], *batches[t - 1])
            assert np.allclose(w[t + 1] - w[t], expected, rtol=1e-9, atol=1e-14)
            own = -0.05 * _hand_gradient(w[t], *batches[t])
            assert not np.allclose(w[t + 1] - w[t], own, rtol=1e-6, atol=1e-12)
    assert wrong.verdict("lag").holds and not wrong.verdict("own").holds
    assert right.verdict("own").holds and not right.verdict("lag").holds
    texts = [v.text for v in wrong.shown]
    assert "each step uses the previous batch's gradient (the update lags one step)" in texts


def test_clip_verdicts():
    none, stale, right = (lo.lab(DATA, CFG, order) for order in (CLIP_NONE, CLIP_STALE, lo.ORDER))
    assert none.verdict("clip_no_effect").holds
    assert "norm 0" in none.verdict("clip_no_effect").measured
    assert np.all(none.chosen.result.torch.grad_norm == 0)  # the norm clip_grad_norm_ returned
    assert not right.verdict("clip_no_effect").holds  # there, it scales every step
    assert right.correct.result.torch.clipped.all()
    assert stale.verdict("clip_stale").holds and not stale.verdict("clip_no_effect").holds
    assert not right.verdict("clip_stale").holds and not none.verdict("clip_stale").holds


def test_scheduler_before_step_skips_the_first_lr_and_torch_warns():
    wrong, right = lo.lab(DATA, CFG, SCHEDULER_FIRST), lo.lab(DATA, CFG, lo.ORDER)
    lr = right.chosen.result.torch.lr
    for loop in ("manual", "torch"):
        used = getattr(wrong.chosen.result, loop).lr
        assert np.allclose(used[:-1], lr[1:], rtol=1e-12) and used[0] != lr[0]
    verdict = wrong.verdict("lr_skipped")
    assert verdict.holds
    assert any("lr_scheduler.step()" in w for w in wrong.chosen.warnings)
    assert "torch warned: “Detected call of `lr_scheduler.step()` before" in verdict.text
    assert not right.verdict("lr_skipped").holds and not right.chosen.warnings


def test_validation_graph_verdict_counts_the_real_graph():
    with_grad = [lo.WITH_GRAD if n == "validation" else n for n in lo.ORDER]
    wrong, right = lo.lab(DATA, CFG, with_grad), lo.lab(DATA, CFG, lo.ORDER)
    # the test's own count: nn.Linear then MSELoss on held-out rows
    net = torch.nn.Linear(2, 1, dtype=torch.float64)
    loss = torch.nn.MSELoss()(net(torch.zeros(5, 2, dtype=torch.float64)), torch.zeros(5, 1))
    expected = lo.graph_nodes(loss)
    assert expected == 5  # MseLoss, Addmm, AccumulateGrad (bias), T, AccumulateGrad (weight)
    assert wrong.chosen.logs["torch"].val_nodes == [expected] * CFG.iterations
    assert wrong.verdict("graph").holds and wrong.verdict("graph").text.endswith("of 5 nodes")
    assert right.chosen.logs["torch"].val_nodes == [0] * CFG.iterations
    assert not right.verdict("graph").holds
    # the validation losses themselves are the same numbers
    assert np.array_equal(wrong.chosen.result.torch.val_loss, right.chosen.result.torch.val_loss)
