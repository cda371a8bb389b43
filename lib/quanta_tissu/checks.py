"""Naming what a function was given, for error messages that a user can act on (used from chapter 07 on).

Does:
- ``kind(x)`` says what ``x`` is in a user's words: "a numpy.ndarray of float32, shape (2, 32)",
  "a torch.Tensor of torch.int64, shape (1, 5)", "a list". A dtype alone ("float32") is ambiguous, since NumPy
  and torch spell it the same way, so an error that expects a tensor and got an array says which is which.
- ``numpy_hint(x)`` adds how to convert an array when a torch tensor was expected.
Does not: import torch or NumPy (it reads type names and attributes), or check anything itself.
"""
from __future__ import annotations


def kind(x) -> str:
    """What ``x`` is: its module-qualified type, and for an array or tensor its dtype and shape."""
    cls = type(x)
    name = cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__.split('.')[0]}.{cls.__name__}"
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        return f"a {name} of {x.dtype}, shape {tuple(x.shape)}"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def numpy_hint(x) -> str:
    """'; convert it with torch.from_numpy(x)' for a NumPy array, else ''."""
    return "; convert it with torch.from_numpy(x)" if type(x).__module__ == "numpy" else ""
