"""Batches and the training loop for the NumPy models (chapters 02–03).

A training example is (the ``context`` ids before position t, the id at t).
Does: draw random batches, evaluate the mean loss over a whole split in chunks, and
run a loop with a progress bar that records train and validation losses.
Does not: schedule learning rates or save checkpoints (chapter 07 does, in torch).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .functional import cross_entropy


def get_batch(ids: np.ndarray, context: int, batch_size: int, rng: np.random.Generator):
    """Random examples: x (B, T) ids, y (B,) next ids, with T = context."""
    if len(ids) <= context:
        raise ValueError(f"need more than {context} ids to make an example, got {len(ids)}")
    starts = rng.integers(0, len(ids) - context, size=batch_size)  # (B,)
    x = ids[starts[:, None] + np.arange(context)]  # (B, 1) + (T,) -> (B, T) positions
    return x, ids[starts + context]


def all_examples(ids: np.ndarray, context: int):
    """Every example of a split, in order: x (N, T), y (N,) with N = len(ids) - context."""
    windows = np.lib.stride_tricks.sliding_window_view(ids, context + 1)  # (N, T+1), no copy
    return windows[:, :context], windows[:, context]


def evaluate(model, ids: np.ndarray, chunk: int = 8192) -> float:
    """Mean cross-entropy over every example of ``ids``, in evaluation mode."""
    x, y = all_examples(ids, model.context)
    was_training = model.layers[0].training
    model.eval()
    total = 0.0
    for i in range(0, len(y), chunk):
        total += cross_entropy(model.forward(x[i:i + chunk]), y[i:i + chunk]) * len(y[i:i + chunk])
    model.train(was_training)
    return total / len(y)


@dataclass
class History:
    """Losses recorded during ``fit``: every step's train loss, and evaluations every few steps."""

    train: list = field(default_factory=list)  # one batch loss per step
    eval_steps: list = field(default_factory=list)
    val: list = field(default_factory=list)  # full-split validation loss at eval_steps


def fit(model, optimizer, train_ids, val_ids, steps: int, batch_size: int, rng: np.random.Generator,
        eval_every: int = 0, desc: str = "training") -> History:
    """Run ``steps`` optimizer steps on random batches; evaluate on ``val_ids`` every ``eval_every``."""
    history = History()
    bar = tqdm(range(1, steps + 1), desc=desc, mininterval=0.5)
    for step in bar:
        x, y = get_batch(train_ids, model.context, batch_size, rng)
        history.train.append(model.loss_and_backward(x, y))
        optimizer.step()
        if eval_every and (step % eval_every == 0 or step == steps):
            history.eval_steps.append(step)
            history.val.append(evaluate(model, val_ids))
            bar.set_postfix(train=f"{history.train[-1]:.3f}", val=f"{history.val[-1]:.3f}")
    return history
