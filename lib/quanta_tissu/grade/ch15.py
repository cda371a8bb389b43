"""Checks for chapter 15's exercises (LoRA), against ``qt.lora``'s conventions (peft's): W' = W + (alpha / r) · B @ A,
A (r, in) Kaiming-uniform, B (out, r) zero."""
import math
import numbers

import torch

from .core import CheckFailed, assert_close, expect_tuple


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    return got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-4, atol=1e-5)


def _call_matmuls(fn, args, shapes: str, hint: str):
    """Call ``fn(*args)``; a shape error in a matmul becomes a message that names the shapes."""
    try:
        return fn(*args)
    except NotImplementedError:  # a RuntimeError too: let the runner say "not implemented"
        raise
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckFailed(f"a matmul failed ({first}): the shapes are {shapes}; {hint}") from None


def _tensor(got, name: str) -> torch.Tensor:
    if got is None:
        raise CheckFailed(f"{name} returned None; did you forget to return it?")
    return torch.as_tensor(got)


def check_lora_forward(fn) -> str:
    torch.manual_seed(0)
    n_in, n_out, r, alpha = 12, 8, 4, 8.0  # alpha / r = 2, r / alpha = 0.5: every wrong scale shows
    x = torch.randn(2, 5, n_in)
    weight = torch.randn(n_out, n_in) * 0.3
    A = (torch.randn(r, n_in) * 0.3).requires_grad_()
    B = (torch.randn(n_out, r) * 0.3).requires_grad_()  # not zero: a trained adapter, whose term shows
    weight_before = weight.clone()
    shapes = "x (2, 5, 12) = (..., in), weight (8, 12) = (out, in), A (4, 12) = (r, in), B (8, 4) = (out, r)"
    hint = ("x Aᵀ is (..., r) and (x Aᵀ) Bᵀ is (..., out); if you form the update, B @ A is (out, in) (A @ B does not "
            "fit) and x (B @ A)ᵀ is (..., out)")
    got = _tensor(_call_matmuls(fn, (x, weight, A, B, alpha, r), shapes, hint), "lora_forward")
    if not torch.equal(weight, weight_before):
        raise CheckFailed("you changed weight in place (weight += ...?): the base weight stays frozen and "
                          "unchanged; compute a new tensor")
    with torch.no_grad():
        base = x @ weight.t()
        adapter = (x @ A.t()) @ B.t()  # (2, 5, 8)
    plain = got.detach().float()
    if plain.shape == base.shape:
        wrong = [(base + (r / alpha) * adapter, "your scale is r / alpha = 0.5, upside down: it is alpha / r = 2"),
                 (base + adapter, "the scale is forgotten: multiply the adapter's term (x Aᵀ) Bᵀ by alpha / r = 2"),
                 (base + alpha * adapter, "you scaled by alpha = 8: the scale is alpha / r = 2"),
                 (base, "you returned the base's output x Wᵀ alone: add the adapter's term (alpha / r) · (x Aᵀ) Bᵀ"),
                 ((alpha / r) * adapter, "you returned the adapter's term alone: add the base's output x Wᵀ"),
                 (base - (alpha / r) * adapter, "the adapter's term is subtracted: y = x Wᵀ + (alpha / r) · (x Aᵀ) Bᵀ")]
        for value, message in wrong:
            if _close(plain, value) and not _close(plain, base + (alpha / r) * adapter):
                raise CheckFailed(message)
    assert_close(plain, (base + (alpha / r) * adapter).numpy(), "lora_forward(x (2, 5, 12), ..., alpha=8, r=4)",
                 rtol=1e-5, atol=1e-5)
    if not got.requires_grad:
        raise CheckFailed("your result carries no gradient: training could not move A and B (did you compute under "
                          "torch.no_grad(), or use .detach(), .data or .item()?)")
    got.sum().backward()
    if A.grad is None or B.grad is None or not A.grad.abs().sum() > 0 or not B.grad.abs().sum() > 0:
        raise CheckFailed("no gradient reaches A or B: build y from A and B themselves (no .data, no .detach())")
    # a 2-D input and a scale below 1: alpha // r (integer division) would be 0 here
    x2 = torch.randn(3, n_in)
    with torch.no_grad():
        got2 = _tensor(fn(x2, weight, A, B, 1, r), "lora_forward").detach().float()
        base2 = x2 @ weight.t()
    if _close(got2, base2):
        raise CheckFailed("with alpha=1 and r=4 the adapter's term vanished: is your scale alpha // r (integer "
                          "division, 0 here)? use alpha / r = 0.25")
    assert_close(got2, (base2 + 0.25 * (x2 @ A.t()) @ B.t()).detach().numpy(),
                 "lora_forward(x (3, 12), ..., alpha=1, r=4)", rtol=1e-5, atol=1e-5)
    return "(2, 5, 12) -> (2, 5, 8) and (3, 12) -> (3, 8) equal x Wᵀ + (alpha / r) · (x Aᵀ) Bᵀ; gradients reach A and B"


