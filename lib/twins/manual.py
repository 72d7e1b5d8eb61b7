"""The hand-written training loop: numpy only, every derivative written out.

neg_grad holds the negative gradient, as a hand loop written from (label - h) builds it. Linear
models read inputs with a last column of ones when there is a bias: the bias is one more weight.
The mlp's weights are laid out as torch's parameters (Layout.views).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from .layout import Layout
from .optim import manual_optimizer
from .schedules import manual_scheduler

# The locals a page may read at the yield (lib.engine.frames): a test sees each in the frame.
# The mlp adds its layers' values; a linear model has none of a1, h1, W1, ...
EXPOSED = ("inputs", "labels", "weights", "optimizer", "neg_grad", "outputs", "h", "loss", "delta")
EXPOSED_MLP = ("a1", "h1", "delta1", "W1", "b1", "W2", "b2")


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z), written so that no large |z| overflows."""
    return np.exp(-np.logaddexp(0.0, -z))


def manual_loop(
    batches: Iterable[tuple[np.ndarray, np.ndarray]], init: np.ndarray, lr: float, *,
    layout: Layout, loss_name: str = "mse", zero_grad: bool = True, optimizer_name: str = "sgd",
    optimizer_kwargs: Mapping[str, Any] | None = None, scheduler_name: str | None = None,
    scheduler_kwargs: Mapping[str, Any] | None = None, clip_grad_norm: float | None = None,
    accumulate: int = 1, validation: tuple[np.ndarray, np.ndarray] | None = None,
    eval_every: int = 1,
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:  # fmt: skip
    """Gradient descent by hand, yielding (loss, weights, gradient) after each optimizer step."""
    # Model: the weights, started from the shared initial weights.
    weights = np.array(init, dtype=np.float64)
    if layout.model == "mlp":
        W1, b1, W2, b2 = layout.views(weights)
    optimizer = manual_optimizer(optimizer_name, weights, lr, optimizer_kwargs)
    if scheduler_name is not None:  # it sets the optimizer's lr, now and after every step
        scheduler = manual_scheduler(scheduler_name, optimizer, scheduler_kwargs)
    neg_grad = np.zeros_like(weights)
    step_loss = 0.0  # with accumulate: the sum of the step's micro-batch losses
    for i, (inputs, labels) in enumerate(batches):  # i counts batches (micro-batches, accumulating)
        # Reset the gradient.
        if zero_grad and (accumulate == 1 or i % accumulate == 0):  # once per optimizer step
            neg_grad = np.zeros_like(weights)  # the backward pass adds into it
        # Forward pass.
        if layout.model == "mlp":  # outputs are logits for bce; h is the prediction
            a1 = inputs @ W1.T + b1
            h1 = np.tanh(a1) if layout.activation == "tanh" else np.maximum(a1, 0.0)
            outputs = h1 @ W2 + b2
        else:
            outputs = inputs @ weights
        h = sigmoid(outputs) if loss_name == "bce" else outputs
        # Loss.
        if loss_name == "mse":
            loss = np.mean((labels - h) ** 2)
        elif loss_name == "half_mse":
            loss = np.mean((labels - h) ** 2) / 2
        elif loss_name == "sse":
            loss = np.sum((labels - h) ** 2)
        else:  # bce from the logits: log(1 + e^z) - y z, which never overflows
            loss = np.mean(np.logaddexp(0.0, outputs) - labels * outputs)
        if accumulate > 1:  # each micro-batch's share: the step's loss is their sum
            loss = loss / accumulate
            step_loss = loss if i % accumulate == 0 else step_loss + loss
        # Backward pass.
        if loss_name == "mse":
            delta = 2 / len(labels) * (labels - h)  # -dloss/doutputs
        elif loss_name == "sse":
            delta = 2 * (labels - h)
        else:  # half_mse; and bce, as -d/dz of log(1 + e^z) - y z is y - sigmoid(z)
            delta = (labels - h) / len(labels)
        if accumulate > 1:  # the derivative of loss / accumulate
            delta = delta / accumulate
        if layout.model == "mlp":  # the chain rule, from the output back to the first layer
            dW1, db1, dW2, db2 = layout.views(neg_grad)
            dW2 += h1.T @ delta
            db2 += delta.sum()
            delta1 = np.outer(delta, W2) * (1 - h1**2 if layout.activation == "tanh" else a1 > 0)
            dW1 += delta1.T @ inputs
            db1 += delta1.sum(axis=0)
        else:
            neg_grad += inputs.T @ delta
        # Update.
        if accumulate == 1 or (i + 1) % accumulate == 0:  # the step's last micro-batch
            if clip_grad_norm is not None:  # the norm before it is scaled down to max_norm
                norm = clip_grad_norm_(neg_grad, clip_grad_norm)  # noqa: F841 (lib reads it)
            optimizer.step(-neg_grad)
            if scheduler_name is not None:
                step_lr = optimizer.lr  # the lr this step used  # noqa: F841
                scheduler.step()  # the next step's lr (and OneCycleLR's momentum)
            if validation is not None and (i // accumulate + 1) % eval_every == 0:
                val_loss = evaluate(validation, weights, layout, loss_name)  # noqa: F841
            yield (step_loss if accumulate > 1 else loss), weights, -neg_grad


def evaluate(
    validation: tuple[np.ndarray, np.ndarray], weights: np.ndarray, layout: Layout, loss_name: str
) -> float:
    """The loss on held-out rows: the forward pass and the loss alone, as under torch.no_grad()."""
    inputs, labels = validation
    if layout.model == "mlp":
        W1, b1, W2, b2 = layout.views(weights)
        h1 = inputs @ W1.T + b1
        outputs = (np.tanh(h1) if layout.activation == "tanh" else np.maximum(h1, 0.0)) @ W2 + b2
    else:
        outputs = inputs @ weights
    if loss_name == "bce":
        return float(np.mean(np.logaddexp(0.0, outputs) - labels * outputs))
    squares = (labels - outputs) ** 2
    if loss_name == "sse":
        return float(np.sum(squares))
    return float(np.mean(squares) / (2 if loss_name == "half_mse" else 1))


def clip_grad_norm_(neg_grad: np.ndarray, max_norm: float) -> float:
    """torch.nn.utils.clip_grad_norm_ by hand: one norm over every weight's gradient, and the whole
    gradient scaled, in place, to length max_norm where it is longer. Returns the norm before."""
    norm = np.sqrt(np.sum(neg_grad**2))
    clip_coef = max_norm / (norm + 1e-6)
    neg_grad *= min(clip_coef, 1.0)  # as torch: times clip_coef clamped to 1, so never scaled up
    return norm


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
    """manual_loop on a one-hidden-layer network, under the arguments this function always took."""
    bias = bool(bias)
    inputs = (len(init) - int(bias)) // hidden - 1 - int(bias)  # the inverse of Layout.n_params
    layout = Layout("mlp", inputs, bias, hidden, activation)
    return manual_loop(
        batches,
        init,
        lr,
        layout=layout,
        loss_name=loss,
        optimizer_name=optimizer,
        optimizer_kwargs=optimizer_kwargs,
        zero_grad=zero_grad,
    )


# The slope k of each convention, as the backward pass writes it:
# -dloss/doutputs = k * (labels - h).
SLOPES = MappingProxyType(
    {
        "mse": lambda m: 2 / m,
        "half_mse": lambda m: 1 / m,
        "sse": lambda m: 2,
        "bce": lambda m: 1 / m,
    }
)


def effective_lr_ratio(loss: str, other: str, batch_size: int) -> float:
    """How many times larger a step under `loss` is than under `other`, at equal lr and batch size.

    Every squared loss's gradient is k * X^T (X w - y), k from the backward pass, so the ratio of
    the steps is the ratio of the two k: mse / half_mse = 2, sse / mse = batch_size.
    """
    return SLOPES[loss](batch_size) / SLOPES[other](batch_size)
