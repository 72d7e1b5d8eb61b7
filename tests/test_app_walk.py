"""Every control on every page at both ends of its range, and a diverged run on every page that
can diverge.

The walk (tests/app_walk.py) finds the controls on the page itself: a control added tomorrow is
walked tomorrow, and a widget type the walk cannot set fails it. Every run must give a page without
an exception and without a Python error in its words. Known bugs are listed in KNOWN with the case
that shows them: the walk skips those cases and test_known_bug expects each to still fail (strict),
so a fix is noticed.

What the suite's time asked of the walk, and why each cut keeps what it checks: the Compare page's
walk is split into four test items (SHARES; every case of the page as opened is walked by exactly
one share, with every state it reveals, and a state two shares reveal is walked by both), so no
item holds a worker for the whole walk; and the Learning-rate map's cell chooser, which every
sidebar case relabels with the new map's losses, is walked once per number of cells rather than
after each sidebar case (Page.relabel_once; the reason is at its entry in PAGES).
"""

import ast
import re
import time

import pytest
from app_walk import SHOW_ERRORS, Case, Page, Walker, case_values, stage, widgets
from streamlit.testing.v1 import AppTest

# iterations for the walk's runs; the iteration controls themselves are still walked to their ends
SHORT = 20
SIDEBAR = {"query": {"iterations": str(SHORT)}, "short": {"iterations": float(SHORT)}}
PAGES = {
    "compare": Page("compare", "pages/compare.py", action="run", **SIDEBAR),
    "code_map": Page("code_map", "pages/code_map.py", explore_sidebar=False, **SIDEBAR),
    "step_through": Page(
        "step_through",
        "pages/step_through.py",
        action="step_run_to",
        explore_sidebar=False,
        **SIDEBAR,
    ),
    "pitfalls": Page(
        "pitfalls",
        "pages/pitfalls.py",
        query={"pitfall_iterations": str(SHORT)},
        short={"pitfall_iterations": float(SHORT)},
        switches_on=True,
        # Tab 2 raises torch's own error on purpose and shows it.
        allowed_errors=(
            re.compile(r"^RuntimeError: Trying to backward through the graph a second time"),
        ),
    ),
    # each run starts real worker processes: the shortest run the page takes, its Run pressed
    "data_parallel": Page(
        "data_parallel",
        "pages/data_parallel.py",
        action="parallel_go",
        start={"parallel_iters": SHORT},
        short={"parallel_iters": SHORT},
    ),
    "line_order": Page(
        "line_order",
        "pages/line_order.py",
        query={"order_iterations": str(SHORT)},
        short={"order_iterations": float(SHORT)},
    ),
    # every run is a sweep on worker processes: the smallest map (two full-batch cells); the
    # shared sidebar's nested controls are walked on the Compare page. The cell chooser lists the
    # map's cells by their final loss, so every sidebar case relabels it: it is walked in the first
    # state that gives it each number of cells (2, 12, 24), not again after each of the ~40 other
    # sidebar cases, since choosing a cell runs the same page code whatever its loss (its Compare
    # link is the sidebar's parameters, which the cell shown first already links, with the cell's
    # lr and batch size).
    "lr_map": Page(
        "lr_map",
        "pages/lr_map.py",
        query={"iterations": str(SHORT), "lrmap_lr_count": "2", "lrmap_batches": "full"},
        short={"iterations": float(SHORT), "lrmap_lr_count": 2.0},
        explore_sidebar=False,
        relabel_once=True,
    ),
    # The coarsest grid while walking: every map is cheaper; the grid control itself is still walked
    # to both ends.
    "landscape": Page("landscape", "pages/landscape.py", start={"landscape_size": "20"}),
}
# The landscape page maps the Compare page's last run: walk its controls on each kind of run.
LANDSCAPE_RUNS = {
    "its own example (no Compare run)": None,
    "the Compare default run": {"iterations": SHORT},
    "an mlp run": {"iterations": SHORT, "model": "mlp", "init": "normal"},
    "an mlp too big to map": {"iterations": SHORT, "model": "mlp", "hidden": "max"},
    "a diverged run": {"loss": "sse", "lr": "max", "iterations": 1000},
}
# where (as Walker.where writes it) -> the bug, in words. Empty: the walk found nothing it could not
# fix.
KNOWN: dict[str, str] = {}


