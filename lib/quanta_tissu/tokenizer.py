"""Character-level tokenization: text <-> integer ids, one id per distinct character.

Introduced in chapter 01 (the bigram counts characters); chapter 04 adds byte-level
BPE next to it in ``quanta_tissu.bpe``.

Does: build a vocabulary from a text (sorted characters, so ids are reproducible),
encode and decode, and refuse characters it has never seen with a clear error.
Does not: handle unknown characters by guessing (there is no <unk> token), or split
text into anything larger than a character.
"""
from __future__ import annotations

import numpy as np


class CharTokenizer:
    """Maps each distinct character of a training text to an id in ``range(vocab_size)``."""

    def __init__(self, chars):
        chars = list(chars)
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer: the vocabulary has repeated characters")
        if not chars:
            raise ValueError("CharTokenizer: the vocabulary is empty; build it from a non-empty text")
        self.chars = chars  # id -> character
        self.stoi = {ch: i for i, ch in enumerate(chars)}  # character -> id

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """Vocabulary = the sorted set of characters in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.from_text expects a str, got {type(text).__name__}")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Return the ids of ``text`` as an int64 array of shape (len(text),)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        try:
            return np.fromiter((self.stoi[ch] for ch in text), dtype=np.int64, count=len(text))
        except KeyError as exc:
            unknown = sorted(set(text) - set(self.stoi))
            raise ValueError(
                f"cannot encode {len(unknown)} character(s) not in the vocabulary: "
                f"{', '.join(repr(c) for c in unknown[:10])}; build the tokenizer from a text that contains them"
            ) from exc

    def decode(self, ids) -> str:
        """Return the text of a sequence of ids."""
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"decode expects a 1-D sequence of ids, got shape {ids.shape}")
        bad = ids[(ids < 0) | (ids >= self.vocab_size)] if ids.size else ids
        if bad.size:
            raise ValueError(f"id {int(bad[0])} is outside the vocabulary (0..{self.vocab_size - 1})")
        return "".join(self.chars[i] for i in ids.tolist())

    def decode_bytes(self, ids) -> bytes:
        """The UTF-8 bytes of ``decode(ids)``: what BPE's ``decode_bytes`` gives, so any course tokenizer can say
        how many bytes its ids spell (chapter 18's bits per byte)."""
        return self.decode(ids).encode("utf-8")

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
