"""Checks for chapter 12's exercises (mixed precision and MFU), against ``qt.precision`` and ``qt.profiling``."""
import torch

from .core import CheckFailed, assert_close


def check_to_bf16(fn) -> str:
    torch.manual_seed(0)
    x = torch.cat([torch.randn(2000) * 10.0 ** torch.randint(-20, 20, (2000,)),
                   torch.tensor([1.0, -2.5, 1 + 2**-8, 1 + 3 * 2**-8, 3.0e38, 1e-40])])  # ties, near max, subnormal
    expected = x.to(torch.bfloat16).float()
    got = fn(x.clone())
    if got is None:
        raise CheckFailed("to_bf16 returned None")
    got = torch.as_tensor(got).float()
    if got.shape != x.shape:
        raise CheckFailed(f"to_bf16: expected shape {tuple(x.shape)}, got {tuple(got.shape)}")
    truncated = (x.view(torch.int32) & ~0xFFFF).view(torch.float32)
    if torch.equal(got, truncated) and not torch.equal(got, expected):
        raise CheckFailed("you cut off the low 16 bits: that truncates toward zero; round to nearest instead "
                          "(add 0x7FFF plus the last kept bit before masking)")
    ties = torch.tensor([1 + 2**-8, 1 + 3 * 2**-8])
    if not torch.equal(torch.as_tensor(fn(ties.clone())).float(), ties.to(torch.bfloat16).float()):
        raise CheckFailed("halfway cases round to even: 1 + 2^-8 rounds down to 1, 1 + 3 * 2^-8 up to 1 + 2^-6")
    wrong = (got != expected).sum().item()
    if wrong:
        raise CheckFailed(f"{wrong} of {len(x)} values differ from torch's bfloat16 rounding")
    return f"{len(x)} values, ties and extremes included, equal to torch's bf16 rounding"


def check_underflow_fraction(fn) -> str:
    torch.manual_seed(1)
    grads = torch.randn(10000) * 10.0 ** torch.randint(-12, 0, (10000,)).float()
    grads[:1000] = 0.0  # zeros were zero before fp16: they do not count
    nonzero = grads != 0
    for scale in (1.0, 2.0**16):
        expected = float((((grads * scale).half() == 0) & nonzero).sum() / nonzero.sum())
        got = fn(grads.clone(), scale)
        if got is None:
            raise CheckFailed("underflow_fraction returned None")
        got = float(got)
        if scale > 1 and abs(got - float(((grads.half() == 0) & nonzero).sum() / nonzero.sum())) < 1e-9 \
                and abs(got - expected) > 1e-9:
            raise CheckFailed("with scale 2^16 you got the unscaled fraction: multiply by the scale before the "
                              "cast to float16")
        if abs(got - float((grads * scale).half().eq(0).float().mean())) < 1e-9 and abs(got - expected) > 1e-9:
            raise CheckFailed("you counted the entries that were already zero: divide by the nonzero ones only")
        assert_close(got, expected, f"underflow_fraction(grads, scale={scale:g})")
    return "unscaled and scaled by 2^16"


def check_scaler_update(fn) -> str:
    if fn(1024.0, 5, True) == (512.0, 5):
        raise CheckFailed("after an overflow the count of clean steps starts again at 0")
    cases = [((1024.0, 5, True), (512.0, 0)), ((1024.0, 5, False), (1024.0, 6)),
             ((1024.0, 1999, False), (2048.0, 0)), ((8.0, 2, False, 2.0, 0.5, 3), (16.0, 0))]
    for args, expected in cases:
        got = fn(*args)
        if got is None:
            raise CheckFailed("scaler_update returned None: return (scale, clean_steps)")
        got = (float(got[0]), int(got[1]))
        if args[:3] == (1024.0, 1999, False) and got == (1024.0, 2000):
            raise CheckFailed("the 2000th clean step in a row doubles the scale (and resets the count); you waited "
                              "for one more")
        if got != expected:
            raise CheckFailed(f"scaler_update{args}: expected {expected}, got {got}")
    return f"{len(cases)} updates: back-off, count, growth at the interval"


def check_flops_per_token(fn) -> str:
    args = (1_000_000, 4, 256, 128)
    expected = 6 * 1_000_000 + 12 * 4 * 256 * 128
    got = fn(*args)
    if got is None:
        raise CheckFailed("flops_per_token returned None")
    if got == 2 * 1_000_000 + 4 * 4 * 256 * 128 or got == 2 * 1_000_000:
        raise CheckFailed("that counts the forward pass only: the backward does two more matmuls per weight (the "
                          "gradients of the input and of the weight), 6 FLOPs per weight in all")
    if got == 6 * 1_000_000:
        raise CheckFailed("the attention scores and the weighted sum are matmuls without weights: add "
                          "12 * n_layer * context * n_embd")
    return assert_close(got, expected, "flops_per_token(1e6 weights, 4 layers, context 256, width 128)")


CHECKS = {
    "to_bf16": check_to_bf16,
    "underflow_fraction": check_underflow_fraction,
    "scaler_update": check_scaler_update,
    "flops_per_token": check_flops_per_token,
}
