"""Hugging Face ``GPT2LMHeadModel`` <-> the course's ``GPT`` (chapter 06).

GPT-2 in transformers uses ``Conv1D`` layers whose weights are stored (in, out) (y = x @ W + b),
the transpose of ``nn.Linear``; its attention projection ``c_attn`` is q|k|v concatenated like ours.
"""
from __future__ import annotations

import torch

from ..gpt import GPT, GPTConfig

# ours -> (theirs, transpose?) for block i; {i} is filled in.
_BLOCK = {
    "blocks.{i}.ln1.weight": ("transformer.h.{i}.ln_1.weight", False),
    "blocks.{i}.ln1.bias": ("transformer.h.{i}.ln_1.bias", False),
    "blocks.{i}.attn.qkv.weight": ("transformer.h.{i}.attn.c_attn.weight", True),
    "blocks.{i}.attn.qkv.bias": ("transformer.h.{i}.attn.c_attn.bias", False),
    "blocks.{i}.attn.proj.weight": ("transformer.h.{i}.attn.c_proj.weight", True),
    "blocks.{i}.attn.proj.bias": ("transformer.h.{i}.attn.c_proj.bias", False),
    "blocks.{i}.ln2.weight": ("transformer.h.{i}.ln_2.weight", False),
    "blocks.{i}.ln2.bias": ("transformer.h.{i}.ln_2.bias", False),
    "blocks.{i}.mlp.fc.weight": ("transformer.h.{i}.mlp.c_fc.weight", True),
    "blocks.{i}.mlp.fc.bias": ("transformer.h.{i}.mlp.c_fc.bias", False),
    "blocks.{i}.mlp.proj.weight": ("transformer.h.{i}.mlp.c_proj.weight", True),
    "blocks.{i}.mlp.proj.bias": ("transformer.h.{i}.mlp.c_proj.bias", False),
}
_TOP = {
    "wte.weight": ("transformer.wte.weight", False),
    "wpe.weight": ("transformer.wpe.weight", False),
    "ln_f.weight": ("transformer.ln_f.weight", False),
    "ln_f.bias": ("transformer.ln_f.bias", False),
}


def name_map(n_layer: int) -> dict:
    """Our parameter name -> (transformers' name, transpose?)."""
    names = dict(_TOP)
    for i in range(n_layer):
        names.update({ours.format(i=i): (theirs.format(i=i), t) for ours, (theirs, t) in _BLOCK.items()})
    return names


def config_from_hf(hf_config) -> GPTConfig:
    """Our config for a ``transformers.GPT2Config``; refuses what our GPT does not implement."""
    if hf_config.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(f"unsupported activation {hf_config.activation_function!r}: the course GPT uses tanh GELU")
    return GPTConfig(vocab_size=hf_config.vocab_size, block_size=hf_config.n_positions, n_layer=hf_config.n_layer,
                     n_head=hf_config.n_head, n_embd=hf_config.n_embd, d_ff=hf_config.n_inner or 4 * hf_config.n_embd,
                     dropout=0.0, bias=True, tie_weights=True)


def gpt_from_hf(hf_model) -> GPT:
    """Our GPT with the weights of a ``GPT2LMHeadModel``; missing or mis-shaped tensors are named."""
    cfg = config_from_hf(hf_model.config)
    model = GPT(cfg)
    theirs = hf_model.state_dict()
    state = {}
    for ours, (name, transpose) in name_map(cfg.n_layer).items():
        if name not in theirs:
            raise KeyError(f"the transformers model has no tensor {name!r} (needed for {ours!r})")
        state[ours] = theirs[name].t() if transpose else theirs[name]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) <= {"lm_head.weight"} and not unexpected, (missing, unexpected)  # lm_head is tied to wte
    return model


def hf_from_gpt(model: GPT):
    """A ``GPT2LMHeadModel`` with our GPT's weights (the other direction)."""
    from transformers import GPT2Config, GPT2LMHeadModel  # optional: only interop needs it

    cfg = model.cfg
    if not cfg.tie_weights or not cfg.bias:
        raise ValueError("GPT-2 in transformers has biases and a tied head; this config has "
                         f"bias={cfg.bias}, tie_weights={cfg.tie_weights}")
    hf_cfg = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                        n_head=cfg.n_head, n_inner=cfg.d_ff, activation_function="gelu_new", resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5, bos_token_id=None, eos_token_id=None)
    hf = GPT2LMHeadModel(hf_cfg)
    ours = model.state_dict()
    with torch.no_grad():
        theirs = hf.state_dict()
        for name, (their_name, transpose) in name_map(cfg.n_layer).items():
            theirs[their_name].copy_(ours[name].t() if transpose else ours[name])
    return hf.eval()
