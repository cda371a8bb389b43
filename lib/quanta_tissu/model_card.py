"""Model cards (chapter 17): the README.md that goes out with a checkpoint, written from the checkpoint itself.

A model card is the page a reader sees before using a model (Mitchell et al. 2019): what it is, what it was
trained on and how, how well it does, what it is for and what it must not be used for. On the Hugging Face Hub it
is the repository's README.md: YAML front matter (license, library, task, datasets, and a ``model-index`` that
holds the evaluation results) followed by Markdown.

Does:
- ``model_card(checkpoint)`` returns that README text for a course checkpoint folder (``qt.zoo.shipped_dir(name)``)
  or a training run folder (its ``latest`` checkpoint). Every number comes from the files: the architecture and
  the recipe from ``config.json``, the parameter count from the model that config builds, the validation loss from
  ``config.json`` (the zoo's) and, given a run's ``metrics.jsonl``, the final losses and the number of steps; the
  corpus facts come from ``qt.data``. A card written by hand goes stale the day the recipe changes; this one is
  written again.
- ``save_model_card(checkpoint, folder)`` writes it as ``folder/README.md``.
- ``load_model_card(path)`` reads a card back with ``huggingface_hub.ModelCard`` (offline: a local file) and
  checks that the Hub's own parser accepts its metadata, ``model-index`` included.

Does not: upload anything, or call ``ModelCard.validate()``, which posts the card to the Hub's servers (it needs
the network). huggingface_hub is imported only inside ``load_model_card``: writing a card needs nothing beyond
the course's own dependencies, so the YAML is written here by a small emitter rather than by a YAML library.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from . import zoo
from .data import CORPORA, TEMPEST_OPENING, train_val_split
from .training import checkpoint as ckpt

# pyproject.toml declares the course's license ("MIT"); the Hub names licenses by lowercase ids.
LICENSE = "mit"
LIBRARY = "quanta_tissu"  # the Hub lets a card name any library; this one is what loads the weights
PIPELINE_TAG = "text-generation"
DEFAULT_CORPUS = "tinyshakespeare"  # every course run trains on it (`prepare --corpus` defaults to it)
# qt.data's corpus names -> (the dataset's id on the Hub, a readable name, what the text is)
CORPUS_CARDS = {
    "tinyshakespeare": ("karpathy/tiny_shakespeare", "Tiny Shakespeare",
                        "excerpts of Shakespeare's plays in one plain-text file, each speech a speaker's name "
                        "followed by their lines, put together by Andrej Karpathy for char-rnn"),
}
# TrainConfig's fields, in one line each: the recipe table's last column
TRAIN_FIELDS = {
    "max_steps": "optimizer steps", "batch_size": "sequences per micro-batch",
    "grad_accum": "micro-batches per optimizer step", "lr": "peak learning rate", "min_lr": "final learning rate",
    "warmup": "steps of linear warmup", "schedule": "learning-rate shape after warmup",
    "cooldown": "wsd: fraction of the steps spent decaying", "weight_decay": "AdamW decay (matrices only)",
    "betas": "AdamW moment decay rates", "grad_clip": "max global gradient norm (0: none)",
    "eval_every": "steps between evaluations", "eval_iters": "batches per evaluation and split",
    "ckpt_every": "steps between checkpoints (0: at the end)", "seed": "model init, data order, dropout",
    "precision": "arithmetic of the steps", "attention": "attention kernel",
    "checkpointing": "activation checkpointing", "compile": "torch.compile", "strategy": "data parallelism",
}


class ModelCardError(ValueError):
    """A metrics file or a card that cannot be read; the message says which line or field."""


# -- reading the run ------------------------------------------------------------------------------------------------
def read_checkpoint(path) -> tuple[Path, dict]:
    """(the checkpoint folder, its config): a missing, truncated or unreadable checkpoint is a CheckpointError."""
    folder = ckpt.resolve(path)  # checks the manifest: a truncated file is named here
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ckpt.CheckpointError(f"{folder / 'config.json'} cannot be read ({exc}): "
                                   "the checkpoint is corrupt") from None
    missing = [key for key in ("model", "train") if not isinstance(config, dict) or key not in config]
    if missing:
        raise ckpt.CheckpointError(f"{folder / 'config.json'} lacks {missing}: not a course checkpoint's config")
    return folder, config


def read_metrics(metrics) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` (a path), or a list of dicts as they are."""
    if not isinstance(metrics, (str, Path)):
        records = list(metrics)
    else:
        path = Path(metrics)
        if not path.is_file():
            raise ModelCardError(f"no metrics file at {path}: give a run's metrics.jsonl or a list of dicts")
        records = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ModelCardError(f"{path}, line {number}, is not JSON ({exc}): the file is corrupt") from None
    if not records or not all(isinstance(r, dict) and "step" in r for r in records):
        raise ModelCardError("metrics must be records with a 'step' each (what the Trainer writes), got "
                             f"{records[:1] or 'none'}")
    return records


