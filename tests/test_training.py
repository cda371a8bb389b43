"""Chapter 07's pipeline: AdamW against torch, the schedule, data, atomic checkpoints, exact resume."""
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.training import checkpoint, data, optim, trainer  # noqa: E402


@pytest.fixture
def token_dir(tmp_path, rng):
    ids = rng.integers(0, 40, size=5000)
    return data.prepare(ids[:4500], ids[4500:], tmp_path / "data", vocab_size=40, tokenizer="test")


def make_trainer(token_dir, out=None, dropout=0.1, **train):
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=40, dropout=dropout))
    cfg = trainer.TrainConfig.smoke(**{"max_steps": 12, "eval_every": 4, **train})
    return trainer.Trainer(model, data.TokenData(token_dir, 16), cfg, out)


def test_adamw_matches_torch_step_for_step():
    torch.manual_seed(0)
    a = torch.nn.Linear(5, 4)
    b = torch.nn.Linear(5, 4)
    b.load_state_dict(a.state_dict())
    ours = optim.AdamW(a.parameters(), lr=0.01, betas=(0.8, 0.95), eps=1e-7, weight_decay=0.1)
    ref = torch.optim.AdamW(b.parameters(), lr=0.01, betas=(0.8, 0.95), eps=1e-7, weight_decay=0.1)
    for _ in range(6):
        x = torch.randn(3, 5)
        for model, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.allclose(p, q, atol=1e-7)


def test_cosine_schedule():
    lrs = [optim.cosine_lr(s, 1.0, 0.1, 10, 100) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[100] == lrs[119] == 0.1 and all(np.diff(lrs[10:101]) <= 1e-12)


def test_wsd_schedule():
    lrs = [optim.wsd_lr(s, 1.0, 0.1, 10, 100, cooldown=0.4) for s in range(120)]
    assert lrs[:10] == [optim.cosine_lr(s, 1.0, 0.1, 10, 100) for s in range(10)]  # the same warmup
    assert lrs[10:60] == [1.0] * 50 and lrs[60] == 1.0  # flat until the last 40 steps
    assert lrs[80] == pytest.approx(1.0 - 0.9 * 20 / 40)  # halfway down the straight line
    assert lrs[100] == lrs[119] == 0.1 and all(np.diff(lrs[10:101]) <= 1e-12)
    assert optim.wsd_lr(10, 1.0, 0.1, 10, 100, cooldown=1.0) == 1.0  # the cooldown never starts inside warmup


@pytest.mark.parametrize("warmup, total, cooldown, floor", [(10, 100, 0.4, 0.1), (20, 2200, 0.4, 0.1), (5, 37, 0.25, 0.0)])
def test_wsd_matches_transformers_after_warmup(warmup, total, cooldown, floor):
    """transformers' get_wsd_schedule with linear decay; its warmup starts at 0 and ours at lr / warmup (nanoGPT's)."""
    transformers = pytest.importorskip("transformers")
    decay_start = total - round(cooldown * total)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = transformers.get_wsd_schedule(opt, num_warmup_steps=warmup, num_stable_steps=decay_start - warmup,
                                        num_decay_steps=total - decay_start, decay_type="linear", min_lr_ratio=floor)
    theirs = [ref.lr_lambda(s) if hasattr(ref, "lr_lambda") else ref.lr_lambdas[0](s) for s in range(total + 5)]
    ours = [optim.wsd_lr(s, 1.0, floor, warmup, total, cooldown) for s in range(total + 5)]
    assert ours[warmup:] == pytest.approx(theirs[warmup:], abs=1e-12)


def test_trainer_follows_the_configured_schedule(token_dir):
    wsd = make_trainer(token_dir, schedule="wsd", cooldown=0.5, max_steps=12, warmup=2)
    assert [wsd.lr_at(s) for s in range(12)] == [optim.wsd_lr(s, wsd.cfg.lr, wsd.cfg.min_lr, 2, 12, 0.5) for s in range(12)]
    wsd.fit(progress=False)
    assert wsd.history.lr == [wsd.lr_at(s) for s in range(12)]
    cos = make_trainer(token_dir, max_steps=12, warmup=2)
    assert cos.cfg.schedule == "cosine" and cos.lr_at(7) == optim.cosine_lr(7, cos.cfg.lr, cos.cfg.min_lr, 2, 12)
    with pytest.raises(ValueError, match="schedule must be one of"):
        trainer.TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="cooldown is a fraction"):
        trainer.TrainConfig(schedule="wsd", cooldown=40)


