"""run_parallel: DDP in real gloo workers against its hand twin, the sampler, the agreements, the
checks the page shows, and no process left behind (by pid)."""

import dataclasses

import numpy as np
import psutil
import pytest
import torch
from torch.utils.data import DistributedSampler

import lib
from lib.engine import parallel
from lib.engine.parallel import run_parallel
from lib.twins.parallel import padded_rows, shard_indices, worker_batches
from lib.twins.torch_side import make_model, share_one_vector, torch_loss

LOOPBACK = ("127.0.0.1", "::ffff:127.0.0.1")


def _data(m: int = 40, n: int = 2):
    return lib.datasets.linear(m=m, n=n, noise=0.1, seed=0)


def _classes(m: int = 40):
    X = np.random.default_rng(1).normal(size=(m, 2))
    return lib.Dataset(X, (X[:, 0] + 0.3 * X[:, 1] > 0).astype(float))


@pytest.mark.parametrize("m, workers", [(10, 2), (7, 2), (7, 3), (2, 4), (1, 2), (9, 4)])
def test_shards_are_distributed_samplers_own(m, workers):
    for epoch in (0, 1, 3):
        for rank in range(workers):
            sampler = DistributedSampler(range(m), workers, rank, shuffle=True, seed=5)
            sampler.set_epoch(epoch)
            assert shard_indices(m, workers, rank, 5, epoch).tolist() == list(sampler)


def test_padded_rows_are_the_repeated_samples():
    m, workers = 7, 3  # 7 rows over 3 workers: shards of 3, two samples repeated
    padded = padded_rows(m, workers, 0, 0)
    assert len(padded) == 2
    shards = [shard_indices(m, workers, r, 0, 0) for r in range(workers)]
    counts = np.bincount(np.concatenate(shards), minlength=m)
    assert sorted(row for _, row in padded) == sorted(np.flatnonzero(counts == 2).tolist())
    for rank, row in padded:
        assert shards[rank][-1] == row  # the padding is each shard's last sample
    assert padded_rows(8, 2, 0, 0) == []  # an even split repeats nothing


def test_without_set_epoch_every_epoch_repeats_the_first():
    def epochs(set_epoch):  # 8 rows over 2 workers in batches of 4: one batch per epoch
        batches = worker_batches(8, 2, 4, 0, set_epoch=set_epoch)
        return [np.concatenate(next(batches)).tolist() for _ in range(3)]

    forgotten, kept = epochs(False), epochs(True)
    assert forgotten[0] == forgotten[1] == forgotten[2]
    assert kept[0] == forgotten[0] and kept[1] != kept[0]


def test_even_split_full_shards_is_the_one_process_full_batch_run():
    data = _data(40)
    cfg = lib.Config(lr=0.05, batch_size=20, iterations=25)  # 2 workers x 20 = the 40 rows
    result = run_parallel(data, cfg, workers=2)
    one = lib.run(data, cfg.replace(batch_size=data.m))
    assert result.done and result.steps == 25
    assert result.max_abs_diff < 1e-10
    assert np.abs(result.torch.weights - one.torch.weights).max() < 1e-10
    assert np.abs(result.manual.weights - one.manual.weights).max() < 1e-10
    # The all-reduce: torch's .grad after backward() is the hand mean of the workers' gradients.
    mean = result.worker_gradients.sum(axis=1) / 2
    assert np.abs(result.reduced - mean).max() < 1e-12
    assert np.abs(result.torch_reduced - mean).max() < 1e-10
    assert result.replica_diff == 0.0  # every worker holds the same weights
    assert result.startup_seconds > 0 and result.step_seconds > 0


def test_uneven_split_differs_by_its_padding_exactly():
    data = _data(41)  # 41 rows over 2 workers: shards of 21, one row repeated
    cfg = lib.Config(lr=0.05, batch_size=21, iterations=20)
    result = run_parallel(data, cfg, workers=2)
    one = lib.run(data, cfg.replace(batch_size=data.m))
    assert result.max_abs_diff < 1e-10
    assert np.abs(result.torch.weights - one.torch.weights).max() > 1e-6  # the padding moved it
    # ... by exactly the repeated row (another each epoch): every step's gradient is the full
    # batch's with that row counted twice, a mean over 42 rows.
    A, w = data.with_ones(), result.torch.weights
    for t in range(cfg.iterations):  # one batch per epoch: step t is epoch t
        [(_, row)] = padded_rows(41, 2, cfg.seed, t)
        A42, y42 = np.vstack([A, A[row]]), np.append(data.y, data.y[row])
        gradient = -2 / 42 * A42.T @ (y42 - A42 @ w[t])
        assert np.abs(result.torch_reduced[t] - gradient).max() < 1e-12


