"""The data-parallel run: the torch loop in real worker processes under DistributedDataParallel,
its hand twin (lib.twins.parallel) in this process, compared step by step.

Workers are forked from this process (which has imported torch already): a forked worker shares
torch's pages with its parent and costs about a third of the memory of a spawned one. They talk
over gloo on 127.0.0.1 only, through a store this process hosts on a free port; every run creates
and destroys its process group, and every worker is killed when the run ends, however it ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import mmap
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from ..twins.optim import torch_optimizer
from ..twins.parallel import manual_ddp_loop, padded_rows, sampler_order, shard_indices
from ..twins.schedules import torch_scheduler
from ..twins.torch_side import make_model, share_one_vector, torch_loss
from .config import Config
from .data import Dataset, initial_weights, weight_names
from .lockstep import (
    History,
    Result,
    _check_options,
    check_run,
    ends_run,
    row_norms,
    training_arrays,
)

MIN_WORKERS, MAX_WORKERS = 2, 4
MAX_VALUES = 2_000_000  # iterations x weights: each worker's record is 16 MB at most
STARTUP_TIMEOUT = 60.0  # seconds for the workers to start and join the process group
# MB of PSS a worker forked from a process that has imported torch adds, at most: about 60 alone;
# the tree of parent and workers, which share torch's pages, grows less (tests/test_parallel.py)
WORKER_MB = 60.0
GROUP_TIMEOUT_SECONDS = 60  # a collective that waits longer than this fails


@dataclass(frozen=True, eq=False)
class ParallelResult(Result):
    """lib.run's Result of a data-parallel run, and what the workers did at each step."""

    workers: int = 2
    set_epoch: bool = True
    # (steps, workers, weights): each worker's gradient on its own batch, before the all-reduce
    worker_gradients: np.ndarray = field(default=None, repr=False)
    # (steps, weights): the all-reduced gradient DDP applies, by hand and as torch's .grad holds it
    reduced: np.ndarray = field(default=None, repr=False)
    torch_reduced: np.ndarray = field(default=None, repr=False)
    worker_loss: np.ndarray = field(default=None, repr=False)  # (steps, workers), torch's
    replica_diff: float = 0.0  # max |weights of worker r - weights of worker 0|, every step
    startup_seconds: float = 0.0  # from starting the processes to every worker's DDP model built
    step_seconds: float = 0.0  # the slowest worker's time in its training loop


def ddp_train(rank: int, job: _Job, record: _Record) -> None:
    """One worker's training loop: its shard of the data, its replica of the model under DDP."""
    cfg = job.cfg
    dataset = TensorDataset(torch.from_numpy(job.X), torch.from_numpy(job.y)[:, None])
    # Every worker sees a different 1/workers of the data, reshuffled each epoch.
    sampler = DistributedSampler(dataset, num_replicas=job.workers, rank=rank, seed=cfg.seed)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=cfg.drop_last
    )
    # Model: the same initial weights in every worker; DDP all-reduces the gradients in backward().
    net = make_model(cfg.layout(job.X.shape[1]), torch.float64)
    weights = share_one_vector(net, job.init, torch.float64)
    model = DistributedDataParallel(net)
    optimizer = torch_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.optimizer_kwargs)
    if cfg.scheduler is not None:
        scheduler = torch_scheduler(cfg.scheduler, optimizer, cfg.scheduler_kwargs)
    criterion = torch_loss(cfg.loss)
    record.ready(rank)
    step, i, epoch, running = 0, 0, 0, True  # optimizer steps, micro-batches, epochs
    while running:
        if job.set_epoch:
            sampler.set_epoch(epoch)  # without it every epoch repeats epoch 0's order
        for inputs, labels in loader:
            last = (i + 1) % cfg.accumulate == 0  # the optimizer step's last micro-batch
            # Reset the gradient.
            if cfg.zero_grad and i % cfg.accumulate == 0:
                optimizer.zero_grad()
            # no_sync(): accumulate locally; the last micro-batch's backward() all-reduces.
            with contextlib.nullcontext() if last else model.no_sync():
                # Forward pass.
                outputs = model(inputs)
                # Loss.
                loss = criterion(outputs, labels)
                if cfg.accumulate > 1:  # each micro-batch's share of the step's loss
                    loss = loss / cfg.accumulate
                # Backward pass: DDP adds every worker's gradient and divides by their number.
                loss.backward()
            record.add_loss(rank, step, loss.item())
            i += 1
            if not last:
                continue
            record.gradient(rank, step, model)
            # Update.
            if cfg.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
            record.lr(rank, step, optimizer.param_groups[0]["lr"])
            optimizer.step()
            if cfg.scheduler is not None:
                scheduler.step()
            step += 1
            # Every worker holds the same weights: they all stop at the same step.
            running = record.step(rank, step, weights.numpy()) and step < cfg.iterations
            if not running:
                break
        epoch += 1