def test_clip_grad_norm_matches_torch():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(6, 6), torch.nn.Linear(6, 6)
    b.load_state_dict(a.state_dict())
    for m in (a, b):
        (m(torch.ones(2, 6)) * 10).sum().backward()
    n1 = optim.clip_grad_norm(list(a.parameters()), 0.5)
    n2 = torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)
    assert n1 == pytest.approx(n2.item())
    assert all(torch.allclose(p.grad, q.grad, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))


def test_token_data_batches_and_errors(token_dir, tmp_path):
    d = data.TokenData(token_dir, 16)
    x, y = d.get_batch("train", 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64 and torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(ValueError, match="not more than the context"):
        data.TokenData(token_dir, 600)
    with pytest.raises(FileNotFoundError, match="no prepared data"):
        data.TokenData(tmp_path / "nowhere", 16)
    empty = data.prepare(np.arange(100), np.array([], dtype=int), tmp_path / "empty", 100, "test")
    with pytest.raises(ValueError, match="val split .* is empty"):
        data.TokenData(empty, 16)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resume_is_exact(token_dir, tmp_path, precision):
    uninterrupted = make_trainer(token_dir, precision=precision)
    uninterrupted.fit(progress=False)
    first = make_trainer(token_dir, tmp_path / "run", precision=precision)
    first.fit(6, progress=False)  # saves at its last step
    resumed = trainer.Trainer.resume(tmp_path / "run", data.TokenData(token_dir, 16))
    assert resumed.step == 6 and resumed.cfg.precision == precision
    assert resumed.scaler.state_dict() == first.scaler.state_dict()  # fp16: the loss scale carries on
    resumed.fit(progress=False)
    assert resumed.history.loss == uninterrupted.history.loss  # bit for bit, dropout included
    assert resumed.history.val_eval == uninterrupted.history.val_eval
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 13))


def test_grad_accumulation_equals_a_big_batch(token_dir):
    big = make_trainer(token_dir, dropout=0.0, batch_size=8, grad_accum=1, max_steps=2, warmup=1)
    small = make_trainer(token_dir, dropout=0.0, batch_size=4, grad_accum=2, max_steps=2, warmup=1)
    big.generator.manual_seed(5)
    small.generator.manual_seed(5)
    big.train_step()
    small.train_step()
    for p, q in zip(big.model.parameters(), small.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_crash_during_save_keeps_the_previous_checkpoint(token_dir, tmp_path, monkeypatch):
    run = make_trainer(token_dir, tmp_path / "run")
    run.fit(4, progress=False)
    before = checkpoint.resolve(tmp_path / "run")

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="simulated"):
        run.fit(2, progress=False)
    assert checkpoint.resolve(tmp_path / "run") == before  # still complete, still current
    monkeypatch.undo()
    assert trainer.Trainer.resume(tmp_path / "run", data.TokenData(token_dir, 16)).step == 4


def test_truncated_and_mismatched_checkpoints_get_clear_errors(token_dir, tmp_path):
    run = make_trainer(token_dir, tmp_path / "run")
    run.fit(2, progress=False)
    folder = checkpoint.resolve(tmp_path / "run")
    with pytest.raises(checkpoint.CheckpointError, match="does not fit this model"):
        checkpoint.load_weights(GPT(GPTConfig.tiny(vocab_size=40, n_embd=32)), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(checkpoint.CheckpointError, match="truncated"):
        checkpoint.load_weights(GPT(GPTConfig.tiny(vocab_size=40)), folder)
    with pytest.raises(checkpoint.CheckpointError, match="no complete checkpoint"):
        checkpoint.resolve(tmp_path / "nothing")


def test_config_errors(token_dir):
    with pytest.raises(ValueError, match="warmup"):
        trainer.TrainConfig(max_steps=5, warmup=10)
    with pytest.raises(ValueError, match="block_size"):
        trainer.Trainer(GPT(GPTConfig.tiny(vocab_size=40, block_size=8)), data.TokenData(token_dir, 16),
                        trainer.TrainConfig.smoke())
    with pytest.raises(ValueError, match="vocab_size"):
        trainer.Trainer(GPT(GPTConfig.tiny(vocab_size=10)), data.TokenData(token_dir, 16), trainer.TrainConfig.smoke())


def test_cli_prepare_train_resume_generate(tmp_path, capsys):
    import quanta_tissu as qt
    from quanta_tissu.__main__ import main

    try:
        qt.data.corpus_path("tinyshakespeare", download=False)
    except qt.data.CorpusError as err:
        pytest.skip(str(err))
    data_dir, run_dir = str(tmp_path / "data"), str(tmp_path / "run")
    assert main(["prepare", "--out", data_dir]) == 0
    assert main(["train", "--data", data_dir, "--out", run_dir, "--preset", "tiny", "--max-steps", "4"]) == 0
    assert main(["train", "--data", data_dir, "--out", run_dir, "--resume", "--max-steps", "6"]) == 0
    assert "step 6:" in capsys.readouterr().out
    assert main(["generate", "--checkpoint", run_dir, "--prompt", "KING:", "--tokens", "10"]) == 0
    assert capsys.readouterr().out.startswith("KING:")
    knobs = ["--top-k", "5", "--top-p", "0.9", "--min-p", "0.05", "--repetition-penalty", "1.2", "--seed", "3"]
    assert main(["generate", "--checkpoint", run_dir, "--prompt", "KING:", "--tokens", "10", "--stream", *knobs]) == 0
    streamed = capsys.readouterr().out
    assert main(["generate", "--checkpoint", run_dir, "--prompt", "KING:", "--tokens", "10", *knobs]) == 0
    assert capsys.readouterr().out == streamed  # the same seed: the stream prints the same text
    assert main(["generate", "--checkpoint", run_dir, "--prompt", "KING:", "--tokens", "10", "--top-p", "0"]) == 2
    assert "top_p must be in (0, 1]" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "none"), "--out", run_dir]) == 2
    assert "no prepared data" in capsys.readouterr().err


