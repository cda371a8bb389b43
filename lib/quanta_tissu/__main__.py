"""The course's command line: ``python -m quanta_tissu COMMAND ...``.

Commands (each chapter that adds one documents it):
- ``tokenizer train --input FILE --vocab-size N --out DIR``  (chapter 04)
- ``tokenizer encode --tokenizer DIR (--text TEXT | --input FILE)``  (chapter 04)
- ``data path NAME``: where the corpus loader finds a corpus (chapter 01)
- ``prepare --out DIR [--tokenizer char|bpe]``: tokenize the corpus into train.bin/val.bin (chapter 07)
- ``train --data DIR --out DIR [--preset shakespeare-char] [--max-steps N ...] [--resume]`` (chapter 07); under
  ``torchrun --nproc_per_node=N -m quanta_tissu train ... --strategy ddp|zero|fsdp``, data-parallel (chapter 13)
- ``generate --checkpoint DIR --prompt TEXT [--tokens N]`` (chapter 07)
- ``serve [--checkpoint NAME|DIR] [--host H] [--port P]``: an OpenAI-compatible server (chapter 17)
"""
from __future__ import annotations

import argparse
import os
import json
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


def _tokenizer_for(meta: dict):
    """The tokenizer a prepared data folder (or checkpoint) was made with."""
    from .bpe import course_tokenizer
    from .tokenizer import CharTokenizer

    if meta["tokenizer"] == "char":
        return CharTokenizer(meta["chars"])
    return course_tokenizer(meta["vocab_size"])


def _prepare(args) -> int:
    from .data import load_text, train_val_split
    from .training.data import prepare

    text = load_text(args.corpus)
    if args.tokenizer == "char":
        from .tokenizer import CharTokenizer

        tok = CharTokenizer.from_text(text)
        meta_tok = {"chars": tok.chars}
    else:
        from .bpe import course_tokenizer

        tok = course_tokenizer(args.vocab_size, progress=True)
        meta_tok = {}
    train_text, val_text = train_val_split(text)
    train_ids, val_ids = tok.encode(train_text), tok.encode(val_text)
    out = prepare(train_ids, val_ids, args.out, tok.vocab_size, args.tokenizer, meta_tok)
    print(f"{len(train_ids):,} train and {len(val_ids):,} validation tokens in {out}")
    return 0


PRESETS = {"shakespeare-char": ("shakespeare_char", "shakespeare_char"), "tiny": ("tiny", "smoke"),
           "shakespeare-llama": ("shakespeare_llama", "shakespeare_llama")}


def _train(args) -> int:
    from .gpt import GPT, GPTConfig
    from .runtime import setup
    from .training.data import TokenData
    from .training.trainer import Trainer, TrainConfig

    from .training.distributed import start

    main = int(os.environ.get("RANK", 0)) == 0  # under torchrun (chapter 13) only rank 0 prints
    run = setup(seed=args.seed, threads=args.threads, device=args.device, verbose=main)
    start(run.device)  # joins torchrun's process group; nothing for one process
    if args.resume:
        from .training.checkpoint import read_config

        cfg = read_config(args.out)
        data = TokenData(args.data, cfg["model"]["block_size"])
        trainer = Trainer.resume(args.out, data, run.device, max_steps=args.max_steps, strategy=args.strategy)
    else:
        if not (Path(args.data) / "meta.json").is_file():
            raise FileNotFoundError(f"no prepared data in {args.data}: run "
                                    f"`python -m quanta_tissu prepare --out {args.data}` first")
        model_preset, train_preset = PRESETS[args.preset]
        settable = ("max_steps", "batch_size", "lr", "warmup", "precision", "attention", "checkpointing", "compile",
                    "strategy")
        overrides = {k: v for k, v in vars(args).items() if k in settable and v is not None}
        preset_warmup = getattr(TrainConfig, train_preset)().warmup
        if "warmup" not in overrides and overrides.get("max_steps", preset_warmup) < preset_warmup:
            overrides["warmup"] = max(1, overrides["max_steps"] // 10)  # a short run gets a short warmup
        data_meta = json.loads((Path(args.data) / "meta.json").read_text())
        model_cfg = getattr(GPTConfig, model_preset)(vocab_size=data_meta["vocab_size"])
        train_cfg = getattr(TrainConfig, train_preset)(seed=args.seed, **overrides)
        data = TokenData(args.data, model_cfg.block_size)
        tokenizer = {k: data_meta[k] for k in ("tokenizer", "vocab_size", "chars") if k in data_meta}
        trainer = Trainer(GPT(model_cfg), data, train_cfg, args.out, run.device, {"tokenizer": tokenizer})
    history = trainer.fit()
    if main:
        print(f"step {trainer.step}: validation loss {history.val_eval[-1]:.4f}; checkpoint in {args.out}")
    return 0


def _generate(args) -> int:
    from .inference import complete, stream
    from .training import checkpoint

    model, config = checkpoint.load_model(args.checkpoint)
    tok = _tokenizer_for(config["tokenizer"])
    knobs = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                 repetition_penalty=args.repetition_penalty, seed=args.seed, cache=not args.no_cache)
    if args.stream:
        if args.stop:
            raise ValueError("--stream does not take --stop: the text is printed as it comes")
        print(args.prompt, end="", flush=True)
        for piece in stream(model, args.prompt, args.tokens, tok, **knobs):
            print(piece, end="", flush=True)
        print()
        return 0
    print(args.prompt + complete(model, args.prompt, args.tokens, tok, stop=args.stop or None, **knobs))
    return 0


