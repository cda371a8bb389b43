"""Checks for chapter 05's exercises (attention in NumPy), against ``qt.numpy_nn.transformer``."""
import numpy as np

from ..numpy_nn import transformer as tr
from .core import CheckFailed, assert_close, expect_tuple


def check_softmax_backward(fn) -> str:
    rng = np.random.default_rng(1)
    layer = tr.Softmax()
    y = layer.forward(rng.standard_normal((2, 3, 5)))
    dout = rng.standard_normal((2, 3, 5))
    return assert_close(fn(y.copy(), dout.copy()), layer.backward(dout), "dx")


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


def check_causal_attention(fn) -> str:
    rng = np.random.default_rng(2)
    B, H, T, D = 2, 3, 5, 4
    q, k, v = (rng.standard_normal((B, H, T, D)) for _ in range(3))
    # Reference: the lib's masked, scaled softmax, as inside tr.CausalSelfAttention.
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D)
    scores = np.where(np.triu(np.ones((T, T), dtype=bool), 1), -np.inf, scores)
    expected = tr.Softmax().forward(scores) @ v
    return assert_close(fn(q.copy(), k.copy(), v.copy()), expected, "attention output")


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
    assert_close(got[0], dx, "dx")
    assert_close(got[1], layer.grads["w"], "dw")
    assert_close(got[2], layer.grads["b"], "db")
    return "dx, dw and db match"


CHECKS = {
    "softmax_backward": check_softmax_backward,
    "causal_mask": check_causal_mask,
    "causal_attention": check_causal_attention,
    "layernorm_backward": check_layernorm_backward,
}
