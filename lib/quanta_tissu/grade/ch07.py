"""Checks for chapter 07's exercises (the training pipeline), against ``qt.training`` and torch."""
import numpy as np
import torch

from ..training import optim
from .core import CheckFailed, assert_close, expect_tuple


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
                              f"expected {expected:.6g}, got {got:.6g}")
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
    if not np.isclose(float(got[1]), norm.item(), rtol=1e-5):
        raise CheckFailed(f"norm before clipping: expected {norm.item():.6g}, got {float(got[1]):.6g}")
    for i, (g, r) in enumerate(zip(got[0], ref)):
        assert_close(g, r.grad.numpy(), f"clipped gradient {i}", rtol=1e-5, atol=1e-7)
    small = fn([torch.full((2,), 0.1)], 1.0)[0][0]
    assert_close(small, np.full(2, 0.1), "a gradient already below max_norm (must be unchanged)")
    return "matches torch.nn.utils.clip_grad_norm_"


def check_adamw_step(fn) -> str:
    torch.manual_seed(1)
    param = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    opt = torch.optim.AdamW([param], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    p, m, v = param.detach().clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for t in range(1, 4):
        g = torch.randn(5, dtype=torch.float64)
        param.grad = g.clone()
        opt.step()
        out = fn(p.clone(), g.clone(), m.clone(), v.clone(), t, 0.01, (0.9, 0.95), 1e-8, 0.1)
        p, m, v = expect_tuple(out, "new_p, new_m, new_v")
        assert_close(p, param.detach().numpy(), f"parameters after step {t} (vs torch.optim.AdamW)", rtol=1e-10)
    return "three steps match torch.optim.AdamW"


CHECKS = {
    "get_batch": check_get_batch,
    "cosine_lr": check_cosine_lr,
    "clip_grad_norm": check_clip_grad_norm,
    "adamw_step": check_adamw_step,
}
