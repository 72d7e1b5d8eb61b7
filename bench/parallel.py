"""`python -m bench --parallel`: lib.run_parallel against a bare DDP loop on the same workers.

The bare loop is the five lines under DistributedDataParallel in forked gloo workers on 127.0.0.1,
recording nothing; run_parallel's workers also record every step and its hand twin runs in the
parent at the same time. Both are timed inside the workers' training loops (the slowest worker),
start-up apart. The all-reduce's share of a step is measured by the bare loop run once more under
model.no_sync() (no all-reduce at all): 1 - no_sync time / synced time.
"""

from __future__ import annotations

import contextlib
import socket
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import lib
from lib.engine.parallel import run_parallel
from lib.twins.optim import torch_optimizer
from lib.twins.torch_side import make_model, torch_loss

HEADING = "## Data parallel: lib.run_parallel against a bare DDP loop"
TIMEOUT = timedelta(seconds=60)


def case(quick: bool) -> tuple[lib.Dataset, lib.Config]:
    """The benchmark's run: linear data, 2 features, per-worker batch 32."""
    data = lib.datasets.linear(m=1_024, n=2, noise=0.1, seed=0)
    return data, lib.Config(lr=0.01, batch_size=32, iterations=300 if quick else 3_000)


def _bare_worker(rank, workers, port, data, cfg, no_sync, out) -> None:
    torch.set_num_threads(1)
    store = dist.TCPStore("127.0.0.1", port, None, False, timeout=TIMEOUT)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=workers, timeout=TIMEOUT)
    dataset = TensorDataset(
        torch.from_numpy(data.X.copy()), torch.from_numpy(data.y.copy())[:, None]
    )
    sampler = DistributedSampler(dataset, num_replicas=workers, rank=rank, seed=cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler)
    model = DistributedDataParallel(make_model(cfg.layout(data.n), torch.float64))
    optimizer = torch_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.optimizer_kwargs)
    criterion = torch_loss(cfg.loss)
    step, epoch, began = 0, 0, time.perf_counter()
    while step < cfg.iterations:
        sampler.set_epoch(epoch)
        for inputs, labels in loader:
            with model.no_sync() if no_sync else contextlib.nullcontext():
                optimizer.zero_grad()
                loss = criterion(model(inputs), labels)
                loss.backward()
            optimizer.step()
            step += 1
            if step == cfg.iterations:
                break
        epoch += 1
    out.put((rank, time.perf_counter() - began))
    dist.destroy_process_group()


def bare_seconds(data, cfg, workers: int, no_sync: bool = False) -> float:
    """The slowest worker's time in the bare DDP loop."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    store = dist.TCPStore("127.0.0.1", port, None, True, timeout=TIMEOUT, wait_for_workers=False,
                          master_listen_fd=listener.detach())  # fmt: skip
    context = mp.get_context("fork")
    out = context.SimpleQueue()
    args = (workers, port, data, cfg, no_sync, out)
    processes = [context.Process(target=_bare_worker, args=(r, *args)) for r in range(workers)]
    try:
        for process in processes:
            process.start()
        seconds = [out.get()[1] for _ in processes]
    finally:
        for process in processes:
            process.join(10)
            if process.exitcode is None:
                process.kill()
                process.join()
        del store
    return max(seconds)


def measure(quick: bool = False, workers: int = 2, rounds: int | None = None, log=print) -> dict:
    """Fastest round of each contender: run_parallel's steps and start-up, the bare loop's steps,
    the bare loop under no_sync()."""
    data, cfg = case(quick)
    rounds = rounds or (1 if quick else 3)
    best = {
        "lib": float("inf"),
        "startup": float("inf"),
        "bare": float("inf"),
        "no_sync": float("inf"),
    }
    for r in range(rounds):
        result = run_parallel(data, cfg, workers)
        best["lib"] = min(best["lib"], result.step_seconds)
        best["startup"] = min(best["startup"], result.startup_seconds)
        best["bare"] = min(best["bare"], bare_seconds(data, cfg, workers))
        best["no_sync"] = min(best["no_sync"], bare_seconds(data, cfg, workers, no_sync=True))
        log(f"  parallel round {r + 1}/{rounds}: {best}")
    return {**best, "steps": cfg.iterations, "workers": workers, "rounds": rounds}


def section(row: dict, machine: list[str]) -> list[str]:
    """The RESULTS.md section."""
    steps, ms = row["steps"], 1e3 / row["steps"]
    ratio = row["lib"] / row["bare"]
    share = 1 - row["no_sync"] / row["bare"]
    verdict = "within" if ratio <= 1.10 else "above"
    return [
        HEADING,
        "",
        *machine,
        "",
        f"{row['workers']} forked gloo workers on 127.0.0.1, {steps:,} steps of linear data (1,024 "
        "rows, 2 features), per-worker batch 32, SGD; fastest of "
        f"{row['rounds']} rounds, each worker's time in its training loop (the slowest worker).",
        "",
        "| contender | steps (s) | per step (ms) |",
        "|---|---|---|",
        f"| lib.run_parallel (records every step; hand twin in the parent) | {row['lib']:.3f} | "
        f"{row['lib'] * ms:.3f} |",
        f"| bare DDP loop (records nothing) | {row['bare']:.3f} | {row['bare'] * ms:.3f} |",
        f"| bare DDP loop under no_sync() (no all-reduce) | {row['no_sync']:.3f} | "
        f"{row['no_sync'] * ms:.3f} |",
        "",
        f"- ratio run_parallel / bare DDP on the steps: **{ratio:.2f}** ({verdict} the 1.10 "
        "target).",
        f"- the all-reduce's share of a bare DDP step: {share:.0%}.",
        f"- start-up, apart from the steps (fork, process group, DDP): {row['startup']:.2f} s.",
    ]


def write_section(path, lines: list[str]) -> None:
    """Put the section in path in place of an earlier copy of it (up to the next heading), or else
    before the torch / numpy grid, which bench/gap.py keeps last."""
    from .gap import HEADING as GAP

    text = path.read_text() if path.exists() else ""
    section = "\n".join(lines) + "\n"
    if HEADING in text:
        head, rest = text.split(HEADING, 1)
        tail = rest[rest.index("\n## ") + 1 :] if "\n## " in rest else ""
    elif GAP in text:
        head, tail = text[: text.index(GAP)], text[text.index(GAP) :]
    else:
        head, tail = text, ""
    head = head.rstrip("\n") + "\n\n" if head.strip() else ""
    path.write_text(head + section + ("\n" + tail if tail else ""))


def lines(quick: bool) -> list[str]:
    """Measure and return the RESULTS.md section (`python -m bench` and `--parallel`)."""
    from . import timing

    print("parallel: run_parallel against a bare DDP loop, 2 workers ...", flush=True)
    return section(measure(quick), timing.machine())
