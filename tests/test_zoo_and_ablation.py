"""Chapter 08's study runner and course checkpoints (on tiny recipes, so they take seconds)."""
import dataclasses
import math
import re

import pytest

torch = pytest.importorskip("torch")
import quanta_tissu as qt  # noqa: E402
from quanta_tissu import zoo  # noqa: E402
from quanta_tissu.gpt import GPTConfig  # noqa: E402
from quanta_tissu.training import ablation, data, trainer  # noqa: E402


def test_ablation_configs_switch_one_thing_each():
    base = GPTConfig.shakespeare_char()
    cfgs = {name: ablation.ablation_config(base, name) for name in ablation.ABLATIONS}
    assert len(cfgs) == 7
    assert cfgs["baseline (GPT-2)"] == base
    assert (cfgs["RMSNorm"].norm, cfgs["RMSNorm"].mlp, cfgs["RMSNorm"].position) == ("rmsnorm", "gelu", "learned")
    assert cfgs["SwiGLU"].d_ff == 344 and cfgs["baseline (GPT-2)"].d_ff == 512  # d_ff derived again per row
    llama = cfgs["all three, no bias (Llama)"]
    assert llama == GPTConfig.shakespeare_llama(n_layer=4, n_embd=128, n_kv_heads=4)  # the preset: smaller, GQA
    assert cfgs["Llama + GQA (kv heads = heads / 2)"] == GPTConfig.shakespeare_llama(n_layer=4, n_embd=128)
    with pytest.raises(KeyError, match="unknown ablation"):
        ablation.ablation_config(base, "LayerNorm")


def test_run_ablation_records_a_row_per_configuration(tmp_path, rng):
    ids = rng.integers(0, 32, size=3000)
    folder = data.prepare(ids[:2500], ids[2500:], tmp_path / "d", 32, "test")
    cfg = trainer.TrainConfig.smoke(max_steps=6, eval_every=3)
    names = ["baseline (GPT-2)", "Llama + GQA (kv heads = heads / 2)"]
    results = ablation.run_ablation(GPTConfig.tiny(), cfg, data.TokenData(folder, 16), names, progress=False)
    assert list(results) == names
    for row in results.values():
        assert row["eval_steps"] == [3, 6] and row["final_val"] == row["val_curve"][-1] and row["tokens_per_s"] > 0
    again = ablation.run_ablation(GPTConfig.tiny(), cfg, data.TokenData(folder, 16), names[:1], progress=False)
    assert again[names[0]]["val_curve"] == results[names[0]]["val_curve"]  # seeded: the same run twice
    path = ablation.save_results(tmp_path / "r.json", results, recipe=dataclasses.asdict(cfg))
    meta, loaded = ablation.load_results(path)
    assert loaded == results and meta["recipe"]["max_steps"] == 6


@pytest.fixture
def tiny_recipe(monkeypatch, tmp_path, shakespeare_ids):
    monkeypatch.setenv("QUANTA_TISSU_CACHE", str(tmp_path / "cache"))
    recipe = zoo.Recipe("tinyshakespeare", GPTConfig.shakespeare_llama(n_layer=1, n_embd=32, n_head=2, block_size=16),
                        trainer.TrainConfig.smoke(max_steps=4, eval_every=4, batch_size=2), "a test recipe")
    monkeypatch.setitem(zoo.RECIPES, "test-tiny", recipe)
    return recipe


def test_pretrained_trains_once_then_loads(tiny_recipe, monkeypatch):
    model, tok = qt.pretrained("test-tiny", progress=False)
    assert model.cfg == tiny_recipe.model and tok.vocab_size == 65 and not model.training
    calls = []
    monkeypatch.setattr(zoo, "build", lambda *a: calls.append(a))
    again, _ = qt.pretrained("test-tiny", progress=False)
    assert not calls  # loaded from the cache
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_pretrained_is_deterministic_and_retrains_on_a_new_recipe(tiny_recipe, monkeypatch):
    first, _ = qt.pretrained("test-tiny", progress=False)
    changed = dataclasses.replace(tiny_recipe, train=trainer.TrainConfig.smoke(max_steps=4, eval_every=4, batch_size=2, seed=7))
    monkeypatch.setitem(zoo.RECIPES, "test-tiny", changed)
    other, _ = qt.pretrained("test-tiny", progress=False)
    assert not torch.equal(first.wte.weight, other.wte.weight)
    monkeypatch.setitem(zoo.RECIPES, "test-tiny", tiny_recipe)
    back, _ = qt.pretrained("test-tiny", progress=False)  # retrained from the seed: the same weights as the first time
    assert torch.equal(first.wte.weight, back.wte.weight)


