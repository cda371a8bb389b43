"""Tokenizer speed, measured against references in the same run (chapter 04).

Prints times and ratios, then PASS/FAIL against the course's targets:
- training on Tiny Shakespeare, vocab 1024, GPT-4 split: at most 5x Hugging Face tokenizers' time;
- encoding the whole file: at least 1 MB/s;
- the naive trainer (minbpe's loop) against the fast one on the same text and merges, as a speed-up.
Writes benchmarks/results/tokenizer.json (chapter 04 quotes it).
Usage: python benchmarks/bench_tokenizer.py [--vocab-size 1024] [--naive-chars 100000] [--smoke]
"""
import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import quanta_tissu as qt
from quanta_tissu.bpe import GPT4_SPLIT_PATTERN, RegexBPE

RESULTS = Path(__file__).parent / "results" / "tokenizer.json"
THREADS = 2


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def hf_train(text, vocab_size):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(GPT4_SPLIT_PATTERN), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--naive-chars", type=int, default=100_000)
    parser.add_argument("--naive-vocab", type=int, default=512)
    parser.add_argument("--smoke", action="store_true", help="20,000 characters, small vocabularies, nothing written")
    args = parser.parse_args()
    text = qt.load_text("tinyshakespeare")
    if args.smoke:  # checks that every step runs, in seconds
        text, args.vocab_size, args.naive_chars, args.naive_vocab = text[:20_000], 300, 5_000, 280
    mb = len(text.encode("utf-8")) / 1e6
    qt.runtime.set_threads(THREADS)

    hf, t_hf = timed(lambda: hf_train(text, args.vocab_size))
    ours, t_ours = timed(lambda: RegexBPE("gpt4").train(text, args.vocab_size, tie="hf"))
    print(f"train vocab {args.vocab_size}: ours {t_ours:.2f} s, HF tokenizers {t_hf:.2f} s, ratio {t_ours / t_hf:.2f}x")

    ours._cache.clear()
    _, t_enc = timed(lambda: ours.encode_ordinary(text))
    _, t_tt = timed(lambda: ours.to_tiktoken().encode_ordinary(text))
    lines = text.splitlines(keepends=True)
    _, t_hfe = timed(lambda: hf.encode_batch(lines))
    print(f"encode {mb:.2f} MB: ours {mb / t_enc:.2f} MB/s, tiktoken {mb / t_tt:.2f} MB/s, "
          f"HF tokenizers (batched lines) {mb / t_hfe:.2f} MB/s")

    small = text[: args.naive_chars]
    naive, t_naive = timed(lambda: RegexBPE("gpt4").train(small, args.naive_vocab, algorithm="naive"))
    fast, t_fast = timed(lambda: RegexBPE("gpt4").train(small, args.naive_vocab, algorithm="fast"))
    assert naive.merges == fast.merges
    print(f"naive vs fast, {len(small):,} chars, vocab {args.naive_vocab}: naive {t_naive:.2f} s, "
          f"fast {t_fast:.3f} s, speed-up {t_naive / t_fast:.0f}x (identical merges)")

    checks = {"training within 5x of HF tokenizers": t_ours <= 5 * t_hf, "encoding >= 1 MB/s": mb / t_enc >= 1.0}
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    import tiktoken
    import tokenizers

    results = {
        "date": datetime.date.today().isoformat(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "threads": THREADS, "tokenizers": tokenizers.__version__, "tiktoken": tiktoken.__version__,
        "corpus_MB": mb, "vocab_size": args.vocab_size,
        "train_ours_s": t_ours, "train_hf_s": t_hf, "train_ours_vs_hf": t_ours / t_hf,
        "encode_ours_MB_per_s": mb / t_enc, "encode_tiktoken_MB_per_s": mb / t_tt,
        "encode_hf_batched_lines_MB_per_s": mb / t_hfe,
        "naive_chars": len(small), "naive_vocab": args.naive_vocab, "naive_s": t_naive, "fast_s": t_fast,
        "naive_vs_fast": t_naive / t_fast, "checks": checks,
    }
    if args.smoke:
        print("smoke run: nothing written")
        return 0
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written to {RESULTS}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
