"""Causal self-attention: the course's one attention module (chapter 06), extended by later chapters.

Does:
- ``Attention``: multi-head attention where position t reads positions 0..t (chapter 06). Its keys and
  values may have fewer heads than its queries, grouped-query attention (chapter 08: ``n_kv_heads``;
  multi-head attention is n_kv_heads == n_head, multi-query n_kv_heads == 1), and its queries and keys may
  be rotated by position (RoPE, chapter 08, ``qt.rope``). Per-sequence positions and a key mask let a
  left-padded batch run as if each sequence ran alone (chapter 10). With a cache (chapter 11,
  ``qt.kv_cache``), the T new positions attend to every position written so far. With a sliding window
  (chapter 11, ``sliding_window``), a query reads only the latest ``window`` positions, itself included.
  Chapter 12 adds a second backend: ``backend = "sdpa"`` hands the same inputs and mask to torch's fused
  ``F.scaled_dot_product_attention``, which never stores the (T, S) attention weights.
- ``repeat_kv``: each key/value head serves a group of query heads.
Conventions (tested): ``qkv`` outputs q | k | v concatenated, (H + 2 KV) * D rows; query head h reads
key/value head h // (H / KV); scores are (q / sqrt(D)) . k; masked scores are -inf before the softmax; which
keys a query sees is computed from their columns (``visible``), so a rolling cache may hold them in any order.
Does not: project anything but q, k, v and the output, normalise, or know about training.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

BACKENDS = ("manual", "sdpa")  # how Attention computes softmax(q k^T / sqrt(D)) v: written out, or torch's kernel


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, KV, S, D) -> (B, KV * groups, S, D): head h of the result is head h // groups of x."""
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


