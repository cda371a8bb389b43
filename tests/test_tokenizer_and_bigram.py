import numpy as np
import pytest

import quanta_tissu as qt


def test_char_tokenizer_round_trip_and_errors():
    tok = qt.CharTokenizer.from_text("hello world")
    assert tok.chars == sorted(set("hello world"))
    assert tok.decode(tok.encode("low world")) == "low world"
    with pytest.raises(ValueError, match="not in the vocabulary: 'z'"):
        tok.encode("zoo")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([0, 99])
    with pytest.raises(TypeError):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match="empty"):
        qt.CharTokenizer.from_text("")


def test_counts_match_a_plain_loop(rng):
    ids = rng.integers(0, 5, size=300)
    expected = np.zeros((5, 5), dtype=int)
    for a, b in zip(ids[:-1], ids[1:]):
        expected[a, b] += 1
    assert np.array_equal(qt.bigram.count_bigrams(ids, 5), expected)


def test_probs_rows_sum_to_one_and_empty_rows_are_uniform():
    counts = np.array([[1, 3], [0, 0]])
    p = qt.bigram.bigram_probs(counts)
    assert np.allclose(p, [[0.25, 0.75], [0.5, 0.5]])
    assert np.allclose(qt.bigram.bigram_probs(counts, 1.0), [[2 / 6, 4 / 6], [0.5, 0.5]])
    with pytest.raises(ValueError, match="smoothing"):
        qt.bigram.bigram_probs(counts, -1)


def test_nll_and_perplexity():
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert np.isclose(qt.bigram.nll(probs, np.array([0, 1, 0])), (np.log(2) + 0) / 2)
    assert np.isinf(qt.bigram.nll(probs, np.array([1, 1])))
    assert np.isclose(qt.bigram.perplexity(np.log(7)), 7)


def test_bad_ids_are_refused():
    with pytest.raises(ValueError, match="0..2"):
        qt.bigram.count_bigrams(np.array([0, 3]), 3)
    with pytest.raises(TypeError, match="integers"):
        qt.bigram.count_bigrams(np.array([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match="1-D"):
        qt.bigram.count_bigrams(np.array([[0, 1]]), 3)


def test_sampling_follows_the_distribution(rng):
    probs = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    draws = [qt.bigram.sample(probs, 0, 1, rng)[1] for _ in range(20_000)]
    assert np.allclose(np.bincount(draws, minlength=3) / 20_000, probs[0], atol=0.01)
    walk = qt.bigram.sample(probs, 1, 50, np.random.default_rng(1))
    assert walk[1] == 0  # row 1 always goes to 0
    assert np.array_equal(walk, qt.bigram.sample(probs, 1, 50, np.random.default_rng(1)))  # seeded: reproducible