def summarize_metrics(records: list[dict]) -> dict:
    """The number of steps, the last training-batch loss and the last evaluation (train and validation)."""
    # a resumed run appends, and may log again steps logged after its last checkpoint: the last record of the
    # largest step is the end (max keeps the first of equals, so read the records backwards)
    last = max(reversed(records), key=lambda r: r["step"])
    evals = [r for r in reversed(records) if r.get("val_eval") is not None]
    summary = {"steps": last["step"], "loss": last.get("loss")}
    if evals:
        final = max(evals, key=lambda r: r["step"])
        summary.update(eval_step=final["step"], train_eval=final.get("train_eval"), val_eval=final["val_eval"])
    return summary


def _metrics_next_to(path, folder: Path) -> Path | None:
    """The run's metrics.jsonl: in the folder given, or in the run folder above a step-NNNNNNNN folder."""
    for candidate in (Path(path), folder.parent if folder.name.startswith("step-") else None):
        if candidate is not None and (candidate / "metrics.jsonl").is_file():
            return candidate / "metrics.jsonl"
    return None


def _parameters(model_config: dict) -> int:
    """Parameters of the model the config describes, counted on the meta device: shapes only, nothing allocated."""
    import torch

    from .gpt import GPT, GPTConfig

    with torch.device("meta"):
        return GPT(GPTConfig(**model_config)).num_parameters()


def _model_name(folder: Path, config: dict) -> str:
    if config.get("name"):
        return config["name"]
    return (folder.parent if folder.name.startswith("step-") else folder).name


# -- the facts a card states ----------------------------------------------------------------------------------------
def card_facts(checkpoint, metrics=None) -> dict:
    """Everything the card says, from the files: config, corpus, parameter count and (optionally) metrics."""
    folder, config = read_checkpoint(checkpoint)
    name = _model_name(folder, config)
    recipe = zoo.RECIPES.get(name)
    if recipe is not None and config.get("recipe") != recipe.fingerprint():
        recipe = None  # the name of a course checkpoint, but other weights: say nothing about the recipe's origin
    if metrics is None:
        metrics = _metrics_next_to(checkpoint, folder)
    corpus = recipe.corpus if recipe else config.get("corpus", DEFAULT_CORPUS)
    tokenizer = config.get("tokenizer") or {}  # a run saved without one (a notebook's Trainer) counts tokens
    char_level = tokenizer.get("tokenizer") == "char"
    size = CORPORA[corpus].size
    train_part, val_part = train_val_split(range(size))  # the course's split, on positions: no text needed
    return {
        "name": name, "folder": folder, "config": config, "model": config["model"], "train": config["train"],
        "recipe": recipe, "corpus": corpus, "corpus_size": size, "char_level": char_level,
        "tokenizer": tokenizer.get("tokenizer"), "unit": "character" if char_level else "token",
        "ascii": char_level and all(ord(c) < 128 for c in tokenizer.get("chars", [])),
        "train_chars": len(train_part), "val_chars": len(val_part),
        "parameters": _parameters(config["model"]),
        "weights_bytes": json.loads((folder / "manifest.json").read_text()).get("model.safetensors"),
        "validation_loss": config.get("validation_loss"),
        "metrics": summarize_metrics(read_metrics(metrics)) if metrics is not None else None,
    }


