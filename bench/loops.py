"""The contenders lib.run is timed against: bare loops that record nothing, and torch + TensorBoard.

Each bare loop does the arithmetic of its lib twin (lib/twins/manual.py, lib/twins/torch_side.py)
on the same batches (lib.batch_indices with the Config's seed) from the same initial weights, and
returns the final weights so tests/test_bench_smoke.py can check that they are like for like with
lib.run.
Both bare loops still compute each step's loss, as their lib twins do, but keep nothing.

Every bare torch loop iterates a DataLoader, `for inputs, labels in loader:` epoch after epoch, as
users write it and as lib's torch loop does, in the same fast form lib uses: a TensorDataset and
a sampler that yields whole batches of indices, with batch_size=None, so one indexing call makes a
batch (batch_size=b would fetch b rows one by one and collate them, several times the cost of a
small model's step). The sampler is lib.engine.data.SharedOrder, the permutation per epoch the hand
loop draws too, so the final weights can be checked against lib.run's; the comparison is then like
for like: the same loader on both sides, and lib.run's lockstep, recording and comparing are what
the ratio measures.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lib
from lib.engine import lockstep as run_module
from lib.engine.data import SharedOrder, split_rows
from lib.twins.manual import SLOPES
from lib.twins.optim import torch_optimizer
from lib.twins.schedules import TORCH_NAMES
from lib.twins.torch_side import make_model, torch_loss

# The losses the bare loops implement: the squared ones, whose -dL/doutputs is
# SLOPES[loss](batch) * (labels - outputs), as lib/twins/manual.py computes it.
SQUARED = ("mse", "half_mse", "sse")


def check_supported(cfg: lib.Config) -> None:
    """The bare loops are plain SGD on a linear model in float64, one loss for both; else refuse."""
    plain = lib.Config(
        lr=cfg.lr, batch_size=cfg.batch_size, iterations=cfg.iterations, loss=cfg.loss
    )
    for name in ("model", "optimizer", "optimizer_kwargs", "torch_dtype", "manual_loss"):
        if getattr(cfg, name) != getattr(plain, name):
            raise ValueError(
                f"the bare loops support only the default {name}={getattr(plain, name)!r}"
            )
    if cfg.loss not in SQUARED:
        raise ValueError(
            f"the bare loops support the losses {', '.join(SQUARED)}; got {cfg.loss!r}"
        )


def data_loader(inputs: torch.Tensor, labels: torch.Tensor, cfg: lib.Config) -> DataLoader:
    """The DataLoader a torch script iterates, in its fast form (see the module docstring)."""
    order = SharedOrder(len(inputs), cfg.batch_size, cfg.seed, cfg.drop_last)
    return DataLoader(TensorDataset(inputs, labels), sampler=order, batch_size=None)


def bare_numpy(data: lib.Dataset, cfg: lib.Config) -> np.ndarray:
    """Plain numpy gradient descent for cfg.iterations steps; returns the final weights."""
    check_supported(cfg)
    X = data.with_ones() if cfg.bias else data.X
    y = data.y
    weights = lib.initial_weights(data, cfg).copy()
    slope = SLOPES[cfg.loss]
    half = cfg.loss == "half_mse"
    mean = cfg.loss != "sse"
    batches = lib.batch_indices(len(X), cfg.batch_size, cfg.seed)
    neg_grad = np.zeros_like(weights)
    for _ in range(cfg.iterations):
        idx = next(batches)
        inputs, labels = X[idx], y[idx]
        if cfg.zero_grad:
            neg_grad = np.zeros_like(weights)
        h = inputs @ weights
        error = labels - h
        loss = error @ error  # computed, as the lib loop does, then dropped
        if mean:
            loss = loss / ((2 if half else 1) * len(error))
        # lib's delta = slope * (labels - h), then its neg_grad += inputs.T @ delta.
        neg_grad += inputs.T @ (slope(len(labels)) * error)
        weights += cfg.lr * neg_grad
    return weights


def _torch_setup(data: lib.Dataset, cfg: lib.Config):
    """Tensors, nn.Linear holding the shared init, criterion and optimizer, as torch scripts do."""
    check_supported(cfg)
    inputs_all = torch.from_numpy(data.X.copy())
    labels_all = torch.from_numpy(data.y.copy()).unsqueeze(1)
    init = torch.from_numpy(lib.initial_weights(data, cfg))
    n = data.n
    net = nn.Linear(n, 1, bias=cfg.bias, dtype=torch.float64)
    with torch.no_grad():
        net.weight.copy_(init[:n].view(1, n))
        if cfg.bias:
            net.bias.copy_(init[n:])
    criterion = nn.MSELoss(reduction="sum" if cfg.loss == "sse" else "mean")
    optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr)
    return inputs_all, labels_all, net, criterion, optimizer


def _flat_weights(net: nn.Linear) -> np.ndarray:
    return np.concatenate([p.detach().numpy().ravel() for p in net.parameters()])


def bare_torch(data: lib.Dataset, cfg: lib.Config) -> np.ndarray:
    """The canonical zero_grad / forward / loss / backward / step loop; returns the last weights."""
    inputs_all, labels_all, net, criterion, optimizer = _torch_setup(data, cfg)
    half = cfg.loss == "half_mse"
    loader = data_loader(inputs_all, labels_all, cfg)
    steps = 0
    while steps < cfg.iterations:  # epoch after epoch
        for inputs, labels in loader:
            if cfg.zero_grad:
                optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, labels)
            if half:
                loss = loss / 2
            loss.backward()
            optimizer.step()
            steps += 1
            if steps == cfg.iterations:
                break
    return _flat_weights(net)


def torch_tensorboard(data: lib.Dataset, cfg: lib.Config, logdir: str | None = None) -> np.ndarray:
    """bare_torch, plus SummaryWriter.add_scalar of loss, grad norm and every weight, every step.

    Writer creation and close (which flushes the event file) are part of the cost; logdir defaults
    to a temporary directory removed afterwards.
    """
    from torch.utils.tensorboard import SummaryWriter

    with tempfile.TemporaryDirectory(prefix="bench-tb-") as tmp:
        writer = SummaryWriter(log_dir=logdir or tmp)
        names = lib.weight_names(data, cfg)
        inputs_all, labels_all, net, criterion, optimizer = _torch_setup(data, cfg)
        params = list(net.parameters())
        half = cfg.loss == "half_mse"
        loader = data_loader(inputs_all, labels_all, cfg)
        step = 0
        while step < cfg.iterations:  # epoch after epoch
            for inputs, labels in loader:
                if cfg.zero_grad:
                    optimizer.zero_grad()
                outputs = net(inputs)
                loss = criterion(outputs, labels)
                if half:
                    loss = loss / 2
                loss.backward()
                grads = torch.cat([p.grad.ravel() for p in params])
                grad_norm = torch.linalg.vector_norm(grads).item()
                optimizer.step()
                writer.add_scalar("loss", loss.item(), step)
                writer.add_scalar("grad_norm", grad_norm, step)
                weights = torch.cat([p.detach().ravel() for p in params]).tolist()
                for name, value in zip(names, weights, strict=True):
                    writer.add_scalar(f"weights/{name}", value, step + 1)
                step += 1
                if step == cfg.iterations:
                    break
        writer.close()
        return _flat_weights(net)


def bare_lockstep(
    data: lib.Dataset, cfg: lib.Config, share_memory: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Both bare loops advanced together, one step each in turn, recording nothing (for lib.run).

    A diagnostic: share_memory=True gathers the torch batches from a view of the numpy loop's
    [X, 1] array instead of a copy of X, so the two loops read the same memory each step. Returns
    both final weights.
    """
    check_supported(cfg)
    X = data.with_ones() if cfg.bias else data.X
    y = data.y
    weights = lib.initial_weights(data, cfg).copy()
    slope = SLOPES[cfg.loss]
    half, mean = cfg.loss == "half_mse", cfg.loss != "sse"
    inputs_all, labels_all, net, criterion, optimizer = _torch_setup(data, cfg)
    if share_memory:
        inputs_all = torch.from_numpy(X)[:, : data.n]
        labels_all = torch.from_numpy(np.array(y)).unsqueeze(1)
    batches_m = lib.batch_indices(len(X), cfg.batch_size, cfg.seed)
    batches_t = _endless(data_loader(inputs_all, labels_all, cfg))
    neg_grad = np.zeros_like(weights)
    for _ in range(cfg.iterations):
        # The numpy step.
        idx = next(batches_m)
        inputs, labels = X[idx], y[idx]
        if cfg.zero_grad:
            neg_grad = np.zeros_like(weights)
        error = labels - inputs @ weights
        loss = error @ error
        if mean:
            loss = loss / ((2 if half else 1) * len(error))
        neg_grad += inputs.T @ (slope(len(labels)) * error)
        weights += cfg.lr * neg_grad
        # The torch step.
        inputs, labels = next(batches_t)
        if cfg.zero_grad:
            optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        if half:
            loss = loss / 2
        loss.backward()
        optimizer.step()
    return weights, _flat_weights(net)


