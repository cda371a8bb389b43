"""Chapter 15 exercises, solved."""
import math

import torch


def lora_forward(x: torch.Tensor, weight: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float,
                 r: int) -> torch.Tensor:
    # two thin matmuls, (..., in) @ (in, r) @ (r, out): the (out, in) product B @ A is never formed
    return x @ weight.t() + (alpha / r) * ((x @ A.t()) @ B.t())


def init_lora(in_features: int, out_features: int, r: int, generator: torch.Generator) -> tuple:
    bound = 1 / math.sqrt(in_features)  # kaiming_uniform_ with a = sqrt(5): sqrt(6 / ((1 + 5) · fan_in))
    A = (torch.rand(r, in_features, generator=generator) * 2 - 1) * bound  # uniform on [-bound, bound)
    B = torch.zeros(out_features, r)  # zero: W + (alpha / r) · B @ A = W at the start
    return A, B


def merge(weight: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float, r: int) -> torch.Tensor:
    return weight + (alpha / r) * (B @ A)  # a new tensor: weight itself is untouched


def lora_parameter_count(shapes: list, r: int) -> int:
    return sum(r * (n_in + n_out) for n_out, n_in in shapes)  # A (r, in) plus B (out, r) per weight
