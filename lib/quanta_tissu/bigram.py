"""The counting bigram model: P(next | current) estimated by counting pairs.

Introduced in chapter 01. Chapter 02 learns the same table by gradient descent
and checks that it converges to these counts.

Does: count pairs of consecutive ids, turn counts into probabilities with add-k
smoothing, score a sequence (negative log-likelihood, perplexity), sample text.
Does not: look further back than one token (that is the MLP of chapter 03).
Conventions: ``counts[i, j]`` = number of times id j follows id i; rows are
"current", columns "next"; logs are natural (nats).
"""
from __future__ import annotations

import numpy as np


def count_bigrams(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Return the (V, V) int64 matrix of pair counts of a 1-D id sequence."""
    ids = _check_ids(ids, vocab_size)
    counts = np.zeros((vocab_size, vocab_size), dtype=np.int64)
    # np.add.at accumulates repeated (row, col) pairs, unlike counts[a, b] += 1.
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    return counts


def bigram_probs(counts: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """Row-normalised probabilities (V, V) from counts, adding ``smoothing`` to every cell.

    With smoothing 0 a row that was never seen has no distribution: it becomes uniform
    rather than a division by zero.
    """
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    counts = np.asarray(counts, dtype=np.float64) + smoothing
    totals = counts.sum(axis=1, keepdims=True)  # (V, 1)
    uniform = np.full_like(counts, 1.0 / counts.shape[1])
    return np.divide(counts, totals, out=uniform, where=totals > 0)


def nll(probs: np.ndarray, ids: np.ndarray) -> float:
    """Average negative log-likelihood (nats per token) of the transitions in ``ids``.

    mean over t of  -log P(ids[t+1] | ids[t]);  infinite if a transition has probability 0.
    """
    ids = _check_ids(ids, probs.shape[0])
    with np.errstate(divide="ignore"):  # log(0) = -inf is the honest answer without smoothing
        return float(-np.log(probs[ids[:-1], ids[1:]]).mean())


def perplexity(mean_nll: float) -> float:
    """exp(NLL): the size of a uniform choice that would be as surprised."""
    return float(np.exp(mean_nll))


def sample(probs: np.ndarray, start: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``length`` ids after ``start``: each next id from row ``probs[current]``."""
    out = np.empty(length + 1, dtype=np.int64)
    out[0] = start
    # Inverse-CDF sampling: one uniform number per step, searched in the row's cumulative sum.
    cdf = np.cumsum(probs, axis=1)  # (V, V)
    for t in range(length):
        u = rng.random() * cdf[out[t], -1]
        out[t + 1] = np.searchsorted(cdf[out[t]], u, side="right")
    return out


def _check_ids(ids, vocab_size: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size < 2:
        raise ValueError(f"expected a 1-D sequence of at least 2 ids, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"ids must lie in 0..{vocab_size - 1}, found {ids.min()}..{ids.max()}")
    return ids
