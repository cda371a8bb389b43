"""The grading machinery: comparisons with specific messages, and the per-exercise runner."""
from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Chapter -> (exercise file name, checks module). Exercise order is the module's CHECKS order.
CHAPTERS = {
    "01": "ex01_counting.py",
    "02": "ex02_learning.py",
    "03": "ex03_backprop.py",
    "04": "ex04_tokenizer.py",
    "05": "ex05_attention.py",
    "06": "ex06_gpt.py",
    "07": "ex07_training.py",
    "08": "ex08_llama.py",
    "09": "ex09_parity.py",
    "10": "ex10_sampling.py",
    "11": "ex11_kv_cache.py",
    "12": "ex12_precision.py",
    "13": "ex13_distributed.py",
    "14": "ex14_quantization.py",
    "15": "ex15_lora.py",
    "16": "ex16_dpo.py",
    "17": "ex17_serving.py",
}


class CheckFailed(AssertionError):
    """Raised by a check with a message a learner can act on."""


@dataclass
class Result:
    name: str
    passed: bool
    message: str


def assert_close(got, expected, what: str = "result", rtol: float = 1e-6, atol: float = 1e-8) -> str:
    """Fail unless ``got`` matches ``expected`` in type, shape and value; say how it differs."""
    expected = np.asarray(expected)
    if got is None:
        raise CheckFailed(f"{what}: got None; did you forget to return it?")
    if hasattr(got, "detach"):  # a torch tensor: compare its values on the CPU
        got = got.detach().cpu().numpy()
    try:
        got = np.asarray(got, dtype=np.float64 if expected.dtype.kind == "f" else None)
    except (TypeError, ValueError) as exc:
        raise CheckFailed(f"{what}: cannot be read as an array ({exc})") from None
    if got.shape != expected.shape:
        raise CheckFailed(f"{what}: shape is wrong: expected {expected.shape}, got {got.shape}")
    if expected.dtype.kind in "iub" and got.dtype.kind not in "iub":
        raise CheckFailed(f"{what}: expected integers, got dtype {got.dtype}")
    if not np.all(np.isfinite(got)):
        bad = np.argwhere(~np.isfinite(got))[0]
        raise CheckFailed(f"{what}: non-finite value {got[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    worst = np.unravel_index(np.argmax(diff), diff.shape) if diff.size else ()
    if not np.allclose(got, expected, rtol=rtol, atol=atol):
        where = tuple(int(i) for i in worst)
        n_bad = int((~np.isclose(got, expected, rtol=rtol, atol=atol)).sum())
        raise CheckFailed(
            f"{what}: {n_bad} of {expected.size} values are wrong; max abs difference {diff[worst]:.3g} "
            f"at index {where}: expected {expected[worst]:.6g}, got {got[worst]:.6g}"
        )
    return f"max abs difference {diff.max() if diff.size else 0.0:.1e}"


def expect_tuple(got, names: str):
    """Fail unless ``got`` is a tuple with one item per comma-separated name in ``names``."""
    if not isinstance(got, tuple) or len(got) != len(names.split(",")):
        raise CheckFailed(f"expected a tuple ({names})")
    return got


def assert_ids_equal(got, expected, what: str = "ids") -> str:
    """Fail unless two integer sequences are equal; name the first mismatch."""
    expected = list(np.asarray(expected).tolist())
    if got is None:
        raise CheckFailed(f"{what}: got None; did you forget to return it?")
    got = list(np.asarray(got).tolist())
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            raise CheckFailed(f"{what}: first mismatch at position {i}: expected {e}, got {g}")
    if len(got) != len(expected):
        raise CheckFailed(f"{what}: expected {len(expected)} items, got {len(got)}")
    return f"all {len(expected)} equal"


def load_learner_module(path: Path):
    """Import the learner's file under a private name; errors propagate to the caller."""
    spec = importlib.util.spec_from_file_location("learner_exercises", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_one(chapter: str, name: str, path: Path) -> Result:
    """Run one check in this process (the worker calls this)."""
    checks = importlib.import_module(f"quanta_tissu.grade.ch{chapter}").CHECKS
    try:
        module = load_learner_module(path)
    except SyntaxError as exc:
        return Result(name, False, f"your file does not parse: {exc.msg} (line {exc.lineno})")
    except Exception as exc:  # noqa: BLE001 - any learner error becomes feedback
        return Result(name, False, f"your file fails on import: {type(exc).__name__}: {exc}")
    fn = getattr(module, name, None)
    if fn is None:
        return Result(name, False, f"no function named {name!r} in {path.name}")
    try:
        return Result(name, True, checks[name](fn))
    except CheckFailed as exc:
        return Result(name, False, str(exc))
    except NotImplementedError:
        return Result(name, False, "not implemented yet: replace the `raise NotImplementedError` with your code")
    except Exception as exc:  # noqa: BLE001
        return Result(name, False, f"raised {type(exc).__name__}: {exc}{_learner_line(exc, path)}")


def _learner_line(exc: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f" (line {frames[-1].lineno} of {path.name})" if frames else ""


def run_chapter(chapter: str, path: Path, timeout: float = 60.0) -> list[Result]:
    """Run each of the chapter's checks in its own process, with a time limit."""
    checks = importlib.import_module(f"quanta_tissu.grade.ch{chapter}").CHECKS
    results = []
    for name in checks:
        cmd = [sys.executable, "-m", "quanta_tissu.grade.worker", chapter, name, str(path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            results.append(Result(name, False, f"did not return within {timeout:g} s: is there an endless loop?"))
            continue
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            results.append(Result(name, False, f"the check crashed (exit code {proc.returncode}): {tail}"))
            continue
        results.append(Result(**json.loads(lines[-1])))
    return results
