"""Checks for chapter 18's exercises (the base model's units and tokenizer files), against ``qt.zoo.bits_per_byte``'s
convention and ``qt.vocabulary``."""
import math
import random

from ..bpe import RegexBPE
from ..vocabulary import Vocabulary
from .core import CheckFailed, assert_close

_TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
         "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 8


def check_bits_per_byte(fn) -> str:
    nats, tokens, n_bytes = 4.2, 1000, 2800  # a BPE model: 2.8 bytes per token
    expected = nats * tokens / n_bytes / math.log(2)
    wrong = [(nats / math.log(2), "that is bits per TOKEN: a token spells several bytes, so divide the total by "
                                  "the bytes (multiply by tokens / bytes)"),
             (nats * tokens / n_bytes, "that is nats per byte: convert to bits by dividing by ln 2 (1 nat = 1.4427 "
                                       "bits)"),
             (nats * n_bytes / tokens / math.log(2), "tokens and bytes are upside down: the total is nats per token "
                                                      "times tokens, shared out over the bytes"),
             (nats * tokens / n_bytes / math.log(10), "log base 10 is not bits: divide by ln 2"),
             (nats * tokens / n_bytes * math.log(2), "multiplied by ln 2: bits = nats / ln 2"),
             (math.log2(nats) * tokens / n_bytes, "log2 of the loss is not a change of unit: a loss in nats becomes "
                                                  "bits by dividing it by ln 2"),
             (nats * tokens // n_bytes / math.log(2), "floor division (//) cut the total short: use / for a ratio"),
             (nats, "that is the loss you were given, nats per token: convert it to bits, then to per byte"),
             (round(expected, 4), "rounded: return the full value (round only when you print it)")]
    got = fn(nats, tokens, n_bytes)
    assert_close(got, expected, "bits_per_byte(4.2, 1000, 2800)", rtol=1e-6, wrong=wrong)
    assert_close(fn(1.7, 500, 500), 1.7 / math.log(2), "bits_per_byte(1.7, 500, 500) (characters: a byte a token)")
    return f"{expected:.4f} bits per byte for 4.2 nats per token at 2.8 bytes per token"


def _spell_reference(token: bytes) -> str:
    vocab = Vocabulary([token], [], {}, None)
    return vocab.spelled(0)


def check_spell_token(fn) -> str:
    if fn(b"") != "":
        raise CheckFailed(f"spell_token(b'') gave {fn(b'')!r}: no bytes, no characters (return '')")
    cases = [b" the", b"\n", b"hello", "é".encode(), b"\x00\x7f\xa0\xad", bytes(range(256))]
    for token in cases:
        expected, got = _spell_reference(token), fn(token)
        if got == expected:
            continue
        if not isinstance(got, str):
            raise CheckFailed(f"spell_token({token[:8]!r}) returned a {type(got).__name__}; return a str")
        if token == b" the" and got == " the":
            raise CheckFailed("spell_token(b' the') gave ' the': the space (byte 32) is not printable in GPT-2's "
                              "table, it is spelled 'Ġ' (chr(256 + 32))")
        if token == "é".encode() and got == "é":
            raise CheckFailed("spell_token('é'.encode()) gave 'é': you decoded UTF-8, but a token may hold part of a "
                              "character; spell each BYTE (0xc3 0xa9 -> 'Ã©')")
        if len(got) != len(token):
            raise CheckFailed(f"spell_token({token[:8]!r}) has {len(got)} characters for {len(token)} bytes: one "
                              f"character per byte")
        bad = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
        raise CheckFailed(f"spell_token({token[:8]!r}): byte {token[bad]} is spelled {got[bad]!r}, expected "
                          f"{expected[bad]!r}: the 68 non-printable bytes take chr(256), chr(257), ... in "
                          f"increasing byte order, one after the other")
    return "every byte, including a space, a newline and part of 'é'"


def check_gguf_merges(fn) -> str:
    tok = RegexBPE("gpt4").train(_TEXT, 256 + 40, tie="hf")
    expected = Vocabulary.of(tok).gguf_tokenizer()["tokenizer.ggml.merges"]
    items = list(tok.merges.items())
    random.Random(0).shuffle(items)  # the learner must not rely on the dict's order
    got = fn(dict(tok.vocab), dict(items))
    if not isinstance(got, list) or not all(isinstance(m, str) for m in got):
        raise CheckFailed("expected a list of strings such as 'Ġ t', one per merge")
    if got == expected:
        return f"all {len(expected)} merges, spelled, in rank order"
    if len(got) != len(expected):
        raise CheckFailed(f"{len(got)} merges for {len(expected)}: one string per merge")
    if sorted(got) == sorted(expected):
        if got == expected[::-1]:
            raise CheckFailed("the merges are in reverse: the first learned (id 256) comes first")
        if got == sorted(expected):
            raise CheckFailed("the merges are sorted alphabetically: llama.cpp applies them by position, so they "
                              "must be in the order learned, by the id each one makes (256 + rank)")
        raise CheckFailed("the right merges in the wrong order: sort them by the id each one makes (256 + rank), "
                          "not by the order of the dict or by the pair's ids")
    sample = next(g for g, e in zip(got, expected) if g != e)
    raw = [f"{tok.vocab[a].decode('utf-8', 'replace')} {tok.vocab[b].decode('utf-8', 'replace')}" for (a, b) in tok.merges]
    if sample in raw:
        raise CheckFailed(f"{sample!r} is the raw text: spell each token with spell_token (a space is 'Ġ', a newline "
                          f"'Ċ'), or llama.cpp splits the merge at the token's own space")
    i = got.index(sample)
    left, right = expected[i].split(" ")
    if sample == f"{right} {left}":
        raise CheckFailed(f"merge {i}: {sample!r} has left and right swapped: the pair (left id, right id) is written "
                          f"left first, expected {expected[i]!r}")
    raise CheckFailed(f"merge {i}: expected {expected[i]!r}, got {sample!r} (left spelling, one space, right "
                      f"spelling; if spell_token fails its own check, fix it first: gguf_merges uses it)")


CHECKS = {
    "bits_per_byte": check_bits_per_byte,
    "spell_token": check_spell_token,
    "gguf_merges": check_gguf_merges,
}
