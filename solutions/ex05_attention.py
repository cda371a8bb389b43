"""Chapter 05 solutions (one way among many)."""
import numpy as np


def softmax_backward(y: np.ndarray, dout: np.ndarray) -> np.ndarray:
    inner = np.sum(y * dout, axis=-1, keepdims=True)  # (..., 1): y . dout per row
    return y * dout - y * inner


def causal_mask(T: int) -> np.ndarray:
    rows = np.arange(T)[:, None]
    cols = np.arange(T)[None, :]
    return cols <= rows


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    T, D = q.shape[-2], q.shape[-1]
    scores = np.einsum("bhtd,bhsd->bhts", q, k) / np.sqrt(D)
    scores = np.where(causal_mask(T), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.einsum("bhts,bhsd->bhtd", weights, v)


def layernorm_backward(x: np.ndarray, w: np.ndarray, dout: np.ndarray, eps: float):
    C = x.shape[-1]
    mean = x.mean(axis=-1, keepdims=True)
    std = np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + eps)
    xhat = (x - mean) / std
    dw = (dout * xhat).reshape(-1, C).sum(axis=0)
    db = dout.reshape(-1, C).sum(axis=0)
    dxhat = dout * w
    dx = (C * dxhat - dxhat.sum(-1, keepdims=True) - xhat * (dxhat * xhat).sum(-1, keepdims=True)) / (C * std)
    return dx, dw, db
