"""Rotary position embeddings, RoPE (chapter 08): positions enter attention as rotations of queries and keys.

Does:
- ``rope_cache`` builds the cos and sin tables; ``rotate_half`` and ``apply_rope`` rotate a tensor of heads;
- ``RotaryEmbedding`` holds the tables as (unsaved) buffers and rotates queries and keys at given positions:
  0..T-1 by default, or per-sequence positions (B, T), which left-padded batches (chapter 10) and the KV
  cache (chapter 11) need;
- ``apply_rope_interleaved`` is the original paper's convention and ``interleaved_to_half`` the permutation of
  projection rows that converts a checkpoint written for it (``half_to_interleaved`` the way back, chapter 14).
Conventions (tested against transformers' Llama): frequency i (i < D/2) is theta^(-2i/D) and dimensions i and
i + D/2 rotate together ("rotate half"); the paper pairs 2i with 2i + 1.
Does not: know about attention heads' projections or the cache; ``qt.attention`` calls it.
"""
from __future__ import annotations

import torch
import torch.nn as nn


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
    x (B, T, H, D) with cos, sin (T, 1, D) or (B, T, 1, D); the angles broadcast over batch and heads."""
    return torch.addcmul(x * cos, rotate_half(x), sin)  # x * cos + rotate_half(x) * sin, one operation fewer


class RotaryEmbedding(nn.Module):
    """RoPE for heads laid out (B, T, heads, D): the tables for positions 0..max_len-1, looked up by position."""

    def __init__(self, head_dim: int, max_len: int, theta: float = 10000.0):
        super().__init__()
        self.head_dim, self.theta = head_dim, theta
        cos, sin = rope_cache(head_dim, max_len, theta)
        self.register_buffer("cos", cos[:, None], persistent=False)  # (max_len, 1, D): broadcasts over the heads
        self.register_buffer("sin", sin[:, None], persistent=False)  # derived from the config: not saved

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
        """x (B, T, heads, D); positions None (start..start+T-1 for every row: a slice of the tables, no lookup)
        or (B, T) integer positions (a left-padded batch: each row counts its own)."""
        if positions is None:
            T = x.size(1)
            self._grow(start + T)
            return apply_rope(x, self.cos.narrow(0, start, T), self.sin.narrow(0, start, T))  # cos, sin (T, 1, D)
        if positions.numel():
            self._grow(int(positions.max()) + 1)
        return apply_rope(x, self.cos[positions], self.sin[positions])  # cos, sin (B, T, 1, D)

    def _grow(self, length: int) -> None:
        """A sliding window lets a cached decoder pass the block size: double the tables when a position needs it."""
        if length > self.cos.size(0):
            cos, sin = rope_cache(self.head_dim, 2 * length, self.theta)
            self.cos, self.sin = cos[:, None].to(self.cos.device), sin[:, None].to(self.sin.device)


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


def half_to_interleaved(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The inverse of ``interleaved_to_half`` (chapter 14 writes llama.cpp's layout): within each head, rows
    0..D/2-1 and D/2..D-1 become the even and the odd rows (llama.cpp's ``permute``)."""
    out, dim = weight.shape
    return weight.view(n_heads, 2, out // n_heads // 2, dim).transpose(1, 2).reshape(out, dim)
