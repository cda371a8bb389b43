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
    axes[0].set_title(f"static batching: {t} steps; grey = a slot waiting for its batch's longest request",
                      fontsize=9.5)
    axes[1].set_title(f"continuous batching: {max(free)} steps; a slot takes the next request as soon as it is free",
                      fontsize=9.5)
    for ax in axes:
        ax.set_yticks([s + 0.5 for s in range(slots)], [f"slot {s}" for s in range(slots)], fontsize=8)
        ax.set_ylim(0, slots)
    axes[1].set_xlabel("decode step")
    plt.tight_layout()
    return fig


def rope_rotation(head_dim: int = 8, positions: int = 6, theta: float = 10000.0):
    """Chapter 08: RoPE rotates each pair of a head's dimensions by position x its own frequency; a query at t and a
    key at s then meet at an angle that depends on t - s only."""
    import math

    pairs = head_dim // 2
    freqs = [theta ** (-2 * i / head_dim) for i in range(pairs)]
    fig = plt.figure(figsize=(13, 5.6))
    grid = fig.add_gridspec(2, max(pairs, 4), hspace=0.55, top=0.86, bottom=0.02)
    cmap = plt.get_cmap("viridis")
    for i, f in enumerate(freqs):  # top row: one plane per pair, the same vector at positions 0..positions-1
        ax = fig.add_subplot(grid[0, i])
        ax.add_patch(plt.Circle((0, 0), 1, fill=False, ec="#bbbbbb", lw=0.8))
        for t in range(positions):
            a = 0.35 + t * f
            color = cmap(t / max(1, positions - 1))
            ax.annotate("", (math.cos(a), math.sin(a)), (0, 0),
                        arrowprops=dict(arrowstyle="-|>", color=color, lw=1.6, mutation_scale=10))
            if f > 0.3:  # far enough apart to number each position
                ax.text(1.22 * math.cos(a), 1.22 * math.sin(a), str(t), ha="center", va="center", fontsize=8,
                        color=color)
        if f <= 0.3:
            a = 0.35 + (positions - 1) * f / 2
            ax.text(1.3 * math.cos(a), 1.3 * math.sin(a), f"0-{positions - 1}", ha="left", va="center", fontsize=8)
        ax.set_title(f"pair {i}: dimensions {i} and {i + pairs}\nθ_{i} = {f:.3g} rad per position", fontsize=9)
        ax.set_xlim(-1.5, 1.5)
        ax.set_ylim(-1.45, 1.45)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.text(0.5, 0.965, f"One vector at positions 0 to {positions - 1} (numbered): pair i turns by t·θ_i, "
             f"θ_i = {theta:g}^(-2i/D), D = {head_dim}; fast pairs tell nearby positions apart, slow pairs barely move",
             ha="center", fontsize=10)
    fig.text(0.5, 0.47, "A query and a key in pair 0's plane: the angle between them is their angle at position 0 plus "
             "(t - s)·θ_0, the same whenever t - s is", ha="center", fontsize=10)
    f0, q0, k0 = freqs[0], 0.5, 0.0
    cases = [(2, 0), (3, 1), (5, 3)]
    for j, (t, s) in enumerate(cases):  # bottom row: the same distance at three places
        ax = fig.add_subplot(grid[1, j])
        ax.add_patch(plt.Circle((0, 0), 1, fill=False, ec="#bbbbbb", lw=0.8))
        aq, ak = q0 + t * f0, k0 + s * f0
        for a, color, label in ((aq, "#e45756", f"q at t = {t}"), (ak, "#4c78a8", f"k at s = {s}")):
            ax.annotate("", (math.cos(a), math.sin(a)), (0, 0),
                        arrowprops=dict(arrowstyle="-|>", color=color, lw=2, mutation_scale=12))
            ax.text(1.45 * math.cos(a), 1.4 * math.sin(a), label, ha="center", va="center", fontsize=8.5, color=color)
        arc = [ak + (aq - ak) * u / 30 for u in range(31)]
        ax.plot([0.4 * math.cos(a) for a in arc], [0.4 * math.sin(a) for a in arc], color="#555", lw=1.2)
        ax.set_title(f"t - s = {t - s}", fontsize=9)
        ax.set_xlim(-1.7, 1.7)
        ax.set_ylim(-1.5, 1.5)
        ax.set_aspect("equal")
        ax.axis("off")
    ax = fig.add_subplot(grid[1, 3:])
    ax.axis("off")
    ax.text(0.0, 0.5, "Every pair turns by its own (t - s)·θ_i, so at one\ndistance each pair keeps its angle, and q·k,\n"
            "the sum over the pairs, stays the same:\n⟨R_t q, R_s k⟩ = ⟨q, R_(s-t) k⟩.", va="center", fontsize=10)
    return fig


