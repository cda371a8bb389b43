"""Chapter 06 solutions (one way among many)."""
import math

import torch


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).permute(0, 2, 1, 3)


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    B, H, T, D = y.shape
    return y.permute(0, 2, 1, 3).reshape(B, T, H * D)


def causal_self_attention(x, w_qkv, b_qkv, w_proj, b_proj, n_head):
    C = x.shape[-1]
    q, k, v = (x @ w_qkv.T + b_qkv).chunk(3, dim=-1)
    q, k, v = (split_heads(t, n_head) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(C // n_head)
    T = x.shape[1]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return merge_heads(weights @ v) @ w_proj.T + b_proj


def gpt_num_parameters(vocab_size, block_size, n_layer, n_embd, d_ff):
    layer_norm = 2 * n_embd
    attention = (n_embd * 3 * n_embd + 3 * n_embd) + (n_embd * n_embd + n_embd)
    mlp = (n_embd * d_ff + d_ff) + (d_ff * n_embd + n_embd)
    block = 2 * layer_norm + attention + mlp
    return vocab_size * n_embd + block_size * n_embd + n_layer * block + layer_norm
