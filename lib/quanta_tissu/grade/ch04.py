"""Checks for chapter 04's exercises (byte-level BPE), against ``qt.bpe``."""
from .. import bpe
from .core import CheckFailed, assert_ids_equal

# A small text of our own with repeats, ties, non-ASCII characters and an emoji.
TEXT = ("the cat and the hat sat on the mat; that cat, the fat cat, sat flat. "
        "naïve café: a résumé of ideas 👋 — then the end, the end, the end.") * 3


def check_get_stats(fn) -> str:
    ids = [1, 1, 1, 2, 3, 1, 2, 9]
    got = fn(list(ids))
    expected = bpe.get_pair_counts(ids)
    if not isinstance(got, dict):
        raise CheckFailed(f"expected a dict of pair -> count, got {type(got).__name__}")
    for pair, count in expected.items():
        if got.get(pair) != count:
            raise CheckFailed(f"count of pair {pair}: expected {count}, got {got.get(pair)} (overlaps count twice)")
    if set(got) != set(expected):
        raise CheckFailed(f"unexpected pairs: {sorted(set(got) - set(expected))}")
    assert_ids_equal([p for q in got for p in q], [p for q in expected for p in q], "pairs in order of first appearance")
    return f"all {len(expected)} pair counts right, in order"


def check_merge(fn) -> str:
    for ids, pair in [([1, 2, 3, 1, 2, 2, 1, 2], (1, 2)), ([5, 5, 5, 5, 5], (5, 5)), ([7, 8], (8, 7))]:
        assert_ids_equal(fn(list(ids), pair, 99), bpe.merge(ids, pair, 99), f"merge({ids}, {pair}, 99)")
    return "left-to-right replacement right, overlaps included"


def check_train(fn) -> str:
    vocab_size = 256 + 40
    got = fn(TEXT, vocab_size)
    reference = bpe.BasicBPE().train(TEXT, vocab_size, tie="first", algorithm="naive").merges
    if not isinstance(got, dict):
        raise CheckFailed(f"expected a dict {{pair: new id}}, got {type(got).__name__}")
    expected = list(reference.items())
    for k, (pair, new_id) in enumerate(expected):
        if k >= len(got):
            raise CheckFailed(f"only {len(got)} merges, expected {len(expected)}")
        g_pair, g_id = list(got.items())[k]
        if (tuple(g_pair), g_id) != (pair, new_id):
            raise CheckFailed(f"first wrong merge is number {k}: expected {pair} -> {new_id}, got {tuple(g_pair)} -> {g_id}")
    if len(got) != len(expected):
        raise CheckFailed(f"expected {len(expected)} merges, got {len(got)}")
    return f"all {len(expected)} merges right, in order"


def check_encode(fn) -> str:
    tok = bpe.BasicBPE().train(TEXT, 256 + 40, tie="first", algorithm="naive")
    for text in ["the cat sat on the hat", "café 👋 the end", "zzz unseen", ""]:
        assert_ids_equal(fn(text, dict(tok.merges)), tok.encode(text), f"encode({text!r})")
    return "ids right on 4 texts, unseen and non-ASCII included"


CHECKS = {
    "get_stats": check_get_stats,
    "merge": check_merge,
    "train": check_train,
    "encode": check_encode,
}
