"""lib.explain's rows for the whole loop's lines: the DataLoader, train()/eval(), accumulation,
clipping, the schedule and validation under no_grad(). Each check holds on its configuration and
fails on a case built to make its sentence false; the code shown is the source that runs."""

import contextlib
import dataclasses
import inspect

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lib
from lib import explain
from lib.engine import data as data_module
from lib.engine import lockstep
from lib.engine.trace import Stepper
from lib.io.export import twin_sources
from lib.twins import manual, schedules, torch_side

DATA = lib.datasets.linear(m=60, n=3, noise=0.1, seed=4)
BASE = lib.Config(lr=0.05, batch_size=16, iterations=20)
WHOLE = BASE.replace(
    accumulate=3,
    clip_grad_norm=0.5,
    scheduler="step",
    scheduler_kwargs={"step_size": 3},
    val_fraction=0.2,
    eval_every=2,
)
CLAIM = {c.key: c for c in explain.CLAIMS}
NEW = ("loader_same_rows", "loader_one_index", "modes_no_op", "modes_matter", "accumulate_sum")
NEW += ("clip_factor", "schedule_lr", "no_graph", "val_loss_twin")


def evidence(key, cfg=WHOLE, t=5, data=DATA):
    return explain.verify(CLAIM[key], data, cfg, t)


# ---------------------------------------------------------------- rows, and when they are shown


def test_every_row_of_the_whole_loop_has_claims_and_is_shown_only_where_it_runs():
    assert {CLAIM[k].row for k in NEW} == {r.key for r in explain.LOOP_ROWS}
    assert [r.key for r in explain.loop_rows_for(BASE)] == ["loader", "modes"]
    assert [r.key for r in explain.loop_rows_for(WHOLE)] == [r.key for r in explain.LOOP_ROWS]
    for key, change in [
        ("accumulate", {"accumulate": 2}),
        ("clip", {"clip_grad_norm": 1.0}),
        ("schedule", {"scheduler": "exponential", "scheduler_kwargs": {"gamma": 0.9}}),
        ("validation", {"val_fraction": 0.1}),
    ]:
        assert key not in [r.key for r in explain.loop_rows_for(BASE)]
        assert key in [r.key for r in explain.loop_rows_for(BASE.replace(**change))]
    # a claim of a row that is not shown is not checked either
    assert set(explain.verify_all(DATA, BASE, 1)) >= {"loader_same_rows", "modes_no_op"}
    assert not set(explain.verify_all(DATA, BASE, 1)) & {"clip_factor", "no_graph"}
    assert {k for k in NEW} <= set(explain.verify_all(DATA, WHOLE, 5))


@pytest.mark.parametrize(
    "cfg",
    [
        WHOLE,
        BASE,
        WHOLE.replace(model="mlp", optimizer="adam", scheduler="onecycle", scheduler_kwargs={}),
        WHOLE.replace(batch_size=100, zero_grad=False, scheduler="cosine", scheduler_kwargs={}),
        WHOLE.replace(drop_last=True, batch_size=14, clip_grad_norm=100.0),
    ],
    ids=["whole", "base", "mlp-adam-onecycle", "full-batch-no-reset", "drop-last"],
)
def test_every_claim_holds_on_its_configuration(cfg):
    checks = explain.verify_all(DATA, cfg, 5)
    failed = {k: e for k, e in checks.items() if e.applies and not e.ok}
    assert not failed


# ---------------------------------------------------------------- the code shown is the source


def is_selection_of(block: str, source: str) -> bool:
    """Every line of block but the `...` gaps is a line of source, in source's order."""
    lines = [line.strip() for line in source.splitlines()]
    at = 0
    for line in block.splitlines():
        if line.strip() == "...":
            continue
        try:
            at = lines.index(line.strip(), at) + 1
        except ValueError:
            return False
    return True


