"""lib.to_notebook: a valid nbformat v4 notebook whose code is the script's; it reruns the run.

One test executes a notebook in a real ipykernel with nbclient; the others run the code cells in
order in one namespace, as a kernel would, which is much faster.
"""

import __future__

import functools
import json

import nbformat
import numpy as np
import pytest

import lib
from lib.io import notebook

SMALL = lib.datasets.linear(m=40, n=2, noise=0.1, seed=1)
_MOONS = lib.datasets.moons(m=60, seed=2)
# The moons as a CSV file's columns: the second case's notebook reads them from "moons.csv".
MOONS = lib.Dataset(_MOONS.X, _MOONS.y, feature_names=("x1", "x2"), name="moons.csv")
CASES = {
    "linear sgd": (SMALL, lib.Config(lr=0.05, batch_size=8, iterations=30)),
    "mlp adam cosine validation, from a CSV file": (
        MOONS,
        lib.Config(
            lr=0.02,
            batch_size=16,
            iterations=24,
            model="mlp",
            hidden=5,
            activation="tanh",
            init="normal",
            loss="bce",
            optimizer="adam",
            scheduler="cosine",
            val_fraction=0.25,
            eval_every=4,
        ),
    ),
}
CSV_CASE = "mlp adam cosine validation, from a CSV file"


@functools.cache
def notebook_of(case: str) -> str:
    """The notebook of a case, made once (to_script takes seconds on a busy machine)."""
    data, cfg = CASES[case]
    if case == CSV_CASE:
        return notebook.to_notebook(data, cfg, csv_name="moons.csv", target="label")
    return notebook.to_notebook(data, cfg)


def write_moons_csv(folder) -> None:
    """MOONS as moons.csv in folder, every number exactly (repr of a float round-trips)."""
    rows = [
        "x1,x2,label",
        *(
            f"{float(a)!r},{float(b)!r},{float(t)!r}"
            for (a, b), t in zip(MOONS.X, MOONS.y, strict=True)
        ),
    ]
    (folder / "moons.csv").write_text("\n".join(rows) + "\n")