def _headline_loss(facts: dict) -> tuple[float | None, str]:
    """The validation loss the metadata reports, and how it was measured."""
    if facts["validation_loss"] is not None:
        return facts["validation_loss"], "every whole window of the validation split"
    if facts["metrics"] and facts["metrics"].get("val_eval") is not None:
        return facts["metrics"]["val_eval"], "the run's last evaluation, on sampled validation batches"
    return None, ""


# -- YAML front matter ----------------------------------------------------------------------------------------------
def front_matter(facts: dict, extra: dict | None = None) -> dict:
    """The card's metadata: what the Hub indexes (license, library, task, tags, datasets, model-index)."""
    m = facts["model"]
    hub_id, pretty, _ = CORPUS_CARDS.get(facts["corpus"], (facts["corpus"], facts["corpus"], ""))
    llama = (m.get("norm"), m.get("mlp"), m.get("position")) == ("rmsnorm", "swiglu", "rope")
    tokens = {"char": "character-level", "bpe": "bpe"}.get(facts["tokenizer"])
    tags = ["pytorch", "safetensors", "education", tokens,
            "llama-style" if llama else "gpt2-style", "shakespeare" if facts["corpus"] == "tinyshakespeare" else None]
    meta = {"license": LICENSE, "library_name": LIBRARY, "pipeline_tag": PIPELINE_TAG, "language": ["en"],
            "tags": [t for t in tags if t], "datasets": [hub_id]}
    loss, _ = _headline_loss(facts)
    if loss is not None:
        unit = facts["unit"]
        metrics = [{"type": "loss", "value": round(loss, 5), "name": f"Validation loss (nats per {unit})"}]
        if facts["char_level"]:
            metrics.append({"type": "bpc", "value": round(loss / math.log(2), 4), "name": "Bits per character"})
        meta["model-index"] = [{"name": facts["name"], "results": [{
            "task": {"type": PIPELINE_TAG, "name": "Text generation"},
            "dataset": {"type": hub_id, "name": f"{pretty} (the course's validation split)", "split": "validation"},
            "metrics": metrics}]}]
    return {**meta, **(extra or {})}


