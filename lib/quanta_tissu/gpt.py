"""The GPT in PyTorch (chapter 06): GPT-2's architecture at any size, and Llama's by config (chapter 08).

Does: token + learned position embeddings, N pre-norm blocks of causal multi-head attention and a
GELU MLP, a final LayerNorm and a language-model head (optionally tied to the token embedding);
dropout after the embeddings, the attention weights and each residual branch; GPT-2's initialisation;
clear errors for inconsistent configs and bad inputs.
Chapter 08 adds switches (``norm``, ``mlp``, ``position``, ``n_kv_heads``, ``bias``) whose pieces live
in ``quanta_tissu.llama``, ``quanta_tissu.rope`` and the one attention, ``quanta_tissu.attention``; the
defaults are GPT-2's, so chapter 06's model is unchanged. Chapter 10 adds ``attention_mask`` (left padding),
chapter 11 a KV cache, chapter 12 two execution switches that leave the function unchanged: ``set_attention``
(manual or SDPA) and ``checkpointing`` (activation checkpointing: recompute blocks in the backward pass).
Does not: train, sample, store keys and values (``qt.kv_cache`` does), or load other formats: training, inference and
interop modules import this one, never the reverse.
Conventions (tested): ``nn.Linear`` weights are (out, in); the attention projection outputs q|k|v
concatenated; GELU is the tanh approximation; LayerNorm eps is 1e-5.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import Attention
from .checks import kind, numpy_hint

LLAMA_SWITCHES = dict(norm="rmsnorm", mlp="swiglu", position="rope", bias=False)  # chapter 08's switches, all on


@dataclass
class GPTConfig:
    """Hyperparameters of a GPT. Presets: ``tiny`` (tests), ``shakespeare_char`` (CPU), ``gpt2`` (124M)."""

    vocab_size: int = 65  # number of distinct token ids
    block_size: int = 64  # context length: the most positions the model reads at once
    n_layer: int = 4  # number of transformer blocks
    n_head: int = 4  # attention heads per block; n_embd must be divisible by it
    n_embd: int = 128  # d_model: width of the residual stream
    d_ff: int | None = None  # hidden width of the MLP; None means 4 * n_embd
    dropout: float = 0.0  # dropout probability (embeddings, attention weights, residual branches)
    bias: bool = True  # biases in Linear and LayerNorm layers, as GPT-2
    tie_weights: bool = True  # share the token embedding with the output head, as GPT-2
    norm: str = "layernorm"  # "layernorm" (GPT-2) or "rmsnorm" (Llama; chapter 08)
    mlp: str = "gelu"  # "gelu": Linear-GELU-Linear (GPT-2), or "swiglu": gated, three matrices (Llama)
    position: str = "learned"  # "learned" position embedding added to tokens (GPT-2) or "rope" (Llama)
    rope_theta: float = 10000.0  # RoPE base period: the longest wavelength is about 2 pi theta positions
    n_kv_heads: int | None = None  # key/value heads: None means n_head (MHA), 1 is MQA, between is GQA
    norm_eps: float = 1e-5  # epsilon inside LayerNorm / RMSNorm
    sliding_window: int | None = None  # chapter 11: attend to at most this many latest positions; None: all

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}); "
                             f"try n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))}")
        choices = {"norm": ("layernorm", "rmsnorm"), "mlp": ("gelu", "swiglu"), "position": ("learned", "rope")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_head
        if self.n_kv_heads < 1 or self.n_head % self.n_kv_heads:
            raise ValueError(f"GPTConfig: n_head ({self.n_head}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        if self.position == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"GPTConfig: RoPE needs an even head size, got n_embd / n_head = {self.n_embd // self.n_head}")
        if self.d_ff is None:  # SwiGLU's three matrices at 8/3 C hold what GELU's two hold at 4 C
            self.d_ff = 4 * self.n_embd if self.mlp == "gelu" else _swiglu_hidden(self.n_embd)
        window = self.sliding_window
        if window is not None and (not isinstance(window, int) or window < 1):
            raise ValueError(f"GPTConfig.sliding_window must be None or a positive integer, got {window!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def tiny(cls, **overrides) -> "GPTConfig":
        """A few thousand parameters: for tests and quick checks."""
        return cls(**{**dict(vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=16), **overrides})

    @classmethod
    def shakespeare_char(cls, **overrides) -> "GPTConfig":
        """nanoGPT's documented CPU recipe on Tiny Shakespeare characters (0.8M parameters)."""
        return cls(**{**dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0), **overrides})

    @classmethod
    def gpt2(cls, **overrides) -> "GPTConfig":
        """GPT-2 small (124M parameters): the real one, for a GPU."""
        return cls(**{**dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768), **overrides})

    @classmethod
    def llama(cls, **overrides) -> "GPTConfig":
        """Every chapter-08 switch on: RMSNorm, SwiGLU, RoPE, no biases (GQA by n_kv_heads)."""
        return cls(**{**LLAMA_SWITCHES, **overrides})

    @classmethod
    def shakespeare_llama(cls, **overrides) -> "GPTConfig":
        """The course's Llama, sized for the most quality per CPU-minute: nanoGPT's CPU shape (4 heads,
        context 64) but 3 layers of width 96 and 2 key/value heads, so that more steps fit in the same
        wall time (chapter 08)."""
        return cls.shakespeare_char(**{**dict(n_layer=3, n_embd=96, n_kv_heads=2), **LLAMA_SWITCHES, **overrides})

    @classmethod
    def shakespeare_llama_10min(cls, **overrides) -> "GPTConfig":
        """A deeper Llama with a longer context for a 10-minute CPU run (chapter 08's best-in-10-minutes figure)."""
        return cls.shakespeare_char(**{**dict(n_layer=6, n_embd=128, block_size=128), **LLAMA_SWITCHES, **overrides})

    @property
    def rolls_past_block(self) -> bool:
        """Whether a cached decoder may run past block_size (chapter 11): a sliding window bounds how far back a
        query reads, and RoPE positions, unlike a learned table, exist at any index."""
        return self.sliding_window is not None and self.position == "rope"

    def to_dict(self) -> dict:
        return asdict(self)


