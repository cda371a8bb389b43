"""Diagrams of the course's mechanisms, drawn with matplotlib so the book builds offline (chapter 10 onwards).

Does: each function draws one figure from boxes, arrows and grids and returns it; chapters display it.
Does not: compute anything the figure claims; the chapters check those claims with code.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch


def _box(ax, x, y, w, h, text, color="#dbe9f6", fontsize=10):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec="#3b5b7a"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, x0, y0, x1, y1):
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=14, color="#3b5b7a"))


def sampling_pipeline():
    """Chapter 10: logits -> repetition penalty -> temperature -> top-k -> top-p -> min-p -> softmax -> draw."""
    steps = [("model", "logits z\n(B, V)", "#f4e3c1"), ("repetition\npenalty", "seen tokens:\nz/r or z·r", None),
             ("temperature", "z / τ\n(τ = 0: arg max)", None), ("top-k", "keep the k\nlargest", None),
             ("top-p", "keep mass p,\ncrossing token in", None), ("min-p", "keep p_i ≥\nmin_p · p_max", None),
             ("softmax +\ndraw", "multinomial\n(seeded)", "#d5ecd4")]
    fig, ax = plt.subplots(figsize=(13, 2.6))
    w, gap = 1.55, 0.35
    for i, (title, body, color) in enumerate(steps):
        x = i * (w + gap)
        _box(ax, x, 0.9, w, 0.9, title, color or "#dbe9f6", 10)
        ax.text(x + w / 2, 0.45, body, ha="center", va="center", fontsize=8.5, color="#333")
        if i:
            _arrow(ax, x - gap, 1.35, x, 1.35)
    ax.text(0, 2.05, "process_logits: each filter sets the tokens it drops to -inf; transformers applies them in this order",
            fontsize=9, color="#555")
    ax.set_xlim(-0.1, len(steps) * (w + gap))
    ax.set_ylim(0, 2.3)
    ax.axis("off")
    return fig


def left_padding(rows, pad="·"):
    """Chapter 10: a batch of prompts of different lengths, right-aligned: tokens, mask and positions."""
    T = max(len(r) for r in rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.55 * len(rows) + 1.2))
    titles = ["tokens (padding on the left)", "attention_mask", "positions = cumsum(mask) - 1"]
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, T)
        ax.set_ylim(len(rows), 0)
        ax.axis("off")
    for i, r in enumerate(rows):
        n_pad = T - len(r)
        for j in range(T):
            real = j >= n_pad
            color = "#dbe9f6" if real else "#eeeeee"
            cells = [(r[j - n_pad] if real else pad), ("1" if real else "0"), (str(j - n_pad) if real else "0")]
            for ax, text in zip(axes, cells):
                ax.add_patch(plt.Rectangle((j, i), 0.95, 0.9, fc=color, ec="white"))
                ax.text(j + 0.47, i + 0.47, text.replace("\n", "⏎"), ha="center", va="center", fontsize=9)
    fig.suptitle("Each row's new token goes in the same last column; padding is masked out and does not count as a position",
                 fontsize=10, y=0.02)
    return fig


def kv_cache(steps: int = 8):
    """Chapter 11: which positions each decoding step computes, without and with a KV cache."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    for ax, cached in zip(axes, (False, True)):
        for step in range(steps):
            for pos in range(step + 1):
                new = pos == step
                color = "#4c78a8" if (new or not cached) else "#dbe9f6"
                ax.add_patch(plt.Rectangle((pos, step), 0.92, 0.85, fc=color, ec="white"))
        ax.set_xlim(0, steps)
        ax.set_ylim(steps, 0)
        ax.set_xlabel("position")
        ax.set_ylabel("decoding step")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("with a KV cache: one new position per step; keys and values of the past are read (light)"
                     if cached else "without a cache: every step recomputes every position (dark)", fontsize=9)
    return fig


