"""The grader: every solution passes, every stub fails, and bad learner code is survived."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from quanta_tissu.grade.core import CHAPTERS, run_chapter


def grade(chapter, path, timeout=60):
    return {r.name: r for r in run_chapter(chapter, path, timeout=timeout)}


def grade_source(tmp_path, chapter, source):
    """Grade a learner's file holding ``source``: the results by exercise name."""
    path = tmp_path / f"ex{chapter}.py"
    path.write_text(source)
    return grade(chapter, path)


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_solutions_pass(chapter):
    results = grade(chapter, ROOT / "solutions" / CHAPTERS[chapter])
    assert len(results) >= 3
    failed = {n: r.message for n, r in results.items() if not r.passed}
    assert not failed


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_stubs_fail(chapter):
    results = grade(chapter, ROOT / "exercises" / CHAPTERS[chapter])
    passed = [n for n, r in results.items() if r.passed]
    assert not passed
    assert all("not implemented" in r.message for r in results.values())


def test_feedback_is_specific(tmp_path):
    r = grade_source(tmp_path, "02",
        "import numpy as np\n"
        "def softmax(x):\n    return np.exp(x) / np.exp(x).sum(axis=0)\n"  # wrong axis
        "def cross_entropy(logits, targets):\n    return [1.0, 2.0]\n"
        "def cross_entropy_grad(logits, targets):\n    return np.zeros((logits.shape[1], logits.shape[0]))\n"
        "def numerical_gradient(f, x, h):\n    return 1 / 0\n"
    )
    assert "wrong axis" in r["softmax"].message and "each column sums to 1" in r["softmax"].message
    assert "scalar" in r["cross_entropy"].message
    assert "expected (6, 5), got (5, 6)" in r["cross_entropy_grad"].message
    assert "ZeroDivisionError" in r["numerical_gradient"].message and "line 9" in r["numerical_gradient"].message
    assert "no function named 'bigram_full_batch_grad'" in r["bigram_full_batch_grad"].message


