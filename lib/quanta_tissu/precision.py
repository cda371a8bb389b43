"""Mixed precision (chapter 12): compute in 16 bits where it is safe, keep the weights and the sums in 32.

Does:
- ``PRECISIONS`` names the three choices of ``TrainConfig.precision``: "fp32", "bf16" and "fp16";
  ``autocast(precision, device)`` is the ``torch.autocast`` context for one of them (nothing for "fp32"):
  matmuls run in 16 bits, the loss in float32 (autocast's own lists: on CUDA softmax and normalisation also run
  in float32; on CPU their kernels add up in float32 and round their outputs to 16 bits);
- ``LossScaler``: dynamic loss scaling written out, the rule ``torch.amp.GradScaler`` applies (tested step for
  step against it): multiply the loss by S so that small fp16 gradients do not flush to zero; divide the
  gradients by S before the optimizer sees them; if any is inf or nan, skip the step and halve S; after
  ``growth_interval`` clean steps in a row, double S;
- ``float_range(dtype)``: the largest finite, smallest normal and smallest subnormal number, and the spacing
  at 1, of a float type (the chapter's range plots).
Does not: keep fp32 master copies of the weights: the optimizer's parameters are float32 throughout, and only
autocast's copies for the matmuls are 16-bit. Nor choose a device: ``qt.runtime`` does.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # name -> autocast dtype


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")


def autocast(precision: str, device: str = "cpu"):
    """The autocast context of ``precision`` on ``device`` ("cpu", "cuda" or a torch.device)."""
    check_precision(precision)
    if PRECISIONS[precision] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=PRECISIONS[precision])


def float_range(dtype: torch.dtype) -> dict:
    """Largest finite, smallest normal, smallest subnormal and the gap between 1 and the next number."""
    info = torch.finfo(dtype)
    return {"max": info.max, "smallest_normal": info.smallest_normal,
            "smallest_subnormal": info.smallest_normal * info.eps, "eps": info.eps}


class LossScaler:
    """Dynamic loss scaling for fp16 training, step for step ``torch.amp.GradScaler``'s rule.

    Use: ``scaler.scale(loss).backward()``; optionally ``scaler.unscale_(opt)`` before clipping;
    ``scaler.step(opt)``; ``scaler.update()``. With ``enabled=False`` every call is a pass-through."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        if not (init_scale > 0 and growth_factor > 1 and 0 < backoff_factor < 1 and growth_interval >= 1):
            raise ValueError("LossScaler needs init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 and "
                             f"growth_interval >= 1; got {init_scale}, {growth_factor}, {backoff_factor}, {growth_interval}")
        self.scale_value, self.enabled = float(init_scale), enabled
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self.clean_steps = 0  # steps in a row without an inf or nan gradient
        self.found_inf, self._unscaled = False, False

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.scale_value if self.enabled else loss

    def unscale_(self, optimizer) -> None:
        """Divide every gradient by the scale, in place, and note whether any is inf or nan (once per step)."""
        if not self.enabled or self._unscaled:
            return
        inv = torch.tensor(1.0 / self.scale_value, dtype=torch.float32)  # as GradScaler: 1/S rounded to float32
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        for grad in grads:
            grad.mul_(inv)
        self.found_inf = any(not bool(torch.isfinite(grad).all()) for grad in grads)
        self._unscaled = True

    def step(self, optimizer) -> bool:
        """Unscale if not done yet, then take the optimizer step unless a gradient overflowed. True if taken."""
        if not self.enabled:
            optimizer.step()
            return True
        self.unscale_(optimizer)
        if not self.found_inf:
            optimizer.step()
        return not self.found_inf

    def update(self) -> None:
        """Halve the scale after an overflow; double it after growth_interval clean steps in a row."""
        if not self.enabled:
            return
        if self.found_inf:
            self.scale_value *= self.backoff_factor
            self.clean_steps = 0
        else:
            self.clean_steps += 1
            if self.clean_steps == self.growth_interval:
                self.scale_value *= self.growth_factor
                self.clean_steps = 0
        self.found_inf, self._unscaled = False, False

    def state_dict(self) -> dict:
        return {"scale": self.scale_value, "clean_steps": self.clean_steps}

    def load_state_dict(self, state: dict) -> None:
        self.scale_value, self.clean_steps = float(state["scale"]), int(state["clean_steps"])
