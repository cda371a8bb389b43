"""Chapter 10 exercises: the sampler's knobs and left padding.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 10

Shapes: B rows (sequences), V vocabulary, T positions. Filtered tokens get the logit -inf (float("-inf")).
Use torch; no loops over the vocabulary are needed.
"""
import torch


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """logits (B, V) -> (B, V): keep the most probable tokens of each row whose probabilities, added from the
    most probable down, first reach p (the token that crosses p is kept); set the others to -inf."""
    raise NotImplementedError


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """logits (B, V) -> (B, V): keep the tokens whose probability is at least min_p times the probability of
    the row's most probable token; set the others to -inf."""
    raise NotImplementedError


def repetition_penalty(logits: torch.Tensor, prev_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """logits (B, V), prev_ids (B, S) the tokens already in each row -> (B, V): the logit of every token that
    appears in the row is divided by penalty when positive and multiplied by it when negative (once, however
    often the token appeared); other logits are unchanged."""
    raise NotImplementedError


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """mask (B, T) of 0 (left padding) and 1 (tokens) -> (B, T) int64 positions: each row's first token is at
    position 0, the next at 1, ...; padding gets position 0."""
    raise NotImplementedError