def _swiglu_hidden(dim: int) -> int:
    from .llama import swiglu_hidden

    return swiglu_hidden(dim)


def make_norm(cfg: GPTConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        from .llama import RMSNorm

        return RMSNorm(cfg.n_embd, cfg.norm_eps)
    return nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps, bias=cfg.bias)


def make_mlp(cfg: GPTConfig) -> nn.Module:
    if cfg.mlp == "swiglu":
        from .llama import SwiGLU

        return SwiGLU(cfg.n_embd, cfg.d_ff, cfg.bias, cfg.dropout)
    return MLP(cfg)


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(C, d_ff), GELU (tanh), Linear(d_ff, C)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, cfg.d_ff, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_ff, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln1(x)), then + mlp(ln2(.))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = make_norm(cfg)  # LayerNorm, or RMSNorm (chapter 08)
        self.attn = Attention(cfg)  # multi-head; grouped-query and rotary by config (chapter 08)
        self.ln2 = make_norm(cfg)
        self.mlp = make_mlp(cfg)  # GELU MLP, or SwiGLU

    def forward(self, x: torch.Tensor, positions=None, key_mask=None, cache=None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), positions, key_mask, cache)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, vocab_size), and the loss if targets are given."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # token embedding
        if cfg.position == "learned":  # with RoPE, positions enter inside attention instead
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight  # one matrix reads and writes tokens
        self.checkpointing = False  # chapter 12: recompute each block's activations in the backward pass
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def set_attention(self, backend: str) -> "GPT":
        """Compute every block's attention with ``backend`` (chapter 12): "manual" or "sdpa"; the weights and
        the function stay the same."""
        from .attention import BACKENDS

        if backend not in BACKENDS:
            raise ValueError(f"attention backend must be one of {BACKENDS}, got {backend!r}")
        for block in self.blocks:
            block.attn.backend = backend
        return self

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Parameters, counting a tied matrix once; optionally without the position embedding."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding and hasattr(self, "wpe") else n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, cache=None):
        """idx: (B, T) int64 ids -> (logits (B, T, V), mean cross-entropy or None).

        ``attention_mask`` (B, S), 1 for tokens and 0 for left padding (chapter 10): padding is never read,
        and each token's position counts only the tokens before it, as if its sequence ran alone.
        ``cache`` (a ``qt.kv_cache.KVCache``, chapter 11) holds the keys and values of the positions before
        ``idx``; then S = cache.length + T, and the cache grows by T."""
        past = 0 if cache is None else cache.length
        self._check_ids(idx, "idx", past=past)
        B, T = idx.shape
        # positions: None means past..past+T-1 in every row; a left-padded row counts only its tokens (B, T)
        positions = None if attention_mask is None else self._positions(attention_mask, (B, past + T))[:, past:]
        x = self.wte(idx)  # (B, T, C)
        if self.cfg.position == "learned":
            pos = torch.arange(past, past + T, device=idx.device) if positions is None else positions  # (T,) or (B, T)
            x = x + self.wpe(pos)  # (B, T, C) + (T, C) or (B, T, C)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            layer_cache = None if cache is None else cache.layer(i)
            if self.checkpointing and self.training and torch.is_grad_enabled():  # chapter 12: keep only x
                x = torch.utils.checkpoint.checkpoint(block, x, positions, attention_mask, layer_cache,
                                                      use_reentrant=False)  # the backward reruns the block
            else:
                x = block(x, positions, attention_mask, layer_cache)
        if cache is not None:
            cache.advance(T)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        self._check_ids(targets, "targets", shape=idx.shape)
        loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))  # (B*T, V) vs (B*T,)
        return logits, loss

    @staticmethod
    def _positions(attention_mask: torch.Tensor, shape) -> torch.Tensor:
        """(B, T) positions from a left-padding mask: 0 at each sequence's first token (padding gets 0 too)."""
        if tuple(attention_mask.shape) != tuple(shape):
            raise ValueError(f"attention_mask must have the shape of idx {tuple(shape)}, "
                             f"got {tuple(attention_mask.shape)}")
        return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)

    def _check_ids(self, ids: torch.Tensor, name: str, shape=None, past: int = 0) -> None:
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{name} must be a torch.Tensor of token ids (int64 or int32), got {kind(ids)}"
                            f"{numpy_hint(ids)}")
        if ids.dim() != 2:
            raise ValueError(f"{name} must have shape (B, T), got {tuple(ids.shape)}; add a batch axis with ids[None]")
        if shape is not None and ids.shape != shape:
            raise ValueError(f"{name} must have the shape of idx {tuple(shape)}, got {tuple(ids.shape)}")
        too_long = past + ids.size(1) > self.cfg.block_size and not self.cfg.rolls_past_block
        if ids.size(1) > self.cfg.block_size or too_long:
            raise ValueError(f"sequence of {past + ids.size(1)} tokens is longer than the context (block_size "
                             f"{self.cfg.block_size}); crop it to the last {self.cfg.block_size} tokens")
        low, high = ids.aminmax() if ids.numel() else (0, 0)  # one pass, read back once: this runs every token
        if low < 0 or high >= self.cfg.vocab_size:
            raise ValueError(f"{name} holds ids outside 0..{self.cfg.vocab_size - 1} "
                             f"(found {int(low)}..{int(high)}): does the tokenizer match the model?")
