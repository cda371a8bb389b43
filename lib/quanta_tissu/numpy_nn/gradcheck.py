"""Numerical gradient checking: the referee for every hand-written backward pass (chapter 02).

Does: central differences df/dx ~ (f(x + h) - f(x - h)) / 2h, element by element, in float64;
compares with an analytic gradient by the relative error of the whole array
    ||a - n|| / max(||a|| + ||n||, 1e-12)   (Euclidean norms),
which is scale-free and, unlike an elementwise ratio, not fooled by entries that are ~0;
and checks a layer's input and parameter gradients at once.
Does not: check anything in float32 (differences at h=1e-6 drown in float32 rounding),
or scale to large arrays (it costs two forward passes per element).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def numerical_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Gradient of the scalar function ``f()`` with respect to the array ``x``, changed in place.

    ``f`` takes no argument: it reads ``x`` (and whatever else) itself, so the same
    helper checks inputs and parameters alike. ``x`` is restored after each probe.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 arrays, got {x.dtype}; use x.astype(np.float64)")
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        f_plus = f()
        x[idx] = old - h
        f_minus = f()
        x[idx] = old
        grad[idx] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """||a - n|| / max(||a|| + ||n||, 1e-12): about 1e-9 for a correct float64 gradient, >1e-3 for a wrong one."""
    if analytic.shape != numeric.shape:
        raise ValueError(f"shapes differ: analytic {analytic.shape}, numeric {numeric.shape}")
    denom = max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12)
    return float(np.linalg.norm(analytic - numeric) / denom)


@dataclass
class GradCheck:
    """The outcome of a gradient check: one relative error per checked array."""

    errors: dict  # name -> max relative error
    tol: float

    @property
    def ok(self) -> bool:
        return all(e <= self.tol for e in self.errors.values())

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}: {v:.1e}" for k, v in self.errors.items())
        return f"GradCheck({'ok' if self.ok else 'FAILED'}, tol {self.tol:.0e}; {parts})"


def check_layer(layer, x: np.ndarray, rng: np.random.Generator, tol: float = 1e-6) -> GradCheck:
    """Check a layer's backward against numerical gradients of  sum(forward(x) * G)  for a random G.

    Checks d/dx (when x is float) and d/dparam for each of ``layer.params``.
    """
    out = layer.forward(x)
    g = rng.standard_normal(out.shape)  # a random upstream gradient probes every output
    dx = layer.backward(g)
    errors = {}
    loss = lambda: float((layer.forward(x) * g).sum())  # noqa: E731
    if np.issubdtype(x.dtype, np.floating):
        errors["x"] = relative_error(dx, numerical_gradient(loss, x))
    analytic = {name: grad.copy() for name, grad in layer.grads.items()}
    for name, param in layer.params.items():
        errors[name] = relative_error(analytic[name], numerical_gradient(loss, param))
    return GradCheck(errors, tol)
