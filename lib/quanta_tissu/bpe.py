"""Byte-level BPE tokenizers: BasicBPE (no split), RegexBPE (GPT-2/GPT-4 split, special tokens).

Introduced in chapter 04. Chapter 01's ``CharTokenizer`` stays for the character-level chapters.

Does:
- train on a text: the naive algorithm (recount every pair after every merge, as minbpe does)
  and the fast one (count each distinct pre-tokenized chunk once, update pair counts
  incrementally, pick the best pair from a heap); both give identical merges;
- break ties between equally frequent pairs by either rule: ``"first"`` (the pair seen first
  in the text, minbpe's rule) or ``"hf"`` (the smallest pair of ids with bytes ranked in GPT-2's
  byte-to-unicode order, the rule of Hugging Face ``tokenizers``' trainer);
- encode (lowest-rank merge first, cached per chunk), decode (invalid UTF-8 becomes U+FFFD);
- special tokens: registered strings never split; text containing one is refused unless allowed;
- save/load in the course's readable JSON format; export a ``tokenizer.json`` for Hugging Face
  ``tokenizers``/``transformers`` and build an equivalent ``tiktoken.Encoding``.
Does not: normalise text (no NFC, no lowercasing), add BOS/EOS tokens, or import torch.
Ids: bytes are ids 0..255 (id = byte value); merge k creates id 256 + k; special tokens follow.
"""
from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import regex

GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
PATTERNS = {"gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN}
TIE_RULES = ("first", "hf")
FORMAT = "quanta_tissu.bpe/1"


class TokenizerError(ValueError):
    """Bad input to a tokenizer; the message says what and how to fix it."""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte to a printable character (how byte-level vocabularies are stored).

    Printable bytes map to themselves; the other 68 (controls, space, ...) to code points 256+.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def hf_byte_ranks() -> list[int]:
    """rank[b]: the id Hugging Face's trainer gives byte b (its alphabet sorted by character)."""
    order = sorted(range(256), key=lambda b: bytes_to_unicode()[b])
    ranks = [0] * 256
    for rank, b in enumerate(order):
        ranks[b] = rank
    return ranks


def get_pair_counts(ids, counts=None, weight: int = 1) -> dict:
    """Count adjacent pairs (overlapping: "aaa" has two ("a","a")), in order of first appearance."""
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, left to right, by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
