"""peft LoRA adapters <-> the course's LoRA (chapter 15).

A peft adapter folder is ``adapter_config.json`` (rank, alpha, the modules it adapts) plus
``adapter_model.safetensors`` (one A and one B per adapted module); writing and reading one needs only json and
safetensors, so peft and transformers stay test dependencies. The base model travels separately, as chapter 09's
Hugging Face Llama folder: ``qt.save_hf(lora.base_model(model), folder)``.
Does:
- ``save_peft``: our adapters as a folder that ``peft.PeftModel.from_pretrained(llama, folder)`` loads onto the
  transformers Llama exported from the same base. Our one adapter on the stacked ``attn.qkv`` becomes three,
  q_proj, k_proj and v_proj, each with our A and its own row block of our B: exact, since ΔW_q = B_q A.
- ``load_peft``: a peft adapter folder applied to a plain course GPT (``apply_lora``, then the tensors). peft's
  q_proj, k_proj and v_proj have an A each, which one shared A cannot hold; stacked at rank 3r, A = A_q | A_k | A_v
  and B block-diagonal, they are the same update exactly. A projection the adapter leaves out gets zero rows.
Does not: import peft or transformers, export the base (``qt.save_hf``), or read what the course's LoRALinear
cannot compute: rsLoRA, DoRA, trained biases, adapters on embeddings or the head, regular-expression targets,
per-layer ranks. Those are refused with the field that asks for them.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from .. import lora
from ..gpt import GPT
from .hf_llama import config_to_hf

CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"

# peft's module name (transformers' Llama, as in hf_llama) -> the course projection it lives in, in every block
_OURS = {"q_proj": "attn.qkv", "k_proj": "attn.qkv", "v_proj": "attn.qkv", "o_proj": "attn.proj",
         "gate_proj": "mlp.gate", "up_proj": "mlp.up", "down_proj": "mlp.proj"}
_QKV = ("q_proj", "k_proj", "v_proj")  # the order of their rows in our attn.qkv
# PeftModel.base_model (the LoRA wrapper) .model (LlamaForCausalLM) .model (LlamaModel) .layers: peft saves the
# parameter names of the whole wrapped model, minus only the adapter's name ('lora_A.default.weight' -> 'lora_A.weight')
_KEY = "base_model.model.model.layers.{i}.{parent}.{module}.lora_{ab}.weight"

# adapter_config.json fields the course's LoRALinear, base(x) + (alpha / r) · B A x, can honour only at one value
_FIXED = {"peft_type": ("LORA",), "bias": ("none",), "task_type": (None, "CAUSAL_LM")}
_OFF = {  # must be false, null or empty; why, for the error message
    "use_rslora": "rsLoRA scales by alpha / sqrt(r), the course by alpha / r",
    "use_dora": "DoRA adds a magnitude vector that LoRALinear does not have",
    "lora_bias": "LoRALinear's B has no bias", "fan_in_fan_out": "Llama's projections are (out, in)",
    "use_qalora": "QA-LoRA pools the input", "use_bdlora": "block-diagonal LoRA is another layer",
    "alora_invocation_tokens": "activated LoRA switches on by token", "modules_to_save": "it trains whole modules",
    "trainable_token_indices": "it trains embedding rows", "target_parameters": "it adapts raw parameters",
    "layers_to_transform": "apply_lora adapts every block", "layer_replication": "it duplicates blocks",
}


def _key(i: int, module: str, ab: str) -> str:
    parent = "mlp" if _OURS[module].startswith("mlp") else "self_attn"
    return _KEY.format(i=i, parent=parent, module=module, ab=ab)


def _shapes(model: GPT) -> dict:
    """{peft module: (out, in)} of transformers' Llama projections for our config."""
    cfg = model.cfg
    C, D = cfg.n_embd, cfg.n_embd // cfg.n_head
    return {"q_proj": (cfg.n_head * D, C), "k_proj": (cfg.n_kv_heads * D, C), "v_proj": (cfg.n_kv_heads * D, C),
            "o_proj": (C, C), "gate_proj": (cfg.d_ff, C), "up_proj": (cfg.d_ff, C), "down_proj": (C, cfg.d_ff)}


def _to_peft(layer: lora.LoRALinear, target: str, shapes: dict) -> list:
    """[(peft module, A, B)] of one of our adapters: attn.qkv splits B by rows, A is shared by q, k and v."""
    if target != "attn.qkv":
        module = next(m for m, t in _OURS.items() if t == target)
        return [(module, layer.lora_A, layer.lora_B)]
    rows = [shapes[m][0] for m in _QKV]
    return [(m, layer.lora_A, b) for m, b in zip(_QKV, layer.lora_B.split(rows))]  # (rows_m, r) each


