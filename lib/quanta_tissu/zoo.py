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
# How far a retrained recipe's validation loss may land from the shipped one, in nats per byte of the validation
# text (a character recipe: nats per token; a BPE recipe's token spells several bytes, so its loss per token may
# move by this times its bytes per token).
RETRAIN_TOLERANCE = 0.03


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a course checkpoint's weights."""

    corpus: str  # a name known to qt.data
    model: GPTConfig  # architecture
    train: TrainConfig  # optimizer, schedule, steps and seed
    about: str  # one line for the learner
    bpe_vocab: int = 0  # 0: one token per character; else chapter 18's qt.bpe.base_tokenizer(bpe_vocab)

    def fingerprint(self) -> str:
        # chapter 12's execution switches, left at their defaults, leave a recipe (and its fingerprint) as it was
        train = {k: v for k, v in self.train.__dict__.items() if not (k in EXECUTION and v == EXECUTION[k])}
        parts = [CORPORA[self.corpus].sha256, self.model.to_dict(), train]
        blob = json.dumps(parts + ([{"bpe_vocab": self.bpe_vocab}] if self.bpe_vocab else []), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def tokenizer(self):
        """The recipe's tokenizer, built from the corpus (deterministic): characters, or chapter 18's BPE."""
        from .bpe import base_tokenizer
        from .data import load_text

        return base_tokenizer(self.bpe_vocab) if self.bpe_vocab else CharTokenizer.from_text(load_text(self.corpus))


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
    "shakespeare-bpe": Recipe(
        corpus="tinyshakespeare",
        model=GPTConfig.shakespeare_llama(vocab_size=2048, block_size=256),
        train=TrainConfig.shakespeare_llama(max_steps=1500, batch_size=16, eval_every=250),
        about="chapter 18's base model: chapter 08's Llama on BPE tokens (2,048, five reserved), a context of 256 "
              "tokens, 1,500 steps of 16 windows (about 10 minutes on 2 cores)",
        bpe_vocab=2048,
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
    recipe, folder = _recipe(name), shipped_dir(name)
    loaded = _load_current(folder, recipe)
    if loaded is None:
        folder = checkpoint_dir(name)
        loaded = _load_current(folder, recipe)
    if loaded is None:
        if progress:
            print(f"training the course checkpoint {name!r} once ({recipe.about}) into {folder}")
        build(name, folder, device, progress)
        loaded = _load_current(folder, recipe)
    model, config = loaded
    return model.to(device), checkpoint_tokenizer(folder, config)


def checkpoint_tokenizer(folder: Path, config: dict):
    """The tokenizer a checkpoint was trained with: its characters (config.json) or its BPE file."""
    from .bpe import FILENAME, BasicBPE

    kind = config.get("tokenizer", {}).get("tokenizer")
    if kind == "bpe":
        return BasicBPE.load(Path(folder) / FILENAME)
    if kind == "char":
        return CharTokenizer(config["tokenizer"]["chars"])
    raise ValueError(f"{folder}: a course checkpoint's tokenizer is 'char' or 'bpe', got {kind!r}")


def validation_loss(model, corpus: str = "tinyshakespeare", tokenizer=None) -> float:
    """Mean next-token loss over every whole window of the corpus's validation split (deterministic).

    ``tokenizer``: the model's (chapter 18's BPE); None means characters, one token per character."""
    from .data import load_text, train_val_split

    text = load_text(corpus)
    tok = tokenizer or CharTokenizer.from_text(text)
    return windows_loss(model, tok.encode(train_val_split(text)[1]))


def bits_per_byte(model, tokenizer, text: str) -> float:
    """``windows_loss`` on ``text`` in bits per byte of the predicted text: the unit in which a character model
    and a BPE model compare (chapter 18). A window's loss sums over its tokens; divide by the bytes they spell."""
    import math

    ids = tokenizer.encode(text)
    predicted = _windows(model, ids)[1].flatten().tolist()  # the targets of the whole windows windows_loss scores
    return windows_loss(model, ids) * len(predicted) / len(tokenizer.decode_bytes(predicted)) / math.log(2)


def retrain_tolerance(name: str) -> float:
    """``RETRAIN_TOLERANCE`` in recipe ``name``'s own unit, nats per token: times its validation bytes per token."""
    from .data import load_text, train_val_split

    recipe = _recipe(name)
    if not recipe.bpe_vocab:
        return RETRAIN_TOLERANCE
    val = train_val_split(load_text(recipe.corpus))[1]
    return RETRAIN_TOLERANCE * len(val.encode("utf-8")) / len(recipe.tokenizer().encode_ordinary(val))


def windows_loss(model, ids) -> float:
    """Mean next-token loss over every whole window of ``ids`` (consecutive, no overlap): a deterministic
    evaluation of any text, e.g. a held-out play (chapter 15)."""
    import torch

    x, y = _windows(model, ids)  # (n, T) each
    was_training = model.training
    model.eval()
    with torch.no_grad():
        losses = [model(x[i:i + 64], y[i:i + 64])[1].item() * len(x[i:i + 64]) for i in range(0, len(x), 64)]
    model.train(was_training)
    return sum(losses) / len(x)


def position_losses(model, ids):
    """``windows_loss`` split by position: the mean loss at each of the T positions of a window, a (T,) array
    whose mean is ``windows_loss``. Position t has read t + 1 tokens (chapter 18: what a longer context buys)."""
    import torch

    x, y = _windows(model, ids)  # (n, T) each
    total = torch.zeros(x.shape[1])
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(x), 16):
            logits = model(x[i:i + 16])[0]  # (b, T, V)
            total += torch.nn.functional.cross_entropy(logits.transpose(1, 2), y[i:i + 16], reduction="none").sum(0)
    model.train(was_training)
    return (total / len(x)).numpy()


def _windows(model, ids):
    """Inputs and targets of every whole window of the model's context in ``ids``: (n, T) each, consecutive,
    no overlap."""
    import torch

    ids = torch.as_tensor(ids)
    T = model.cfg.block_size
    n = (len(ids) - 1) // T
    if n < 1:
        raise ValueError(f"{len(ids)} tokens do not fill one window of {T} + 1: evaluate a longer text")
    return ids[:n * T].view(n, T), ids[1:n * T + 1].view(n, T)  # (n, T): targets are the inputs shifted by one


def build(name: str, folder, device: str = "cpu", progress: bool = True) -> Path:
    """Train recipe ``name`` from its seed and write its weights-only checkpoint to ``folder`` (atomically)."""
    model, tok, _ = train_recipe(name, device, progress)
    return write_checkpoint(name, folder, model, tok)


def train_recipe(name: str, device: str = "cpu", progress: bool = True):
    """(model on the CPU, tokenizer, chapter 07's History) for recipe ``name``, trained from its seed.
    ``benchmarks/bench_zoo_recipe.py`` calls it to record the run whose weights it ships."""
    from .training.data import TokenData, prepare_corpus
    from .training.trainer import Trainer

    recipe = _recipe(name)
    tok = recipe.tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = prepare_corpus(Path(tmp) / "data", tok, recipe.corpus)
        trainer = Trainer.build(recipe.model, TokenData(data_dir, recipe.model.block_size), recipe.train, None, device)
        history = trainer.fit(progress=progress)
    return trainer.model.cpu().eval(), tok, history


def write_checkpoint(name: str, folder, model, tok) -> Path:
    """Recipe ``name``'s trained ``model`` and its tokenizer as the shipped form, in ``folder`` (atomically): the
    weights, config.json (model, training, fingerprint, tokenizer, validation loss) and a BPE tokenizer's file."""
    from .bpe import FILENAME
    from .training import checkpoint

    recipe, folder = _recipe(name), Path(folder)
    chars = isinstance(tok, CharTokenizer)
    described = {"tokenizer": "char", "chars": tok.chars} if chars else {"tokenizer": "bpe", "file": FILENAME}
    with tempfile.TemporaryDirectory() as tmp:
        files = {} if chars else {FILENAME: tok.save(Path(tmp) / FILENAME).read_text(encoding="utf-8")}
    config = {"model": recipe.model.to_dict(), "train": asdict(recipe.train), "name": name,
              "recipe": recipe.fingerprint(), "tokenizer": {**described, "vocab_size": tok.vocab_size},
              "validation_loss": round(validation_loss(model, recipe.corpus, tok), 5)}
    folder.parent.mkdir(parents=True, exist_ok=True)
    staged, old = folder.with_name(f".{folder.name}.tmp"), folder.with_name(f".{folder.name}.old")
    shutil.rmtree(staged, ignore_errors=True)
    checkpoint.save_weights(staged, model, config, files)  # complete before it takes the name
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(staged, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder
