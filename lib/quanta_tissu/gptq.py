"""GPTQ (chapter 14): quantize a layer's weights column by column, correcting the error on the columns not yet done.

Does:
- ``fake_quantize(w, bits, group_size)``: round-to-nearest (RTN) on the symmetric grid of ``bits`` bits, levels
  -2^(b-1) .. 2^(b-1) - 1 times a scale per group of ``group_size`` inputs (absmax / (2^(b-1) - 1)), returned
  dequantized: the baseline GPTQ improves on, on the same grid;
- ``gptq(w, hessian, bits, group_size)``: the GPTQ algorithm (Frantar et al., 2023) for one weight matrix: with
  H = 2 X^T X over calibration inputs X, quantize column j, then spread its error over the columns after it through
  the Cholesky factor of H^-1, so that the layer's outputs on the calibration inputs move as little as possible;
- ``quantize_model_gptq(model, ids, bits, group_size)``: in the order data flows through the model, the inputs of
  each Linear (computed with everything before it already quantized), their Hessians, and GPTQ, in place.
Does not: pack the result (``qt.quantize`` stores weights; this module chooses them), or reorder columns by
activation size ("act-order").
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .quantize import _groups, group_width


def _grid(bits: int):
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in 2..8, got {bits}")
    top = 2 ** (bits - 1) - 1  # the largest level; the smallest is -(top + 1)
    return top, -(top + 1)


def _scale(w: torch.Tensor, top: int) -> torch.Tensor:
    return (w.abs().amax(dim=-1, keepdim=True) / top).clamp(min=1e-12)


def _round(w: torch.Tensor, scale: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
    # torch.round sends halves to even (qt.quantize's formats round them away from zero, as llama.cpp): on these
    # simulated grids exact halves are measure-zero, and RTN and GPTQ share this rounding, so they compare fairly
    return torch.clamp(torch.round(w / scale), bottom, top) * scale


def fake_quantize(w: torch.Tensor, bits: int, group_size: int | None = None) -> torch.Tensor:
    """Round-to-nearest on ``bits`` bits, one scale per output row and group of inputs (None: the whole row)."""
    top, bottom = _grid(bits)
    g = _groups(w, group_size)  # (out, groups, group)
    return _round(g, _scale(g, top), top, bottom).reshape(w.shape)


def gptq(w: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int | None = None,
         damp: float = 0.01) -> torch.Tensor:
    """GPTQ for one (out, in) weight matrix given H = 2 X^T X (in, in); returns the quantized weights, dequantized.

    Column j is rounded with its group's scale; the rounding error e_j, divided by [H^-1]_jj, is subtracted from the
    later columns in proportion to row j of the Cholesky factor of H^-1: the least-squares correction that keeps
    X W^T closest to the original on the calibration inputs."""
    top, bottom = _grid(bits)
    W = w.detach().float().clone()
    H = hessian.detach().double().clone()
    width = W.size(1)
    group = group_width(width, group_size)
    dead = torch.diag(H) == 0  # inputs never active in the calibration data: their weights do not matter
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * torch.diag(H).mean() * torch.eye(width, dtype=H.dtype)  # dampening keeps H^-1 well conditioned
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True).float()  # H^-1 = U^T U
    Q = torch.zeros_like(W)
    scale = None
    for j in range(width):
        if j % group == 0:  # a new group: its scale from the weights as corrected so far
            scale = _scale(W[:, j:j + group], top)
        q = _round(W[:, j:j + 1], scale, top, bottom)  # (out, 1)
        Q[:, j:j + 1] = q
        err = (W[:, j:j + 1] - q) / U[j, j]
        W[:, j + 1:] -= err @ U[j:j + 1, j + 1:]  # spread the error over the columns not yet quantized
    return Q


def _stages(block) -> list:
    """A block's Linears in the order data flows through them, those that read the same input together:
    q|k|v, then the attention's output, then the MLP's input matrices, then its output."""
    stages = {}
    for name, m in block.named_modules():
        if isinstance(m, nn.Linear):
            key = name.rsplit(".", 1)[0] + (".out" if name.endswith("proj") else ".in")  # gate and up share
            stages.setdefault(key, []).append((name, m))
    return list(stages.values())


@torch.no_grad()
def quantize_model_gptq(model, ids: torch.Tensor, bits: int, group_size: int | None = None) -> dict:
    """Quantize every Linear in the model's blocks with GPTQ, in place, using calibration token ids (B, T).

    In the order data flows (block by block, and inside a block q|k|v, the attention's output, the MLP's inputs,
    its output), the calibration batch runs through the model with everything before already quantized, forward
    hooks collect the next Linears' inputs, H = 2 X^T X / n, and GPTQ replaces their weights. Returns
    {name: input width}."""
    model.eval()
    done = {}
    for block in model.blocks:
        for stage in _stages(block):
            hessians = {name: torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for name, m in stage}
            counts = dict.fromkeys(hessians, 0)

            def collector(name):
                def hook(module, args, output):
                    x = args[0].reshape(-1, args[0].size(-1)).double()  # (B*T, in)
                    hessians[name] += 2 * x.T @ x
                    counts[name] += x.size(0)
                return hook

            handles = [m.register_forward_hook(collector(n)) for n, m in stage]
            try:
                model(ids)
            finally:
                for h in handles:
                    h.remove()
            for name, m in stage:
                m.weight.copy_(gptq(m.weight, hessians[name] / counts[name], bits, group_size).to(m.weight.dtype))
                done[name] = m.in_features
    return done
