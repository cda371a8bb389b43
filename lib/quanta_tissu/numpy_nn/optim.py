"""Optimizers in NumPy: SGD and Adam (chapters 02–03). Chapter 07 writes AdamW in torch.

Both update parameter arrays in place from the gradient arrays the layers overwrite.
Adam (Kingma & Ba, 2015), as tested:
    m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
"""
from __future__ import annotations

import numpy as np


class SGD:
    """p -= lr * g for each (param, grad) pair."""

    def __init__(self, pairs, lr: float):
        self.pairs, self.lr = list(pairs), lr

    def step(self) -> None:
        for p, g in self.pairs:
            p -= self.lr * g


class Adam:
    """Adam with bias correction; one (m, v) pair of moments per parameter."""

    def __init__(self, pairs, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.pairs, self.lr, self.betas, self.eps = list(pairs), lr, betas, eps
        self.m = [np.zeros_like(p) for p, _ in self.pairs]
        self.v = [np.zeros_like(p) for p, _ in self.pairs]
        self.t = 0

    def step(self) -> None:
        b1, b2 = self.betas
        self.t += 1
        for (p, g), m, v in zip(self.pairs, self.m, self.v):
            m[...] = b1 * m + (1 - b1) * g
            v[...] = b2 * v + (1 - b2) * g * g
            m_hat = m / (1 - b1**self.t)  # early moments are biased towards 0: correct them
            v_hat = v / (1 - b2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