@dataclass
class _Job:
    """What every worker needs: the training rows, the Config, the store's port."""

    X: np.ndarray
    y: np.ndarray
    init: np.ndarray
    cfg: Config
    workers: int
    port: int
    set_epoch: bool


class _Record:
    """The arrays the workers write each step into, in memory shared with this process."""

    def __init__(self, workers: int, iterations: int, n_params: int) -> None:
        shapes = {
            "done": (workers,),  # optimizer steps each worker has finished
            "ready_at": (workers,),  # time.time() when the worker's DDP model was built, else 0
            "seconds": (workers,),  # each worker's time in its training loop
            "losses": (iterations, workers),
            "weights": (workers, iterations + 1, n_params),
            "grads": (iterations, n_params),  # rank 0's .grad after the all-reduce, before clipping
            "lrs": (iterations,),
        }
        size = sum(8 * math.prod(shape) for shape in shapes.values())
        self.buffer = mmap.mmap(-1, size)  # anonymous and shared: forked workers write into it
        offset = 0
        for name, shape in shapes.items():
            count = math.prod(shape)
            setattr(
                self, name, np.frombuffer(self.buffer, np.float64, count, offset).reshape(shape)
            )
            offset += 8 * count
        self.began = 0.0  # perf_counter() in the worker when its loop began

    def ready(self, rank: int) -> None:
        self.began = time.perf_counter()
        self.ready_at[rank] = time.time()

    def add_loss(self, rank: int, step: int, loss: float) -> None:
        self.losses[step, rank] += loss

    def gradient(self, rank: int, step: int, model: nn.Module) -> None:
        if rank == 0:
            self.grads[step] = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).numpy()

    def lr(self, rank: int, step: int, lr: float) -> None:
        if rank == 0:
            self.lrs[step] = lr

    def step(self, rank: int, step: int, weights: np.ndarray) -> bool:
        """Store the weights after `step` steps; False when they are not finite (the run ends)."""
        self.weights[rank, step] = weights
        self.seconds[rank] = time.perf_counter() - self.began
        self.done[rank] = step  # written last: the steps up to it are complete
        return bool(np.isfinite(weights).all())


