"""Chapter 08 exercises: the pieces of Llama-fication.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 08

Shapes: B batch, T positions, C channels, F hidden width of the MLP, H query heads,
KV key/value heads, D = C / H the head size. Use torch; no nn.Module needed.
"""
import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """x: (..., C), weight: (C,) -> (..., C): x / sqrt(mean(x^2 over C) + eps) * weight."""
    raise NotImplementedError


def swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """x: (B, T, C); w_gate, w_up: (F, C); w_down: (C, F), as nn.Linear stores them (out, in), no biases.
    Return down(silu(gate(x)) * up(x)): (B, T, C)."""
    raise NotImplementedError


def apply_rope(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """x: (B, H, T, D) queries or keys at positions 0..T-1 -> (B, H, T, D), rotated.
    Rotate-half convention: dimension i (i < D/2) pairs with i + D/2; the pair rotates by the
    angle t * theta^(-2i/D) at position t."""
    raise NotImplementedError


def repeat_kv(kv: torch.Tensor, n_rep: int) -> torch.Tensor:
    """kv: (B, KV, T, D) -> (B, KV * n_rep, T, D), so that query head h reads key/value head h // n_rep."""
    raise NotImplementedError


def wsd_lr(step: int, max_lr: float, min_lr: float, warmup: int, total: int, cooldown: float) -> float:
    """Warmup-stable-decay: for step < warmup, max_lr * (step + 1) / warmup (chapter 07's warmup); then max_lr
    until d = max(warmup, total - round(cooldown * total)); then a straight line from max_lr at step d to
    min_lr at step total; min_lr from step total on."""
    raise NotImplementedError