def test_syntax_error_and_endless_loop_are_survived(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def count_bigrams(ids, V):\n    return (\n")
    r = grade("01", broken)
    assert all(not x.passed and "does not parse" in x.message for x in r.values())
    looping = tmp_path / "loop.py"
    looping.write_text("def count_bigrams(ids, V):\n    while True:\n        pass\n")
    r = grade("01", looping, timeout=5)
    assert "did not return within 5 s" in r["count_bigrams"].message


def test_cli_exit_code_and_json():
    out = subprocess.run([sys.executable, "-m", "quanta_tissu.grade", "1", "--json",
                          "--file", str(ROOT / "solutions" / CHAPTERS["01"])], capture_output=True, text=True)
    assert out.returncode == 0 and all(r["passed"] for r in json.loads(out.stdout))
    out = subprocess.run([sys.executable, "-m", "quanta_tissu.grade", "99"], capture_output=True, text=True)
    assert out.returncode == 2 and "no exercises for chapter" in out.stderr


MISTAKES = {  # chapter: (a learner's wrong file, {exercise: words its feedback must contain}), or a list of those
    "01": [("import numpy as np\n"
            "def count_bigrams(ids, V):\n"
            "    counts = np.zeros((V, V), dtype=np.int64)\n"
            "    for a, b in zip(ids[:-1], ids[1:]):\n"
            "        counts[b, a] += 1\n"  # transposed
            "    return counts\n"
            "def bigram_probs(counts, smoothing):\n"
            "    s = counts + smoothing\n"
            "    return s / s.sum(axis=0)\n"  # columns normalised
            "def mean_nll(probs, ids):\n"
            "    return float(-np.log(probs[ids[:-1], ids[1:]]).sum())\n",  # the sum
            {"count_bigrams": "rows and columns are swapped", "bigram_probs": "each column sums to 1",
             "mean_nll": "sum instead of averaging over the 499 transitions"}),
           ("import numpy as np\n"
            "def bigram_probs(counts, smoothing):\n"
            "    s = counts + smoothing\n"
            "    return s / s.sum(axis=1, keepdims=True)\n"  # the empty row: 0 / 0
            "def mean_nll(probs, ids):\n"
            "    return float(-np.log(probs[ids[:-1], ids[1:]]).sum() / len(ids))\n",  # N, not N - 1
            {"bigram_probs": "row 3 is not finite", "mean_nll": "len(ids) - 1"})],
    "02": [("import numpy as np\n"
            "def softmax(x):\n"
            "    e = np.exp(x - x.max(axis=1, keepdims=True))\n"
            "    return e / e.sum(axis=0)\n"  # normalised down the columns
            "def _softmax(x):\n"
            "    e = np.exp(x - x.max(axis=1, keepdims=True))\n"
            "    return e / e.sum(axis=1, keepdims=True)\n"
            "def cross_entropy(logits, targets):\n"
            "    p = _softmax(logits)\n"
            "    return float(-np.log(p[np.arange(len(targets)), targets]).sum())\n"  # the sum
            "def cross_entropy_grad(logits, targets):\n"
            "    return _softmax(logits) - np.eye(logits.shape[1])[targets]\n"  # no 1/N
            "def bigram_full_batch_grad(W, counts):\n"
            "    return counts.sum(axis=1, keepdims=True) * _softmax(W) - counts\n",  # no 1/counts.sum()
            {"softmax": "wrong axis", "cross_entropy": "sum instead of averaging over the 6 rows",
             "cross_entropy_grad": "a 1/N is missing", "bigram_full_batch_grad": "sum instead of averaging"}),
           ("import numpy as np\n"
            "def softmax(x):\n"
            "    e = np.exp(x - x.max(axis=0))\n"  # each column's max
            "    return e / e.sum(axis=1, keepdims=True)\n"
            "def _softmax(x):\n"
            "    e = np.exp(x - x.max(axis=1, keepdims=True))\n"
            "    return e / e.sum(axis=1, keepdims=True)\n"
            "def cross_entropy_grad(logits, targets):\n"
            "    return (np.eye(logits.shape[1])[targets] - _softmax(logits)) / len(targets)\n"  # the sign
            "def bigram_full_batch_grad(W, counts):\n"
            "    rows = counts.sum(axis=1, keepdims=True)\n"
            "    return (rows * _softmax(W) - counts) / np.maximum(rows, 1)\n",  # each row its own mean
            {"softmax": "wrong axis for the max", "cross_entropy_grad": "the sign is flipped",
             "bigram_full_batch_grad": "its own count"})],
    "03": [("import numpy as np\n"
            "def linear_backward(x, W, dout):\n"
            "    return dout @ W.T, x.T @ dout, dout.mean(axis=0)\n"  # the mean for db
            "def embedding_backward(ids, dout, vocab_size):\n"
            "    dW = np.zeros((vocab_size, dout.shape[-1]))\n"
            "    dW[ids] += dout\n"  # repeated ids overwrite
            "    return dW\n"
            "def adam_step(p, g, m, v, t, lr, b1, b2, eps):\n"
            "    m = b1 * m + (1 - b1) * g\n"
            "    v = b2 * v + (1 - b2) * g**2\n"
            "    return p - lr * m / (np.sqrt(v) + eps), m, v\n",  # no bias correction
            {"linear_backward": "average over the 5 rows", "embedding_backward": "np.add.at",
             "adam_step": "bias correction is missing"}),
           ("def linear_backward(x, W, dout):\n"
            "    return dout @ W.T, dout.T @ x, dout.sum(axis=0)\n",  # dW transposed
            {"linear_backward": "axes in another order"}),
           ("def linear_backward(x, W, dout):\n"
            "    return dout @ W.T, x.T @ dout, dout.sum(axis=1)\n",  # db summed over the outputs
            {"linear_backward": "one value per row"})],
    "05": [("import numpy as np\n"
            "def softmax_backward(y, dout):\n"
            "    return y * dout - y * np.sum(y * dout)\n"  # summed over everything
            "def causal_attention(q, k, v):\n"
            "    T = q.shape[-2]\n"
            "    scores = q @ k.swapaxes(-1, -2)\n"  # not scaled
            "    scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)\n"
            "    w = np.exp(scores - scores.max(-1, keepdims=True))\n"
            "    return w / w.sum(-1, keepdims=True) @ v\n"
            "def layernorm_backward(x, w, dout, eps):\n"
            "    C = x.shape[-1]\n"
            "    mean = x.mean(-1, keepdims=True)\n"
            "    std = np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)\n"
            "    xhat, dxhat = (x - mean) / std, dout * w\n"
            "    dx = (C * dxhat - dxhat.sum(-1, keepdims=True) - xhat * (dxhat * xhat).sum(-1, keepdims=True)) / std\n"
            "    return dx, (dout * xhat).sum((0, 1)), dout.sum((0, 1))\n",  # dx without its 1/C
            {"softmax_backward": "summed over everything", "causal_attention": "not scaled: divide q kᵀ by √D",
             "layernorm_backward": "a 1/C is missing"}),
           ("import numpy as np\n"
            "def softmax_backward(y, dout):\n"
            "    return y * dout - y * np.sum(y * dout, axis=0, keepdims=True)\n"  # the wrong axis
            "def causal_attention(q, k, v):\n"
            "    T, D = q.shape[-2:]\n"
            "    scores = q @ k.swapaxes(-1, -2) / np.sqrt(D)\n"
            "    scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)\n"
            "    w = np.exp(scores - scores.max(-2, keepdims=True))\n"
            "    return w / w.sum(-2, keepdims=True) @ v\n"  # softmax over the queries
            "def layernorm_backward(x, w, dout, eps):\n"
            "    C = x.shape[-1]\n"
            "    mean = x.mean(-1, keepdims=True)\n"
            "    std = np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)\n"
            "    xhat, dxhat = (x - mean) / std, dout * w\n"
            "    dx = C * dxhat - dxhat.sum(-1, keepdims=True) - xhat * (dxhat * xhat).sum(-1, keepdims=True)\n"
            "    dx = dx / (C * std)\n"
            "    return dx, dout * xhat, dout\n",  # dw not summed over B and T
            {"softmax_backward": "wrong axis", "causal_attention": "over the queries",
             "layernorm_backward": "that sum is missing"})],
    "06": [("import torch\n"
            "def split_heads(x, n_head):\n"
            "    B, T, C = x.shape\n"
            "    return x.reshape(B, n_head, T, C // n_head)\n"  # a reshape, no transpose
            "def merge_heads(y):\n"
            "    B, H, T, D = y.shape\n"
            "    return y.reshape(B, T, H * D)\n"
            "def causal_self_attention(x, w_qkv, b_qkv, w_proj, b_proj, n_head):\n"
            "    B, T, C = x.shape\n"
            "    q, k, v = ((x @ w_qkv.T + b_qkv).view(B, T, 3, n_head, C // n_head).permute(2, 0, 3, 1, 4))\n"
            "    scores = (q @ k.transpose(-1, -2)).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -1e9)\n"
            "    y = scores.softmax(-1) @ v\n"  # not scaled
            "    return y.transpose(1, 2).reshape(B, T, C) @ w_proj.T + b_proj\n",
            {"split_heads": "reshaped straight to (B, H, T, D)", "merge_heads": "without moving the head axis",
             "causal_self_attention": "not scaled"}),
           ("import math\nimport torch\n"
            "def split_heads(x, n_head):\n"
            "    B, T, C = x.shape\n"
            "    return x.view(B, T, C // n_head, n_head).permute(0, 3, 1, 2)\n"  # strided channels
            "def causal_self_attention(x, w_qkv, b_qkv, w_proj, b_proj, n_head):\n"
            "    B, T, C = x.shape\n"
            "    q, k, v = ((x @ w_qkv.T + b_qkv).view(B, T, 3, n_head, C // n_head).permute(2, 0, 3, 1, 4))\n"
            "    scores = q @ k.transpose(-1, -2) / math.sqrt(C)\n"  # the model width, not the head size
            "    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float('-inf'))\n"
            "    return (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C) @ w_proj.T + b_proj\n",
            {"split_heads": "every H-th channel", "causal_self_attention": "the model width"})],
    "07": [("import math\nimport torch\n"
            "def clip_grad_norm(grads, max_norm):\n"
            "    out = []\n"
            "    for g in grads:\n"  # each tensor by its own norm
            "        n = float(g.norm())\n"
            "        out.append(g * (max_norm / (n + 1e-6)) if n > max_norm else g)\n"
            "    return out, math.sqrt(sum(float((g * g).sum()) for g in grads))\n"
            "def adamw_step(p, g, m, v, t, lr, betas, eps, weight_decay):\n"
            "    b1, b2 = betas\n"
            "    g = g + weight_decay * p\n"  # L2 regularisation
            "    m = b1 * m + (1 - b1) * g\n"
            "    v = b2 * v + (1 - b2) * g * g\n"
            "    return p - lr * (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + eps), m, v\n",
            {"clip_grad_norm": "clipped by its own norm", "adamw_step": "Adam with L2 regularisation"}),
           ("import torch\n"
            "def clip_grad_norm(grads, max_norm):\n"
            "    norm = sum(float(g.norm()) for g in grads)\n"  # the sum of the norms
            "    return [g * min(1.0, max_norm / (norm + 1e-6)) for g in grads], norm\n"
            "def adamw_step(p, g, m, v, t, lr, betas, eps, weight_decay):\n"
            "    b1, b2 = betas\n"
            "    m = b1 * m + (1 - b1) * g\n"
            "    v = b2 * v + (1 - b2) * g * g\n"
            "    p = p - lr * (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + eps)\n"
            "    return p * (1 - lr * weight_decay), m, v\n",  # decayed after the update
            {"clip_grad_norm": "sum of the per-tensor norms", "adamw_step": "the decay comes first"}),
           ("import math\nimport torch\n"
            "def clip_grad_norm(grads, max_norm):\n"
            "    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))\n"
            "    return [g * (max_norm / (norm + 1e-6)) for g in grads], norm\n"  # scales even below max_norm
            "def adamw_step(p, g, m, v, t, lr, betas, eps, weight_decay):\n"
            "    b1, b2 = betas\n"
            "    p = p * (1 - weight_decay)\n"  # not times lr
            "    m = b1 * m + (1 - b1) * g\n"
            "    v = b2 * v + (1 - b2) * g * g\n"
            "    return p - lr * (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + eps), m, v\n",
            {"clip_grad_norm": "below max_norm", "adamw_step": "scaled by the learning rate"})],
    "08": [("import torch\nimport torch.nn.functional as F\n"
            "def rms_norm(x, weight, eps=1e-5):\n    return F.layer_norm(x, x.shape[-1:], weight, None, eps)\n"
            "def swiglu(x, g, u, d):\n    return (F.silu(x @ u.T) * (x @ g.T)) @ d.T\n"
            "def apply_rope(x, theta=10000.0):\n    from quanta_tissu.llama import apply_rope_interleaved\n"
            "    return apply_rope_interleaved(x, theta)\n"
            "def repeat_kv(kv, n_rep):\n    return kv.repeat(1, n_rep, 1, 1)\n"
            "def wsd_lr(step, max_lr, min_lr, warmup, total, cooldown):\n"
            "    from quanta_tissu.training.optim import wsd_lr\n"
            "    return wsd_lr(step, max_lr, min_lr, warmup, total, 1 - cooldown)\n",
            {"rms_norm": "LayerNorm", "swiglu": "swapped", "apply_rope": "interleaved", "repeat_kv": "tiled",
             "wsd_lr": "last* steps"}),
           ("import torch\n"
            "def rms_norm(x, weight, eps=1e-5):\n"
            "    return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight\n",  # ε outside the root
            {"rms_norm": "outside the square root"}),
           ("import torch\n"
            "def rms_norm(x, weight, eps=1e-5):\n"
            "    return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + eps) * weight\n",  # over T, not C
            {"rms_norm": "wrong axis"}),
           ("import torch\n"
            "def rms_norm(x, weight, eps=1e-5):\n"
            "    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * weight\n",  # the sum
            {"rms_norm": "the sum of x²"})],
    "09": ("def split_qkv(w, n_head, n_kv_heads):\n    return tuple(w.chunk(3))\n"
           "def hf_to_course(state, n_layer):\n    return dict(state)\n"
           "def interleaved_to_rotate_half(w, n_heads):\n"
           "    return w.view(-1, 2, w.shape[1]).transpose(0, 1).reshape(w.shape)\n",
           {"split_qkv": "same shape", "hf_to_course": "missing ['blocks.0.attn.proj.weight', 'blocks.0.attn.qkv.weight'",
            "interleaved_to_rotate_half": "as one head"}),
    "10": ("import torch\n"
           "def top_p_filter(logits, p):\n"
           "    probs, order = logits.softmax(-1).sort(-1, descending=True)\n"
           "    drop = probs.cumsum(-1) > p\n"  # drops the token that crosses p
           "    return logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float('-inf'))\n"
           "def min_p_filter(logits, min_p):\n"
           "    return logits.masked_fill(logits.softmax(-1) < min_p, float('-inf'))\n"
           "def repetition_penalty(logits, prev_ids, penalty):\n"
           "    seen = logits.gather(1, prev_ids)\n"
           "    return logits.scatter(1, prev_ids, seen / penalty)\n"
           "def positions_from_mask(mask):\n"
           "    return torch.arange(mask.shape[1]).expand(mask.shape)\n",
           {"top_p_filter": "crosses p", "min_p_filter": "relative to the top", "repetition_penalty": "multiply negative",
            "positions_from_mask": "as if it ran alone"}),
    "11": ("import torch\n"
           "def cache_write(cache, new, start):\n"
           "    cache[:, :, :new.size(2)] = new\n"  # forgets the offset
           "    return cache[:, :, :start + new.size(2)]\n"
           "def attend_new(q, k, v):\n"
           "    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)\n"
           "def rolling_columns(length, slots):\n"
           "    s = torch.arange(slots)\n"
           "    return torch.where(s < length, s, torch.full_like(s, -1))\n"
           "def accepted(guesses, choices):\n"
           "    return int((guesses == choices).sum())\n",
           {"cache_write": "the offset", "attend_new": "is_causal=True", "rolling_columns": "newest column",
            "accepted": "first disagreement"}),
    "12": ("import torch\n"
           "def to_bf16(x):\n"
           "    return (x.view(torch.int32) & ~0xFFFF).view(torch.float32)\n"  # truncates
           "def underflow_fraction(grads, scale):\n"
           "    return float((grads * scale).half().eq(0).float().mean())\n"  # counts the zeros that were zero
           "def scaler_update(scale, clean_steps, found_inf, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):\n"
           "    if found_inf:\n"
           "        return scale * backoff_factor, clean_steps\n"  # forgets to reset the count
           "    return scale, clean_steps + 1\n"
           "def flops_per_token(matmul_weights, n_layer, context, n_embd):\n"
           "    return 2 * matmul_weights\n",  # the forward only
           {"to_bf16": "truncates", "underflow_fraction": "already zero", "scaler_update": "starts again at 0",
            "flops_per_token": "forward pass only"}),
    "14": ("import torch\n"
           "def int8_zero_point(w):\n"
           "    lo, hi = w.min().clamp(max=0), w.max().clamp(min=0)\n"
           "    scale = (hi - lo) / 255\n"
           "    zero = -128 - torch.round(lo / scale)\n"
           "    return torch.round(w / scale).to(torch.int8), scale, zero\n"  # the zero point left out of q
           "def pack_nibbles(values):\n"
           "    return values[..., 1::2] | (values[..., 0::2] << 4)\n"  # reversed nibbles
           "def group_scales(w, group_size, bits=4):\n"
           "    return w.reshape(w.shape[0], group_size, -1).abs().amax(1) / (2 ** (bits - 1) - 1)\n",  # strided
           {"int8_zero_point": "zero point is added", "pack_nibbles": "nibble order", "group_scales": "strided"}),
    "13": ("import torch\n"
           "import torch.distributed as dist\n"
           "def shard_rows(batch_size, rank, world_size):\n"
           "    return slice(rank, batch_size, world_size)\n"  # strided
           "def allreduce_mean(tensor):\n"
           "    out = tensor.clone()\n"
           "    dist.all_reduce(out)\n"
           "    return out\n"  # the sum
           "def zero_bytes_per_rank(parameters, ranks, stage):\n"
           "    return parameters * (2 + 2 + (12 if stage == 0 else 12 / ranks) - (0 if stage < 1 else 2 - 2 / ranks))\n",
           {"shard_rows": "contiguous", "allreduce_mean": "the sum", "zero_bytes_per_rank": "only the optimizer state"}),
    "15": ("import torch\n"
           "def lora_forward(x, weight, A, B, alpha, r):\n"
           "    return x @ weight.T + (r / alpha) * (x @ A.T) @ B.T\n"  # the scale upside down
           "def init_lora(in_features, out_features, r, generator):\n"
           "    return torch.zeros(r, in_features), torch.zeros(out_features, r)\n"  # both zero: nothing ever trains
           "def merge(weight, A, B, alpha, r):\n"
           "    return weight + B @ A\n"  # the scale forgotten
           "def lora_parameter_count(shapes, r):\n"
           "    return sum(r * n_in * n_out for n_out, n_in in shapes)\n",  # r full matrices
           {"lora_forward": "upside down", "init_lora": "no gradient ever reaches them", "merge": "scale is forgotten",
            "lora_parameter_count": "r full matrices"}),
    "16": ("import torch\n"
           "import torch.nn.functional as F\n"
           "def sequence_logprob(logits, ids, completion_mask):\n"
           "    logps = logits.log_softmax(-1).gather(-1, ids[..., None]).squeeze(-1)\n"  # logits t scoring token t
           "    return (logps * completion_mask).sum(1)\n"
           "def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):\n"
           "    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)\n"
           "    return -F.logsigmoid(-beta * h).mean()\n"  # the wrong sign: ln 2 at the start all the same
           "def implicit_rewards(policy_logps, ref_logps, beta):\n"
           "    return beta * policy_logps\n"  # the reference forgotten
           "def reward_accuracy(chosen_rewards, rejected_rewards):\n"
           "    return (chosen_rewards >= rejected_rewards).float().mean().item()\n",  # ties counted
           {"sequence_logprob": "not shifted", "dpo_loss": "rewards the REJECTED",
            "implicit_rewards": "reference is forgotten", "reward_accuracy": ">= counts ties"}),
    "17": ("import json\nimport math\nimport torch\n"
           "def parse_sse(chunks):\n"
           "    out, buf = [], ''\n"
           "    for chunk in chunks:\n"
           "        buf += chunk\n"
           "        while '\\n' in buf:\n"  # one line at a time: an event's data lines decoded apart
           "            line, buf = buf.split('\\n', 1)\n"
           "            if line.startswith('data: '):\n"
           "                if line[6:] == '[DONE]':\n"
           "                    return out\n"
           "                out.append(json.loads(line[6:]))\n"
           "    return out\n"
           "def safe_pieces(tokens_text, stops):\n"
           "    out, text, sent = [], '', 0\n"
           "    for piece in tokens_text:\n"  # nothing held back: the start of a stop string goes out
           "        text += piece\n"
           "        hits = [text.find(s) for s in stops if s in text]\n"
           "        text = text[:min(hits)] if hits else text\n"
           "        out.append(text[sent:])\n"
           "        sent = max(sent, len(text))\n"
           "    return out + ['']\n"
           "def compact_columns(mask):\n"
           "    new, moves = torch.zeros_like(mask), []\n"
           "    for row in range(mask.shape[0]):\n"
           "        cols = mask[row].nonzero().squeeze(1).tolist()\n"
           "        new[row, :len(cols)] = 1\n"  # left-aligned
           "        moves.append(cols)\n"
           "    return new, moves\n"
           "def watermark_z(ids, greenlist, gamma):\n"
           "    T = len(ids)\n"  # the first token scored, against greenlist(ids[-1])
           "    green = sum(ids[t] in greenlist(ids[t - 1]) for t in range(T))\n"
           "    return (green - gamma * T) / math.sqrt(T * gamma * (1 - gamma))\n",
           {"parse_sse": "single newlines", "safe_pieces": "cannot be taken back", "compact_columns": "left-aligned",
            "watermark_z": "scored the first token"}),
    "18": [("import math\n"
            "def bits_per_byte(nats_per_token, n_tokens, n_bytes):\n"
            "    return nats_per_token / math.log(2)\n"  # bits per token
            "def spell_token(token):\n"
            "    return token.decode('utf-8', errors='replace')\n"  # text, not bytes
            "def gguf_merges(vocab, merges):\n"
            "    table = {b: chr(b) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255 else None for b in range(256)}\n"
            "    extra = [b for b in range(256) if table[b] is None]\n"
            "    table.update({b: chr(256 + i) for i, b in enumerate(extra)})\n"
            "    spell = lambda t: ''.join(table[b] for b in t)\n"
            "    return sorted(f'{spell(vocab[a])} {spell(vocab[b])}' for a, b in merges)\n",  # alphabetical
            {"bits_per_byte": "bits per TOKEN", "spell_token": "not printable", "gguf_merges": "alphabetically"}),
           ("def bits_per_byte(nats_per_token, n_tokens, n_bytes):\n"
            "    return nats_per_token * n_tokens / n_bytes\n"  # still nats
            "def spell_token(token):\n"
            "    return ''.join(chr(b + 256) if b < 33 else chr(b) for b in token)\n"  # bytes 127..160, 173 missed
            "def gguf_merges(vocab, merges):\n"
            "    return [vocab[a].decode() + ' ' + vocab[b].decode() for a, b in sorted(merges, key=merges.get)]\n",
            {"bits_per_byte": "nats per byte", "spell_token": "in increasing byte order", "gguf_merges": "raw text"}),
           ("import math\n"
            "def bits_per_byte(nats_per_token, n_tokens, n_bytes):\n"
            "    return nats_per_token * n_bytes / n_tokens / math.log(2)\n"  # upside down
            "def spell_token(token):\n"
            "    return token.decode('utf-8', errors='replace').replace(' ', 'Ġ').replace('\\n', 'Ċ')\n"
            "def gguf_merges(vocab, merges):\n"
            "    return [str(a) + ' ' + str(b) for a, b in merges]\n",  # dict order, ids
            {"bits_per_byte": "upside down", "spell_token": "decoded UTF-8"}),
           ("import math\n"
            "def bits_per_byte(nats_per_token, n_tokens, n_bytes):\n"
            "    return round(nats_per_token * n_tokens / n_bytes / math.log(2), 4)\n"  # rounded
            "def spell_token(token):\n"
            "    return None if not token else ''.join(chr(b) for b in token)\n"  # nothing for b''
            "def gguf_merges(vocab, merges):\n"
            "    table = {b: chr(b) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255 else None for b in range(256)}\n"
            "    extra = [b for b in range(256) if table[b] is None]\n"
            "    table.update({b: chr(256 + i) for i, b in enumerate(extra)})\n"
            "    spell = lambda t: ''.join(table[x] for x in t)\n"
            "    ranked = sorted(merges, key=merges.get, reverse=True)\n"  # last learned first
            "    return [f'{spell(vocab[a])} {spell(vocab[b])}' for a, b in ranked]\n",
            {"bits_per_byte": "rounded", "spell_token": "no bytes, no characters", "gguf_merges": "in reverse"})],
}


def _mistake_cases():
    """One pytest case per wrong file in MISTAKES, with the id "CHAPTER-N"."""
    for chapter in sorted(MISTAKES):
        entry = MISTAKES[chapter]
        for i, (source, expected) in enumerate(entry if isinstance(entry, list) else [entry]):
            yield pytest.param(chapter, source, expected, id=f"{chapter}-{i}")


@pytest.mark.parametrize("chapter, source, expected", list(_mistake_cases()))
def test_llama_mistakes_are_named(tmp_path, chapter, source, expected):
    """Each chapter's classic mistakes get a message that names the mistake, not only a difference."""
    path = tmp_path / f"ex{chapter}.py"
    path.write_text(source)
    results = {r.name: r for r in run_chapter(chapter, path, names=set(expected))}
    for name, words in expected.items():
        assert words in results[name].message, (name, results[name].message)
