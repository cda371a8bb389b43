"""Chapter 04 solutions (one way among many)."""


def get_stats(ids: list[int]) -> dict[tuple[int, int], int]:
    counts = {}
    for i in range(len(ids) - 1):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids: list[int], pair: tuple[int, int], idx: int) -> list[int]:
    result, i = [], 0
    while i < len(ids):
        if ids[i:i + 2] == list(pair):
            result.append(idx)
            i += 2
        else:
            result.append(ids[i])
            i += 1
    return result


def train(text: str, vocab_size: int) -> dict[tuple[int, int], int]:
    ids = list(text.encode("utf-8"))
    merges = {}
    for k in range(vocab_size - 256):
        stats = get_stats(ids)
        if not stats:
            break
        best = max(stats, key=stats.get)  # max keeps the first of equal counts
        merges[best] = 256 + k
        ids = merge(ids, best, 256 + k)
    return merges


def encode(text: str, merges: dict[tuple[int, int], int]) -> list[int]:
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        present = get_stats(ids)
        learned = [p for p in present if p in merges]
        if not learned:
            break
        first = min(learned, key=lambda p: merges[p])  # the earliest merge has the smallest id
        ids = merge(ids, first, merges[first])
    return ids