_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _scalar(value) -> str:
    """One YAML scalar. Strings that could read as something else are double-quoted: JSON's escapes are YAML's."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    return text if _PLAIN.match(text) and text.lower() not in _YAML_WORDS else json.dumps(text)


def to_yaml(data: dict, indent: str = "") -> list[str]:
    """Block-style YAML lines for nested dicts, lists and scalars (all a card's metadata needs)."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines += [f"{indent}{key}:", *to_yaml(value, indent + "  ")]
        elif isinstance(value, (list, tuple)) and value:
            lines.append(f"{indent}{key}:")
            for item in value:
                if isinstance(item, dict):  # "- first: ..." then the item's other keys under it
                    first, *rest = to_yaml(item, indent + "  ")
                    lines += [f"{indent}- {first.lstrip()}", *rest]
                else:
                    lines.append(f"{indent}- {_scalar(item)}")
        else:
            lines.append(f"{indent}{key}: {'[]' if isinstance(value, (list, tuple)) else _scalar(value)}")
    return lines


# -- Markdown sections ----------------------------------------------------------------------------------------------
def _description(f: dict) -> str:
    m = f["model"]
    heads, kv = m["n_head"], m.get("n_kv_heads") or m["n_head"]
    sharing = ("multi-head attention: one key/value head per query head" if kv == heads else
               "multi-query attention: all query heads share one key/value head" if kv == 1 else
               f"grouped-query attention: every {heads // kv} query heads share one key/value head")
    positions = f"rope (theta {m['rope_theta']:g})" if m.get("position") == "rope" else m.get("position")
    rows = [("layers (blocks)", m["n_layer"]), ("width (embedding size)", m["n_embd"]),
            ("attention heads", f"{heads} (head size {m['n_embd'] // heads})"), ("key/value heads", f"{kv}: {sharing}"),
            ("context (block size)", f"{m['block_size']} {f['unit']}s"),
            ("vocabulary", f"{m['vocab_size']} {f['unit']}s"), ("feed-forward width", m.get("d_ff")),
            ("normalization", m.get("norm")), ("feed-forward", m.get("mlp")),
            ("positions", positions),
            ("biases", m.get("bias")), ("input and output embeddings tied", m.get("tie_weights")),
            ("sliding window", m.get("sliding_window") or "none: every position sees the whole context"),
            ("parameters", f"{f['parameters']:,}")]
    size = f" The weights file holds {f['weights_bytes']:,} bytes." if f["weights_bytes"] else ""
    origin = (f"the course checkpoint `{f['name']}`: {f['recipe'].about}" if f["recipe"] else
              f"a model trained with the course's `Trainer` (run `{f['name']}`)")
    return "\n".join([
        f"# {f['name']}", "",
        f"A {f['parameters']:,}-parameter decoder-only transformer that writes Shakespeare-like text one "
        f"{f['unit']} at a time, built in the open course QuantaTissu. This is {origin}.", "",
        "## Model description", "",
        f"The course's `GPT` (`quanta_tissu.gpt`) with the configuration below, read from `config.json`.{size}", "",
        "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""])


def _training_data(f: dict) -> str:
    hub_id, pretty, about = CORPUS_CARDS.get(f["corpus"], (f["corpus"], f["corpus"], "a text corpus"))
    corpus = CORPORA[f["corpus"]]
    size = f"{f['corpus_size']:,} bytes" + (", all ASCII, so as many characters" if f["ascii"] else "")
    val_share = f["val_chars"] / f["corpus_size"]
    tempest = (f" It holds the whole of The Tempest, the file's last play (it opens with "
               f"`{' '.join(TEMPEST_OPENING.split())}`)."
               if f["corpus"] == "tinyshakespeare" else "")
    vocab = f" Its {f['model']['vocab_size']} distinct characters are the vocabulary." if f["char_level"] else ""
    return "\n".join([
        "## Training data", "",
        f"[{pretty}]({corpus.url}) (`{hub_id}` on the Hub): {about}. {size}.{vocab}", "",
        f"Split: `qt.data.train_val_split`, contiguous, not shuffled: the first {f['train_chars']:,} characters "
        f"({1 - val_share:.0%}) train, the last {f['val_chars']:,} ({val_share:.0%}) validate, so validation "
        f"text is text the model never read.{tempest} This is the course's split, not the Hub dataset's.", "",
        f"The course never ships the text: `qt.load_text(\"{f['corpus']}\")` downloads it from its public source "
        f"into the user cache and checks its sha256 (`{corpus.sha256[:16]}…`) before use.", ""])


def _schedule(t: dict) -> str:
    if t.get("schedule") == "wsd":
        decay = round(t["cooldown"] * t["max_steps"])
        return (f"warmup-stable-decay: {t['warmup']} steps of linear warmup to {t['lr']:g}, flat, then a straight "
                f"line down to {t['min_lr']:g} over the last {decay:,} steps")
    return f"{t['warmup']} steps of linear warmup to {t['lr']:g}, then a cosine decay to {t['min_lr']:g}"


def _recipe(f: dict) -> str:
    t, block = f["train"], f["model"]["block_size"]
    per_step = t["batch_size"] * t.get("grad_accum", 1) * block
    seen = per_step * t["max_steps"]
    rows = [f"| `{k}` | {', '.join(map(str, v)) if isinstance(v, list) else v} | {TRAIN_FIELDS.get(k, '')} |"
            for k, v in t.items()]
    lines = ["## Training recipe", "",
             f"AdamW with {_schedule(t)}; next-{f['unit']} cross-entropy. Each step reads {t['batch_size']} x "
             f"{t.get('grad_accum', 1)} sequences of {block} {f['unit']}s ({per_step:,} {f['unit']}s); "
             f"{t['max_steps']:,} steps read {seen:,}"
             + (f", {seen / f['train_chars']:.2f} passes over the training split." if f["char_level"] else "."),
             "", "`TrainConfig` as saved in `config.json`:", "",
             "| field | value | meaning |", "|---|---|---|", *rows, ""]
    if f["recipe"]:
        lines += [f"Reproduce: `python -m quanta_tissu zoo build {f['name']} --out DIR` (recipe fingerprint "
                  f"`{f['config']['recipe']}`). Training is deterministic on one machine, not across machines: a "
                  f"rebuild elsewhere lands within {_tolerance(f['name']):.3f} nats per {f['unit']} of the shipped "
                  "validation loss.", ""]
    return "\n".join(lines)


def _tolerance(name: str) -> float:
    """The zoo's retraining tolerance in the checkpoint's own unit (nats per character or per token)."""
    return zoo.retrain_tolerance(name) if name in zoo.RECIPES else zoo.RETRAIN_TOLERANCE


def _evaluation(f: dict) -> str:
    unit, lines = f["unit"], ["## Evaluation", ""]
    loss, how = _headline_loss(f)
    if loss is None:
        lines += ["No validation loss was recorded with this checkpoint.", ""]
    else:
        windows = (f["val_chars"] - 1) // f["model"]["block_size"]
        where = (f" ({windows:,} windows of {f['model']['block_size']}, `qt.zoo.validation_loss`: deterministic)"
                 if f["validation_loss"] is not None and f["char_level"] else "")
        lines += [f"Validation loss: **{loss:.4f} nats per {unit}**, measured on {how}{where}."]
        if f["char_level"]:
            lines += [f"In bits per character (nats / ln 2): **{loss / math.log(2):.4f}**; a perplexity of "
                      f"{math.exp(loss):.2f}, as unsure as a fair choice among that many characters."]
        lines += [f"For scale: a model that knew nothing, uniform over the {f['model']['vocab_size']} {unit}s, "
                  f"scores ln {f['model']['vocab_size']} = {math.log(f['model']['vocab_size']):.4f} nats.", ""]
    s = f["metrics"]
    if s:
        lines += [f"From the run's metrics ({s['steps']:,} steps):", ""]
        if s.get("val_eval") is not None:
            t = f["train"]
            lines += [f"- final evaluation, step {s['eval_step']:,}: train loss {s['train_eval']:.4f}, validation "
                      f"loss {s['val_eval']:.4f} nats per {unit} (means of {t.get('eval_iters')} sampled batches "
                      f"of {t.get('batch_size')} windows per split)"]
        if s.get("loss") is not None:
            lines += [f"- last training batch, step {s['steps']:,}: loss {s['loss']:.4f}"]
        lines += [""]
    return "\n".join(lines)


def _uses(f: dict) -> str:
    m, unit = f["model"], f["unit"]
    return "\n".join([
        "## Intended use", "",
        "Teaching: reading, running, probing and changing a language model small enough to train on a laptop "
        "(the QuantaTissu course). It is a toy generator of Shakespeare-style text: sampling, decoding, caching, "
        "quantization, fine-tuning and serving are shown on it.", "",
        "## Out-of-scope use and limitations", "",
        f"- Tiny: {f['parameters']:,} parameters. It imitates the look of a play (speaker names, line breaks, "
        "archaic words) and generates nonsense: no facts, no reasoning, no instructions followed.",
        f"- A {m['block_size']}-{unit} context: it forgets everything further back than that.",
        f"- {unit.capitalize()}-level with {m['vocab_size']} {unit}s: it cannot read or write any other symbol"
        + (f" ({_missing_symbols(f)})." if f["char_level"] else "."),
        "- Early Modern English only, from one author's plays; modern English is out of distribution.",
        "- No safety tuning of any kind, no filtering of its outputs.",
        "- The biases of its source text: the social order, gender roles and prejudices of Elizabethan and "
        "Jacobean plays, which it reproduces without comment.",
        "- Not for any decision about people, nor any use where the text's truth or harm matters.", ""])


def _missing_symbols(f: dict) -> str:
    """What a character vocabulary lacks, said from its characters (a learner's prompt fails on these first)."""
    chars = (f["config"].get("tokenizer") or {}).get("chars", [])
    digits = [c for c in chars if c.isdigit()]
    said = f"digits: {', '.join(repr(d) for d in digits)} only" if digits else "no digits"
    return said + ("; nothing outside ASCII" if f["ascii"] else "")


def _how_to(f: dict) -> str:
    name = f["name"]
    if f["recipe"]:
        load = [f'model, tok = qt.pretrained("{name}")  # the weights ship with the library']
        where = name  # `serve` takes a course checkpoint's name
    else:
        load = ["from quanta_tissu.training import checkpoint", "",
                f'model, config = checkpoint.load_model("path/to/{name}")  # a run folder or a step folder',
                'tok = qt.CharTokenizer(config["tokenizer"]["chars"])' if f["char_level"] else
                'tok = qt.bpe.course_tokenizer(config["tokenizer"]["vocab_size"])']
        where = f"path/to/{name}"
    lines = ["## How to use", "",
             "```python", "import quanta_tissu as qt", "", *load,
             f"# cache=False: each step re-reads the last {f['model']['block_size']} {f['unit']}s, so the text "
             "may run past the context",
             'print(qt.generate(model, "ROMEO:\\n", 200, tok, temperature=0.8, seed=0, cache=False))', "```", ""]
    if not f["char_level"]:  # the server reads characters: say so rather than print a command that fails
        return "\n".join(lines + ["The course's server (chapter 17) serves character-level checkpoints only.", ""])
    return "\n".join(lines + [
        "Behind an OpenAI-compatible HTTP server (chapter 17):", "",
        "```bash", f"python -m quanta_tissu serve --checkpoint {where}", "```", "",
        f"It prints its address; OpenAI's clients talk to it under `/v1` (`/v1/completions`, "
        f'`/v1/chat/completions`) with `model="{name}"`.', ""])


# -- the card -------------------------------------------------------------------------------------------------------
def model_card(checkpoint, metrics=None, extra: dict | None = None) -> str:
    """README.md text of a Hugging Face model card for a checkpoint folder or a run folder.

    ``metrics``: a run's ``metrics.jsonl`` (a path) or its records (dicts); by default the run folder's own
    ``metrics.jsonl`` when there is one. ``extra``: metadata fields added to (or replacing) the front matter's."""
    facts = card_facts(checkpoint, metrics)
    sections = [_description(facts), _training_data(facts), _recipe(facts), _evaluation(facts), _uses(facts),
                _how_to(facts)]
    return "\n".join(["---", *to_yaml(front_matter(facts, extra)), "---", "", *sections]).rstrip() + "\n"


def save_model_card(checkpoint, folder, **kw) -> Path:
    """Write ``model_card(checkpoint, **kw)`` to ``folder/README.md``; the card is built before the file is opened,
    so an error leaves no half-written README."""
    text = model_card(checkpoint, **kw)
    path = Path(folder) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_model_card(path):
    """The card at ``path`` (a README.md, or a folder holding one) as a ``huggingface_hub.ModelCard``, parsed offline.

    The Hub's parser must accept the metadata as it is (``model-index`` included: a malformed one is an error,
    not a warning). This is what can be checked without the network; ``ModelCard.validate()`` posts the card to
    the Hub and is not called."""
    from huggingface_hub import ModelCard

    path = Path(path)
    path = path / "README.md" if path.is_dir() else path
    if not path.is_file():  # a str that is not a file would be taken for a Hub repo id and downloaded
        raise ModelCardError(f"no model card at {path}")
    try:
        card = ModelCard.load(path)
    except Exception as exc:  # noqa: BLE001 - yaml and huggingface_hub raise several kinds; the message matters
        raise ModelCardError(f"{path} is not a valid model card: {exc}") from None
    missing = [key for key in ("license", "library_name", "pipeline_tag", "datasets") if not card.data.get(key)]
    if missing:
        raise ModelCardError(f"{path}: the metadata lacks {missing}")
    return card