class Attention(nn.Module):
    """Causal attention with n_kv_heads key/value heads shared by groups of query heads, and optional RoPE."""

    def __init__(self, cfg):
        super().__init__()
        self.n_head, self.n_kv = cfg.n_head, cfg.n_kv_heads
        self.head_dim = cfg.n_embd // cfg.n_head
        q_dim, kv_dim = self.n_head * self.head_dim, self.n_kv * self.head_dim
        self.qkv = nn.Linear(cfg.n_embd, q_dim + 2 * kv_dim, bias=cfg.bias)  # q | k | v in one matmul
        self.proj = nn.Linear(q_dim, cfg.n_embd, bias=cfg.bias)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.rope = None
        if cfg.position == "rope":  # chapter 08: positions rotate queries and keys
            from .rope import RotaryEmbedding

            self.rope = RotaryEmbedding(self.head_dim, cfg.block_size, cfg.rope_theta)
        self.window = cfg.sliding_window  # chapter 11: None reads every earlier position
        self.backend = "manual"  # chapter 12: or "sdpa" (``GPT.set_attention``): how, not what, it computes

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None, cache=None) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        B, T, _ = x.shape
        H, D = self.n_head, self.head_dim
        start = 0 if cache is None else cache.length  # the column of the first new position
        q, k, v = self.project(x, positions, start)
        q_pos = k_pos = None  # keys in columns 0..S-1, queries the last T of them: true until a cache rolls
        if cache is not None:  # chapter 11: add this step's keys and values to the past ones, read them all
            k, v, k_pos = cache.update(k, v)  # (B, KV, S, D) and the column each key came from (S,)
            if self.window is not None:  # a rolling cache holds its columns in any order: name the queries'
                q_pos = torch.arange(start, start + T, device=x.device)
        if key_mask is not None and k_pos is not None:
            key_mask = key_mask[:, k_pos.clamp(min=0)]  # (B, S): padding, looked up by column
        y = self.attend(q, k, v, key_mask, q_pos, k_pos)  # (B, H, T, D)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, H * D)))  # (B, T, H, D) -> (B, T, C)

    def project(self, x: torch.Tensor, positions: torch.Tensor | None = None, start: int = 0):
        """x (B, T, C) -> q (B, H, T, D), k and v (B, KV, T, D): one matmul, split, queries and keys rotated
        (by ``positions`` (B, T), or else as columns start..start+T-1)."""
        B, T, _ = x.shape
        H, KV, D = self.n_head, self.n_kv, self.head_dim
        heads = self.qkv(x).view(B, T, H + 2 * KV, D)  # (B, T, (H + 2KV) * D) -> (B, T, H + 2KV, D): q | k | v
        qk, v = heads.split([H + KV, KV], dim=2)
        if self.rope is not None:  # queries and keys share their positions' angles: one call rotates both
            qk = self.rope(qk, positions, start)
        q, k = qk.split([H, KV], dim=2)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def visible(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        """(T, S): may the query in column q_pos[t] read the key in column k_pos[s]? Causal, and within the window."""
        ok = (k_pos[None, :] <= q_pos[:, None]) & (k_pos[None, :] >= 0)  # an empty cache slot holds column -1
        if self.window is not None:
            ok &= q_pos[:, None] - k_pos[None, :] < self.window
        return ok

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None,
               q_pos: torch.Tensor | None = None, k_pos: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(q k^T / sqrt(D) + causal mask) v: q (B, H, T, D) in columns q_pos (default: the last T of S),
        k, v (B, KV, S, D) in columns k_pos (default 0..S-1); key_mask (B, S), False at padding. -> (B, H, T, D).

        Grouped-query attention means ``repeat_kv``: query head h reads key/value head h // G, G = H / KV. Rather
        than copy every key and value G times, the G query heads of a group are laid side by side as rows,
        (B, H, T, D) -> (B, KV, G * T, D), so one matrix product per key/value head serves its whole group."""
        B, H, T, D = q.shape
        S, KV = k.size(2), k.size(1)
        G = H // KV
        plain = T == 1 and key_mask is None and self.window is None  # one new query: every key it is given is past
        if self.backend == "sdpa":  # chapter 12: torch's fused kernel, the same function
            return self._attend_sdpa(q, k, v, key_mask, q_pos, k_pos, plain)
        q = q.reshape(B, KV, G * T, D)  # head h = kv * G + g: the rows of group kv are (g, t), g-major
        att = (q * D**-0.5) @ k.transpose(-2, -1)  # (B, KV, G*T, S); scaling q: T x D products, not T x S
        if not plain:
            allowed = self.mask(T, S, key_mask, q_pos, k_pos, q.device)  # (T, S) or (B, 1, T, S)
            allowed = allowed.repeat(*[1] * (allowed.dim() - 2), G, 1)  # (..., G*T, S): the same mask for each head
            att = att.masked_fill(~allowed, float("-inf"))
        return (self.attn_drop(att.softmax(dim=-1)) @ v).view(B, H, T, D)  # (B, KV, G*T, D) -> (B, H, T, D)

    def mask(self, T: int, S: int, key_mask: torch.Tensor | None = None, q_pos: torch.Tensor | None = None,
             k_pos: torch.Tensor | None = None, device=None) -> torch.Tensor:
        """(T, S), or (B, 1, T, S) with a key mask: True where a query may read a key (defaults as ``attend``)."""
        if k_pos is None:
            k_pos = torch.arange(S, device=device)
        if q_pos is None:
            q_pos = k_pos[S - T:]
        allowed = self.visible(q_pos, k_pos)  # (T, S)
        if key_mask is not None:  # padding is never read; a padding query reads itself, so no row is empty
            itself = k_pos[None, :] == q_pos[:, None]  # (T, S)
            allowed = allowed & key_mask[:, None, None, :].bool() | itself  # (B, 1, T, S)
        return allowed

    def _attend_sdpa(self, q, k, v, key_mask, q_pos, k_pos, plain: bool) -> torch.Tensor:
        """``F.scaled_dot_product_attention`` on the same inputs: a fused kernel that never stores the (T, S)
        weights (chapter 12). A plain causal mask is the kernel's own (``is_causal``); any other is passed in."""
        T, S = q.size(2), k.size(2)
        causal = key_mask is None and self.window is None and k_pos is None and T == S
        mask = None if plain or causal else self.mask(T, S, key_mask, q_pos, k_pos, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.attn_drop.p if self.training
                                              else 0.0, is_causal=causal and T > 1, enable_gqa=k.size(1) < q.size(1))


@torch.no_grad()
def attention_maps(model, idx: torch.Tensor) -> torch.Tensor:
    """(L, H, T, T) attention weights of every layer and head for idx (1, T) (chapter 11: what heads look at).

    Recomputed from each attention's own input with its own pieces (``project``, ``visible``), so it shows
    exactly what ``Attention.attend`` weighs."""
    inputs = []
    hooks = [b.attn.register_forward_hook(lambda m, args, out: inputs.append(args[0])) for b in model.blocks]
    try:
        model.eval()(idx)
    finally:
        for h in hooks:
            h.remove()
    maps = []
    for block, x in zip(model.blocks, inputs):
        a, T = block.attn, x.size(1)
        q, k, _ = a.project(x)
        k = repeat_kv(k, a.n_head // a.n_kv)  # (B, H, T, D)
        att = (q * a.head_dim**-0.5) @ k.transpose(-2, -1)  # (B, H, T, T)
        pos = torch.arange(T, device=x.device)
        maps.append(att.masked_fill(~a.visible(pos, pos), float("-inf")).softmax(-1)[0])
    return torch.stack(maps)


def head_scores(maps: torch.Tensor, text: str) -> dict[str, torch.Tensor]:
    """The mean weight (L, H) that each head of ``maps`` (L, H, T, T), from ``attention_maps`` on the T characters
    of ``text``, puts on one key per query (chapters 05 and 11): the previous character; the latest space or newline
    before it (where the current word began); the latest newline before it (where the line began). The last two
    leave the previous character out, so that a head is not credited twice for one key; a query without such a key
    does not count."""
    if maps.shape[-1] != len(text):
        raise ValueError(f"maps cover {maps.shape[-1]} positions but the text has {len(text)} characters")
    pairs = {"previous character": [(t, t - 1) for t in range(1, len(text))]}
    for name, stops in (("latest space or newline", " \n"), ("latest newline", "\n")):
        key, pairs[name] = -1, []
        for t in range(2, len(text)):
            key = t - 2 if text[t - 2] in stops else key  # the latest stop at or before t - 2
            if key >= 0:
                pairs[name].append((t, key))
    return {name: maps[:, :, [t for t, _ in p], [s for _, s in p]].mean(-1) for name, p in pairs.items()}
