"""Softmax, cross-entropy and their gradients, in NumPy (chapter 02).

Conventions (tested): logits have shape (N, V); targets are int ids of shape (N,);
the loss is the *mean* over the N rows of -log softmax(logits)[target], in nats;
``cross_entropy_grad`` returns d(loss)/d(logits) = (softmax(logits) - one_hot(targets)) / N.
"""
from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis``, stable for large inputs.

    Subtracting the max changes nothing mathematically (it cancels) but keeps exp() finite.
    """
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(x)) computed without forming softmax (no log(0) for tiny probabilities)."""
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def one_hot(ids: np.ndarray, vocab_size: int, dtype=np.float64) -> np.ndarray:
    """Int ids of any shape (...) -> (..., V) with a single 1 in each last-axis row."""
    ids = np.asarray(ids)
    out = np.zeros((ids.size, vocab_size), dtype=dtype)
    out[np.arange(ids.size), ids.ravel()] = 1
    return out.reshape(*ids.shape, vocab_size)  # (N*, V) -> (*ids.shape, V)


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean negative log-likelihood of ``targets`` under softmax(``logits``); (N, V), (N,) -> scalar."""
    _check_logits_targets(logits, targets)
    logp = log_softmax(logits)  # (N, V)
    return float(-logp[np.arange(len(targets)), targets].mean())


def cross_entropy_grad(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """d cross_entropy / d logits, shape (N, V): (softmax - one_hot) / N."""
    _check_logits_targets(logits, targets)
    n = len(targets)
    grad = softmax(logits)
    grad[np.arange(n), targets] -= 1.0
    return grad / n


def _check_logits_targets(logits: np.ndarray, targets: np.ndarray) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, V), got shape {logits.shape}")
    if targets.shape != (logits.shape[0],):
        raise ValueError(f"targets must be ({logits.shape[0]},) to match logits {logits.shape}, got {targets.shape}")
    if targets.size and (targets.min() < 0 or targets.max() >= logits.shape[1]):
        raise ValueError(f"targets must lie in 0..{logits.shape[1] - 1}, found {targets.min()}..{targets.max()}")