def test_a_bpe_recipe_ships_its_tokenizer_and_scores_per_byte(tiny_recipe, monkeypatch):
    from quanta_tissu.bpe import BASE_SPECIALS

    bpe = dataclasses.replace(tiny_recipe, model=dataclasses.replace(tiny_recipe.model, vocab_size=300), bpe_vocab=300)
    assert bpe.fingerprint() != tiny_recipe.fingerprint()
    monkeypatch.setitem(zoo.RECIPES, "test-bpe", bpe)
    model, tok = qt.pretrained("test-bpe", progress=False)
    assert isinstance(tok, qt.bpe.RegexBPE) and tok.vocab_size == 300
    assert list(tok.special_tokens) == list(BASE_SPECIALS) and tok.special_tokens["<|assistant|>"] == 299
    assert (zoo.checkpoint_dir("test-bpe") / "tokenizer.qt.json").is_file()  # the tokenizer lives with the weights
    text = qt.data.train_val_split(qt.data.load_text("tinyshakespeare"))[1][:5000]
    nats = zoo.windows_loss(model, tok.encode(text))
    T, ids = model.cfg.block_size, tok.encode(text)
    n_bytes = len(tok.decode_bytes(ids[1:(len(ids) - 1) // T * T + 1]))
    assert zoo.bits_per_byte(model, tok, text) == pytest.approx(nats * ((len(ids) - 1) // T * T) / n_bytes / math.log(2))
    chars, ctok = qt.pretrained("test-tiny", progress=False)  # characters: one byte per token here
    assert zoo.bits_per_byte(chars, ctok, text) == pytest.approx(zoo.windows_loss(chars, ctok.encode(text)) / math.log(2))
    by_position = zoo.position_losses(model, ids)  # chapter 18's loss by context: the same windows, split by position
    assert by_position.shape == (T,) and by_position.mean() == pytest.approx(nats, rel=1e-5)
    assert ctok.decode_bytes(ctok.encode("First")) == b"First"  # every course tokenizer spells its bytes


def test_pretrained_unknown_name():
    with pytest.raises(KeyError, match=re.escape(f"available: {sorted(zoo.RECIPES)}")):
        qt.pretrained("gpt-5")
    from quanta_tissu.__main__ import main

    assert main(["zoo", "build", "gpt-5"]) == 2  # the command line names it too, no traceback


@pytest.mark.parametrize("name", sorted(zoo.RECIPES))
def test_every_recipe_ships_its_current_weights(name):
    """A changed recipe must be rebuilt (python -m quanta_tissu zoo build NAME) and shipped again."""
    config = qt.training.checkpoint.read_config(zoo.shipped_dir(name))  # checks the manifest's sizes too
    assert config["recipe"] == zoo.RECIPES[name].fingerprint(), f"rebuild: python -m quanta_tissu zoo build {name}"
    assert not (zoo.shipped_dir(name) / "state.pt").exists()  # weights only


def test_pretrained_loads_the_shipped_weights_without_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("QUANTA_TISSU_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(zoo, "build", lambda *a, **k: pytest.fail("the shipped checkpoint should load, not train"))
    model, tok = qt.pretrained("shakespeare-llama", progress=False)
    assert model.cfg == zoo.RECIPES["shakespeare-llama"].model and tok.vocab_size == 65
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name", sorted(zoo.RECIPES))
def test_retraining_a_course_checkpoint_reproduces_its_validation_loss(tmp_path, shakespeare_ids, name):
    """The slow check behind shipping weights: the recipe, run here, lands within RETRAIN_TOLERANCE nats per byte
    (about a minute for a character recipe, about ten for shakespeare-bpe)."""
    from quanta_tissu.training import checkpoint

    shipped = checkpoint.read_config(zoo.shipped_dir(name))["validation_loss"]
    model, config = checkpoint.load_model(zoo.shipped_dir(name))
    tok = zoo.checkpoint_tokenizer(zoo.shipped_dir(name), config)
    assert abs(zoo.validation_loss(model, tokenizer=tok) - shipped) < 1e-4  # the measure itself reproduces
    folder = zoo.build(name, tmp_path / "retrained", progress=False)
    retrained = checkpoint.read_config(folder)["validation_loss"]
    assert abs(retrained - shipped) < zoo.retrain_tolerance(name), (retrained, shipped)
