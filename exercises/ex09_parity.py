"""Chapter 09 exercises: exchanging weights with Hugging Face transformers.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 09

Shapes: C channels, H query heads, KV key/value heads, D = C / H the head size.
Weights are as nn.Linear stores them: (out, in). Use torch; transformers is not needed.
"""
import torch


def split_qkv(w_qkv: torch.Tensor, n_head: int, n_kv_heads: int):
    """w_qkv: ((H + 2 KV) * D, C), the course's stacked q | k | v projection ->
    (q (H*D, C), k (KV*D, C), v (KV*D, C)), the three matrices transformers keeps apart."""
    raise NotImplementedError


def hf_to_course(hf_state: dict, n_layer: int) -> dict:
    """Map a transformers LlamaForCausalLM state dict (tensors by name) to the course GPT's names.

    Theirs -> ours, for every layer i:
      model.embed_tokens.weight -> wte.weight            model.norm.weight -> ln_f.weight
      lm_head.weight -> lm_head.weight (when present: untied head)
      model.layers.{i}.input_layernorm.weight          -> blocks.{i}.ln1.weight
      model.layers.{i}.self_attn.{q,k,v}_proj.weight   -> blocks.{i}.attn.qkv.weight (q, k, v stacked on dim 0)
      model.layers.{i}.self_attn.o_proj.weight         -> blocks.{i}.attn.proj.weight
      model.layers.{i}.post_attention_layernorm.weight -> blocks.{i}.ln2.weight
      model.layers.{i}.mlp.{gate,up,down}_proj.weight  -> blocks.{i}.mlp.{gate,up,proj}.weight
    Return a new dict; leave the tensors' values unchanged."""
    raise NotImplementedError


def interleaved_to_rotate_half(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """w: (n_heads * D, C), a q or k projection written for interleaved RoPE (pairs 2i, 2i+1) ->
    the same shape with rows permuted within each head (rows 0, 2, 4, ..., then 1, 3, 5, ...),
    so that rotate-half RoPE (pairs i, i + D/2) computes the same attention scores."""
    raise NotImplementedError
