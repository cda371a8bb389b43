"""Hugging Face Llama checkpoints <-> the course's GPT with Llama switches (chapter 09).

A Hugging Face checkpoint folder is ``config.json`` plus ``model.safetensors``; reading and writing
one needs only json and safetensors, so transformers stays a test dependency. Names map one to one
except attention: transformers keeps q_proj, k_proj and v_proj apart, the course stacks them in ``qkv``.
Both use rotate-half RoPE, so no permutation is needed (see ``llama.interleaved_to_half`` otherwise).
Chapter 18 adds the tokenizer: ``save_hf(model, folder, tokenizer)`` writes transformers' three tokenizer and
generation files (from ``qt.vocabulary``), so ``pipeline("text-generation", model=folder)`` runs the folder, and
``load_hf(folder, with_tokenizer=True)`` reads the tokenizer back.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..bpe import _atomic_write
from ..gpt import GPT, GPTConfig
from ..vocabulary import Vocabulary, tokenizer_from_hf

_LAYER = {  # ours -> theirs, for block {i}
    "blocks.{i}.ln1.weight": "model.layers.{i}.input_layernorm.weight",
    "blocks.{i}.attn.proj.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blocks.{i}.ln2.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blocks.{i}.mlp.gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blocks.{i}.mlp.up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blocks.{i}.mlp.proj.weight": "model.layers.{i}.mlp.down_proj.weight",
}
_QKV = ("model.layers.{i}.self_attn.q_proj.weight", "model.layers.{i}.self_attn.k_proj.weight",
        "model.layers.{i}.self_attn.v_proj.weight")


class CheckpointMismatch(ValueError):
    """Tensors missing, unexpected or mis-shaped; the message lists them by name."""


def config_from_hf(hf: dict) -> GPTConfig:
    """Our config from a transformers ``LlamaConfig`` dict (config.json)."""
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ValueError("Llama checkpoints with biases are not supported by the course model")
    head_dim = hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]
    if head_dim * hf["num_attention_heads"] != hf["hidden_size"]:
        raise ValueError(f"head_dim {head_dim} x {hf['num_attention_heads']} heads != hidden_size {hf['hidden_size']}")
    rope = hf.get("rope_parameters") or {}
    if rope.get("rope_type", "default") != "default" or hf.get("rope_scaling"):
        raise ValueError(f"only plain RoPE is supported, got {rope or hf.get('rope_scaling')}")
    return GPTConfig.llama(
        vocab_size=hf["vocab_size"], block_size=hf["max_position_embeddings"], n_layer=hf["num_hidden_layers"],
        n_head=hf["num_attention_heads"], n_embd=hf["hidden_size"], d_ff=hf["intermediate_size"],
        n_kv_heads=hf.get("num_key_value_heads") or hf["num_attention_heads"],
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        norm_eps=hf.get("rms_norm_eps", 1e-6), tie_weights=bool(hf.get("tie_word_embeddings", False)))


def config_to_hf(cfg: GPTConfig) -> dict:
    if (cfg.norm, cfg.mlp, cfg.position, cfg.bias) != ("rmsnorm", "swiglu", "rope", False):
        raise ValueError("only the Llama configuration (rmsnorm, swiglu, rope, no bias) maps to a Llama checkpoint; "
                         f"got norm={cfg.norm}, mlp={cfg.mlp}, position={cfg.position}, bias={cfg.bias}")
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.n_embd, "intermediate_size": cfg.d_ff, "num_hidden_layers": cfg.n_layer,
            "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_kv_heads,
            "head_dim": cfg.n_embd // cfg.n_head, "max_position_embeddings": cfg.block_size,
            "rms_norm_eps": cfg.norm_eps, "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "rope_theta": cfg.rope_theta, "hidden_act": "silu", "tie_word_embeddings": cfg.tie_weights,
            "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32"}


def state_from_hf(theirs: dict, cfg: GPTConfig) -> dict:
    """Our state dict from a transformers Llama state dict; wrong or missing names are listed."""
    needed = {"model.embed_tokens.weight", "model.norm.weight"}
    ours = {"wte.weight": theirs.get("model.embed_tokens.weight"), "ln_f.weight": theirs.get("model.norm.weight")}
    if not cfg.tie_weights:
        needed.add("lm_head.weight")
        ours["lm_head.weight"] = theirs.get("lm_head.weight")
    for i in range(cfg.n_layer):
        for mine, name in _LAYER.items():
            needed.add(name.format(i=i))
            ours[mine.format(i=i)] = theirs.get(name.format(i=i))
        names = [n.format(i=i) for n in _QKV]
        needed.update(names)
        parts = [theirs.get(n) for n in names]
        ours[f"blocks.{i}.attn.qkv.weight"] = torch.cat(parts) if all(p is not None for p in parts) else None
    missing = sorted(n for n in needed if n not in theirs)
    unexpected = sorted(n for n in theirs if n not in needed and not (cfg.tie_weights and n == "lm_head.weight"))
    if missing or unexpected:
        raise CheckpointMismatch(f"the checkpoint does not fit the config: missing {missing[:8]}"
                                 f"{' ...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}")
    return ours


def state_to_hf(model: GPT) -> dict:
    cfg, ours = model.cfg, model.state_dict()
    theirs = {"model.embed_tokens.weight": ours["wte.weight"], "model.norm.weight": ours["ln_f.weight"]}
    if not cfg.tie_weights:
        theirs["lm_head.weight"] = ours["lm_head.weight"]
    D = cfg.n_embd // cfg.n_head
    for i in range(cfg.n_layer):
        for mine, name in _LAYER.items():
            theirs[name.format(i=i)] = ours[mine.format(i=i)]
        q, k, v = ours[f"blocks.{i}.attn.qkv.weight"].split([cfg.n_head * D, cfg.n_kv_heads * D, cfg.n_kv_heads * D])
        for name, t in zip(_QKV, (q, k, v)):
            theirs[name.format(i=i)] = t
    return {k: v.contiguous() for k, v in theirs.items()}


def load_state_checked(model: GPT, state: dict) -> None:
    """load_state_dict that names every mis-shaped tensor before torch does."""
    expected = model.state_dict()
    wrong = [f"{k}: checkpoint {tuple(v.shape)}, model {tuple(expected[k].shape)}"
             for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if wrong:
        raise CheckpointMismatch("mis-shaped tensors: " + "; ".join(wrong[:8]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not (model.cfg.tie_weights and m == "lm_head.weight")]
    if missing or unexpected:
        raise CheckpointMismatch(f"missing {missing}, unexpected {unexpected}")


def load_hf(folder, with_tokenizer: bool = False):
    """Our model from a transformers Llama folder (config.json + model.safetensors).

    ``with_tokenizer=True`` returns ``(model, tokenizer)``, the tokenizer read from the folder's tokenizer.json."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in ("config.json", "model.safetensors") + (("tokenizer.json",) if with_tokenizer else ()):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}: a Hugging Face checkpoint folder needs config.json "
                                    f"and model.safetensors (sharded checkpoints are not supported), and "
                                    f"tokenizer.json for with_tokenizer=True (qt.save_hf(model, folder, tokenizer))")
    cfg = config_from_hf(json.loads((folder / "config.json").read_text()))
    model = GPT(cfg)
    load_state_checked(model, state_from_hf(load_file(str(folder / "model.safetensors")), cfg))
    if not with_tokenizer:
        return model.eval()
    tokenizer = tokenizer_from_hf(json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")))
    return model.eval(), tokenizer


def tokenizer_files(tokenizer, cfg: GPTConfig) -> dict:
    """{file name: JSON} of the tokenizer files a transformers folder holds for ``tokenizer``."""
    vocab = Vocabulary.of(tokenizer).check_fits(cfg.vocab_size)
    ids = {f"{role}_token_id": vocab.roles.get(role) for role in ("bos", "eos", "pad")}
    return {"tokenizer.json": vocab.hf_tokenizer_json(),
            "tokenizer_config.json": vocab.hf_tokenizer_config(cfg.block_size),
            # no max_length: the context is config.json's max_position_embeddings, and transformers warns whenever
            # a caller's max_new_tokens meets a max_length from this file
            "generation_config.json": ids}


def save_hf(model: GPT, folder, tokenizer=None) -> Path:
    """Write a folder that ``transformers.AutoModelForCausalLM.from_pretrained`` loads.

    With ``tokenizer`` (a ``CharTokenizer`` or chapter 04's BPE) the folder also holds tokenizer.json,
    tokenizer_config.json and generation_config.json, so ``AutoTokenizer.from_pretrained(folder)`` and
    ``transformers.pipeline("text-generation", model=folder)`` run it with no custom code."""
    from safetensors.torch import save_file

    folder = Path(folder)
    files = {"config.json": config_to_hf(model.cfg)}
    if tokenizer is not None:
        files.update(tokenizer_files(tokenizer, model.cfg))  # checked before anything is written
        files["config.json"].update({k: v for k, v in files["generation_config.json"].items() if k.endswith("_id")})
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        _atomic_write(folder / name, json.dumps(data, indent=1, ensure_ascii=False))
    save_file(state_to_hf(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
