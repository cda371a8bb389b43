"""Checks for chapter 09's exercises (parity with transformers), against ``qt.interop.hf_llama``."""
import torch

from ..gpt import GPT, GPTConfig
from ..interop.hf_llama import state_to_hf
from ..llama import interleaved_to_half
from .core import CheckFailed, assert_close, expect_tuple


def check_split_qkv(fn) -> str:
    w = torch.arange(12 * 3, dtype=torch.float64).reshape(12, 3)  # H=4, KV=1, D=2: 8 + 2 + 2 rows
    got = expect_tuple(fn(w.clone(), 4, 1), "q, k, v")
    if len({tuple(torch.as_tensor(t).shape) for t in got}) == 1:
        raise CheckFailed(f"q, k and v came out the same shape {tuple(got[0].shape)}: with grouped-query "
                          "attention k and v have KV heads, q has H heads; the head size is rows / (H + 2 KV)")
    for name, g, e in zip("qkv", got, w.split([8, 2, 2])):
        assert_close(g, e.numpy(), f"{name} of split_qkv(w of shape (12, 3), n_head=4, n_kv_heads=1)")
    return "q, k and v exact, with H=4, KV=1"


def _tiny(tie: bool) -> GPT:
    torch.manual_seed(3)
    return GPT(GPTConfig.tiny(norm="rmsnorm", mlp="swiglu", position="rope", bias=False, n_head=4, n_kv_heads=2,
                              tie_weights=tie))


def check_hf_to_course(fn) -> str:
    for tie in (False, True):
        model = _tiny(tie)
        theirs = {k: v.clone() for k, v in state_to_hf(model).items()}
        got = fn(theirs, model.cfg.n_layer)
        if not isinstance(got, dict):
            raise CheckFailed(f"expected a dict of tensors, got {type(got).__name__}")
        expected = {k: v for k, v in model.state_dict().items() if not (tie and k == "lm_head.weight")}
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        if missing or extra:
            raise CheckFailed(f"{'tied' if tie else 'untied'} head: missing {missing[:4]}, unexpected {extra[:4]}")
        for name, value in expected.items():
            if tuple(got[name].shape) != tuple(value.shape):
                raise CheckFailed(f"{name}: shape {tuple(got[name].shape)}, expected {tuple(value.shape)}")
            if not torch.equal(got[name], value):
                hint = " (stack q, k, v in that order on dim 0)" if "qkv" in name else ""
                raise CheckFailed(f"{name}: right shape, wrong values{hint}")
    return f"all {len(expected)} tensors, tied and untied heads"


def check_interleaved_to_rotate_half(fn) -> str:
    w = torch.arange(12 * 2, dtype=torch.float64).reshape(12, 2)  # 2 heads of size 6
    expected = interleaved_to_half(w, 2)
    got = fn(w.clone(), 2)
    if torch.as_tensor(got).shape == w.shape and torch.equal(torch.as_tensor(got), interleaved_to_half(w, 1)):
        raise CheckFailed("you permuted all rows as one head: the permutation works within each head "
                          "(rows 0..5 of head 0, then rows 6..11 of head 1)")
    return assert_close(got, expected.numpy(), "interleaved_to_rotate_half(w of shape (12, 2), n_heads=2)")


CHECKS = {
    "split_qkv": check_split_qkv,
    "hf_to_course": check_hf_to_course,
    "interleaved_to_rotate_half": check_interleaved_to_rotate_half,
}