def gqa_grouping(n_head: int = 8, kv_heads=(8, 2, 1)):
    """Chapter 08: H query heads reading KV key/value heads in groups of H/KV (query head h reads kv head
    h // (H/KV)); KV = H is multi-head attention, KV = 1 multi-query attention."""
    colors = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d"]
    fig, axes = plt.subplots(1, len(kv_heads), figsize=(13, 3.4))
    for ax, kv in zip(axes, kv_heads):
        group = n_head // kv
        for h in range(n_head):
            g = h // group
            ax.add_patch(plt.Rectangle((h, 2.0), 0.8, 0.6, fc=colors[g % len(colors)], ec="white"))
            ax.text(h + 0.4, 2.3, f"q{h}", ha="center", va="center", fontsize=8, color="white")
            kx = (g + 0.5) * n_head / kv - 0.4  # the kv head sits under the middle of its group
            ax.plot([h + 0.4, kx + 0.4], [2.0, 0.7], color=colors[g % len(colors)], lw=1)
        for g in range(kv):
            kx = (g + 0.5) * n_head / kv - 0.4
            ax.add_patch(plt.Rectangle((kx, 0.1), 0.8, 0.6, fc=colors[g % len(colors)], ec="#333", lw=1.2))
            ax.text(kx + 0.4, 0.4, f"kv{g}", ha="center", va="center", fontsize=8, color="white")
        kind = "MHA" if kv == n_head else "MQA" if kv == 1 else "GQA"
        ax.set_title(f"{kind}: H = {n_head} query heads, KV = {kv}\ngroups of H/KV = {group}; "
                     f"the cache holds {kv} head{'s' if kv > 1 else ''} per layer", fontsize=9)
        ax.text(-0.4, 2.3, "queries", ha="right", va="center", fontsize=8.5)
        ax.text(-0.4, 0.4, "keys and\nvalues", ha="right", va="center", fontsize=8.5)
        ax.set_xlim(-2.2, n_head)
        ax.set_ylim(0, 2.9)
        ax.axis("off")
    fig.text(0.5, 0.01, "query head h reads key/value head h // (H/KV): the consecutive heads of a group share one "
             "key and one value (repeat_interleave)", ha="center", fontsize=9, color="#555")
    return fig


def mlp_language_model(chars: str = "ing", emb_dim: int = 4):
    """Chapter 03: Bengio et al.'s MLP language model. Each of the T previous characters picks its row of one
    shared embedding table E, the T rows are concatenated, a tanh hidden layer and a linear output layer give
    V logits, and softmax turns them into the next character's distribution."""
    colors = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2"]
    T = len(chars)
    fig, ax = plt.subplots(figsize=(13, 4.4))
    top, bottom = 3.3, 0.5
    rows = [top - (i + 0.5) * (top - bottom) / T for i in range(T)]  # the y of each context position
    cell = 0.28
    for i, (ch, y) in enumerate(zip(chars, rows)):
        _box(ax, 0, y - 0.3, 1.2, 0.6, f"x[t-{T - i}] = {ch!r}", "#f4e3c1", 9)
        _arrow(ax, 1.2, y, 1.8, y)
        _arrow(ax, 3.2, y, 3.6, y)
        for k in range(emb_dim):  # the looked-up row: emb_dim numbers
            ax.add_patch(plt.Rectangle((3.6 + k * cell, y - cell / 2), cell * 0.92, cell, fc=colors[i % 5], ec="white"))
        _arrow(ax, 3.6 + emb_dim * cell, y, 5.3, bottom + (top - bottom) * (T - i - 0.5) / T)
    _box(ax, 1.8, bottom - 0.1, 1.4, top - bottom + 0.2, "embedding\ntable E\n(V × C)\n\none row per\ncharacter,\n"
         "shared by\nall T positions", "#e8dff5", 8.5)
    ax.text(3.6 + emb_dim * cell / 2, top + 0.25, f"T rows of E\n(C = {emb_dim} numbers each)", ha="center",
            fontsize=8.5, color="#555")
    height = (top - bottom) / (T * emb_dim)  # the concatenation: T·C numbers, in context order
    for i in range(T):
        for k in range(emb_dim):
            y = top - (i * emb_dim + k + 1) * height
            ax.add_patch(plt.Rectangle((5.3, y), 0.3, height * 0.92, fc=colors[i % 5], ec="white"))
    ax.text(5.45, bottom - 0.35, "concatenate:\ne, T·C numbers", ha="center", va="top", fontsize=8.5, color="#555")
    mid = (top + bottom) / 2
    _arrow(ax, 5.6, mid, 6.3, mid)
    _box(ax, 6.3, mid - 0.6, 2.0, 1.2, "hidden layer\nh = tanh(e W₁ + b₁)\nH units", "#dbe9f6", 9)
    _arrow(ax, 8.3, mid, 8.9, mid)
    _box(ax, 8.9, mid - 0.6, 2.0, 1.2, "output layer\nz = h W₂ + b₂\nV logits", "#dbe9f6", 9)
    _arrow(ax, 10.9, mid, 11.5, mid)
    _box(ax, 11.5, mid - 0.6, 1.7, 1.2, "softmax\nP(x[t] | the T\nprevious chars)", "#d5ecd4", 9)
    ax.text(9.75, top - 0.1, f"T = {T} previous characters drawn here;\nthe same picture for any T",
            ha="center", fontsize=9, color="#555")
    ax.text(6.6, -0.55, "parameters: E (V × C), W₁ (T·C × H), b₁ (H), W₂ (H × V), b₂ (V); "
            "Bengio et al. (2003) call the table C and read the previous words", ha="center", fontsize=8.5,
            color="#555")
    ax.set_xlim(-0.1, 13.3)
    ax.set_ylim(-0.75, 4.0)
    ax.axis("off")
    return fig


