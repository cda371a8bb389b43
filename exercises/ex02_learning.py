"""Chapter 02 exercises: softmax, cross-entropy and their gradients.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 02

Shapes: N rows (examples), V classes (vocabulary). Use NumPy only.
"""
import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    """x: (N, V) -> (N, V), each row exp(x) / sum(exp(x)). Must not overflow for x = 1000."""
    raise NotImplementedError


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """logits: (N, V), targets: (N,) ints -> mean over rows of -log softmax(logits)[row, target]."""
    raise NotImplementedError


def cross_entropy_grad(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """logits: (N, V), targets: (N,) -> d(mean cross-entropy)/d(logits): (N, V)."""
    raise NotImplementedError


def numerical_gradient(f, x: np.ndarray, h: float) -> np.ndarray:
    """f: () -> float reads x; x: any shape, float64 -> central-difference gradient, shape of x.

    Change one entry of x at a time (x[idx] += h ...) and put it back afterwards.
    """
    raise NotImplementedError


def bigram_full_batch_grad(W: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """W: (V, V) logits table, counts: (V, V) pair counts -> (V, V) gradient of the mean
    cross-entropy over all counts.sum() pairs, computed from the counts alone (no loop over pairs).
    """
    raise NotImplementedError