def bare_torch_any(data: lib.Dataset, cfg: lib.Config) -> np.ndarray:
    """The canonical torch loop for any model, loss and optimizer a Config names; records nothing.

    The model is built and loaded as a torch script would (vector_to_parameters), not through lib's
    flat shared vector; returns the final weights in parameters() order.
    """
    inputs_all = torch.from_numpy(data.X.copy())
    labels_all = torch.from_numpy(data.y.copy()).unsqueeze(1)
    net = make_model(cfg.layout(data.n), torch.float64)
    nn.utils.vector_to_parameters(
        torch.from_numpy(lib.initial_weights(data, cfg)), net.parameters()
    )
    criterion = torch_loss(cfg.loss)
    optimizer = torch_optimizer(cfg.optimizer, net.parameters(), cfg.lr, cfg.optimizer_kwargs)
    loader = data_loader(inputs_all, labels_all, cfg)
    steps = 0
    while steps < cfg.iterations:  # epoch after epoch
        for inputs, labels in loader:
            optimizer.zero_grad()
            loss = criterion(net(inputs), labels)
            loss.backward()
            optimizer.step()
            steps += 1
            if steps == cfg.iterations:
                break
    return nn.utils.parameters_to_vector(net.parameters()).detach().numpy().copy()


def bare_torch_whole(data: lib.Dataset, cfg: lib.Config) -> np.ndarray:
    """The whole torch loop a user writes for the Config: its DataLoader over the training rows,
    model.train(), zero_grad once per `accumulate` micro-batches, loss / accumulate, backward,
    clip_grad_norm_, step, scheduler.step(), and every eval_interval steps model.eval() with
    torch.no_grad() on the held-out rows. Records nothing; returns the final weights."""
    train, held_out = split_rows(data.m, cfg.val_fraction, cfg.seed)
    X, y = torch.from_numpy(data.X.copy()), torch.from_numpy(data.y.copy()).unsqueeze(1)
    net = make_model(cfg.layout(data.n), torch.float64)
    nn.utils.vector_to_parameters(
        torch.from_numpy(lib.initial_weights(data, cfg)), net.parameters()
    )
    criterion = torch_loss(cfg.loss)
    optimizer = torch_optimizer(cfg.optimizer, net.parameters(), cfg.lr, cfg.optimizer_kwargs)
    scheduler = None
    if cfg.scheduler is not None:
        scheduler_class = getattr(torch.optim.lr_scheduler, TORCH_NAMES[cfg.scheduler])
        scheduler = scheduler_class(optimizer, **cfg.scheduler_kwargs)
    loader = data_loader(X[train], y[train], cfg)
    X_val, y_val = X[held_out], y[held_out]
    k, steps, batch = cfg.accumulate, 0, 0
    while steps < cfg.iterations:  # epoch after epoch
        for inputs, labels in loader:
            net.train()
            if batch % k == 0:
                optimizer.zero_grad()
            loss = criterion(net(inputs), labels)
            if k > 1:
                loss = loss / k
            loss.backward()
            batch += 1
            if batch % k:
                continue  # more micro-batches to add before this step
            if cfg.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            steps += 1
            if len(held_out) and steps % cfg.eval_interval == 0:
                net.eval()
                with torch.no_grad():
                    criterion(net(X_val), y_val).item()
            if steps == cfg.iterations:
                break
    return nn.utils.parameters_to_vector(net.parameters()).detach().numpy().copy()


def _endless(loader: DataLoader):
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def hand_loop_alone(data: lib.Dataset, cfg: lib.Config) -> np.ndarray:
    """lib's hand-written loop for the Config (manual_loop, any model) run alone, recording nothing.

    bench/ has no second hand-written copy of every optimizer and model, so for those rows the
    numpy side of the bare pair is lib's own generator drained alone: the ratio then measures what
    lib.run's lockstep, recording and comparing add.
    """
    manual, _, _ = run_module.loops(data, cfg)  # the torch generator is made but never started
    for _ in range(cfg.iterations):
        _, weights, _ = next(manual)
    return weights.copy()
