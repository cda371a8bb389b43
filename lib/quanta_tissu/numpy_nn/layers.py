"""Layers with a forward and a hand-written backward pass, in NumPy (chapters 02–03).

The protocol every layer follows (chapter 05 adds attention layers to it):
- ``params``: dict name -> array, the trainable parameters (a ``Composite`` exposes its
  sublayers' parameters under prefixed names);
- ``grads``: dict name -> array of the same shapes, *overwritten* by each ``backward``;
- ``forward(x)`` caches what backward needs; ``backward(dout)`` returns d(loss)/dx.
- ``training``: True/False switches train-only behaviour (dropout).

Does not: accumulate gradients across calls, or support calling forward twice before backward.
"""
from __future__ import annotations

import numpy as np


class Layer:
    """Base class: no parameters, training mode on."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True

    def _add_param(self, name: str, value: np.ndarray) -> None:
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)

    def __call__(self, x):
        return self.forward(x)


class Composite(Layer):
    """A layer made of named sublayers; its params and grads are theirs, prefixed ("attn.qkv.W")."""

    def __init__(self, **sublayers):
        self.sublayers = sublayers
        self._training = True

    @property
    def params(self):
        return {f"{n}.{k}": v for n, layer in self.sublayers.items() for k, v in layer.params.items()}

    @property
    def grads(self):
        return {f"{n}.{k}": v for n, layer in self.sublayers.items() for k, v in layer.grads.items()}

    @property
    def training(self):
        return self._training

    @training.setter
    def training(self, mode: bool):
        self._training = mode
        for layer in self.sublayers.values():
            layer.training = mode


class Linear(Layer):
    """y = x @ W + b with W of shape (in, out): rows of x are examples."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator, bias: bool = True, gain: float = 1.0):
        super().__init__()
        # Scaling by 1/sqrt(n_in) keeps the output variance near the input's at init.
        self._add_param("W", rng.standard_normal((n_in, n_out)) * gain / np.sqrt(n_in))
        if bias:
            self._add_param("b", np.zeros(n_out))

    def forward(self, x: np.ndarray) -> np.ndarray:  # (..., in) -> (..., out), e.g. (B, T, C)
        if x.shape[-1] != self.params["W"].shape[0]:
            raise ValueError(f"Linear expects inputs with {self.params['W'].shape[0]} features, got shape {x.shape}")
        self.x = x
        y = x @ self.params["W"]
        return y + self.params["b"] if "b" in self.params else y

    def backward(self, dout: np.ndarray) -> np.ndarray:  # (..., out) -> (..., in)
        x2 = self.x.reshape(-1, self.x.shape[-1])  # (B, T, in) -> (B*T, in): every position is a row
        d2 = dout.reshape(-1, dout.shape[-1])  # (B, T, out) -> (B*T, out)
        self.grads["W"][...] = x2.T @ d2  # (in, N) @ (N, out)
        if "b" in self.params:
            self.grads["b"][...] = d2.sum(axis=0)  # b was broadcast over rows: its gradient sums them
        return dout @ self.params["W"].T


class Embedding(Layer):
    """Row lookup: ids (...) -> vectors (..., C). Equal to one_hot(ids) @ W, without the matmul."""

    def __init__(self, vocab_size: int, dim: int, rng: np.random.Generator):
        super().__init__()
        self._add_param("W", rng.standard_normal((vocab_size, dim)))

    def forward(self, ids: np.ndarray) -> np.ndarray:
        if not np.issubdtype(np.asarray(ids).dtype, np.integer):
            raise TypeError(f"Embedding expects integer ids, got dtype {np.asarray(ids).dtype}")
        self.ids = ids
        return self.params["W"][ids]

    def backward(self, dout: np.ndarray) -> None:
        dW = self.grads["W"]
        dW.fill(0.0)
        # A row used k times receives the sum of its k gradients: add.at accumulates repeats.
        np.add.at(dW, self.ids.ravel(), dout.reshape(-1, dW.shape[1]))  # (N, T, C) -> (N*T, C)
        return None  # ids are not differentiable


class Tanh(Layer):
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.y = np.tanh(x)
        return self.y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1.0 - self.y**2)  # d tanh(x)/dx = 1 - tanh(x)^2, reusing the output


class Dropout(Layer):
    """Zero each activation with probability p in training, scaling survivors by 1/(1-p).

    The scaling keeps the expected activation unchanged, so nothing changes at evaluation
    (``training = False``: identity). ``frozen = True`` reuses the last mask: for gradient checks.
    """

    def __init__(self, p: float, rng: np.random.Generator):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p, self.rng, self.frozen, self.mask = p, rng, False, None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        if not (self.frozen and self.mask is not None and self.mask.shape == x.shape):
            self.mask = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self.mask is None else dout * self.mask
