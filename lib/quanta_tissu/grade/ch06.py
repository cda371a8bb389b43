"""Checks for chapter 06's exercises (the GPT in PyTorch), against ``qt.gpt``."""
import torch

from ..attention import Attention
from ..gpt import GPT, GPTConfig
from .core import CheckFailed, assert_close


def check_split_heads(fn) -> str:
    x = torch.arange(2 * 3 * 8, dtype=torch.float64).reshape(2, 3, 8)
    expected = x.view(2, 3, 4, 2).transpose(1, 2)
    return assert_close(fn(x.clone(), 4), expected.numpy(), "split_heads(x of shape (2, 3, 8), 4)", wrong=[
        (x.reshape(2, 4, 3, 2).numpy(), "you reshaped straight to (B, H, T, D), which mixes positions and channels: "
                                        "view as (B, T, H, D), then transpose(1, 2)"),
        (x.view(2, 3, 2, 4).permute(0, 3, 1, 2).numpy(),
         "head h got every H-th channel: it holds the D neighbours h*D .. (h+1)*D - 1; view as (B, T, H, D), then "
         "transpose(1, 2)"),
    ])


def check_merge_heads(fn) -> str:
    y = torch.arange(2 * 4 * 3 * 2, dtype=torch.float64).reshape(2, 4, 3, 2)
    expected = y.transpose(1, 2).reshape(2, 3, 8)
    return assert_close(fn(y.clone()), expected.numpy(), "merge_heads(y of shape (2, 4, 3, 2))", wrong=[
        (y.reshape(2, 3, 8).numpy(), "you reshaped without moving the head axis back: transpose(1, 2) to (B, T, H, D) "
                                     "first, then reshape to (B, T, C)")])


def _attention(x, w_qkv, b_qkv, w_proj, b_proj, n_head: int, scale: float, causal: bool = True, dim: int = -1):
    """The attention forward with a chosen score scale, mask and softmax dim: the right one and its mistakes."""
    B, T, C = x.shape
    q, k, v = ((x @ w_qkv.T + b_qkv).split(C, dim=-1))
    q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) * scale
    if causal:
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    y = torch.softmax(scores, dim=dim) @ v
    return (y.transpose(1, 2).reshape(B, T, C) @ w_proj.T + b_proj).numpy()


def check_causal_self_attention(fn) -> str:
    torch.manual_seed(0)
    cfg = GPTConfig.tiny(n_embd=12, n_head=3)
    attn = Attention(cfg).double().eval()
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    with torch.no_grad():
        expected = attn(x)
        got = fn(x.clone(), attn.qkv.weight.clone(), attn.qkv.bias.clone(), attn.proj.weight.clone(),
                 attn.proj.bias.clone(), 3)
        weights = (x, attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias, 3)
        C, D = 12, 4
        wrong = [
            (_attention(*weights, 1.0), f"the scores are not scaled: divide q kᵀ by √D = √{D}, the head size"),
            (_attention(*weights, C ** -0.5), f"the scores are scaled by √C = √{C}, the model width: scale by the "
                                              f"head size, √D = √{D}"),
            (_attention(*weights, 1 / D), f"the scores are divided by D = {D}; divide by √D = √{D}"),
            (_attention(*weights, D ** -0.5, dim=-2), "wrong axis: the softmax ran over the queries (dim -2); each "
                                                      "query's weights over the keys, the last dim, must sum to 1"),
            (_attention(*weights, D ** -0.5, causal=False),
             "no causal mask: position t must not see positions after t"),
        ]
    msg = assert_close(got, expected.numpy(), "attention output", wrong=wrong)
    with torch.no_grad():
        x2 = x.clone()
        x2[:, 4:] += 1.0
        got2 = fn(x2, attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias, 3)
    if not torch.allclose(torch.as_tensor(got2)[:, :4], torch.as_tensor(got)[:, :4]):
        raise CheckFailed("positions 0..3 changed when only positions 4.. did: the mask lets the future in")
    return msg


def check_gpt_num_parameters(fn) -> str:
    for kwargs in [dict(vocab_size=65, block_size=64, n_layer=4, n_embd=128, d_ff=512),
                   dict(vocab_size=11, block_size=5, n_layer=2, n_embd=6, d_ff=10)]:
        with torch.device("meta"):  # shapes only: no memory, no time
            expected = GPT(GPTConfig(n_head=2, **kwargs)).num_parameters()
        got = fn(**kwargs)
        if got != expected:
            raise CheckFailed(f"gpt_num_parameters({kwargs}): expected {expected:,}, got {got:,} "
                              f"(off by {got - expected:+,})")
    return "exact for two configurations"


CHECKS = {
    "split_heads": check_split_heads,
    "merge_heads": check_merge_heads,
    "causal_self_attention": check_causal_self_attention,
    "gpt_num_parameters": check_gpt_num_parameters,
}
