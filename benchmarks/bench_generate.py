"""Decoding speed (chapters 10-11): the KV cache against re-reading, ours against transformers, and the memory
bandwidth bound, on a 9.8M-parameter Llama (6 layers, width 384, 6 heads, 2 key/value heads, context 1,024,
vocabulary 1,024), random weights (speed does not depend on what the weights learned).

Prints, all measured in this run:
- tokens/s over the same 1,000 new tokens without a cache (every step re-reads the context, so it slows down as
  the context grows) and with it;
- transformers' ``generate`` (with its cache) on the same weights, exported with ``qt.save_hf``;
- the bandwidth bound: at batch 1, each new token reads every weight and the cache so far once, so tokens/s can
  not exceed copy bandwidth / bytes read per token; ours is printed as a fraction of it;
- batch-8 throughput and the time to first token for a 512-token prompt;
- weight-only int8 (chapter 14, ``qt.quantize``, per-channel scales): the same decoding with a quarter of the
  weight bytes, through torch's ``_weight_int8pack_mm`` kernel and through dequantize + float32 matmul, the better
  as a ratio to float32;
- the matmul floor: the time per token of the model's weight matrices alone, each applied to one vector, with
  nothing else around them. No fp32 decoder can beat it, so it says which goals are reachable at all: per-token
  time above it is the cost of the ~30 small operations per layer around the matmuls (norms, rotations,
  attention over the cache, residual adds), each a separate PyTorch call at batch 1;
- the eager floor: the same decoding step written as one flat function of about 15 PyTorch calls per layer
  (gate and up in one matmul, residual adds fused into the output matmuls, no modules, no checks), checked
  against the model's logits. It is a probe, not a second model: it says how much of ours is the modules' and
  the checks' overhead, and what eager PyTorch can reach at all here.
Writes benchmarks/results/generate.json.
Usage: python benchmarks/bench_generate.py [--tokens 1000] [--threads 2] [--smoke]
"""
import argparse
import copy
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

import quanta_tissu as qt
from quanta_tissu.gpt import GPT, GPTConfig
from quanta_tissu.inference import generate
from quanta_tissu.quantize import QuantizedLinear, quantize_model

RESULTS = Path(__file__).parent / "results" / "generate.json"
CONFIG = dict(vocab_size=1024, block_size=1024, n_layer=6, n_embd=384, n_head=6, n_kv_heads=2)
SMOKE = dict(vocab_size=64, block_size=64, n_layer=1, n_embd=32, n_head=4, n_kv_heads=2)


def tokens_per_s(fn, new_tokens: int, batch: int = 1) -> float:
    start = time.perf_counter()
    fn()
    return batch * new_tokens / (time.perf_counter() - start)


