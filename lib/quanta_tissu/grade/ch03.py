"""Checks for chapter 03's exercises (backward passes, Adam), against ``qt.numpy_nn`` layers."""
import numpy as np

from ..numpy_nn import layers
from ..numpy_nn.optim import Adam
from .core import CheckFailed, assert_close, expect_tuple


def check_linear_backward(fn) -> str:
    rng = np.random.default_rng(1)
    layer = layers.Linear(4, 3, rng)
    layer.params["b"][...] = rng.standard_normal(3)
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    layer.forward(x)
    dx = layer.backward(dout)
    got = fn(x.copy(), layer.params["W"].copy(), dout.copy())
    expect_tuple(got, "dx, dW, db")
    assert_close(got[0], dx, "dx")
    assert_close(got[1], layer.grads["W"], "dW")
    if np.shape(got[2]) == (len(x),):
        raise CheckFailed(f"db: shape {np.shape(got[2])} is one value per row: sum dout over the batch, axis 0, "
                          "for one value per output")
    assert_close(got[2], layer.grads["b"], "db", hints={
        1 / len(x): f"did you average over the {len(x)} rows? The bias gets the sum of dout over the batch"})
    return "dx, dW and db match"


def check_tanh_backward(fn) -> str:
    rng = np.random.default_rng(2)
    layer = layers.Tanh()
    y = layer.forward(rng.standard_normal((4, 6)))
    dout = rng.standard_normal((4, 6))
    return assert_close(fn(y.copy(), dout), layer.backward(dout), "dx")


def check_embedding_backward(fn) -> str:
    rng = np.random.default_rng(3)
    layer = layers.Embedding(6, 3, rng)
    ids = np.array([[0, 2, 2], [5, 2, 0]])  # repeated ids: their gradients must add up
    layer.forward(ids)
    dout = rng.standard_normal((2, 3, 3))
    layer.backward(dout)
    overwritten = np.zeros((6, 3))
    overwritten[ids] += dout  # fancy indexing: a repeated id keeps one of its gradients, not their sum
    return assert_close(fn(ids, dout.copy(), 6), layer.grads["W"], "dW (rows used twice must sum)", wrong=[
        (overwritten, "a row used more than once kept only one of its gradients: dW[ids] += dout does not add up "
                      "repeated ids; use np.add.at(dW, ids, dout) or a loop")])


def check_adam_step(fn) -> str:
    rng = np.random.default_rng(4)
    p = rng.standard_normal(5)
    ref = p.copy()
    opt = Adam([(ref, np.zeros(5))], lr=0.1)
    m, v = np.zeros(5), np.zeros(5)
    for t in range(1, 4):  # three steps, so the bias correction matters
        g = rng.standard_normal(5)
        opt.pairs[0][1][...] = g
        opt.step()
        out = fn(p.copy(), g, m.copy(), v.copy(), t, 0.1, 0.9, 0.999, 1e-8)
        uncorrected = p - 0.1 * opt.m[0] / (np.sqrt(opt.v[0]) + 1e-8)
        p, m, v = expect_tuple(out, "new_p, new_m, new_v")
        assert_close(m, opt.m[0], f"m after step {t}")
        assert_close(v, opt.v[0], f"v after step {t}")
        assert_close(p, ref, f"parameters after step {t}", wrong=[
            (uncorrected, "the bias correction is missing: divide m by 1 - b1**t and v by 1 - b2**t before the "
                          "update")])
    return "three steps match qt.numpy_nn.optim.Adam, bias correction included"


CHECKS = {
    "linear_backward": check_linear_backward,
    "tanh_backward": check_tanh_backward,
    "embedding_backward": check_embedding_backward,
    "adam_step": check_adam_step,
}
