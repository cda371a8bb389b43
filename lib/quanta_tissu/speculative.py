"""Speculative decoding (chapter 11): a small draft model guesses, the target checks several guesses in one pass.

Does: ``speculative_generate(target, draft, idx, n, k)`` decodes greedily. Each round the draft proposes k tokens,
one at a time from its own KV cache; the target reads all k in one forward pass on its cache and keeps the longest
prefix that matches its own greedy choices, plus its own next token, so every round adds 1 to k + 1 tokens and
the output is the target's greedy output. Both caches are cut back to the accepted length (``KVCache.truncate``).
Returns the ids and the statistics: rounds, proposed and accepted tokens, the acceptance rate.
Does not: sample (rejection sampling keeps the target's distribution when sampling; greedy keeps it simple and
exactly checkable), or batch: one sequence at a time.
"""
from __future__ import annotations

import torch

from .kv_cache import KVCache


@torch.no_grad()
def speculative_generate(target, draft, idx: torch.Tensor, max_new_tokens: int, k: int = 4):
    """idx (1, T) -> (ids (1, T + max_new_tokens), stats dict), the target's greedy continuation."""
    if idx.dim() != 2 or idx.size(0) != 1:
        raise ValueError(f"speculative decoding takes one sequence, idx of shape (1, T); got {tuple(idx.shape)}")
    if k < 1:
        raise ValueError(f"k (tokens drafted per round) must be >= 1, got {k}")
    if target.cfg.sliding_window is not None or draft.cfg.sliding_window is not None:
        raise ValueError("speculative decoding here takes models without a sliding window (its caches do not roll)")
    total = idx.size(1) + max_new_tokens
    for name, m in (("target", target), ("draft", draft)):
        if total + k > m.cfg.block_size:
            raise ValueError(f"prompt + max_new_tokens + k = {total + k} does not fit the {name}'s context "
                             f"({m.cfg.block_size})")
    target.eval(), draft.eval()
    t_cache, d_cache = KVCache(target.cfg, 1, total + k), KVCache(draft.cfg, 1, total + k)
    nxt = target(idx, cache=t_cache)[0][:, -1:].argmax(-1)  # (1, 1): the target's first token
    draft(idx, cache=d_cache)
    out, stats = [idx, nxt], dict(rounds=0, proposed=0, accepted=0)
    done = idx.size(1) + 1  # tokens in out
    while done < total:
        guesses, last = [], nxt
        for _ in range(k):  # the draft's greedy guesses, one step each
            last = draft(last, cache=d_cache)[0][:, -1:].argmax(-1)
            guesses.append(last)
        guesses = torch.cat(guesses, dim=1)  # (1, k)
        checked = target(torch.cat([nxt, guesses], 1), cache=t_cache)[0].argmax(-1)  # (1, k + 1): its own choices
        n_ok = int((checked[0, :k] == guesses[0]).long().cumprod(0).sum())  # the matching prefix
        stats["rounds"] += 1
        stats["proposed"] += k
        stats["accepted"] += n_ok
        kept = torch.cat([guesses[:, :n_ok], checked[:, n_ok:n_ok + 1]], 1)  # accepted guesses + the target's next
        length = done + n_ok  # positions whose keys and values are now right
        t_cache.truncate(length)
        d_cache.truncate(min(d_cache.length, length))
        if d_cache.length < length:  # the draft never read its last accepted guess: read it now
            draft(guesses[:, n_ok - 1:n_ok], cache=d_cache)
        out.append(kept)
        done += kept.size(1)
        nxt = kept[:, -1:]
    stats["acceptance_rate"] = stats["accepted"] / max(1, stats["proposed"])
    return torch.cat(out, 1)[:, :total], stats
