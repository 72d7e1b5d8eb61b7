"""The twins diff cleanly: the same parameters, the same phase headers, and a diff of only what
differs.

Run with `pytest -s tests/test_twins_diff.py` to see the diff the README shows.
"""

import ast
import difflib
import inspect
import textwrap

import pytest

import lib
from lib.io.export import twin_sources
from lib.lessons.explain import PHASES, SETUP

DATA = lib.datasets.linear(m=50, n=3, noise=0.1, seed=0)


def body(source: str) -> list[str]:
    """The lines of a function after its docstring."""
    func = ast.parse(textwrap.dedent(source)).body[0]
    return textwrap.dedent(source).splitlines()[func.body[0].end_lineno :]


def changed(manual: str, torch: str) -> list[str]:
    """The unified diff of the two bodies, without context lines."""
    diff = difflib.unified_diff(
        body(manual), body(torch), "manual_loop", "torch_loop", lineterm="", n=0
    )
    return list(diff)


def counted(diff: list[str]) -> int:
    return sum(1 for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---"))


def test_the_default_runs_twins_differ_only_where_their_arithmetic_does():
    sources = twin_sources(DATA, lib.Config())
    diff = changed(sources["manual_loop"], sources["torch_loop"])
    print("\n".join(diff))
    assert counted(diff) <= 25
    # Every phase header, and the loop line itself, is common to both: none appears in the diff.
    shared = ("for inputs, labels in batches:", SETUP, *PHASES)
    assert not [line for line in diff if any(line[1:].strip().startswith(s) for s in shared)]


def test_accumulating_and_validating_twins_still_diff_line_for_line():
    """accumulate and a validation split add the same lines to both loops (the micro-batch count,
    the share of the loss, the step's last micro-batch, the evaluation's test): the diff grows by
    the arithmetic alone (the hand delta's share, evaluate against torch.no_grad)."""
    cfg = lib.Config(accumulate=3, val_fraction=0.2, eval_every=5)
    sources = twin_sources(DATA, cfg)
    diff = changed(sources["manual_loop"], sources["torch_loop"])
    print("\n".join(diff))
    shared = (
        "for i, (inputs, labels) in enumerate(batches):",
        "if i % accumulate == 0:  # once per optimizer step",
        "loss = loss / accumulate",
        "if (i + 1) % accumulate == 0:  # the step's last micro-batch",
        "if validation is not None and (i // accumulate + 1) % eval_every == 0:",
        SETUP,
        *PHASES,
    )
    for line in shared[:5]:
        assert line in sources["manual_loop"] and line in sources["torch_loop"], line
    assert not [line for line in diff if any(line[1:].strip().startswith(s) for s in shared)]
    assert counted(diff) <= 32
    # and without them the same twins lose those lines
    plain = twin_sources(DATA, lib.Config())
    assert not [s for s in shared[:5] if s in plain["manual_loop"] or s in plain["torch_loop"]]


@pytest.mark.parametrize(
    "cfg",
    [
        lib.Config(model="mlp", activation="relu"),
        lib.Config(model="logistic", bias=False, optimizer="adam"),
        lib.Config(loss="sse", zero_grad=False, optimizer="rmsprop"),
    ],
    ids=["mlp", "logistic", "sse"],
)
def test_every_configurations_twins_keep_the_shared_lines(cfg):
    data = lib.datasets.blobs(m=60, seed=0) if cfg.loss == "bce" else DATA
    sources = twin_sources(data, cfg)
    diff = changed(sources["manual_loop"], sources["torch_loop"])
    shared = ("for inputs, labels in batches:", SETUP, *PHASES)
    assert not [line for line in diff if any(line[1:].strip().startswith(s) for s in shared)]
    assert counted(diff) <= (40 if cfg.model == "mlp" else 30)


def test_the_loop_functions_take_the_same_parameters_and_torch_adds_dtype():
    manual = list(inspect.signature(lib.manual_loop).parameters.values())
    twin = list(inspect.signature(lib.torch_loop).parameters.values())
    assert [p.name for p in twin] == [p.name for p in manual] + ["dtype"]
    assert [p.kind for p in twin[:-1]] == [p.kind for p in manual]
    assert all(p.kind is p.KEYWORD_ONLY for p in manual[3:])


def test_the_whole_functions_diff_stays_small():
    # All branches kept: the mlp's layers and every loss convention are the bulk of the difference;
    # validation adds evaluate() against net.eval() and torch.no_grad() (measured: 64).
    diff = changed(inspect.getsource(lib.manual_loop), inspect.getsource(lib.torch_loop))
    assert counted(diff) <= 64


def test_the_count_sees_a_line_that_differs():
    manual = 'def f():\n    """Doc."""\n    a = 1\n    b = 2\n'
    twin = 'def g():\n    """Doc."""\n    a = 1\n    b = 3\n'
    assert counted(changed(manual, twin)) == 2
    assert counted(changed(manual, manual)) == 0