def check_init_lora(fn) -> str:
    n_in, n_out, r = 256, 64, 8
    got = expect_tuple(fn(n_in, n_out, r, torch.Generator().manual_seed(0)), "A, B")
    A, B = _tensor(got[0], "init_lora's A"), _tensor(got[1], "init_lora's B")
    if A.shape == (n_out, r) and B.shape == (r, n_in):
        raise CheckFailed(f"A and B are swapped: A is (r, in) = {(r, n_in)} (it reads the input), B is (out, r) = "
                          f"{(n_out, r)} (it writes the output); you returned A {tuple(A.shape)}, B {tuple(B.shape)}")
    if A.shape != (r, n_in):
        extra = " (transposed)" if A.shape == (n_in, r) else ""
        raise CheckFailed(f"A should be (r, in) = {(r, n_in)}, got {tuple(A.shape)}{extra}")
    if B.shape != (n_out, r):
        extra = " (transposed)" if B.shape == (r, n_out) else ""
        raise CheckFailed(f"B should be (out, r) = {(n_out, r)}, got {tuple(B.shape)}{extra}")
    if A.dtype != torch.float32 or B.dtype != torch.float32:
        raise CheckFailed(f"A and B should be float32, got {A.dtype} and {B.dtype}")
    a_zero, b_zero = bool((A == 0).all()), bool((B == 0).all())
    if a_zero and b_zero:
        raise CheckFailed("A and B are both zero: no gradient ever reaches them, so training never moves. With "
                          "y = x Wᵀ + s (x Aᵀ) Bᵀ and G = dL/dy: dL/dB = s Gᵀ (x Aᵀ) is 0 because A = 0, and "
                          "dL/dA = s Bᵀ Gᵀ x is 0 because B = 0. Keep B = 0 but draw A at random")
    if a_zero:
        raise CheckFailed("you zeroed A and drew B at random: that too starts at the base, but the convention "
                          "(the LoRA paper's, peft's) is the other way round: A random, B = 0")
    if not b_zero:
        raise CheckFailed(f"B is not zero (its largest |value| is {B.abs().max().item():.3g}): then B @ A is not zero "
                          "and the adapted model does not start equal to the base, W + (alpha / r) · B @ A ≠ W before "
                          "any training; start B at zeros (A alone is random)")
    bound = 1 / math.sqrt(n_in)
    top, low = A.abs().max().item(), A.min().item()
    if top > bound * (1 + 1e-5):
        candidates = [(math.sqrt(6 / n_in), "sqrt(6 / in): that is kaiming_uniform_'s default a=0; nn.Linear and "
                                            "peft pass a=math.sqrt(5), which gives 1 / sqrt(in)"),
                      (1 / math.sqrt(r), "1 / sqrt(r): the fan-in of A is in_features, its second axis, not r"),
                      (1 / math.sqrt(n_out), "1 / sqrt(out): the fan-in of A is in_features, not out_features"),
                      (1.0, "1: scale the uniform draw by 1 / sqrt(in_features)")]
        for b, reason in candidates:
            if 0.95 * b < top <= b * (1 + 1e-5):
                raise CheckFailed(f"A's bound is off: its values reach {top:.4f}, so your bound looks like {reason} "
                                  f"(= {bound:.4f} here)")
        raise CheckFailed(f"A's values reach {top:.4f}, beyond the bound 1 / sqrt(in) = {bound:.4f}: draw uniform "
                          "on [-bound, bound] (a normal draw, randn, has no bound)")
    if low >= 0:
        raise CheckFailed("A has no negative values: draw uniform on [-bound, bound], e.g. (torch.rand(...) * 2 - 1) "
                          "* bound, not torch.rand(...) * bound")
    if top < 0.9 * bound:
        raise CheckFailed(f"A's values stay within ±{top:.4f}, well inside ±1 / sqrt(in) = {bound:.4f}: your bound is "
                          "too small (1 / in instead of 1 / sqrt(in)?)")
    std, uniform_std = A.std().item(), bound / math.sqrt(3)
    if abs(std / uniform_std - 1) > 0.1 or abs(A.mean().item()) > 0.1 * uniform_std:
        raise CheckFailed(f"A's spread does not look uniform on ±{bound:.4f}: std {std:.4f} (uniform: {uniform_std:.4f}), "
                          f"mean {A.mean().item():.4f} (uniform: 0)")
    again = _tensor(expect_tuple(fn(n_in, n_out, r, torch.Generator().manual_seed(0)), "A, B")[0], "init_lora's A")
    if not torch.equal(again, A):
        raise CheckFailed("two calls with generators seeded alike gave different A: draw A from `generator` "
                          "(torch.rand(..., generator=generator)), not from torch's global random state")
    other = _tensor(expect_tuple(fn(n_in, n_out, r, torch.Generator().manual_seed(1)), "A, B")[0], "init_lora's A")
    if torch.equal(other, A):
        raise CheckFailed("generators with different seeds gave the same A: draw from `generator` (do not re-seed "
                          "inside the function)")
    small = expect_tuple(fn(10, 30, 2, torch.Generator().manual_seed(0)), "A, B")
    if tuple(torch.as_tensor(small[0]).shape) != (2, 10) or tuple(torch.as_tensor(small[1]).shape) != (30, 2):
        raise CheckFailed(f"init_lora(10, 30, 2): expected A (2, 10) and B (30, 2), got "
                          f"{tuple(torch.as_tensor(small[0]).shape)} and {tuple(torch.as_tensor(small[1]).shape)}")
    return (f"A (8, 256) uniform on ±1/sqrt(256) = ±{bound:.4f} (std {std:.4f}), B (64, 8) zero, "
            "reproducible from the generator")


