"""Llama-fication (chapter 08): the pieces that turn chapter 06's GPT into a Llama-style model.

Each piece is switched on by a field of ``GPTConfig``, so any combination can be built and compared:
- ``RMSNorm`` (``norm="rmsnorm"``): scale by the root mean square, no centring, no bias; its backward
  is written by hand (``RMSNormFunction``) and tested against autograd of the formula (``rms_norm_autograd``);
- ``SwiGLU`` (``mlp="swiglu"``): down(silu(gate(x)) * up(x)), three matrices;
- rotary position embeddings (``position="rope"``): rotate queries and keys by position-dependent
  angles instead of adding a learned position vector; ``rope_theta`` is the base period. They live in
  ``qt.rope`` (re-exported here), and the one attention (``qt.attention.Attention``) applies them;
- grouped-query attention (``n_kv_heads``): fewer key/value heads than query heads (1: MQA), also a
  switch of ``qt.attention.Attention`` (``repeat_kv``).
Conventions (tested against transformers' Llama): RMSNorm normalises in float32; RoPE's are in ``qt.rope``.
Does not: train, cache keys and values, or load checkpoints.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import (RotaryEmbedding, apply_rope, apply_rope_interleaved, interleaved_to_half,  # noqa: F401
                   rope_cache, rotate_half)


def rms_norm_autograd(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The formula, left to autograd: y = weight * x / sqrt(mean(x^2) + eps), normalised in float32.

    Six recorded operations, each replayed backwards by autograd: the reference the hand-written
    backward of ``RMSNormFunction`` is tested against."""
    x32 = x.to(torch.promote_types(x.dtype, torch.float32))  # float16/bfloat16 lose too much: use float32
    normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


class RMSNormFunction(torch.autograd.Function):
    """RMSNorm with its backward written by hand, as chapter 05 did for LayerNorm in NumPy.

    With xhat = x * r, r = 1 / sqrt(mean(x^2) + eps) and g = dL/dy * weight, over the last axis:
        dL/dx = r * (g - xhat * mean(g * xhat)),   dL/dweight = sum over (B, T) of dL/dy * xhat.
    The same numbers as ``rms_norm_autograd`` (up to rounding) in less time: autograd would replay
    six small operations, each a pass over the (B, T, C) activations (chapter 08 times both)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        x32 = x.to(torch.promote_types(x.dtype, torch.float32))
        r = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)  # (B, T, 1)
        xhat = x32 * r  # (B, T, C), float32: kept for the backward
        ctx.save_for_backward(xhat, r, weight)
        ctx.x_dtype = x.dtype
        return weight * xhat.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        xhat, r, weight = ctx.saved_tensors
        grad32 = grad.to(xhat.dtype)
        grad_weight = (grad32 * xhat).flatten(0, -2).sum(dim=0)  # (B, T, C) -> (B*T, C) -> (C,)
        g = grad32 * weight
        grad_x = r * (g - xhat * (g * xhat).mean(dim=-1, keepdim=True))  # (B, T, C)
        return grad_x.to(ctx.x_dtype), grad_weight.to(weight.dtype), None


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight: LayerNorm without the mean and the bias."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():  # inference: the same operations, without the Function's bookkeeping
            return rms_norm_autograd(x, self.weight, self.eps)
        return RMSNormFunction.apply(x, self.weight, self.eps)


class SwiGLU(nn.Module):
    """The gated MLP of Llama: down(silu(gate(x)) * up(x)). Three matrices of C x d_ff."""

    def __init__(self, dim: int, hidden: int, bias: bool = False, dropout: float = 0.0):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=bias)
        self.up = nn.Linear(dim, hidden, bias=bias)
        self.proj = nn.Linear(hidden, dim, bias=bias)  # "down"; named proj like the GELU MLP's output
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.silu(self.gate(x)) * self.up(x)))


def swiglu_hidden(dim: int, multiple_of: int = 8) -> int:
    """d_ff that gives SwiGLU's three matrices about the parameters of GELU's two at 4 * dim."""
    return multiple_of * math.ceil((8 * dim / 3) / multiple_of)
