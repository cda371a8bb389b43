"""Checks for chapter 05's exercises (attention in NumPy), against ``qt.numpy_nn.transformer``."""
import numpy as np

from ..numpy_nn import transformer as tr
from .core import CheckFailed, assert_close, expect_tuple


def check_softmax_backward(fn) -> str:
    rng = np.random.default_rng(1)
    layer = tr.Softmax()
    y = layer.forward(rng.standard_normal((2, 3, 5)))
    dout = rng.standard_normal((2, 3, 5))
    wrong = [(y * dout - y * np.sum(y * dout), "y·dout is summed over everything: it is one number per row, "
                                               "np.sum(y * dout, axis=-1, keepdims=True)"),
             (y * dout, "the -y (y·dout) term is missing: the Jacobian of softmax is diag(y) - y yᵀ")]
    wrong += [(y * dout - y * np.sum(y * dout, axis=a, keepdims=True),
               f"wrong axis: y·dout is summed over axis {a}; softmax ran over the last axis, so sum over axis=-1 "
               "(keepdims=True)") for a in (0, 1)]
    return assert_close(fn(y.copy(), dout.copy()), layer.backward(dout), "dx", wrong=wrong)


def check_causal_mask(fn) -> str:
    for T in (1, 4, 7):
        got = np.asarray(fn(T))
        expected = np.tril(np.ones((T, T), dtype=bool))
        if got.shape != (T, T):
            raise CheckFailed(f"causal_mask({T}): expected shape {(T, T)}, got {got.shape}")
        if got.dtype != bool:
            raise CheckFailed(f"causal_mask({T}): expected a bool array, got dtype {got.dtype}")
        wrong = np.argwhere(got != expected)
        if len(wrong):
            i, j = wrong[0]
            raise CheckFailed(f"causal_mask({T})[{i}, {j}] should be {expected[i, j]} (query {i} "
                              f"{'may' if expected[i, j] else 'may not'} see key {j})")
    return "right for T = 1, 4, 7"


def _attention(q, k, v, scale: float, hidden, axis: int = -1) -> np.ndarray:
    """softmax(q kᵀ * scale, with ``hidden`` (T, T) masked, over ``axis``) @ v, in plain NumPy."""
    scores = q @ k.transpose(0, 1, 3, 2) * scale
    scores = np.where(hidden, -np.inf, scores)
    e = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True) @ v


def check_causal_attention(fn) -> str:
    rng = np.random.default_rng(2)
    B, H, T, D = 2, 3, 5, 4
    q, k, v = (rng.standard_normal((B, H, T, D)) for _ in range(3))
    # Reference: the lib's masked, scaled softmax, as inside tr.CausalSelfAttention.
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D)
    future = np.triu(np.ones((T, T), dtype=bool), 1)
    scores = np.where(future, -np.inf, scores)
    expected = tr.Softmax().forward(scores) @ v
    wrong = [
        (_attention(q, k, v, 1.0, future), f"the scores are not scaled: divide q kᵀ by √D = √{D} before the softmax"),
        (_attention(q, k, v, 1 / D, future), f"the scores are divided by D = {D}; divide by √D = √{D}"),
        (_attention(q, k, v, np.sqrt(D), future), f"the scores are multiplied by √D; divide by √D = √{D}"),
        (_attention(q, k, v, 1 / np.sqrt(D), future, axis=-2),
         "wrong axis: the softmax ran over the queries (axis -2); each query's weights over the keys, the last axis, "
         "must sum to 1"),
        (_attention(q, k, v, 1 / np.sqrt(D), np.zeros((T, T), dtype=bool)), "no mask: query i must not see keys j > i"),
        (_attention(q, k, v, 1 / np.sqrt(D), np.tril(np.ones((T, T), dtype=bool), -1)),
         "the mask is the wrong way round: query i may see keys j <= i; the future j > i is what gets hidden"),
    ]
    return assert_close(fn(q.copy(), k.copy(), v.copy()), expected, "attention output", wrong=wrong)


def check_layernorm_backward(fn) -> str:
    rng = np.random.default_rng(3)
    layer = tr.LayerNorm(6)
    layer.params["w"][...] = rng.standard_normal(6)
    x = rng.standard_normal((2, 4, 6)) * 2 + 1
    layer.forward(x)
    dout = rng.standard_normal((2, 4, 6))
    dx = layer.backward(dout)
    got = fn(x.copy(), layer.params["w"].copy(), dout.copy(), 1e-5)
    expect_tuple(got, "dx, dw, db")
    C = x.shape[-1]
    assert_close(got[0], dx, "dx", hints={
        C: f"a 1/C is missing: the mean and the variance average over the C = {C} channels, so dx has a 1/C"})
    assert_close(got[1], layer.grads["w"], "dw")
    assert_close(got[2], layer.grads["b"], "db")
    return "dx, dw and db match"


CHECKS = {
    "softmax_backward": check_softmax_backward,
    "causal_mask": check_causal_mask,
    "causal_attention": check_causal_attention,
    "layernorm_backward": check_layernorm_backward,
}