def _worker_main(rank: int, job: _Job, record: _Record, errors) -> None:
    """A worker process: one thread, 127.0.0.1 only, its process group made and destroyed."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the server's handlers, inherited by fork
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):  # Linux: die with the parent
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    torch.set_num_threads(1)
    loopback = [name for _, name in socket.if_nameindex() if name in ("lo", "lo0")]
    if loopback:
        os.environ["GLOO_SOCKET_IFNAME"] = loopback[0]  # gloo's sockets on the loopback device
    try:
        timeout = timedelta(seconds=GROUP_TIMEOUT_SECONDS)
        store = dist.TCPStore("127.0.0.1", job.port, None, False, timeout=timeout)
        dist.init_process_group(
            "gloo", store=store, rank=rank, world_size=job.workers, timeout=timeout
        )
        ddp_train(rank, job, record)
        dist.destroy_process_group()
    except BaseException as err:  # told to the parent first, which then ends the other workers
        errors.put((rank, f"{type(err).__name__}: {err}", traceback.format_exc()))
        os._exit(1)


def check_parallel(data: Dataset, cfg: Config, workers: int) -> None:
    """The checks of a data-parallel run; a ValueError in words."""
    check_run(data, cfg)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
        raise ValueError(f"workers must be a whole number from 2 to 4; got {workers!r}")
    if not MIN_WORKERS <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be a whole number from 2 to 4; got {workers}")
    if cfg.val_fraction > 0:
        raise ValueError(
            "run_parallel trains on every row and holds none out: validation under DDP is another "
            "loop on one rank, which this twin does not run; use val_fraction=0"
        )
    if cfg.manual_loss is not None and cfg.manual_loss != cfg.loss:
        raise ValueError(
            "run_parallel twins DDP with the same loss on both sides: leave manual_loss unset"
        )
    if cfg.torch_dtype != "float64":
        raise ValueError(
            "run_parallel compares the loops to 1e-10, which needs float64: "
            "use torch_dtype='float64'"
        )
    per_worker = -(-data.m // workers)
    if cfg.drop_last and cfg.batch_size > per_worker:
        raise ValueError(
            f"drop_last with batch_size {cfg.batch_size:,} > the {per_worker:,} rows of each of "
            f"the {workers} workers' shards leaves no batch: use a batch_size of at most "
            f"{per_worker:,}, or drop_last=False"
        )
    n_params = cfg.n_params(data.n)
    if cfg.iterations * n_params * workers > MAX_VALUES:
        most = MAX_VALUES // (n_params * workers)
        raise ValueError(
            f"iterations x weights x workers is capped at {MAX_VALUES:,} to bound memory: with "
            f"{n_params:,} weights and {workers} workers, at most {most:,} iterations"
        )


def tree_pss_mb(pid: int | None = None) -> float:
    """The proportional set size of a process and all its descendants, in MB (Linux; else nan)."""
    pid = os.getpid() if pid is None else pid
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as rollup:
                total += sum(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
        except OSError:
            if current == pid:
                return math.nan
    return total / 1024


def check_memory(workers: int, budget_mb: float) -> None:
    """Refuse, in words, a run whose workers would take this process tree over budget_mb."""
    now = tree_pss_mb()
    if math.isnan(now):
        return
    need = now + workers * WORKER_MB
    if need > budget_mb:
        fits = int((budget_mb - now) // WORKER_MB)
        advice = f"at most {fits} workers fit now" if fits >= MIN_WORKERS else "no run fits now"
        raise ValueError(
            f"{workers} workers need about {workers * WORKER_MB:.0f} MB beside the "
            f"{now:.0f} MB this server holds, over its {budget_mb:.0f} MB budget: {advice}"
        )


class _Workers:
    """The worker processes of one run and the store they meet at; leaving kills what still runs."""

    def __init__(self, job: _Job, record: _Record) -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))  # a free port, on the loopback interface only
        listener.listen(64)
        job.port = listener.getsockname()[1]
        self.store = dist.TCPStore(
            "127.0.0.1", job.port, None, True, wait_for_workers=False,
            timeout=timedelta(seconds=GROUP_TIMEOUT_SECONDS),
            master_listen_fd=listener.detach(),  # the store owns the socket from now on
        )  # fmt: skip
        context = mp.get_context("fork")
        self.errors = context.SimpleQueue()
        self.processes = [
            context.Process(target=_worker_main, args=(rank, job, record, self.errors), daemon=True)
            for rank in range(job.workers)
        ]

    def __enter__(self) -> _Workers:
        for process in self.processes:
            process.start()
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                process.kill()
        for process in self.processes:
            if process.pid is not None:
                process.join(10)
                process.close()
        self.errors.close()
        del self.store

    @property
    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [process.pid for process in self.processes]

    def running(self) -> bool:
        """True while a worker is still running."""
        return any(process.exitcode is None for process in self.processes)

    def failure(self) -> str:
        """A failed worker's error in words ("" while none has failed)."""
        if all(process.exitcode in (None, 0) for process in self.processes):
            return ""
        if not self.errors.empty():
            rank, message, _ = self.errors.get()
            return f"worker {rank} failed: {message}"
        codes = [p.exitcode for p in self.processes if p.exitcode not in (None, 0)]
        return f"a worker ended with exit code {codes[0]} before the run finished"


