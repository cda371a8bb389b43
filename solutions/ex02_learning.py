"""Chapter 02 solutions (one way among many)."""
import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    p = softmax(logits)
    return float(np.mean(-np.log(p[np.arange(len(targets)), targets])))


def cross_entropy_grad(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    n, v = logits.shape
    onehot = np.eye(v)[targets]  # (N, V)
    return (softmax(logits) - onehot) / n


def numerical_gradient(f, x: np.ndarray, h: float) -> np.ndarray:
    grad = np.zeros_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)  # views: writing them writes x and grad
    for i in range(flat_x.size):
        saved = flat_x[i]
        flat_x[i] = saved + h
        up = f()
        flat_x[i] = saved - h
        down = f()
        flat_x[i] = saved
        flat_g[i] = (up - down) / (2 * h)
    return grad


def bigram_full_batch_grad(W: np.ndarray, counts: np.ndarray) -> np.ndarray:
    n_rows = counts.sum(axis=1, keepdims=True)  # (V, 1) how often each row occurs
    return (n_rows * softmax(W) - counts) / counts.sum()