def check_merge(fn) -> str:
    torch.manual_seed(2)
    n_in, n_out, r, alpha = 12, 8, 2, 6.0  # alpha / r = 3
    weight, A, B = torch.randn(n_out, n_in), torch.randn(r, n_in) * 0.3, torch.randn(n_out, r) * 0.3
    weight_before = weight.clone()
    shapes = "weight (8, 12) = (out, in), A (2, 12) = (r, in), B (8, 2) = (out, r)"
    got = _tensor(_call_matmuls(fn, (weight, A, B, alpha, r), shapes,
                                "B @ A is (out, r) @ (r, in) = (out, in), the shape of weight; A @ B does not fit"),
                  "merge")
    if not torch.equal(weight, weight_before):
        raise CheckFailed("you changed weight in place (weight += ...?): return a new tensor, weight + ..., so "
                          "that the base stays as it was and the adapter can be taken out or swapped")
    got = got.detach().float()
    if got.shape == (n_in, n_out):
        raise CheckFailed(f"your merged weight is (in, out) = {(n_in, n_out)}: that is (B @ A)ᵀ, transposed (A.T @ B.T?); "
                          f"the merged weight has the base's shape (out, in) = {(n_out, n_in)}")
    delta = B @ A
    expected = weight + (alpha / r) * delta
    wrong = [(weight + (r / alpha) * delta, "your scale is r / alpha = 1/3, upside down: it is alpha / r = 3"),
             (weight + delta, "the scale is forgotten: W' = W + (alpha / r) · B @ A, with alpha / r = 3 here"),
             (weight + alpha * delta, "you scaled by alpha = 6: the scale is alpha / r = 3"),
             (weight - (alpha / r) * delta, "you subtracted the update: that is unmerging; merging adds it"),
             ((alpha / r) * delta, "you returned the update alone: add it to the base weight"),
             (weight, "you returned the base weight unchanged: add (alpha / r) · B @ A")]
    for value, message in wrong:
        if _close(got, value):
            raise CheckFailed(message)
    msg = assert_close(got, expected.numpy(), "merge(weight (8, 12), A (2, 12), B (8, 2), alpha=6, r=2)",
                       rtol=1e-5, atol=1e-6)
    x = torch.randn(5, n_in)
    assert_close(x @ got.t(), (x @ weight.t() + (alpha / r) * (x @ A.t()) @ B.t()).numpy(),
                 "x @ merge(...).T against the adapted forward", rtol=1e-4, atol=1e-5)
    return msg + "; x W'ᵀ equals x Wᵀ + (alpha / r) · (x Aᵀ) Bᵀ"


