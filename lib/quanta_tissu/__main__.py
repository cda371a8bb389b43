"""The course's command line: ``python -m quanta_tissu COMMAND ...``.

Commands (each chapter that adds one documents it):
- ``tokenizer train --input FILE --vocab-size N --out DIR``  (chapter 04)
- ``tokenizer encode --tokenizer DIR (--text TEXT | --input FILE)``  (chapter 04)
- ``data path NAME``: where the corpus loader finds a corpus (chapter 01)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _tokenizer_train(args) -> int:
    from .bpe import RegexBPE

    text = Path(args.input).read_text(encoding="utf-8")
    tok = RegexBPE(args.pattern, special_tokens=args.special or ())
    start = time.perf_counter()
    tok.train(text, args.vocab_size, tie=args.tie, progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = tok.save(out)
    if args.hf:
        tok.save_hf(out)
    ids = tok.encode_ordinary(text)
    print(f"trained {tok} in {time.perf_counter() - start:.1f} s; "
          f"{len(text.encode('utf-8')) / len(ids):.2f} bytes per token on the training text; saved {path}")
    return 0


def _tokenizer_encode(args) -> int:
    from .bpe import BasicBPE

    tok = BasicBPE.load(args.tokenizer)
    text = args.text if args.text is not None else Path(args.input).read_text(encoding="utf-8")
    ids = tok.encode(text, allowed_special="all") if tok.special_tokens else tok.encode(text)
    print(ids)
    print(" | ".join(repr(piece)[1:-1] for piece in tok.token_strings(ids)))
    print(f"{len(ids)} tokens, {len(text.encode('utf-8')) / max(len(ids), 1):.2f} bytes per token")
    return 0


def _data_path(args) -> int:
    from .data import corpus_path

    print(corpus_path(args.name, download=not args.offline))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m quanta_tissu", description="QuantaTissu course tools")
    commands = parser.add_subparsers(dest="command", required=True)

    tokenizer = commands.add_parser("tokenizer", help="train or try a byte-level BPE tokenizer").add_subparsers(
        dest="action", required=True)
    train = tokenizer.add_parser("train", help="train a RegexBPE tokenizer on a text file")
    train.add_argument("--input", required=True, help="UTF-8 text file to learn from")
    train.add_argument("--vocab-size", type=int, required=True, help="256 bytes + merges + special tokens")
    train.add_argument("--out", required=True, help="folder to write tokenizer.qt.json into")
    train.add_argument("--pattern", default="gpt4", help="split pattern: gpt2, gpt4 or a regex")
    train.add_argument("--tie", default="hf", choices=["hf", "first"], help="rule for equally frequent pairs")
    train.add_argument("--special", nargs="*", help="special tokens, e.g. '<|endoftext|>'")
    train.add_argument("--hf", action="store_true", help="also write a Hugging Face tokenizer.json")
    train.set_defaults(func=_tokenizer_train)
    encode = tokenizer.add_parser("encode", help="show the ids and pieces of a text")
    encode.add_argument("--tokenizer", required=True, help="folder or tokenizer.qt.json file")
    source = encode.add_mutually_exclusive_group(required=True)
    source.add_argument("--text")
    source.add_argument("--input")
    encode.set_defaults(func=_tokenizer_encode)

    data = commands.add_parser("data", help="corpora").add_subparsers(dest="action", required=True)
    path = data.add_parser("path", help="print where a corpus is (downloading it if needed)")
    path.add_argument("name", nargs="?", default="tinyshakespeare")
    path.add_argument("--offline", action="store_true", help="never download")
    path.set_defaults(func=_data_path)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError) as exc:  # our errors carry their own explanation
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
