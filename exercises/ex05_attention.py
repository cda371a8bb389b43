"""Chapter 05 exercises: attention and its backward pass in NumPy.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 05

Shapes: B batch, H heads, T positions, D channels per head, C channels. Use NumPy only.
"""
import numpy as np


def softmax_backward(y: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """y = softmax(x) over the last axis, shape (..., N); dout = dL/dy (..., N) -> dL/dx (..., N)."""
    raise NotImplementedError


def causal_mask(T: int) -> np.ndarray:
    """(T, T) bool: mask[i, j] is True where query position i may attend to key position j (j <= i)."""
    raise NotImplementedError


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """q, k, v: (B, H, T, D) -> (B, H, T, D): softmax(q k^T / sqrt(D), future masked) @ v."""
    raise NotImplementedError


def layernorm_backward(x: np.ndarray, w: np.ndarray, dout: np.ndarray, eps: float):
    """Forward was y = (x - mean) / sqrt(var + eps) * w + b over the last axis (biased variance).

    x, dout: (B, T, C); w: (C,). Return (dx: (B, T, C), dw: (C,), db: (C,)).
    """
    raise NotImplementedError
