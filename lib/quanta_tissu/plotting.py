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


def plot_history(ax, history, label: str, color=None, window: int = 50) -> None:
    """Smoothed training loss as a line, validation losses as markers on the same colour."""
    steps = np.arange(1, len(history.train) + 1)
    (line,) = ax.plot(steps, smooth(history.train, window), color=color, alpha=0.8, label=f"{label} (train)")
    if history.val:
        ax.plot(history.eval_steps, history.val, "o--", color=line.get_color(), label=f"{label} (validation)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)