def report(walker: Walker, seconds: float) -> None:
    r = walker.report
    print(f"\n{walker.page.name}: {len(r.cases)} cases in {r.states} states, {seconds:.1f} s")
    for s, where in sorted(r.slow, reverse=True):
        print(f"  slow case ({s:.1f} s): {where}")


def walk(page: Page, context: dict | None = None, shard: tuple[int, int] = (0, 1)) -> Walker:
    started = time.perf_counter()
    walker = Walker(page, context, known=KNOWN, shard=shard)
    walker.walk()
    report(walker, time.perf_counter() - started)
    return walker


def assert_walked(walker: Walker, least: int = 2) -> None:
    r = walker.report
    assert not r.failures, f"{len(r.failures)} of {len(r.cases)} cases failed:\n" + "\n".join(
        r.failures
    )
    assert len(r.cases) >= least, "the walk found nothing to set on this page"
    mine = {
        w
        for w in KNOWN
        if parse_where(w)[0] is walker.page
        and parse_where(w)[1] == walker.context
        and walker.shard == (0, 1)  # a known bug is checked by the unsplit walk of its page
    }
    stale = mine - r.expected
    assert not stale, f"known bugs the walk no longer meets (remove them from KNOWN): {stale}"


# The Compare page's walk (the shared sidebar, whole: over four minutes) in four shares, each a
# test item: pytest-xdist runs them beside the other tests instead of one worker walking it all
# while the other runs out of tests (Walker's shard: every case of the page as opened is in one
# share, with the states it reveals).
SHARES = {"compare": 4}
WALKS = [
    (name, k, SHARES.get(name, 1))
    for name in (
        "compare",
        "code_map",
        "step_through",
        "pitfalls",
        "data_parallel",
        "line_order",
        "lr_map",
    )
    for k in range(SHARES.get(name, 1))
]


# The shared sidebar's schedule, clipping, accumulation and validation sections multiplied the
# states the walk visits on the three pages that show it: a walk takes several minutes, past the
# suite's 600 s default on a busy machine.
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    "name, share, shares",
    WALKS,
    ids=[name if n == 1 else f"{name}-{k + 1}of{n}" for name, k, n in WALKS],
)
def test_every_control_at_both_ends(name, share, shares):
    walker = walk(PAGES[name], shard=(share, shares))
    assert_walked(walker)
    walked = {c.split(" | ")[-1].split("=")[0] for c in walker.report.cases}
    if name == "compare":
        # the shared sidebar, walked whole here: the optimizer settings of every optimizer (sgd's
        # on the page as opened, the others' walked by the share that chooses that optimizer), the
        # mlp's controls and the custom init's numbers
        mine = walker.report.opened[share::shares]
        assert any(c.widget.startswith("sgd_") for c in walker.report.opened)
        chosen = {c.value for c in mine if c.widget == "optimizer"}
        for optimizer in chosen:
            assert any(w.startswith(optimizer + "_") for w in walked), optimizer
        others = {"adam", "adamw", "rmsprop", "adagrad"}
        assert others <= {c.value for c in walker.report.opened if c.widget == "optimizer"}
        if Case("model", "mlp") in mine:
            assert {"hidden", "activation"} <= walked
        if Case("init", "custom") in mine:
            assert "init_values" in walked
    elif name in ("code_map", "step_through"):  # each sidebar control, both ends, from the page
        assert {"lr", "batch_size", "iterations", "optimizer", "model"} <= walked


@pytest.mark.parametrize("run", LANDSCAPE_RUNS, ids=list(LANDSCAPE_RUNS))
def test_every_landscape_control_at_both_ends(run):
    walker = walk(PAGES["landscape"], LANDSCAPE_RUNS[run])
    if run == "an mlp too big to map":  # no controls: the page says why in words instead
        assert_walked(walker, least=0)
        at = Walker(PAGES["landscape"], LANDSCAPE_RUNS[run]).open()
        assert said(at, "no map can be drawn")
    else:
        assert_walked(walker)


# ---------------------------------------------------- a diverged run on every page that can diverge


def opened(page: Page, **settings) -> tuple[AppTest, Walker]:
    """The page opened as the walk opens it, then its controls set (values, or "min"/"max": the
    control's own end)."""
    walker = Walker(page)
    at = walker.open()
    walker.set(at, settings)
    assert not walker.report.failures, walker.report.failures
    return at, walker


