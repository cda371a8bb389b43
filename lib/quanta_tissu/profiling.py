"""Where a training step's time and memory go (chapter 12): FLOPs, the machine's matmul peak, MFU, peak memory.

Does:
- ``flops_per_token(cfg)``: the FLOPs of one training token, PaLM's count (appendix B): 6 per matmul weight
  (2 for the forward multiply-add, 4 for the two backward products) plus 12 * L * T * C for the attention
  scores and their weighted sum, forward and backward. Embedding lookups are free; the output head is a matmul;
  norms, activations and the softmax are left out (they are memory-bound, a few percent of the FLOPs);
- ``matmul_peak()``: the best FLOP/s of a square float32 (or other dtype) matmul on this machine, measured now;
- ``mfu(tokens_per_s, flops_per_token, peak)``: model FLOPs utilisation, the fraction of that peak a run uses;
- ``profile_step(fn)``: ``torch.profiler`` around one call, without the C++ profiler's start and stop lines;
- ``peak_memory(fn)``: the most bytes of tensors alive at once while ``fn`` runs, from torch.profiler's memory
  timeline (CPU or CUDA), counted from what was alive when ``fn`` started.
Does not: time anything but the matmul peak; chapter 12 times the steps themselves.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time

import torch


def matmul_weights(cfg) -> int:
    """Weights that multiply activations: every Linear of the blocks and the output head (tied or not)."""
    C, L, H, KV, F = cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.n_kv_heads, cfg.d_ff
    attention = C * (C + 2 * C * KV // H) + C * C  # qkv (queries, and the narrower keys and values) and proj
    mlp = (3 if cfg.mlp == "swiglu" else 2) * C * F
    return L * (attention + mlp) + C * cfg.vocab_size


def flops_per_token(cfg, context: int | None = None) -> float:
    """Training FLOPs per token: 6 * matmul weights + 12 * L * T * C (attention over a T-token context)."""
    T = cfg.block_size if context is None else context
    return 6 * matmul_weights(cfg) + 12 * cfg.n_layer * T * cfg.n_embd


def matmul_peak(n: int = 1024, rounds: int = 10, device="cpu", dtype=torch.float32) -> float:
    """FLOP/s of the fastest of ``rounds`` n x n matmuls (2 n^3 FLOPs each), float32 unless ``dtype`` says."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(rounds + 2):  # the first two warm the caches and the threads
        start = time.perf_counter()
        a @ b
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: the FLOP/s the model needs at this speed over the machine's peak."""
    return tokens_per_s * flops_per_token / peak_flops


@contextlib.contextmanager
def _quiet_stderr():
    """Point file descriptor 2 at /dev/null: the C++ profiler writes its start and stop lines there, not to Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def profile_step(fn, **options):
    """Run fn() once under ``torch.profiler.profile(**options)``; return the profiler (``.key_averages()``...)."""
    from torch.profiler import profile

    with _quiet_stderr(), profile(**options) as prof:
        fn()
    return prof


def peak_memory(fn, device="cpu") -> int:
    """Bytes: the most tensor memory alive at once during fn(), above what was alive when it began."""
    from torch.profiler._memory_profiler import MemoryProfileTimeline  # torch's own timeline (torch 2.x)

    prof = profile_step(fn, profile_memory=True, record_shapes=True, with_stack=True)
    timeline = MemoryProfileTimeline(prof._memory_profile())
    _, sizes = timeline._coalesce_timeline(torch.device(device))  # bytes alive, per category, at each event
    totals = [sum(s) for s in sizes]
    return max(totals) - totals[0] if totals else 0
