"""Checks for chapter 06's exercises (the GPT in PyTorch), against ``qt.gpt``."""
import torch

from ..attention import Attention
from ..gpt import GPT, GPTConfig
from .core import CheckFailed, assert_close


def check_split_heads(fn) -> str:
    x = torch.arange(2 * 3 * 8, dtype=torch.float64).reshape(2, 3, 8)
    expected = x.view(2, 3, 4, 2).transpose(1, 2)
    return assert_close(fn(x.clone(), 4), expected.numpy(), "split_heads(x of shape (2, 3, 8), 4)")


def check_merge_heads(fn) -> str:
    y = torch.arange(2 * 4 * 3 * 2, dtype=torch.float64).reshape(2, 4, 3, 2)
    expected = y.transpose(1, 2).reshape(2, 3, 8)
    return assert_close(fn(y.clone()), expected.numpy(), "merge_heads(y of shape (2, 4, 3, 2))")


def check_causal_self_attention(fn) -> str:
    torch.manual_seed(0)
    cfg = GPTConfig.tiny(n_embd=12, n_head=3)
    attn = Attention(cfg).double().eval()
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    with torch.no_grad():
        expected = attn(x)
        got = fn(x.clone(), attn.qkv.weight.clone(), attn.qkv.bias.clone(), attn.proj.weight.clone(),
                 attn.proj.bias.clone(), 3)
    msg = assert_close(got, expected.numpy(), "attention output")
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
