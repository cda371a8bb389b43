"""The KV cache (chapter 11): keys and values of past positions, kept so each new token costs one position's work.

Does: ``KVCache`` pre-allocates keys and values for every layer, k and v each of shape
(L, B, n_kv_heads, slots, head_dim), and writes each step's new positions into them in place (no allocation
per step). Grouped-query attention stores only its KV heads: that is where its memory saving comes from.
``nbytes`` is 2 * L * B * slots * n_kv_heads * head_dim * bytes per number. ``layer(i)`` is the view the
attention of block i reads and writes; the model advances ``length`` once all layers have written.
With a sliding window W (chapter 11) the cache rolls: column c goes to slot c mod slots, with
slots = min(max_len, 2W - 1), so its memory stays flat however long the text; each write may then add at most
``chunk`` = slots - W + 1 positions, so that no key a new query still needs is overwritten. ``positions`` gives
the column each slot holds: slot i holds column i until the cache rolls; a rolling cache records its columns (-1
while empty), and the attention masks by column, not by slot.
Does not: evict anything but what a window has left behind, or know how positions are counted: the model does.
"""
from __future__ import annotations

import torch


class KVCache:
    """Keys and values of up to ``max_len`` columns for a batch of ``batch_size`` sequences."""

    def __init__(self, cfg, batch_size: int, max_len: int | None = None, device="cpu", dtype=torch.float32):
        self.max_len = max_len or cfg.block_size
        window = cfg.sliding_window
        if self.max_len < 1 or (self.max_len > cfg.block_size and not cfg.rolls_past_block):
            raise ValueError(f"max_len must be in 1..block_size ({cfg.block_size}) unless a RoPE model has a sliding "
                             f"window, got {self.max_len}")
        self.slots = self.max_len if window is None else min(self.max_len, 2 * window - 1)
        rolls = self.slots < self.max_len
        self.chunk = self.slots - window + 1 if rolls else self.slots  # the most columns one write may add
        head_dim = cfg.n_embd // cfg.n_head
        shape = (cfg.n_layer, batch_size, cfg.n_kv_heads, self.slots, head_dim)  # (L, B, KV, slots, D)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.rolls = rolls
        # the column each slot holds: slot i holds column i until the cache rolls; a rolling one records them
        self.positions = torch.full((self.slots,), -1, dtype=torch.long, device=device) if rolls else \
            torch.arange(self.slots, device=device)  # (only the first ``length`` are ever read)
        self.length = 0  # columns written so far, the same for every row (left padding keeps rows aligned)

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    def layer(self, i: int) -> "LayerCache":
        return LayerCache(self, i)

    def advance(self, n: int) -> None:
        self.length += n

    def truncate(self, length: int) -> None:
        """Forget every column from ``length`` on (speculative decoding rejects guesses): they get overwritten."""
        if not 0 <= length <= self.length or (self.slots < self.max_len and length < self.length - self.chunk):
            raise ValueError(f"cannot truncate a cache of {self.length} positions to {length}")
        if self.rolls:
            self.positions[self.positions >= length] = -1
        self.length = length


class LayerCache:
    """Block i's slice of a KVCache: writes the new keys and values, returns all that the cache holds."""

    def __init__(self, cache: KVCache, index: int):
        self.cache, self.index = cache, index

    @property
    def length(self) -> int:
        return self.cache.length

    def update(self, k: torch.Tensor, v: torch.Tensor):
        """k, v (B, KV, T, D) of the new columns -> (k, v (B, KV, S, D), columns (S,)) of every key held."""
        c, start, T = self.cache, self.cache.length, k.size(2)
        if start + T > c.max_len:
            raise ValueError(f"the KV cache holds {c.max_len} positions; {start} are used and {T} more do not fit "
                             f"(ask for fewer new tokens, or a cache with a larger max_len)")
        if T > c.chunk:
            raise ValueError(f"a rolling cache takes at most {c.chunk} new positions at a time, got {T}")
        keys, values = c.k[self.index], c.v[self.index]  # (B, KV, slots, D): views, no copy
        if start + T <= c.slots:  # not rolled yet: slots are columns, write and read a prefix
            keys.narrow(2, start, T).copy_(k)  # in place: no allocation per step
            values.narrow(2, start, T).copy_(v)
            if c.rolls:
                c.positions[start:start + T] = torch.arange(start, start + T, device=k.device)
            end = start + T
            return keys.narrow(2, 0, end), values.narrow(2, 0, end), c.positions[:end]
        columns = torch.arange(start, start + T, device=k.device)
        slots = columns % c.slots  # rolled: column c lives in slot c mod slots
        keys.index_copy_(2, slots, k)
        values.index_copy_(2, slots, v)
        c.positions[slots] = columns
        return keys, values, c.positions
