"""The hand-written gradient-descent loop: numpy only, every derivative by hand."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from .optim import hand_optimizer


def squared_error_loss(name: str):
    """The loss convention as (loss of the errors, slope k such that -dL/dh = k * error)."""
    if name == "mse":  # mean of squared errors, as torch's MSELoss()
        return (lambda error: error @ error / len(error)), (lambda m: 2 / m)
    if name == "half_mse":  # 1/2 * mean of squared errors: the classic hand loop
        return (lambda error: error @ error / (2 * len(error))), (lambda m: 1 / m)
    if name == "sse":  # sum of squared errors, as MSELoss(reduction="sum")
        return (lambda error: error @ error), (lambda m: 2)
    raise ValueError(f"unknown loss {name!r}")


def manual_loop(
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    init: np.ndarray,
    lr: float,
    loss: str = "mse",
    zero_grad: bool = True,
    optimizer: str = "sgd",
    optimizer_kwargs: Mapping[str, Any] | None = None,
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """Gradient descent on a linear model by hand, yielding (loss, weights, gradient) after each step.

    The inputs carry a last column of ones when there is a bias, so the bias is just one more weight.
    """
    # Model: h = inputs @ weights, started from the shared initial weights.
    weights = np.array(init, dtype=np.float64)
    criterion, slope = squared_error_loss(loss)
    optimizer = hand_optimizer(optimizer, weights, lr, optimizer_kwargs)
    d_weights = np.zeros_like(weights)
    for inputs, labels in batches:
        # Reset the gradient: d_weights is a sum over the batch, so it must start from zero.
        if zero_grad:
            d_weights = np.zeros_like(weights)
        # Forward pass: compute the predictions h for the batch.
        h = inputs @ weights
        # Loss: compare the predictions with the labels; the gradient below never needs this value.
        error = labels - h
        loss = criterion(error)
        # Backward pass: d_weights[j] += k * sum_i (label_i - h_i) * input_ij, the negative gradient.
        d_weights += slope(len(labels)) * (inputs.T @ error)
        # Update: the optimizer takes the gradient, -d_weights, and steps against it (SGD: weights += lr * d_weights).
        optimizer.step(-d_weights)
        yield loss, weights, -d_weights


def effective_lr_ratio(loss: str, other: str, batch_size: int) -> float:
    """How many times larger a step under `loss` is than under `other`, at the same lr and batch size.

    Every convention's gradient is k * X^T (X w - y) with k from squared_error_loss, so the ratio
    of the steps is the ratio of the two k: mse / half_mse = 2, sse / mse = batch_size.
    """
    return squared_error_loss(loss)[1](batch_size) / squared_error_loss(other)[1](batch_size)
