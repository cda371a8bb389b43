"""Low-rank adaptation, LoRA (chapter 15): fine-tune a frozen model through a small trainable update.

Does:
- ``LoRALinear``: wraps a projection (an ``nn.Linear``, or chapter 14's ``QuantizedLinear``, which is QLoRA) and
  adds a rank-r update, y = base(x) + (alpha / r) · dropout(x) Aᵀ Bᵀ. A (r, in) starts Kaiming-uniform and
  B (out, r) at zero, so the adapted model starts exactly equal to the base.
- ``apply_lora``: freezes every parameter of a course model and wraps the projections named by ``targets``;
  only the A and B matrices train.
- ``merge`` / ``unmerge``: fold (alpha / r) · B @ A into a float base weight and take it back out, so the merged
  model runs at the base's speed; ``merged_weight`` gives the folded weight of any base, quantized included.
- ``adapter_state`` / ``load_adapter``: the adapter's tensors alone (kilobytes, not the whole model).
- ``base_model``: a copy of the frozen base without its adapters (what ``qt.save_hf`` exports next to a peft adapter).
Conventions (tested against peft): W' = W + (alpha / r) · B @ A, with A = ``lora_A`` (r, in) and B = ``lora_B``
(out, r). The course stacks q | k | v in one ``attn.qkv`` projection, so one adapter on it shares A between
q, k and v, where peft's three adapters (q_proj, k_proj, v_proj) each have their own A.
Does not: train (the Trainer does, chapter 07), quantize (``qt.quantize``), or read and write peft's files
(``qt.interop.hf_peft``).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

# The projections of a course block that LoRA can adapt, by their name inside the block.
TARGETS = ("attn.qkv", "attn.proj", "mlp.gate", "mlp.up", "mlp.proj", "mlp.fc")
ATTENTION = ("attn.qkv", "attn.proj")  # the default: the attention projections, as in the LoRA paper


class LoRALinear(nn.Module):
    """base(x) + (alpha / r) · B(A(dropout(x))): the base is frozen, only A and B are parameters that train."""

    def __init__(self, base: nn.Module, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if not (isinstance(r, int) and r >= 1):
            raise ValueError(f"LoRA rank r must be an integer >= 1, got {r!r}")
        if alpha <= 0:
            raise ValueError(f"LoRA alpha must be > 0, got {alpha}")
        self.base, self.r, self.alpha, self.scale = base, r, alpha, alpha / r
        self.in_features, self.out_features = base.in_features, base.out_features
        self.lora_A = nn.Parameter(torch.empty(r, self.in_features))  # (r, in): reads the input down to r numbers
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r))  # (out, r): zero, so training starts at the base
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own initialization, as peft does
        self.dropout = nn.Dropout(dropout)
        self.merged = False  # True while B @ A sits inside the base weight

    def delta(self) -> torch.Tensor:
        """The update (alpha / r) · B @ A, the shape of the base weight (out, in)."""
        return self.scale * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, in) -> (B, T, out)
        y = self.base(x)
        if self.merged:
            return y
        # two thin matmuls, (B, T, in) @ (in, r) @ (r, out): never the (out, in) product
        return y + self.scale * (self.dropout(x) @ self.lora_A.t() @ self.lora_B.t())

    def merge(self) -> None:
        """Fold the update into the base weight: forward then costs what the base costs."""
        if self.merged:
            return
        if not isinstance(self.base, nn.Linear):
            raise ValueError(f"cannot merge into a {type(self.base).__name__} base in place: its weight is quantized, "
                             "and adding the update means quantizing again; use lora.merged_weight(layer) and "
                             "quantize the result (chapter 15 measures what that costs)")
        with torch.no_grad():
            self.base.weight += self.delta().to(self.base.weight.dtype)
        self.merged = True

    def unmerge(self) -> None:
        """Take the update back out of the base weight (exact up to float rounding)."""
        if self.merged:
            with torch.no_grad():
                self.base.weight -= self.delta().to(self.base.weight.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def merged_weight(layer: LoRALinear) -> torch.Tensor:
    """The float weight W + (alpha / r) · B @ A of any base (a quantized base is dequantized first)."""
    base = layer.base.weight if isinstance(layer.base, nn.Linear) else layer.base.dequantized()
    return (base if layer.merged else base + layer.delta()).detach()


def _check_targets(model, targets) -> tuple:
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    present = sorted({name for name, m in model.blocks[0].named_modules() if name in TARGETS})
    unknown = [t for t in targets if t not in present]
    if not targets or unknown:
        raise ValueError(f"LoRA targets {list(unknown) or list(targets)} are not projections of this model; "
                         f"allowed: {present}")
    return targets


def apply_lora(model: nn.Module, r: int = 8, alpha: float = 16.0, targets=ATTENTION, dropout: float = 0.0):
    """Freeze ``model`` and wrap each block's ``targets`` projections in a LoRALinear, in place; returns the model.
    Only the adapters' A and B remain trainable (``trainable_parameters`` counts them)."""
    targets = _check_targets(model, targets)
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("the model already has LoRA adapters; apply_lora once (or start from a fresh model)")
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.blocks:
        for target in targets:
            parent_name, _, child = target.rpartition(".")
            parent = block.get_submodule(parent_name)
            setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, dropout))
    return model


def lora_layers(model: nn.Module) -> dict:
    """{name: LoRALinear} of every adapted projection, e.g. 'blocks.0.attn.qkv'."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def trainable_parameters(model: nn.Module) -> int:
    """How many numbers training changes (counting a tied matrix once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merge(model: nn.Module) -> nn.Module:
    for layer in lora_layers(model).values():
        layer.merge()
    return model


def unmerge(model: nn.Module) -> nn.Module:
    for layer in lora_layers(model).values():
        layer.unmerge()
    return model


def adapter_state(model: nn.Module) -> dict:
    """The adapters' tensors by name ('blocks.0.attn.qkv.lora_A', ...), detached copies."""
    return {f"{name}.{ab}": getattr(layer, ab).detach().clone()
            for name, layer in lora_layers(model).items() for ab in ("lora_A", "lora_B")}


def load_adapter(model: nn.Module, state: dict) -> nn.Module:
    """Copy ``adapter_state``'s tensors into a model that has the same adapters (same targets and rank)."""
    mine = {f"{name}.{ab}": getattr(layer, ab) for name, layer in lora_layers(model).items() for ab in ("lora_A", "lora_B")}
    if set(mine) != set(state):
        raise ValueError(f"the adapter does not fit this model: missing {sorted(set(mine) - set(state))}, "
                         f"unexpected {sorted(set(state) - set(mine))}; apply_lora with the adapter's targets first")
    for name, tensor in state.items():
        if mine[name].shape != tensor.shape:
            raise ValueError(f"adapter tensor {name} has shape {tuple(tensor.shape)}, the model expects "
                             f"{tuple(mine[name].shape)}: was it trained with another rank?")
        with torch.no_grad():
            mine[name].copy_(tensor)
    return model


def base_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each LoRALinear replaced by its base projection, update taken out: the frozen model
    the adapters were trained on (``qt.save_hf(lora.base_model(model), folder)`` exports it; its parameters stay
    frozen). ``model`` itself is left as it is."""
    import copy

    base = copy.deepcopy(model)  # deepcopy keeps a tied embedding tied
    for name, layer in lora_layers(base).items():
        layer.unmerge()  # a merged layer holds W + (alpha / r) · B @ A in its base weight
        parent_name, _, child = name.rpartition(".")
        setattr(base.get_submodule(parent_name), child, layer.base)
    return base
