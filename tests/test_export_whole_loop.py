"""The whole loop in the exports: accumulation, a validation split, drop_last, schedules and
clipping. Each Config's script holds the lines that Config runs (and not the others'), reruns
lib.run to 1e-12 outside the repository, and reports the validation loss when there is a split;
the CSV and JSON histories hold lr, clipped and val_loss when the run has them."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

import lib
from lib.io.export import _Specialiser, twin_sources
from tests.test_export import DATA, assert_reproduces, cached_scripts, run_script
from tests.test_export_short import code_words

# fmt: off
CASES = {
    "accumulate 3": lib.Config(lr=0.02, batch_size=5, iterations=30, accumulate=3),
    "validation every 4 steps": lib.Config(lr=0.05, batch_size=8, iterations=30, val_fraction=0.25,
                                           eval_every=4),
    "drop_last, batch 7 of 40 rows": lib.Config(lr=0.05, batch_size=7, iterations=30,
                                                drop_last=True),
    "onecycle and clipping": lib.Config(lr=0.05, batch_size=8, iterations=30, scheduler="onecycle",
                                        clip_grad_norm=0.5),
    "all of them, mlp adam": lib.Config(
        lr=0.01, batch_size=6, iterations=24, model="mlp", hidden=3, init="normal",
        optimizer="adam", accumulate=2, val_fraction=0.2, eval_every=3, drop_last=True,
        scheduler="cosine", clip_grad_norm=0.3),
}
# fmt: on
FULL = ("validation every 4 steps", "all of them, mlp adam")


# One test item per script (pytest-xdist spreads them over the workers): the short script of each
# case and the full one of two.
SCRIPTS = [(name, False) for name in CASES] + [(name, True) for name in FULL]
script_of = cached_scripts({name: (DATA, cfg) for name, cfg in CASES.items()})


@pytest.mark.parametrize(
    "name, full", SCRIPTS, ids=[f"{n} (full)" if full else n for n, full in SCRIPTS]
)
def test_the_scripts_rerun_the_whole_loop(tmp_path, name, full):
    """The case's script: lib.run's final weights to 1e-12, and its validation losses, read as
    lib.run reads them, only where there is a split."""
    result = lib.run(DATA, CASES[name])
    assert result.stopped is None and result.steps == result.config.iterations
    stdout, doc = run_script(script_of(name, full), tmp_path)
    assert_reproduces(result, doc)
    if result.config.val_fraction == 0:
        assert "val_loss" not in doc and "validation loss" not in stdout
        return
    assert len(result.manual.val_loss) == result.steps // result.config.eval_interval > 0
    for loop in ("manual", "torch"):
        np.testing.assert_allclose(
            doc["val_loss"][loop], getattr(result, loop).val_loss, rtol=0, atol=1e-12
        )
    steps = len(result.val_steps) * result.config.eval_interval
    assert f"validation loss after step {steps:,}: manual " in stdout


def test_the_default_script_holds_none_of_the_whole_loops_options():
    text = lib.to_script(DATA, lib.Config())
    words = {w.lower() for w in code_words(text)}
    for absent in ("accumulate", "eval", "val_loss", "held_out", "drop_last", "no_grad",
                   "step_loss", "split_rows", "micro"):  # fmt: skip
        assert not [w for w in words if absent in w], absent
    assert " or True" not in text and " and False" not in text and "or not " not in text
    assert "for inputs, labels in batches:" in text and "enumerate" not in text
    # The phase headings stay where an if they stood above went away.
    assert text.count("        # Update.") == 2


def test_accumulation_shows_its_lines_and_only_them():
    text = script_of("accumulate 3")
    for line in (
        "loss = loss / accumulate",
        "step_loss = loss if i % accumulate == 0 else step_loss + loss",
        "delta = delta / accumulate",
        "if i % accumulate == 0:  # once per optimizer step",
        "if (i + 1) % accumulate == 0:  # the step's last micro-batch",
        "yield step_loss, weights, -neg_grad",
        "for i, (inputs, labels) in enumerate(batches):",
    ):
        assert line in text, line
    assert "accumulate == 1" not in text and "True and" not in text and "evaluate" not in text
    assert "accumulate > 1" not in text


def test_validation_shows_its_lines_and_only_them():
    text = script_of("validation every 4 steps")
    for line in (
        "val_loss = evaluate(validation, weights)",
        "net.eval()",
        "with torch.no_grad():",
        "if validation is not None and (i + 1) % eval_every == 0:",
        "train, held_out = split_rows(",
        'val_m.append(manual.gi_frame.f_locals["val_loss"])',
    ):
        assert line in text, line
    header = text.split('"""')[1]
    assert "its loss on the held-out rows after every 4 steps" in header
    assert "held-out" not in lib.to_script(DATA, lib.Config()).split('"""')[1]
    # accumulate == 1: the counter counts steps, so `i // accumulate` reads as i
    assert "accumulate" not in text and "drop_last" not in code_words(text)


def test_drop_last_shows_its_lines_and_only_them():
    text = script_of("drop_last, batch 7 of 40 rows")
    assert "stop = m - m % batch_size" in text
    assert "return [slice(None)] if batch_size == m else []" in text
    assert "return self.m // self.batch_size" in text and "-(-self.m" not in text
    assert " or False" not in text and "drop_last" not in code_words(text)


