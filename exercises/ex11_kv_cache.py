"""Chapter 11 exercises: the KV cache, its rolling form, and speculative decoding's bookkeeping.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 11

Shapes: B batch, H heads, S cached positions, T new positions, D head size. Use torch.
"""
import torch


def cache_write(cache: torch.Tensor, new: torch.Tensor, start: int) -> torch.Tensor:
    """cache (B, H, T_max, D) pre-allocated; new (B, H, T, D) keys (or values) of positions start..start+T-1.
    Write them in place at those positions and return the view of every position written so far,
    cache[:, :, :start + T] (no new tensor allocated for the cache)."""
    raise NotImplementedError


def attend_new(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One decoding step: q (B, H, 1, D) is the newest position's query; k, v (B, H, S, D) hold every position so
    far, the newest included. Return softmax(q k^T / sqrt(D)) v, (B, H, 1, D): which keys may the new query read?"""
    raise NotImplementedError


def rolling_columns(length: int, slots: int) -> torch.Tensor:
    """A rolling cache of ``slots`` slots writes column c into slot c % slots. After columns 0..length-1 were
    written in order, return (slots,) int64: the column each slot holds now, or -1 for a slot never written."""
    raise NotImplementedError


def accepted(guesses: torch.Tensor, choices: torch.Tensor) -> int:
    """guesses (k,): the draft's tokens; choices (k,): the target's own greedy choice at each of those positions.
    Return how many guesses are accepted: the length of the prefix where they agree."""
    raise NotImplementedError
