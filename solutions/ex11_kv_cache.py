"""Chapter 11 exercises: solutions."""
import torch


def cache_write(cache: torch.Tensor, new: torch.Tensor, start: int) -> torch.Tensor:
    end = start + new.size(2)
    cache[:, :, start:end] = new
    return cache[:, :, :end]


def attend_new(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5  # (B, H, 1, S): the newest query reads every key
    return scores.softmax(dim=-1) @ v


def rolling_columns(length: int, slots: int) -> torch.Tensor:
    s = torch.arange(slots)
    newest = s + slots * ((length - 1 - s) // slots)  # the last column c < length with c % slots == s
    return torch.where(s < length, newest, torch.full_like(s, -1))


def accepted(guesses: torch.Tensor, choices: torch.Tensor) -> int:
    return int((guesses == choices).long().cumprod(0).sum())
