"""The torch training loop: the twin of manual.py, phase for phase."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .layout import Layout
from .optim import torch_optimizer
from .schedules import torch_scheduler

# The locals a page may read at the yield (lib.engine.frames): a test sees each in the frame.
EXPOSED = ("inputs", "labels", "weights", "optimizer", "net", "criterion", "outputs", "loss")


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
            setattr(
                module, name, nn.Parameter(flat[start : start + param.numel()].view(param.shape))
            )
            start += param.numel()
    assert start == len(flat), "init does not match the model's parameter count"
    return flat


def make_model(layout: Layout, dtype: torch.dtype) -> nn.Module:
    """The torch model of the layout: nn.Linear or a one-hidden-layer nn.Sequential.

    nn.Linear for "linear" and "logistic", the nn.Sequential for "mlp".
    """
    n, bias = layout.inputs, layout.bias
    if layout.model == "mlp":
        act = nn.Tanh() if layout.activation == "tanh" else nn.ReLU()
        first = nn.Linear(n, layout.hidden, bias=bias, dtype=dtype)
        return nn.Sequential(first, act, nn.Linear(layout.hidden, 1, bias=bias, dtype=dtype))
    return nn.Linear(n, 1, bias=bias, dtype=dtype)


def flat_grad(net: nn.Module) -> np.ndarray:
    """Every parameter's .grad, flattened in the same order as the weights (a new array)."""
    return np.concatenate([p.grad.numpy().ravel() for p in net.parameters()])


class GradReader:
    """Copies every parameter's .grad into one preallocated flat vector, in parameters() order.

    zero_grad() sets each .grad to None and backward() makes new ones, so the gradient has to be
    copied out every step. One torch._foreach_copy_ copies every tensor: a copy_ per parameter is
    a tensor op each from Python (the dispatcher, the GIL released and taken again), a quarter more
    instructions for nn.Linear's two tensors and more for the MLP's four (`python -m
    bench.instructions`), when a whole torch step of a small model is a few hundred thousand.
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
        torch._foreach_copy_(self.pieces, [param.grad for param in self.params])
        return self.numpy


def torch_loop(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]], init: np.ndarray, lr: float, *,
    layout: Layout, loss_name: str = "mse", zero_grad: bool = True, optimizer_name: str = "sgd",
    optimizer_kwargs: Mapping[str, Any] | None = None, scheduler_name: str | None = None,
    scheduler_kwargs: Mapping[str, Any] | None = None, clip_grad_norm: float | None = None,
    accumulate: int = 1, validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    eval_every: int = 1,
    dtype: torch.dtype = torch.float64,
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:  # fmt: skip
    """The torch training loop, yielding (loss, weights, gradient) after each optimizer step."""
    # Model: the weights, started from the shared initial weights.
    net = make_model(layout, dtype)
    weights = share_one_vector(net, init, dtype).numpy()
    optimizer = torch_optimizer(optimizer_name, net.parameters(), lr, optimizer_kwargs)
    if scheduler_name is not None:  # it sets the optimizer's lr, now and after every step
        scheduler = torch_scheduler(scheduler_name, optimizer, scheduler_kwargs)
    criterion = torch_loss(loss_name)
    read_grad = GradReader(net, dtype)  # copies each step's .grad out, for the yield
    step_loss = 0.0  # with accumulate: the sum of the step's micro-batch losses
    for i, (inputs, labels) in enumerate(batches):  # i counts batches (micro-batches, accumulating)
        net.train()  # training mode: a no-op here (no dropout, no batch norm)
        # Reset the gradient.
        if zero_grad and (accumulate == 1 or i % accumulate == 0):  # once per optimizer step
            optimizer.zero_grad()  # backward() adds into each .grad
        # Forward pass.
        outputs = net(inputs)
        # Loss.
        loss = criterion(outputs, labels)
        if accumulate > 1:  # each micro-batch's share: the step's loss is their sum
            loss = loss / accumulate
            step_loss = loss.item() if i % accumulate == 0 else step_loss + loss.item()
        # Backward pass.
        loss.backward()
        # Update.
        if accumulate == 1 or (i + 1) % accumulate == 0:  # the step's last micro-batch
            if clip_grad_norm is not None:  # the norm before it is scaled down to max_norm
                norm = nn.utils.clip_grad_norm_(net.parameters(), clip_grad_norm)  # noqa: F841 (lib reads it)
            optimizer.step()
            if scheduler_name is not None:
                step_lr = optimizer.param_groups[0]["lr"]  # the lr this step used  # noqa: F841
                scheduler.step()  # the next step's lr (and OneCycleLR's momentum)
            if validation is not None and (i // accumulate + 1) % eval_every == 0:
                net.eval()  # evaluation mode: a no-op here (no dropout, no batch norm)
                with torch.no_grad():  # builds no graph
                    val_loss = criterion(net(validation[0]), validation[1]).item()  # noqa: F841
            yield (step_loss if accumulate > 1 else loss.item()), weights, read_grad()