def code_cells(text: str) -> list[str]:
    nb = nbformat.reads(text, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def run_cells(cells: list[str], capsys) -> str:
    """Run the code cells in order in one namespace, as a kernel does (it keeps the first cell's
    `from __future__ import annotations` for the cells after it); return what they printed."""
    namespace: dict = {"__name__": "__main__"}
    flags = __future__.annotations.compiler_flag
    for i, cell in enumerate(cells):
        exec(compile(cell, f"<cell {i}>", "exec", flags=flags, dont_inherit=True), namespace)
    return capsys.readouterr().out


def final_weights(result: lib.Result) -> dict:
    return {"manual": result.manual.weights[-1], "torch": result.torch.weights[-1]}


def assert_matches(printed_json: str, result: lib.Result) -> None:
    got = json.loads(printed_json)
    for loop, expected in final_weights(result).items():
        np.testing.assert_allclose(got[loop], expected, rtol=0, atol=1e-12)
    if len(result.val_rows):
        for loop in ("manual", "torch"):
            expected = getattr(result, loop).val_loss
            np.testing.assert_allclose(got["val_loss"][loop], expected, rtol=0, atol=1e-12)


def test_notebook_is_valid_v4_with_a_markdown_cell_before_each_code_cell():
    nb = nbformat.reads(notebook_of("linear sgd"), as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[0] == "markdown" and kinds[-1] == "code"
    for i, kind in enumerate(kinds):
        if kind == "code":
            assert kinds[i - 1] == "markdown", f"code cell {i} has no explanation above it"
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown"]
    for phase in ("The data", "The hand-written loop", "The torch loop", "The lockstep"):
        assert f"## {phase}" in headings
    assert lib.to_notebook is notebook.to_notebook


def test_code_cells_are_the_scripts_own_lines_besides_the_notebooks_marked_ones():
    data, cfg = CASES["linear sgd"]
    script = lib.to_script(data, cfg).splitlines()
    cells = code_cells(notebook_of("linear sgd"))
    chart = next(c for c in cells if "alt.Chart" in c)
    for cell in cells:
        if cell is chart:
            continue
        for line in cell.splitlines():
            if "this notebook's line" in line or not line.strip():
                continue
            # every other line is a script line, at most dedented out of main()
            assert any(s.strip() == line.strip() and s.endswith(line) for s in script), line
    marked = [
        line for cell in cells for line in cell.splitlines() if "this notebook's line" in line
    ]
    assert len(marked) == 2
    imports = "\n".join(c for c in cells if c.startswith("from __future__"))
    assert "import streamlit" not in imports and "import lib" not in imports


@pytest.mark.parametrize("case", list(CASES))
def test_cells_run_in_order_reproduce_lib_run(case, capsys, tmp_path, monkeypatch):
    data, cfg = CASES[case]
    write_moons_csv(tmp_path)  # next to the "notebook": the folder its cells run in
    monkeypatch.chdir(tmp_path)
    printed = run_cells(code_cells(notebook_of(case)), capsys)
    assert_matches(printed.strip().splitlines()[-1], lib.run(data, cfg))


def test_the_comparison_fails_for_another_run(capsys):
    """assert_matches can fail: the notebook's weights are not those of a run at another lr."""
    data, cfg = CASES["linear sgd"]
    printed = run_cells(code_cells(notebook_of("linear sgd")), capsys)
    other = lib.Config(lr=0.04, batch_size=cfg.batch_size, iterations=cfg.iterations)
    with pytest.raises(AssertionError):
        assert_matches(printed.strip().splitlines()[-1], lib.run(data, other))


def test_markdown_names_what_the_cells_hold_for_this_config():
    _, cfg = CASES[CSV_CASE]
    nb = nbformat.reads(notebook_of(CSV_CASE), as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "`torch.optim.Adam` updates the weights" in text
    assert "the `bce` loss" in text and "the `adam` update" in text
    assert f"Up to {cfg.iterations:,} steps" in text
    assert f'"val_loss" each loop\'s loss on the held-out rows after every {cfg.eval_interval}' in (
        text
    )
    plain = notebook_of("linear sgd")
    assert "val_loss" not in plain.split("## The final weights")[1].split('"code"')[0]
    assert "`torch.optim.SGD` updates the weights" in plain


def test_the_data_cell_says_where_the_data_comes_from():
    csv = nbformat.reads(notebook_of(CSV_CASE), as_version=4)
    embedded = nbformat.reads(notebook_of("linear sgd"), as_version=4)
    data_cells = [
        next(c.source for c in nb.cells if c.source.startswith("## The data"))
        for nb in (csv, embedded)
    ]
    assert "read from a CSV file by column name" in data_cells[0]
    assert "written in below, every number exactly as lib holds it" in data_cells[1]
    assert "CSV_FILE = 'moons.csv'" in "\n".join(code_cells(notebook_of(CSV_CASE)))


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match=r"data must be a lib\.Dataset"):
        notebook.to_notebook("data", lib.Config())
    with pytest.raises(ValueError, match=r"cfg must be a lib\.Config"):
        notebook.to_notebook(SMALL, {"lr": 0.1})


@pytest.mark.timeout(180)
def test_the_notebook_executes_in_a_kernel_and_matches_lib_run(tmp_path):
    from nbclient import NotebookClient

    data, cfg = CASES[CSV_CASE]
    nb = nbformat.reads(notebook_of(CSV_CASE), as_version=4)
    write_moons_csv(tmp_path)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        startup_timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    chart = next(c for c in nb.cells if c.cell_type == "code" and "alt.Chart" in c.source)
    # Altair's default renderer: the Vega-Lite spec inside HTML that draws it, with both loops.
    shown = json.dumps(chart.outputs[0]["data"])
    assert "vega" in shown and "Loss of both loops" in shown
    assert "manual" in shown and "torch" in shown
    last = nb.cells[-1].outputs[-1]
    assert last["name"] == "stdout"
    assert_matches(last["text"].strip().splitlines()[-1], lib.run(data, cfg))


def test_the_same_phase_comments_are_claimed_only_when_they_are_the_same():
    cfg = lib.Config()
    loop = "def manual_loop():\n    # Forward pass.\n    x = 1\n    # Loss.\n    y = 2\n"
    twin = "def torch_loop():\n    # Forward pass.\n    x = 1\n    # Loss.\n    y = 2\n"
    parts = notebook._Parts(
        manual={"manual_loop": loop},
        torch={"torch_loop": twin},
        loop_names=("manual_loop", "torch_loop"),
    )
    claim = "the same phase comments in the same order as in the torch loop below"
    assert claim in notebook._manual_text(cfg, parts)
    parts.torch["torch_loop"] = twin.replace("# Loss.", "# Backward pass.")
    assert claim not in notebook._manual_text(cfg, parts)
    assert notebook._manual_text(cfg, parts).startswith("## The hand-written loop\n`manual_loop`: ")
