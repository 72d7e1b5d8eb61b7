"""The hand twin of data-parallel training: DistributedSampler's shards and DDP's all-reduce.

Each worker's gradient is manual_loop's forward and backward pass on that worker's shard alone;
the all-reduce adds the workers' gradients, and DDP divides the sum by the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from .layout import Layout
from .manual import clip_grad_norm_, manual_loop
from .optim import manual_optimizer
from .schedules import manual_scheduler


def sampler_order(m: int, workers: int, seed: int, epoch: int) -> np.ndarray:
    """DistributedSampler's padded order of one epoch, every worker's samples interleaved.

    The shuffle is torch.randperm seeded with seed + epoch, as the sampler draws it; the order is
    then padded by repeating its first samples until every worker gets ceil(m / workers) of them.
    Worker r takes positions r, r + workers, r + 2 workers, ...
    """
    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    order = torch.randperm(m, generator=generator).numpy()
    per_worker = -(-m // workers)
    return np.resize(order, per_worker * workers)  # np.resize repeats from the start


def shard_indices(m: int, workers: int, rank: int, seed: int, epoch: int) -> np.ndarray:
    """The rows DistributedSampler(shuffle=True, seed=seed) gives worker `rank` in `epoch`."""
    return sampler_order(m, workers, seed, epoch)[rank::workers]


def padded_rows(m: int, workers: int, seed: int, epoch: int) -> list[tuple[int, int]]:
    """The samples the sampler repeats to even the shards, as (worker, row), in padding order."""
    order = sampler_order(m, workers, seed, epoch)
    return [(position % workers, int(order[position])) for position in range(m, len(order))]


def worker_batches(
    m: int, workers: int, batch_size: int, seed: int, *, set_epoch: bool = True,
    drop_last: bool = False,
) -> Iterator[list[np.ndarray]]:  # fmt: skip
    """Endless batches of every worker at once: each DataLoader(batch_size) over its shard.

    Every shard has the same length, so at every step all workers hold batches of the same size.
    Without set_epoch the sampler's epoch stays 0: every epoch repeats the first one's order.
    """
    per_worker = -(-m // workers)
    stop = per_worker - per_worker % batch_size if drop_last else per_worker
    if stop == 0:
        raise ValueError(
            f"drop_last with batch_size {batch_size:,} > the {per_worker:,} rows of each worker's "
            "shard leaves no batch"
        )
    epoch = 0
    while True:
        order = sampler_order(m, workers, seed, epoch if set_epoch else 0)
        shards = [order[rank::workers] for rank in range(workers)]
        for start in range(0, stop, batch_size):
            yield [shard[start : start + batch_size] for shard in shards]
        epoch += 1


def step_rows(
    m: int, workers: int, batch_size: int, seed: int, index: int, *, set_epoch: bool = True,
    drop_last: bool = False,
) -> tuple[int, list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """Batch `index` of worker_batches: its epoch, each worker's rows, and which are padding."""
    per_worker = -(-m // workers)
    stop = per_worker - per_worker % batch_size if drop_last else per_worker
    epoch, k = divmod(index, -(-stop // batch_size))  # batches per epoch: ceil(stop / batch_size)
    order = sampler_order(m, workers, seed, epoch if set_epoch else 0)
    positions = np.arange(len(order)).reshape(per_worker, workers).T  # [rank, j]: the j-th of rank
    taken = positions[:, k * batch_size : min(k * batch_size + batch_size, stop)]
    return epoch, [order[p] for p in taken], [p >= m for p in taken]


def shard_gradient(
    inputs: np.ndarray, labels: np.ndarray, weights: np.ndarray, layout: Layout, loss_name: str
) -> tuple[float, np.ndarray]:
    """One worker's loss and gradient on its batch: manual_loop's forward and backward pass."""
    loss, _, gradient = next(manual_loop([(inputs, labels)], weights, 1.0, layout=layout,
                                         loss_name=loss_name))  # fmt: skip
    return float(loss), gradient


def manual_ddp_loop(
    inputs: np.ndarray, labels: np.ndarray, init: np.ndarray, lr: float, *, layout: Layout,
    workers: int, batch_size: int, seed: int, loss_name: str = "mse", set_epoch: bool = True,
    drop_last: bool = False, zero_grad: bool = True, optimizer_name: str = "sgd",
    optimizer_kwargs: Mapping[str, Any] | None = None, scheduler_name: str | None = None,
    scheduler_kwargs: Mapping[str, Any] | None = None, clip_grad_norm: float | None = None,
    accumulate: int = 1,
) -> Iterator[tuple[float, np.ndarray, np.ndarray, np.ndarray, float]]:  # fmt: skip
    """Data-parallel gradient descent by hand, yielding after each optimizer step: (the workers'
    mean loss, weights, the all-reduced gradient before clipping, each worker's gradient, lr)."""
    # Model: the weights, started from the shared initial weights (DDP broadcasts rank 0's).
    weights = np.array(init, dtype=np.float64)
    optimizer = manual_optimizer(optimizer_name, weights, lr, optimizer_kwargs)
    if scheduler_name is not None:
        scheduler = manual_scheduler(scheduler_name, optimizer, scheduler_kwargs)
    grad = np.zeros_like(weights)
    batches = worker_batches(len(labels), workers, batch_size, seed, set_epoch=set_epoch,
                             drop_last=drop_last)  # fmt: skip
    for i, shards in enumerate(batches):
        # Reset each worker's gradient, once per optimizer step.
        if i % accumulate == 0:
            local = np.zeros((workers, len(weights)))  # what each worker adds up before syncing
            losses = np.zeros(workers)
            if zero_grad:
                grad = np.zeros_like(weights)
        # Each worker's forward pass, loss and backward pass, on its own batch.
        for rank, rows in enumerate(shards):
            loss, gradient = shard_gradient(inputs[rows], labels[rows], weights, layout, loss_name)
            local[rank] += gradient / accumulate if accumulate > 1 else gradient
            losses[rank] += loss / accumulate if accumulate > 1 else loss
        if (i + 1) % accumulate:  # inside no_sync(): no all-reduce yet
            continue
        # The all-reduce: add the workers' gradients; DDP divides the sum by the number of workers.
        grad += local.sum(axis=0) / workers
        reduced = grad.copy()
        # Update.
        if clip_grad_norm is not None:  # scales grad down, in place, to length max_norm
            clip_grad_norm_(grad, clip_grad_norm)  # the norm is the same for -grad
        step_lr = optimizer.lr  # the lr this step uses
        optimizer.step(grad)
        if scheduler_name is not None:
            scheduler.step()
        yield float(losses.mean()), weights, reduced, local, step_lr