def fine(at: AppTest, walker: Walker, what: str) -> None:
    walker.check(at, what)
    assert not walker.report.failures, walker.report.failures


def said(at: AppTest, words: str) -> bool:
    shown = [
        str(e.value)
        for kind in ("warning", "error", "info", "markdown", "caption")
        for e in getattr(at, kind)
    ]
    return any(words in text for text in shown)


# the largest learning rate the control takes, on the summed loss
DIVERGE = {"loss": "sse", "lr": "max", "iterations": 1000}


def test_compare_says_a_diverged_run_diverged():
    at, walker = opened(PAGES["compare"], **DIVERGE)
    at.button(key="run").click().run()
    fine(at, walker, "Run")
    assert said(at, "Diverged at step") and said(at, "Try a smaller learning rate")


def test_step_through_says_a_diverged_run_diverged():
    at, walker = opened(PAGES["step_through"], **DIVERGE, step_target="max")
    at.button(key="step_run_to").click().run()
    fine(at, walker, "Run to step N")
    assert said(at, "The loops diverged at step")
    for key in (
        "step_previous",
        "step_next",
        "step_reset",
        "step_start",
        "step_run_to",
    ):  # every button, diverged
        button = widgets(at)[key]
        if not button.disabled:
            button.click()
            at.run()
            fine(at, walker, key)


def test_code_map_says_a_diverged_run_diverged():
    at, walker = opened(PAGES["code_map"], **DIVERGE)
    for end in case_values(widgets(at)["map_step"])[
        ::-1
    ]:  # the last step first: the run diverged before it
        stage(widgets(at)["map_step"], end)
        at.run()
        fine(at, walker, f"map_step={end}")
        if end > 0:
            assert said(at, "The run diverged at step")


def test_pitfalls_say_a_diverged_run_diverged():
    page = PAGES["pitfalls"]  # opened with every tab's switch on: each tab runs the loops
    at, _ = opened(page, pitfall_loss=widgets_label(page, "pitfall_loss", "sse"), pitfall_lr="max")
    assert said(at, "above the stability limit")
    assert said(at, "Diverged at step")


def test_landscape_says_a_diverged_run_diverged():
    walker = Walker(PAGES["landscape"], DIVERGE)
    at = walker.open()
    fine(at, walker, "the landscape of a diverged run")
    assert said(at, "This run diverged")


def widgets_label(page: Page, key: str, starts: str) -> str:
    """The label of the option of a select that starts with `starts` (the walk sets selects by
    label)."""
    at = Walker(page).open()
    return next(label for label in widgets(at)[key].options if label.startswith(starts))


# ------------------------------------------------------------------ known bugs, each its own case


@pytest.mark.parametrize(
    "where",
    [pytest.param(w, marks=pytest.mark.xfail(strict=True, reason=why)) for w, why in KNOWN.items()]
    or [pytest.param("", marks=pytest.mark.skip(reason="no known bugs"))],
)
def test_known_bug(where):
    page, context, path, case = parse_where(where)
    walker = Walker(page, context)
    at = walker.open(path)
    stage(widgets(at)[case.widget], case.value)
    walker.run_case(at, path, case)
    assert not walker.report.failures, walker.report.failures


def parse_case(text: str) -> Case:
    if text.startswith("click "):
        return Case(text.removeprefix("click "), "click")
    key, value = text.split("=", 1)
    return Case(key, ast.literal_eval(value))


def parse_where(where: str) -> tuple[Page, dict, tuple[Case, ...], Case]:
    """The page, Compare context, path and case of a Walker.where text: how a reported case is
    rerun."""
    name, steps, case = where.split(" | ")
    context, path = {}, []
    for step in [] if steps == "as opened" else steps.split(" → "):
        if step.startswith("Compare: "):
            c = parse_case(step.removeprefix("Compare: ").removesuffix(" + Run"))
            context[c.widget] = c.value
        else:
            path.append(parse_case(step))
    return PAGES[name], context, tuple(path), parse_case(case)


@pytest.fixture(autouse=True, scope="module")
def error_details():
    """Show an exception's message and stack to the walk (the app's own config hides them from
    visitors)."""
    from streamlit import config

    before = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", SHOW_ERRORS)
    yield
    config.set_option("client.showErrorDetails", before)
