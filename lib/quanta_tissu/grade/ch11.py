"""Checks for chapter 11's exercises (the KV cache), against ``qt.kv_cache`` and ``qt.speculative``'s rules."""
import torch

from .core import CheckFailed, assert_close


def check_cache_write(fn) -> str:
    cache = torch.zeros(2, 3, 10, 4)
    first, second = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 1, 4)
    fn(cache, first, 0)
    got = fn(cache, second, 4)
    if got is None:
        raise CheckFailed("cache_write returned None: return the view of the positions written so far")
    if torch.equal(cache[:, :, 0:1], second):
        raise CheckFailed("the second write (start=4) landed at position 0: write at start..start+T-1, the offset")
    if not torch.equal(cache[:, :, 4:5], second) or not torch.equal(cache[:, :, :4], first):
        raise CheckFailed("the cache does not hold the first write at 0..3 and the second at 4: write in place, "
                          "into the tensor you were given")
    if got.data_ptr() != cache.data_ptr():
        raise CheckFailed("the returned tensor is a copy: return cache[:, :, :start + T], a view of the cache")
    return assert_close(got, cache[:, :, :5].numpy(), "cache_write's returned view (5 positions)")


def check_attend_new(fn) -> str:
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 1, 8, dtype=torch.float64), torch.randn(2, 3, 6, 8, dtype=torch.float64), \
        torch.randn(2, 3, 6, 8, dtype=torch.float64)
    expected = (q @ k.transpose(-2, -1) / 8**0.5).softmax(-1) @ v
    got = torch.as_tensor(fn(q.clone(), k.clone(), v.clone())).double()
    if got.shape == expected.shape and torch.allclose(got, v[:, :, :1]):
        raise CheckFailed("the new query read only key 0: a causal mask aligned at the top left (as "
                          "scaled_dot_product_attention's is_causal=True) is wrong with a cache; the newest "
                          "position may read every cached key")
    if got.shape == expected.shape and torch.allclose(got, (q @ k.transpose(-2, -1)).softmax(-1) @ v):
        raise CheckFailed("the scores are not divided by sqrt(D)")
    return assert_close(got, expected.numpy(), "attend_new(q (2, 3, 1, 8), k, v (2, 3, 6, 8))")


def check_rolling_columns(fn) -> str:
    cases = [(3, 5), (5, 5), (7, 5), (12, 5), (0, 4)]
    for length, slots in cases:
        s = torch.arange(slots)
        expected = torch.where(s < length, s + slots * ((length - 1 - s) // slots), torch.full_like(s, -1))
        got = torch.as_tensor(fn(length, slots))
        if got.shape == expected.shape and length > slots and torch.equal(got.long(), s):
            raise CheckFailed(f"after {length} columns in {slots} slots you kept old columns in some slots: a slot "
                              "holds the newest column written to it")
        if got.shape != expected.shape or not torch.equal(got.long(), expected):
            raise CheckFailed(f"rolling_columns({length}, {slots}): expected {expected.tolist()}, got {got.tolist()}")
    return f"{len(cases)} cases, before and after the cache wraps"


def check_accepted(fn) -> str:
    guesses, choices = torch.tensor([5, 7, 1, 9]), torch.tensor([5, 7, 2, 9])
    got = fn(guesses, choices)
    if got == 3:
        raise CheckFailed("you counted every agreeing position (3): after the first disagreement (position 2) the "
                          "target's context differs from the draft's, so later guesses cannot be kept")
    if got != 2:
        raise CheckFailed(f"accepted([5 7 1 9], [5 7 2 9]): expected 2, got {got}")
    if fn(torch.tensor([1, 2]), torch.tensor([3, 2])) != 0 or fn(torch.tensor([4, 4]), torch.tensor([4, 4])) != 2:
        raise CheckFailed("expected 0 when the first guess is wrong and k when every guess is right")
    return "prefix counts: 2, 0 and all"


CHECKS = {
    "cache_write": check_cache_write,
    "attend_new": check_attend_new,
    "rolling_columns": check_rolling_columns,
    "accepted": check_accepted,
}
