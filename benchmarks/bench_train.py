"""Training-step efficiency (chapter 12): MFU against the measured matmul peak, SDPA, activation checkpointing,
torch.compile and 16-bit autocast on this machine, all measured in one run.

Prints and records:
- the matmul peak (best of a 1024 x 1024 float32 matmul) and, for three Llama configurations from the course
  model up to width 384, training tokens/s and MFU with the manual attention and with SDPA;
- activation checkpointing at width 384, context 256, batch 8: peak memory of a step (torch.profiler's memory
  timeline) and step time, against the plain step;
- torch.compile on the course model: the first (compiling) step from an empty compile cache, the warm step time,
  the eager step time, and the steps needed to pay the compile back;
- the bf16 matmul peak, and fp32, bf16 and fp16 autocast step times on the course model: a CPU without 16-bit
  matrix units (most laptops') emulates them and is slower in 16 bits; one with them (AMX) can be faster.
Writes benchmarks/results/train.json.
Usage: python benchmarks/bench_train.py [--threads 2] [--smoke]
"""
import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

import quanta_tissu as qt
from quanta_tissu.gpt import GPT, GPTConfig
from quanta_tissu.precision import autocast
from quanta_tissu.profiling import flops_per_token, matmul_peak, mfu, peak_memory

RESULTS = Path(__file__).parent / "results" / "train.json"
COURSE = dict(vocab_size=65, block_size=64, n_layer=3, n_embd=96, n_head=4, n_kv_heads=2)  # the course model
CONFIGS = {  # name -> (GPTConfig.llama fields, batch)
    "course model (3 x 96, T 64)": (COURSE, 24),
    "4 x 256, T 128": (dict(vocab_size=65, block_size=128, n_layer=4, n_embd=256, n_head=4), 16),
    "4 x 384, T 256": (dict(vocab_size=65, block_size=256, n_layer=4, n_embd=384, n_head=6), 8),
}
SMOKE = {"smoke (1 x 32, T 16)": (dict(vocab_size=65, block_size=16, n_layer=1, n_embd=32, n_head=2), 2)}


def make_step(cfg: GPTConfig, batch: int, backend="manual", checkpointing=False, precision="fp32", compiled=False):
    """A model, its optimizer and a function that runs one training step on a fixed random batch."""
    torch.manual_seed(0)
    model = GPT(cfg).train().set_attention(backend)
    model.checkpointing = checkpointing
    forward = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size))

    def step():
        with autocast(precision):
            loss = forward(x, x)[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def seconds_per_step(step, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def measure_compile(r: dict, name: str, cfg: GPTConfig, batch: int, steps: int) -> None:
    """torch.compile's first step from an empty cache, its warm steps, and the eager steps it competes with."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="qt-inductor-")  # an empty cache: a cold compile
    compiled = make_step(cfg, batch, compiled=True)
    start = time.perf_counter()
    compiled()
    first = time.perf_counter() - start
    warm, eager = seconds_per_step(compiled, 4 * steps), seconds_per_step(make_step(cfg, batch), 4 * steps)
    saved = eager - warm
    r["compile"] = {"config": name, "first_step_s": first, "warm_step_ms": warm * 1e3, "eager_step_ms": eager * 1e3,
                    "break_even_steps": (first - eager) / saved if saved > 0 else None}
    payback = "never" if saved <= 0 else f"{r['compile']['break_even_steps']:.0f} steps"
    print(f"torch.compile, {name}: first step {first:.1f} s, then {warm * 1e3:.1f} ms a step against "
          f"{eager * 1e3:.1f} ms eager; pays back after {payback}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one step each: checks the script runs")
    args = parser.parse_args()
    qt.setup(seed=0, threads=args.threads)
    configs, steps = (SMOKE, 1) if args.smoke else (CONFIGS, 5)
    r = {"threads": args.threads, "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
         "matmul_peak_GFLOP_per_s": matmul_peak(256 if args.smoke else 1024) / 1e9,
         "bf16_matmul_GFLOP_per_s": matmul_peak(256 if args.smoke else 1024, dtype=torch.bfloat16) / 1e9, "mfu": {}}
    print(f"matmul peak: fp32 {r['matmul_peak_GFLOP_per_s']:.0f} GFLOP/s, bf16 {r['bf16_matmul_GFLOP_per_s']:.0f} GFLOP/s")
    peak = r["matmul_peak_GFLOP_per_s"] * 1e9
    for name, (fields, batch) in configs.items():
        cfg = GPTConfig.llama(**fields)
        for backend in ("manual", "sdpa"):
            tokens_per_s = batch * cfg.block_size / seconds_per_step(make_step(cfg, batch, backend), steps)
            r["mfu"][f"{name}, {backend}"] = {"tokens_per_s": tokens_per_s, "batch": batch,
                                              "mfu": mfu(tokens_per_s, flops_per_token(cfg), peak)}
            print(f"{name:28s} {backend:6s} {tokens_per_s:8.0f} tokens/s  MFU {r['mfu'][f'{name}, {backend}']['mfu']:.0%}")
    name, (fields, batch) = list(configs.items())[-1]
    cfg = GPTConfig.llama(**fields)
    ck = {}
    plain, ckpt = make_step(cfg, batch), make_step(cfg, batch, checkpointing=True)
    rounds = [(seconds_per_step(plain, steps, 1), seconds_per_step(ckpt, steps, 1)) for _ in range(3)]  # interleaved
    for name, step, i in (("plain", plain, 0), ("checkpointing", ckpt, 1)):
        ck[name] = {"seconds_per_step": min(r[i] for r in rounds), "peak_MB": peak_memory(step) / 2**20}
    ck["memory_ratio"] = ck["checkpointing"]["peak_MB"] / ck["plain"]["peak_MB"]
    ck["time_ratio"] = ck["checkpointing"]["seconds_per_step"] / ck["plain"]["seconds_per_step"]
    r["checkpointing"] = {"config": name, "batch": batch, **ck}
    print(f"checkpointing, {name}, batch {batch}: peak memory {ck['plain']['peak_MB']:.0f} -> "
          f"{ck['checkpointing']['peak_MB']:.0f} MB ({ck['memory_ratio']:.2f}x, goal <= 0.5x), step time "
          f"{ck['time_ratio']:.2f}x (goal <= 1.4x)")
    name, (fields, batch) = list(configs.items())[0]
    cfg = GPTConfig.llama(**fields)
    if not args.smoke:  # a cold compile takes tens of seconds whatever the size
        measure_compile(r, name, cfg, batch, steps)
    r["precision_step_ms"] = {p: seconds_per_step(make_step(cfg, batch, precision=p), 1 if args.smoke else 10, 1) * 1e3
                              for p in ("fp32", "bf16", "fp16")}
    print("autocast step time, " + ", ".join(f"{p} {ms:.0f} ms" for p, ms in r["precision_step_ms"].items()))
    if not args.smoke:
        RESULTS.write_text(json.dumps(r, indent=1) + "\n")
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
