"""Chapter 09 exercises: solutions."""
import torch


def split_qkv(w_qkv: torch.Tensor, n_head: int, n_kv_heads: int):
    """((H + 2 KV) * D, C) -> q (H*D, C), k (KV*D, C), v (KV*D, C)."""
    head_dim = w_qkv.shape[0] // (n_head + 2 * n_kv_heads)
    return tuple(w_qkv.split([n_head * head_dim, n_kv_heads * head_dim, n_kv_heads * head_dim], dim=0))


def hf_to_course(hf_state: dict, n_layer: int) -> dict:
    """transformers Llama names -> course GPT names; q, k, v stacked into qkv."""
    ours = {"wte.weight": hf_state["model.embed_tokens.weight"], "ln_f.weight": hf_state["model.norm.weight"]}
    if "lm_head.weight" in hf_state:
        ours["lm_head.weight"] = hf_state["lm_head.weight"]
    for i in range(n_layer):
        p = f"model.layers.{i}."
        ours[f"blocks.{i}.ln1.weight"] = hf_state[p + "input_layernorm.weight"]
        ours[f"blocks.{i}.attn.qkv.weight"] = torch.cat([hf_state[p + f"self_attn.{n}_proj.weight"] for n in "qkv"])
        ours[f"blocks.{i}.attn.proj.weight"] = hf_state[p + "self_attn.o_proj.weight"]
        ours[f"blocks.{i}.ln2.weight"] = hf_state[p + "post_attention_layernorm.weight"]
        for theirs, mine in (("gate", "gate"), ("up", "up"), ("down", "proj")):
            ours[f"blocks.{i}.mlp.{mine}.weight"] = hf_state[p + f"mlp.{theirs}_proj.weight"]
    return ours


def interleaved_to_rotate_half(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(H * D, C) -> (H * D, C): even rows of each head first, then odd rows."""
    out, dim = w.shape
    head_dim = out // n_heads
    heads = w.view(n_heads, head_dim // 2, 2, dim)  # (H, D/2, 2, C): row 2i + j is [h, i, j]
    return heads.transpose(1, 2).reshape(out, dim)  # (H, 2, D/2, C): evens, then odds
