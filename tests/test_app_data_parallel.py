"""AppTest of the Data parallel page: a run's checks, the one-process agreement and its failure in
words (padding named), the forgotten set_epoch and an unchanged reshuffle."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from lib.twins.parallel import padded_rows, shard_indices

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/data_parallel.py"
TIMEOUT = 90  # s: torch's import and the workers' start on a shared machine
LOAD = 90_000  # ms: a fresh server's first page imports torch


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def _run(at: AppTest) -> str:
    at.button(key="parallel_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return "\n".join(m.value for m in at.markdown)


def test_a_run_checks_agrees_and_then_pads():
    at = _page()
    assert "Press **Run**" in at.info[0].value
    text = _run(at)  # defaults: 40 rows, 2 workers, per-worker batch 20
    assert text.count("✓") == 5 and "✗" not in text  # 3 checks, one process, set_epoch
    assert "this run equals the one-process full-batch `lib.run`" in text
    assert len(at.get("vega_lite_chart")) == 4  # the shards, loss, weights, difference
    assert "DistributedDataParallel(net)" in at.code[0].value  # the source that ran
    at.number_input(key="parallel_rows").set_value(41)
    at.number_input(key="parallel_batch").set_value(21).run()  # shards of 21: full again
    assert "Press **Run**" in at.info[0].value  # the old run's sentences are not shown
    text = _run(at)
    [(rank, row)] = padded_rows(41, 2, 0, 0)  # epoch 0's padding, step 0's batch
    assert "differs from the one-process full-batch `lib.run` by up to" in text
    assert f"epoch 0: row {row} on worker {rank}" in text
    assert f"this batch holds row {row} on worker {rank}" in text


def test_forgotten_set_epoch_and_small_batches():
    at = _page()
    at.checkbox(key="parallel_set_epoch").uncheck()
    at.number_input(key="parallel_batch").set_value(5)
    at.number_input(key="parallel_iters").set_value(20)
    at.selectbox(key="parallel_optimizer").select("adam")
    text = _run(at)
    assert "⚠ `sampler.set_epoch(epoch)` is not called" in text
    assert "2 x 5 = 10 rows, DDP's effective batch" in text
    assert text.count("✓") == 3
    # set_epoch is called, and the reshuffle comes out the same: 2 rows, seed 2; the page says so
    assert (shard_indices(2, 2, 0, 2, 0) == shard_indices(2, 2, 0, 2, 1)).all()
    at.checkbox(key="parallel_set_epoch").check()
    at.number_input(key="parallel_rows").set_value(2)
    at.number_input(key="parallel_seed").set_value(2)
    at.number_input(key="parallel_batch").set_value(1)
    assert "✓ `set_epoch(epoch)` reshuffles" not in (text := _run(at))
    assert "yet worker 0's shard came out in the same order" in text


def test_in_a_browser_the_servers_tree_stays_in_budget_and_keeps_no_worker(page, tmp_path):
    """A real server: a 2-worker run from the page keeps the server and its workers within the
    deployment's 600 MB (sum of PSS), and leaves no worker behind (by pid)."""
    import time

    import psutil
    from playwright.sync_api import expect
    from serving import served_app

    from lib.engine.parallel import tree_pss_mb

    with served_app(tmp_path / "server.log") as (base, server):
        page.goto(f"{base}/data_parallel", timeout=LOAD)
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text("to train with these settings")).to_be_visible(timeout=LOAD)
        iterations = main.get_by_label("Iterations")
        iterations.fill("500")
        iterations.press("Enter")
        page.wait_for_timeout(500)
        main.get_by_role("button", name="Run", exact=True).click()
        done = main.get_by_text("The hand twin and DDP agree")
        peak, workers, deadline = 0.0, set(), time.monotonic() + 60
        while not done.count() and time.monotonic() < deadline:
            peak = max(peak, tree_pss_mb(server.pid))
            workers.update(c.pid for c in psutil.Process(server.pid).children(recursive=True))
            time.sleep(0.1)
        expect(done).to_be_visible(timeout=5_000)
        assert len(workers) >= 2  # the run's workers were seen
        assert 0 < peak < 600, f"server tree PSS peaked at {peak:.0f} MB"
        assert not any(psutil.pid_exists(pid) for pid in workers)
        print(f"server tree PSS peak during the run: {peak:.0f} MB")
