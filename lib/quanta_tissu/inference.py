"""Generating text with a trained model (chapter 07's loop; chapter 10's knobs, batches, stops and streams;
chapter 11's KV cache).

Does:
- ``steps`` is the one decoding loop: it yields one (B, 1) tensor of new tokens per step, from a batch of
  left-padded prompts with their attention mask, each next token chosen by ``qt.sampling`` (temperature 0:
  greedy) from a seeded generator. Without a cache it re-reads the whole context every step (cropped to the
  block size); with one (``cache=True``) it reads the prompt once, then one position per step.
- ``generate(model, idx, ...)`` returns the prompt ids with the new ones appended, (B, T + n), as chapter 07's did.
- ``qt.generate(model, prompts, ...)`` (``complete``) takes prompts of different lengths (strings with a
  tokenizer, or id lists), pads them on the left, and stops each row at a stop token or a stop string, even one
  that spans token boundaries; it returns each row's completion. ``qt.stream`` yields a completion's text in
  pieces that never split a UTF-8 character.
With a sliding window and RoPE (chapter 11), a cached completion may run past the context: the cache rolls.
Does not: batch requests that arrive at different times (chapter 17's scheduler), or draft (``qt.speculative``).
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass

import torch

from .checks import kind
from .sampling import check_sampling, process_logits, sample


@dataclass
class Sampling:
    """The knobs of chapter 10 (defaults: plain sampling at temperature 1)."""

    temperature: float = 1.0  # 0 is greedy; below 1 sharpens, above 1 flattens
    top_k: int = 0  # keep the k most likely tokens; 0 keeps all
    top_p: float = 1.0  # keep the smallest set of likely tokens whose mass reaches p; 1 keeps all
    min_p: float = 0.0  # keep tokens at least min_p times as likely as the top one; 0 keeps all
    repetition_penalty: float = 1.0  # above 1 discourages tokens already in the sequence
    watermark: object = None  # chapter 17: a qt.watermark.Watermark biases its green tokens; None: no mark

    def __post_init__(self):
        check_sampling(self.temperature, self.top_k, self.top_p, self.min_p, self.repetition_penalty)


def _seen_ids(idx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """idx with its padding replaced by the row's first real token: penalising that one twice changes nothing."""
    first = idx.gather(1, mask.long().argmax(dim=1, keepdim=True))  # (B, 1)
    return torch.where(mask.bool(), idx, first)


def choose(logits: torch.Tensor, sampling: Sampling, idx: torch.Tensor, seen: torch.Tensor | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, V) next-token logits -> (B, 1) tokens, by chapter 10's knobs (``seen``: the ids the repetition penalty
    reads) and chapter 17's watermark (``idx``: the ids so far, whose last one picks the green list)."""
    if sampling.temperature == 0:  # greedy: the penalty, the watermark's bias, then the arg max (no filter needed)
        logits = process_logits(logits, 1.0, repetition_penalty=sampling.repetition_penalty, prev_ids=seen)
        if sampling.watermark is not None:
            logits = sampling.watermark.bias(logits, idx)
        return sample(logits, greedy=True)
    logits = process_logits(logits, sampling.temperature, sampling.top_k, sampling.top_p, sampling.min_p,
                            sampling.repetition_penalty, seen)
    if sampling.watermark is not None:  # last, after every filter, as transformers
        logits = sampling.watermark.bias(logits, idx)
    return sample(logits, generator)


@torch.no_grad()
def steps(model, idx: torch.Tensor, max_new_tokens: int, sampling: Sampling | None = None,
          generator: torch.Generator | None = None, attention_mask: torch.Tensor | None = None, cache: bool = False):
    """Yield (B, 1) new tokens, one step at a time, for left-padded prompts idx (B, T) with their mask."""
    from .kv_cache import KVCache

    sampling = sampling or Sampling()
    B, T = idx.shape
    mask = torch.ones_like(idx) if attention_mask is None else attention_mask.to(idx.device).long()
    padded = not bool(mask.all())  # without padding the model needs no mask: positions count from the cache
    block = model.cfg.block_size
    if cache and T + max_new_tokens > block and not model.cfg.rolls_past_block:
        raise ValueError(f"max_new_tokens ({max_new_tokens}) past the cache: the prompt ({T} positions, padding "
                         f"included) plus the new tokens must fit the context of {block}; ask for at most "
                         f"{block - T} tokens, or pass cache=False to re-read a context cropped to the last {block}")
    kv = KVCache(model.cfg, B, T + max_new_tokens, idx.device, model.wte.weight.dtype) if cache else None
    was_training = model.training
    model.eval()
    try:
        step_in = idx
        for _ in range(max_new_tokens):
            if kv is None:  # re-read the context, cropped to the block size
                logits = model(idx[:, -block:], attention_mask=mask[:, -block:] if padded else None)[0][:, -1]  # (B, V)
            else:  # the whole prompt once (a chunk at a time into a rolling cache), then only the newest token
                while step_in.size(1) > kv.chunk:
                    model(step_in[:, :kv.chunk], attention_mask=mask[:, :kv.length + kv.chunk] if padded else None,
                          cache=kv)
                    step_in = step_in[:, kv.chunk:]
                logits = model(step_in, attention_mask=mask if padded else None, cache=kv)[0][:, -1]
            seen = _seen_ids(idx, mask) if sampling.repetition_penalty != 1.0 else None  # only the penalty reads it
            nxt = choose(logits, sampling, idx, seen, generator)  # (B, 1)
            idx, mask, step_in = torch.cat([idx, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1), nxt
            yield nxt
    finally:
        model.train(was_training)


def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             generator: torch.Generator | None = None, attention_mask: torch.Tensor | None = None,
             cache: bool = False, **knobs) -> torch.Tensor:
    """idx: (B, T) prompt ids -> (B, T + max_new_tokens); ``knobs`` are Sampling's other fields."""
    new = list(steps(model, idx, max_new_tokens, Sampling(temperature, **knobs), generator, attention_mask, cache))
    return torch.cat([idx, *new], dim=1)


