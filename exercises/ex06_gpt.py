"""Chapter 06 exercises: the GPT in PyTorch.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 06

Shapes: B batch, T positions, C channels, H heads, D = C / H. Use torch.
"""
import torch


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, H, T, D): head h holds channels h*D .. (h+1)*D - 1."""
    raise NotImplementedError


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    """(B, H, T, D) -> (B, T, C), the inverse of split_heads."""
    raise NotImplementedError


def causal_self_attention(x: torch.Tensor, w_qkv: torch.Tensor, b_qkv: torch.Tensor,
                          w_proj: torch.Tensor, b_proj: torch.Tensor, n_head: int) -> torch.Tensor:
    """x: (B, T, C); w_qkv: (3C, C) and b_qkv: (3C,) as nn.Linear stores them (q|k|v stacked);
    w_proj: (C, C), b_proj: (C,). Return the attention output (B, T, C), causal, no dropout."""
    raise NotImplementedError


def gpt_num_parameters(vocab_size: int, block_size: int, n_layer: int, n_embd: int, d_ff: int) -> int:
    """Parameters of the course GPT with biases and a tied head (wte shared with lm_head):
    embeddings, n_layer blocks (2 LayerNorms, attention qkv + proj, MLP fc + proj), final LayerNorm."""
    raise NotImplementedError