def test_each_workers_gradient_is_torchs_on_its_shard():
    data = _data(12)
    cfg = lib.Config(lr=0.05, batch_size=3, iterations=1, init="normal")
    result = run_parallel(data, cfg, workers=3)
    shards = next(worker_batches(12, 3, 3, cfg.seed))
    init = lib.initial_weights(data, cfg)
    for rank, rows in enumerate(shards):
        net = make_model(cfg.layout(data.n), torch.float64)
        share_one_vector(net, init, torch.float64)
        X, y = torch.from_numpy(data.X[rows]), torch.from_numpy(data.y[rows])[:, None]
        torch_loss("mse")(net(X), y).backward()
        grad = torch.cat([p.grad.reshape(-1) for p in net.parameters()]).numpy()
        assert np.abs(result.worker_gradients[0, rank] - grad).max() < 1e-12


# The options the page offers, a representative set in few process starts.
CASES = [
    ("linear adagrad, set_epoch forgotten", _data(30), dict(optimizer="adagrad", batch_size=4),
     2, False),
    ("logistic adam, clipping", _classes(30), dict(model="logistic", optimizer="adam",
                                                   clip_grad_norm=0.1, batch_size=5), 3, True),
    ("mlp relu rmsprop, accumulate", _data(24), dict(model="mlp", hidden=4, activation="relu",
                                                     optimizer="rmsprop", accumulate=3,
                                                     batch_size=3, init="normal"), 4, True),
    ("sse adamw cosine, drop_last", _data(23), dict(loss="sse", optimizer="adamw",
                                                    scheduler="cosine", batch_size=5,
                                                    drop_last=True, lr=0.002), 2, True),
    ("mlp bce sgd onecycle, no zero_grad", _classes(21), dict(model="mlp", loss="bce",
                                                              optimizer_kwargs={"momentum": 0.9},
                                                                  scheduler="onecycle",
                                                                  zero_grad=False,
                                                                  batch_size=4), 2, True),
]  # fmt: skip


@pytest.mark.parametrize(
    "name, data, options, workers, set_epoch", CASES, ids=[c[0] for c in CASES]
)
def test_the_twins_agree(name, data, options, workers, set_epoch):
    cfg = lib.Config(**{"lr": 0.05, "iterations": 40, **options})
    result = run_parallel(data, cfg, workers=workers, set_epoch=set_epoch)
    assert result.done, result.message()
    assert result.max_abs_diff < 1e-10
    assert np.abs(result.manual.loss - result.torch.loss).max() < 1e-10
    assert np.abs(result.manual.grad_norm - result.torch.grad_norm).max() < 1e-10
    if cfg.scheduler is not None:
        assert np.abs(result.manual.lr - result.torch.lr).max() < 1e-12
    assert not np.allclose(result.torch.weights[-1], result.torch.weights[0])


def test_set_epoch_changes_the_run():
    data, cfg = _data(16), lib.Config(lr=0.05, batch_size=4, iterations=12)
    kept = run_parallel(data, cfg, set_epoch=True)
    forgotten = run_parallel(data, cfg, set_epoch=False)
    assert forgotten.max_abs_diff < 1e-10 and kept.max_abs_diff < 1e-10
    assert np.abs(kept.torch.weights[-1] - forgotten.torch.weights[-1]).max() > 1e-6


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(workers=1), "workers must be a whole number from 2 to 4"),
        (dict(workers=5), "workers must be a whole number from 2 to 4"),
        (dict(cfg=lib.Config(val_fraction=0.2)), "use val_fraction=0"),
        (dict(cfg=lib.Config(torch_dtype="float32")), "torch_dtype='float64'"),
        (dict(cfg=lib.Config(manual_loss="sse")), "leave manual_loss unset"),
        (dict(cfg=lib.Config(batch_size=30, drop_last=True)), "leaves no batch"),
        (dict(cfg=lib.Config(iterations=999_999)), "at most"),
        (dict(memory_budget_mb=1.0), "over its 1 MB budget"),
    ],
)
def test_refusals_are_in_words(kwargs, words):
    args = {"data": _data(40), "cfg": lib.Config(), "workers": 2, **kwargs}
    before = set(psutil.Process().children(recursive=True))
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        run_parallel(args.pop("data"), args.pop("cfg"), **args)
    assert set(psutil.Process().children(recursive=True)) == before  # nothing was started


def _gone(pids) -> bool:
    return pids and not any(psutil.pid_exists(pid) for pid in pids)


def test_no_worker_outlives_a_run_a_stop_or_a_time_limit():
    seen, sockets, pss = set(), [], []

    def watch(partial):
        for child in psutil.Process().children(recursive=True):
            seen.add(child.pid)
            sockets.extend(c.laddr for c in child.net_connections() if c.status == "LISTEN")
        pss.append(parallel.tree_pss_mb())
        return None

    data, cfg = _data(40), lib.Config(lr=0.01, batch_size=2, iterations=400)
    before = parallel.tree_pss_mb()
    done = run_parallel(data, cfg, progress=watch, progress_every=0.02)
    assert done.done and _gone(seen) and len(seen) == 2
    assert sockets and all(addr.ip in LOOPBACK for addr in sockets)  # gloo binds 127.0.0.1 only
    # Memory: what the two workers add to the tree is within check_memory's estimate per worker.
    # The tree's total against the deployment's 600 MB is the real server's, measured in
    # tests/test_app_data_parallel.py: this process's own size is whatever the tests before it in
    # the same pytest worker imported and kept (597 MB before any worker in one clean-clone run).
    print(f"PSS of the process tree: {before:.0f} MB before, {max(pss):.0f} MB during")
    assert (max(pss) - before) / 2 < parallel.WORKER_MB
    seen.clear()
    stopped = run_parallel(
        data, cfg, progress=lambda r: watch(r) or r.steps > 0, progress_every=0.05
    )
    assert stopped.stopped == "stopped" and 0 < stopped.steps < 1500
    assert stopped.max_abs_diff < 1e-10 and _gone(seen)
    seen.clear()
    timed = run_parallel(data, cfg.replace(iterations=100_000), progress=watch,
                         progress_every=0.05, time_limit=1.0)  # fmt: skip
    assert timed.stopped == "time limit" and timed.steps > 0 and _gone(seen)


def _failing_train(rank, job, record):
    record.ready(rank)
    if rank == 1:
        raise ArithmeticError("a worker's own error")
    torch.distributed.all_reduce(torch.zeros(1))  # rank 0 waits for rank 1, forever


def test_an_error_in_a_worker_ends_the_run_in_words(monkeypatch):
    seen = set()

    def watch(partial):
        seen.update(child.pid for child in psutil.Process().children(recursive=True))

    monkeypatch.setattr(parallel, "ddp_train", _failing_train)  # forked workers inherit it
    with pytest.raises(RuntimeError, match="worker 1 failed: ArithmeticError: a worker's own"):
        run_parallel(_data(), lib.Config(), progress=watch, progress_every=0.0)
    assert _gone(seen)


def test_step_rows_are_the_batches_of_the_run():
    from lib.twins.parallel import step_rows

    for m, workers, b in [(7, 3, 2), (41, 2, 5), (9, 4, 3)]:
        batches = worker_batches(m, workers, b, 2)
        marked = {}  # epoch -> the (worker, row) pairs marked as padding
        for index in range(12):
            epoch, rows, padded = step_rows(m, workers, b, 2, index)
            assert [r.tolist() for r in rows] == [r.tolist() for r in next(batches)]
            for rank, (taken, pad) in enumerate(zip(rows, padded, strict=True)):
                marked.setdefault(epoch, []).extend((rank, int(row)) for row in taken[pad])
        for epoch, pairs in list(marked.items())[:-1]:  # the epochs seen whole
            assert sorted(pairs) == sorted(padded_rows(m, workers, 2, epoch))


def test_each_check_says_when_it_fails():
    result = run_parallel(_data(8), lib.Config(batch_size=2, iterations=3))
    assert [ok for ok, _ in parallel.checks(result)] == [True, True, True]
    broken = dataclasses.replace(
        result,
        step_diff=result.step_diff + 1.0,
        torch_reduced=result.torch_reduced + 1.0,
        replica_diff=0.5,
    )
    verdicts = parallel.checks(broken)
    assert [ok for ok, _ in verdicts] == [False, False, False]
    assert (
        "DDP part" in verdicts[0][1] and "differ from worker 0's by at most 0.5" in verdicts[2][1]
    )
    # the one-process agreement, false: sse divides by the workers (words say so), 8 rows even
    sse = run_parallel(_data(8), lib.Config(loss="sse", batch_size=4, iterations=3, lr=0.01))
    one = lib.run(_data(8), sse.config.replace(batch_size=8))
    text = parallel.one_process_text(8, sse, one)
    assert text.startswith("This run differs") and "1/2 of the one-process step" in text


def test_padding_that_repeats_every_row_equally_leaves_one_process_equal():
    data = _data(2)  # 2 rows over 4 workers: each row twice, the mean unchanged
    result = run_parallel(data, lib.Config(batch_size=1, iterations=5), workers=4)
    one = lib.run(data, result.config.replace(batch_size=2))
    text = parallel.one_process_text(2, result, one)
    assert text.startswith("✓") and "repeating every row equally often (2 times each)" in text
    assert "the rows split evenly" not in text
