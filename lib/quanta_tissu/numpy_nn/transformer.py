"""A transformer block in NumPy with a hand-written backward pass (chapter 05).

Pieces, each with forward and backward, each verified by ``gradcheck``:
``Softmax`` (last axis), ``LayerNorm``, ``GELU`` (tanh approximation, as GPT-2),
``CausalSelfAttention`` (multi-head, masked so position t sees positions <= t),
``MLP`` (C -> 4C -> C), and ``Block``: x + attn(ln1(x)), then + mlp(ln2(x)) (pre-norm, as GPT-2).
Shapes: B batch, T time (positions), C channels, H heads, D = C / H per head.
Conventions (tested): weights are (in, out), y = x @ W + b; attention scores are
q k^T / sqrt(D); LayerNorm uses the biased variance and eps = 1e-5, as torch does.
Does not: use dropout, or train anything (chapter 06 does, in PyTorch).
"""
from __future__ import annotations

import numpy as np

from .functional import softmax
from .layers import Composite, Layer, Linear


class Softmax(Layer):
    """Softmax over the last axis. Backward: dx = y * (dout - sum(dout * y))."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.y = softmax(x, axis=-1)
        return self.y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        # The Jacobian of softmax is diag(y) - y y^T; applied to dout without forming it:
        return self.y * (dout - (dout * self.y).sum(axis=-1, keepdims=True))


class LayerNorm(Layer):
    """Normalise each position's C features to mean 0, variance 1, then scale and shift."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self._add_param("w", np.ones(dim))
        self._add_param("b", np.zeros(dim))

    def forward(self, x: np.ndarray) -> np.ndarray:  # (..., C) -> (..., C)
        mu = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)  # biased (divide by C), like torch's layer_norm
        self.inv_std = 1.0 / np.sqrt(var + self.eps)
        self.xhat = (x - mu) * self.inv_std
        return self.xhat * self.params["w"] + self.params["b"]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        lead = tuple(range(dout.ndim - 1))  # every axis but the features
        self.grads["w"][...] = (dout * self.xhat).sum(axis=lead)
        self.grads["b"][...] = dout.sum(axis=lead)
        g = dout * self.params["w"]  # gradient with respect to xhat
        # xhat depends on x directly and through the mean and the variance: two correction terms.
        return self.inv_std * (g - g.mean(axis=-1, keepdims=True)
                               - self.xhat * (g * self.xhat).mean(axis=-1, keepdims=True))


class GELU(Layer):
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    K = np.sqrt(2.0 / np.pi)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        self.t = np.tanh(self.K * (x + 0.044715 * x**3))
        return 0.5 * x * (1.0 + self.t)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dt = (1.0 - self.t**2) * self.K * (1.0 + 3 * 0.044715 * self.x**2)  # d tanh(u)/dx
        return dout * (0.5 * (1.0 + self.t) + 0.5 * self.x * dt)


class CausalSelfAttention(Composite):
    """Multi-head causal self-attention: every position mixes the values of itself and its past."""

    def __init__(self, dim: int, n_head: int, rng: np.random.Generator):
        if dim % n_head:
            raise ValueError(f"dim ({dim}) must be divisible by n_head ({n_head})")
        super().__init__(qkv=Linear(dim, 3 * dim, rng), proj=Linear(dim, dim, rng), softmax=Softmax())
        self.n_head = n_head

    def _heads(self, x: np.ndarray) -> np.ndarray:  # (B, T, C) -> (B, H, T, D)
        B, T, C = x.shape
        return x.reshape(B, T, self.n_head, C // self.n_head).transpose(0, 2, 1, 3)

    def forward(self, x: np.ndarray) -> np.ndarray:  # (B, T, C) -> (B, T, C)
        B, T, C = x.shape
        q, k, v = np.split(self.sublayers["qkv"].forward(x), 3, axis=-1)  # 3 x (B, T, C)
        self.q, self.k, self.v = self._heads(q), self._heads(k), self._heads(v)  # (B, H, T, D)
        self.scale = 1.0 / np.sqrt(C // self.n_head)
        scores = self.q @ self.k.transpose(0, 1, 3, 2) * self.scale  # (B, H, T, T)
        future = np.triu(np.ones((T, T), dtype=bool), k=1)  # True above the diagonal
        scores = np.where(future, -np.inf, scores)  # exp(-inf) = 0: no weight on the future
        self.att = self.sublayers["softmax"].forward(scores)  # (B, H, T, T), rows sum to 1
        y = self.att @ self.v  # (B, H, T, D)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, H, T, D) -> (B, T, H, D) -> (B, T, C)
        return self.sublayers["proj"].forward(y)

    def backward(self, dout: np.ndarray) -> np.ndarray:  # (B, T, C) -> (B, T, C)
        dy = self._heads(self.sublayers["proj"].backward(dout))  # (B, H, T, D)
        datt = dy @ self.v.transpose(0, 1, 3, 2)  # (B, H, T, T)
        dv = self.att.transpose(0, 1, 3, 2) @ dy  # (B, H, T, D)
        dscores = self.sublayers["softmax"].backward(datt) * self.scale  # masked entries: att = 0, so 0
        dq = dscores @ self.k  # (B, H, T, D)
        dk = dscores.transpose(0, 1, 3, 2) @ self.q
        merge = lambda t: t.transpose(0, 2, 1, 3).reshape(dout.shape)  # noqa: E731 - (B, H, T, D) -> (B, T, C)
        return self.sublayers["qkv"].backward(np.concatenate([merge(dq), merge(dk), merge(dv)], axis=-1))


class MLP(Composite):
    """The position-wise feed-forward layer: Linear(C, 4C), GELU, Linear(4C, C)."""

    def __init__(self, dim: int, rng: np.random.Generator, hidden: int | None = None):
        hidden = hidden or 4 * dim
        super().__init__(fc=Linear(dim, hidden, rng), act=GELU(), proj=Linear(hidden, dim, rng))

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.sublayers.values():
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        for layer in reversed(self.sublayers.values()):
            dout = layer.backward(dout)
        return dout


class Block(Composite):
    """A pre-norm transformer block: x + attn(ln1(x)), then + mlp(ln2(.))."""

    def __init__(self, dim: int, n_head: int, rng: np.random.Generator):
        super().__init__(ln1=LayerNorm(dim), attn=CausalSelfAttention(dim, n_head, rng),
                         ln2=LayerNorm(dim), mlp=MLP(dim, rng))

    def forward(self, x: np.ndarray) -> np.ndarray:  # (B, T, C) -> (B, T, C)
        s = self.sublayers
        x = x + s["attn"].forward(s["ln1"].forward(x))  # the residual stream carries x forward unchanged
        return x + s["mlp"].forward(s["ln2"].forward(x))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        s = self.sublayers
        # A residual connection copies the gradient: one copy skips the branch, one goes through it.
        dx = dout + s["ln2"].backward(s["mlp"].backward(dout))
        return dx + s["ln1"].backward(s["attn"].backward(dx))
