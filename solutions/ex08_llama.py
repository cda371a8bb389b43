"""Chapter 08 exercises: solutions."""
import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """x: (..., C), weight: (C,) -> (..., C)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, T, C)."""
    return (torch.nn.functional.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T  # (B, T, F) -> (B, T, C)


def apply_rope(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """(B, H, T, D) -> (B, H, T, D), rotate-half convention."""
    T, D = x.shape[-2:]
    inv_freq = theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)  # (D/2,)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : D // 2], x[..., D // 2:]  # the two halves: dimension i pairs with i + D/2
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def repeat_kv(kv: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, KV, T, D) -> (B, KV * n_rep, T, D): each kv head copied n_rep times in a row."""
    return kv.repeat_interleave(n_rep, dim=1)


def wsd_lr(step: int, max_lr: float, min_lr: float, warmup: int, total: int, cooldown: float) -> float:
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    d = max(warmup, total - round(cooldown * total))  # the cooldown's first step
    if step < d:
        return max_lr
    return max_lr + (min_lr - max_lr) * (step - d) / (total - d)
