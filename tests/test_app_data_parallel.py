"""AppTest of the Data parallel page: a run's checks, the one-process agreement and its failure in
words (padding named), the forgotten set_epoch and an unchanged reshuffle."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from lib.twins.parallel import padded_rows, shard_indices

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "pages/data_parallel.py"
TIMEOUT = 90  # s: torch's import and the workers' start on a shared machine


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
