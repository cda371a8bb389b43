"""Chapter 12 exercises, solved."""
import torch


def to_bf16(x: torch.Tensor) -> torch.Tensor:
    bits = x.contiguous().view(torch.int32)
    lsb = (bits >> 16) & 1  # the last bit kept: ties round to make it even
    rounded = (bits + 0x7FFF + lsb) & ~0xFFFF  # add just under half a bf16 step, then drop the low 16 bits
    return rounded.view(torch.float32)


def underflow_fraction(grads: torch.Tensor, scale: float) -> float:
    nonzero = grads != 0
    flushed = (grads * scale).to(torch.float16) == 0
    return float((flushed & nonzero).sum() / nonzero.sum())


def scaler_update(scale: float, clean_steps: int, found_inf: bool, growth_factor: float = 2.0,
                  backoff_factor: float = 0.5, growth_interval: int = 2000) -> tuple:
    if found_inf:
        return scale * backoff_factor, 0
    clean_steps += 1
    if clean_steps == growth_interval:
        return scale * growth_factor, 0
    return scale, clean_steps


def flops_per_token(matmul_weights: int, n_layer: int, context: int, n_embd: int) -> float:
    return 6 * matmul_weights + 12 * n_layer * context * n_embd
