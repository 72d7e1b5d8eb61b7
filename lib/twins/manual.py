"""The hand-written gradient-descent loops: numpy only, every derivative by hand."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from ..engine.config import n_features
from .optim import hand_optimizer


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z), written so that no large |z| overflows."""
    return np.exp(-np.logaddexp(0.0, -z))


def hand_loss(name: str):
    """The loss as (criterion(z, labels), slope k such that -dL/dz_i = k * (label_i - h_i)).

    z are the model's outputs; h = z for the squared losses and h = sigmoid(z) for "bce".
    """
    if name == "mse":  # mean of squared errors, as torch's MSELoss()
        return (lambda z, labels: (labels - z) @ (labels - z) / len(z)), (lambda m: 2 / m)
    if name == "half_mse":  # 1/2 * mean of squared errors: the classic hand loop
        return (lambda z, labels: (labels - z) @ (labels - z) / (2 * len(z))), (lambda m: 1 / m)
    if name == "sse":  # sum of squared errors, as MSELoss(reduction="sum")
        return (lambda z, labels: (labels - z) @ (labels - z)), (lambda m: 2)
    if name == "bce":  # mean of -[y log h + (1 - y) log(1 - h)] with h = sigmoid(z), as BCEWithLogitsLoss()
        return (lambda z, labels: np.mean(np.logaddexp(0.0, z) - labels * z)), (lambda m: 1 / m)
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
    """Gradient descent on a linear (or, with loss "bce", logistic) model by hand.

    Yields (loss, weights, gradient) after each step. The inputs carry a last column of ones when
    there is a bias, so the bias is just one more weight.
    """
    # Model: h = inputs @ weights (logistic: sigmoid of it), started from the shared initial weights.
    weights = np.array(init, dtype=np.float64)
    criterion, slope, logistic = *hand_loss(loss), loss == "bce"
    optimizer = hand_optimizer(optimizer, weights, lr, optimizer_kwargs)
    d_weights = np.zeros_like(weights)
    for inputs, labels in batches:
        # Reset the gradient: the += below adds into d_weights, so without this the last step's would carry over.
        if zero_grad:
            d_weights = np.zeros_like(weights)
        # Forward pass: compute the predictions h for the batch.
        z = inputs @ weights
        h = sigmoid(z) if logistic else z
        # Loss: compare the predictions with the labels; the gradient below never needs this value.
        error = labels - h
        loss = criterion(z, labels)
        # Backward pass: d_weights[j] += k * sum_i (label_i - h_i) * input_ij, the negative gradient.
        d_weights += slope(len(labels)) * (inputs.T @ error)
        # Update: the optimizer takes the gradient, -d_weights, and steps against it (SGD: weights += lr * d_weights).
        optimizer.step(-d_weights)
        yield loss, weights, -d_weights


def mlp_views(flat: np.ndarray, n: int, hidden: int, bias: bool) -> tuple[np.ndarray, ...]:
    """W1 (hidden, n), b1 (hidden,), W2 (hidden,), b2 (1,) as views of one flat vector.

    The layout is torch's parameter order: [W1 row by row, b1, W2, b2]. Without bias there is no
    b1 or b2 in the vector; they are constant zeros instead, and what is added to them is dropped.
    """
    sizes = [hidden * n, hidden * bias, hidden, int(bias)]
    W1, b1, W2, b2 = np.split(flat, np.cumsum(sizes)[:-1])
    if not bias:
        b1, b2 = np.zeros(hidden), np.zeros(1)
    return W1.reshape(hidden, n), b1, W2, b2


def manual_mlp_loop(
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    init: np.ndarray,
    lr: float,
    loss: str = "mse",
    zero_grad: bool = True,
    optimizer: str = "sgd",
    optimizer_kwargs: Mapping[str, Any] | None = None,
    hidden: int = 8,
    activation: str = "tanh",
    bias: bool = True,
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """A one-hidden-layer network trained by hand: backpropagation written out, layer by layer.

    Yields (loss, weights, gradient) after each step, all flat in torch's parameter order.
    """
    # Model: z = W2 . act(W1 x + b1) + b2, started from the shared initial weights.
    weights = np.array(init, dtype=np.float64)
    n = n_features("mlp", len(weights), bias, hidden)
    W1, b1, W2, b2 = mlp_views(weights, n, hidden, bias)
    criterion, slope, logistic = *hand_loss(loss), loss == "bce"
    optimizer = hand_optimizer(optimizer, weights, lr, optimizer_kwargs)
    d_weights = np.zeros_like(weights)
    for inputs, labels in batches:
        # Reset the gradient: the += below adds into d_weights, so without this the last step's would carry over.
        if zero_grad:
            d_weights = np.zeros_like(weights)
        dW1, db1, dW2, db2 = mlp_views(d_weights, n, hidden, bias)
        # Forward pass: compute the predictions h for the batch, keeping what backward needs.
        a1 = inputs @ W1.T + b1
        h1 = np.tanh(a1) if activation == "tanh" else np.maximum(a1, 0.0)
        z = h1 @ W2 + b2[0]
        h = sigmoid(z) if logistic else z
        # Loss: compare the predictions with the labels; the gradient below never needs this value.
        error = labels - h
        loss = criterion(z, labels)
        # Backward pass: the chain rule, from the output back to the first layer (negative gradients).
        delta = slope(len(labels)) * error  # -dL/dz
        dW2 += h1.T @ delta
        db2 += delta.sum()
        delta1 = np.outer(delta, W2) * (1 - h1**2 if activation == "tanh" else a1 > 0)  # -dL/da1
        dW1 += delta1.T @ inputs
        db1 += delta1.sum(axis=0)
        # Update: the optimizer takes the gradient, -d_weights, and steps against it.
        optimizer.step(-d_weights)
        yield loss, weights, -d_weights


def effective_lr_ratio(loss: str, other: str, batch_size: int) -> float:
    """How many times larger a step under `loss` is than under `other`, at the same lr and batch size.

    Every squared loss's gradient is k * X^T (X w - y) with k from hand_loss, so the ratio of the
    steps is the ratio of the two k: mse / half_mse = 2, sse / mse = batch_size.
    """
    return hand_loss(loss)[1](batch_size) / hand_loss(other)[1](batch_size)
