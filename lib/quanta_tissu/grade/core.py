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
    "18": "ex18_base_model.py",
}


class CheckFailed(AssertionError):
    """Raised by a check with a message a learner can act on."""


@dataclass
class Result:
    name: str
    passed: bool
    message: str


def fmt_pair(expected, got) -> tuple[str, str]:
    """``expected`` and ``got`` as text, with enough significant digits that they read differently."""
    if isinstance(expected, (bool, np.bool_)) or isinstance(got, (bool, np.bool_)):
        return str(expected), str(got)
    if isinstance(expected, (int, np.integer)) and isinstance(got, (int, np.integer)):
        return str(int(expected)), str(int(got))
    e, g = float(expected), float(got)
    for digits in range(6, 18):
        se, sg = f"{e:.{digits}g}", f"{g:.{digits}g}"
        if se != sg:
            return se, sg
    return repr(e), repr(g)


def expected_got(expected, got) -> str:
    """'expected X, got Y', the two numbers printed with enough digits to differ."""
    se, sg = fmt_pair(expected, got)
    return f"expected {se}, got {sg}"


def _ratio_text(r: float) -> str:
    n = round(r)
    if n != 0 and abs(r - n) <= 1e-9 * abs(r):
        return f"{n:.1f}"
    return f"{r:.4g}"


def _near(r: float, target: float, tol: float) -> bool:
    return abs(r - target) <= tol * max(1.0, abs(target))


def _whole(x: float, tol: float, limit: int) -> int:
    """``x`` rounded, when it is a whole number from 2 to ``limit`` within the tolerance (else 0)."""
    n = round(x)
    return n if 2 <= n <= limit and abs(x - n) <= min(tol * n, 1e-3) else 0


def factor_hint(r: float, tol: float = 1e-6) -> str:
    """A guess at the mistake behind a constant factor ``r`` between got and expected ('' when none)."""
    if _near(r, -1.0, tol):
        return "the sign is flipped"
    sign = "negative, and " if r < 0 else ""
    a = abs(r)
    if a > 1 and (n := _whole(a, tol, 1_000_000)):
        return f"{sign}off by a factor of {n}: a sum where a mean belongs, or a missing 1/{n}?"
    if 0 < a < 1 and (n := _whole(1 / a, tol, 1_000_000)):
        return f"{sign}off by a factor of 1/{n}: a mean where a sum belongs, or a division by {n} too many?"
    for x, word in ((a, "missing"), (1 / a if a else 0.0, "extra")):
        if x > 1 and (n := _whole(x * x, 2 * tol, 4096)):
            return f"{sign}off by a factor of {'' if word == 'missing' else '1/'}√{n}: a {word} square root " \
                   f"(a scale such as 1/√D)?"
    return f"{sign}look for a scale factor missing or applied twice" if sign else ""


def _match_hint(r: float, hints: dict | None, tol: float) -> str:
    for factor, text in (hints or {}).items():
        if _near(r, float(factor), tol):
            return text
    return ""


def _closer(got: np.ndarray, candidate, expected: np.ndarray, rtol: float, atol: float) -> bool:
    """Does ``got`` equal ``candidate`` (within the tolerances), and sit nearer to it than to ``expected``?"""
    candidate = np.asarray(candidate.detach().cpu().numpy() if hasattr(candidate, "detach") else candidate)
    if candidate.shape != got.shape:
        return False
    candidate = candidate.astype(np.float64)
    if not np.allclose(got, candidate, rtol=rtol, atol=atol):
        return False
    return np.abs(got - candidate).max(initial=0.0) < np.abs(got - expected).max(initial=0.0)


def matches(got, candidate, rtol: float = 1e-6, atol: float = 1e-8) -> bool:
    """True when ``got`` has ``candidate``'s shape and values (tensors and arrays alike)."""
    got = np.asarray(got.detach().cpu().numpy() if hasattr(got, "detach") else got)
    candidate = np.asarray(candidate.detach().cpu().numpy() if hasattr(candidate, "detach") else candidate)
    if got.shape != candidate.shape or got.dtype.kind not in "iufb" or candidate.dtype.kind not in "iufb":
        return False
    return bool(np.allclose(got.astype(np.float64), candidate.astype(np.float64), rtol=rtol, atol=atol))


def _axis_name(axis: int, ndim: int) -> str:
    return f"axis {axis} (the last)" if axis == ndim - 1 else f"axis {axis}"


def _shape_hint(got: np.ndarray, expected: np.ndarray) -> str:
    if got.dtype.kind not in "iufb" or expected.dtype.kind not in "iufb":
        return ""
    g, e = got.astype(np.float64), expected.astype(np.float64)
    if expected.ndim == 0:
        return "; expected a single number"
    if got.ndim == expected.ndim and sorted(got.shape) == sorted(expected.shape):
        for order in _permutations(got.ndim):
            if tuple(got.shape[i] for i in order) == expected.shape and np.allclose(g.transpose(order), e):
                return "; the values are right with the axes in another order: a transpose too many or too few?"
    extra = got.ndim - expected.ndim
    if extra > 0 and got.shape[extra:] == expected.shape:
        axes = tuple(range(extra))
        if np.allclose(g.sum(axis=axes), e):
            over = f"axis {axes[0]}" if extra == 1 else f"axes {axes}"
            return f"; summed over {over} they are right: that sum is missing"
    return ""


def _permutations(n: int):
    from itertools import permutations
    return [p for p in permutations(range(n)) if p != tuple(range(n))] if n <= 5 else []


def _normalised_axes(a: np.ndarray) -> list[int]:
    """The axes along which every slice of ``a`` sums to 1."""
    if a.ndim < 2 or a.dtype.kind != "f":
        return []
    return [ax for ax in range(a.ndim) if a.shape[ax] > 1 and np.allclose(a.sum(axis=ax), 1.0, rtol=1e-6, atol=1e-6)]