@pytest.mark.parametrize("specialised", [True, False], ids=["specialised", "whole functions"])
def test_each_rows_code_is_read_from_the_loops_and_the_functions_they_call(specialised):
    texts = twin_sources(DATA, WHOLE) if specialised else {}
    hand_text, torch_text = texts.get("manual_loop"), texts.get("torch_loop")
    whole = inspect.getsource(lib.manual_loop), inspect.getsource(lib.torch_loop)
    for row in explain.LOOP_ROWS:
        hand, twin = explain.loop_row_code(row, WHOLE, hand_text, torch_text)
        for blocks, text, full in ((hand, hand_text, whole[0]), (twin, torch_text, whole[1])):
            title, code = blocks[0]
            assert title.startswith("In ")
            if code != explain.NO_TWIN:
                assert is_selection_of(code, text or full) or is_selection_of(code, full), row.key
            for _, helper in blocks[1:]:
                assert any(
                    helper == inspect.getsource(obj).rstrip()
                    for obj in (
                        data_module.loader,
                        data_module.epoch_batches,
                        data_module.torch_loader,
                        data_module.SharedOrder,
                        manual.clip_grad_norm_,
                        manual.evaluate,
                        schedules.StepLR,
                    )
                ), row.key
    hand, twin = explain.loop_row_code("modes", WHOLE, hand_text, torch_text)
    assert hand[0][1] == explain.NO_TWIN
    assert "net.train()" in twin[0][1] and "net.eval()" in twin[0][1]
    assert "with torch.no_grad():" in explain.loop_row_code("validation", WHOLE)[1][0][1]
    assert "clip_grad_norm_(" in explain.loop_row_code("clip", WHOLE)[1][0][1]
    assert "scheduler.step()" in explain.loop_row_code("schedule", WHOLE)[0][0][1]
    assert "loss = loss / accumulate" in explain.loop_row_code("accumulate", WHOLE)[1][0][1]


def test_a_line_the_given_text_lacks_is_read_from_the_whole_function():
    hand, twin = explain.loop_row_code("clip", WHOLE, "# Model\nx = 1", "# Model\nx = 1")
    assert "clip_grad_norm_(neg_grad, clip_grad_norm)" in hand[0][1]
    assert "nn.utils.clip_grad_norm_(net.parameters(), clip_grad_norm)" in twin[0][1]


def test_source_lines_keeps_headers_bodies_comments_and_marks_the_gaps():
    text = (
        "def f(a):\n    scheduler = 0\n    # Model: start\n    x = 1\n    # why\n"
        "    y = scheduler\n    z = 2\n    if x:\n        w = 3\n        v = 4\n    u = 5\n"
    )
    assert explain.source_lines(text, ("scheduler",)) == "# why\ny = scheduler"
    assert explain.source_lines(text, ("x = 1",), ("if x",)) == (
        "x = 1\n...\nif x:\n    w = 3\n    v = 4"
    )
    assert explain.source_lines(text, ("nothing here",)) is None
    assert explain.source_lines(text, ("= ",), unless=("y", "w", "v", "u", "z")) == "x = 1"
    with pytest.raises(ValueError, match="row must be one of"):
        explain.loop_row_code("nope", WHOLE)


# ---------------------------------------------------------------- the texts, exact


