"""AdamW from scratch, the learning-rate schedules and gradient clipping (chapter 07; ``wsd_lr``: chapter 08).

AdamW (Loshchilov & Hutter, 2019), as torch.optim.AdamW computes it (tested step for step):
    p <- p - lr * wd * p                          (decoupled weight decay, before the Adam step)
    m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
The course trains with ``torch.optim.AdamW`` (the same arithmetic in compiled code); this one is for understanding.
"""
from __future__ import annotations

import math

import torch


class AdamW(torch.optim.Optimizer):
    """A readable AdamW: the same arithmetic as ``torch.optim.AdamW``, one parameter at a time."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01):
        if lr < 0 or eps < 0 or not all(0.0 <= b < 1.0 for b in betas) or weight_decay < 0:
            raise ValueError(f"invalid AdamW hyperparameters: lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["step"] += 1
                t = state["step"]
                p.mul_(1 - group["lr"] * group["weight_decay"])  # decay the weights, not the gradient
                state["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                state["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (state["v"] / (1 - b2**t)).sqrt_().add_(group["eps"])
                p.addcdiv_(state["m"], denom, value=-group["lr"] / (1 - b1**t))


def cosine_lr(step: int, max_lr: float, min_lr: float, warmup: int, total: int) -> float:
    """Linear warmup from 0 over ``warmup`` steps, then cosine decay to ``min_lr`` at ``total``.

    lr(s) = max_lr * (s + 1) / warmup                                   for s < warmup
          = min_lr + (max_lr - min_lr) * (1 + cos(pi * r)) / 2,  r = (s - warmup) / (total - warmup)
          = min_lr                                                      for s >= total
    """
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    ratio = (step - warmup) / max(1, total - warmup)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * ratio))


def wsd_lr(step: int, max_lr: float, min_lr: float, warmup: int, total: int, cooldown: float = 0.4) -> float:
    """Warmup-stable-decay (MiniCPM, Hu et al. 2024; Hagele et al. 2024): ``cosine_lr``'s linear warmup, then
    ``max_lr`` held flat, then a straight line down to ``min_lr`` over the last ``cooldown`` of the steps.

    lr(s) = max_lr * (s + 1) / warmup                            for s < warmup
          = max_lr                                               for warmup <= s < d,  d = max(warmup, total - round(cooldown * total))
          = max_lr + (min_lr - max_lr) * (s - d) / (total - d)   for d <= s < total
          = min_lr                                               for s >= total
    The length of the run matters only once the cooldown starts; a cosine needs it from the first step.
    """
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    decay_start = max(warmup, total - round(cooldown * total))
    if step < decay_start:
        return max_lr
    return max_lr + (min_lr - max_lr) * (step - decay_start) / max(1, total - decay_start)


def clip_grad_norm(parameters, max_norm: float) -> float:
    """Scale all gradients so their global L2 norm is at most ``max_norm``; return the norm before."""
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g.mul_(scale)
    return float(total)
