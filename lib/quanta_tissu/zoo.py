"""The model zoo (chapter 08): named course checkpoints, shipped with the lib, reproducible from a recipe.

Does:
- ``pretrained(name)`` returns ``(model, tokenizer)`` for a named recipe. The weights of every recipe in
  ``RECIPES`` ship with the lib, in ``quanta_tissu/checkpoints/<name>/`` (the course's checkpoint format,
  weights only: about 1.2 MB for ``shakespeare-llama``), so loading one reads no cache and trains nothing.
- ``build(name, folder)`` trains a recipe from its seed with chapter 07's ``Trainer`` and writes the shipped
  form (``python -m quanta_tissu zoo build NAME`` refreshes the lib's copy). The recipe's fingerprint and
  the model's ``validation_loss`` are saved next to the weights.
- A recipe without shipped weights (a learner's own, a test's) trains on first use into the user cache,
  ``<cache>/pretrained/<name>/``, and loads from there afterwards; a changed recipe trains again.

Why the weights ship instead of being trained on each machine: training is deterministic on one machine,
but not across machines. Another CPU's kernels or another thread count round differently in the seventh
digit, and a thousand steps turn that into other weights (about 0.01 nats of validation loss apart), so every
figure and sample that a chapter prints from the checkpoint would differ from the stored book. Shipped
weights make those outputs the same everywhere. What stays checkable is the recipe: the test suite retrains
it and asserts that the validation loss lands within ``RETRAIN_TOLERANCE`` of the shipped one, and that the
shipped fingerprint is the current recipe's (a changed recipe must be rebuilt and shipped again).

Does not: download weights (there are none to download), or train on a GPU unless ``device`` says so.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .data import CORPORA, cache_dir
from .gpt import GPTConfig
from .tokenizer import CharTokenizer
from .training.trainer import EXECUTION, TrainConfig

SHIPPED = Path(__file__).parent / "checkpoints"  # the course checkpoints committed with the lib
RETRAIN_TOLERANCE = 0.03  # nats: how far a retrained recipe's validation loss may land from the shipped one


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a course checkpoint's weights."""

    corpus: str  # a name known to qt.data (the text is tokenized by characters)
    model: GPTConfig  # architecture
    train: TrainConfig  # optimizer, schedule, steps and seed
    about: str  # one line for the learner

    def fingerprint(self) -> str:
        # chapter 12's execution switches, left at their defaults, leave a recipe (and its fingerprint) as it was
        train = {k: v for k, v in self.train.__dict__.items() if not (k in EXECUTION and v == EXECUTION[k])}
        blob = json.dumps([CORPORA[self.corpus].sha256, self.model.to_dict(), train], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


RECIPES = {
    "shakespeare-llama": Recipe(
        corpus="tinyshakespeare",
        model=GPTConfig.shakespeare_llama(),
        train=TrainConfig.shakespeare_llama(max_steps=1000, eval_every=1000),
        about="chapter 08's Llama preset, 1,000 steps on Tiny Shakespeare characters (about a minute on 2 cores)",
    ),
    "shakespeare-llama-wide": Recipe(
        corpus="tinyshakespeare",
        model=GPTConfig.shakespeare_llama(n_embd=128, d_ff=384),
        train=TrainConfig.shakespeare_llama(max_steps=1000, eval_every=1000),
        about="the same recipe at width 128 (MLP 384): rows that groups of 32, 64 and 128 divide, for chapter 14",
    ),
    "shakespeare-llama-draft": Recipe(
        corpus="tinyshakespeare",
        model=GPTConfig.shakespeare_llama(n_layer=1),
        train=TrainConfig.shakespeare_llama(max_steps=1000, eval_every=1000),
        about="the same recipe with one layer: chapter 11's draft model for speculative decoding (about 20 s)",
    ),
}


def shipped_dir(name: str) -> Path:
    return SHIPPED / name


def checkpoint_dir(name: str) -> Path:
    """Where a recipe without shipped weights is trained and cached."""
    return cache_dir() / "pretrained" / name


class UnknownCheckpoint(KeyError, ValueError):
    """A name that is not in ``RECIPES``."""

    def __str__(self):
        return self.args[0]


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise UnknownCheckpoint(f"unknown course checkpoint {name!r}; available: {sorted(RECIPES)}")
    return RECIPES[name]


def _load_current(folder: Path, recipe: Recipe):
    """(model, config) from ``folder`` if it holds this recipe's weights, else None."""
    from .training import checkpoint

    try:
        model, config = checkpoint.load_model(folder)
    except checkpoint.CheckpointError:  # absent, or a damaged cache: train (again)
        return None
    return (model, config) if config.get("recipe") == recipe.fingerprint() else None


def pretrained(name: str = "shakespeare-llama", device: str = "cpu", progress: bool = True):
    """(model, tokenizer) for a course checkpoint: the shipped weights, else the cache, else train once."""
    recipe = _recipe(name)
    loaded = _load_current(shipped_dir(name), recipe) or _load_current(checkpoint_dir(name), recipe)
    if loaded is None:
        if progress:
            print(f"training the course checkpoint {name!r} once ({recipe.about}) into {checkpoint_dir(name)}")
        build(name, checkpoint_dir(name), device, progress)
        loaded = _load_current(checkpoint_dir(name), recipe)
    model, config = loaded
    return model.to(device), CharTokenizer(config["tokenizer"]["chars"])


def validation_loss(model, corpus: str = "tinyshakespeare") -> float:
    """Mean next-character loss over every whole window of the corpus's validation split (deterministic)."""
    import torch

    from .data import load_text, train_val_split

    text = load_text(corpus)
    tok = CharTokenizer.from_text(text)
    return windows_loss(model, tok.encode(train_val_split(text)[1]))


def windows_loss(model, ids) -> float:
    """Mean next-token loss over every whole window of ``ids`` (consecutive, no overlap): a deterministic
    evaluation of any text, e.g. a held-out play (chapter 15)."""
    import torch

    ids = torch.as_tensor(ids)
    T = model.cfg.block_size
    n = (len(ids) - 1) // T
    if n < 1:
        raise ValueError(f"{len(ids)} tokens do not fill one window of {T} + 1: evaluate a longer text")
    x, y = ids[:n * T].view(n, T), ids[1:n * T + 1].view(n, T)  # (n, T): consecutive windows, no overlap
    was_training = model.training
    model.eval()
    with torch.no_grad():
        losses = [model(x[i:i + 64], y[i:i + 64])[1].item() * len(x[i:i + 64]) for i in range(0, n, 64)]
    model.train(was_training)
    return sum(losses) / n


def build(name: str, folder, device: str = "cpu", progress: bool = True) -> Path:
    """Train recipe ``name`` from its seed and write its weights-only checkpoint to ``folder`` (atomically)."""
    from .training import checkpoint
    from .training.data import TokenData, prepare_char_corpus
    from .training.trainer import Trainer

    recipe, folder = _recipe(name), Path(folder)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, tok = prepare_char_corpus(Path(tmp) / "data", recipe.corpus)
        trainer = Trainer.build(recipe.model, TokenData(data_dir, recipe.model.block_size), recipe.train, None, device)
        trainer.fit(progress=progress)
        model = trainer.model.cpu()
        config = {"model": recipe.model.to_dict(), "train": asdict(recipe.train), "name": name,
                  "recipe": recipe.fingerprint(),
                  "tokenizer": {"tokenizer": "char", "vocab_size": tok.vocab_size, "chars": tok.chars},
                  "validation_loss": round(validation_loss(model, recipe.corpus), 5)}
    folder.parent.mkdir(parents=True, exist_ok=True)
    staged, old = folder.with_name(f".{folder.name}.tmp"), folder.with_name(f".{folder.name}.old")
    shutil.rmtree(staged, ignore_errors=True)
    checkpoint.save_weights(staged, model, config)  # complete before it takes the name
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(staged, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder
