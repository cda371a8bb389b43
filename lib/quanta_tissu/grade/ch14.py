"""Checks for chapter 14's exercises (quantization), against ``qt.quantize``'s conventions."""
import torch

from .core import CheckFailed, assert_close


def check_int8_zero_point(fn) -> str:
    torch.manual_seed(0)
    w = torch.randn(64, 32) * 0.5 + 1.0  # mostly positive: a zero point earns its keep
    got = fn(w.clone())
    if not isinstance(got, tuple) or len(got) != 3:
        raise CheckFailed("return (q, scale, zero)")
    q, scale, zero = got
    q = torch.as_tensor(q)
    if q.dtype != torch.int8:
        raise CheckFailed(f"q should be int8, got {q.dtype}")
    restored = (q.float() - torch.as_tensor(zero).float()) * torch.as_tensor(scale).float()
    step = (w.max() - min(w.min(), torch.tensor(0.0))) / 255
    err = (restored - w).abs().max().item()
    if err > 0.6 * step:
        if (restored - w).abs().max() > 1.0:
            raise CheckFailed(f"values come back off by up to {err:.2f}: check the zero point is added to q (and "
                              "clamp to -128..127 before the cast: a value past 127 cast to int8 wraps around to -128)")
        raise CheckFailed(f"round trip error {err:.4f} is more than half a step ({step.item() / 2:.4f})")
    if float(torch.as_tensor(zero)) == 0:
        raise CheckFailed("zero is 0: that is symmetric int8, wasting half the levels on a range that is mostly "
                          "positive; zero = -128 - round(lo / scale)")
    return assert_close(restored, w.numpy(), "the dequantized tensor", rtol=0, atol=0.51 * step.item()) + \
        f"; zero point {float(torch.as_tensor(zero)):.0f}"


def check_pack_nibbles(fn) -> str:
    values = torch.randint(0, 16, (3, 10), dtype=torch.uint8)
    got = fn(values.clone())
    expected = values[..., 0::2] | (values[..., 1::2] << 4)
    if got is None:
        raise CheckFailed("pack_nibbles returned None")
    got = torch.as_tensor(got)
    if got.shape == expected.shape and torch.equal(got.to(torch.uint8), values[..., 1::2] | (values[..., 0::2] << 4)):
        raise CheckFailed("the nibble order is reversed: element 2i goes in the LOW 4 bits, element 2i + 1 in the high")
    if got.dtype != torch.uint8:
        raise CheckFailed(f"expected uint8 bytes, got {got.dtype}")
    if got.shape != expected.shape:
        raise CheckFailed(f"expected shape {tuple(expected.shape)} (half the last axis), got {tuple(got.shape)}")
    if not torch.equal(got, expected):
        raise CheckFailed("some bytes differ from (element 2i) | (element 2i + 1) << 4")
    return "3 x 10 values -> 3 x 5 bytes, low nibble first"


def check_group_scales(fn) -> str:
    torch.manual_seed(1)
    w = torch.randn(6, 64) * torch.linspace(0.1, 2, 64)  # inputs of different sizes: groups differ
    expected = w.reshape(6, 2, 32).abs().amax(-1) / 7
    got = fn(w.clone(), 32)
    if got is None:
        raise CheckFailed("group_scales returned None")
    got = torch.as_tensor(got)
    if got.shape == expected.shape and torch.allclose(got, expected * 7 / 8):
        raise CheckFailed("you divided by 8: the largest positive level of 4 bits is 7 (levels -8..7)")
    if got.shape != expected.shape:
        raise CheckFailed(f"expected one scale per row and group, shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    strided = w.reshape(6, 32, 2).abs().amax(1) / 7  # groups of every other input: reshape (out, group, n)
    if torch.allclose(got, strided):
        raise CheckFailed("your groups are strided (inputs j, j + 2, j + 4...): reshape to (out, in / group_size, "
                          "group_size) so that a group is group_size consecutive inputs of one row")
    assert_close(fn(w.clone(), 16, 3), (w.reshape(6, 4, 16).abs().amax(-1) / 3).numpy(), "group_scales(w, 16, bits=3)")
    return assert_close(got, expected.numpy(), "group_scales(w (6, 64), 32)")


CHECKS = {
    "int8_zero_point": check_int8_zero_point,
    "pack_nibbles": check_pack_nibbles,
    "group_scales": check_group_scales,
}
