"""Quantization (chapter 14): store weights in fewer bits, and compute with them.

Does:
- int8, per tensor or per channel (one scale per output row): ``quantize_int8`` symmetric (absmax: q = round(w / s),
  s = max|w| / 127, zero at 0) or asymmetric (min-max: q = round(w / s) + z in -128..127, so that w_min and w_max
  are both representable); ``dequantize_int8``;
- group-wise int4 (``quantize_int4``): symmetric absmax scales per group of ``group_size`` inputs, values -8..7
  stored as 0..15, two per byte (``pack_int4``: element 2i in the low nibble, 2i + 1 in the high one);
- NF4 (``nf4_table``, ``quantize_nf4``): QLoRA's 16 levels, normal quantiles built from their definition;
- llama.cpp's blocks ``q8_0`` and ``q4_0`` (32 numbers per block, an fp16 scale each), byte for byte what the
  ``gguf`` package's reference quantizers write, and their dequantizers; like ``gguf.quants`` they take a NumPy
  array too and then return one (uint8 blocks, float32 numbers), else torch tensors;
- ``QuantizedLinear`` (weight-only: the weight is stored quantized; int8 runs torch's int8 weight-only kernel,
  ``torch._weight_int8pack_mm``, int4 and NF4 are dequantized for each matmul) and
  ``quantize_model(model, scheme, group_size)``, which swaps every ``nn.Linear`` of the blocks for one.
Conventions (tested): rounding is to nearest, halves away from zero (llama.cpp's ``roundf``); the int4 and NF4 group
scale is the group's absmax divided by the largest level.
Does not: quantize activations, or the embedding and output head (they stay float32: the head is tied to the
embedding in the course model); GPTQ is a separate step.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn as nn

from .checks import kind, numpy_hint

SCHEMES = ("int8", "int4", "nf4")


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round to nearest, halves away from zero (C's roundf; torch.round sends halves to even)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def _check_float(w: torch.Tensor, what: str = "weights") -> None:
    """A floating-point torch tensor, or a TypeError that says what was given (an array is not a tensor)."""
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise TypeError(f"{what} must be a floating-point torch.Tensor, got {kind(w)}{numpy_hint(w)}")


def _numpy_in_numpy_out(accepts: str):
    """Let a function of llama.cpp's blocks take a NumPy array as ``gguf.quants`` does, and return an array then.
    ``accepts``: "floats" (a quantizer) or "bytes" (a dequantizer); an array of another dtype is named as an array."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(x):
            if not isinstance(x, np.ndarray):
                return fn(x)
            ok = x.dtype.kind == "f" if accepts == "floats" else x.dtype == np.uint8
            if not ok:
                raise TypeError(f"{fn.__name__} takes {'floating-point numbers' if accepts == 'floats' else 'uint8 bytes'}"
                                f" (a torch.Tensor or numpy.ndarray), got {kind(x)}")
            return fn(torch.from_numpy(np.ascontiguousarray(x))).numpy()
        return wrapper
    return decorate


def _check_blocks(data, block_bytes: int, name: str) -> torch.Tensor:
    """Bytes of whole blocks: a uint8 tensor whose last axis is a multiple of ``block_bytes``, as (n_blocks, bytes)."""
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8:
        raise TypeError(f"{name} blocks must be uint8 bytes (a torch.Tensor or numpy.ndarray), got {kind(data)}")
    if data.dim() == 0 or data.shape[-1] % block_bytes:
        raise ValueError(f"{name} blocks are {block_bytes} bytes each: the last axis must be a multiple of "
                         f"{block_bytes}, got shape {tuple(data.shape)}")
    return data.reshape(-1, block_bytes)


def quantize_int8(w: torch.Tensor, axis: int | None = None, symmetric: bool = True):
    """w -> (q int8, scale, zero point); per tensor (axis None) or one scale per slice along ``axis``."""
    _check_float(w)
    dims = tuple(d for d in range(w.dim()) if d != axis) if axis is not None else tuple(range(w.dim()))
    w32 = w.float()
    if symmetric:
        scale = (w32.abs().amax(dim=dims, keepdim=True) / 127).clamp(min=1e-12)
        return round_half_away(w32 / scale).clamp(-127, 127).to(torch.int8), scale, torch.zeros_like(scale)
    lo = w32.amin(dim=dims, keepdim=True).clamp(max=0)  # 0 must be representable exactly (padding, ReLU zeros)
    hi = w32.amax(dim=dims, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / 255).clamp(min=1e-12)
    zero = (-128 - round_half_away(lo / scale)).clamp(-128, 127)
    return (round_half_away(w32 / scale) + zero).clamp(-128, 127).to(torch.int8), scale, zero


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    return (q.float() - zero) * scale


