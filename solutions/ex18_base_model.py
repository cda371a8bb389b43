"""Chapter 18 exercises: solutions."""
import math


def bits_per_byte(nats_per_token: float, n_tokens: int, n_bytes: int) -> float:
    """Total nats over the text, per byte, in bits (1 nat = 1 / ln 2 bits)."""
    return nats_per_token * n_tokens / n_bytes / math.log(2)


def _byte_chars() -> dict:
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def spell_token(token: bytes) -> str:
    """Each byte through GPT-2's byte-to-unicode table."""
    table = _byte_chars()
    return "".join(table[b] for b in token)


def gguf_merges(vocab: dict, merges: dict) -> list:
    """Merges sorted by the id they make (= rank + 256), spelled, joined by one space."""
    ranked = sorted(merges.items(), key=lambda item: item[1])
    return [f"{spell_token(vocab[a])} {spell_token(vocab[b])}" for (a, b), _ in ranked]