def sliding_window(T: int = 12, window: int = 4):
    """Chapter 11: the causal mask, and the same mask cut to a window of the latest positions."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, w in zip(axes, (None, window)):
        for t in range(T):
            for s in range(T):
                ok = s <= t and (w is None or t - s < w)
                ax.add_patch(plt.Rectangle((s, t), 0.92, 0.92, fc="#4c78a8" if ok else "#eeeeee", ec="white"))
        ax.set_xlim(0, T)
        ax.set_ylim(T, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
        ax.set_title("causal" if w is None else f"sliding window of {w}: a cache of {w} positions suffices", fontsize=10)
    return fig


def float_formats():
    """Chapter 12: the bits of fp32, bf16 and fp16: sign, exponent (range) and mantissa (precision)."""
    formats = [("fp32", 8, 23), ("bf16", 8, 7), ("fp16", 5, 10)]
    fig, ax = plt.subplots(figsize=(11, 2.6))
    for row, (name, exponent, mantissa) in enumerate(formats):
        y = 2 - row
        ax.text(-0.8, y + 0.35, name, ha="right", va="center", fontsize=11)
        for i, (n, color, label) in enumerate([(1, "#e45756", "sign"), (exponent, "#4c78a8", f"exponent {exponent}"),
                                               (mantissa, "#72b7b2", f"mantissa {mantissa}")]):
            x = sum(k for k, _, _ in [(1, 0, 0), (exponent, 0, 0)][:i])
            ax.add_patch(plt.Rectangle((x, y), n, 0.7, fc=color, ec="white"))
            if n > 1:
                ax.text(x + n / 2, y + 0.35, label, ha="center", va="center", fontsize=9, color="white")
    ax.text(0, 3.0, "exponent bits set the range (bf16 keeps fp32's 8); mantissa bits set the precision "
            "(fp16 keeps 10, bf16 only 7)", fontsize=9, color="#555")
    ax.set_xlim(-2.5, 32.5)
    ax.set_ylim(-0.2, 3.3)
    ax.axis("off")
    return fig


def activation_checkpointing(layers: int = 4):
    """Chapter 12: what the forward keeps for the backward, without and with activation checkpointing."""
    fig, axes = plt.subplots(2, 1, figsize=(9, 4.4))
    for ax, checkpointed in zip(axes, (False, True)):
        for i in range(layers):
            x = i * 2.2
            _box(ax, x, 1.0, 1.7, 0.8, f"block {i + 1}", "#dbe9f6")
            ax.add_patch(plt.Rectangle((x - 0.35, 1.25), 0.25, 0.3, fc="#e45756"))  # the block's input
            if not checkpointed:
                for j in range(4):  # the activations inside the block
                    ax.add_patch(plt.Rectangle((x + 0.1 + j * 0.4, 0.35), 0.3, 0.4, fc="#f58518"))
            if i:
                _arrow(ax, x - 0.5, 1.4, x - 0.35, 1.4)
        ax.set_title("checkpointing: only each block's input (red) is kept; the backward reruns the block"
                     if checkpointed else "plain: every activation inside every block (orange) is kept for the backward",
                     fontsize=9)
        ax.set_xlim(-0.6, layers * 2.2)
        ax.set_ylim(0.1, 2.1)
        ax.axis("off")
    return fig


def data_parallel(ranks: int = 2):
    """Chapter 13: each rank runs the whole model on its rows of the batch; an all-reduce averages the gradients."""
    fig, ax = plt.subplots(figsize=(11, 3.6))
    for r in range(ranks):
        y = 2.2 - r * 1.5
        _box(ax, 0, y, 1.9, 0.9, f"share {r + 1} of {ranks}\nof the batch's rows", "#f4e3c1", 9)
        _box(ax, 2.6, y, 2.0, 0.9, f"rank {r}: model\nforward, backward", "#dbe9f6", 9)
        _box(ax, 5.3, y, 1.6, 0.9, f"gradients g{r}", "#fde2e4", 9)
        _box(ax, 8.9, y, 2.0, 0.9, "the same\noptimizer step", "#d5ecd4", 9)
        _arrow(ax, 1.9, y + 0.45, 2.6, y + 0.45)
        _arrow(ax, 4.6, y + 0.45, 5.3, y + 0.45)
        _arrow(ax, 6.9, y + 0.45, 7.3, 1.8 if r == 0 else 1.2)
        _arrow(ax, 8.5, 1.8 if r == 0 else 1.2, 8.9, y + 0.45)
    _box(ax, 7.3, 0.95, 1.2, 1.1, "all-reduce:\nmean of\nthe g's", "#e8dff5", 9)
    ax.set_xlim(-0.1, 11)
    ax.set_ylim(0.4, 3.3)
    ax.axis("off")
    return fig


def zero_stages(ranks: int = 4):
    """Chapter 13: what each rank holds under DDP and ZeRO stages 1-3: weights, gradients, optimizer state."""
    parts = [("weights", 2, "#4c78a8"), ("gradients", 2, "#f58518"), ("optimizer state", 12, "#54a24b")]
    rows = [("DDP (stage 0)", 0), ("ZeRO-1: optimizer state split", 1), ("ZeRO-2: + gradients", 2),
            ("ZeRO-3 / FSDP: + weights", 3)]
    fig, ax = plt.subplots(figsize=(11, 3.4))
    for i, (label, stage) in enumerate(rows):
        y = 3 - i
        ax.text(-0.3, y + 0.3, label, ha="right", va="center", fontsize=9)
        x = 0
        for j, (name, width, color) in enumerate(parts):
            split = {0: stage >= 3, 1: stage >= 2, 2: stage >= 1}[j]
            w = width / ranks if split else width
            ax.add_patch(plt.Rectangle((x, y), w, 0.6, fc=color, ec="white"))
            if split:
                ax.add_patch(plt.Rectangle((x + w, y), width - w, 0.6, fc="none", ec=color, ls=":"))
            x += width + 0.3
    for j, (name, width, color) in enumerate(parts):
        ax.text(sum(p[1] + 0.3 for p in parts[:j]) + width / 2, 3.75, f"{name}\n{width} bytes/param", ha="center",
                fontsize=8.5, color=color)
    ax.text(0, -0.35, f"solid: what one of {ranks} ranks holds; dotted: held by the other ranks", fontsize=8.5,
            color="#555")
    ax.set_xlim(-5.2, 17.2)
    ax.set_ylim(-0.6, 4.3)
    ax.axis("off")
    return fig


def lora():
    """Chapter 15: a frozen projection W beside its trainable low-rank path B·A, added with the scale alpha / r."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    _box(ax, 0, 1.45, 1.3, 0.8, "x\n(B, T, in)", "#f4e3c1", 9)
    _box(ax, 2.2, 2.4, 2.6, 0.9, "W (out, in)\nfrozen: no gradient", "#e3e3e3", 9)
    _box(ax, 2.2, 0.9, 1.1, 0.9, "A (r, in)\nrandom", "#d5ecd4", 9)
    _box(ax, 3.7, 0.9, 1.1, 0.9, "B (out, r)\nzero at start", "#d5ecd4", 9)
    _box(ax, 5.6, 1.45, 0.9, 0.8, "+", "#e8dff5", 14)
    _box(ax, 7.2, 1.45, 1.5, 0.8, "y\n(B, T, out)", "#f4e3c1", 9)
    _arrow(ax, 1.3, 1.95, 2.2, 2.85)
    _arrow(ax, 1.3, 1.75, 2.2, 1.35)
    _arrow(ax, 3.3, 1.35, 3.7, 1.35)
    _arrow(ax, 4.8, 2.85, 5.6, 2.05)
    _arrow(ax, 4.8, 1.35, 5.6, 1.7)
    _arrow(ax, 6.5, 1.85, 7.2, 1.85)
    ax.text(3.5, 0.45, "× alpha / r: the only trainable numbers are r·(in + out)", ha="center", fontsize=9,
            color="#2d6a2d")
    ax.text(5.1, 3.55, "merged: W' = W + (alpha / r) · B A, one matmul again", ha="center", fontsize=9, color="#555")
    ax.set_xlim(-0.1, 8.8)
    ax.set_ylim(0.2, 3.8)
    ax.axis("off")
    return fig