def group_width(width: int, group_size: int | None) -> int:
    """The inputs per scale: ``group_size``, or the whole row for None; it must divide the row's width."""
    if group_size is None:
        return width
    if group_size < 1 or width % group_size:
        raise ValueError(f"group_size ({group_size}) must divide the input width ({width}); "
                         f"divisors include {[g for g in (32, 64, 128, 256) if width % g == 0] or [width]}")
    return group_size


def _groups(w: torch.Tensor, group_size: int | None) -> torch.Tensor:
    """(out, in) -> (out, in / group_size, group_size); None: one group per row."""
    _check_float(w)
    if w.dim() != 2:
        raise ValueError(f"group-wise quantization takes a matrix (out, in), got shape {tuple(w.shape)}")
    group = group_width(w.size(1), group_size)
    return w.float().reshape(w.size(0), w.size(1) // group, group)


def pack_int4(values: torch.Tensor) -> torch.Tensor:
    """uint8 values 0..15, last axis even -> half as many bytes: element 2i low nibble, 2i + 1 high nibble."""
    v = values.to(torch.uint8)
    return v[..., 0::2] | (v[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    return torch.stack([packed & 0x0F, packed >> 4], dim=-1).flatten(-2)


def quantize_int4(w: torch.Tensor, group_size: int = 64):
    """(out, in) -> (packed uint8 (out, in / 2), scales (out, in / group_size)): levels -8..7 times the scale."""
    g = _groups(w, group_size)
    scale = (g.abs().amax(dim=-1, keepdim=True) / 7).clamp(min=1e-12)  # the absmax maps to 7
    q = round_half_away(g / scale).clamp(-8, 7) + 8  # stored as 0..15
    return pack_int4(q.reshape(w.shape)), scale.squeeze(-1)


def dequantize_int4(packed: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    q = unpack_int4(packed).float() - 8  # (out, in)
    return (q.reshape(scales.size(0), scales.size(1), -1) * scales[..., None]).reshape(q.shape)


def nf4_table() -> torch.Tensor:
    """QLoRA's NormalFloat4 levels: 8 positive and 7 negative quantiles of N(0, 1) at evenly spaced probabilities
    from 0.5 to 0.9677 (so that the extreme quantile is finite), plus 0, normalised to [-1, 1]."""
    offset = 0.9677083
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9)[:-1].double())
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8)[:-1].double())
    levels = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative]).sort().values
    return (levels / levels.max()).float()


def quantize_nf4(w: torch.Tensor, group_size: int = 64):
    """(out, in) -> (packed uint8 indices into nf4_table(), scales (out, in / group_size)): the nearest level."""
    g = _groups(w, group_size)
    scale = g.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
    table = nf4_table()
    index = (g / scale).unsqueeze(-1).sub(table).abs().argmin(dim=-1)  # (out, groups, group_size)
    return pack_int4(index.reshape(w.shape)), scale.squeeze(-1)


