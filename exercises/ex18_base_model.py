"""Chapter 18 exercises: the base model's units, and the tokenizer files other tools read.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 18

Plain Python (math is enough); neither torch nor the course's own helpers are needed.
"""


def bits_per_byte(nats_per_token: float, n_tokens: int, n_bytes: int) -> float:
    """A validation loss in the unit that compares models with different tokenizers.

    ``nats_per_token``: the mean cross-entropy (natural log) over ``n_tokens`` predicted tokens, which together
    spell ``n_bytes`` bytes of text. Return the same total information in bits per byte of that text (a float, not
    rounded)."""
    raise NotImplementedError


def spell_token(token: bytes) -> str:
    """GPT-2's printable spelling of a byte-level token, as tokenizer.json and GGUF files store it.

    Each byte becomes one character. The 188 bytes b with b in 33..126, 161..172 or 174..255 are spelled as
    chr(b). The other 68 bytes (0..32, 127..160 and 173), taken in increasing order, are spelled as chr(256),
    chr(257), ... one after the other. So b" the" is spelled "Ġthe" and b"\\n" is "Ċ"."""
    raise NotImplementedError


def gguf_merges(vocab: dict, merges: dict) -> list:
    """llama.cpp's ``tokenizer.ggml.merges`` for a chapter 04 BPE tokenizer.

    ``vocab``: id -> the token's bytes. ``merges``: (left id, right id) -> the id of the token they make, in
    ANY order (the merge that made id 256 + k is the k-th merge learned). Return one string per merge, in the
    order the merges were learned (lowest rank first): the left token's spelling (``spell_token``), one space,
    the right token's spelling."""
    raise NotImplementedError
