"""Preference data (chapter 16): pairs "this completion is better than that one", sampled from a model and judged
by a program, and the batches and measurements that DPO training needs.

Does:
- ``avoid_letter``: a judge, a function text -> score (higher is better); here, fewer of one letter (a lipogram).
- ``sample_pairs``: for each prompt, sample ``k`` completions with chapter 10's sampler and pair the best against
  the worst by the judge, dropping ties.
- ``PreferencePairs``: the pairs as token ids, split into train and held-out ("val"), with ``get_batch`` so that the
  one Trainer reads them like ``TokenData`` (chapter 07).
- ``completion_kl``: the mean per-token KL(πθ ‖ πref) over completion positions, exact over the vocabulary.
Does not: compute the DPO loss (``qt.dpo``), or call people or reward models: the judge is a program, so the
property it prefers can be measured on fresh samples.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .dpo import preference_batch


def avoid_letter(letter: str = "e"):
    """A judge: minus the number of times ``letter`` occurs, either case (a completion without it scores 0)."""
    if not (isinstance(letter, str) and len(letter) == 1 and letter.isalpha()):
        raise ValueError(f"letter must be one alphabetic character, got {letter!r}")
    letters = {letter.lower(), letter.upper()}

    def judge(text: str) -> float:
        return -sum(ch in letters for ch in text)

    return judge


def sample_pairs(model, tokenizer, prompts: list[str], judge, k: int = 4, max_new_tokens: int = 48,
                 seed: int = 0, temperature: float = 1.0) -> list[tuple[str, str, str]]:
    """[(prompt, chosen, rejected)]: ``k`` samples per prompt, the judge's best against its worst; ties dropped."""
    from .inference import complete

    if k < 2:
        raise ValueError(f"k must be >= 2 samples per prompt to form a pair, got {k}")
    samples = complete(model, [p for p in prompts for _ in range(k)], max_new_tokens, tokenizer,
                       temperature=temperature, seed=seed)  # one batch: prompt i's samples are rows i*k..i*k+k-1
    pairs = []
    for i, prompt in enumerate(prompts):
        ranked = sorted(samples[i * k:(i + 1) * k], key=judge)  # worst first; sorted() is stable: ties keep order
        if judge(ranked[-1]) > judge(ranked[0]):
            pairs.append((prompt, ranked[-1], ranked[0]))
    return pairs


class PreferencePairs:
    """Preference pairs as token ids, for the Trainer: ``get_batch(split, batch_size, generator)`` draws random
    pairs of ``split`` ("train", or "val" for the held-out ones) as a right-padded ``qt.dpo.PreferenceBatch``."""

    def __init__(self, pairs, tokenizer, block_size: int, held_out: float = 0.2):
        encoded = [tuple(list(tokenizer.encode(t)) for t in pair) for pair in pairs]
        too_long = [len(p) + max(len(c), len(r)) for p, c, r in encoded if len(p) + max(len(c), len(r)) > block_size]
        if too_long:
            raise ValueError(f"{len(too_long)} pairs are longer than the context ({max(too_long)} > block_size "
                             f"{block_size} tokens): shorten the prompts or completions")
        n_val = int(len(encoded) * held_out)
        if not 0 < n_val < len(encoded):
            raise ValueError(f"{len(encoded)} pairs cannot be split with held_out={held_out}: both sides need pairs")
        self.splits = {"train": encoded[:-n_val], "val": encoded[-n_val:]}  # held out: the last pairs, by prompt
        self.block_size, self.vocab_size = block_size, tokenizer.vocab_size

    def get_batch(self, split: str, batch_size: int, generator: torch.Generator, device: str = "cpu"):
        rows = self.splits[split]
        pick = torch.randint(0, len(rows), (batch_size,), generator=generator).tolist()
        return tuple(t.to(device) for t in preference_batch([rows[i] for i in pick]))

    def all(self, split: str, device: str = "cpu"):
        """Every pair of ``split``, in order, as one batch (for deterministic evaluation)."""
        return tuple(t.to(device) for t in preference_batch(self.splits[split]))


@torch.no_grad()
def completion_kl(policy, reference, ids: torch.Tensor, completion_mask: torch.Tensor) -> float:
    """Mean over completion positions of KL(πθ(·|prefix) ‖ πref(·|prefix)), summed over the whole vocabulary."""
    logp = F.log_softmax(policy(ids)[0][:, :-1], dim=-1)  # (B, T-1, V): position t-1 predicts token t
    logq = F.log_softmax(reference(ids)[0][:, :-1], dim=-1)
    kl = (logp.exp() * (logp - logq)).sum(-1)  # (B, T-1)
    scored = completion_mask[:, 1:].bool()  # the positions that predict a completion token
    return kl[scored].mean().item()
