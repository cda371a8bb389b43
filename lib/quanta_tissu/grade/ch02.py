"""Checks for chapter 02's exercises (softmax, cross-entropy, gradients), against ``qt.numpy_nn``."""
import numpy as np

from ..numpy_nn import functional as F
from ..numpy_nn.gradcheck import numerical_gradient
from .core import CheckFailed, assert_close


def _logits(seed: int, n: int = 6, v: int = 5, scale: float = 3.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, v)) * scale, rng.integers(0, v, size=n)


def check_softmax(fn) -> str:
    x, _ = _logits(1)
    msg = assert_close(fn(x.copy()), F.softmax(x), "softmax")
    big = np.array([[1000.0, 1001.0, 1002.0]])
    assert_close(fn(big), F.softmax(big), "softmax of [1000, 1001, 1002] (subtract the row max)")
    return msg


def check_cross_entropy(fn) -> str:
    x, y = _logits(2)
    got = fn(x.copy(), y)
    if not np.isscalar(got) and np.asarray(got).shape != ():
        raise CheckFailed(f"expected a scalar (the mean over rows), got shape {np.asarray(got).shape}")
    return assert_close(got, F.cross_entropy(x, y), "mean cross-entropy")


def check_cross_entropy_grad(fn) -> str:
    x, y = _logits(3)
    return assert_close(fn(x.copy(), y), F.cross_entropy_grad(x, y), "dloss/dlogits")


def check_numerical_gradient(fn) -> str:
    x = np.random.default_rng(4).standard_normal((3, 4))
    f = lambda: float(np.sum(np.sin(x) * x))  # noqa: E731 - d/dx = cos(x) x + sin(x)
    got = fn(f, x, 1e-5)
    if not np.array_equal(x, np.random.default_rng(4).standard_normal((3, 4))):
        raise CheckFailed("x was left changed: restore each entry after probing it")
    return assert_close(got, np.cos(x) * x + np.sin(x), "numerical gradient", rtol=1e-6, atol=1e-7)


def check_bigram_full_batch_grad(fn) -> str:
    rng = np.random.default_rng(5)
    W = rng.standard_normal((4, 4))
    counts = rng.integers(0, 20, size=(4, 4))
    # Reference: the model's own gradient on the explicit list of pairs the counts describe.
    rows, cols = np.nonzero(counts)
    x = np.repeat(rows, counts[rows, cols])
    y = np.repeat(cols, counts[rows, cols])
    expected = F.one_hot(x, 4).T @ F.cross_entropy_grad(W[x], y)
    return assert_close(fn(W.copy(), counts.copy()), expected, "full-batch gradient")


CHECKS = {
    "softmax": check_softmax,
    "cross_entropy": check_cross_entropy,
    "cross_entropy_grad": check_cross_entropy_grad,
    "numerical_gradient": check_numerical_gradient,
    "bigram_full_batch_grad": check_bigram_full_batch_grad,
}