PROMPTS_ARE = ("prompts may be a string, a list of strings (with a tokenizer), a list of ids, a list of id lists, "
               "a 1-D tensor or array of ids (one prompt) or a 2-D one, (B, T) (B prompts of T ids)")


def _prompt_rows(prompts) -> tuple[list, bool]:
    """(one entry per prompt, whether ``prompts`` was a single prompt): tensors and arrays split into rows."""
    if isinstance(prompts, str):
        return [prompts], True
    if hasattr(prompts, "ndim") and hasattr(prompts, "tolist"):  # a torch tensor or a NumPy array
        if prompts.ndim not in (1, 2):
            raise TypeError(f"{PROMPTS_ARE}; got {prompts.ndim}-D ids, {kind(prompts)}")
        return ([prompts] if prompts.ndim == 1 else list(prompts)), prompts.ndim == 1
    if not isinstance(prompts, (list, tuple)):
        raise TypeError(f"{PROMPTS_ARE}; got {kind(prompts)}")
    if prompts and all(_is_scalar(p) for p in prompts):  # [1, 2, 3]: one prompt of ids (checked as ids below)
        return [list(prompts)], True
    return list(prompts), False


def _is_scalar(x) -> bool:
    """A number: a Python, NumPy or 0-d torch one (a prompt's id, if it is an integer)."""
    return isinstance(x, (int, float, complex)) or getattr(x, "ndim", None) == 0


def _is_integer(x) -> bool:
    """A Python, NumPy or 0-d torch integer (never a bool, never a float that happens to be whole)."""
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return True
    dtype = getattr(x, "dtype", None)
    return getattr(x, "ndim", None) == 0 and dtype is not None and str(dtype).replace("torch.", "").startswith(
        ("int", "uint"))


def _prompt_ids(p) -> list[int]:
    """One prompt's ids as Python ints, or a TypeError naming what a prompt may be."""
    if hasattr(p, "ndim") and hasattr(p, "tolist"):
        if p.ndim != 1:
            raise TypeError(f"{PROMPTS_ARE}; a prompt inside them was {p.ndim}-D, {kind(p)}")
        if not str(p.dtype).replace("torch.", "").startswith(("int", "uint")):
            raise TypeError(f"prompt ids must be integers, got {kind(p)}")
        return [int(i) for i in p.tolist()]
    if not isinstance(p, (list, tuple)):
        raise TypeError(f"{PROMPTS_ARE}; a prompt inside them was {kind(p)}")
    bad = [x for x in p if not _is_integer(x)]
    if bad:
        raise TypeError(f"prompt ids must be integers, got {bad[0]!r} ({type(bad[0]).__name__})")
    return [int(i) for i in p]


def _encode_prompts(prompts, tokenizer, model) -> tuple[list[list[int]], bool]:
    """(prompts as id lists, each checked; whether a single prompt was given). ``PROMPTS_ARE`` lists the forms."""
    entries, single = _prompt_rows(prompts)
    if not entries:
        raise ValueError("prompts is empty: give at least one prompt")
    rows = []
    for p in entries:
        if isinstance(p, str):
            if tokenizer is None:
                raise ValueError("string prompts need a tokenizer: generate(model, prompts, n, tokenizer=tok)")
            p = tokenizer.encode(p)
        ids = _prompt_ids(p)
        if not ids:
            raise ValueError("a prompt is empty: give it at least one token (for example a newline)")
        if len(ids) > model.cfg.block_size and not model.cfg.rolls_past_block:  # a window reads them in chunks
            raise ValueError(f"a prompt of {len(ids)} tokens is longer than the context ({model.cfg.block_size})")
        if min(ids) < 0 or max(ids) >= model.cfg.vocab_size:
            raise ValueError(f"prompt ids must be in 0..{model.cfg.vocab_size - 1}, got {min(ids)}..{max(ids)}: "
                             "does the tokenizer match the model?")
        rows.append(ids)
    return rows, single


