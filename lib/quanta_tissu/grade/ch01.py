"""Checks for chapter 01's exercises (counting bigram), against ``qt.bigram``."""
import math

import numpy as np

from .. import bigram
from .core import CheckFailed, assert_close, assert_ids_equal

V = 7


def _ids(seed: int, n: int = 500) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, size=n)


def check_count_bigrams(fn) -> str:
    ids = _ids(1)
    got = fn(ids, V)
    expected = bigram.count_bigrams(ids, V)
    msg = assert_close(got, expected, "counts", wrong=[
        (expected.T, "rows and columns are swapped: counts[i, j] counts j following i (the row is the first id)")])
    if np.asarray(got).sum() != len(ids) - 1:
        raise CheckFailed(f"counts should sum to len(ids) - 1 = {len(ids) - 1}")
    return msg


def check_bigram_probs(fn) -> str:
    counts = bigram.count_bigrams(_ids(2, 60), V)
    for smoothing in (0.0, 1.0, 0.5):
        counts_with_empty_row = counts.copy()
        counts_with_empty_row[3] = 0  # a character that never occurs first
        got = fn(counts_with_empty_row.copy(), smoothing)
        what = f"probs (smoothing={smoothing})"
        smoothed = counts_with_empty_row + smoothing
        if got is not None and np.shape(got) == (V, V) and not np.isfinite(np.asarray(got, dtype=float)[3]).all():
            raise CheckFailed(f"{what}: row 3 is not finite: it has no counts, so its total is 0; make such a row "
                              "uniform (1 / V)")
        by_column = smoothed / np.maximum(smoothed.sum(axis=0, keepdims=True), 1e-300)
        assert_close(got, bigram.bigram_probs(counts_with_empty_row, smoothing), what, wrong=[
            (by_column, "each column sums to 1: normalise each row instead (axis=1), the distribution of what "
                        "follows id i")])
    return "matches for smoothing 0, 0.5 and 1, empty row included"


def check_mean_nll(fn) -> str:
    ids = _ids(3)
    probs = bigram.bigram_probs(bigram.count_bigrams(ids, V), 1.0)
    n = len(ids) - 1  # transitions
    return assert_close(fn(probs, ids), bigram.nll(probs, ids), "mean NLL", hints={
        n: f"did you sum instead of averaging over the {n} transitions?",
        n / len(ids): f"did you divide by len(ids) = {len(ids)}? There are {n} transitions, len(ids) - 1",
        -1: "the sign is flipped: the NLL is -log p, a positive number",
        1 / math.log(2): "that is log base 2: use the natural log, np.log",
        1 / math.log(10): "that is log base 10: use the natural log, np.log"})


def check_sample_next(fn) -> str:
    row = np.array([0.1, 0.0, 0.5, 0.4])
    cdf = np.cumsum(row)
    us = [0.0, 0.05, 0.1, 0.3, 0.6, 0.61, 0.95, 0.999]
    expected = [int(np.searchsorted(cdf, u, side="right")) for u in us]
    got = [fn(row, u) for u in us]
    return assert_ids_equal(got, expected, "sampled ids for u = " + ", ".join(map(str, us)))


CHECKS = {
    "count_bigrams": check_count_bigrams,
    "bigram_probs": check_bigram_probs,
    "mean_nll": check_mean_nll,
    "sample_next": check_sample_next,
}
