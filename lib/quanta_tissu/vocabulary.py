"""A tokenizer's vocabulary as other tools store it: Hugging Face ``tokenizer.json`` and llama.cpp's GGUF keys (chapter 18).

Both tools only know byte-level BPE: a token is a byte string, tokens are built by merges applied in rank
order, and token strings are stored in GPT-2's byte-to-unicode spelling (``bpe.bytes_to_unicode``: byte 32,
the space, is stored as "Ġ", byte 10 as "Ċ"). So both course tokenizers are first put in one form:

- chapter 04's ``BasicBPE`` / ``RegexBPE``: ids 0..255 are the bytes, merge k makes id 256 + k, the special
  tokens follow; the split pattern cuts text into chunks first;
- chapter 01's ``CharTokenizer``: a byte-level BPE vocabulary with no merges, each character a token of
  its one UTF-8 byte (so a character of two or more bytes cannot be exported: there is no merge to build it).

Does:
- ``Vocabulary.of(tokenizer)``: the bytes of every id, the merges as pairs of ids in rank order, the special
  tokens and which of them is ``bos``/``eos``/``pad`` (``SPECIAL_ROLES``), the split pattern;
- ``hf_tokenizer_json()``, ``hf_tokenizer_config()``: the two tokenizer files of a transformers folder;
- ``gguf_tokenizer()``: llama.cpp's ``tokenizer.ggml.*`` metadata (see its docstring for the choices);
- ``tokenizer_from_hf(data)``, ``tokenizer_from_gguf(fields)``: a course tokenizer back from what was written here.
Does not: import torch, transformers or gguf (the files are plain JSON and plain lists), or export a
tokenizer that is not byte-level (SentencePiece, WordPiece).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .bpe import GPT4_SPLIT_PATTERN, BasicBPE, RegexBPE, TokenizerError, bytes_to_unicode
from .tokenizer import CharTokenizer

# Which special token plays which part, by name; the first name a tokenizer has wins.
SPECIAL_ROLES = {"bos": ("<|bos|>",), "eos": ("<|end|>", "<|endoftext|>"), "pad": ("<|end|>", "<|endoftext|>")}
# llama.cpp's token types (llama-vocab.h): a special token is CONTROL, so its text is never produced by
# tokenizing plain text and is not printed when decoding.
GGUF_NORMAL, GGUF_CONTROL = 1, 3
# The pre-tokenizer name llama.cpp maps to the GPT-4 split (LLAMA_VOCAB_PRE_TYPE_LLAMA3), see gguf_tokenizer.
GGUF_PRE = {GPT4_SPLIT_PATTERN: "llama-bpe"}


@dataclass
class Vocabulary:
    """A byte-level BPE vocabulary: what a tokenizer file holds, independent of the tokenizer class."""

    tokens: list[bytes]  # id -> the token's bytes (a special token: its string, UTF-8)
    merges: list[tuple[int, int]]  # (left id, right id) in rank order: merge k is applied before merge k + 1
    special: dict[str, int]  # special-token string -> id
    pattern: str | None  # the split regex applied before BPE, None for no split
    roles: dict[str, int] = field(default_factory=dict)  # "bos"/"eos"/"pad" -> id, for the roles present

    @classmethod
    def of(cls, tokenizer) -> "Vocabulary":
        """The vocabulary of a ``CharTokenizer`` or of chapter 04's ``BasicBPE``/``RegexBPE``."""
        if isinstance(tokenizer, BasicBPE):
            specials = {i: s.encode("utf-8") for s, i in tokenizer.special_tokens.items()}
            tokens = [tokenizer.vocab.get(i, specials.get(i)) for i in range(tokenizer.vocab_size)]
            merges = list(tokenizer.merges)  # dicts keep insertion order, which is the rank order
            return cls(tokens, merges, dict(tokenizer.special_tokens), tokenizer.pattern)._with_roles()
        if isinstance(tokenizer, CharTokenizer):
            wide = [c for c in tokenizer.chars if len(c.encode("utf-8")) != 1]
            if wide:
                raise TokenizerError(f"the character vocabulary has characters of more than one UTF-8 byte "
                                     f"({', '.join(map(repr, wide[:5]))}): a byte-level vocabulary with no "
                                     f"merges cannot build them; export a BPE tokenizer instead")
            return cls([c.encode("utf-8") for c in tokenizer.chars], [], {}, None)
        raise TokenizerError(f"expected a CharTokenizer, BasicBPE or RegexBPE, got {type(tokenizer).__name__}")

    def _with_roles(self) -> "Vocabulary":
        for role, names in SPECIAL_ROLES.items():
            found = [self.special[n] for n in names if n in self.special]
            if found:
                self.roles[role] = found[0]
        return self

    def __len__(self) -> int:
        return len(self.tokens)

    def check_fits(self, vocab_size: int) -> "Vocabulary":
        """Refuse a model whose embedding has another number of rows than this vocabulary has tokens."""
        if len(self) != vocab_size:
            raise TokenizerError(f"the tokenizer has {len(self)} tokens but the model's vocab_size is {vocab_size}: "
                                 f"export the tokenizer the model was trained with")
        return self

    def spelled(self, i: int) -> str:
        """Token ``i`` as tokenizer files store it: GPT-2's printable spelling of its bytes (specials as is)."""
        if i in self.special.values():
            return self.tokens[i].decode("utf-8")
        b2u = bytes_to_unicode()
        return "".join(b2u[b] for b in self.tokens[i])

    def merge_strings(self) -> list[tuple[str, str]]:
        """The merges as pairs of spelled tokens, in rank order."""
        return [(self.spelled(a), self.spelled(b)) for a, b in self.merges]

    # -- Hugging Face ----------------------------------------------------------------------------
    def hf_tokenizer_json(self) -> dict:
        """A ``tokenizer.json`` (as a dict) that encodes any text to the same ids: split, bytes, merges."""
        split = [{"type": "Split", "pattern": {"Regex": self.pattern}, "behavior": "Isolated", "invert": False}]
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
        plain = [i for i in range(len(self)) if i not in self.special.values()]
        return {
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True} for s, i in self.special.items()],
            "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": (split if self.pattern else []) + [byte_level]},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {self.spelled(i): i for i in plain},
                      "merges": [list(pair) for pair in self.merge_strings()]},
        }

    def hf_tokenizer_config(self, model_max_length: int) -> dict:
        """``tokenizer_config.json``: the special tokens by role; no BOS is added (the course never trains with one
        in front of a plain text), and decoding keeps spaces exactly as the bytes say."""
        name = {i: s for s, i in self.special.items()}
        roles = {f"{role}_token": name.get(self.roles.get(role)) for role in ("bos", "eos", "pad")}
        return {"tokenizer_class": "PreTrainedTokenizerFast", **roles, "unk_token": None,
                "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False,
                "model_max_length": model_max_length, "additional_special_tokens": list(self.special)}

    # -- llama.cpp --------------------------------------------------------------------------------
    def gguf_tokenizer(self) -> dict:
        """llama.cpp's tokenizer metadata, as {GGUF key: value} (lists are arrays, bools and ints are scalars).

        - ``tokenizer.ggml.model = "gpt2"``: llama.cpp's name for byte-level BPE; tokens are stored spelled
          (``spelled``), merges as "left right" strings in rank order, special tokens as CONTROL.
        - ``tokenizer.ggml.pre`` names the split. llama.cpp does not read a regex from the file: it picks its own
          split by this name (``llama_vocab::impl::load`` in ``src/llama-vocab.cpp``). "llama-bpe" selects
          ``LLAMA_VOCAB_PRE_TYPE_LLAMA3``, whose regex is the GPT-4 (cl100k) split of chapter 04 written without
          possessive quantifiers or ``(?i:)``, which match the same chunks here; "gpt-2" selects GPT-2's. The
          llama3 type also sets ``ignore_merges``: a chunk that is itself a token is taken whole, the shortcut
          tiktoken takes too. A character vocabulary has no merges, so its split does not matter ("default").
        - The gguf writer drops an empty array, and llama.cpp refuses a file without merges, so a vocabulary
          with no merges gets one merge that can never apply: byte 255 twice, a byte that no one-byte character
          (all below 128) and so no token of a character vocabulary contains.
        """
        if self.merges and self.pattern not in GGUF_PRE:
            raise TokenizerError(f"llama.cpp splits text with one of its own pre-tokenizers; the course's split "
                                 f"patterns it knows are GPT-4's and GPT-2's (RegexBPE('gpt4' or 'gpt2')), "
                                 f"got pattern {self.pattern!r}")
        spelled = [self.spelled(i) for i in range(len(self))]
        merges = [f"{a} {b}" for a, b in self.merge_strings()]
        if not merges:
            never = bytes_to_unicode()[255]
            if never in spelled:
                raise TokenizerError("a vocabulary with no merges holds byte 255; it cannot be given a merge that "
                                     "never applies")
            merges = [f"{never} {never}"]
        fields = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": GGUF_PRE.get(self.pattern, "default"),
                  "tokenizer.ggml.tokens": spelled,
                  "tokenizer.ggml.token_type": [GGUF_CONTROL if i in self.special.values() else GGUF_NORMAL
                                                for i in range(len(self))],
                  "tokenizer.ggml.merges": merges,
                  "tokenizer.ggml.add_bos_token": False, "tokenizer.ggml.add_eos_token": False}
        for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id")):
            if role in self.roles:
                fields[f"tokenizer.ggml.{key}"] = self.roles[role]
        return fields


