"""One course recipe's training run, recorded: loss curve, tokens/s, MFU against the matmul peak of the same run.

``--ship`` also writes the trained weights as the lib's shipped checkpoint (what ``python -m quanta_tissu zoo build
NAME`` does), so the recorded run is the one whose weights chapter 18 loads. Writes
benchmarks/results/zoo_NAME.json: the training loss every ``--every`` steps, the evaluations, the wall time,
tokens/s, MFU, and the validation loss in nats per token and bits per byte.
Usage: python benchmarks/bench_zoo_recipe.py shakespeare-bpe [--ship] [--threads 2] [--smoke]
"""
import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

import quanta_tissu as qt
from quanta_tissu import zoo
from quanta_tissu.data import load_text, train_val_split
from quanta_tissu.profiling import flops_per_token, matmul_peak, mfu

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name", choices=sorted(zoo.RECIPES))
    ap.add_argument("--ship", action="store_true", help="write the weights into the lib's shipped checkpoint")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--every", type=int, default=25, help="keep the training loss of every N-th step")
    ap.add_argument("--smoke", action="store_true", help="4 steps of the recipe, nothing written")
    args = ap.parse_args()
    qt.runtime.set_threads(args.threads)
    if args.smoke:  # this process only: the recipe cut to 4 steps
        recipe = zoo.RECIPES[args.name]
        zoo.RECIPES[args.name] = dataclasses.replace(recipe, train=dataclasses.replace(
            recipe.train, max_steps=4, warmup=1, eval_every=2, eval_iters=1))
    recipe = zoo.RECIPES[args.name]
    peak = matmul_peak(1024)  # measured before and after the run: the host's speed moves
    start = time.perf_counter()
    model, tok, history = zoo.train_recipe(args.name)
    seconds = time.perf_counter() - start
    peak = max(peak, matmul_peak(1024))
    tokens = recipe.train.max_steps * recipe.train.batch_size * recipe.train.grad_accum * recipe.model.block_size
    val = train_val_split(load_text(recipe.corpus))[1]
    record = {
        "recipe": args.name, "fingerprint": recipe.fingerprint(), "about": recipe.about,
        "host": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
        "steps": recipe.train.max_steps, "tokens": tokens, "seconds": round(seconds, 1),
        "tokens_per_s": round(tokens / seconds), "matmul_peak_GFLOP_per_s": round(peak / 1e9, 1),
        "mfu": round(mfu(tokens / seconds, flops_per_token(recipe.model), peak), 4),
        "validation_loss_nats_per_token": round(zoo.validation_loss(model, recipe.corpus, tok), 4),
        "validation_bits_per_byte": round(zoo.bits_per_byte(model, tok, val), 4),
        "loss_curve": {"steps": history.steps[::args.every], "loss": [round(x, 4) for x in history.loss[::args.every]]},
        "evaluations": {"steps": history.eval_steps, "train": history.train_eval, "val": history.val_eval},
    }
    if args.smoke:
        print(f"smoke run: nothing written ({record['steps']} steps, {record['tokens_per_s']} tokens/s)")
        return
    if args.ship:
        record["shipped"] = str(zoo.write_checkpoint(args.name, zoo.shipped_dir(args.name), model, tok))
    out = RESULTS / f"zoo_{args.name}.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print({k: v for k, v in record.items() if k not in ("loss_curve", "evaluations")})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
