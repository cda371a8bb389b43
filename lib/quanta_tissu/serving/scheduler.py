"""Continuous batching (chapter 17): many requests, one batch, one KV cache, joined and left between decode steps.

Does:
- ``Request``: one completion to compute (prompt ids, budget, sampling knobs, seed, stop tokens), and what it has
  produced so far; ``on_token`` and ``on_finish`` callbacks report progress as it happens.
- ``Scheduler``: ``slots`` rows of one pre-allocated KV cache (chapter 11). Each ``step`` first admits waiting
  requests into free rows: the prompt runs alone once (prefill), and its keys and values are copied into the row,
  right-aligned to the cache's current column, with the columns before it masked as padding. Then one decode step
  runs every active row together. A row leaves when it stops, runs out of budget, is cancelled or times out, and
  its slot is free for the next request at the very next step.
- Positions come from each row's mask (chapter 10: a token's position counts the real tokens before it), so a row
  may hold holes: columns written while it was not there. When the cache's last column is reached, ``compact``
  moves each row's tokens together to the right, and the holes are gone.
Conventions: a request's tokens depend only on its own prompt, knobs and seed (its own generator), never on the
other rows: greedy output equals the prompt run alone (tested).
Does not: speak HTTP (``serving.app``), decode text, or preempt: a request keeps its slot until it finishes.
"""
from __future__ import annotations

import copy
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from ..inference import Sampling, choose
from ..kv_cache import KVCache

FINISH_REASONS = ("stop", "length", "cancelled", "timeout", "error")  # OpenAI's "stop" and "length", and ours


@dataclass
class Request:
    """One completion: ``prompt`` ids in, up to ``max_tokens`` ids out."""

    prompt: list  # token ids, at least one
    max_tokens: int  # the budget of new tokens
    sampling: Sampling = field(default_factory=Sampling)  # chapter 10's knobs
    seed: int | None = None  # None: a fresh random seed
    stop_ids: frozenset = frozenset()  # tokens that end the completion (not included in it)
    timeout: float | None = None  # seconds from submission; None: no limit
    on_token: object = None  # called with each new token id, from the scheduler's thread
    on_finish: object = None  # called once with the finish reason
    tokens: list = field(default_factory=list)  # the new tokens so far
    finish_reason: str | None = None
    cancelled: bool = False  # set by the caller (a client went away): the slot is freed at the next step

    def __post_init__(self):
        self.deadline = None if self.timeout is None else time.monotonic() + self.timeout
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, ()).item())
        self.generator = torch.Generator().manual_seed(seed)  # its own: draws never depend on other requests