def dpo():
    """Chapter 16: one preference pair through the policy and the frozen reference, into DPO's loss."""
    fig, ax = plt.subplots(figsize=(11, 3.8))
    _box(ax, 0, 2.3, 2.3, 0.9, "prompt x +\nchosen y_w", "#d5ecd4", 9)
    _box(ax, 0, 0.7, 2.3, 0.9, "prompt x +\nrejected y_l", "#fde2e4", 9)
    _box(ax, 3.1, 2.3, 2.4, 0.9, "policy πθ (trains)\nlog πθ(y|x), summed\nover completion tokens", "#dbe9f6", 8.5)
    _box(ax, 3.1, 0.7, 2.4, 0.9, "reference πref\n(frozen copy)\nlog πref(y|x)", "#e3e3e3", 8.5)
    _box(ax, 6.3, 1.5, 2.1, 0.9, "rewards\nr = β (log πθ − log πref)", "#e8dff5", 8.5)
    _box(ax, 9.1, 1.5, 1.8, 0.9, "loss\n−log σ(r_w − r_l)", "#f4e3c1", 9)
    for y in (2.75, 1.15):
        _arrow(ax, 2.3, y, 3.1, 2.75)
        _arrow(ax, 2.3, y, 3.1, 1.15)
    _arrow(ax, 5.5, 2.75, 6.3, 2.1)
    _arrow(ax, 5.5, 1.15, 6.3, 1.8)
    _arrow(ax, 8.4, 1.95, 9.1, 1.95)
    ax.text(5.5, 0.2, "no reward model, no sampling during training: the preference pairs and one reference pass",
            ha="center", fontsize=9, color="#555")
    ax.set_xlim(-0.1, 11)
    ax.set_ylim(0, 3.5)
    ax.axis("off")
    return fig


