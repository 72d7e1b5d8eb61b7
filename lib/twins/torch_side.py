"""The canonical torch training loop: the twin of manual.py, line for line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..engine.config import n_features
from ..engine.data import batch_indices
from .optim import torch_optimizer


class HalfMSELoss(nn.Module):
    """1/2 * MSELoss(): the classic hand loop's convention, which torch does not ship."""

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(outputs, labels) / 2


def torch_loss(name: str) -> nn.Module:
    """The torch criterion for a loss convention."""
    if name == "mse":
        return nn.MSELoss()
    if name == "half_mse":
        return HalfMSELoss()
    if name == "sse":
        return nn.MSELoss(reduction="sum")
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    raise ValueError(f"unknown loss {name!r}")


def share_one_vector(net: nn.Module, init: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Load init into net and make its parameters views of one flat vector, in parameters() order.

    optimizer.step() updates parameters in place, so the flat vector always holds the current
    weights: reading it costs nothing, where torch.cat over the parameters would copy every step.
    """
    flat = torch.tensor(init, dtype=dtype)
    start = 0
    for module in net.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            setattr(module, name, nn.Parameter(flat[start : start + param.numel()].view(param.shape)))
            start += param.numel()
    assert start == len(flat), "init does not match the model's parameter count"
    return flat


def make_model(model: str, n: int, bias: bool, hidden: int, activation: str, dtype: torch.dtype) -> nn.Module:
    """The torch model: nn.Linear for "linear" and "logistic", a one-hidden-layer nn.Sequential for "mlp"."""
    if model == "mlp":
        act = nn.Tanh() if activation == "tanh" else nn.ReLU()
        return nn.Sequential(
            nn.Linear(n, hidden, bias=bias, dtype=dtype), act, nn.Linear(hidden, 1, bias=bias, dtype=dtype)
        )
    return nn.Linear(n, 1, bias=bias, dtype=dtype)


def flat_grad(net: nn.Module) -> np.ndarray:
    """Every parameter's .grad, flattened in the same order as the weights (a new array)."""
    return np.concatenate([p.grad.numpy().ravel() for p in net.parameters()])


class GradReader:
    """Copies every parameter's .grad into one preallocated flat vector, in parameters() order.

    zero_grad() sets each .grad to None and backward() makes new ones, so the gradient has to be
    copied out every step; copying into views of one buffer costs a few microseconds less per step
    than np.concatenate, which matters when a whole torch step of a small model takes 200.
    """

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        self.params = list(net.parameters())
        self.flat = torch.zeros(sum(p.numel() for p in self.params), dtype=dtype)
        self.numpy = self.flat.numpy()
        starts = np.cumsum([0, *(p.numel() for p in self.params)])
        bounds = zip(starts[:-1], starts[1:], self.params, strict=True)
        self.pieces = [self.flat[a:b].view(p.shape) for a, b, p in bounds]

    def __call__(self) -> np.ndarray:
        """The current gradient, in the buffer (the same array every call, overwritten)."""
        for piece, param in zip(self.pieces, self.params, strict=True):
            piece.copy_(param.grad)
        return self.numpy


def torch_loop(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    init: np.ndarray,
    lr: float,
    loss: str = "mse",
    zero_grad: bool = True,
    bias: bool = True,
    dtype: torch.dtype = torch.float64,
    optimizer: str = "sgd",
    optimizer_kwargs: Mapping[str, Any] | None = None,
    model: str = "linear",
    hidden: int = 8,
    activation: str = "tanh",
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """The five-line torch training step, yielding (loss, weights, gradient) after each step."""
    # Model: outputs = net(inputs), started from the shared initial weights.
    net = make_model(model, n_features(model, len(init), bias, hidden), bias, hidden, activation, dtype)
    weights = share_one_vector(net, init, dtype).numpy()
    criterion = torch_loss(loss)
    optimizer = torch_optimizer(optimizer, net.parameters(), lr, optimizer_kwargs)
    read_grad = GradReader(net, dtype)  # for the yield only: copies each step's .grad out for recording
    for inputs, labels in batches:
        # Reset the gradient: backward() adds into .grad, so clear it first.
        if zero_grad:
            optimizer.zero_grad()
        # Forward pass: compute the predictions for the batch.
        outputs = net(inputs)
        # Loss: compare the predictions with the labels; this tensor is the root backward() starts from.
        loss = criterion(outputs, labels)
        # Backward pass: autograd adds the gradient of the loss into each parameter's .grad.
        loss.backward()
        # Update: .grad points uphill, so step() subtracts lr * .grad (or the optimizer's version of it).
        optimizer.step()
        yield loss.item(), weights, read_grad()


def loader(
    inputs: np.ndarray, labels: np.ndarray, batch_size: int, seed: int, dtype: torch.dtype = torch.float64
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (inputs, labels) tensor batches in the shared order; labels shaped (batch, 1) like outputs."""
    # Shares the numpy memory when it is writable float64; read-only memory is copied (torch would warn, then share it).
    inputs, labels = (torch.as_tensor(a if a.flags.writeable else a.copy()).to(dtype) for a in (inputs, labels))
    labels = labels.unsqueeze(1)
    for idx in batch_indices(len(inputs), batch_size, seed):
        if isinstance(idx, slice):  # full batch: the tensors themselves (indexing a tensor costs microseconds)
            yield inputs, labels
        else:
            index = torch.from_numpy(idx)
            yield inputs[index], labels[index]
