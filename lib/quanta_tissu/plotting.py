"""Plot helpers shared by the chapters (matplotlib only; introduced in chapter 02).

Does: draw loss curves (a smoothed training curve and evaluation points) in one style.
Does not: create figures implicitly or call ``plt.show`` (chapters own their figures).
"""
from __future__ import annotations

import numpy as np


def smooth(values, window: int = 50) -> np.ndarray:
    """Moving average over ``window`` points (shorter at the start), to read noisy batch losses."""
    values = np.asarray(values, dtype=np.float64)
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def plot_history(ax, history, label: str, color=None, window: int = 50, raw: bool = False) -> None:
    """Training loss as its moving average over the last ``window`` batches, drawn only where the window is
    full (a shorter window at the start would bend the curve where it fills up); ``raw`` adds every batch
    loss, faint; validation losses as markers on the same colour."""
    steps = np.arange(1, len(history.train) + 1)
    window = max(1, min(window, len(steps)))
    if raw:
        (faint,) = ax.plot(steps, history.train, color=color, alpha=0.25, lw=0.7, label=f"{label} (train, each batch)")
        color = faint.get_color()
    (line,) = ax.plot(steps[window - 1:], smooth(history.train, window)[window - 1:], color=color, alpha=0.8,
                      label=f"{label} (train, mean of the last {window} batches)")
    if history.val:
        ax.plot(history.eval_steps, history.val, "o--", color=line.get_color(), label=f"{label} (validation)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)


def plot_ablation(axes, results: dict, title: str = "") -> None:
    """Chapter 08: validation curves of every configuration (left), final losses as bars (right)."""
    curves, bars = axes
    names = list(results)
    for name in names:
        row = results[name]
        curves.plot(row["eval_steps"], row["val_curve"], marker=".", label=name)
    lowest = min(min(results[n]["val_curve"]) for n in names)
    curves.set_ylim(lowest - 0.05, lowest + 0.8)  # the early, steep part is the same for every row
    curves.set_xlabel("step")
    curves.set_ylabel("validation loss (nats per token)")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8)
    finals = [results[n]["final_val"] for n in names]
    bars.barh(range(len(names)), finals, color=[f"C{i}" for i in range(len(names))])
    bars.set_yticks(range(len(names)), names, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlim(min(finals) - 0.05, max(finals) + 0.03)
    bars.set_xlabel("final validation loss")
    for i, v in enumerate(finals):
        bars.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    if title:
        curves.set_title(title)
