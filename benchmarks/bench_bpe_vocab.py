"""Which vocabulary for chapter 18's base model: bytes per token and validation bits per byte at a fixed budget.

For each vocabulary size (and characters, for reference) the same model (chapter 08's Llama preset at a context of
``--context`` tokens) trains for the same number of steps of the same batch, from the same seed; what changes is
how much text a token carries and how many rows the embedding has. Bits per byte (``qt.zoo.bits_per_byte`` on the
validation split) is the unit in which they compare. Tokens/s is printed as a figure of this run, never judged.
Writes benchmarks/results/bpe_vocab.json.
Usage: python benchmarks/bench_bpe_vocab.py [--steps 400] [--sizes 1024 2048 4096] [--threads 2] [--chars] [--smoke]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import quanta_tissu as qt
from quanta_tissu import zoo
from quanta_tissu.data import load_text, train_val_split
from quanta_tissu.gpt import GPTConfig
from quanta_tissu.training.data import TokenData, prepare_corpus
from quanta_tissu.training.trainer import Trainer, TrainConfig

RESULTS = Path(__file__).parent / "results" / "bpe_vocab.json"


def run(tok, context: int, steps: int, batch: int) -> dict:
    """Train the preset on ``tok``'s ids for ``steps`` steps; its validation bits per byte and speed."""
    cfg = GPTConfig.shakespeare_llama(vocab_size=tok.vocab_size, block_size=context)
    train = TrainConfig.shakespeare_llama(max_steps=steps, batch_size=batch, eval_every=steps, eval_iters=4,
                                          warmup=min(20, steps))
    text = load_text("tinyshakespeare")
    val = train_val_split(text)[1]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer.build(cfg, TokenData(prepare_corpus(Path(tmp), tok), context), train)
        t0 = time.perf_counter()
        trainer.fit(progress=True)
        seconds = time.perf_counter() - t0
    model = trainer.model.eval()
    return {"vocab_size": tok.vocab_size, "context": context, "parameters": model.num_parameters(),
            "val_bytes_per_token": round(len(val.encode()) / len(tok.encode(val)), 3),
            "val_bits_per_byte": round(zoo.bits_per_byte(model, tok, val), 4),
            "train_tokens_per_second": round(steps * batch * context / seconds), "seconds": round(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chars", action="store_true", help="also train on characters, at the same context")
    ap.add_argument("--smoke", action="store_true", help="3 steps at context 32, BPE 512 and characters, nothing written")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.batch, args.context, args.sizes, args.chars = 3, 2, 32, [512], True
    qt.runtime.set_threads(args.threads)
    rows = []
    char = qt.CharTokenizer.from_text(load_text("tinyshakespeare"))
    for name, tok, context in [("characters", char, args.context)] * args.chars + [
            (f"BPE {v}", qt.bpe.base_tokenizer(v), args.context) for v in args.sizes]:
        row = {"tokenizer": name, **run(tok, context, args.steps, args.batch)}
        print(row, flush=True)
        rows.append(row)
    if args.smoke:
        print("smoke run: nothing written")
        return
    RESULTS.write_text(json.dumps({"steps": args.steps, "batch": args.batch, "threads": args.threads,
                                   "note": "same model, steps, batch and seed for every row", "rows": rows},
                                  indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
