"""Chapter 04 exercises: byte-level BPE from scratch.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 04

Ids: a byte is its own id (0..255); the k-th merge creates id 256 + k.
Use plain Python (lists and dicts).
"""


def get_stats(ids: list[int]) -> dict[tuple[int, int], int]:
    """ids: (N,) -> {pair: count} over adjacent pairs, overlapping ones included ("aaa" has 2 (a, a)),
    with pairs in the order they first appear."""
    raise NotImplementedError


def merge(ids: list[int], pair: tuple[int, int], idx: int) -> list[int]:
    """ids: (N,) -> (M,) with M <= N: every occurrence of `pair`, scanned left to right, replaced by `idx`."""
    raise NotImplementedError


def train(text: str, vocab_size: int) -> dict[tuple[int, int], int]:
    """Byte-level BPE on the UTF-8 bytes of `text` as one sequence (no split): repeat
    vocab_size - 256 times: count pairs, take the most frequent (on ties, the one seen first),
    merge it into the next id. Return the merges {pair: new id} in the order they were made.
    """
    raise NotImplementedError


def encode(text: str, merges: dict[tuple[int, int], int]) -> list[int]:
    """Encode `text` with learned `merges`: start from its UTF-8 bytes, then repeatedly apply the
    merge that was learned earliest among the pairs present, until no learned pair is left."""
    raise NotImplementedError
