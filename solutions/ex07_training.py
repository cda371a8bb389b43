"""Chapter 07 solutions (one way among many)."""
import math

import numpy as np
import torch


def get_batch(ids: np.ndarray, block_size: int, starts: np.ndarray):
    x = np.stack([ids[s:s + block_size] for s in starts])
    y = np.stack([ids[s + 1:s + 1 + block_size] for s in starts])
    return torch.tensor(x, dtype=torch.int64), torch.tensor(y, dtype=torch.int64)


def cosine_lr(step: int, max_lr: float, min_lr: float, warmup: int, total: int) -> float:
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / (total - warmup)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def clip_grad_norm(grads: list, max_norm: float):
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if norm > max_norm:
        factor = max_norm / (norm + 1e-6)
        return [g * factor for g in grads], norm
    return list(grads), norm


def adamw_step(p, g, m, v, t, lr, betas, eps, weight_decay):
    b1, b2 = betas
    p = p * (1 - lr * weight_decay)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    update = (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + eps)
    return p - lr * update, m, v
