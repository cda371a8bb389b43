"""Copy chapter 05's NumPy transformer block into chapter 06's PyTorch ``Block`` (chapter 05).

NumPy layers store W as (in, out) (y = x @ W); ``nn.Linear`` stores (out, in): copies transpose.
"""
from __future__ import annotations

import numpy as np
import torch

from ..gpt import Block, GPTConfig
from ..numpy_nn import transformer as np_tr

# torch parameter name -> (NumPy parameter name, transpose?)
BLOCK_MAP = {
    "ln1.weight": ("ln1.w", False), "ln1.bias": ("ln1.b", False),
    "attn.qkv.weight": ("attn.qkv.W", True), "attn.qkv.bias": ("attn.qkv.b", False),
    "attn.proj.weight": ("attn.proj.W", True), "attn.proj.bias": ("attn.proj.b", False),
    "ln2.weight": ("ln2.w", False), "ln2.bias": ("ln2.b", False),
    "mlp.fc.weight": ("mlp.fc.W", True), "mlp.fc.bias": ("mlp.fc.b", False),
    "mlp.proj.weight": ("mlp.proj.W", True), "mlp.proj.bias": ("mlp.proj.b", False),
}


def torch_block_from_numpy(block: np_tr.Block, block_size: int) -> Block:
    """A float64 PyTorch ``Block`` holding exactly the NumPy block's weights."""
    dim = block.sublayers["ln1"].params["w"].shape[0]
    cfg = GPTConfig(vocab_size=1, block_size=block_size, n_layer=1, n_head=block.sublayers["attn"].n_head,
                    n_embd=dim, d_ff=block.sublayers["mlp"].sublayers["fc"].params["W"].shape[1])
    out = Block(cfg).double()
    params = block.params
    with torch.no_grad():
        for name, p in out.named_parameters():
            src, transpose = BLOCK_MAP[name]
            value = params[src].T if transpose else params[src]
            p.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return out


def numpy_grads_as_torch_names(block: np_tr.Block) -> dict:
    """The NumPy block's gradients, renamed and transposed like the torch parameters."""
    grads = block.grads
    return {name: (grads[src].T if t else grads[src]) for name, (src, t) in BLOCK_MAP.items()}


def numpy_block_from_torch(block: Block, n_head: int) -> np_tr.Block:
    """The inverse copy: a NumPy block (float64) with a PyTorch block's weights."""
    dim = block.ln1.weight.shape[0]
    out = np_tr.Block(dim, n_head, np.random.default_rng(0))
    out.sublayers["mlp"] = np_tr.MLP(dim, np.random.default_rng(0), hidden=block.mlp.fc.weight.shape[0])
    params = out.params
    for name, p in block.named_parameters():
        src, transpose = BLOCK_MAP[name]
        value = p.detach().double().numpy()
        params[src][...] = value.T if transpose else value
    return out


def numpy_forward(model, idx: np.ndarray) -> np.ndarray:
    """Chapter 06's GPT evaluated with chapter 05's NumPy pieces: ids (B, T) -> logits (B, T, V)."""
    cfg = model.cfg
    if (cfg.bias, cfg.norm, cfg.mlp, cfg.position, cfg.n_kv_heads) != (True, "layernorm", "gelu", "learned", cfg.n_head):
        raise ValueError("numpy_forward covers chapter 06's GPT (biases, LayerNorm, GELU, learned positions, "
                         "multi-head attention); this config switches on chapter 08's pieces")
    weights = lambda t: t.detach().double().numpy()  # noqa: E731
    x = weights(model.wte.weight)[idx] + weights(model.wpe.weight)[: idx.shape[1]]  # (B, T, C) + (T, C)
    for block in model.blocks:
        x = numpy_block_from_torch(block, model.cfg.n_head).forward(x)
    ln_f = np_tr.LayerNorm(model.cfg.n_embd)
    ln_f.params["w"][...], ln_f.params["b"][...] = weights(model.ln_f.weight), weights(model.ln_f.bias)
    return ln_f.forward(x) @ weights(model.lm_head.weight).T  # (B, T, C) @ (C, V)
