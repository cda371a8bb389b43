"""Chapter 12 exercises: rounding to bf16, fp16's underflow, the loss scaler's rule, and the FLOPs behind MFU.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 12

Use torch. No torch.amp, no .to(torch.bfloat16) inside to_bf16: the point is to do it yourself.
"""
import torch


def to_bf16(x: torch.Tensor) -> torch.Tensor:
    """Round float32 x to the nearest bfloat16 (ties to even) and return it as float32.

    bf16 is the top 16 bits of a float32: 1 sign, 8 exponent, 7 mantissa bits. Read the bits with
    x.view(torch.int32), round away the low 16 bits, and view the result back as float32. (Inputs are finite.)"""
    raise NotImplementedError


def underflow_fraction(grads: torch.Tensor, scale: float) -> float:
    """grads: float32 gradients. The fraction of its *nonzero* entries that become 0 when the scaled gradient
    grads * scale is stored in float16."""
    raise NotImplementedError


def scaler_update(scale: float, clean_steps: int, found_inf: bool, growth_factor: float = 2.0,
                  backoff_factor: float = 0.5, growth_interval: int = 2000) -> tuple:
    """One update of dynamic loss scaling after a step. Return (new scale, new clean_steps).

    ``clean_steps`` counts the steps in a row, before this one, without an inf or nan gradient; ``found_inf`` says
    whether this step had one. The rule (torch.amp.GradScaler's): after an overflow, multiply the scale by
    backoff_factor and restart the count; after a clean step, count it, and when the count reaches
    growth_interval, multiply the scale by growth_factor and restart the count."""
    raise NotImplementedError


def flops_per_token(matmul_weights: int, n_layer: int, context: int, n_embd: int) -> float:
    """Training FLOPs per token: the forward and backward matmuls of every weight, plus the attention scores and
    their weighted sum over a ``context``-token window, in every layer, forward and backward."""
    raise NotImplementedError
