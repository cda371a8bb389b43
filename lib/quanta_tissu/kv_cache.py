"""The KV cache (chapter 11): keys and values of past positions, kept so each new token costs one position's work.

Does: ``KVCache`` pre-allocates keys and values for every layer, k and v each of shape
(L, B, n_kv_heads, T_max, head_dim), and writes each step's new positions into them in place (no allocation
per step). Grouped-query attention stores only its KV heads: that is where its memory saving comes from.
``nbytes`` is 2 * L * B * T_max * n_kv_heads * head_dim * bytes per number. ``layer(i)`` is the view the
attention of block i reads and writes; the model advances ``length`` once all layers have written.
Does not: evict (a full cache raises, naming the limit) or know how positions are counted: the model does.
"""
from __future__ import annotations

import torch


class KVCache:
    """Keys and values of up to ``max_len`` positions for a batch of ``batch_size`` sequences."""

    def __init__(self, cfg, batch_size: int, max_len: int | None = None, device="cpu", dtype=torch.float32):
        self.max_len = max_len or cfg.block_size
        if not 1 <= self.max_len <= cfg.block_size:
            raise ValueError(f"max_len must be in 1..block_size ({cfg.block_size}), got {self.max_len}")
        head_dim = cfg.n_embd // cfg.n_head
        shape = (cfg.n_layer, batch_size, cfg.n_kv_heads, self.max_len, head_dim)  # (L, B, KV, T_max, D)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # positions written so far, the same for every row (left padding keeps rows aligned)

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    def layer(self, i: int) -> "LayerCache":
        return LayerCache(self, i)

    def advance(self, n: int) -> None:
        self.length += n

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on (speculative decoding rejects guesses): they get overwritten."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of {self.length} positions to {length}")
        self.length = length


class LayerCache:
    """Block i's slice of a KVCache: writes the new keys and values, returns all of them so far."""

    def __init__(self, cache: KVCache, index: int):
        self.cache, self.index = cache, index

    def update(self, k: torch.Tensor, v: torch.Tensor):
        """k, v (B, KV, T, D) of the new positions -> k, v (B, KV, length + T, D) of every position so far."""
        c, start, T = self.cache, self.cache.length, k.size(2)
        if start + T > c.max_len:
            raise ValueError(f"the KV cache holds {c.max_len} positions; {start} are used and {T} more do not fit "
                             f"(ask for fewer new tokens, or a cache with a larger max_len)")
        c.k[self.index, :, :, start:start + T] = k  # in place: no allocation per step
        c.v[self.index, :, :, start:start + T] = v
        return c.k[self.index, :, :, :start + T], c.v[self.index, :, :, :start + T]