def left_pad(rows: list[list[int]], pad_id: int = 0, device="cpu"):
    """(idx, mask), both (B, T): each row right-aligned, padding on the left with mask 0."""
    T = max(len(r) for r in rows)
    idx = torch.full((len(rows), T), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(idx)
    for i, r in enumerate(rows):
        idx[i, T - len(r):] = torch.tensor(r, device=device)
        mask[i, T - len(r):] = 1
    return idx, mask


def _cut_at_stop(text: str, stop_strings) -> str | None:
    """The text before the first stop string, or None if none occurs."""
    hits = [text.index(s) for s in stop_strings if s in text]
    return text[:min(hits)] if hits else None


def complete(model, prompts, max_new_tokens: int, tokenizer=None, *, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, min_p: float = 0.0, repetition_penalty: float = 1.0, stop=None, seed: int | None = None,
             cache: bool = True, device=None, watermark=None):
    """Completions of a batch of prompts (``qt.generate``).

    ``prompts``: one prompt (a string, a list of ids, or a 1-D tensor or NumPy array of ids) gives one completion;
    a batch (a list of strings or id lists, or a (B, T) tensor or array: B prompts of T ids each) gives a list of
    them. Strings need ``tokenizer``; a completion is text with a tokenizer, else a list of new ids. Anything else
    is a ``TypeError`` that lists these forms.
    ``stop``: token ids (ints) and/or strings; a row ends at the first one, which is not included."""
    sampling = Sampling(temperature, top_k, top_p, min_p, repetition_penalty, watermark)
    stop = [] if stop is None else [stop] if isinstance(stop, str) or not hasattr(stop, "__iter__") else list(stop)
    stop_strings = [s for s in stop if isinstance(s, str)]
    stop_ids = {int(s) for s in stop if not isinstance(s, str)}  # ints, NumPy or torch integers alike
    if stop_strings and tokenizer is None:
        raise ValueError("stop strings need a tokenizer to read the text")
    device = device or model.wte.weight.device
    rows, single = _encode_prompts(prompts, tokenizer, model)
    idx, mask = left_pad(rows, device=device)
    gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    new = [[] for _ in rows]
    texts = [None] * len(rows)  # set once a row has stopped
    for nxt in steps(model, idx, max_new_tokens, sampling, gen, mask, cache):
        for i, token in enumerate(nxt[:, 0].tolist()):
            if texts[i] is not None:
                continue
            if token in stop_ids:
                texts[i] = tokenizer.decode(new[i]) if tokenizer else new[i]
                continue
            new[i].append(token)
            if stop_strings:
                texts[i] = _cut_at_stop(tokenizer.decode(new[i]), stop_strings)
        if all(t is not None for t in texts):
            break
    out = [t if t is not None else (tokenizer.decode(n) if tokenizer else n) for t, n in zip(texts, new)]
    return out[0] if single else out


def _token_bytes(tokenizer, ids) -> bytes:
    if hasattr(tokenizer, "decode_bytes"):  # byte-level BPE (chapter 04): a token may be part of a character
        return tokenizer.decode_bytes(ids)
    return tokenizer.decode(ids).encode("utf-8")


def stream(model, prompt: str, max_new_tokens: int, tokenizer, **kwargs):
    """Yield the completion of one prompt as text pieces; their concatenation is ``complete``'s text.

    A byte-level token can end in the middle of a multi-byte character (an emoji is four bytes): the bytes wait
    in an incremental UTF-8 decoder until the character is whole, so no piece holds half of one."""
    stop = kwargs.pop("stop", None)
    if stop is not None:
        raise ValueError("stream does not take stop strings; cut the text, or use complete")
    sampling = Sampling(**{k: kwargs.pop(k) for k in list(kwargs) if k in Sampling.__dataclass_fields__})
    seed, cache = kwargs.pop("seed", None), kwargs.pop("cache", True)
    if kwargs:
        raise TypeError(f"stream() got unexpected arguments {sorted(kwargs)}")
    (ids,), _ = _encode_prompts([prompt], tokenizer, model)
    device = model.wte.weight.device
    idx = torch.tensor([ids], device=device)
    gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for nxt in steps(model, idx, max_new_tokens, sampling, gen, None, cache):
        piece = utf8.decode(_token_bytes(tokenizer, nxt[0].tolist()))
        if piece:
            yield piece
    tail = utf8.decode(b"", final=True)  # a character cut off by the token budget
    if tail:
        yield tail
