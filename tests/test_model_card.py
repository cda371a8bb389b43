"""Chapter 17's model cards: written from the checkpoint's files, read back by huggingface_hub offline."""
import ast
import json
import math
import shutil
import tomllib

import pytest

torch = pytest.importorskip("torch")
import quanta_tissu as qt  # noqa: E402
from quanta_tissu import model_card as mc  # noqa: E402
from quanta_tissu import zoo  # noqa: E402
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.training import checkpoint, data, trainer  # noqa: E402

from conftest import ROOT  # noqa: E402

SHIPPED = zoo.shipped_dir("shakespeare-llama")


@pytest.fixture(scope="module")
def shipped_card():
    return mc.model_card(SHIPPED)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A real Trainer run (4 steps of a tiny model on random ids): latest checkpoint plus metrics.jsonl."""
    import numpy as np

    tmp = tmp_path_factory.mktemp("run")
    chars = checkpoint.read_config(SHIPPED)["tokenizer"]["chars"]
    ids = np.random.default_rng(0).integers(0, len(chars), size=3000)
    folder = data.prepare(ids[:2500], ids[2500:], tmp / "d", len(chars), "char")
    torch.manual_seed(0)
    model = GPT(GPTConfig.tiny(vocab_size=len(chars)))
    cfg = trainer.TrainConfig.smoke(max_steps=4, eval_every=2, warmup=1)
    tok = {"tokenizer": {"tokenizer": "char", "vocab_size": len(chars), "chars": chars}}
    run = trainer.Trainer(model, data.TokenData(folder, model.cfg.block_size), cfg, tmp / "run", "cpu", tok)
    run.fit(progress=False)
    return tmp / "run"


def test_shipped_card_loads_with_huggingface_hub(tmp_path, shipped_card):
    hf = pytest.importorskip("huggingface_hub")
    path = mc.save_model_card(SHIPPED, tmp_path)
    assert path == tmp_path / "README.md" and path.read_text() == shipped_card
    card = hf.ModelCard.load(path)  # a local file: no network
    assert mc.load_model_card(tmp_path).data.to_dict() == card.data.to_dict()
    d = card.data
    license_ = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert d.license == license_.lower() == "mit"
    assert (d.library_name, d.pipeline_tag) == ("quanta_tissu", "text-generation")
    assert d.datasets == ["karpathy/tiny_shakespeare"] and {"character-level", "llama-style"} <= set(d.tags)
    # the model-index was parsed by the Hub's own parser into EvalResults (a malformed one raises)
    val = checkpoint.read_config(SHIPPED)["validation_loss"]
    assert d.model_name == "shakespeare-llama"
    loss, bpc = d.eval_results
    assert (loss.task_type, loss.dataset_type, loss.dataset_split) == ("text-generation", "karpathy/tiny_shakespeare",
                                                                       "validation")
    assert (loss.metric_type, loss.metric_value) == ("loss", val)
    assert (bpc.metric_type, bpc.metric_value) == ("bpc", round(val / math.log(2), 4))
    assert "## Out-of-scope use and limitations" in card.text
    # ModelCard.validate() posts the card to the Hub (it needs the network): not called here. What the Hub's
    # client checks offline is parsing, above, and writing the metadata back unchanged:
    assert hf.ModelCard(str(card)).data.to_dict() == d.to_dict()


def test_numbers_in_the_card_are_the_configs(shipped_card):
    config = checkpoint.read_config(SHIPPED)
    m, t = config["model"], config["train"]
    model, _ = checkpoint.load_model(SHIPPED)
    for row in (f"| layers (blocks) | {m['n_layer']} |", f"| width (embedding size) | {m['n_embd']} |",
                f"| attention heads | {m['n_head']} (head size {m['n_embd'] // m['n_head']}) |",
                f"| key/value heads | {m['n_kv_heads']}:", f"| context (block size) | {m['block_size']} characters |",
                f"| vocabulary | {m['vocab_size']} characters |", f"| parameters | {model.num_parameters():,} |",
                *(f"| `{k}` | {', '.join(map(str, v)) if isinstance(v, list) else v} |" for k, v in t.items())):
        assert row in shipped_card, row
    val = config["validation_loss"]
    assert f"**{val:.4f} nats per character**" in shipped_card
    assert f"**{val / math.log(2):.4f}**" in shipped_card
    assert f"{qt.data.CORPORA['tinyshakespeare'].size:,} bytes" in shipped_card
    train, held_out = qt.data.train_val_split(range(qt.data.CORPORA["tinyshakespeare"].size))
    assert f"first {len(train):,} characters" in shipped_card and f"last {len(held_out):,}" in shipped_card
    assert f"A {m['block_size']}-character context" in shipped_card
    assert 'qt.pretrained("shakespeare-llama")' in shipped_card and "qt.generate(model" in shipped_card
    assert "python -m quanta_tissu serve --checkpoint shakespeare-llama\n" in shipped_card
    assert "## Training data" in shipped_card and "never ships the text" in shipped_card


def test_the_cards_python_runs(shipped_card, capsys):
    code = shipped_card.split("```python\n")[1].split("```")[0]
    assert ", 200, tok," in code
    exec(code.replace(", 200, tok,", ", 80, tok,"), {})  # the shipped weights (nothing trains); 80 > the context
    assert len(capsys.readouterr().out) == 80 + 1  # the completion (not the prompt), then print's newline


def test_run_folder_card_has_the_final_losses(run_folder):
    records = [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    text = mc.model_card(run_folder)  # the run's own metrics.jsonl, found next to `latest`
    assert f"From the run's metrics ({last['step']:,} steps)" in text
    assert f"train loss {last['train_eval']:.4f}, validation loss {last['val_eval']:.4f}" in text
    assert f"loss {last['loss']:.4f}" in text and "# run" in text
    assert "checkpoint.load_model(" in text and "qt.pretrained" not in text  # not a course checkpoint
    assert "serve --checkpoint path/to/run\n" in text
    step_folder = checkpoint.resolve(run_folder)
    assert mc.model_card(step_folder) == text  # a step folder finds its run's metrics too
    assert mc.model_card(run_folder, metrics=records) == text  # records as dicts
    assert mc.model_card(run_folder, metrics=run_folder / "metrics.jsonl") == text
    # no validation_loss in a run's config: the metadata reports the last evaluation
    value = mc.front_matter(mc.card_facts(run_folder))["model-index"][0]["results"][0]["metrics"][0]["value"]
    assert value == round(last["val_eval"], 5)


def test_extra_metadata_and_the_yaml_emitter():
    yaml = pytest.importorskip("yaml")
    meta = mc.front_matter(mc.card_facts(SHIPPED), extra={"base_model": "none", "tags": ["yes", "a b: c"]})
    parsed = yaml.safe_load("\n".join(mc.to_yaml({**meta, "empty": [], "flag": True, "x": None})))
    assert parsed["tags"] == ["yes", "a b: c"] and parsed["base_model"] == "none"  # quoted where YAML would misread
    assert parsed["empty"] == [] and parsed["flag"] is True and parsed["x"] is None
    assert parsed["model-index"] == meta["model-index"]


def test_missing_or_corrupt_checkpoint_is_a_clear_error(tmp_path, run_folder):
    with pytest.raises(checkpoint.CheckpointError, match="no complete checkpoint"):
        mc.model_card(tmp_path / "nowhere")
    broken = shutil.copytree(SHIPPED, tmp_path / "broken")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(checkpoint.CheckpointError, match="truncated"):
        mc.model_card(broken)
    garbled = shutil.copytree(SHIPPED, tmp_path / "garbled")
    size = (garbled / "config.json").stat().st_size
    (garbled / "config.json").write_text("{" * size)  # the manifest's size, not JSON
    with pytest.raises(checkpoint.CheckpointError, match="config.json cannot be read"):
        mc.model_card(garbled)
    bad = tmp_path / "metrics.jsonl"
    bad.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    with pytest.raises(mc.ModelCardError, match="line 2"):
        mc.model_card(run_folder, metrics=bad)
    with pytest.raises(mc.ModelCardError, match="no metrics file"):
        mc.model_card(run_folder, metrics=tmp_path / "absent.jsonl")


def test_load_model_card_rejects_what_the_hub_would(tmp_path):
    pytest.importorskip("huggingface_hub")
    with pytest.raises(mc.ModelCardError, match="no model card"):
        mc.load_model_card(tmp_path / "absent.md")  # never taken for a Hub repo id
    (tmp_path / "README.md").write_text("---\nlicense: mit\nmodel-index:\n- name: x\n  results:\n  - task: {}\n---\n")
    with pytest.raises(mc.ModelCardError, match="not a valid model card"):
        mc.load_model_card(tmp_path)


def test_huggingface_hub_is_imported_only_where_cards_are_read():
    tree = ast.parse((ROOT / "lib/quanta_tissu/model_card.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any("huggingface_hub" in ast.unparse(n) for n in top)
    assert "from huggingface_hub import" in ast.unparse(next(n for n in tree.body if getattr(n, "name", "") ==
                                                             "load_model_card"))
