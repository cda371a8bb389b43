"""Chapter 01 exercises: the counting bigram.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 01

Shapes: N = number of ids, V = vocabulary size. Use NumPy only.
"""
import numpy as np


def count_bigrams(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """ids: (N,) ints in [0, V) -> counts: (V, V) ints, counts[i, j] = #times j follows i."""
    raise NotImplementedError


def bigram_probs(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """counts: (V, V) -> probs: (V, V), rows sum to 1 after adding `smoothing` to every cell.

    A row whose total is 0 (possible when smoothing is 0) must become uniform: 1 / V.
    """
    raise NotImplementedError


def mean_nll(probs: np.ndarray, ids: np.ndarray) -> float:
    """probs: (V, V), ids: (N,) -> mean over t of -log probs[ids[t], ids[t+1]] (natural log)."""
    raise NotImplementedError


def sample_next(probs_row: np.ndarray, u: float) -> int:
    """probs_row: (V,) sums to 1, u in [0, 1) -> the id j whose cumulative interval holds u.

    Id j owns [cdf[j-1], cdf[j]) where cdf = cumsum(probs_row): the smallest j with cdf[j] > u.
    """
    raise NotImplementedError