def test_the_texts_carry_the_configurations_numbers():
    text = explain.loop_row_text("loader", WHOLE, DATA)
    assert "permutation of the 48 training rows (the 12 held-out rows are never in one)" in text
    assert "cut into 3 batches of 16." in text and "3 consecutive batches" in text
    assert "batch_size=16, shuffle=True" in text
    full = explain.loop_row_text("loader", BASE.replace(batch_size=60), DATA)
    assert "every batch is all of them in their own order" in full
    dropped = explain.loop_row_text("loader", BASE.replace(batch_size=25, drop_last=True), DATA)
    assert "cut into 2 batches of 25; `drop_last=True` drops the last 10 rows" in dropped
    assert "and a last one of 10." in explain.loop_row_text(
        "loader", BASE.replace(batch_size=25), DATA
    )
    assert "`clip_coef = 0.5 / (norm + 1e-6)`" in explain.loop_row_text("clip", WHOLE, DATA)
    assert "`lr_t = 0.05 · 0.1^⌊t / 3⌋`" in explain.loop_row_text("schedule", WHOLE, DATA)
    validation = explain.loop_row_text("validation", WHOLE, DATA)
    assert "Every 2 optimizer steps (10 passes in this run of 20)" in validation
    assert "the 12 held-out rows (`val_fraction = 0.2`)" in validation
    assert "`accumulate = 3`" in explain.loop_row_text("accumulate", WHOLE, DATA)
    assert "`net.eval()` is not in this configuration" in explain.loop_row_text("modes", BASE, DATA)
    assert "before every validation pass" in explain.loop_row_text("modes", WHOLE, DATA)
    assert "`nn.Sequential` of Linear, Tanh, Linear" in explain.loop_row_text(
        "modes", BASE.replace(model="mlp"), DATA
    )
    assert "earlier steps left" in CLAIM["accumulate_sum"].sentence(WHOLE.replace(zero_grad=False))
    assert "clip factor" in CLAIM["accumulate_sum"].sentence(WHOLE)
    assert "clip factor" not in CLAIM["accumulate_sum"].sentence(WHOLE.replace(clip_grad_norm=None))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("step", {"step_size": 7, "gamma": 0.5}),
        ("multistep", {"milestones": [3, 10, 10, 30]}),
        ("exponential", {"gamma": 0.97}),
        ("cosine", {"T_max": 15, "eta_min": 0.001}),
        ("linear", {"start_factor": 0.2, "total_iters": 12}),
        ("onecycle", {}),
        ("onecycle", {"three_phase": True, "anneal_strategy": "linear", "pct_start": 0.25}),
    ],
)
def test_each_schedules_formula_is_torchs_own_lr(name, kwargs):
    cfg = BASE.replace(iterations=60, scheduler=name, scheduler_kwargs=kwargs, lr=0.1)
    _, formula = explain.schedule_formula(cfg)
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9 if name == "onecycle" else 0)
    scheduler = schedules.torch_scheduler(name, optimizer, cfg.scheduler_kwargs)
    for t in range(60):
        lr = optimizer.param_groups[0]["lr"]
        assert formula(t) == pytest.approx(lr, rel=1e-9, abs=1e-15), t
        optimizer.step()
        scheduler.step()


# ---------------------------------------------------------------- the loader


def seed_plus_one_loader(real):
    def other(inputs, labels, batch_size, seed, dtype=torch.float64, drop_last=False):
        return real(inputs, labels, batch_size, seed + 1, dtype, drop_last)

    return other


def per_sample_loader(inputs, labels, batch_size, seed, dtype=torch.float64, drop_last=False):
    """The same order, but fetched sample by sample: a batch_sampler, with the default collate."""
    dataset = TensorDataset(
        torch.tensor(inputs, dtype=dtype), torch.tensor(labels, dtype=dtype)[:, None]
    )
    order = data_module.SharedOrder(len(inputs), batch_size, seed, drop_last)
    loader = DataLoader(dataset, batch_sampler=order)
    while True:
        yield from loader


def test_both_loops_receive_the_same_rows_and_a_loader_of_its_own_order_breaks_it(monkeypatch):
    e = evidence("loader_same_rows")
    assert e.ok and e.measured["the same rows, in the same order"] == "yes"
    assert "last micro-batch" in " ".join(e.measured)
    monkeypatch.setattr(lockstep, "torch_loader", seed_plus_one_loader(lockstep.torch_loader))
    e = evidence("loader_same_rows")
    assert not e.ok and e.measured["the same rows, in the same order"] == "no"


def test_one_indexing_call_per_batch_and_a_per_sample_loader_breaks_it(monkeypatch):
    e = evidence("loader_one_index", BASE)
    assert e.ok
    assert e.measured["dataset indexing calls for one batch"] == 1
    assert e.measured["calls with DataLoader(batch_size=16, shuffle=True)"] == 16
    monkeypatch.setattr(lockstep, "torch_loader", per_sample_loader)
    e = evidence("loader_one_index", BASE)
    assert not e.ok and e.measured["dataset indexing calls for one batch"] == 16
    assert evidence("loader_same_rows", BASE).ok  # the same rows, fetched one by one


# ---------------------------------------------------------------- train() and eval()


def test_the_modes_change_nothing_here_and_a_dropout_model_breaks_the_claim(monkeypatch):
    for cfg in (WHOLE, BASE.replace(model="mlp", activation="relu", init="normal")):
        e = evidence("modes_no_op", cfg)
        assert e.ok and e.measured["modules whose forward reads .training"] == "none"
    real = explain.make_model
    monkeypatch.setattr(
        explain,
        "make_model",
        lambda layout, dtype: nn.Sequential(nn.Dropout(0.5), real(layout, dtype)),
    )
    e = evidence("modes_no_op", BASE.replace(init="normal"))
    assert not e.ok
    assert e.measured["modules whose forward reads .training"] == "Dropout"
    assert e.measured["max |outputs in train mode − outputs in eval mode|"] > 0


