"""Checks for chapter 08's exercises (Llama-fication), against ``qt.llama`` and ``qt.training.optim``."""
import math

import torch
import torch.nn.functional as F

from ..llama import RMSNorm, SwiGLU, apply_rope, apply_rope_interleaved, rope_cache
from ..training import optim
from .core import CheckFailed, assert_close, expected_got


def _matches(got, expected) -> bool:
    got = torch.as_tensor(got)
    return got.shape == expected.shape and torch.allclose(got.double(), expected.double(), rtol=1e-5, atol=1e-6)


def check_rms_norm(fn) -> str:
    torch.manual_seed(0)
    x, w = torch.randn(2, 5, 8, dtype=torch.float64) * 3 + 1, torch.rand(8, dtype=torch.float64) + 0.5
    norm = RMSNorm(8, eps=1e-5).double()
    norm.weight.data = w.clone()
    with torch.no_grad():
        expected = norm(x)
    got = fn(x.clone(), w.clone(), 1e-5)
    if _matches(got, F.layer_norm(x, (8,), w, None, 1e-5)):
        raise CheckFailed("you subtracted the mean: that is LayerNorm. RMSNorm only divides by the root mean square")
    if _matches(got, expected / w):
        raise CheckFailed("the normalised values are right but the learned weight (gain) is not applied")
    ms = x.pow(2).mean(-1, keepdim=True)
    wrong = [(x / (ms.sqrt() + 1e-5) * w, "ε is added outside the square root: x / sqrt(mean(x²) + ε) puts it inside"),
             (x / (x.pow(2).sum(-1, keepdim=True) + 1e-5).sqrt() * w,
              "that is the sum of x² over the channels, not its mean: divide it by C = 8 "
              "(x.pow(2).mean(-1, keepdim=True))"),
             (x / (ms + 1e-5) * w, "the square root is missing: divide by sqrt(mean(x²) + ε)")]
    wrong += [(x / (x.pow(2).mean(d, keepdim=True) + 1e-5).sqrt() * w,
               f"wrong axis: the mean of x² runs over dim {d}; it runs over the channels, the last dim "
               "(dim=-1, keepdim=True)") for d in (0, 1)]
    return assert_close(got, expected.numpy(), "rms_norm(x of shape (2, 5, 8), weight, 1e-5)", rtol=1e-6,
                        wrong=[(value.numpy(), message) for value, message in wrong])


def check_swiglu(fn) -> str:
    torch.manual_seed(1)
    mlp = SwiGLU(6, 16).double()
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    g, u, d = mlp.gate.weight.detach(), mlp.up.weight.detach(), mlp.proj.weight.detach()
    with torch.no_grad():
        expected = mlp(x)
        got = fn(x.clone(), g.clone(), u.clone(), d.clone())
        if _matches(got, (F.silu(x @ u.T) * (x @ g.T)) @ d.T):
            raise CheckFailed("gate and up are swapped: silu goes on the gate projection, the up projection is linear")
        if _matches(got, (F.silu(x @ g.T)) @ d.T):
            raise CheckFailed("the up projection is missing: multiply silu(gate(x)) elementwise by up(x)")
    return assert_close(got, expected.numpy(), "swiglu output (B=2, T=3, C=6, F=16)")


def check_apply_rope(fn) -> str:
    torch.manual_seed(2)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    cos, sin = rope_cache(8, 7, 500.0)
    expected = apply_rope(x, cos.double(), sin.double())
    got = fn(x.clone(), 500.0)
    if _matches(got, apply_rope_interleaved(x, 500.0)):
        raise CheckFailed("you rotated pairs (2i, 2i+1): that is the original paper's interleaved convention; "
                          "transformers and the course pair dimension i with i + D/2 (rotate half)")
    got_t = torch.as_tensor(got)
    if got_t.shape == x.shape and not torch.allclose(got_t[:, :, 0], x[:, :, 0]):
        raise CheckFailed("position 0 changed: its angle is 0, so it must come out unrotated")
    if got_t.shape == x.shape and not torch.allclose(got_t.norm(dim=-1), x.norm(dim=-1)):
        raise CheckFailed("vector lengths changed: a rotation keeps them; check the signs of the sin terms")
    return assert_close(got, expected.numpy(), "apply_rope(x of shape (2, 3, 7, 8), theta=500)", rtol=1e-5, atol=1e-6)


def check_repeat_kv(fn) -> str:
    kv = torch.arange(2 * 3 * 4 * 2, dtype=torch.float64).reshape(2, 3, 4, 2)
    got = fn(kv.clone(), 2)
    if _matches(got, kv.repeat(1, 2, 1, 1)):
        raise CheckFailed("you tiled the heads (0, 1, 2, 0, 1, 2): query head h would read kv head h % KV; "
                          "each kv head must be repeated in place (0, 0, 1, 1, 2, 2), head h -> h // n_rep")
    msg = assert_close(got, kv.repeat_interleave(2, dim=1).numpy(), "repeat_kv(kv of shape (2, 3, 4, 2), 2)")
    assert_close(fn(kv.clone(), 1), kv.numpy(), "repeat_kv(kv, 1) (MHA: unchanged)")
    return msg


def check_wsd_lr(fn) -> str:
    args = (1e-3, 1e-4, 10, 100, 0.4)  # max_lr, min_lr, warmup, total, cooldown: flat from 10 to 60, then down
    for step in [0, 9, 10, 35, 59, 60, 61, 80, 99, 100, 150]:
        expected, got = optim.wsd_lr(step, *args), fn(step, *args)
        if math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-15):
            continue
        where = f"wsd_lr(step={step}, max 1e-3, min 1e-4, warmup 10, total 100, cooldown 0.4)"
        if math.isclose(got, optim.cosine_lr(step, *args[:4]), rel_tol=1e-6):
            raise CheckFailed(f"{where} is the cosine's value: between warmup and cooldown the rate stays at max_lr")
        if math.isclose(got, optim.wsd_lr(step, *args[:4], 1 - args[4]), rel_tol=1e-6):
            raise CheckFailed(f"{where}: your cooldown lasts 60% of the steps; cooldown is the fraction of the *last* "
                              "steps spent decaying (d = total - round(cooldown * total))")
        if math.isclose(got, optim.wsd_lr(step, 1e-3, 0.0, *args[2:]), rel_tol=1e-6):
            raise CheckFailed(f"{where}: your line ends at 0; it must end at min_lr")
        raise CheckFailed(f"{where}: {expected_got(expected, got)}")
    return "right during warmup, the flat phase, the cooldown and after the end"


CHECKS = {
    "rms_norm": check_rms_norm,
    "swiglu": check_swiglu,
    "apply_rope": check_apply_rope,
    "repeat_kv": check_repeat_kv,
    "wsd_lr": check_wsd_lr,
}