def test_twin_sources_of_new_shapes_stay_fast():
    """twin_sources of one Config shape is cached by the pages; a new shape still costs one
    specialisation, measured here against a generous bound for a busy machine."""
    import time

    for cfg in (CASES["accumulate 3"], CASES["all of them, mlp adam"]):
        start = time.perf_counter()
        sources = twin_sources(DATA, cfg)
        assert set(sources) == {"manual_loop", "torch_loop"}
        assert time.perf_counter() - start < 15


# ---- the specialiser's new rules, where they must not apply ----


def specialised(text: str) -> str:
    return _Specialiser(text, lib.Config(), DATA, protected=("main",)).run()


def test_a_local_is_known_only_until_something_may_set_it_again():
    text = specialised(
        "def pair():\n    return 1, None\n\n\n"
        "def main():\n"
        "    a, v = pair()\n"
        "    w = None\n"
        "    for i in range(3):\n"
        "        w = i\n"
        "    if v is not None:\n"
        "        print('v')\n"
        "    if w is None:\n"
        "        print('w')\n"
        "    k = None\n"
        "    h = lambda: k\n"
        "    k = 3\n"
        "    if h() is None:\n"
        "        print('k')\n"
        "    print(a)\n"
    )
    assert "print('v')" not in text  # pair() always returns None there
    assert "if w is None:" in text  # the loop may have set it
    assert "if h() is None:" in text  # the lambda reads k when called, after k = 3


def test_or_true_is_simplified_only_where_the_value_does_not_change():
    text = specialised(
        "import sys\n\n\n"
        "def main():\n"
        "    n = len(sys.argv) or True\n"  # an int, not its truth: stays
        "    if print('x') or True:\n"  # a call: it runs, so it stays
        "        pass\n"
        "    if len(sys.argv) > 1 or True:\n"
        "        print('always')\n"
        "    b = len(sys.argv) > 1 and False\n"
        "    print(n, b)\n"
    )
    assert "n = len(sys.argv) or True" in text
    assert "if print('x') or True:" in text
    assert "if len(sys.argv) > 1" not in text and "print('always')" in text
    assert "b = False" in text or "print(n, False)" in text


# ---- the histories ----


def test_history_json_and_csv_hold_lr_clipped_and_val_loss():
    cfg = CASES["all of them, mlp adam"]
    result = lib.run(DATA, cfg)
    doc = json.loads(lib.history_json(result, DATA))
    assert doc["val_steps"] == result.val_steps.tolist()
    assert doc["val_rows"] == result.val_rows.tolist() and len(doc["val_rows"]) == 8
    for loop in ("manual", "torch"):
        h = getattr(result, loop)
        np.testing.assert_array_equal(doc[loop]["lr"], h.lr)
        assert doc[loop]["clipped"] == h.clipped.tolist() and any(h.clipped)
        np.testing.assert_array_equal(doc[loop]["val_loss"], h.val_loss)
    frame = pd.read_csv(io.BytesIO(lib.history_csv(result)))
    assert {"lr", "clipped", "val_loss"} <= set(frame["metric"])
    clipped = frame[(frame["metric"] == "clipped") & (frame["loop"] == "torch")]
    np.testing.assert_array_equal(clipped["value"].to_numpy(), result.torch.clipped.astype(float))
    val = frame[(frame["metric"] == "val_loss") & (frame["loop"] == "manual")]
    np.testing.assert_array_equal(val["step"].to_numpy(), result.val_steps + 1)
    np.testing.assert_array_equal(val["value"].to_numpy(), result.manual.val_loss)


@pytest.mark.parametrize(
    "cfg", [lib.Config(iterations=20), lib.Config(iterations=20, accumulate=2)], ids=["sgd", "acc"]
)
def test_history_json_and_csv_hold_no_empty_extras(cfg):
    result = lib.run(DATA, cfg)
    doc = json.loads(lib.history_json(result))
    assert "val_steps" not in doc and "val_rows" not in doc
    assert not {"lr", "clipped", "val_loss"} & set(doc["manual"])
    frame = pd.read_csv(io.BytesIO(lib.history_csv(result)))
    assert not {"lr", "clipped", "val_loss"} & set(frame["metric"])


def test_the_twin_table_shows_an_accumulating_step_as_code():
    """A line that ends in a colon before its comment reads `if ...: body` in a cell."""
    from lib.lessons.explain import phase_source
    from pages.parts.twin_table import twin_lines_markdown

    def table(cfg):
        sources = twin_sources(DATA, cfg)
        hand, torch = (phase_source(sources[n], missing="") for n in ("manual_loop", "torch_loop"))
        return twin_lines_markdown(hand, torch)

    accumulating = table(CASES["accumulate 3"])
    assert "`if i % accumulate == 0: optimizer.zero_grad()`" in accumulating
    assert "`if i % accumulate == 0: neg_grad = np.zeros_like(weights)`" in accumulating
    assert ":;" not in accumulating
    plain = table(lib.Config())
    assert "| `optimizer.zero_grad()` | `neg_grad = np.zeros_like(weights)` |" in plain
    assert "accumulate" not in plain and "val_loss" not in plain
    validating = table(CASES["validation every 4 steps"])
    assert "with torch.no_grad(): val_loss = criterion(" in validating
