"""Checks for chapter 07's exercises (the training pipeline), against ``qt.training`` and torch."""
import numpy as np
import torch

from ..training import optim
from .core import CheckFailed, assert_close, expect_tuple, expected_got, matches


def check_get_batch(fn) -> str:
    ids = np.arange(100, 160)
    starts = np.array([0, 7, 43])
    got = fn(ids, 5, starts)
    x, y = expect_tuple(got, "x, y")
    if not isinstance(x, torch.Tensor) or x.dtype != torch.int64:
        raise CheckFailed(f"x must be an int64 torch tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    assert_close(x, np.stack([ids[s:s + 5] for s in starts]), "x")
    assert_close(y, np.stack([ids[s + 1:s + 6] for s in starts]), "y (x shifted by one)")
    return "x and y right"


def check_cosine_lr(fn) -> str:
    for step in [0, 5, 9, 10, 30, 55, 99, 100, 150]:
        expected = optim.cosine_lr(step, 1e-3, 1e-4, 10, 100)
        got = fn(step, 1e-3, 1e-4, 10, 100)
        if not np.isclose(got, expected, rtol=1e-9, atol=1e-15):
            raise CheckFailed(f"cosine_lr(step={step}, max 1e-3, min 1e-4, warmup 10, total 100): "
                              f"{expected_got(expected, got)}")
    return "right during warmup, decay and after the end"


def check_clip_grad_norm(fn) -> str:
    torch.manual_seed(0)
    grads = [torch.randn(3, 4) * 5, torch.randn(7) * 5]
    ref = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for r, g in zip(ref, grads):
        r.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(ref, 1.0)
    got = fn([g.clone() for g in grads], 1.0)
    expect_tuple(got, "clipped grads, norm")
    norms = [g.norm().item() for g in grads]
    per_tensor = [g / (n + 1e-6) for g, n in zip(grads, norms)]  # each tensor clipped by its own norm
    if (len(got[0]) == len(grads) and all(matches(g, p, rtol=1e-5, atol=1e-7) for g, p in zip(got[0], per_tensor))
            and not all(matches(g, r.grad, rtol=1e-5, atol=1e-7) for g, r in zip(got[0], ref))):
        raise CheckFailed("each tensor was clipped by its own norm: clipping is global, one norm over all the "
                          "gradients together (the square root of the sum of every squared entry), one factor for all")
    got_norm = float(got[1])
    if not np.isclose(got_norm, norm.item(), rtol=1e-5):
        where = f"norm before clipping: {expected_got(norm.item(), got_norm)}"
        for value, why in [(sum(norms), "the sum of the per-tensor norms; the global norm is the square root of the "
                                        "sum of all the squares"),
                           (norm.item() ** 2, "the square root is missing"),
                           (max(norms), "the largest tensor's norm; the global norm covers all the tensors"),
                           (norms[-1], "the last tensor's norm; the global norm covers all the tensors")]:
            if np.isclose(got_norm, value, rtol=1e-5):
                raise CheckFailed(f"{where}: {why}")
        raise CheckFailed(where)
    factor = 1.0 / (norm.item() + 1e-6)
    for i, (g, r) in enumerate(zip(got[0], ref)):
        assert_close(g, r.grad.numpy(), f"clipped gradient {i}", rtol=1e-5, atol=1e-7, wrong=[
            (grads[i].numpy() / factor, "the factor is upside down: multiply by max_norm / norm (< 1), not by "
                                        "norm / max_norm"),
            (per_tensor[i].numpy(), "this tensor was clipped by its own norm: clipping is global, one norm over all "
                                    "the gradients together, one factor for all")])
    small = fn([torch.full((2,), 0.1)], 1.0)[0][0]
    assert_close(small, np.full(2, 0.1), "a gradient already below max_norm (must be unchanged)", wrong=[
        (np.full(2, 0.1) / (0.02 ** 0.5 + 1e-6), "scaled although its norm (0.141) is below max_norm: clip only when "
                                                  "the norm exceeds max_norm")])
    return "matches torch.nn.utils.clip_grad_norm_"


def _adam(p, g, m, v, t, lr, betas, eps, correct: bool = True):
    b1, b2 = betas
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    if correct:
        m, v = m / (1 - b1**t), v / (1 - b2**t)
    return p - lr * m / (v.sqrt() + eps)


def _adamw_mistakes(p, g, m, v, t, lr, betas, eps, wd) -> list:
    """The new parameters of AdamW's classic mistakes, from the same inputs, with what each one is."""
    try:
        p, m, v = (torch.as_tensor(x, dtype=torch.float64) for x in (p, m, v))
    except (TypeError, ValueError, RuntimeError):
        return []  # the learner's state is not a tensor: assert_close will say so
    decayed = p * (1 - lr * wd)
    return [
        (_adam(p, g + wd * p, m, v, t, lr, betas, eps).numpy(),
         "that is Adam with L2 regularisation: weight_decay * p went into the gradient, so Adam's scaling rescales it. "
         "AdamW's decay is decoupled: p * (1 - lr * weight_decay), outside the adaptive update"),
        (_adam(p * (1 - wd), g, m, v, t, lr, betas, eps).numpy(),
         "the decay must be scaled by the learning rate: p * (1 - lr * weight_decay), not p * (1 - weight_decay)"),
        (_adam(p, g, m, v, t, lr, betas, eps).numpy() * (1 - lr * wd),
         "the decay comes first, on the old weights (as torch does): p * (1 - lr * weight_decay), then the Adam "
         "update"),
        (_adam(p, g, m, v, t, lr, betas, eps).numpy(),
         "the weight decay is missing: p * (1 - lr * weight_decay) first"),
        (_adam(decayed, g, m, v, t, lr, betas, eps, correct=False).numpy(),
         "the bias correction is missing: divide m by 1 - b1**t and v by 1 - b2**t"),
    ]


def check_adamw_step(fn) -> str:
    torch.manual_seed(1)
    param = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = torch.optim.AdamW([param], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    p, m, v = param.detach().clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for t in range(1, 4):
        g = torch.randn(5, dtype=torch.float64)
        param.grad = g.clone()
        opt.step()
        wrong = _adamw_mistakes(p, g, m, v, t, 0.01, (0.9, 0.95), 1e-8, 0.1)
        out = fn(p.clone(), g.clone(), m.clone(), v.clone(), t, 0.01, (0.9, 0.95), 1e-8, 0.1)
        p, m, v = expect_tuple(out, "new_p, new_m, new_v")
        assert_close(p, param.detach().numpy(), f"parameters after step {t} (vs torch.optim.AdamW)", rtol=1e-10,
                     wrong=wrong)
    return "three steps match torch.optim.AdamW"


CHECKS = {
    "get_batch": check_get_batch,
    "cosine_lr": check_cosine_lr,
    "clip_grad_norm": check_clip_grad_norm,
    "adamw_step": check_adamw_step,
}