def assert_close(got, expected, what: str = "result", rtol: float = 1e-6, atol: float = 1e-8, *,
                 hints: dict | None = None, wrong=()) -> str:
    """Fail unless ``got`` matches ``expected`` in type, shape and value; say how it differs.

    ``hints`` maps a constant factor got / expected to the mistake it betrays, e.g. ``{64: "did you sum instead
    of averaging over the 64 rows?"}``; other constant factors get a generic guess. ``wrong`` lists ``(value,
    message)`` pairs, results of known mistakes: when ``got`` is one of them, its message is the feedback.
    Without those it diagnoses by itself: axes swapped, values in the wrong places, normalised along
    another axis, every value off by one factor. Numbers print with the digits it takes to tell them apart.
    """
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
        raise CheckFailed(f"{what}: shape is wrong: expected {expected.shape}, got {got.shape}"
                          f"{_shape_hint(got, expected)}")
    if expected.dtype.kind in "iub" and got.dtype.kind not in "iub":
        raise CheckFailed(f"{what}: expected integers, got dtype {got.dtype}")
    if got.dtype.kind not in "iufb":
        raise CheckFailed(f"{what}: expected numbers, got dtype {got.dtype}")
    if not np.all(np.isfinite(got)):
        bad = np.argwhere(~np.isfinite(got))[0] if got.ndim else ()
        raise CheckFailed(f"{what}: non-finite value {got[tuple(bad)]} at index {tuple(int(i) for i in bad)}")
    g, e = got.astype(np.float64), expected.astype(np.float64)
    diff = np.abs(g - e)
    if np.allclose(g, e, rtol=rtol, atol=atol):
        return f"max abs difference {diff.max() if diff.size else 0.0:.1e}"
    for value, message in wrong:
        if _closer(g, value, e, rtol, atol):
            raise CheckFailed(f"{what}: {message}")

    worst = np.unravel_index(np.argmax(diff), diff.shape)
    where = tuple(int(i) for i in worst)
    n_bad = int((~np.isclose(g, e, rtol=rtol, atol=atol)).sum())
    se, sg = fmt_pair(expected[worst], got[worst])
    detail = (f"expected {se}, got {sg} (difference {diff[worst]:.3g})" if expected.ndim == 0 else
              f"{n_bad} of {expected.size} values are wrong; max abs difference {diff[worst]:.3g} "
              f"at index {where}: expected {se}, got {sg}")
    tol = max(1e-6, min(10 * rtol, 1e-4))

    # One factor between got and expected, in every value?
    scale = np.abs(e).max(initial=0.0)
    significant = np.abs(e) > 1e-3 * scale
    if scale > 0 and expected.dtype.kind != "b":
        if not g.any():
            raise CheckFailed(f"{what}: every value is 0 (expected values up to {scale:.6g}): is the result computed "
                              "and filled in?")
        r = float((g * e).sum() / (e * e).sum())
        constant = np.allclose(g, r * e, rtol=tol, atol=tol * abs(r) * scale + atol)
        hint = _match_hint(r, hints, tol) if constant else ""
        if constant and (hint or abs(r - 1) > 1e-3):
            hint = hint or factor_hint(r, tol)
            rel = abs(r - 1)
            if significant.sum() >= 2:
                head = f"every value is {_ratio_text(r)}x the expected (relative error {rel:.3g})"
            else:
                head = f"{expected_got(expected[worst], got[worst])}: {_ratio_text(r)}x the expected " \
                       f"(relative error {rel:.3g})"
            raise CheckFailed(f"{what}: {head}" + (f": {hint}" if hint else ""))

    # The right values in the wrong places?
    for i in range(expected.ndim):
        for j in range(i + 1, expected.ndim):
            if expected.shape[i] == expected.shape[j] and np.allclose(g, np.swapaxes(e, i, j), rtol=rtol, atol=atol):
                raise CheckFailed(f"{what}: the right values with axes {i} and {j} swapped: a transpose too many or "
                                  f"too few? ({detail})")
    distinct = len(np.unique(e)) > expected.size / 2 > 1  # not mostly repeats, where any order would do
    if distinct and np.allclose(np.sort(g, axis=None), np.sort(e, axis=None), rtol=rtol, atol=atol):
        raise CheckFailed(f"{what}: the right values in the wrong places: a reshape or view where a transpose "
                          f"(permute) belongs, or axes in the wrong order? ({detail})")

    # Normalised along the wrong axis?
    want, have = _normalised_axes(e), _normalised_axes(g)
    if want and have and not set(want) & set(have):
        raise CheckFailed(f"{what}: wrong axis: your values sum to 1 along {_axis_name(have[0], e.ndim)}; "
                          f"they should along {_axis_name(want[0], e.ndim)} ({detail})")
    if want and not have and expected.ndim >= 2 and (g >= 0).all():
        sums = np.ravel(g.sum(axis=want[0]))
        raise CheckFailed(f"{what}: each slice along {_axis_name(want[0], e.ndim)} should sum to 1; one of yours "
                          f"sums to {sums[np.argmax(np.abs(sums - 1))]:.6g} ({detail})")
    raise CheckFailed(f"{what}: {detail}")


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


def run_chapter(chapter: str, path: Path, timeout: float = 60.0, names=None) -> list[Result]:
    """Run each of the chapter's checks (or only those in ``names``) in its own process, with a time limit."""
    checks = importlib.import_module(f"quanta_tissu.grade.ch{chapter}").CHECKS
    results = []
    for name in checks:
        if names is not None and name not in names:
            continue
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
