"""Token data on disk: tokenize once, then read random batches through a memory map (chapter 07).

Files: ``train.bin`` and ``val.bin`` hold the ids as little-endian uint16 (vocabularies up to 65,536)
and ``meta.json`` records the tokenizer kind, the vocabulary size and the number of tokens.
Does not: shuffle documents (the corpus is one stream), or hold the data in RAM.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

DTYPE = np.dtype("<u2")


def prepare(ids_train: np.ndarray, ids_val: np.ndarray, out_dir, vocab_size: int, tokenizer: str,
            extra_meta: dict | None = None) -> Path:
    """Write train.bin, val.bin and meta.json (plus ``extra_meta``, e.g. a tokenizer's characters)."""
    if vocab_size > 2**16:
        raise ValueError(f"vocab_size {vocab_size} does not fit uint16 token files (max 65,536)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, ids in (("train", ids_train), ("val", ids_val)):
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ValueError(f"{name} ids must lie in 0..{vocab_size - 1}")
        ids.astype(DTYPE).tofile(out / f"{name}.bin")
    meta = {"vocab_size": vocab_size, "tokenizer": tokenizer, "train_tokens": int(len(ids_train)),
            "val_tokens": int(len(ids_val)), "dtype": "uint16", **(extra_meta or {})}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return out


class TokenData:
    """Random batches of (x, y) windows from a prepared folder; y is x shifted by one token."""

    def __init__(self, folder, block_size: int):
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"no prepared data in {self.folder} (meta.json missing): run "
                                    f"`python -m quanta_tissu prepare --out {self.folder}` first")
        self.meta = json.loads(meta_path.read_text())
        self.block_size = block_size
        self.splits = {}
        for split in ("train", "val"):
            path = self.folder / f"{split}.bin"
            if not path.is_file() or path.stat().st_size == 0:
                raise ValueError(f"the {split} split in {self.folder} is empty or missing; prepare the data again")
            self.splits[split] = ids = np.memmap(path, dtype=DTYPE, mode="r")
            if len(ids) <= block_size:
                raise ValueError(f"the {split} split has {len(ids)} tokens, not more than the context "
                                 f"({block_size}); use a smaller block_size or more data")

    @property
    def vocab_size(self) -> int:
        return self.meta["vocab_size"]

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator, device: str = "cpu"):
        """x, y: (B, T) int64; starts drawn uniformly from ``generator`` (whose state is checkpointed)."""
        ids = self.splits[split]
        starts = torch.randint(len(ids) - self.block_size, (batch_size,), generator=generator).numpy()
        windows = np.stack([ids[s:s + self.block_size + 1] for s in starts]).astype(np.int64)  # (B, T+1)
        x = torch.from_numpy(np.ascontiguousarray(windows[:, :-1]))  # (B, T)
        y = torch.from_numpy(np.ascontiguousarray(windows[:, 1:]))  # (B, T): the same windows, shifted by one
        if device != "cpu":
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        return x, y


def prepare_char_corpus(out_dir, name: str = "tinyshakespeare"):
    """Tokenize a corpus by characters into ``out_dir`` (skipped when already there): (folder, tokenizer)."""
    from ..data import load_text, train_val_split
    from ..tokenizer import CharTokenizer

    text = load_text(name)
    tok = CharTokenizer.from_text(text)
    out = Path(out_dir)
    meta = out / "meta.json"
    if not (meta.is_file() and json.loads(meta.read_text()).get("chars") == tok.chars):
        train_text, val_text = train_val_split(text)
        prepare(tok.encode(train_text), tok.encode(val_text), out, tok.vocab_size, "char", {"chars": tok.chars})
    return out, tok


def prepare_corpus(out_dir, tokenizer, name: str = "tinyshakespeare") -> Path:
    """Tokenize a corpus's train and validation splits with ``tokenizer`` into ``out_dir`` (chapter 18: any
    tokenizer; ``prepare_char_corpus`` is the character case). A BPE tokenizer's special-token strings do not
    occur in the corpus; if they did, they would be encoded as the plain text they are."""
    from ..data import load_text, train_val_split
    from ..tokenizer import CharTokenizer

    if isinstance(tokenizer, CharTokenizer):
        return prepare_char_corpus(out_dir, name)[0]
    train_text, val_text = train_val_split(load_text(name))
    encode = getattr(tokenizer, "encode_ordinary", tokenizer.encode)
    return prepare(np.array(encode(train_text)), np.array(encode(val_text)), out_dir, tokenizer.vocab_size,
                   type(tokenizer).__name__)