def attention_qkv(T: int = 5):
    """Chapter 05: one head of causal attention: x -> q, k, v; scores q·kᵀ/√D; the future masked; a softmax over each
    row; the weighted sum of the values."""
    import numpy as np

    scores = np.random.default_rng(0).normal(size=(T, T)) * 1.5  # illustrative values, not a computation
    masked = np.where(np.tril(np.ones((T, T))) > 0, scores, -np.inf)
    weights = np.exp(masked - masked.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    fig, ax = plt.subplots(figsize=(13, 4.4))
    _box(ax, 0, 1.55, 1.1, 0.9, "x\n(T, C)", "#f4e3c1", 9)
    for y, name, color in ((3.0, "q", "#dbe9f6"), (1.55, "k", "#dbe9f6"), (0.1, "v", "#d5ecd4")):
        _box(ax, 1.7, y, 1.35, 0.9, f"{name} = x W_{name}\n(T, D)", color, 9)
        _arrow(ax, 1.1, 2.0, 1.7, y + 0.45)
    cell, top = 2.2 / T, 3.3

    def grid(x0, values, title, masked_text=None):
        for t in range(T):
            for s in range(T):
                future = s > t
                v = values[t, s]
                color = "#eeeeee" if (future and masked_text) else plt.cm.Blues(0.1 + 0.85 * v)
                ax.add_patch(plt.Rectangle((x0 + s * cell, top - (t + 1) * cell), cell * 0.94, cell * 0.94, fc=color,
                                           ec="white"))
                if future and masked_text:
                    ax.text(x0 + (s + 0.47) * cell, top - (t + 0.53) * cell, masked_text, ha="center", va="center",
                            fontsize=7, color="#888")
        ax.text(x0 + T * cell / 2, top + 0.1, title, ha="center", va="bottom", fontsize=9)
        ax.text(x0 - 0.08, top - cell / 2, "t=0", ha="right", va="center", fontsize=7, color="#555")
        ax.text(x0 - 0.08, top - (T - 0.5) * cell, f"t={T - 1}", ha="right", va="center", fontsize=7, color="#555")

    norm = (scores - scores.min()) / (scores.max() - scores.min())
    grid(3.8, norm, "scores q kᵀ / √D\n(T, T): row t = query t")
    grid(6.7, norm, "+ causal mask M:\nthe future (s > t) is −∞", masked_text="−∞")
    grid(9.6, weights, "softmax of each row: weights,\neach row sums to 1, the future gets 0", masked_text="0")
    _arrow(ax, 3.05, 3.45, 3.8, 2.6)
    _arrow(ax, 3.05, 2.0, 3.8, 1.8)
    _arrow(ax, 6.05, 2.2, 6.65, 2.2)
    _arrow(ax, 8.95, 2.2, 9.55, 2.2)
    _box(ax, 12.2, 1.55, 1.3, 0.9, "y = weights · v\n(T, D)", "#e8dff5", 9)
    _arrow(ax, 11.85, 2.0, 12.2, 2.0)
    ax.plot([3.05, 12.85], [0.55, 0.55], color="#3b5b7a", lw=1.2)
    _arrow(ax, 12.85, 0.55, 12.85, 1.55)
    ax.text(7.9, 0.65, "row t of y: the average of the rows of v at positions s ≤ t, weighted by row t of the weights",
            ha="center", va="bottom",
            fontsize=9, color="#555")
    ax.set_xlim(-0.1, 13.6)
    ax.set_ylim(0, 4.1)
    ax.axis("off")
    return fig


def residual_stream():
    """Chapter 06: a pre-norm block on the residual stream: each sublayer reads a normalised copy of the stream and
    adds its output back."""
    fig, ax = plt.subplots(figsize=(13, 3.6))
    y = 1.0
    ax.plot([1.5, 11.6], [y, y], color="#3b5b7a", lw=5, solid_capstyle="butt", zorder=1)
    _arrow(ax, 11.5, y, 12.0, y)
    _box(ax, 0, y - 0.45, 1.5, 0.9, "token +\nposition\nembeddings", "#f4e3c1", 8.5)
    _box(ax, 12.0, y - 0.45, 1.5, 0.9, "LN_f → head\n→ logits", "#f4e3c1", 8.5)
    for x0, name in ((2.3, "attention\n(between positions)"), (7.0, "MLP\n(each position\non its own)")):
        _box(ax, x0, 2.1, 0.9, 0.7, f"LN{1 if x0 < 5 else 2}", "#e3e3e3", 9)
        _box(ax, x0 + 1.3, 2.0, 1.7, 0.9, name, "#dbe9f6", 8.5)
        ax.plot([x0 - 0.3, x0 - 0.3], [y, 2.45], color="#3b5b7a", lw=1.2)
        _arrow(ax, x0 - 0.3, 2.45, x0, 2.45)
        _arrow(ax, x0 + 0.9, 2.45, x0 + 1.3, 2.45)
        plus = x0 + 3.5
        ax.plot([x0 + 3.0, plus], [2.45, 2.45], color="#3b5b7a", lw=1.2)
        _arrow(ax, plus, 2.45, plus, y + 0.2)
        ax.add_patch(plt.Circle((plus, y), 0.2, fc="white", ec="#3b5b7a", lw=1.5, zorder=3))
        ax.text(plus, y, "+", ha="center", va="center", fontsize=12, zorder=4)
        ax.text(x0 - 0.2, 1.6, "read", ha="left", fontsize=8, color="#555")
        ax.text(plus - 0.1, 1.6, "write (add)", ha="right", fontsize=8, color="#555")
    ax.add_patch(plt.Rectangle((1.75, 0.35), 9.75, 2.85, fc="none", ec="#999", ls="--"))
    ax.text(6.6, 3.3, "one block, repeated N times: x ← x + Attn(LN1(x)), then x ← x + MLP(LN2(x))", ha="center",
            fontsize=9)
    ax.text(6.6, 0.5, "the residual stream x (B, T, C): nothing overwrites it, and the gradient runs straight along it",
            ha="center", fontsize=9, color="#555")
    ax.set_xlim(-0.1, 13.6)
    ax.set_ylim(0.2, 3.6)
    ax.axis("off")
    return fig


def hf_llama_mapping(n_head: int = 4, n_kv_heads: int = 2, head_dim: int = 24, d_ff: int = 256):
    """Chapter 09: one layer's tensors in transformers' Llama (left) and in the course model (right). Every name maps
    one to one except attention's q_proj, k_proj and v_proj, which the course stacks, in that order, into one qkv
    matrix of (H + 2 KV) D rows. Heights are drawn to scale: rows of each weight matrix, (out, in)."""
    C = n_head * head_dim
    q, kv = n_head * head_dim, n_kv_heads * head_dim
    theirs = [("input_layernorm", (C,), "ln1"), ("self_attn.q_proj", (q, C), "attn.qkv"),
              ("self_attn.k_proj", (kv, C), "attn.qkv"), ("self_attn.v_proj", (kv, C), "attn.qkv"),
              ("self_attn.o_proj", (C, q), "attn.proj"), ("post_attention_layernorm", (C,), "ln2"),
              ("mlp.gate_proj", (d_ff, C), "mlp.gate"), ("mlp.up_proj", (d_ff, C), "mlp.up"),
              ("mlp.down_proj", (C, d_ff), "mlp.proj")]
    colors = {"q": "#4c78a8", "k": "#f58518", "v": "#54a24b"}
    scale, gap, norm_h = 1 / 90, 0.16, 0.3
    fig, ax = plt.subplots(figsize=(11, 7.6))
    y, left, target = 0.0, {}, {}
    for name, shape, _ in theirs:  # transformers' tensors, top to bottom
        h = norm_h if len(shape) == 1 else shape[0] * scale
        part = name.split(".")[-1][0] if name.startswith("self_attn.") and name[10] in "qkv" else None
        ax.add_patch(plt.Rectangle((0, -y - h), 2.6, h, fc=colors.get(part, "#dbe9f6"), ec="#3b5b7a"))
        ax.text(1.3, -y - h / 2, f"{name}  {tuple(shape)}", ha="center", va="center", fontsize=8.5,
                color="white" if part else "black")
        left[name] = -y - h / 2
        y += h + gap
    ours = [("ln1", (C,)), ("attn.qkv", (q + 2 * kv, C)), ("attn.proj", (C, q)), ("ln2", (C,)),
            ("mlp.gate", (d_ff, C)), ("mlp.up", (d_ff, C)), ("mlp.proj", (C, d_ff))]
    for name, shape in ours:
        if name == "attn.qkv":  # placed level with transformers' q_proj ... v_proj, its three parts stacked
            top = left["self_attn.q_proj"] + q * scale / 2
            for part, rows in (("q", q), ("k", kv), ("v", kv)):
                ax.add_patch(plt.Rectangle((5.4, top - rows * scale), 2.6, rows * scale, fc=colors[part], ec="white"))
                ax.text(6.7, top - rows * scale / 2, f"{part}: {rows} rows", ha="center", va="center", fontsize=8.5,
                        color="white")
                target[f"self_attn.{part}_proj"] = top - rows * scale / 2
                top -= rows * scale
            ax.add_patch(plt.Rectangle((5.4, top), 2.6, (q + 2 * kv) * scale, fc="none", ec="#3b5b7a", lw=1.5))
            ax.text(8.1, top + (q + 2 * kv) * scale / 2, f"attn.qkv\n{(q + 2 * kv, C)}\n= (H + 2 KV) D rows",
                    ha="left", va="center", fontsize=8.5)
            continue
        match = next(n for n, _, o in theirs if o == name)
        h = norm_h if len(shape) == 1 else shape[0] * scale
        ax.add_patch(plt.Rectangle((5.4, left[match] - h / 2), 2.6, h, fc="#dbe9f6", ec="#3b5b7a"))
        ax.text(6.7, left[match], f"{name}  {tuple(shape)}", ha="center", va="center", fontsize=8.5)
    for name, _, _ in theirs:
        ax.annotate("", xy=(5.35, target.get(name, left[name])), xytext=(2.65, left[name]),
                    arrowprops=dict(arrowstyle="-|>", color="#3b5b7a", lw=0.8))
    ax.text(1.3, 0.25, "transformers: model.layers.{i}.*", ha="center", fontsize=10)
    ax.text(6.7, 0.25, "the course: blocks.{i}.*", ha="center", fontsize=10)
    ax.set_title(f"One layer, H = {n_head} query heads, KV = {n_kv_heads} key/value heads, D = {head_dim}, "
                 f"C = {C}: names map one to one, q, k and v stack into qkv", fontsize=10, pad=14)
    ax.text(4.0, -y - 0.35, "also: model.embed_tokens -> wte, model.norm -> ln_f, lm_head -> lm_head (absent when tied); "
            "weights are (out, in) in both", ha="center", fontsize=8.5, color="#555")
    ax.set_xlim(-0.2, 9.8)
    ax.set_ylim(-y - 0.6, 0.55)
    ax.axis("off")
    return fig


def token_pieces(rows: dict, width: float = 13.0):
    """Chapter 18: one line of text cut into tokens by several tokenizers. ``rows``: a label -> the line's tokens as
    the strings they spell (the chapter passes each tokenizer's real output); a box per token, its width its length."""
    colors = ["#dbe9f6", "#f4e3c1"]
    fig, ax = plt.subplots(figsize=(width, 0.75 * len(rows) + 0.4))
    for r, (label, pieces) in enumerate(rows.items()):
        y, x = len(rows) - 1 - r, 0.0
        ax.text(-0.3, y + 0.35, f"{label}\n{len(pieces)} tokens", ha="right", va="center", fontsize=9)
        for i, piece in enumerate(pieces):
            w = max(len(piece), 1)
            ax.add_patch(FancyBboxPatch((x + 0.05, y), w - 0.1, 0.7, boxstyle="round,pad=0.01,rounding_size=0.1",
                                        fc=colors[i % 2], ec="#3b5b7a", lw=0.6))
            ax.text(x + w / 2, y + 0.35, piece.replace(" ", "␣").replace("\n", "↵"), ha="center", va="center",
                    fontsize=8.5, family="monospace")
            x += w
    longest = max(sum(max(len(p), 1) for p in pieces) for pieces in rows.values())
    ax.set_xlim(-0.2, longest + 0.2)
    ax.set_ylim(-0.15, len(rows))
    ax.axis("off")
    return fig


def packing(context: int = 8, stream: int = 40, windows=(3, 17, 26)):
    """Chapter 18: the corpus as one stream of token ids (no documents, no padding); a training example is any
    window of context + 1 ids: the first context are the input, the last context the targets."""
    fig, ax = plt.subplots(figsize=(12, 2.8))
    for i in range(stream):
        ax.add_patch(plt.Rectangle((i, 2.0), 0.92, 0.6, fc="#eeeeee", ec="#999999", lw=0.5))
    ax.text(0, 2.85, f"the training split, encoded once and concatenated: one stream of ids (here {stream})",
            fontsize=9.5)
    for row, start in enumerate(windows):
        y = 1.1 - row * 0.55
        ax.add_patch(plt.Rectangle((start, y), context - 0.08, 0.4, fc="#4c78a8", ec="none"))
        ax.add_patch(plt.Rectangle((start + 1, y - 0.2), context - 0.08, 0.18, fc="#f58518", ec="none"))
        ax.plot([start, start], [y + 0.4, 2.0], color="#4c78a8", lw=0.6, ls=":")
        ax.text(start + context + 1.3, y + 0.05, f"x = ids[{start}:{start + context}]   y = ids[{start + 1}:"
                f"{start + context + 1}]", fontsize=8.5, va="center")
    ax.text(0, -0.65, f"blue: T = {context} inputs from a uniformly random start; orange: the targets, the same ids "
            "shifted by one", fontsize=9)
    ax.set_xlim(-0.5, stream + 0.5)
    ax.set_ylim(-0.9, 3.1)
    ax.axis("off")
    return fig


def exports():
    """Chapter 18: one trained model and its tokenizer, written three ways, each read by another program."""
    fig, ax = plt.subplots(figsize=(12, 4.2))
    _box(ax, 0.0, 1.6, 2.2, 1.0, "our model\n+ its tokenizer\n(qt.pretrained)", "#f4e3c1")
    rows = [("save_hf(model, folder, tokenizer)", "folder/\n config.json  model.safetensors\n tokenizer.json  "
             "tokenizer_config.json\n generation_config.json", "transformers\nAutoModelForCausalLM,\npipeline"),
            ("save_gguf(model, path, quant, tokenizer)", "one .gguf file\n general.* llama.* keys\n tokenizer.ggml.* "
             "keys\n tensors: F32 / Q8_0 / Q4_0", "llama.cpp\nllama-simple,\nllama-bench"),
            ("export_onnx(model, path, cache=True)", "one .onnx graph\n weights inside, dynamic axes\n explicit KV "
             "cache in and out\n (the tokenizer stays ours)", "onnxruntime\nOnnxDecoder")]
    for i, (call, what, reader) in enumerate(rows):
        y = 3.1 - i * 1.45
        _arrow(ax, 2.2, 2.1, 3.2, y + 0.5)
        ax.text(3.25, y + 1.05, call, fontsize=8.5, family="monospace", color="#333")
        _box(ax, 3.2, y, 3.6, 1.0, what, "#dbe9f6", 8)
        _arrow(ax, 6.8, y + 0.5, 7.7, y + 0.5)
        _box(ax, 7.7, y + 0.1, 2.2, 0.8, reader, "#d5ecd4", 8.5)
    ax.set_xlim(-0.1, 10.0)
    ax.set_ylim(0.0, 4.3)
    ax.axis("off")
    return fig
