"""Chapter 03 exercises: backward passes by hand, and one Adam step.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 03

Shapes: N examples, T context length, C embedding size, V vocabulary, H hidden units.
Use NumPy only.
"""
import numpy as np


def linear_backward(x: np.ndarray, W: np.ndarray, dout: np.ndarray):
    """Forward was y = x @ W + b with x: (N, in), W: (in, out), dout = dL/dy: (N, out).

    Return (dx: (N, in), dW: (in, out), db: (out,)).
    """
    raise NotImplementedError


def tanh_backward(y: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """y = tanh(x): (N, H) (the forward's output), dout: (N, H) -> dx: (N, H)."""
    raise NotImplementedError


def embedding_backward(ids: np.ndarray, dout: np.ndarray, vocab_size: int) -> np.ndarray:
    """Forward was out = W[ids] with ids: (N, T), W: (V, C); dout: (N, T, C) -> dW: (V, C).

    An id that appears several times receives the sum of its gradients.
    """
    raise NotImplementedError


def adam_step(p, g, m, v, t: int, lr: float, b1: float, b2: float, eps: float):
    """One Adam step at step number t (1-based) with bias correction.

    p, g, m, v: arrays of one shape. Return (new_p, new_m, new_v).
    """
    raise NotImplementedError
