"""Where every weight lives: one flat vector, in the order of torch's net.parameters()."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """The shape of a model, all both loops need to know of it besides the data.

    linear and logistic: [w_1 .. w_n, bias], the bias a weight on an input that is always 1;
    mlp: [W1 row by row, b1, W2, b2]. Without a bias, the biases are left out of the vector.
    """

    model: str = "linear"  # "linear" | "logistic" | "mlp"
    inputs: int = 1  # features of the data
    bias: bool = True
    hidden: int = 8  # mlp only: units of the hidden layer
    activation: str = "tanh"  # mlp only: "tanh" | "relu"

    @property
    def tensors(self) -> tuple[tuple[str, int], ...]:
        """The parameter tensors in the flat vector's order, as (name, size)."""
        n, h = self.inputs, self.hidden
        if self.model == "mlp":
            tensors = (("W1", h * n), ("b1", h), ("W2", h), ("b2", 1))
        else:
            tensors = (("weight", n), ("bias", 1))
        return tuple(t for t in tensors if self.bias or not t[0].startswith("b"))

    @property
    def n_params(self) -> int:
        """How many weights there are."""
        return sum(size for _, size in self.tensors)

    @property
    def starts(self) -> tuple[int, ...]:
        """Where each tensor starts in the flat vector."""
        return tuple(int(i) for i in np.cumsum([0, *(size for _, size in self.tensors)])[:-1])

    def names(self, feature_names: tuple[str, ...] = ()) -> list[str]:
        """A name for every weight, in order: w_1 (feature) .. bias, or W1[i,j] .. b2."""
        n = self.inputs
        if self.model == "mlp":
            names = [f"W1[{i},{j}]" for i in range(self.hidden) for j in range(n)]
            names += [f"b1[{i}]" for i in range(self.hidden)] if self.bias else []
            names += [f"W2[{i}]" for i in range(self.hidden)]
            return names + (["b2"] if self.bias else [])
        features = tuple(feature_names) or tuple(f"x{j + 1}" for j in range(n))
        names = [
            f"w_{j + 1} ({f})" if f != f"x{j + 1}" else f"w_{j + 1}" for j, f in enumerate(features)
        ]
        return names + (["bias"] if self.bias else [])

    def views(self, flat: np.ndarray) -> tuple[np.ndarray, ...]:
        """The mlp's W1 (hidden, n), b1 (hidden,), W2 (hidden,), b2 (1,): views of the flat vector.

        Without a bias, b1 and b2 are constant zeros that are not in the vector: what is added to
        them is dropped.
        """
        n, h = self.inputs, self.hidden
        W1, b1, W2, b2 = np.split(flat, np.cumsum([h * n, h * self.bias, h])[:3])
        if not self.bias:
            b1, b2 = np.zeros(h), np.zeros(1)
        return W1.reshape(h, n), b1, W2, b2

    def description(self) -> str:
        """The layout in words, for messages: "[w_1 .. w_n, bias]", "[W1, b1, W2, b2]", ..."""
        if self.model == "mlp":
            return "[W1, b1, W2, b2]" if self.bias else "[W1, W2]"
        return "[w_1 .. w_n, bias]" if self.bias else "[w_1 .. w_n]"
