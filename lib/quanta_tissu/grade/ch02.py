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
    e = np.exp(x - x.max(axis=0))
    msg = assert_close(fn(x.copy()), F.softmax(x), "softmax", wrong=[
        (np.exp(x) / np.exp(x).sum(axis=0), "wrong axis: each column sums to 1; softmax normalises each row, over the "
                                            "last axis (axis=1 or -1, keepdims=True)"),
        (e / e.sum(axis=1, keepdims=True), "wrong axis for the max: you subtracted each column's max; subtract each "
                                           "row's own (axis=1, keepdims=True), a shift softmax does not notice"),
    ])
    big = np.array([[1000.0, 1001.0, 1002.0]])
    assert_close(fn(big), F.softmax(big), "softmax of [1000, 1001, 1002] (subtract the row max)")
    return msg


def check_cross_entropy(fn) -> str:
    x, y = _logits(2)
    got = fn(x.copy(), y)
    if not np.isscalar(got) and np.asarray(got).shape != ():
        raise CheckFailed(f"expected a scalar (the mean over rows), got shape {np.asarray(got).shape}")
    n = len(y)
    return assert_close(got, F.cross_entropy(x, y), "mean cross-entropy", hints={
        n: f"did you sum instead of averaging over the {n} rows?",
        -1: "the sign is flipped: the loss is -log p, a positive number",
        1 / np.log(2): "that is log base 2: use the natural log, np.log"})


def check_cross_entropy_grad(fn) -> str:
    x, y = _logits(3)
    n = len(y)
    return assert_close(fn(x.copy(), y), F.cross_entropy_grad(x, y), "dloss/dlogits", hints={
        n: f"a 1/N is missing: the loss is the mean over N = {n} rows, so its gradient is (softmax - one-hot) / {n}",
        -1: "the sign is flipped: the gradient is softmax minus one-hot, not one-hot minus softmax",
    }, wrong=[(F.softmax(x) / n, "the one-hot of the targets is not subtracted: (softmax - one-hot) / N")])


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
    total = int(counts.sum())
    rows = counts.sum(axis=1, keepdims=True)
    return assert_close(fn(W.copy(), counts.copy()), expected, "full-batch gradient", hints={
        total: f"did you sum instead of averaging over the {total} pairs? Divide by counts.sum()",
    }, wrong=[(expected * total / np.maximum(rows, 1), "each row is divided by its own count: the mean is over all "
                                                         "counts.sum() pairs at once")])


CHECKS = {
    "softmax": check_softmax,
    "cross_entropy": check_cross_entropy,
    "cross_entropy_grad": check_cross_entropy_grad,
    "numerical_gradient": check_numerical_gradient,
    "bigram_full_batch_grad": check_bigram_full_batch_grad,
}
