"""Turning next-token logits into a choice (chapter 10): the knobs every sampler has, in transformers' order.

Does: ``process_logits`` applies, in this order, a repetition penalty, the temperature, top-k, top-p
(nucleus) and min-p, and returns the logits with every filtered token at -inf; ``sample`` draws one token per
row from a seeded generator (temperature 0: the arg max, drawing nothing); ``check_sampling`` names a bad
argument and its allowed range.
Conventions (tested against transformers' logits processors on random, tied and -inf rows):
- repetition penalty (CTRL): a seen token's logit is divided by the penalty if positive, multiplied if negative;
- temperature 0 is greedy: only the largest logit survives (the first one on a tie);
- top-k keeps every token whose logit is at least the k-th largest (ties at the boundary are all kept);
- top-p keeps the most probable tokens up to and including the one whose cumulative probability crosses p;
- min-p keeps tokens whose probability is at least min_p times the top token's.
Does not: run the model or hold state between steps; ``qt.inference`` does.
"""
from __future__ import annotations

import torch


def check_sampling(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0,
                   repetition_penalty: float = 1.0) -> None:
    """Raise ValueError naming the first argument outside its allowed range."""
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 keeps every token), got {top_k!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 keeps every token), got {top_p}")
    if not 0 <= min_p < 1:
        raise ValueError(f"min_p must be in [0, 1) (0 keeps every token), got {min_p}")
    if not repetition_penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (1 is none, above 1 discourages repeats), got {repetition_penalty}")


def repetition_penalty_filter(logits: torch.Tensor, prev_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """(B, V) logits, (B, S) ids already in each row: divide positive logits of seen tokens by penalty, multiply negative ones."""
    seen = torch.gather(logits, 1, prev_ids)  # (B, S): the logit of every token already in the row
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, prev_ids, seen)  # a token seen twice is penalised once


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the tokens whose logit reaches the k-th largest of their row."""
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the most probable tokens whose probabilities add up to p, the one that crosses p included."""
    ascending, order = torch.sort(logits, descending=False)  # least probable first
    tail_mass = ascending.softmax(dim=-1).cumsum(dim=-1)  # (B, V): mass of this token and all less probable ones
    drop = tail_mass <= 1 - p  # these together hold at most 1 - p: without them the rest still reaches p
    drop[..., -1:] = False  # the most probable token always stays
    return logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))  # back to vocabulary order


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Keep the tokens at least min_p times as probable as their row's most probable token."""
    probs = logits.softmax(dim=-1)
    drop = probs < min_p * probs.amax(dim=-1, keepdim=True)
    drop.scatter_(-1, probs.argmax(dim=-1, keepdim=True), False)  # the top token stays, whatever rounding says
    return logits.masked_fill(drop, float("-inf"))


def greedy_filter(logits: torch.Tensor) -> torch.Tensor:
    """Temperature 0: only each row's arg max survives."""
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.argmax(dim=-1, keepdim=True), True)
    return logits.masked_fill(~keep, float("-inf"))


def process_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   min_p: float = 0.0, repetition_penalty: float = 1.0, prev_ids: torch.Tensor | None = None):
    """(B, V) next-token logits -> (B, V) logits to sample from, filtered tokens at -inf."""
    check_sampling(temperature, top_k, top_p, min_p, repetition_penalty)
    if repetition_penalty != 1.0 and prev_ids is not None and prev_ids.numel():
        logits = repetition_penalty_filter(logits, prev_ids, repetition_penalty)
    if temperature == 0:
        return greedy_filter(logits)
    if temperature != 1.0:
        logits = logits / temperature
    if top_k:
        logits = top_k_filter(logits, top_k)
    if top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    if min_p > 0.0:
        logits = min_p_filter(logits, min_p)
    return logits


def sample(logits: torch.Tensor, generator: torch.Generator | None = None, greedy: bool = False) -> torch.Tensor:
    """(B, V) processed logits -> (B, 1) token ids: the arg max when greedy, else one draw per row."""
    if greedy:
        return logits.argmax(dim=-1, keepdim=True)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)


def distinct_ngrams(texts, n: int) -> float:
    """Distinct n-grams over all n-grams of all texts: 1 means nothing repeats, across or within samples."""
    grams = [t[i:i + n] for t in texts for i in range(len(t) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


def repetition_rate(text: str, n: int = 4) -> float:
    """Fraction of a text's n-grams that already occurred earlier in the same text (loops score high)."""
    seen, repeats, total = set(), 0, 0
    for i in range(len(text) - n + 1):
        gram = text[i:i + n]
        repeats += gram in seen
        total += 1
        seen.add(gram)
    return repeats / max(1, total)


def words(text: str) -> list[str]:
    """The words of a text: runs of letters (and apostrophes inside them), lower-cased."""
    import re

    return re.findall(r"[a-z]+(?:'[a-z]+)*", text.lower())


def known_word_rate(texts, vocabulary: set) -> float:
    """Fraction of the words in ``texts`` that occur in ``vocabulary`` (a quality proxy: invented words score 0)."""
    found = [w in vocabulary for t in texts for w in words(t)]
    return sum(found) / max(1, len(found))
