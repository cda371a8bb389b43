"""Generating text with a trained model (introduced in chapter 07; chapter 10 adds top-k/top-p and batching).

Does: autoregressive sampling with a temperature (0 means greedy), cropping the context to the
model's block size, from a seeded generator. Does not: cache keys and values (chapter 11).
"""
from __future__ import annotations

import torch


@torch.no_grad()
def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """idx: (B, T) prompt ids -> (B, T + max_new_tokens), sampling one token at a time."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    was_training = model.training
    model.eval()
    for _ in range(max_new_tokens):
        context = idx[:, -model.cfg.block_size:]  # the model reads at most block_size tokens
        logits = model(context)[0][:, -1, :]  # (B, V): the prediction after the last token
        if temperature == 0:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        idx = torch.cat([idx, nxt], dim=1)
    model.train(was_training)
    return idx