class _Hand:
    """The hand twin of the run, stepped in this process as far as the workers have got."""

    def __init__(self, inputs, labels, init, cfg: Config, workers: int, set_epoch: bool) -> None:
        n, iterations = len(init), cfg.iterations
        self.loop = manual_ddp_loop(
            inputs, labels, init, cfg.lr, layout=cfg.layout(inputs.shape[1] - _ones(cfg)),
            workers=workers, batch_size=cfg.batch_size, seed=cfg.seed, loss_name=cfg.loss,
            set_epoch=set_epoch, drop_last=cfg.drop_last, zero_grad=cfg.zero_grad,
            optimizer_name=cfg.optimizer, optimizer_kwargs=cfg.optimizer_kwargs,
            scheduler_name=cfg.scheduler, scheduler_kwargs=cfg.scheduler_kwargs,
            clip_grad_norm=cfg.clip_grad_norm, accumulate=cfg.accumulate,
        )  # fmt: skip
        self.loss, self.lr = np.empty(iterations), np.empty(iterations)
        self.weights = np.empty((iterations + 1, n))
        self.weights[0] = init
        self.grads, self.local = np.empty((iterations, n)), np.empty((iterations, workers, n))
        self.steps, self.seconds, self.set_epoch = 0, 0.0, set_epoch

    def advance(self, upto: int) -> None:
        """Take the hand loop's steps up to `upto`."""
        t0 = time.perf_counter()
        with np.errstate(all="ignore"):
            for t in range(self.steps, upto):
                loss, weights, reduced, local, lr = next(self.loop)
                self.loss[t], self.weights[t + 1], self.grads[t] = loss, weights, reduced
                self.local[t], self.lr[t] = local, lr
        self.steps = max(self.steps, upto)
        self.seconds += time.perf_counter() - t0


def _ones(cfg: Config) -> int:
    """1 where the hand loop's inputs carry a column of ones for the bias, else 0."""
    return int(cfg.bias and cfg.model != "mlp")


def run_parallel(
    data: Dataset, cfg: Config, workers: int = 2, *, set_epoch: bool = True,
    progress: Callable[[Result], object] | None = None, progress_every: float = 0.25,
    time_limit: float | None = None, memory_budget_mb: float | None = None,
) -> ParallelResult:  # fmt: skip
    """Train with DistributedDataParallel in `workers` processes and with its hand twin here.

    cfg.batch_size is each worker's batch, as in DDP: a step sees workers x batch_size rows.
    set_epoch=False forgets sampler.set_epoch(epoch), so that every epoch repeats the first order.
    progress, progress_every and time_limit work as lib.run's; memory_budget_mb, if given, refuses
    a run whose workers would take this process and its children over it.
    """
    check_parallel(data, cfg, workers)
    _check_options(progress, progress_every, time_limit)
    if memory_budget_mb is not None:
        check_memory(workers, memory_budget_mb)
    init = initial_weights(data, cfg)
    inputs, labels, X, _ = training_arrays(data, cfg)
    record = _Record(workers, cfg.iterations, len(init))
    record.weights[:, 0] = init
    hand = _Hand(inputs, labels, init, cfg, workers, bool(set_epoch))
    job = _Job(np.ascontiguousarray(X), labels, init, cfg, workers, 0, bool(set_epoch))
    started, wall_started = time.perf_counter(), time.time()
    stopped, error = None, ""

    def partial(steps: int, stopped: str | None) -> ParallelResult:
        return _result(data, cfg, record, hand, steps, stopped, wall_started)

    # The hand twin needs nothing from the workers: it takes its steps when a report is due and
    # at the end, so that it does not compete with the workers for the cores while they run.
    with _Workers(job, record) as processes:  # leaving the block kills every worker left
        last_report = started
        while not (error := processes.failure()) and processes.running():
            now = time.perf_counter()
            if not record.ready_at.all() and now - started > STARTUP_TIMEOUT:
                error = f"the workers did not join their process group within {STARTUP_TIMEOUT:g} s"
                break
            if time_limit is not None and now - started >= time_limit:
                stopped = "time limit"
                break
            if progress is not None and now - last_report >= progress_every:
                last_report = now
                hand.advance(int(record.done.min()))
                if progress(partial(hand.steps, None)) is True:
                    stopped = "stopped"
                    break
            time.sleep(0.005)
    if error:
        raise RuntimeError(f"The data-parallel run failed: {error}")
    steps = int(record.done.min())
    hand.advance(steps)
    return partial(steps, stopped)