def dequantize_nf4(packed: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    levels = nf4_table()[unpack_int4(packed).long()]  # (out, in)
    return (levels.reshape(scales.size(0), scales.size(1), -1) * scales[..., None]).reshape(levels.shape)


def _blocks(x: torch.Tensor, block: int = 32) -> torch.Tensor:
    _check_float(x, "x")
    if x.dim() == 0 or x.shape[-1] % block:
        raise ValueError(f"llama.cpp blocks hold {block} numbers: the last axis must be a multiple of {block}, "
                         f"got shape {tuple(x.shape)}")
    return x.float().reshape(-1, block)


@_numpy_in_numpy_out("floats")
def q8_0(x: torch.Tensor) -> torch.Tensor:
    """llama.cpp's Q8_0: per block of 32, d = absmax / 127 (stored fp16), q = roundf(x / d) -> 34 bytes a block."""
    b = _blocks(x)
    d = b.abs().amax(dim=1, keepdim=True) / 127
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = round_half_away(b * inv).to(torch.int8)
    return torch.cat([d.half().view(torch.uint8), q.view(torch.uint8)], dim=1).reshape(*x.shape[:-1], -1)


@_numpy_in_numpy_out("bytes")
def dequantize_q8_0(data: torch.Tensor) -> torch.Tensor:
    """Q8_0 bytes (..., 34 * blocks) -> float32 numbers (..., 32 * blocks)."""
    b = _check_blocks(data, 34, "Q8_0")
    d = b[:, :2].contiguous().view(torch.float16).float()
    return (b[:, 2:].contiguous().view(torch.int8).float() * d).reshape(*data.shape[:-1], -1)


@_numpy_in_numpy_out("floats")
def q4_0(x: torch.Tensor) -> torch.Tensor:
    """llama.cpp's Q4_0: per block of 32, d = (the value of largest magnitude) / -8, q = trunc(x / d + 8.5) in
    0..15; element i and i + 16 share a byte (low, high nibble) -> 18 bytes a block."""
    b = _blocks(x)
    biggest = b.gather(1, b.abs().argmax(dim=1, keepdim=True))
    d = biggest / -8
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    q = torch.trunc(b * inv + 8.5).clamp(0, 15).to(torch.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    return torch.cat([d.half().view(torch.uint8), packed], dim=1).reshape(*x.shape[:-1], -1)


@_numpy_in_numpy_out("bytes")
def dequantize_q4_0(data: torch.Tensor) -> torch.Tensor:
    """Q4_0 bytes (..., 18 * blocks) -> float32 numbers (..., 32 * blocks)."""
    b = _check_blocks(data, 18, "Q4_0")
    d = b[:, :2].contiguous().view(torch.float16).float()
    q = torch.cat([b[:, 2:] & 0x0F, b[:, 2:] >> 4], dim=1).float() - 8
    return (q * d).reshape(*data.shape[:-1], -1)


class QuantizedLinear(nn.Module):
    """A Linear whose weight is stored in ``scheme`` ("int8" per channel, or "int4" / "nf4" in groups): int8 runs
    torch's int8 weight-only kernel, int4 and NF4 are dequantized to float32 for each matmul (weight-only
    quantization: activations stay float32)."""

    int8_kernel = True  # int8 through torch._weight_int8pack_mm; False: dequantize, then a float32 matmul
    kernel_dtype = torch.float32  # the kernel's activations; torch.bfloat16 rounds them (its vectorised path)

    def __init__(self, linear: nn.Linear, scheme: str = "int8", group_size: int = 64):
        super().__init__()
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        self.scheme, self.group_size = scheme, group_size
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach()
        if scheme == "int8":
            q, scale, _ = quantize_int8(w, axis=0)
            self.register_buffer("qweight", q)
            self.register_buffer("scales", scale.squeeze(1))
        else:
            q, scale = (quantize_int4 if scheme == "int4" else quantize_nf4)(w, group_size)
            self.register_buffer("qweight", q)
            self.register_buffer("scales", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def dequantized(self) -> torch.Tensor:
        if self.scheme == "int8":
            return self.qweight.float() * self.scales[:, None]
        return (dequantize_int4 if self.scheme == "int4" else dequantize_nf4)(self.qweight, self.scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scheme == "int8" and self.int8_kernel and x.dtype == torch.float32 and hasattr(torch, "_weight_int8pack_mm"):
            # torch's int8 weight-only kernel reads the 1-byte weights directly: a quarter of float32's bytes
            # bfloat16 inputs take the kernel's vectorised path, which (torch 2.13, CPU) returns garbage or crashes
            # unless in_features is a multiple of 16 (measured): other widths keep float32
            dtype = self.kernel_dtype if self.in_features % 16 == 0 else torch.float32
            y = torch._weight_int8pack_mm(x.reshape(-1, self.in_features).to(dtype), self.qweight,
                                          self.scales.to(dtype))  # (B*T, in) -> (B*T, out)
            y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias
        return nn.functional.linear(x, self.dequantized().to(x.dtype), self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, scheme={self.scheme}, group_size={self.group_size}"


def quantize_model(model: nn.Module, scheme: str = "int8", group_size: int = 64) -> nn.Module:
    """Replace every nn.Linear inside the model's blocks by a QuantizedLinear, in place; returns the model."""
    for block in model.blocks:
        for name, module in list(block.named_modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(module, child_name, QuantizedLinear(child, scheme, group_size))
    return model


def save_quantized(model, folder) -> "Path":
    """Write a quantized course model: its tensors (int8 / packed int4 weights, scales, the float rest) in
    model.safetensors and what rebuilds it (model config, scheme, group size) in config.json."""
    import json
    from pathlib import Path

    from safetensors.torch import save_model

    layers = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    if not layers:
        raise ValueError("the model has no QuantizedLinear layers: call quantize_model first")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(folder / "model.safetensors"))
    config = {"model": model.cfg.to_dict(), "scheme": layers[0].scheme, "group_size": layers[0].group_size}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder


def load_quantized(folder, model=None):
    """The model ``save_quantized`` wrote; into ``model`` (already quantized the same way) if given. A checkpoint
    that does not fit gets an error naming the tensors."""
    import json
    from pathlib import Path

    from safetensors.torch import load_model

    from .gpt import GPT, GPTConfig

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    if model is None:
        model = quantize_model(GPT(GPTConfig(**config["model"])), config["scheme"], config["group_size"])
    else:
        layers = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
        found = (layers[0].scheme, layers[0].group_size) if layers else None
        if found != (config["scheme"], config["group_size"]):
            raise ValueError(f"the checkpoint in {folder} is quantized as {config['scheme']} with groups of "
                             f"{config['group_size']}; the model given is {found or 'not quantized'}")
    try:
        missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False)
    except RuntimeError as exc:  # a shape that differs
        raise ValueError(f"the quantized checkpoint in {folder} does not fit this model: {exc}") from None
    if missing or unexpected:
        raise ValueError(f"the quantized checkpoint in {folder} does not fit this model: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    return model.eval()