class Scheduler:
    """Continuous batching over ``slots`` rows of one KV cache; call ``step`` in a loop (or ``start`` a thread)."""

    def __init__(self, model, slots: int = 8):
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        if model.cfg.sliding_window is not None:  # a rolling cache's slots are not columns, and holes would count
            raise ValueError("the scheduler serves models without a sliding window (sliding_window=None)")
        self.model, self.slots = model.eval(), slots
        self.device, cfg = model.wte.weight.device, model.cfg
        self.max_len = cfg.block_size
        self.cache = KVCache(cfg, slots, self.max_len, self.device, model.wte.weight.dtype)
        self.mask = torch.zeros(slots, self.max_len, dtype=torch.long, device=self.device)  # (slots, columns)
        self.rows = [None] * slots  # the Request in each slot
        self.pending = torch.zeros(slots, 1, dtype=torch.long, device=self.device)  # sampled, not yet in the cache
        self.waiting, self.lock = deque(), threading.Condition()
        self.steps = self.compactions = 0  # decode steps and compactions run (for measurements)

    # -- the caller's side ------------------------------------------------------------------
    def submit(self, request: Request) -> Request:
        self.check(request)
        with self.lock:
            self.waiting.append(request)
            self.lock.notify()
        return request

    def check(self, request: Request) -> None:
        """A request the model can serve: its prompt and budget fit the context, its ids the vocabulary."""
        cfg, n = self.model.cfg, len(request.prompt)
        if n < 1 or n + request.max_tokens > cfg.block_size or request.max_tokens < 1:
            raise ValueError(f"prompt ({n} tokens) + max_tokens ({request.max_tokens}) must fit the context of "
                             f"{cfg.block_size} tokens, each at least 1")
        if min(request.prompt) < 0 or max(request.prompt) >= cfg.vocab_size:
            raise ValueError(f"prompt ids must be in 0..{cfg.vocab_size - 1}")

    @property
    def active(self) -> int:
        return sum(r is not None for r in self.rows)

    # -- one step: admit, then decode every active row ---------------------------------------
    @torch.no_grad()
    def step(self) -> bool:
        """Admit what fits, then one decode step for every active row; False if there was nothing to do."""
        self._expire()
        while None in self.rows and self.waiting:
            with self.lock:
                request = self.waiting.popleft() if self.waiting else None
            if request is not None and not self._done_before_start(request):
                self._admit(request, self.rows.index(None))
        if not self.active:
            return False
        self._decode()
        return True

    def _done_before_start(self, request: Request) -> bool:
        if request.cancelled:
            self._finish(request, "cancelled")
        elif request.deadline is not None and time.monotonic() > request.deadline:
            self._finish(request, "timeout")
        return request.finish_reason is not None

    def _admit(self, request: Request, slot: int) -> None:
        """Prefill the prompt alone, copy its keys and values into ``slot`` ending at the current column."""
        P = len(request.prompt)
        prompt_cache = KVCache(self.model.cfg, 1, P, self.device, self.cache.k.dtype)
        ids = torch.tensor([request.prompt], device=self.device)  # (1, P)
        logits = self.model(ids, cache=prompt_cache)[0][:, -1]  # (1, V): the first new token's distribution
        end = max(self.cache.length, P)  # the prompt fills columns end-P..end-1; a long one moves every row on
        if end + 1 > self.max_len:  # no room for one more decode step after it: squeeze the holes out first
            self.compact()
            end = max(self.cache.length, P)
        self.cache.length = end
        self.cache.k[:, slot, :, end - P:end] = prompt_cache.k[:, 0]  # (L, KV, P, D): rotated by positions 0..P-1
        self.cache.v[:, slot, :, end - P:end] = prompt_cache.v[:, 0]
        self.mask[slot] = 0
        self.mask[slot, end - P:end] = 1
        self.rows[slot] = request
        self._take(slot, logits)

    def _decode(self) -> None:
        """One token for every row: each row's pending token goes in at the next column, one forward for all."""
        if self.cache.length + 1 > self.max_len:
            self.compact()
        col = self.cache.length
        live = torch.tensor([r is not None for r in self.rows], device=self.device)
        self.mask[:, col] = live.long()  # empty rows write garbage there, masked for everyone, overwritten later
        n = int(live.nonzero().max()) + 1  # rows up to the last busy one (new requests take the lowest free slot)
        rows = copy.copy(self.cache)  # the same cache, seen through its first n rows: writes land in place
        rows.k, rows.v = self.cache.k[:, :n], self.cache.v[:, :n]  # (L, n, KV, columns, D) views
        logits = self.model(self.pending[:n], attention_mask=self.mask[:n, :col + 1], cache=rows)[0][:, -1]  # (n, V)
        self.cache.length = rows.length
        self.steps += 1
        for slot, request in enumerate(self.rows[:n]):
            if request is not None:
                self._take(slot, logits[slot:slot + 1])

    def _take(self, slot: int, logits: torch.Tensor) -> None:
        """Sample the row's next token from its (1, V) logits with its own knobs and generator; finish it or
        keep it pending for the next decode step."""
        request = self.rows[slot]
        ids = torch.tensor([request.prompt + request.tokens], device=self.device)  # (1, n): the penalty, the watermark
        token = int(choose(logits, request.sampling, ids, ids, request.generator))  # chapter 10's sampler, as alone
        if request.cancelled:
            return self._free(slot, "cancelled")
        if token in request.stop_ids:
            return self._free(slot, "stop")
        request.tokens.append(token)
        _notify(request, request.on_token, token)
        if len(request.tokens) == request.max_tokens:
            return self._free(slot, "length")
        self.pending[slot, 0] = token

    def _free(self, slot: int, reason: str) -> None:
        request, self.rows[slot] = self.rows[slot], None
        self.mask[slot] = 0  # its columns become holes for everyone
        self._finish(request, reason)

    @staticmethod
    def _finish(request: Request, reason: str) -> None:
        request.finish_reason = reason
        _notify(request, request.on_finish, reason)

    def _expire(self) -> None:
        """Free the rows of cancelled requests and of those past their deadline; drop such waiting ones too."""
        now = time.monotonic()
        for slot, request in enumerate(self.rows):
            if request is not None and (request.cancelled or (request.deadline is not None and now > request.deadline)):
                self._free(slot, "cancelled" if request.cancelled else "timeout")
        with self.lock:
            gone = [r for r in self.waiting if r.cancelled or (r.deadline is not None and now > r.deadline)]
            for r in gone:
                self.waiting.remove(r)
        for r in gone:
            self._finish(r, "cancelled" if r.cancelled else "timeout")

    # -- keeping the cache's columns in use ----------------------------------------------------
    def compact(self) -> None:
        """Move each row's tokens together, right-aligned to the fewest columns that hold them all: the holes
        (columns written while a row was absent, or by rows that have left) are squeezed out. Keys were rotated
        by their positions when written, and positions come from the mask, so moving columns changes nothing."""
        self.compactions += 1
        used = self.mask[:, :self.cache.length].sum(1)  # (slots,): each row's tokens
        end = int(used.max()) if self.active else 0
        for slot in range(self.slots):
            cols = self.mask[slot, :self.cache.length].nonzero().squeeze(1)  # (n,) the row's columns, in order
            n = len(cols)
            if n:
                self.cache.k[:, slot, :, end - n:end] = self.cache.k[:, slot, :, cols].clone()  # (L, KV, n, D)
                self.cache.v[:, slot, :, end - n:end] = self.cache.v[:, slot, :, cols].clone()
            self.mask[slot] = 0
            self.mask[slot, end - n:end] = 1 if n else 0
        self.cache.length = end

    # -- running in a thread -----------------------------------------------------------------
    def run(self, stop: threading.Event, idle_wait: float = 0.05) -> None:
        """Step until ``stop`` is set, sleeping on the lock while there is nothing to do. A step that fails ends
        every request in flight with "error" (and says why on stderr); the loop itself keeps serving."""
        while not stop.is_set():
            try:
                busy = self.step()
            except Exception as exc:  # noqa: BLE001 - one bad step must not leave every later request hanging
                import sys

                print(f"scheduler step failed ({type(exc).__name__}: {exc}); its requests end with 'error'",
                      file=sys.stderr)
                self._fail_all()
                continue
            if not busy:
                with self.lock:
                    if not self.waiting:
                        self.lock.wait(idle_wait)

    def _fail_all(self) -> None:
        for slot, request in enumerate(self.rows):
            if request is not None:
                self._free(slot, "error")
        self.cache.length = 0

    def start(self) -> tuple[threading.Thread, threading.Event]:
        """Run the scheduler in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="qt-scheduler", daemon=True)
        thread.start()
        return thread, stop

    def run_all(self, requests) -> list:
        """Submit ``requests`` and step until every one has finished (no thread): for tests and measurements."""
        for r in requests:
            self.submit(r)
        while any(r.finish_reason is None for r in requests):
            self.step()
        return requests


def _notify(request: Request, callback, value) -> None:
    """Call a request's callback; one that fails (its client's event loop is gone) cancels that request only."""
    if callback is None:
        return
    try:
        callback(value)
    except Exception:  # noqa: BLE001 - the scheduler serves everyone else regardless
        request.cancelled = True