def _result(data, cfg, record, hand, steps, stopped, wall_started) -> ParallelResult:
    """The ParallelResult of the first `steps` steps, cut at the first step that is not finite."""
    loss_t = record.losses[:steps].mean(axis=1)
    w_m, w_t = hand.weights[: steps + 1], record.weights[0, : steps + 1]
    bad = ends_run(hand.loss[:steps], loss_t, w_m[1:], w_t[1:], hand.grads[:steps],
                   record.grads[:steps])  # fmt: skip
    diverged_at, divergence = None, ""
    if bad.any():
        diverged_at = int(np.argmax(bad))
        steps, stopped = diverged_at + 1, "diverged"
        divergence = "a loss, weight or gradient became non-finite"
    layout = cfg.layout(data.n)
    histories = []
    for loss, weights, grads, lr, seconds in (
        (hand.loss, hand.weights, hand.grads, hand.lr, hand.seconds),
        (loss_t, record.weights[0], record.grads, record.lrs, float(record.seconds.max())),
    ):
        norms = row_norms(np.array(grads[:steps]))
        clipped = np.zeros(steps, dtype=bool)
        if cfg.clip_grad_norm is not None:
            clipped = cfg.clip_grad_norm / (norms + 1e-6) < 1.0
        histories.append(
            History(
                np.array(loss[:steps]),
                np.array(weights[: steps + 1]),
                norms,
                seconds,
                layout.starts,
                None,
                np.array(lr[:steps]),
                clipped,
            )
        )
    with np.errstate(all="ignore"):
        step_diff = np.abs(w_m[: steps + 1] - w_t[: steps + 1]).max(axis=1)
        replicas = np.abs(record.weights[:, : steps + 1] - w_t[None, : steps + 1])
    ready = record.ready_at
    return ParallelResult(
        *histories, cfg, tuple(weight_names(data, cfg)), diverged_at, stopped, divergence,
        step_diff, np.arange(len(w_m[0])), tuple(name for name, _ in layout.tensors),
        workers=record.done.shape[0], set_epoch=hand.set_epoch,
        worker_gradients=np.array(hand.local[:steps]), reduced=np.array(hand.grads[:steps]),
        torch_reduced=np.array(record.grads[:steps]),
        worker_loss=np.array(record.losses[:steps]),
        replica_diff=float(np.nanmax(replicas)) if replicas.size else 0.0,
        startup_seconds=float(ready.max() - wall_started) if ready.all() else math.nan,
        step_seconds=float(record.seconds.max()),
    )  # fmt: skip


