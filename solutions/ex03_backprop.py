"""Chapter 03 solutions (one way among many)."""
import numpy as np


def linear_backward(x: np.ndarray, W: np.ndarray, dout: np.ndarray):
    dx = dout @ W.T  # (N, out) @ (out, in)
    dW = x.T @ dout  # (in, N) @ (N, out)
    db = dout.sum(axis=0)
    return dx, dW, db


def tanh_backward(y: np.ndarray, dout: np.ndarray) -> np.ndarray:
    return (1 - y * y) * dout


def embedding_backward(ids: np.ndarray, dout: np.ndarray, vocab_size: int) -> np.ndarray:
    dW = np.zeros((vocab_size, dout.shape[-1]))
    for n in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            dW[ids[n, t]] += dout[n, t]
    return dW


def adam_step(p, g, m, v, t: int, lr: float, b1: float, b2: float, eps: float):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
