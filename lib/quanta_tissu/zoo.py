"""The model zoo (chapter 08): named course checkpoints, trained here on first use, then cached.

Does: ``pretrained(name)`` returns ``(model, tokenizer)`` for a named recipe. The first call trains
the recipe with chapter 07's ``Trainer`` (seeded: the same machine and thread count give the same
weights) and saves it in the course's one checkpoint format under the user cache,
``<cache>/pretrained/<name>/``. Later calls only load it. The recipe's fingerprint is saved with the
weights, so a changed recipe (or corpus) trains again instead of loading stale weights.
Does not: download weights (there are none to download: every course checkpoint is trained from
the corpus on the learner's machine), or train on a GPU unless ``device`` says so.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .data import CORPORA, cache_dir
from .gpt import GPTConfig
from .tokenizer import CharTokenizer
from .training.trainer import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a course checkpoint's weights."""

    corpus: str  # a name known to qt.data (the text is tokenized by characters)
    model: GPTConfig  # architecture
    train: TrainConfig  # optimizer, schedule, steps and seed
    about: str  # one line for the learner

    def fingerprint(self) -> str:
        blob = json.dumps([CORPORA[self.corpus].sha256, self.model.to_dict(), self.train.__dict__], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


RECIPES = {
    "shakespeare-llama": Recipe(
        corpus="tinyshakespeare",
        model=GPTConfig.shakespeare_llama(),
        train=TrainConfig.shakespeare_llama(max_steps=1000, eval_every=1000),
        about="chapter 08's Llama preset, 1,000 steps on Tiny Shakespeare characters (about a minute on 2 cores)",
    ),
}


def checkpoint_dir(name: str) -> Path:
    return cache_dir() / "pretrained" / name


def pretrained(name: str = "shakespeare-llama", device: str = "cpu", progress: bool = True):
    """(model, tokenizer) for a course checkpoint; trains and caches it on the first call."""
    from .training import checkpoint

    if name not in RECIPES:
        raise KeyError(f"unknown course checkpoint {name!r}; available: {sorted(RECIPES)}")
    recipe, folder = RECIPES[name], checkpoint_dir(name)
    try:
        model, config = checkpoint.load_model(folder)
        current = config.get("recipe") == recipe.fingerprint()
    except checkpoint.CheckpointError:  # not trained yet, or a damaged cache: train (again)
        current = False
    if not current:
        if progress:
            print(f"training the course checkpoint {name!r} once ({recipe.about}) into {folder}")
        _train(name, recipe, folder, device, progress)
        model, config = checkpoint.load_model(folder)
    return model.to(device), CharTokenizer(config["tokenizer"]["chars"])


def _train(name: str, recipe: Recipe, folder: Path, device: str, progress: bool) -> None:
    """Train ``recipe`` from its seed; the Trainer's atomic save makes it ``folder``'s latest checkpoint."""
    import torch

    from .gpt import GPT
    from .training.data import TokenData, prepare_char_corpus
    from .training.trainer import Trainer

    (folder / "metrics.jsonl").unlink(missing_ok=True)  # a stale run's log, if any
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, tok = prepare_char_corpus(Path(tmp) / "data", recipe.corpus)
        torch.manual_seed(recipe.train.seed)  # the initial weights
        model = GPT(recipe.model)
        extra = {"tokenizer": {"tokenizer": "char", "vocab_size": tok.vocab_size, "chars": tok.chars},
                 "recipe": recipe.fingerprint(), "name": name}
        data = TokenData(data_dir, recipe.model.block_size)
        Trainer(model, data, recipe.train, folder, device, extra).fit(progress=progress)