def torchrun_main(data: Dataset, cfg: Config, set_epoch: bool = True) -> dict | None:
    """What a torchrun script runs in each of its processes: the DDP loop, and on rank 0 the hand
    twin of the same steps. Returns rank 0's final weights of both loops (None on the others).

    torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, which init_process_group reads.
    """
    dist.init_process_group("gloo")
    rank, workers = dist.get_rank(), dist.get_world_size()
    init = initial_weights(data, cfg)
    inputs, labels, X, _ = training_arrays(data, cfg)
    record = _Record(workers, cfg.iterations, len(init))
    try:
        job = _Job(np.ascontiguousarray(X), labels, init, cfg, workers, 0, set_epoch)
        ddp_train(rank, job, record)
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return None
    steps = int(record.done[0])
    hand = _Hand(inputs, labels, init, cfg, workers, set_epoch)
    hand.advance(steps)
    return {"manual": hand.weights[steps].tolist(), "torch": record.weights[0, steps].tolist()}


# ---- The page's sentences on a run, each with the check that decides it ----

AGREE = 1e-10  # the twins' tolerance, and the one-process agreement's


def _steps(n: int) -> str:
    return f"{n:,} step" + ("" if n == 1 else "s")


def _relative(diff: float, *values: np.ndarray) -> float:
    """diff / max(1, the largest finite |value|): a difference measured against the numbers'
    size, as the Compare page says it (near a divergence the weights reach 1e100 and more)."""
    finite = [np.abs(v[np.isfinite(v)]).max() for v in values if np.isfinite(v).any()]
    return diff / max(1.0, *finite)


def checks(result: ParallelResult) -> list[tuple[bool, str]]:
    """The run's measured checks, as (passed, sentence); each sentence is true either way."""
    workers, steps = result.workers, result.steps
    mean = result.worker_gradients.sum(axis=1) / workers
    with np.errstate(all="ignore"):
        gaps = np.abs(result.torch_reduced - mean)
    reduce_diff = float(gaps[np.isfinite(gaps)].max()) if np.isfinite(gaps).any() else 0.0
    reduce_rel = _relative(reduce_diff, mean, result.torch_reduced)
    twins = result.max_abs_diff
    twins_rel = _relative(twins, result.manual.weights, result.torch.weights)
    return [
        (
            twins_rel < AGREE,
            f"The hand twin and DDP {'agree' if twins_rel < AGREE else 'part'}: the largest "
            f"|manual − torch| over every weight at every one of the {_steps(steps)} is "
            f"{twins:.3g} ({twins_rel:.3g} relative to the largest |weight|, or to 1).",
        ),
        (
            reduce_rel < AGREE,
            f"torch's `.grad` after `backward()` and the sum of the {workers} workers' gradients "
            f"divided by {workers} differ by at most {reduce_diff:.3g} ({reduce_rel:.3g} relative "
            "to the largest |gradient|, or to 1).",
        ),
        (
            result.replica_diff == 0,
            "The workers' weights after each step differ from worker 0's by at most "
            f"{result.replica_diff:.3g}.",
        ),
    ]


def one_process_reasons(m: int, result: ParallelResult) -> list[str]:
    """Why a run with full shards moves otherwise than one process on all m rows, in words."""
    cfg, workers, seed = result.config, result.workers, result.config.seed
    reasons, per = [], -(-m // workers)
    if per * workers != m:
        # with full shards every step is an epoch; without set_epoch every epoch is epoch 0's
        epochs = min(3, result.steps) if result.set_epoch else 1
        named = "; ".join(
            ("every epoch" if not result.set_epoch else f"epoch {e}")
            + ": "
            + ", ".join(f"row {row} on worker {r}" for r, row in padded_rows(m, workers, seed, e))
            for e in range(epochs)
        )
        more = "; ..." if result.set_epoch and result.steps > epochs else ""
        reasons.append(
            f"{m} rows do not split evenly over {workers} workers: DistributedSampler pads each "
            f"epoch to {per * workers} by repeating {per * workers - m} sample(s) ({named}{more}), "
            "so DDP's mean counts them more than once"
        )
    if cfg.loss == "sse":
        reasons.append(
            f"with loss sse each worker's gradient is a sum over its rows, and DDP's division by "
            f"{workers} makes every step 1/{workers} of the one-process step"
        )
    return reasons


def one_process_text(m: int, result: ParallelResult, one: Result | None) -> str:
    """The agreement with one process on all m rows (`one`: lib.run with batch_size m), or why
    there is none to compare: each worker's batch is smaller than its shard (`one` is None)."""
    cfg, workers = result.config, result.workers
    per = -(-m // workers)
    if one is None:
        return (
            f"Each worker's batch of {cfg.batch_size} is less than its shard of {per} rows: a "
            f"step sees {workers} x {cfg.batch_size} = {workers * cfg.batch_size} rows, DDP's "
            "effective batch. Make the per-worker batch at least the shard to compare with one "
            "process on every row."
        )
    steps = min(result.steps, one.steps)
    diff = float(np.abs(result.torch.weights[: steps + 1] - one.torch.weights[: steps + 1]).max())
    if diff < AGREE:
        return f"✓ {_why_equal(m, result)}, and this run equals the one-process full-batch " + (
            f"`lib.run` to {diff:.3g} over {_steps(steps)}."
        )
    reasons = one_process_reasons(m, result)
    return (
        f"This run differs from the one-process full-batch `lib.run` by up to {diff:.3g} (the "
        f"largest weight difference over {_steps(steps)})"
        + (": " + "; and ".join(reasons) + "." if reasons else ".")
    )


def _why_equal(m: int, result: ParallelResult) -> str:
    """Why full shards give one process's steps, as this run's numbers have it."""
    workers, seed = result.workers, result.config.seed
    counts = np.bincount(sampler_order(m, workers, seed, 0), minlength=m)
    if result.config.loss == "sse":
        return "Each worker's batch is its whole shard"
    if counts.min() == counts.max() == 1:
        return (
            "Each worker's batch is its whole shard and the rows split evenly: the mean of the "
            f"workers' means is the mean over all {m} rows"
        )
    if counts.min() == counts.max():
        return (
            f"Each worker's batch is its whole shard; DistributedSampler pads {m} rows to "
            f"{m * counts[0]} by repeating every row equally often ({counts[0]} times each), which "
            "leaves the mean unchanged"
        )
    return (
        "Each worker's batch is its whole shard; the samples DistributedSampler repeats to even "
        "the shards happen to move the mean by less than 1e-10"
    )


def epochs_text(m: int, result: ParallelResult) -> str:
    """Worker 0's order in epochs 0 and 1, and whether set_epoch reshuffled it ("" if the run
    never reached epoch 1)."""
    cfg, workers = result.config, result.workers
    per = -(-m // workers)
    if result.steps <= -(-per // cfg.batch_size):  # batches per epoch
        return ""
    first = shard_indices(m, workers, 0, cfg.seed, 0)
    second = shard_indices(m, workers, 0, cfg.seed, 1 if result.set_epoch else 0)

    def rows(order: np.ndarray, shown: int = 12) -> str:
        return ", ".join(map(str, order[:shown])) + (", ..." if len(order) > shown else "")

    orders = f"epoch 0: {rows(first)}; epoch 1: {rows(second)}"
    if not result.set_epoch:
        return (
            f"⚠ `sampler.set_epoch(epoch)` is not called: the sampler shuffles with seed + 0 "
            f"every epoch, so epoch 1 repeats epoch 0's order exactly (worker 0, {orders})."
        )
    if np.array_equal(first, second):
        return (
            f"`set_epoch(epoch)` is called, yet worker 0's shard came out in the same order in "
            f"epoch 1 ({orders}): a new shuffle can come out the same, as it did here."
        )
    return f"✓ `set_epoch(epoch)` reshuffles each epoch (worker 0, {orders})."
