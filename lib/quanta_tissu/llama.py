"""Llama-fication (chapter 08): the pieces that turn chapter 06's GPT into a Llama-style model.

Each piece is switched on by a field of ``GPTConfig``, so any combination can be built and compared:
- ``RMSNorm`` (``norm="rmsnorm"``): scale by the root mean square, no centring, no bias; its backward
  is written by hand (``RMSNormFunction``) and tested against autograd of the formula (``rms_norm_autograd``);
- ``SwiGLU`` (``mlp="swiglu"``): down(silu(gate(x)) * up(x)), three matrices;
- rotary position embeddings (``position="rope"``): rotate queries and keys by position-dependent
  angles instead of adding a learned position vector; ``rope_theta`` is the base period;
- ``GroupedQueryAttention`` (``n_kv_heads``): fewer key/value heads than query heads (1: MQA).
Conventions (tested against transformers' Llama): RoPE pairs dimension i with i + D/2 ("rotate
half"); the original paper pairs 2i with 2i+1 ("interleaved"), and ``interleaved_to_half`` is the
permutation of projection rows that converts one into the other. Query head h reads key/value head
h // (n_head / n_kv_heads). RMSNorm normalises in float32.
Does not: train, cache keys and values, or load checkpoints.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


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


def rope_cache(head_dim: int, max_len: int, theta: float = 10000.0):
    """cos, sin of shape (max_len, head_dim) for the rotate-half convention.

    Frequency i (i < D/2) is theta^(-2i/D); dimensions i and i + D/2 share it.
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head size, got {head_dim}")
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (D/2,)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D): dims i and i + D/2 rotate together
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last axis."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys by their positions' angles: x (B, H, T, D) with cos, sin (T, D), or
    x (B, T, H, D) with cos, sin (T, 1, D); either way the angles broadcast over batch and heads."""
    return x * cos + rotate_half(x) * sin


def apply_rope_interleaved(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """The original paper's convention: pairs (2i, 2i+1) rotate by the angle of frequency i."""
    B, H, T, D = x.shape
    inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D)
    angles = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)  # (T, D/2)
    pairs = x.float().reshape(B, H, T, D // 2, 2)  # (B, H, T, D) -> (B, H, T, D/2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([a * angles.cos() - b * angles.sin(), a * angles.sin() + b * angles.cos()], dim=-1)
    return rotated.reshape(B, H, T, D).to(x.dtype)  # (B, H, T, D/2, 2) -> (B, H, T, D)


def interleaved_to_half(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Permute the rows of a q or k projection (out, in) so that a model written for interleaved RoPE
    computes the same attention with rotate-half RoPE: within each head, rows 0,2,4,... then 1,3,5,..."""
    out, dim = weight.shape
    head_dim = out // n_heads
    return weight.view(n_heads, head_dim // 2, 2, dim).transpose(1, 2).reshape(out, dim)


class GroupedQueryAttention(nn.Module):
    """Causal attention with n_kv_heads key/value heads shared by groups of query heads, and optional RoPE."""

    def __init__(self, cfg):
        super().__init__()
        self.n_head, self.n_kv = cfg.n_head, cfg.n_kv_heads
        self.head_dim = cfg.n_embd // cfg.n_head
        q_dim, kv_dim = self.n_head * self.head_dim, self.n_kv * self.head_dim
        self.qkv = nn.Linear(cfg.n_embd, q_dim + 2 * kv_dim, bias=cfg.bias)  # q | k | v, k and v smaller
        self.proj = nn.Linear(q_dim, cfg.n_embd, bias=cfg.bias)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.use_rope = cfg.position == "rope"
        if self.use_rope:
            cos, sin = rope_cache(self.head_dim, cfg.block_size, cfg.rope_theta)
            self.register_buffer("cos", cos, persistent=False)  # derived from the config: not saved
            self.register_buffer("sin", sin, persistent=False)
        mask = torch.tril(torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        B, T, C = x.shape
        H, KV, D = self.n_head, self.n_kv, self.head_dim
        heads = self.qkv(x).view(B, T, H + 2 * KV, D)  # (B, T, (H + 2KV) * D) -> (B, T, H + 2KV, D): q | k | v
        qk, v = heads.split([H + KV, KV], dim=2)
        if self.use_rope:  # queries and keys share their positions' angles: one call rotates both
            qk = apply_rope(qk, self.cos[:T, None], self.sin[:T, None])  # cos, sin (T, 1, D): the same for every head
        q, k = qk.split([H, KV], dim=2)
        q = q.transpose(1, 2) * D**-0.5  # (B, H, T, D), scaled here: T x D products instead of T x T scores
        k, v = k.transpose(1, 2), v.transpose(1, 2)  # (B, KV, T, D)
        if KV < H:  # each key/value head serves a group of query heads
            group = H // KV
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, H, T, D): h -> h // group
        att = q @ k.transpose(-2, -1)  # (B, H, T, T), already divided by sqrt(D)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (self.attn_drop(att) @ v).transpose(1, 2).reshape(B, T, H * D)  # (B, H, T, D) -> (B, T, C)
        return self.resid_drop(self.proj(y))