def _config(ranks: dict, dropout: float) -> dict:
    """adapter_config.json from {peft module: {(r, alpha)}}; modules at another rank go to rank_pattern."""
    mixed = {m: sorted(pairs) for m, pairs in ranks.items() if len(pairs) > 1}
    if mixed:
        raise ValueError(f"adapters on the same projection have different (r, alpha) in different blocks: {mixed}; "
                         "peft's adapter_config.json gives one per module name")
    per_module = {m: next(iter(pairs)) for m, pairs in ranks.items()}
    r, alpha = Counter(per_module.values()).most_common(1)[0][0]  # the rest, e.g. a stacked qkv, is a pattern
    return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": None, "revision": None,
            "inference_mode": True, "r": r, "lora_alpha": alpha, "lora_dropout": dropout,
            "target_modules": sorted(per_module), "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
            "use_dora": False, "init_lora_weights": True, "modules_to_save": None, "layers_to_transform": None,
            "layers_pattern": None, "rank_pattern": {m: ra[0] for m, ra in per_module.items() if ra[0] != r},
            "alpha_pattern": {m: ra[1] for m, ra in per_module.items() if ra[1] != alpha}}


def save_peft(model: GPT, folder) -> Path:
    """Write ``model``'s LoRA adapters as a peft adapter folder for the transformers Llama of its base."""
    from safetensors.torch import save_file

    config_to_hf(model.cfg)  # a ValueError unless the model is Llama-shaped: peft's names are Llama's
    layers, shapes = lora.lora_layers(model), _shapes(model)
    if not layers:
        raise ValueError("the model has no LoRA adapters: call lora.apply_lora (or load_peft) first")
    tensors, ranks = {}, {}
    for name, layer in layers.items():  # 'blocks.0.attn.qkv'; A and B are the same merged or not
        _, i, target = name.split(".", 2)
        for module, A, B in _to_peft(layer, target, shapes):
            # clones: safetensors refuses tensors that share memory, and q, k, v share A
            tensors[_key(int(i), module, "A")] = A.detach().clone().contiguous()
            tensors[_key(int(i), module, "B")] = B.detach().clone().contiguous()
            ranks.setdefault(module, set()).add((layer.r, layer.alpha))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dropout = next(iter(layers.values())).dropout.p
    (folder / CONFIG).write_text(json.dumps(_config(ranks, dropout), indent=1))
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": "pt"})
    return folder


def _check_fields(config: dict) -> None:
    for field in ("peft_type", "r", "lora_alpha", "target_modules"):
        if field not in config:
            raise ValueError(f"{CONFIG} has no {field!r}: a peft LoRA config writes it")
    for field, allowed in _FIXED.items():
        if config.get(field, allowed[0]) not in allowed:
            raise ValueError(f"{CONFIG}: {field} = {config[field]!r} is not supported; allowed: {list(allowed)}")
    for field, why in _OFF.items():
        if config.get(field):
            raise ValueError(f"{CONFIG}: {field} = {config[field]!r} is not supported ({why}); "
                             "allowed: false, null or empty")


def _read_config(config: dict) -> tuple:
    """({peft module: (r, alpha)}, dropout) from adapter_config.json, or a ValueError naming the field."""
    _check_fields(config)
    modules = config["target_modules"]
    if isinstance(modules, str) or not modules or any(m not in _OURS for m in modules):
        raise ValueError(f"{CONFIG}: target_modules = {modules!r} cannot be mapped to the course model; "
                         f"allowed: a list of names among {list(_OURS)}")
    r, alpha = config["r"], config["lora_alpha"]
    patterns = {name: config.get(name) or {} for name in ("rank_pattern", "alpha_pattern")}
    for name, pattern in patterns.items():
        if any(key not in modules for key in pattern):  # peft reads keys as regular expressions over full names
            raise ValueError(f"{CONFIG}: {name} keys {sorted(pattern)} must be names from target_modules "
                             f"{sorted(modules)}: the course gives one rank per projection, the same in every block")
    ranks = {m: (patterns["rank_pattern"].get(m, r), patterns["alpha_pattern"].get(m, alpha)) for m in modules}
    for m, (rank, a) in ranks.items():
        if not (isinstance(rank, int) and rank >= 1) or not (isinstance(a, (int, float)) and a > 0):
            raise ValueError(f"{CONFIG}: {m} has r = {rank!r}, lora_alpha = {a!r}; "
                             "allowed: r an integer >= 1, lora_alpha > 0")
    return ranks, config.get("lora_dropout", 0.0)