def _serve(args) -> int:
    from .runtime import set_threads
    from .serving.app import serve

    set_threads(args.threads)
    serve(args.checkpoint, args.host, args.port, args.slots, args.timeout)
    return 0


def _zoo_build(args) -> int:
    from . import runtime, zoo

    runtime.set_threads(args.threads)  # the recipe seeds itself
    folder = zoo.build(args.name, args.out or zoo.shipped_dir(args.name))
    config = json.loads((folder / "config.json").read_text())
    print(f"{args.name}: validation loss {config['validation_loss']:.4f}; weights in {folder}")
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

    prep = commands.add_parser("prepare", help="tokenize a corpus into train.bin / val.bin")
    prep.add_argument("--out", required=True, help="folder for the token files")
    prep.add_argument("--corpus", default="tinyshakespeare")
    prep.add_argument("--tokenizer", choices=["char", "bpe"], default="char")
    prep.add_argument("--vocab-size", type=int, default=1024, help="for --tokenizer bpe")
    prep.set_defaults(func=_prepare)

    train = commands.add_parser("train", help="train a GPT on prepared data (a preset plus overrides)")
    train.add_argument("--data", required=True, help="folder made by `prepare`")
    train.add_argument("--out", required=True, help="run folder: checkpoints and metrics.jsonl")
    train.add_argument("--preset", choices=sorted(PRESETS), default="shakespeare-char")
    train.add_argument("--max-steps", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--warmup", type=int)
    train.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="chapter 12: autocast precision")
    train.add_argument("--attention", choices=["manual", "sdpa"], help="chapter 12: attention backend")
    train.add_argument("--checkpointing", action="store_true", default=None, help="chapter 12: activation checkpointing")
    train.add_argument("--compile", action="store_true", default=None, help="chapter 12: torch.compile the model")
    train.add_argument("--strategy", choices=["none", "ddp", "zero", "fsdp"],
                       help="chapter 13: data parallelism under torchrun (--batch-size is then the global batch)")
    train.add_argument("--seed", type=int, default=1337)
    train.add_argument("--threads", type=int, default=None)
    train.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    train.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    train.set_defaults(func=_train)

    gen = commands.add_parser("generate", help="sample text from a checkpoint")
    gen.add_argument("--checkpoint", required=True, help="run folder or step-NNNNNNNN folder")
    gen.add_argument("--prompt", default="\n")
    gen.add_argument("--tokens", type=int, default=300)
    gen.add_argument("--temperature", type=float, default=1.0, help="0 is greedy")
    gen.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: all)")
    gen.add_argument("--top-p", type=float, default=1.0, help="keep the most likely tokens up to mass p (1: all)")
    gen.add_argument("--min-p", type=float, default=0.0, help="keep tokens at least min-p times the top one's probability")
    gen.add_argument("--repetition-penalty", type=float, default=1.0, help="above 1 discourages repeats")
    gen.add_argument("--stop", action="append", help="stop before this string (repeatable)")
    gen.add_argument("--stream", action="store_true", help="print the text as it is generated")
    gen.add_argument("--no-cache", action="store_true", help="re-read the context every token (crops long ones)")
    gen.add_argument("--seed", type=int, default=1337)
    gen.set_defaults(func=_generate)

    srv = commands.add_parser("serve", help="an OpenAI-compatible HTTP server for a checkpoint (chapter 17)")
    srv.add_argument("--checkpoint", default="shakespeare-llama", help="a course checkpoint name or a folder")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--slots", type=int, default=8, help="requests decoded together (continuous batching)")
    srv.add_argument("--timeout", type=float, default=60.0, help="seconds a request may take")
    srv.add_argument("--threads", type=int, default=2)
    srv.set_defaults(func=_serve)

    zoo = commands.add_parser("zoo", help="course checkpoints").add_subparsers(dest="action", required=True)
    build = zoo.add_parser("build", help="train a course checkpoint from its recipe (default: refresh the lib's copy)")
    build.add_argument("name", help="a recipe of qt.zoo.RECIPES, e.g. shakespeare-llama")
    build.add_argument("--out", help="folder to write (default: the lib's shipped checkpoints/NAME)")
    build.add_argument("--threads", type=int, default=2)
    build.set_defaults(func=_zoo_build)
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
