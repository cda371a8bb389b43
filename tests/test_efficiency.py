"""Chapter 12's execution switches change how the model computes, never what: SDPA, activation checkpointing,
precision in the Trainer, torch.compile."""
import copy

import pytest
import torch

from quanta_tissu.gpt import GPT, GPTConfig
from quanta_tissu.inference import generate, left_pad

CONFIGS = {
    "gpt2-mha": GPTConfig.tiny(),
    "llama-gqa": GPTConfig.tiny(**dict(norm="rmsnorm", mlp="swiglu", position="rope", bias=False, n_head=4,
                                       n_kv_heads=2)),
    "llama-window": GPTConfig.tiny(norm="rmsnorm", mlp="swiglu", position="rope", bias=False, n_head=4, n_kv_heads=1,
                                   sliding_window=5),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_sdpa_equals_manual_attention(name):
    torch.manual_seed(0)
    manual = GPT(CONFIGS[name]).eval()
    sdpa = copy.deepcopy(manual).set_attention("sdpa")
    idx = torch.randint(0, 32, (3, 16))
    targets = torch.randint(0, 32, (3, 16))
    for m in (manual, sdpa):
        m.train()
        m(idx, targets)[1].backward()
    for (n, a), b in zip(manual.named_parameters(), sdpa.parameters()):
        assert (a.grad - b.grad).abs().max() < 1e-5, n
    manual.eval(), sdpa.eval()
    assert (manual(idx)[0] - sdpa(idx)[0]).abs().max() < 1e-5
    ids, mask = left_pad([[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]])  # padding: an explicit mask goes to the kernel
    a = manual(ids, attention_mask=mask)[0]
    b = sdpa(ids, attention_mask=mask)[0]
    assert (a - b)[mask.bool()].abs().max() < 1e-5
    assert torch.equal(generate(manual, ids, 6, temperature=0, attention_mask=mask, cache=True),
                       generate(sdpa, ids, 6, temperature=0, attention_mask=mask, cache=True))


def test_set_attention_names_the_backends():
    with pytest.raises(ValueError, match="manual"):
        GPT(GPTConfig.tiny()).set_attention("flash")


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_activation_checkpointing_gives_the_same_gradients(dropout):
    torch.manual_seed(0)
    plain = GPT(GPTConfig.tiny(dropout=dropout)).train()
    ckpt = copy.deepcopy(plain)
    ckpt.checkpointing = True
    idx, targets = torch.randint(0, 32, (4, 16)), torch.randint(0, 32, (4, 16))
    losses = []
    for m in (plain, ckpt):
        torch.manual_seed(1)  # the same dropout masks: checkpointing replays the RNG when it recomputes
        loss = m(idx, targets)[1]
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == losses[1]
    for (n, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        assert (a.grad - b.grad).abs().max() < 1e-6, n


@pytest.fixture
def patterned_dir(tmp_path):
    """Token ids with structure to learn: a walk of steps 1..3 modulo 40."""
    from quanta_tissu.training import data

    rng = torch.Generator().manual_seed(0)
    ids = torch.cumsum(torch.randint(1, 4, (6000,), generator=rng), 0) % 40
    return data.prepare(ids[:5400].numpy(), ids[5400:].numpy(), tmp_path / "data", vocab_size=40, tokenizer="test")


def _run(patterned_dir, steps=200, **switches):
    from quanta_tissu.training import data, trainer

    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=40, n_embd=32))
    cfg = trainer.TrainConfig.smoke(max_steps=steps, warmup=min(10, steps), lr=3e-3, eval_every=steps, **switches)
    t = trainer.Trainer(model, data.TokenData(patterned_dir, 16), cfg)
    t.fit(progress=False)
    return t


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_sixteen_bit_training_tracks_fp32(patterned_dir, precision):
    """Over 200 steps the loss curve of a 16-bit run stays within 0.05 nats of fp32's (mean over 20-step windows)."""
    ref = _run(patterned_dir).history.loss
    low = _run(patterned_dir, precision=precision)
    loss = low.history.loss
    assert ref[-1] < ref[0] - 1.0, "the fp32 run should learn the pattern"
    windows = [abs(sum(loss[i:i + 20]) - sum(ref[i:i + 20])) / 20 for i in range(0, 200, 20)]
    assert max(windows) < 0.05, f"{precision} strays from fp32 by {max(windows):.3f} nats"
    assert all(p.dtype == torch.float32 for p in low.model.parameters()), "master weights stay fp32"


def test_execution_switches_in_the_trainer(patterned_dir):
    ref = _run(patterned_dir, steps=5).history.loss
    for switches in (dict(attention="sdpa"), dict(checkpointing=True)):
        other = _run(patterned_dir, steps=5, **switches).history.loss
        assert max(abs(a - b) for a, b in zip(ref, other)) < 1e-5, switches
    from quanta_tissu.training.trainer import TrainConfig

    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="attention must be one of"):
        TrainConfig(attention="flash")