def make_lora_model(dropout=0.1):
    """A tiny model with fixed base weights and LoRA on every attention projection (chapter 15)."""
    from quanta_tissu import lora

    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=40, dropout=dropout))
    return lora.apply_lora(model, r=2, alpha=4.0, dropout=0.1)


def test_seams_adapter_only_checkpoint_resumes_exactly(token_dir, tmp_path):
    """Chapter 15's seams: only trainable parameters reach the optimizer and the checkpoint, and such a run
    resumes bit for bit from its base plus the adapter checkpoint."""
    cfg = trainer.TrainConfig.smoke(max_steps=12, eval_every=4)
    whole = trainer.Trainer(make_lora_model(), data.TokenData(token_dir, 16), cfg, trainable_only=True)
    base_before = {n: p.clone() for n, p in whole.model.named_parameters() if not p.requires_grad}
    whole.fit(progress=False)
    assert all(torch.equal(p, base_before[n]) for n, p in whole.model.named_parameters() if not p.requires_grad)
    assert sum(len(g["params"]) for g in whole.optimizer.param_groups) == 4 * 2  # A and B of 2 layers x 2 targets
    first = trainer.Trainer(make_lora_model(), data.TokenData(token_dir, 16), cfg, tmp_path / "run",
                            trainable_only=True)
    first.fit(6, progress=False)
    from safetensors import safe_open

    with safe_open(str(checkpoint.resolve(tmp_path / "run") / "model.safetensors"), "pt") as f:
        assert all(".lora_" in k for k in f.keys()) and len(list(f.keys())) == 8
    with pytest.raises(checkpoint.CheckpointError, match="pass model="):
        trainer.Trainer.resume(tmp_path / "run", data.TokenData(token_dir, 16))
    resumed = trainer.Trainer.resume(tmp_path / "run", data.TokenData(token_dir, 16), model=make_lora_model())
    resumed.fit(progress=False)
    assert resumed.history.loss == whole.history.loss


def test_seams_custom_loss_fn(token_dir):
    """loss_fn(model, batch) replaces next-token loss everywhere: training steps and evaluation."""
    calls = []

    def double_loss(model, batch):
        calls.append(batch[0].shape)
        return 2 * trainer.next_token_loss(model, batch)

    plain, doubled = make_trainer(token_dir, dropout=0.0, max_steps=2), make_trainer(token_dir, dropout=0.0, max_steps=2)
    doubled.loss_fn = double_loss
    assert math.isclose(doubled.train_step(), 2 * plain.train_step(), rel_tol=1e-6)
    assert math.isclose(doubled.evaluate()["val"], 2 * plain.evaluate()["val"], rel_tol=1e-6)
    assert len(calls) == 1 + 2 * doubled.cfg.eval_iters
    frozen = GPT(GPTConfig.tiny(vocab_size=40)).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        trainer.Trainer(frozen, data.TokenData(token_dir, 16), trainer.TrainConfig.smoke())
