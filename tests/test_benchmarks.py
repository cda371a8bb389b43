"""Benchmarks keep running: each one's smoke mode (a tiny model, a few steps) finishes and prints its ratios."""
import subprocess
import sys

import pytest

from conftest import ROOT


def test_bench_generate_smoke():
    pytest.importorskip("transformers")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_generate.py"), "--smoke"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cache / no cache" in out.stdout and "of it (goal 60%)" in out.stdout


def test_bench_train_smoke():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--smoke"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MFU" in out.stdout and "checkpointing" in out.stdout and "autocast step time" in out.stdout


def test_bench_serve_smoke():
    pytest.importorskip("fastapi")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_serve.py"), "--smoke"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "the throughput of one at a time" in out.stdout


@pytest.mark.parametrize("script, args, says", [
    ("bench_llama.py", ["chapter08", "--smoke"], "smoke: every part ran"),
    ("bench_nanogpt_recipe.py", ["--smoke"], "ratios to nanoGPT's documented run"),
    ("bench_tokenizer.py", ["--smoke"], "smoke run: nothing written"),
    ("bench_bpe_vocab.py", ["--smoke"], "smoke run: nothing written"),
    ("bench_zoo_recipe.py", ["shakespeare-llama-draft", "--smoke"], "smoke run: nothing written"),
])
def test_every_benchmark_has_a_smoke_run(script, args, says):
    if script == "bench_tokenizer.py":
        pytest.importorskip("tokenizers")
        pytest.importorskip("tiktoken")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert says in out.stdout