def test_mode_evidence_tells_batch_norm_from_a_plain_model():
    inputs = torch.tensor(DATA.X[:8])
    assert explain.mode_evidence(nn.Linear(3, 1, dtype=torch.float64), inputs).ok
    norm = nn.Sequential(
        nn.BatchNorm1d(3, dtype=torch.float64), nn.Linear(3, 1, dtype=torch.float64)
    )
    e = explain.mode_evidence(norm, inputs)
    assert not e.ok and e.measured["modules whose forward reads .training"] == "BatchNorm1d"


def test_the_modes_matter_for_dropout_and_batch_norm_and_not_for_plain_layers():
    e = evidence("modes_matter", BASE)
    assert e.ok
    assert e.measured["Dropout: max |train-mode − eval-mode output|"] > 0
    assert e.measured["BatchNorm1d: max |train-mode − eval-mode output|"] > 0
    inputs = torch.tensor(DATA.X[:8])
    e = explain.modes_matter_evidence(inputs, (nn.Identity(), nn.Tanh()))
    assert not e.ok
    # one row: batch norm refuses training mode, and says so
    one = explain.modes_matter_evidence(torch.tensor(DATA.X[:1]))
    assert one.ok and "refused" in one.measured["BatchNorm1d in train mode"]


# ---------------------------------------------------------------- validation under no_grad()


class WithoutNoGrad:
    """torch, but for no_grad(), which does nothing."""

    no_grad = staticmethod(contextlib.nullcontext)

    def __getattr__(self, name):
        return getattr(torch, name)


def test_validation_builds_no_graph_and_without_no_grad_it_does(monkeypatch):
    e = evidence("no_graph")
    assert e.ok
    assert e.measured["validation output's grad_fn"] == "None"
    assert e.measured["parameters its graph reaches"] == "2 of 2"
    assert e.measured["net.training: on the batches / in validation"] == "True / False"
    # the torch loop's own `torch` with no_grad() doing nothing: validation as if the line were not
    # there (torch's own functions keep theirs)
    monkeypatch.setattr(torch_side, "torch", WithoutNoGrad())
    e = evidence("no_graph")
    assert not e.ok and e.measured["validation output's grad_fn"] != "None"
    assert e.measured["grad mode during it"] == "on"


def test_a_validation_without_eval_breaks_the_no_graph_claim(monkeypatch):
    monkeypatch.setattr(nn.Module, "eval", lambda self: self)  # net.eval() does nothing
    e = evidence("no_graph")
    assert not e.ok and e.measured["net.training: on the batches / in validation"] == "True / True"


def test_the_hand_evaluate_is_torchs_no_grad_loss_and_a_wrong_one_is_caught(monkeypatch):
    e = evidence("val_loss_twin")
    assert e.ok and e.measured["validation passes so far"] == 3
    early = evidence("val_loss_twin", WHOLE.replace(eval_every=10), t=3)
    assert not early.applies and "the first follows step 9" in early.note
    real = manual.evaluate
    monkeypatch.setattr(manual, "evaluate", lambda *args: real(*args) * 1.001)
    assert not evidence("val_loss_twin").ok


# ---------------------------------------------------------------- clipping


def test_clipping_is_measured_at_the_step_clipped_or_not():
    e = evidence("clip_factor", WHOLE.replace(accumulate=1))
    assert e.ok and e.measured["this step"].startswith("clipped: every gradient ×")
    assert e.measured["‖gradient step() used‖"] == pytest.approx(0.5, rel=1e-5)
    e = evidence("clip_factor", WHOLE.replace(clip_grad_norm=1e6))
    assert e.ok and e.measured["this step"].startswith("not clipped")
    assert e.measured["clip factor min(1, max_norm / (norm + 1e-6))"] == 1.0


def test_a_clip_that_does_not_scale_is_caught(monkeypatch):
    def norm_only(parameters, max_norm, *args, **kwargs):
        grads = [p.grad for p in parameters if p.grad is not None]
        return torch.linalg.vector_norm(torch.cat([g.ravel() for g in grads]))

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", norm_only)
    e = evidence("clip_factor", WHOLE.replace(accumulate=1))
    assert not e.ok


