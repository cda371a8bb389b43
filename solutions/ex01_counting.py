"""Chapter 01 solutions: the counting bigram (one way among many)."""
import numpy as np


def count_bigrams(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    counts = np.zeros((vocab_size, vocab_size), dtype=np.int64)
    for a, b in zip(ids[:-1], ids[1:]):  # a plain loop: clear, and fast enough for exercises
        counts[a, b] += 1
    return counts


def bigram_probs(counts: np.ndarray, smoothing: float) -> np.ndarray:
    smoothed = counts.astype(np.float64) + smoothing
    probs = np.empty_like(smoothed)
    for i, row in enumerate(smoothed):
        total = row.sum()
        probs[i] = row / total if total > 0 else 1.0 / len(row)
    return probs


def mean_nll(probs: np.ndarray, ids: np.ndarray) -> float:
    picked = probs[ids[:-1], ids[1:]]  # (N-1,) probability of each observed transition
    return float(np.mean(-np.log(picked)))


def sample_next(probs_row: np.ndarray, u: float) -> int:
    total = 0.0
    for j, p in enumerate(probs_row):
        total += p
        if u < total:
            return j
    return len(probs_row) - 1  # u rounds past the last boundary
