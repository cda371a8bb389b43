"""Chapter 15's LoRA: initialization, what trains, merging, QLoRA, and peft's adapters both ways (hf_peft)."""
import json
import math

import pytest

torch = pytest.importorskip("torch")

from quanta_tissu import lora  # noqa: E402
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.interop import hf_llama, hf_peft  # noqa: E402
from quanta_tissu.quantize import QuantizedLinear, quantize_model  # noqa: E402

V, T = 53, 12
LLAMA_TARGETS = tuple(t for t in lora.TARGETS if t != "mlp.fc")  # the projections of a Llama block
PEFT_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny(seed=0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = GPTConfig.llama(**{**dict(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=32, d_ff=64,
                                    n_kv_heads=2), **kw})
    return GPT(cfg).eval()


def ids(seed=1):
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(seed))


def logits(model, idx):
    with torch.no_grad():
        return model(idx)[0]


def randomize(model, seed=2, std=0.1):
    """Nonzero A and B, so the update changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=g) * std)
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * std)
    return model


def test_init_starts_at_the_base_and_only_a_and_b_train():
    model, idx = tiny(), ids()
    before = logits(model, idx)
    lora.apply_lora(model, r=4, alpha=8, targets=LLAMA_TARGETS)
    assert torch.equal(logits(model, idx), before)  # B = 0: exactly the base
    layers = lora.lora_layers(model)
    assert len(layers) == 2 * len(LLAMA_TARGETS)
    for layer in layers.values():
        bound = 1 / math.sqrt(layer.in_features)  # Kaiming uniform with a = sqrt(5)
        assert torch.equal(layer.lora_B, torch.zeros_like(layer.lora_B))
        assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.8 * bound
        assert layer.scale == 2.0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{name}.{ab}" for name in layers for ab in ("lora_A", "lora_B")}
    assert lora.trainable_parameters(model) == sum(4 * (m.in_features + m.out_features) for m in layers.values())
    _, loss = model(idx, targets=ids(3))
    loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    assert all(layer.lora_B.grad.abs().sum() > 0 for layer in layers.values())
    assert all(torch.equal(layer.lora_A.grad, torch.zeros_like(layer.lora_A)) for layer in layers.values())  # B = 0


def test_merge_and_unmerge_are_exact():
    model, idx = tiny(), ids()
    base_weights = {k: v.clone() for k, v in model.state_dict().items()}
    base = logits(model, idx)
    randomize(lora.apply_lora(model, r=4, alpha=8, targets=LLAMA_TARGETS))
    adapted = logits(model, idx)
    assert (adapted - base).abs().max() > 1e-2  # the update matters
    lora.merge(model)
    assert all(layer.merged for layer in lora.lora_layers(model).values())
    assert (logits(model, idx) - adapted).abs().max() < 1e-6
    lora.unmerge(model)
    for name, layer in lora.lora_layers(model).items():
        assert (layer.base.weight - base_weights[f"{name}.weight"]).abs().max() < 1e-6
    assert (logits(model, idx) - adapted).abs().max() < 1e-6


def test_base_model_is_the_base_without_adapters():
    model, idx = tiny(), ids()
    base = logits(model, idx)
    randomize(lora.apply_lora(model, r=2, alpha=4))
    lora.merge(model)
    plain = lora.base_model(model)
    assert not lora.lora_layers(plain) and lora.lora_layers(model)  # the original keeps its (merged) adapters
    assert isinstance(plain.blocks[0].attn.qkv, torch.nn.Linear)
    assert (logits(plain, idx) - base).abs().max() < 1e-6
    assert plain.lm_head.weight is plain.wte.weight  # still tied


def test_merge_refuses_a_quantized_base_but_merged_weight_works():
    model = quantize_model(tiny(), "nf4", group_size=16)
    randomize(lora.apply_lora(model, r=4, alpha=8))
    layer = model.blocks[0].attn.qkv
    assert isinstance(layer.base, QuantizedLinear)
    with pytest.raises(ValueError, match="quantized"):
        lora.merge(model)
    expected = layer.base.dequantized() + 2.0 * layer.lora_B @ layer.lora_A
    assert (lora.merged_weight(layer) - expected).abs().max() < 1e-6


def test_qlora_trains_only_a_and_b_and_leaves_the_nf4_weights():
    model = lora.apply_lora(quantize_model(tiny(), "nf4", group_size=16), r=4, alpha=8, targets=LLAMA_TARGETS)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    randomize(model)
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    _, loss = model(ids(), targets=ids(3))
    loss.backward()
    for name, p in model.named_parameters():
        has_grad = p.grad is not None and p.grad.abs().sum() > 0
        assert has_grad == (name.endswith("lora_A") or name.endswith("lora_B")), name
    opt.step()
    assert buffers and all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())


def test_adapter_state_round_trip_and_errors():
    model = randomize(lora.apply_lora(tiny(), r=4, alpha=8))
    state = lora.adapter_state(model)
    assert set(state) == {f"blocks.{i}.attn.{p}.lora_{ab}" for i in (0, 1) for p in ("qkv", "proj") for ab in "AB"}
    fresh = lora.load_adapter(lora.apply_lora(tiny(seed=0), r=4, alpha=8), state)
    assert all(torch.equal(v, lora.adapter_state(fresh)[k]) for k, v in state.items())
    assert torch.equal(logits(fresh, ids()), logits(model, ids()))
    with pytest.raises(ValueError, match="another rank"):
        lora.load_adapter(lora.apply_lora(tiny(), r=2, alpha=8), state)
    with pytest.raises(ValueError, match=r"allowed: \['attn.proj', 'attn.qkv', 'mlp.gate', 'mlp.proj', 'mlp.up'\]"):
        lora.apply_lora(tiny(), targets=("attn.qkv", "mlp.fc"))
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        lora.apply_lora(model)


def peft_models(base_folder, adapter_folder):
    """transformers' Llama from ``base_folder`` with peft's adapter from ``adapter_folder``."""
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    hf = transformers.LlamaForCausalLM.from_pretrained(base_folder).eval()
    return peft.PeftModel.from_pretrained(hf, adapter_folder).eval()


@pytest.mark.parametrize("targets,tie", [(LLAMA_TARGETS, False), (lora.ATTENTION, True), (("mlp.up",), False)])
def test_our_adapter_runs_in_peft(tmp_path, targets, tie):
    model, idx = tiny(tie_weights=tie), ids()
    randomize(lora.apply_lora(model, r=4, alpha=8, targets=targets))
    hf_llama.save_hf(lora.base_model(model), tmp_path / "base")
    hf_peft.save_peft(model, tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    expected = sorted(m for m in PEFT_MODULES if hf_peft._OURS[m] in targets)
    assert (config["target_modules"], config["r"], config["lora_alpha"]) == (expected, 4, 8)
    theirs = peft_models(tmp_path / "base", tmp_path / "adapter")
    ours = logits(model, idx)
    with torch.no_grad():
        assert (ours - logits(lora.base_model(model), idx)).abs().max() > 1e-2  # the adapter matters
        assert (theirs(idx).logits - ours).abs().max() < 1e-5
        merged = theirs.merge_and_unload()
        lora.merge(model)
        assert (merged(idx).logits - logits(model, idx)).abs().max() < 1e-5
    # and back: ours -> peft's files -> ours is the same adapter, bit for bit
    back = hf_peft.load_peft(hf_llama.load_hf(tmp_path / "base"), tmp_path / "adapter")
    mine, returned = lora.adapter_state(model), lora.adapter_state(back)
    assert set(returned) == set(mine) and all(torch.equal(v, mine[k]) for k, v in returned.items())
    assert all((layer.r, layer.alpha) == (4, 8) for layer in lora.lora_layers(back).values())


@pytest.mark.parametrize("modules", [PEFT_MODULES, ["q_proj", "v_proj"]])
def test_a_peft_adapter_loads_into_ours(tmp_path, modules):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    base, idx = tiny(seed=5, tie_weights=False), ids()
    hf_llama.save_hf(base, tmp_path / "base")
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "base").eval()
    torch.manual_seed(6)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=modules, lora_dropout=0.0, init_lora_weights=False,
                             task_type="CAUSAL_LM")
    theirs = peft.get_peft_model(hf, config).eval()
    theirs.save_pretrained(tmp_path / "adapter")
    ours = hf_peft.load_peft(hf_llama.load_hf(tmp_path / "base"), tmp_path / "adapter")
    qkv = ours.blocks[0].attn.qkv
    n_qkv = sum(m in modules for m in hf_peft._QKV)
    assert (qkv.r, qkv.alpha, qkv.scale) == (4 * n_qkv, 8 * n_qkv, 2.0)  # three A's stacked: rank 3r, same scale
    with torch.no_grad():
        expected = theirs(idx).logits
        assert (expected - logits(base, idx)).abs().max() > 1e-2
        assert (logits(ours, idx) - expected).abs().max() < 1e-5
    # peft -> ours -> peft's files again: the stacked qkv goes out at rank 3r (rank_pattern), still the same model
    hf_peft.save_peft(ours, tmp_path / "again")
    written = json.loads((tmp_path / "again" / "adapter_config.json").read_text())
    assert written["target_modules"] == sorted(set(modules) | set(hf_peft._QKV))
    assert written["rank_pattern"] == ({m: 12 for m in hf_peft._QKV} if len(modules) == 7 else {})
    again = peft_models(tmp_path / "base", tmp_path / "again")
    with torch.no_grad():
        assert (again(idx).logits - expected).abs().max() < 1e-5
    back = lora.adapter_state(hf_peft.load_peft(hf_llama.load_hf(tmp_path / "base"), tmp_path / "again"))
    assert all(torch.equal(v, lora.adapter_state(ours)[k]) for k, v in back.items())


def edited(tmp_path, **fields):
    """An adapter folder written by save_peft, then with ``fields`` changed in its config."""
    folder = tmp_path / "edited"
    hf_peft.save_peft(randomize(lora.apply_lora(tiny(), r=4, alpha=8)), folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, **fields}))
    return folder


@pytest.mark.parametrize("fields,message", [
    (dict(use_rslora=True), "use_rslora = True is not supported.*allowed: false, null or empty"),
    (dict(use_dora=True), "use_dora = True is not supported.*DoRA"),
    (dict(bias="all"), r"bias = 'all' is not supported; allowed: \['none'\]"),
    (dict(peft_type="IA3"), r"peft_type = 'IA3' is not supported; allowed: \['LORA'\]"),
    (dict(target_modules=["q_proj", "embed_tokens"]), "target_modules.*cannot be mapped.*allowed"),
    (dict(target_modules=".*proj"), "target_modules.*cannot be mapped"),
    (dict(r=8), r"wrong shape.*expected \(8, 32\)"),
    (dict(rank_pattern={"layers.0.self_attn.q_proj": 2}), "rank_pattern keys"),
])
def test_load_peft_refuses_what_it_cannot_represent(tmp_path, fields, message):
    with pytest.raises(ValueError, match=message):
        hf_peft.load_peft(tiny(), edited(tmp_path, **fields))


def test_load_peft_and_save_peft_check_their_models(tmp_path):
    folder = edited(tmp_path)
    with pytest.raises(ValueError, match="does not fit this model.*missing.*layers.2"):
        hf_peft.load_peft(tiny(n_layer=3), folder)
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        hf_peft.load_peft(lora.apply_lora(tiny()), folder)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        hf_peft.save_peft(tiny(), tmp_path / "none")
    with pytest.raises(ValueError, match="only the Llama configuration"):
        hf_peft.save_peft(lora.apply_lora(GPT(GPTConfig.tiny())), tmp_path / "gpt2")
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        hf_peft.load_peft(tiny(), tmp_path / "nowhere")