def test_clip_evidence_fails_when_the_loops_norms_differ():
    stepper = Stepper(DATA, WHOLE.replace(accumulate=1), keep=2)
    step = stepper.run_to(3)
    micro = stepper.micro_batches(3)
    assert explain.clip_evidence(step, micro, 0.5).ok
    hand = dataclasses.replace(step.manual, norm=step.manual.norm * 1.01)
    assert not explain.clip_evidence(dataclasses.replace(step, manual=hand), micro, 0.5).ok


# ---------------------------------------------------------------- the schedule


def test_the_lr_is_the_same_in_both_loops_and_the_formula_and_a_wrong_schedule_is_caught(
    monkeypatch,
):
    e = evidence("schedule_lr")
    assert e.ok and e.measured["the formula at t = 5"] == pytest.approx(0.005, rel=1e-12)
    real = torch_side.torch_scheduler

    def slower(name, optimizer, kwargs):
        return real(name, optimizer, {**kwargs, "gamma": 0.5})

    monkeypatch.setattr(torch_side, "torch_scheduler", slower)
    e = evidence("schedule_lr")
    assert not e.ok and e.measured["|torch − formula| / lr"] > 0.1


def test_a_hand_schedule_off_by_a_step_is_caught():
    stepper = Stepper(DATA, WHOLE, keep=2)
    step = stepper.run_to(5)
    assert explain.schedule_evidence(step, WHOLE).ok
    hand = dataclasses.replace(step.manual, lr=explain.schedule_formula(WHOLE)[1](6))
    assert not explain.schedule_evidence(dataclasses.replace(step, manual=hand), WHOLE).ok


# ---------------------------------------------------------------- accumulation


def test_the_steps_gradient_is_the_sum_of_the_scaled_micro_batch_gradients():
    e = evidence("accumulate_sum")
    assert e.ok and e.measured["micro-batches"] == 3 and e.measured["rows in each"] == "16, 16, 16"
    stepper = Stepper(DATA, WHOLE, keep=2)
    stepper.run_to(4)
    micro = stepper.micro_batches(4)
    assert explain.accumulation_evidence(micro).ok
    left_out = micro.gradient.copy()
    left_out[:, 1] = 0.0  # one micro-batch's share missing
    assert not explain.accumulation_evidence(dataclasses.replace(micro, gradient=left_out)).ok
    unscaled = dataclasses.replace(micro, gradient=micro.gradient * 3, loss=micro.loss * 3)
    assert not explain.accumulation_evidence(unscaled).ok  # loss not divided by accumulate


# ---------------------------------------------------------------- the old rows on the whole loop


def test_the_update_row_and_its_claims_follow_a_schedule_and_clipping():
    rows = {r.key: r for r in explain.ROWS}
    text = explain.row_text(rows["update"], WHOLE)
    assert "clip the gradient to norm 0.5" in text and "the schedule sets it" in text
    assert "clip the gradient" not in explain.row_text(rows["update"], BASE)
    assert "loss / accumulate" in explain.row_text(rows["loss"], WHOLE)
    assert "divides `delta` by 3" in explain.row_text(rows["backward"], WHOLE)
    assert "accumulate" not in explain.row_text(rows["backward"], BASE)
    assert evidence("same_update").ok  # with the schedule's lr, not the Config's
    assert not CLAIM["effective_lr"].about(WHOLE)
    onecycle = BASE.replace(scheduler="onecycle", optimizer_kwargs={"momentum": 0.9})
    assert not CLAIM["first_step_momentum"].about(onecycle)
    assert not CLAIM["same_update"].about(BASE.replace(scheduler="onecycle"))
    adam = BASE.replace(
        optimizer="adam", scheduler="linear", scheduler_kwargs={"start_factor": 0.1}
    )
    assert evidence("first_step_adam", adam).ok  # at the schedule's first lr, lr / 10 here


def test_a_run_without_a_pass_to_watch_leaves_the_validation_sentences_out():
    rare = WHOLE.replace(eval_every=50)  # 20 steps: no validation pass at all
    for key in ("no_graph", "val_loss_twin"):
        e = evidence(key, rare)
        assert not e.applies and not e.ok, key
    one = BASE.replace(iterations=1, val_fraction=0.2, eval_every=1)
    e = evidence("no_graph", one, t=0)
    assert not e.applies and "no validation pass after step 0" in e.note
    assert evidence("val_loss_twin", one, t=0).ok  # the pass after step 0, compared