def _read_tensors(state: dict, ranks: dict, model: GPT) -> dict:
    """{(block, peft module): (A, B)}, after checking the names and shapes against the model and the config."""
    shapes, expected = _shapes(model), {}
    for i in range(model.cfg.n_layer):
        for m, (r, _) in ranks.items():
            out, inp = shapes[m]
            expected[_key(i, m, "A")], expected[_key(i, m, "B")] = (r, inp), (out, r)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{WEIGHTS} does not fit this model and {CONFIG}: missing {missing[:6]}"
                         f"{' ...' if len(missing) > 6 else ''}, unexpected {unexpected[:6]}")
    wrong = [f"{k}: file {tuple(state[k].shape)}, expected {shape}" for k, shape in expected.items()
             if tuple(state[k].shape) != shape]
    if wrong:
        raise ValueError("adapter tensors of the wrong shape (another rank than the config's r, or an adapter for "
                         "another model size): " + "; ".join(wrong[:4]))
    return {(i, m): (state[_key(i, m, "A")], state[_key(i, m, "B")]) for i in range(model.cfg.n_layer) for m in ranks}


def _shares_a(tensors: dict, ranks: dict, n_layer: int) -> bool:
    """Whether q, k and v have one A (and one rank and alpha) in every block, as save_peft writes them."""
    present = [m for m in _QKV if m in ranks]
    if len({ranks[m] for m in present}) != 1:  # none (no attn.qkv adapter), or ranks that differ
        return False
    first = present[0]
    return all(torch.equal(tensors[(i, first)][0], tensors[(i, m)][0]) for i in range(n_layer) for m in present[1:])


def _stack_qkv(parts: dict, rows: list, shared: bool) -> tuple:
    """(A, B, r, alpha) of our attn.qkv from peft's {module: (A, B, r, alpha)}, q, k, v in order.
    Shared A: B stacks by rows. Otherwise rank sum(r): A (R, C) stacks the A's and B (rows, R) is block-diagonal,
    so row block q reads only A_q; alpha grows with the rank to keep the scale alpha / r."""
    A0, B0, r0, a0 = next(iter(parts.values()))
    if shared:
        return A0, torch.cat([parts[m][1] if m in parts else B0.new_zeros(n, r0) for m, n in zip(_QKV, rows)]), r0, a0
    R = sum(p[2] for p in parts.values())
    B, row, col = B0.new_zeros(sum(rows), R), 0, 0
    for m, n in zip(_QKV, rows):
        if m in parts:
            _, B_m, r, a = parts[m]
            B[row:row + n, col:col + r] = B_m * ((a / r) / (a0 / r0))  # 1.0 unless rank_pattern / alpha_pattern
            col += r
        row += n
    return torch.cat([p[0] for p in parts.values()]), B, R, a0 * R / r0  # a0 * 3 for three equal ranks: exact


def _install(block, target: str, A: torch.Tensor, B: torch.Tensor, r: int, alpha: float) -> None:
    """Copy A and B into the block's LoRALinear, first rebuilt at rank r if apply_lora gave it another."""
    parent_name, _, child = target.rpartition(".")
    parent = block.get_submodule(parent_name)
    layer = getattr(parent, child)
    if (layer.r, layer.alpha) != (r, alpha):  # a stacked qkv (rank 3r), or a module of rank_pattern
        layer = lora.LoRALinear(layer.base, r, alpha, layer.dropout.p)
        setattr(parent, child, layer)
    with torch.no_grad():
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)


def load_peft(model: GPT, folder) -> GPT:
    """Apply the peft LoRA adapter in ``folder`` to ``model`` (a plain course GPT of the adapter's base, e.g. from
    ``qt.load_hf``), in place; returns the model, whose A and B then train as apply_lora's do."""
    from safetensors.torch import load_file

    config_to_hf(model.cfg)  # a ValueError unless the model is Llama-shaped
    folder = Path(folder)
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} has no {name}: a peft adapter folder needs {CONFIG} and {WEIGHTS} "
                                    "(save_pretrained with safe_serialization=True, the default)")
    ranks, dropout = _read_config(json.loads((folder / CONFIG).read_text()))
    tensors = _read_tensors(load_file(str(folder / WEIGHTS)), ranks, model)
    targets = sorted({_OURS[m] for m in ranks})
    shared, rows = _shares_a(tensors, ranks, model.cfg.n_layer), [_shapes(model)[m][0] for m in _QKV]
    r, alpha = next(iter(ranks.values()))  # apply_lora's rank; _install rebuilds the layers that need another
    lora.apply_lora(model, r, alpha, targets, dropout)
    for i, block in enumerate(model.blocks):
        for target in targets:
            parts = {m: (*tensors[(i, m)], *ranks[m]) for m in _OURS if _OURS[m] == target and m in ranks}
            A, B, rank, a = _stack_qkv(parts, rows, shared) if target == "attn.qkv" else next(iter(parts.values()))
            _install(block, target, A, B, rank, a)
    return model