def check_lora_parameter_count(fn) -> str:
    shapes, r = [(192, 64), (64, 64), (256, 64), (64, 256)], 8  # (out, in): qkv, proj, up, down of a width-64 block
    expected = sum(r * (n_in + n_out) for n_out, n_in in shapes)
    full = sum(n_in * n_out for n_out, n_in in shapes)
    got = fn([tuple(s) for s in shapes], r)
    if got is None:
        raise CheckFailed("lora_parameter_count returned None; did you forget to return it?")
    if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
        got = int(got)
    if not isinstance(got, numbers.Integral) or isinstance(got, bool):
        raise CheckFailed(f"return an int (a count of numbers), got {type(got).__name__} {got!r}")
    wrong = {
        sum(r * n_in * n_out for n_out, n_in in shapes):
            "you counted r · in · out, r full matrices: A (r, in) holds r · in numbers and B (out, r) holds out · r, "
            "so r · (in + out) per weight",
        full: "you counted the full weights, in · out each: that is what full fine-tuning trains; LoRA freezes them "
              "and trains A (r, in) and B (out, r)",
        full + expected: "you counted the frozen base weights too: only A and B train",
        sum(r * n_in for n_out, n_in in shapes): "you counted A (r · in) and forgot B (out · r)",
        sum(r * n_out for n_out, n_in in shapes): "you counted B (out · r) and forgot A (r · in)",
        r * sum(shapes[0]): "you counted the first weight only: add r · (in + out) for every shape in the list",
        sum(r * r * (n_in + n_out) for n_out, n_in in shapes): "you multiplied by r twice: r · (in + out) per weight",
    }
    if got != expected and got in wrong:
        raise CheckFailed(f"got {got}, expected {expected}: {wrong[got]}")
    if got != expected:
        raise CheckFailed(f"lora_parameter_count({shapes}, r={r}): expected {expected}, got {got}")
    for args, want in ((([], 4), 0), (([(10, 20)], 1), 30), (([(3, 5), (7, 2)], 3), 3 * (8 + 9))):
        small = fn(*args)
        if small != want:
            raise CheckFailed(f"lora_parameter_count{args}: expected {want}, got {small}")
    return f"{expected} trainable numbers at r={r}, for {full} in the four weights ({100 * expected / full:.1f}%)"


CHECKS = {
    "lora_forward": check_lora_forward,
    "init_lora": check_init_lora,
    "merge": check_merge,
    "lora_parameter_count": check_lora_parameter_count,
}
