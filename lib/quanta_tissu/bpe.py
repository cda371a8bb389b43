"""Byte-level BPE tokenizers: BasicBPE (no split), RegexBPE (GPT-2/GPT-4 split, special tokens).

Introduced in chapter 04. Chapter 01's ``CharTokenizer`` stays for the character-level chapters.

Does:
- train on a text: the naive algorithm (recount every pair after every merge, as minbpe does)
  and the fast one (count each distinct pre-tokenized chunk once, update pair counts
  incrementally, pick the best pair from a heap); both give identical merges. The fast one
  needs the split: for ``BasicBPE`` the whole text is one chunk and it is no faster;
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
FILENAME = "tokenizer.qt.json"


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
    chars = bytes_to_unicode()
    order = sorted(range(256), key=chars.__getitem__)
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


class _Vocab:
    """The growing vocabulary during training: id -> bytes, bytes -> id, and tie-break ranks."""

    def __init__(self):
        self.bytes_of = [bytes([b]) for b in range(256)]
        self.id_of = {tok: i for i, tok in enumerate(self.bytes_of)}
        self.rank = hf_byte_ranks()  # Hugging Face's id for each of our ids

    def add_merge(self, pair) -> tuple[int, bool]:
        """Id of the merged token and whether it is new.

        Two different pairs can spell the same bytes ("a"+"bc", "ab"+"c"); like Hugging Face's
        trainer we then reuse the existing id, so every id decodes to distinct bytes.
        """
        token = self.bytes_of[pair[0]] + self.bytes_of[pair[1]]
        if token in self.id_of:
            return self.id_of[token], False
        self.id_of[token] = len(self.bytes_of)
        self.bytes_of.append(token)
        self.rank.append(len(self.rank))  # merged tokens rank by creation, as in Hugging Face
        return self.id_of[token], True


def _check_tie(tie: str) -> None:
    if tie not in TIE_RULES:
        raise TokenizerError(f"tie must be one of {TIE_RULES}, got {tie!r}")


def _best_pair_naive(counts: dict, tie: str, rank: list[int]):
    if tie == "first":  # max() keeps the first of equal keys: dict order is first appearance
        return max(counts, key=counts.get)
    return min(counts, key=lambda p: (-counts[p], rank[p[0]], rank[p[1]]))


def train_naive(chunks: list[bytes], num_new: int, tie: str = "first", progress: bool = False):
    """The textbook loop: recount every pair of every chunk, merge the best, repeat.

    ``chunks`` are the pre-tokenized pieces of the text in order, repeats included.
    Returns the merges as a list of ((left id, right id), new id). Cost: O(merges x text).
    """
    _check_tie(tie)
    from tqdm.auto import tqdm

    ids = [list(c) for c in chunks]
    vocab, merges = _Vocab(), []
    bar, added = tqdm(total=num_new, desc="BPE (naive)", disable=not progress), 0
    while added < num_new:
        counts = {}
        for chunk in ids:
            get_pair_counts(chunk, counts)
        if not counts:
            break  # every chunk is a single token: nothing left to merge
        pair = _best_pair_naive(counts, tie, vocab.rank)
        new_id, is_new = vocab.add_merge(pair)
        ids = [merge(chunk, pair, new_id) for chunk in ids]
        merges.append((pair, new_id))
        added += is_new
        bar.update(int(is_new))
    bar.close()
    return merges


class _PairIndex:
    """Pair counts over distinct words, with the words each pair occurs in, kept up to date."""

    def __init__(self, words: list[list[int]], freqs: list[int]):
        self.words, self.freqs = words, freqs
        self.counts: dict = {}
        self.where: dict = {}  # pair -> set of word indices (may hold stale indices: harmless)
        for wi, word in enumerate(words):
            self._add(wi, word, +1)

    def _add(self, wi: int, word: list[int], sign: int) -> None:
        f = sign * self.freqs[wi]
        for pair in zip(word, word[1:]):
            self.counts[pair] = self.counts.get(pair, 0) + f
            if sign > 0:
                self.where.setdefault(pair, set()).add(wi)

    def apply(self, pair, new_id: int) -> set:
        """Merge ``pair`` into ``new_id`` in every word holding it; return the pairs with new_id."""
        created = set()
        for wi in self.where.pop(pair, ()):
            old = self.words[wi]
            new = merge(old, pair, new_id)
            if len(new) == len(old):
                continue  # a stale index: this word no longer holds the pair
            self._add(wi, old, -1)  # re-count just this word: O(its length)
            self._add(wi, new, +1)
            self.words[wi] = new
            created.update(p for p in zip(new, new[1:]) if new_id in p)
        self.counts.pop(pair, None)
        return created

    def first_seen(self, candidates: set):
        """The candidate that appears first in the text (words are kept in first-appearance order)."""
        for word in self.words:
            for p in zip(word, word[1:]):
                if p in candidates:
                    return p
        raise AssertionError("no candidate pair occurs in any word")


def _pop_best(heap: list, index: _PairIndex, tie: str, rank: list[int]):
    """Pop the most frequent pair, skipping stale heap entries (counts only ever go down)."""
    while heap:
        neg, *_, pair = heapq.heappop(heap)
        count = index.counts.get(pair, 0)
        if count != -neg:
            if count > 0:  # stale: push back with its current count
                heapq.heappush(heap, _entry(pair, count, tie, rank))
            continue
        if tie == "hf":  # the heap order already breaks ties by Hugging Face's rule
            return pair
        ties = {pair}  # first-seen: gather every pair with this count, pick the earliest
        while heap and heap[0][0] == neg:
            other = heapq.heappop(heap)[-1]
            if index.counts.get(other, 0) == count:
                ties.add(other)
            elif index.counts.get(other, 0) > 0:
                heapq.heappush(heap, _entry(other, index.counts[other], tie, rank))
        best = index.first_seen(ties) if len(ties) > 1 else pair
        for other in ties - {best}:
            heapq.heappush(heap, _entry(other, count, tie, rank))
        return best
    return None


def _entry(pair, count: int, tie: str, rank: list[int]):
    if tie == "hf":
        return (-count, rank[pair[0]], rank[pair[1]], pair)
    return (-count, pair)


def train_fast(word_counts: dict, num_new: int, tie: str = "first", progress: bool = False):
    """Incremental BPE: count each distinct chunk once, update only the words a merge touches.

    ``word_counts`` maps each distinct chunk (bytes) to its number of occurrences, in order of
    first appearance. Returns the same merges as ``train_naive`` on the full list of chunks.
    """
    _check_tie(tie)
    from tqdm.auto import tqdm

    index = _PairIndex([list(w) for w in word_counts], list(word_counts.values()))
    vocab, merges = _Vocab(), []
    heap = [_entry(p, c, tie, vocab.rank) for p, c in index.counts.items() if c > 0]
    heapq.heapify(heap)
    bar, added = tqdm(total=num_new, desc="BPE (fast)", disable=not progress), 0
    while added < num_new:
        pair = _pop_best(heap, index, tie, vocab.rank)
        if pair is None:
            break
        new_id, is_new = vocab.add_merge(pair)
        for created in index.apply(pair, new_id):
            heapq.heappush(heap, _entry(created, index.counts[created], tie, vocab.rank))
        merges.append((pair, new_id))
        added += is_new
        bar.update(int(is_new))
    bar.close()
    return merges


class BasicBPE:
    """Byte-level BPE over the whole text as one sequence: no pre-tokenization, no special tokens."""

    pattern: str | None = None

    def __init__(self):
        self.merges: dict[tuple[int, int], int] = {}  # (left id, right id) -> merged id, in training order
        self.vocab: dict[int, bytes] = {b: bytes([b]) for b in range(256)}  # id -> bytes
        self.special_tokens: dict[str, int] = {}  # string -> id
        self.tie = "first"
        self._rank: dict[tuple[int, int], int] = {}  # pair -> merge position (lower merges first)
        self._cache: dict[str, list[int]] = {}

    # -- training -----------------------------------------------------------------------------
    def train(self, text: str, vocab_size: int, tie: str = "first", algorithm: str = "fast",
              progress: bool = False) -> "BasicBPE":
        """Learn ``vocab_size - 256 - len(special tokens)`` new tokens from ``text``."""
        _check_text(text)
        num_new = self._check_vocab_size(vocab_size)
        chunks = [c.encode("utf-8") for c in self._split(text)]
        if algorithm == "fast":
            merges = train_fast(Counter(chunks), num_new, tie, progress)
        elif algorithm == "naive":
            merges = train_naive(chunks, num_new, tie, progress)
        else:
            raise TokenizerError(f"algorithm must be 'fast' or 'naive', got {algorithm!r}")
        self._set_merges(merges, tie)
        return self

    def _check_vocab_size(self, vocab_size) -> int:
        minimum = 256 + len(self.special_tokens)
        if not isinstance(vocab_size, int) or vocab_size < minimum:
            raise TokenizerError(f"vocab_size must be an integer >= 256 bytes + {len(self.special_tokens)} "
                                 f"special tokens = {minimum}, got {vocab_size!r}")
        return vocab_size - minimum

    def _set_merges(self, merges, tie: str) -> None:
        specials = list(self.special_tokens)  # keep their names; their ids move after the merges
        self.merges, self.tie = {}, tie
        self.vocab = {b: bytes([b]) for b in range(256)}
        for pair, new_id in merges:
            if pair[0] not in self.vocab or pair[1] not in self.vocab:
                raise TokenizerError(f"merge {pair} -> {new_id} uses an id that no earlier merge created")
            self.merges[pair] = new_id
            self.vocab[new_id] = self.vocab[pair[0]] + self.vocab[pair[1]]
        self._rank = {pair: i for i, pair in enumerate(self.merges)}
        self._cache = {}
        self.special_tokens = {}
        self._add_special_tokens(specials)

    def _add_special_tokens(self, names) -> None:
        for name in names:
            if not isinstance(name, str) or not name:
                raise TokenizerError(f"special tokens must be non-empty strings, got {name!r}")
            if name not in self.special_tokens:
                self.special_tokens[name] = max([*self.vocab, *self.special_tokens.values()]) + 1

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + len(self.special_tokens)

    # -- encoding and decoding --------------------------------------------------------------
    def _split(self, text: str) -> list[str]:
        return [text] if text else []

    def _encode_chunk(self, data: bytes) -> list[int]:
        """Apply merges to one chunk, lowest merge position first, until none applies."""
        ids = list(data)
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self._rank.get(p, len(self._rank)))
            if pair not in self._rank:
                break
            ids = merge(ids, pair, self.merges[pair])
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` with no special-token handling (their strings are plain text here)."""
        _check_text(text)
        out = []
        for chunk in self._split(text):
            ids = self._cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk.encode("utf-8"))
                if len(self._cache) < 200_000:  # bounded: long texts have a long tail of rare chunks
                    self._cache[chunk] = ids
            out.extend(ids)
        return out

    def encode(self, text: str) -> list[int]:
        return self.encode_ordinary(text)

    def decode(self, ids) -> str:
        """Text of ``ids``; byte sequences that are not valid UTF-8 become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids) -> bytes:
        specials = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        parts = []
        for i in ids:
            if not hasattr(i, "__index__"):  # ints, NumPy and torch integers
                raise TokenizerError(f"token ids must be integers, got {i!r}")
            i = i.__index__()
            part = self.vocab.get(i, specials.get(i))
            if part is None:
                raise TokenizerError(f"token id {i} is outside the vocabulary (0..{self.vocab_size - 1})")
            parts.append(part)
        return b"".join(parts)

    def token_strings(self, ids) -> list[str]:
        """Each id's text, for display (partial UTF-8 shows as U+FFFD)."""
        return [self.decode([i]) for i in ids]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, merges={len(self.merges)})"

    # -- files ----------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the course's readable JSON format (merges are the truth; ``tokens`` is for reading)."""
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        data = {
            "format": FORMAT,
            "type": type(self).__name__,
            "pattern": self.pattern,
            "tie": self.tie,
            "merges": [[a, b, new] for (a, b), new in self.merges.items()],
            "special_tokens": self.special_tokens,
            "tokens": {str(i): self.vocab[i].decode("utf-8", errors="replace") for i in range(256, len(self.vocab))},
        }
        _atomic_write(path, json.dumps(data, ensure_ascii=False, indent=1))
        return path

    @staticmethod
    def load(path) -> "BasicBPE":
        """Read a tokenizer saved by ``save`` (a file, or a folder holding tokenizer.qt.json)."""
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        if not path.is_file():
            raise TokenizerError(f"no tokenizer file at {path}; train one with "
                                 f"`python -m quanta_tissu tokenizer train --input FILE --vocab-size N --out DIR`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
            kind = {"BasicBPE": BasicBPE, "RegexBPE": RegexBPE}[data["type"]]
            tok = kind() if kind is BasicBPE else kind(data["pattern"])
            tok._set_merges([((a, b), new) for a, b, new in data["merges"]], data["tie"])
            specials = sorted(data["special_tokens"].items(), key=lambda kv: kv[1])
            tok._add_special_tokens([name for name, _ in specials])
            if tok.special_tokens != data["special_tokens"]:
                raise ValueError("special token ids do not follow the merges")
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenizerError(f"{path} is not a valid tokenizer file (truncated or edited?): {exc}") from None
        return tok

    # -- interoperability ---------------------------------------------------------------------
    def to_hf_json(self) -> dict:
        """A Hugging Face ``tokenizer.json`` (as a dict) that encodes any text to our ids (``qt.vocabulary``)."""
        from .vocabulary import Vocabulary  # the file formats live there, shared with the character tokenizer

        return Vocabulary.of(self).hf_tokenizer_json()

    def save_hf(self, folder) -> Path:
        """Write ``folder/tokenizer.json`` for ``tokenizers.Tokenizer.from_file`` and transformers."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / "tokenizer.json", json.dumps(self.to_hf_json(), ensure_ascii=False))
        return folder / "tokenizer.json"

    def to_tiktoken(self, name: str = "quanta_tissu"):
        """An equivalent ``tiktoken.Encoding`` built from our ranks (id = rank) and split pattern."""
        import tiktoken  # optional: only this method needs it

        return tiktoken.Encoding(name, pat_str=self.pattern or r"[\s\S]+",
                                 mergeable_ranks={tok: i for i, tok in self.vocab.items()},
                                 special_tokens=dict(self.special_tokens))


def _check_text(text) -> None:
    if not isinstance(text, str):
        raise TokenizerError(f"expected text as a str, got {type(text).__name__}; decode bytes with .decode('utf-8') first")


class RegexBPE(BasicBPE):
    """BPE within chunks cut by a split pattern (GPT-2's or GPT-4's), plus special tokens.

    The split keeps merges from crossing word, number and punctuation boundaries, so "dog."
    and "dog!" share the token for "dog" instead of spending vocabulary on both.
    """

    def __init__(self, pattern: str = "gpt4", special_tokens=()):
        super().__init__()
        self.pattern = PATTERNS.get(pattern, pattern)
        try:
            self._compiled = regex.compile(self.pattern)
        except regex.error as exc:
            raise TokenizerError(f"invalid split pattern: {exc}; use 'gpt2', 'gpt4' or a valid regex") from None
        self._add_special_tokens(special_tokens)

    def _split(self, text: str) -> list[str]:
        return self._compiled.findall(text)

    def register_special_tokens(self, names) -> None:
        """Add special tokens after training; they get the next free ids."""
        self._add_special_tokens(names)

    def encode(self, text: str, allowed_special=()) -> list[int]:
        """Encode ``text``; registered special-token strings become their ids only if allowed.

        ``allowed_special``: "all" or a collection of special-token strings. Text that contains a
        special token that is not allowed is refused (as tiktoken does), because treating
        user text as control tokens is a classic injection bug.
        """
        _check_text(text)
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise TokenizerError(f"allowed_special names unregistered tokens: {sorted(unknown)}")
        disallowed = [s for s in self.special_tokens if s not in allowed and s in text]
        if disallowed:
            raise TokenizerError(
                f"the text contains the special token {disallowed[0]!r}; pass allowed_special={{{disallowed[0]!r}}} "
                f"(or 'all') to encode it as a special token, or use encode_ordinary() to treat it as plain text")
        if not allowed:
            return self.encode_ordinary(text)
        # Cut the text around the allowed special strings (longest first), encode the rest normally.
        splitter = "(" + "|".join(regex.escape(s) for s in sorted(allowed, key=len, reverse=True)) + ")"
        out = []
        for i, part in enumerate(regex.split(splitter, text)):
            out.extend([self.special_tokens[part]] if i % 2 else self.encode_ordinary(part))
        return out


def _atomic_write(path: Path, text: str) -> None:
    """Write to a temporary file and rename: a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def course_tokenizer(vocab_size: int = 1024, progress: bool = False) -> RegexBPE:
    """The course's Tiny Shakespeare tokenizer (GPT-4 split, Hugging Face tie rule, <|endoftext|>).

    Trained on the training split only (the first 90%, as in every chapter) on first use, which is
    deterministic and takes about a second, then cached in the user cache and loaded from there.
    """
    return _shakespeare_tokenizer(f"shakespeare-gpt4-{vocab_size}", vocab_size, ["<|endoftext|>"], progress)


# Chapter 18's base model reserves the tokens that chapter 19's chat template needs. They follow the merges,
# in this order, so in a vocabulary of V tokens <|bos|> is V - 5 and <|assistant|> is V - 1, fixed from now on.
BASE_SPECIALS = ("<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")


def base_tokenizer(vocab_size: int = 2048, progress: bool = False) -> RegexBPE:
    """The tokenizer of chapter 18's base model: ``course_tokenizer``'s recipe with ``BASE_SPECIALS`` reserved.

    ``vocab_size`` counts everything: 256 bytes, the merges and the 5 special tokens."""
    return _shakespeare_tokenizer(f"shakespeare-base-{vocab_size}", vocab_size, list(BASE_SPECIALS), progress)


def _shakespeare_tokenizer(name: str, vocab_size: int, specials: list[str], progress: bool) -> RegexBPE:
    from .data import cache_dir, load_text, train_val_split

    folder = cache_dir() / "tokenizers" / name
    if (folder / FILENAME).is_file():
        return BasicBPE.load(folder)
    train_text, _ = train_val_split(load_text("tinyshakespeare"))
    tok = RegexBPE("gpt4", special_tokens=specials).train(train_text, vocab_size, tie="hf", progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(folder)
    return tok
