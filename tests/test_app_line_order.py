"""AppTest of the line-order lab (pages/line_order.py): the lines shown are the loops' source, a
moved line runs in both loops and the verdict on screen is lib's for that order, a refused order
says why and runs nothing, the order is bound to the URL; and one short browser test that moves two
lines and sees the verdict change."""

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import lib
from lib.lessons import line_order as lo

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "line_order.py")
DATA = lib.datasets.linear(m=120, n=2, noise=0.1, seed=0)
ITERATIONS = 12
LAG = ["step", "zero_grad", "forward", "loss", "backward", "clip", "scheduler", "validation"]


def page(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params.update({"order_iterations": str(ITERATIONS), **query})
    return at.run()


def config(**changes) -> lib.Config:
    """The Config the page describes with its controls as opened (iterations from the URL)."""
    settings = dict(
        lr=0.05, batch_size=16, iterations=ITERATIONS, model="linear", hidden=4, optimizer="sgd",
        clip_grad_norm=0.5, scheduler="step", scheduler_kwargs={"step_size": 1, "gamma": 0.9},
        val_fraction=0.2, eval_every=1,
    )  # fmt: skip
    return lib.Config(**{**settings, **changes})


def said(at: AppTest) -> dict[str, list[str]]:
    return {
        "error": [e.value for e in at.error],
        "success": [s.value for s in at.success],
        "warning": [w.value for w in at.warning],
        "markdown": [m.value for m in at.markdown],
    }


def torch_lines(at: AppTest) -> list[str]:
    """The torch loop's lines, in the order on screen (the first eight code blocks)."""
    return [block.value for block in at.code][:8]


@pytest.fixture(scope="module")
def opened() -> AppTest:
    return page()


def test_the_page_shows_the_loops_own_lines_in_order_and_the_graph(opened):
    assert not opened.exception
    assert torch_lines(opened) == [lo.line_source("torch", name) for name in lo.ORDER]
    at = page()
    at.toggle(key="order_twins").set_value(True).run()  # each hand twin after its torch line
    hand = [block.value for block in at.code][1:16:2]
    assert hand == [lo.line_source("manual", name) for name in lo.ORDER]
    lab = lo.lab(DATA, config(), lo.ORDER)
    assert said(opened)["success"] == [v.text for v in lab.shown]  # "own", measured
    assert not said(opened)["error"]
    graph = opened.get("graphviz_chart")[0].proto.spec
    assert graph == lib.autograd_graph(*_loss_and_names(config()))


def _loss_and_names(cfg):
    from lib.lessons import autograd_graph as graphs

    loss, net = graphs.step_loss(DATA, cfg)
    return loss, graphs.parameter_names(net, cfg, DATA.n)


def test_moving_zero_grad_down_three_places_stops_every_update(opened):
    at = page()
    for _ in range(3):  # zero_grad: from first to after backward()
        at.button(key="order_down_zero_grad").click().run()
    order = ["forward", "loss", "backward", "zero_grad", "clip", "step", "scheduler", "validation"]
    assert at.query_params["order"] == ",".join(order)
    assert torch_lines(at) == [lo.line_source("torch", name) for name in order]
    errors = said(at)["error"]
    lab = lo.lab(DATA, config(), order)
    assert errors == [v.text for v in lab.shown if v.key != "own"]
    assert "no update ever happens" in errors and "clipping has no effect" in errors
    agreement = next(m for m in said(at)["markdown"] if "agree with each other" in m)
    assert f"**{lab.chosen.result.max_abs_diff:.2g}**" in agreement


def test_a_classic_mistake_and_a_refused_order():
    at = page()
    at.button(key="order_mistake_scheduler.step() before step()").click().run()
    errors = said(at)["error"]
    assert any(e.startswith("the first lr of the schedule is skipped; torch warned: “Detected call")
               for e in errors)  # fmt: skip
    at.button(key="order_mistake_step() before backward()").click().run()
    assert (
        "each step uses the previous batch's gradient (the update lags one step)"
        in said(at)["error"]
    )
    at.selectbox(key="order_optimizer").set_value("adam").run()
    (refusal,) = said(at)["error"]
    with pytest.raises(ValueError) as expected:
        lo.check_order(LAG, config(optimizer="adam"))
    assert refusal.startswith("Nothing ran. In this order optimizer.step() runs while")
    assert str(expected.value)[1:] in refusal
    assert not at.get("arrow_vega_lite_chart")  # nothing ran, so nothing is charted
    assert not at.exception


def test_the_link_sets_the_order_and_a_bad_one_is_named():
    with_grad = [lo.WITH_GRAD if n == "validation" else n for n in lo.ORDER]
    at = page(order=",".join(with_grad))
    assert torch_lines(at)[-1] == lo.line_source("torch", lo.WITH_GRAD)
    assert "validation built a graph of 5 nodes" in said(at)["error"]
    bad = page(order="forward,loss,<b>oops</b>")
    (note,) = said(bad)["warning"]
    assert note.startswith("The link's order `forward,loss,<b>oops</b>` is not an order")
    assert torch_lines(bad) == [lo.line_source("torch", name) for name in lo.ORDER]


@pytest.mark.serial
def test_browser_moving_one_line_changes_the_verdict(tmp_path, page):
    """In a real browser: step() moved below scheduler.step() by its ↓ button, and the verdict on
    screen changes from the loop as written's to the skipped first lr, with torch's warning."""
    from playwright.sync_api import expect
    from serving import LOAD, assert_no_traceback, served_app, settle

    with served_app(tmp_path / "server.log") as (base, _):
        page.goto(f"{base}/line_order?order_iterations={ITERATIONS}", timeout=LOAD)
        settle(page)
        expect(page.get_by_text("This is the loop as written.")).to_have_count(1, timeout=LOAD)
        skipped = page.get_by_text("the first lr of the schedule is skipped; torch warned:")
        expect(skipped).to_have_count(0)
        page.locator(".st-key-order_down_step button").first.click()
        settle(page)
        expect(skipped).to_have_count(1, timeout=LOAD)
        expect(page.get_by_text("This is the loop as written.")).to_have_count(0)
        if os.environ.get("SCREENSHOTS"):
            page.screenshot(path=f"{os.environ['SCREENSHOTS']}/line_order.png", full_page=True)
        assert "order=zero_grad%2Cforward%2Closs%2Cbackward%2Cclip%2Cscheduler%2Cstep" in page.url
        assert_no_traceback(page)
