"""Checks for chapter 10's exercises (sampling and batched generation), against ``qt.sampling`` and ``qt.gpt``."""
import torch

from ..gpt import GPT
from ..sampling import min_p_filter, repetition_penalty_filter, top_p_filter
from .core import CheckFailed, assert_close


def _kept(logits) -> list:
    return torch.isfinite(torch.as_tensor(logits)).tolist()


def _expect_mask(got, expected, what: str) -> torch.Tensor:
    got = torch.as_tensor(got)
    if got.shape != expected.shape:
        raise CheckFailed(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    return got


def check_top_p_filter(fn) -> str:
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.25, 0.25, 0.25, 0.25]]))
    got = _expect_mask(fn(logits.clone(), 0.7), logits, "top_p_filter(probabilities [.05 .5 .15 .3], p=0.7)")
    kept, expected = _kept(got)[0], _kept(top_p_filter(logits, 0.7))[0]
    if kept == [False, True, False, False]:
        raise CheckFailed("only the token at 0.5 survived: 0.5 + 0.3 is the first sum to reach 0.7, so the token "
                          "that crosses p (0.3) must be kept too")
    if kept == [False, True, True, True]:
        raise CheckFailed("you kept one token too many (0.15): once 0.5 + 0.3 has crossed p = 0.7, stop")
    if kept == [True, False, False, True] or kept == [True, False, True, False]:
        raise CheckFailed("you kept the least probable tokens: sort from the most probable down")
    if kept != expected:
        raise CheckFailed(f"row [.05 .5 .15 .3] at p = 0.7: expected to keep {expected}, got {kept}")
    randn = torch.randn(64, 50, generator=torch.Generator().manual_seed(0)) * 2
    for p in (0.3, 0.9, 1.0):
        if _kept(fn(randn.clone(), p)) != _kept(top_p_filter(randn, p)):
            raise CheckFailed(f"on 64 random rows at p = {p}, the set of kept tokens differs from the reference")
    return "the crossing token is kept; 64 random rows agree at p = 0.3, 0.9, 1.0"


def check_min_p_filter(fn) -> str:
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.06, 0.04]])
    got = _expect_mask(fn(probs.log(), 0.125), probs, "min_p_filter(probabilities [.4 .3 .2 .06 .04], 0.125)")
    kept = _kept(got)[0]
    if kept == [True, True, True, False, False]:
        raise CheckFailed("you compared each probability with min_p itself (0.125): min_p is relative to the top "
                          "token, so the threshold here is 0.125 * 0.4 = 0.05, and 0.06 stays")
    if kept != [True, True, True, True, False]:
        raise CheckFailed(f"expected to keep [True, True, True, True, False] (threshold 0.05), got {kept}")
    randn = torch.randn(64, 50, generator=torch.Generator().manual_seed(1)) * 2
    if _kept(fn(randn.clone(), 0.1)) != _kept(min_p_filter(randn, 0.1)):
        raise CheckFailed("on 64 random rows at min_p = 0.1, the set of kept tokens differs from the reference")
    return "relative threshold; 64 random rows agree"


def check_repetition_penalty(fn) -> str:
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0, 0.5]])
    prev = torch.tensor([[0, 1, 0, 0]])  # token 0 three times, token 1 once
    expected = repetition_penalty_filter(logits, prev, 2.0)
    got = torch.as_tensor(fn(logits.clone(), prev.clone(), 2.0)).double()
    if torch.allclose(got, torch.tensor([[1.0, -1.0, 1.0, -1.0, 0.5]], dtype=torch.float64)):
        raise CheckFailed("the negative logit of a seen token (-2) was divided by the penalty and rose to -1: "
                          "multiply negative logits by the penalty, so the token becomes less likely")
    if torch.allclose(got, torch.tensor([[0.25, -4.0, 1.0, -1.0, 0.5]], dtype=torch.float64)):
        raise CheckFailed("token 0 was penalised once per occurrence (2 / 2^3): penalise each seen token once")
    return assert_close(got, expected.numpy(), "repetition_penalty(logits [2 -2 1 -1 .5], prev [0 1 0 0], 2.0)")


def check_positions_from_mask(fn) -> str:
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    expected = GPT._positions(mask, mask.shape)
    got = torch.as_tensor(fn(mask.clone()))
    if got.shape == mask.shape and torch.equal(got, torch.arange(5).expand(3, 5)):
        raise CheckFailed("every row counts from the first column, padding included: a left-padded row's first "
                          "token must be at position 0, as if it ran alone")
    if got.shape == mask.shape and torch.equal(got, mask.cumsum(-1)):
        raise CheckFailed("positions start at 1: subtract one, so the first token is at position 0")
    return assert_close(got, expected.numpy(), "positions_from_mask(mask of shape (3, 5))")


CHECKS = {
    "top_p_filter": check_top_p_filter,
    "min_p_filter": check_min_p_filter,
    "repetition_penalty": check_repetition_penalty,
    "positions_from_mask": check_positions_from_mask,
}
