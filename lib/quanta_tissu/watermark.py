"""Watermarking generated text (chapter 17): a green list per previous token, a bias toward it, a z-test.

Kirchenbauer et al. 2023, "A Watermark for Large Language Models": before each token is chosen, the previous
token seeds a random split of the vocabulary into a green list (a fraction ``gamma`` of it) and a red list, and
``delta`` is added to the green tokens' logits. Whoever knows the key can later recount: human text lands in
the green list about ``gamma`` of the time, watermarked text far more often, and the z-score of the count says
how unlikely that is by chance. Nothing is stored with the text; the key is the whole secret.

Does:
- ``Watermark(vocab_size, gamma, delta, hashing_key, seeding_scheme, context_width)``: ``greenlist(context)``
  gives each row's (B, V) green mask, ``bias(logits, input_ids)`` adds ``delta`` to each row's green logits.
  ``qt.generate(..., watermark=wm)`` (``Sampling(watermark=wm)``) samples with it.
- ``detect(ids, wm)`` counts the green tokens of one sequence and returns a ``Detection`` (z-score, p-value);
  ``z_curve(ids, wm)`` gives the z-score of every prefix at once, for the chapter's plot.
Conventions (tested against transformers' ``WatermarkLogitsProcessor`` and ``WatermarkDetector``, device "cpu"):
- "lefthash": the seed is ``hashing_key * previous token`` modulo 2**64 - 1, given to a CPU ``torch.Generator``;
  the green list is the first ``int(vocab_size * gamma)`` ids of ``torch.randperm(vocab_size)`` drawn from it.
  ``context_width`` does not change the seed (only the last token counts) but sets the detector's n-grams.
- "selfhash": the candidate token takes part in its own seed (the minimum over the last ``context_width``
  tokens of ``hashing_key * a * b`` in int64, a and b from a fixed random table); only the 40 most likely
  candidates are tried, and each gets the bias if it is in its own green list.
- the sampler adds the bias after the penalty, the temperature and every filter, just before the draw, as
  transformers does (its watermark processor comes last); a greedy sampler adds it after the penalty, before
  the arg max (transformers applies no temperature or filter when it does not sample).
- the detector scores every n-gram of ``context_width + 1`` tokens (lefthash; ``context_width`` for selfhash),
  or each distinct one once with ``ignore_repeated_ngrams``; z = (green - gamma T) / sqrt(T gamma (1 - gamma)),
  with gamma itself, not ``int(vocab_size * gamma) / vocab_size`` (slightly conservative on a small vocabulary).
Does not: survive paraphrasing or a change of tokenizer, detect without the key, strip a prompt or a BOS token
before detecting (pass only the generated ids), or reproduce the green lists that transformers draws with a
CUDA generator (it permutes differently; ours are always drawn on the CPU, then moved to the logits' device).
Nor does it make human text's z exactly standard normal: each previous token always selects the same green
list, so a language's frequent bigrams, green or red by chance, shift the count, and the shift grows with the
length. On the course's 65 characters a 200-character window of held-out Shakespeare scores z 0.7 on average
(1 in 500 above 4), the whole 111,540-character validation split 16.9; counting each distinct n-gram once
(``ignore_repeated_ngrams``) brings that back to 1.1, at the price of a weaker signal in long marked text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

SCHEMES = ("lefthash", "selfhash")
SELFHASH_CANDIDATES = 40  # selfhash tries this many of the most likely tokens (transformers' and the paper's repo's)
TABLE_SIZE = 1_000_003  # selfhash's fixed random table, as transformers draws it


@dataclass
class Watermark:
    """The key and strength of a green-list watermark (transformers' WatermarkingConfig defaults)."""

    vocab_size: int
    gamma: float = 0.25  # fraction of the vocabulary that is green (transformers' greenlist_ratio)
    delta: float = 2.0  # added to the green logits (transformers' bias)
    hashing_key: int = 15485863  # the secret: the millionth prime, transformers' default (use your own)
    seeding_scheme: str = "lefthash"  # "lefthash": the previous token seeds; "selfhash": the candidate too
    context_width: int = 1  # tokens in the seed (selfhash) and, plus one, in the detector's n-grams (lefthash)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # seed context -> green ids

    def __post_init__(self):
        check_watermark(self.vocab_size, self.gamma, self.delta, self.seeding_scheme, self.context_width)

    @property
    def greenlist_size(self) -> int:
        return int(self.vocab_size * self.gamma)  # rounded down, as transformers does

    def green_ids(self, context: tuple) -> torch.Tensor:
        """The green ids (int(V gamma),) for a seed context: token ids, the last one nearest (cached)."""
        context = tuple(context[-self.context_width:])
        if self.seeding_scheme == "lefthash":
            context = context[-1:]  # lefthash seeds from the last token alone, whatever the width
        if context not in self._cache:
            rng = torch.Generator().manual_seed(self._seed(context))
            self._cache[context] = torch.randperm(self.vocab_size, generator=rng)[:self.greenlist_size]
        return self._cache[context]

    def _seed(self, context: tuple) -> int:
        if self.seeding_scheme == "lefthash":
            return (self.hashing_key * context[-1]) % (2**64 - 1)
        a = _fixed_table(self.hashing_key)[torch.tensor(context) % TABLE_SIZE] + 1  # (w,)
        b = _fixed_table(self.hashing_key)[context[-1] % TABLE_SIZE] + 1
        return (self.hashing_key * a * b).min().item() % (2**64 - 1)  # int64 products wrap, as in transformers

    def greenlist(self, context: torch.Tensor) -> torch.Tensor:
        """context: (B,) or (B, T) ids, each row's seed tokens last -> (B, V) bool, True on the green tokens."""
        context = _check_ids(context, self.vocab_size, "context")
        width = 1 if self.seeding_scheme == "lefthash" else self.context_width  # the tokens that seed
        rows = context.reshape(context.size(0), -1)[:, -width:].cpu()  # (B, w)
        seeds, row_seed = rows.unique(dim=0, return_inverse=True)  # one permutation per distinct seed, not per row
        mask = torch.zeros(len(seeds), self.vocab_size, dtype=torch.bool)  # (S, V)
        for i, seed in enumerate(seeds.tolist()):
            mask[i, self.green_ids(tuple(seed))] = True
        return mask[row_seed].to(context.device)  # (B, V)

    def bias(self, logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, V) logits, (B, T) ids so far -> (B, V) logits with delta added to each row's green tokens."""
        if logits.dim() != 2 or logits.size(-1) != self.vocab_size:
            raise ValueError(f"logits must be (B, {self.vocab_size}) for this watermark's vocab_size, "
                             f"got {tuple(logits.shape)}")
        input_ids = _check_ids(input_ids, self.vocab_size, "input_ids")
        if input_ids.size(-1) < self.context_width:
            return logits  # too short to seed: transformers skips the step (with a warning)
        if self.seeding_scheme == "selfhash":
            green = self._selfhash_mask(logits, input_ids)
        else:
            green = self.greenlist(input_ids[:, -1])
        return torch.where(green, logits + self.delta, logits)  # red logits untouched, bit for bit

    def _selfhash_mask(self, logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, V) bool: the top candidates of each row that fall in the green list their own id seeds."""
        order = logits.sort(dim=-1, descending=True).indices[:, :SELFHASH_CANDIDATES]  # (B, 40)
        mask = torch.zeros_like(logits, dtype=torch.bool)
        for b, (row, candidates) in enumerate(zip(input_ids.tolist(), order.tolist())):
            before = row[len(row) - self.context_width + 1:] if self.context_width > 1 else []  # rest of the seed
            for c in candidates:
                mask[b, c] = bool((self.green_ids(tuple(before + [c])) == c).any())
        return mask


def check_watermark(vocab_size: int, gamma: float, delta: float, seeding_scheme: str, context_width: int) -> None:
    """Raise ValueError naming the first argument outside its allowed range."""
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an integer >= 2, got {vocab_size!r}")
    if not 0 < gamma < 1:
        raise ValueError(f"gamma (the green fraction) must be in (0, 1), exclusive, got {gamma}")
    if int(vocab_size * gamma) < 1:
        raise ValueError(f"gamma={gamma} leaves no green token in a vocabulary of {vocab_size}: raise gamma")
    if not delta >= 0:
        raise ValueError(f"delta (the bias) must be >= 0 (0 marks nothing), got {delta}")
    if seeding_scheme not in SCHEMES:
        raise ValueError(f"seeding_scheme must be one of {SCHEMES}, got {seeding_scheme!r}")
    if not isinstance(context_width, int) or context_width < 1:
        raise ValueError(f"context_width must be an integer >= 1, got {context_width!r}")


def _check_ids(ids, vocab_size: int, name: str) -> torch.Tensor:
    ids = torch.as_tensor(ids)
    if ids.is_floating_point() or ids.dim() == 0:
        raise ValueError(f"{name} must be integer token ids with at least one dimension, "
                         f"got {ids.dtype} of shape {tuple(ids.shape)}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{name} must be in 0..{vocab_size - 1} (the watermark's vocab_size), "
                         f"got {int(ids.min())}..{int(ids.max())}")
    return ids.long()


_TABLES: dict = {}


def _fixed_table(hashing_key: int) -> torch.Tensor:
    """selfhash's random table (1,000,003 ids), drawn once per key from a generator seeded with the key."""
    if hashing_key not in _TABLES:
        _TABLES[hashing_key] = torch.randperm(TABLE_SIZE, generator=torch.Generator().manual_seed(hashing_key))
    return _TABLES[hashing_key]


# ---- detection ----

@dataclass
class Detection:
    """What ``detect`` found in one sequence."""

    z: float  # standard deviations above the green count expected of text that knows nothing of the key
    p_value: float  # one-sided: the chance of a z this high in unwatermarked text (normal approximation)
    green: int  # green tokens counted
    scored: int  # tokens scored (n-grams; distinct n-grams with ignore_repeated_ngrams)

    def watermarked(self, threshold: float = 4.0) -> bool:
        """z strictly above the threshold, as transformers predicts (4 is the paper's; its detector defaults to 3)."""
        return self.z > threshold


def green_flags(ids, watermark: Watermark, ignore_repeated_ngrams: bool = False) -> torch.Tensor:
    """(T,) ids -> (T,) float: 1 for a scored green token, 0 for a scored red one, nan where nothing is scored.

    Position t scores the n-gram that ends at t; the first n - 1 positions end none. With
    ``ignore_repeated_ngrams`` only an n-gram's first occurrence is scored: a catchphrase counts once."""
    ids = _check_ids(ids, watermark.vocab_size, "ids").flatten().cpu()
    n = watermark.context_width + (watermark.seeding_scheme == "lefthash")  # tokens per n-gram
    if ids.numel() - watermark.context_width < 1:
        raise ValueError(f"ids has {ids.numel()} tokens: detection needs at least {watermark.context_width + 1} "
                         f"(context_width={watermark.context_width} to seed, one to score)")
    grams = ids.unfold(0, n, 1)  # (T - n + 1, n): the n-gram ending at each scored position
    if watermark.seeding_scheme == "lefthash":
        green = watermark.greenlist(grams[:, -2]).gather(1, grams[:, -1:])[:, 0]  # previous token -> list
    else:
        green = torch.tensor([bool((watermark.green_ids(tuple(g)) == g[-1]).any()) for g in grams.tolist()])
    if ignore_repeated_ngrams:
        green = green.float().masked_fill(~_first_occurrences(grams), float("nan"))
    return torch.cat([torch.full((n - 1,), float("nan")), green.float()])  # (T,)


def _first_occurrences(grams: torch.Tensor) -> torch.Tensor:
    """(N, n) n-grams -> (N,) bool, True where an n-gram occurs for the first time."""
    _, which = grams.unique(dim=0, return_inverse=True)  # (N,) the distinct n-gram at each position
    positions = torch.arange(len(grams))
    first = torch.full((int(which.max()) + 1,), len(grams)).scatter_reduce(0, which, positions, "amin")
    return first[which] == positions


def z_score(green, scored, gamma: float):
    """z = (green - gamma T) / sqrt(T gamma (1 - gamma)) for green of T scored tokens (floats or tensors)."""
    return (green - gamma * scored) / (scored * gamma * (1 - gamma)) ** 0.5


def detect(ids, watermark: Watermark, ignore_repeated_ngrams: bool = False) -> Detection:
    """Count the green tokens of one sequence of generated ids (no prompt, no BOS) and test them."""
    flags = green_flags(ids, watermark, ignore_repeated_ngrams)
    scored = flags[~flags.isnan()]
    green, T = int(scored.sum()), scored.numel()
    z = z_score(green, T, watermark.gamma)
    return Detection(z=z, p_value=0.5 * math.erfc(z / math.sqrt(2)), green=green, scored=T)


def z_curve(ids, watermark: Watermark, ignore_repeated_ngrams: bool = False) -> torch.Tensor:
    """(T,) ids -> (T,) z-score of every prefix ids[:t + 1] (nan where nothing is scored yet)."""
    flags = green_flags(ids, watermark, ignore_repeated_ngrams)
    scored = (~flags.isnan()).double().cumsum(0)  # (T,) tokens scored so far
    green = flags.nan_to_num(0.0).double().cumsum(0)  # (T,) green tokens so far
    return z_score(green, scored, watermark.gamma).masked_fill(scored == 0, float("nan"))