def tokenizer_from_gguf(fields: dict):
    """The course tokenizer that the ``tokenizer.ggml.*`` fields written by ``gguf_tokenizer`` describe."""
    if fields.get("tokenizer.ggml.model") != "gpt2" or "tokenizer.ggml.tokens" not in fields:
        raise TokenizerError(f"the file's tokenizer is {fields.get('tokenizer.ggml.model')!r}; only byte-level BPE "
                             f"('gpt2') written by qt.save_gguf(..., tokenizer=...) reads back")
    tokens, types = fields["tokenizer.ggml.tokens"], fields.get("tokenizer.ggml.token_type", [])
    control = {i for i, t in enumerate(types) if t == GGUF_CONTROL}
    never = bytes_to_unicode()[255]
    pattern = {name: pattern for pattern, name in GGUF_PRE.items()}.get(fields.get("tokenizer.ggml.pre"))
    return tokenizer_from_hf({
        "model": {"vocab": {t: i for i, t in enumerate(tokens) if i not in control},
                  "merges": [m for m in fields.get("tokenizer.ggml.merges", []) if m != f"{never} {never}"]},
        "added_tokens": [{"id": i, "content": tokens[i]} for i in sorted(control)],
        "pre_tokenizer": {"pretokenizers": [{"type": "Split", "pattern": {"Regex": pattern}}] if pattern else []}})


