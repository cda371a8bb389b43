"""Chapter 15 exercises: LoRA's forward, its initialization, merging, and what it trains.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 15

Use torch only (no quanta_tissu, no peft): the point is to write the ideas yourself.

Conventions (peft's and ``qt.lora``'s): a frozen linear layer has weight W (out, in) and computes y = x Wᵀ.
LoRA adds a rank-r update through two trainable matrices, A (r, in) and B (out, r), scaled by alpha / r:

    W' = W + (alpha / r) · B @ A
"""
import torch


def lora_forward(x: torch.Tensor, weight: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float,
                 r: int) -> torch.Tensor:
    """x (..., in), weight (out, in), A (r, in), B (out, r) -> y (..., out):

        y = x Wᵀ + (alpha / r) · (x Aᵀ) Bᵀ

    Read the adapter's term as two thin matmuls: x Aᵀ (..., r) squeezes the input down to r numbers, and
    (x Aᵀ) Bᵀ (..., out) spreads them back out. That costs r · (in + out) multiplications per row, where
    x (B @ A)ᵀ first forms an (out, in) matrix, as big as W itself; both give the same y, and both are accepted.
    Do not change ``weight`` in place, and keep the gradient flowing to A and B (no torch.no_grad, no detach)."""
    raise NotImplementedError


def init_lora(in_features: int, out_features: int, r: int, generator: torch.Generator) -> tuple:
    """Return (A, B), float32, for a fresh adapter: A (r, in_features), B (out_features, r).

    A is random: uniform on [-bound, bound] with bound = 1 / sqrt(in_features), which is what
    ``nn.init.kaiming_uniform_(A, a=math.sqrt(5))`` (nn.Linear's default, and peft's) draws. B is all zeros, so
    the adapted layer starts exactly equal to the base. Draw every random number from ``generator`` (for example
    ``torch.rand(..., generator=generator)``), so that the same seed gives the same A."""
    raise NotImplementedError


def merge(weight: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float, r: int) -> torch.Tensor:
    """weight (out, in), A (r, in), B (out, r) -> the merged weight W + (alpha / r) · B @ A, (out, in).

    After merging, a plain linear layer x W'ᵀ gives what ``lora_forward`` gives, at the base's cost. Return a new
    tensor; leave ``weight`` unchanged (so that the adapter can be taken out again, or swapped for another)."""
    raise NotImplementedError


def lora_parameter_count(shapes: list, r: int) -> int:
    """shapes: the (out, in) shapes of the weights that get an adapter, e.g. [(192, 64), (64, 64)].

    Return, as an int, how many numbers training changes: each adapted weight trains its own A (r, in) and
    B (out, r) and nothing else (the base weights are frozen). An empty list trains nothing."""
    raise NotImplementedError