def copy_bandwidth(mb: int = 256, rounds: int = 5) -> float:
    """Bytes per second of a large tensor copy (read + write counted once each), best of ``rounds``."""
    src = torch.ones(mb * 2**20 // 4)
    dst = torch.empty_like(src)
    best = min(_timed(lambda: dst.copy_(src)) for _ in range(rounds))
    return 2 * src.nbytes / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_floor(model, rounds: int = 200) -> float:
    """Seconds per token of every Linear of the model applied to one vector (B = 1, T = 1), back to back."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(1, 1, lin.in_features) for lin in linears]
    with torch.no_grad():
        for lin, x in zip(linears, inputs):  # warm-up
            lin(x)
        start = time.perf_counter()
        for _ in range(rounds):
            for lin, x in zip(linears, inputs):
                lin(x)
    return (time.perf_counter() - start) / rounds


def eager_floor(model, prompt, new_tokens: int) -> float:
    """Seconds per token of a flat, hand-fused decoding step (Llama preset, batch 1) on the model's weights."""
    import torch.nn.functional as F

    cfg = model.cfg
    H, KV, C = cfg.n_head, cfg.n_kv_heads, cfg.n_embd
    D, eps = C // H, cfg.norm_eps
    rope = model.blocks[0].attn.rope
    cos, sin = rope.cos[:, 0], rope.sin[:, 0]  # (T, D)
    sin = torch.cat([-sin[:, :D // 2], sin[:, D // 2:]], -1)  # rotate-half's sign folded into the table
    layers = [(b.ln1.weight, b.attn.qkv.weight, b.attn.proj.weight.t(), b.ln2.weight,
               torch.cat([b.mlp.gate.weight, b.mlp.up.weight]), b.mlp.proj.weight.t()) for b in model.blocks]
    keys = torch.zeros(cfg.n_layer, KV, cfg.block_size, D)
    values = torch.zeros_like(keys)

    def norm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def step(token: int, pos: int):
        x = model.wte.weight[token].view(1, C)
        c, s = cos[pos], sin[pos]
        for i, (w1, wqkv, wo, w2, wgu, wd) in enumerate(layers):
            heads = F.linear(norm(x, w1), wqkv).view(H + 2 * KV, D)  # (1, (H + 2KV) D) -> (H + 2KV, D)
            qk = heads[:H + KV]
            qk = torch.addcmul(qk * c, qk.view(H + KV, 2, D // 2).flip(1).view(H + KV, D), s)  # RoPE
            keys[i, :, pos].copy_(qk[H:])
            values[i, :, pos].copy_(heads[H + KV:])
            q = qk[:H].view(KV, H // KV, D)  # the G query heads of a group as rows
            att = torch.bmm(q, keys[i, :, :pos + 1].transpose(1, 2)).mul_(D ** -0.5).softmax(-1)  # (KV, G, S)
            x = torch.addmm(x, torch.bmm(att, values[i, :, :pos + 1]).view(1, C), wo)  # + residual
            gate, up = F.linear(norm(x, w2), wgu).chunk(2, -1)
            x = torch.addmm(x, F.silu(gate).mul_(up), wd)
        return F.linear(norm(x, model.ln_f.weight), model.lm_head.weight)  # (1, V)

    ids = prompt[0].tolist()
    with torch.no_grad():
        for pos, token in enumerate(ids):
            logits = step(token, pos)
        expected = model(prompt)[0][0, -1]
        assert torch.allclose(logits[0], expected, atol=1e-4), "the flat step's logits differ from the model's"
        start = time.perf_counter()
        for pos in range(len(ids), len(ids) + new_tokens):
            token = int(step(token, pos).argmax())
    return (time.perf_counter() - start) / new_tokens


def transformers_speed(model, prompt, new_tokens: int) -> float:
    import transformers

    folder = qt.save_hf(model, Path(tempfile.mkdtemp()) / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    kwargs = dict(attention_mask=torch.ones_like(prompt), do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        hf.generate(prompt, max_new_tokens=8, min_new_tokens=8, **kwargs)  # warm-up
        ours = generate(model, prompt, 32, temperature=0, cache=True)
        theirs = hf.generate(prompt, max_new_tokens=32, min_new_tokens=32, **kwargs)
        assert torch.equal(ours, theirs), "greedy tokens differ from transformers'"
        return tokens_per_s(lambda: hf.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs),
                            new_tokens)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="a tiny model and a few tokens: checks the script runs")
    args = parser.parse_args()
    qt.setup(seed=1337, threads=args.threads)
    cfg = GPTConfig.llama(**(SMOKE if args.smoke else CONFIG))
    n = 2 if args.smoke else args.tokens
    no_cache_n = n
    model = GPT(cfg).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, 8))
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    generate(model, prompt, 4, temperature=0, cache=True)  # warm-up
    r = {"config": CONFIG if not args.smoke else SMOKE, "new_tokens": n, "threads": args.threads,
         "machine": platform.processor() or platform.machine(), "torch": torch.__version__}
    r["no_cache_tokens_per_s"] = tokens_per_s(lambda: generate(model, prompt, no_cache_n, temperature=0), no_cache_n)
    r["cache_tokens_per_s"] = tokens_per_s(lambda: generate(model, prompt, n, temperature=0, cache=True), n)
    r["transformers_tokens_per_s"] = transformers_speed(model, prompt, n)
    int8 = quantize_model(copy.deepcopy(model), "int8")
    variants = {"torch._weight_int8pack_mm, float32 activations": (True, torch.float32),
                "torch._weight_int8pack_mm, bfloat16 activations": (True, torch.bfloat16),
                "dequantize + float32 matmul": (False, torch.float32)}
    r["int8_variants_tokens_per_s"] = {}
    for name, (kernel, dtype) in variants.items():
        QuantizedLinear.int8_kernel, QuantizedLinear.kernel_dtype = kernel, dtype
        generate(int8, prompt, 4, temperature=0, cache=True)  # warm-up
        speed = tokens_per_s(lambda: generate(int8, prompt, n, temperature=0, cache=True), n)
        r["int8_variants_tokens_per_s"][name] = speed
    QuantizedLinear.int8_kernel, QuantizedLinear.kernel_dtype = True, torch.float32
    r["int8_kernel"], r["int8_tokens_per_s"] = max(r["int8_variants_tokens_per_s"].items(), key=lambda kv: kv[1])
    r["int8_vs_fp32"] = r["int8_tokens_per_s"] / r["cache_tokens_per_s"]
    bandwidth = copy_bandwidth(8 if args.smoke else 256)
    cache_bytes_per_token = 2 * cfg.n_layer * cfg.n_kv_heads * (cfg.n_embd // cfg.n_head) * 4  # k and v, fp32
    mean_bytes = weight_bytes + cache_bytes_per_token * (prompt.size(1) + n / 2)  # the cache read, on average
    r["bandwidth_GB_per_s"] = bandwidth / 1e9
    r["bytes_per_token_MB"] = mean_bytes / 1e6
    r["bound_tokens_per_s"] = bandwidth / mean_bytes
    batch8 = torch.randint(0, cfg.vocab_size, (8, 8))
    r["batch8_tokens_per_s"] = tokens_per_s(lambda: generate(model, batch8, n, temperature=0, cache=True), n, batch=8)
    long_prompt = torch.randint(0, cfg.vocab_size, (1, min(512, cfg.block_size - 1)))
    r["ttft_512_s"] = _timed(lambda: generate(model, long_prompt, 1, temperature=0, cache=True))
    r["matmul_floor_ms"] = matmul_floor(model, 20 if args.smoke else 200) * 1e3
    r["eager_floor_ms"] = eager_floor(model, prompt, n) * 1e3
    r["cache_ms_per_token"] = 1e3 / r["cache_tokens_per_s"]
    r["transformers_ms_per_token"] = 1e3 / r["transformers_tokens_per_s"]
    r["cache_vs_no_cache"] = r["cache_tokens_per_s"] / r["no_cache_tokens_per_s"]
    r["ours_vs_transformers"] = r["cache_tokens_per_s"] / r["transformers_tokens_per_s"]
    r["fraction_of_bound"] = r["cache_tokens_per_s"] / r["bound_tokens_per_s"]
    print(f"{n} new tokens at batch 1: no cache {r['no_cache_tokens_per_s']:.0f} tokens/s | cache "
          f"{r['cache_tokens_per_s']:.0f} tokens/s | transformers: {r['transformers_tokens_per_s']:.0f} tokens/s")
    print(f"cache / no cache: {r['cache_vs_no_cache']:.1f}x (goal 10x) | ours / transformers: "
          f"{r['ours_vs_transformers']:.2f}x (goal 2x)")
    print(f"bandwidth bound: {r['bandwidth_GB_per_s']:.1f} GB/s / {r['bytes_per_token_MB']:.1f} MB per token = "
          f"{r['bound_tokens_per_s']:.0f} tokens/s; ours reaches {r['fraction_of_bound']:.0%} of it (goal 60%)")
    print(f"batch 8: {r['batch8_tokens_per_s']:.0f} tokens/s | time to first token, 512-token prompt: {r['ttft_512_s'] * 1e3:.0f} ms")
    print("weight-only int8: " + ", ".join(f"{name} {speed:.0f} tokens/s" for name, speed in
                                          r["int8_variants_tokens_per_s"].items()))
    print(f"  the best, {r['int8_kernel']}, is {r['int8_vs_fp32']:.2f}x float32 (goal 1.5x)")
    print(f"per token: ours {r['cache_ms_per_token']:.2f} ms, transformers {r['transformers_ms_per_token']:.2f} ms; "
          f"the weight matmuls alone {r['matmul_floor_ms']:.2f} ms ({weight_bytes / r['matmul_floor_ms'] / 1e6:.0f} GB/s). "
          f"2x transformers needs {r['transformers_ms_per_token'] / 2:.2f} ms, 60% of the bound "
          f"{1e3 / (0.6 * r['bound_tokens_per_s']):.2f} ms")
    print(f"the flat hand-fused step (eager floor): {r['eager_floor_ms']:.2f} ms per token, "
          f"{r['transformers_ms_per_token'] / r['eager_floor_ms']:.2f}x transformers, "
          f"{1e3 / r['eager_floor_ms'] / r['bound_tokens_per_s']:.0%} of the bound")
    if not args.smoke:
        RESULTS.write_text(json.dumps(r, indent=1) + "\n")
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
