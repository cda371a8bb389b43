"""Chapter 07 exercises: the pieces of a training pipeline.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 07

Shapes: B batch, T block size. Use NumPy and torch.
"""
import numpy as np
import torch


def get_batch(ids: np.ndarray, block_size: int, starts: np.ndarray):
    """ids: (N,) token ids; starts: (B,) window starts -> x, y: (B, T) int64 torch tensors,
    x[b] = ids[s : s+T] and y[b] = ids[s+1 : s+T+1] for s = starts[b]."""
    raise NotImplementedError


def cosine_lr(step: int, max_lr: float, min_lr: float, warmup: int, total: int) -> float:
    """Linear warmup: max_lr * (step + 1) / warmup for step < warmup; then cosine from max_lr down to
    min_lr at step == total: min_lr + (max_lr - min_lr) * (1 + cos(pi * r)) / 2 with
    r = (step - warmup) / (total - warmup); min_lr from total on."""
    raise NotImplementedError


def clip_grad_norm(grads: list, max_norm: float):
    """grads: list of tensors. If their global L2 norm (over all entries) exceeds max_norm, scale them all
    by max_norm / (norm + 1e-6). Return (new list of tensors, norm before clipping as a float)."""
    raise NotImplementedError


def adamw_step(p, g, m, v, t: int, lr: float, betas: tuple, eps: float, weight_decay: float):
    """One AdamW step at step t (1-based), as torch.optim.AdamW: decay p by lr * weight_decay first,
    then the bias-corrected Adam update. p, g, m, v: tensors of one shape. Return (new_p, new_m, new_v)."""
    raise NotImplementedError