def tokenizer_from_hf(data: dict):
    """The course tokenizer that a ``tokenizer.json`` written by ``hf_tokenizer_json`` describes.

    No merges and one-byte tokens: a ``CharTokenizer``. Otherwise a ``RegexBPE`` (or ``BasicBPE`` without a split)
    whose ids must follow chapter 04's numbering: bytes 0..255, merge k is id 256 + k, then the special tokens.
    """
    try:
        model, pre = data["model"], data.get("pre_tokenizer") or {}
        vocab, pairs = model["vocab"], [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m)
                                        for m in model["merges"]]
        specials = sorted(((t["content"], t["id"]) for t in data.get("added_tokens", [])), key=lambda t: t[1])
        split = [p for p in pre.get("pretokenizers", []) if p.get("type") == "Split"]
    except (KeyError, TypeError, AttributeError) as err:
        raise TokenizerError(f"not a byte-level BPE tokenizer.json ({type(err).__name__}: {err})") from None
    u2b = {u: b for b, u in bytes_to_unicode().items()}
    unspell = lambda s: bytes(u2b[c] for c in s)  # noqa: E731 - GPT-2's spelling back to bytes
    if not pairs and not specials and all(len(unspell(s)) == 1 for s in vocab):
        by_id = sorted(vocab.items(), key=lambda kv: kv[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise TokenizerError("a character vocabulary's ids must be 0..n-1")
        return CharTokenizer([unspell(s).decode("utf-8") for s, _ in by_id])
    tok = RegexBPE(split[0]["pattern"]["Regex"]) if split else BasicBPE()
    if any(vocab.get(bytes_to_unicode()[b]) != b for b in range(256)):
        raise TokenizerError("token ids 0..255 are not the 256 bytes: not a tokenizer in chapter 04's numbering")
    try:
        merges = [((vocab[a], vocab[b]), vocab[a + b]) for a, b in pairs]
    except KeyError as err:
        raise TokenizerError(f"merge {err} names a token that is not in the vocabulary") from None
    if [new for _, new in merges] != list(range(256, 256 + len(merges))):
        raise TokenizerError("merge k does not make id 256 + k: the merges are not in rank order")
    tok._set_merges(merges, "hf")
    tok._add_special_tokens([name for name, _ in specials])
    if tok.special_tokens != dict(specials):
        raise TokenizerError("special token ids do not follow the merges")
    return tok
