"""Chapter 10 exercises: solutions."""
import torch


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    probs, order = logits.softmax(dim=-1).sort(dim=-1, descending=True)  # most probable first
    before = probs.cumsum(dim=-1) - probs  # mass of the tokens strictly more probable than this one
    drop_sorted = before >= p  # p was already reached without this token
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    probs = logits.softmax(dim=-1)
    return logits.masked_fill(probs < min_p * probs.max(dim=-1, keepdim=True).values, float("-inf"))


def repetition_penalty(logits: torch.Tensor, prev_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    seen = logits.gather(1, prev_ids)
    return logits.scatter(1, prev_ids, torch.where(seen > 0, seen / penalty, seen * penalty))


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    return (mask.long().cumsum(dim=-1) - 1).clamp(min=0)
