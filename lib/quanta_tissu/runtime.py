"""Seeds, threads and the device: the one place where a run's environment is set.

Introduced in chapter 01 and reused by every chapter, script and test.

Does:
- ``seed_everything(seed)`` seeds Python's ``random``, NumPy's legacy global RNG
  and, only if torch is already imported, torch (CPU and CUDA).
- ``set_threads(n)`` caps the math libraries' thread pools.
- ``pick_device(prefer)`` chooses ``"cpu"`` or ``"cuda"`` (the only place that does).
- ``setup(...)`` does all three and prints a one-line report for a chapter's first cell.
- ``Defaults(...)`` records the parameter values a chapter's text describes, so that claims about that
  run are checked only there (``if at_defaults:``), while claims that hold for any value always are.

Does not: import torch unless asked for a device, or when torch is already loaded
(Part I runs with NumPy alone).
"""
from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass

import numpy as np

# Environment variables read by the BLAS/OpenMP thread pools at load time.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def seed_everything(seed: int) -> np.random.Generator:
    """Seed every RNG the course uses and return a fresh NumPy ``Generator``.

    Course code prefers an explicit ``Generator`` passed around over global state;
    the global seeds are there for code we do not control.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)  # also seeds every CUDA device
    return np.random.default_rng(seed)


def set_threads(n: int | None) -> int:
    """Cap math thread pools at ``n`` threads (None: leave as is). Returns the cap."""
    if n is None:
        return os.cpu_count() or 1
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    for var in _THREAD_VARS:  # effective for libraries loaded after this call
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    return n


def pick_device(prefer: str | None = None) -> str:
    """Return ``"cuda"`` when asked for (or ``"auto"`` and available), else ``"cpu"``."""
    prefer = (prefer or "cpu").lower()
    if prefer not in {"cpu", "cuda", "auto"}:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {prefer!r}")
    if prefer == "cpu":
        return "cpu"
    import torch  # only chapters that run on a device reach this line

    if torch.cuda.is_available():
        return "cuda"
    if prefer == "cuda":
        raise RuntimeError("device='cuda' was asked for but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    return "cpu"


@dataclass
class RunInfo:
    """What ``setup`` chose, kept so a chapter can pass it on."""

    seed: int
    threads: int
    device: str
    rng: np.random.Generator

    def __repr__(self) -> str:  # the rng's repr is noise
        return f"RunInfo(seed={self.seed}, threads={self.threads}, device={self.device!r})"


def setup(seed: int = 1337, threads: int | None = 2, device: str | None = "cpu", verbose: bool = True) -> RunInfo:
    """Seed, cap threads and pick the device in one call; print what was chosen."""
    threads = set_threads(threads)
    dev = pick_device(device)
    rng = seed_everything(seed)
    if verbose:
        print(versions_line(), f"| device {dev} | threads {threads} | seed {seed}")
    return RunInfo(seed=seed, threads=threads, device=dev, rng=rng)


def versions_line() -> str:
    """One line with the versions that matter for reproducing a chapter."""
    parts = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__}")
    return " | ".join(parts)


class Defaults:
    """The parameter values a chapter's text and figures describe (its ``parameters`` cell, as stored).

    A chapter asserts two kinds of claims. Some hold for any sensible parameters (a gradient check, a
    parity test): those are plain ``assert`` statements. Others are about the default run ("validation
    loss below 2.05 after 800 steps"): those sit under ``if at_defaults:``, where
    ``at_defaults = qt.Defaults(steps=800, ...).match(globals())``. When papermill or a learner changes a
    parameter, ``match`` prints which ones differ and returns False, and those claims are skipped instead of
    failing. The test suite checks that these values equal the stored parameters cell.
    """

    def __init__(self, **values):
        self.values = values

    def changed(self, namespace: dict) -> dict:
        """{name: current value} for every parameter that differs from its default."""
        missing = sorted(set(self.values) - set(namespace))
        if missing:
            raise NameError(f"Defaults names parameters that are not defined: {missing}; run the parameters cell first")
        return {k: namespace[k] for k, v in self.values.items() if namespace[k] != v}

    def match(self, namespace: dict) -> bool:
        """True when every listed parameter has its default value; otherwise say what differs."""
        changed = self.changed(namespace)
        if changed:
            given = ", ".join(f"{k}={v!r} (default {self.values[k]!r})" for k, v in changed.items())
            print(f"Parameters differ from the chapter's defaults: {given}. "
                  "The claims about the default run are skipped; the others are still checked.")
        return not changed
