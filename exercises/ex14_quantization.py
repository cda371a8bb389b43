"""Chapter 14 exercises: int8 with a zero point, int4 packing, and group-wise scales.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 14

Use torch. Rounding: torch.round is fine here (the grader compares values, not halves).
"""
import torch


def int8_zero_point(w: torch.Tensor) -> tuple:
    """Asymmetric int8 of a whole tensor: return (q int8, scale, zero) such that w ≈ (q - zero) * scale.

    Use lo = min(w.min(), 0) and hi = max(w.max(), 0) (so that 0 is representable), scale = (hi - lo) / 255,
    zero = -128 - round(lo / scale), q = round(w / scale) + zero, kept inside -128..127 before the cast to int8."""
    raise NotImplementedError


def pack_nibbles(values: torch.Tensor) -> torch.Tensor:
    """values: uint8 in 0..15, last axis of even length 2n. Return uint8 (..., n): byte i holds element 2i in its
    low 4 bits and element 2i + 1 in its high 4 bits."""
    raise NotImplementedError


def group_scales(w: torch.Tensor, group_size: int, bits: int = 4) -> torch.Tensor:
    """w (out, in): symmetric scales for groups of ``group_size`` consecutive inputs in each row, (out, in /
    group_size): the group's largest |w| divided by the largest positive level, 2^(bits - 1) - 1."""
    raise NotImplementedError