def continuous_batching():
    """Chapter 17: static batching (a batch runs until its longest request ends) against continuous batching
    (a finished request's slot takes the next waiting one at the next step)."""
    lengths = [6, 14, 4, 9, 5, 11, 3, 7]  # decode steps each request needs, in arrival order
    colors = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d"]
    fig, axes = plt.subplots(2, 1, figsize=(11, 4.4), sharex=True)
    slots = 4
    static_end, t = [], 0
    for b in range(0, len(lengths), slots):  # static: wait for the whole batch
        batch = lengths[b:b + slots]
        for s, n in enumerate(batch):
            axes[0].broken_barh([(t, n)], (s + 0.1, 0.8), color=colors[b + s])
            axes[0].broken_barh([(t + n, max(batch) - n)], (s + 0.1, 0.8), color="#eeeeee", hatch="///",
                                edgecolor="#cccccc")
            axes[0].text(t + 0.2, s + 0.5, f"R{b + s + 1}", va="center", fontsize=8, color="white")
        t += max(batch)
    free, start = [0] * slots, {}
    for i, n in enumerate(lengths):  # continuous: the earliest free slot takes the next request
        s = min(range(slots), key=lambda j: free[j])
        start[i] = free[s]
        axes[1].broken_barh([(free[s], n)], (s + 0.1, 0.8), color=colors[i])
        axes[1].text(free[s] + 0.2, s + 0.5, f"R{i + 1}", va="center", fontsize=8, color="white")
        free[s] += n
    axes[0].set_title(f"static batching: {t} steps; hatched = a slot waiting for its batch's longest request",
                      fontsize=9.5)
    axes[1].set_title(f"continuous batching: {max(free)} steps; a slot takes the next request as soon as it is free",
                      fontsize=9.5)
    for ax in axes:
        ax.set_yticks([s + 0.5 for s in range(slots)], [f"slot {s}" for s in range(slots)], fontsize=8)
        ax.set_ylim(0, slots)
    axes[1].set_xlabel("decode step")
    plt.tight_layout()
    return fig
