"""The Llama-fication ablation study (chapter 08): several configurations, one training budget.

Does: name the study's seven configurations as overrides of one base ``GPTConfig`` (GPT-2's
baseline; RMSNorm, SwiGLU or RoPE alone; RMSNorm + SwiGLU; all three without biases, as Llama;
all three with grouped-query attention), train each with the same ``TrainConfig``, data and seed,
and record parameters, training tokens per second, the validation curve and the final validation
loss; write and read the results as JSON.
Does not: tune hyperparameters per configuration (every one gets the same recipe, which is the
point of an ablation), or plot (``qt.plotting.plot_ablation`` does).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..gpt import LLAMA_SWITCHES, GPTConfig
from .trainer import Trainer, TrainConfig

ABLATIONS = {  # name -> overrides of the base config; the order of the original modernization plan
    "baseline (GPT-2)": {},
    "RMSNorm": dict(norm="rmsnorm"),
    "SwiGLU": dict(mlp="swiglu"),
    "RoPE": dict(position="rope"),
    "RMSNorm + SwiGLU": dict(norm="rmsnorm", mlp="swiglu"),
    "all three, no bias (Llama)": LLAMA_SWITCHES,
    "Llama + GQA (kv heads = heads / 2)": {**LLAMA_SWITCHES, "n_kv_heads": "half"},
}


def ablation_config(base: GPTConfig, name: str) -> GPTConfig:
    """The base config with one study row's switches applied (d_ff recomputed for SwiGLU)."""
    if name not in ABLATIONS:
        raise KeyError(f"unknown ablation {name!r}; choose from {list(ABLATIONS)}")
    overrides = dict(ABLATIONS[name])
    if overrides.get("n_kv_heads") == "half":
        overrides["n_kv_heads"] = max(1, base.n_head // 2)
    fields = {**base.to_dict(), "d_ff": None, "n_kv_heads": None, **overrides}  # None: derived again
    return GPTConfig(**fields)


def train_one(model_cfg: GPTConfig, train_cfg: TrainConfig, data, progress: bool = True) -> dict:
    """Train one configuration from the seed; return its row of the results table."""
    trainer = Trainer.build(model_cfg, data, train_cfg)  # the same seed, so the same randomness, for every row
    model = trainer.model
    start = time.perf_counter()
    history = trainer.fit(progress=progress)
    seconds = time.perf_counter() - start
    tokens = train_cfg.max_steps * train_cfg.batch_size * train_cfg.grad_accum * model_cfg.block_size
    return {"params": model.num_parameters(), "seconds": seconds, "tokens_per_s": tokens / seconds,
            "final_val": history.val_eval[-1], "eval_steps": history.eval_steps, "val_curve": history.val_eval,
            "config": model_cfg.to_dict()}


def run_ablation(base: GPTConfig, train_cfg: TrainConfig, data, names=None, progress: bool = True) -> dict:
    """Train every named configuration (default: all seven) under ``train_cfg``: {name: row}."""
    results = {}
    for name in names or ABLATIONS:
        if progress:
            print(f"-- {name}")
        results[name] = train_one(ablation_config(base, name), train_cfg, data, progress)
    return results


def save_results(path, results: dict, **meta) -> Path:
    """Write the study as JSON, with what produced it (``meta``: recipe, machine, date...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return path


def load_results(path) -> tuple[dict, dict]:
    """(meta, results) from ``save_results``'s file."""
    payload = json.loads(Path(path).read_text())
    return payload["meta"], payload["results"]
