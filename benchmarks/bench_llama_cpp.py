"""llama.cpp on the course's GGUF files (chapter 18): same ids, same greedy text, file sizes, decoding speed.

For each course checkpoint named, writes the model with its tokenizer (``qt.save_gguf(..., tokenizer=tok)``) as
float32, Q8_0 and Q4_0, then with llama.cpp's own programs (``qt.interop.llama_cpp``):
- tokenizes a prompt with Unicode the corpus never had and a special token, and compares the ids with ours;
- decodes greedily from three prompts and compares with ``qt.generate`` at temperature 0: for float32 against the
  model itself; for Q8_0 and Q4_0 against the model read back from the same file (``load_gguf``: the same rounded
  weights). llama.cpp also rounds activations to 8 bits in its quantized matmuls, so a quantized run can part from
  ours where two tokens are nearly tied: the first token that differs is reported with our margin there (the gap
  between our two best logits at that step);
- measures decoding tokens/s at batch 1 (``llama-bench``) next to ours on the same machine, in the same run.
Needs llama.cpp's programs: set QUANTA_TISSU_LLAMA_CPP to the folder holding llama-tokenize, llama-simple and
llama-bench (build commands in benchmarks/README.md). Writes benchmarks/results/llama_cpp.json.
Usage: python benchmarks/bench_llama_cpp.py [--checkpoints shakespeare-llama] [--tokens 200] [--threads 2]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import quanta_tissu as qt
from quanta_tissu.interop import llama_cpp
from quanta_tissu.interop.gguf_export import load_gguf, save_gguf

RESULTS = Path(__file__).parent / "results" / "llama_cpp.json"
PROMPTS = ["ROMEO:\n", "First Citizen:\nWe are", "KING HENRY:\nWhat say you"]


def first_difference(model, tok, prompt_ids: list, new: list, theirs: bytes) -> dict | None:
    """Where two greedy runs part: the index of our first token whose bytes llama.cpp did not print, and our
    top-2 logit margin at that step (None if the runs agree)."""
    if tok.decode_bytes(new) == theirs:
        return None
    for i in range(len(new)):
        if not theirs.startswith(tok.decode_bytes(new[:i + 1])):
            with torch.no_grad():
                logits = model(torch.tensor([prompt_ids + new[:i]]))[0][0, -1]
            top = logits.topk(2).values
            return {"token": i, "our_margin": round(float(top[0] - top[1]), 4), "agreed_text": tok.decode(new[:i])}
    return {"token": len(new), "our_margin": None, "agreed_text": tok.decode(new)}  # llama.cpp printed more


def our_speed(model, n: int) -> float:
    idx = torch.zeros(1, 1, dtype=torch.long)
    qt.inference.generate(model, idx, 8, temperature=0, cache=True)  # warm up
    t0 = time.perf_counter()
    qt.inference.generate(model, idx, n, temperature=0, cache=True)
    return n / (time.perf_counter() - t0)


def check(name: str, tokens: int, threads: int, folder: Path) -> dict:
    model, tok = qt.pretrained(name, progress=False)
    n = min(tokens, model.cfg.block_size - max(len(tok.encode(p)) for p in PROMPTS))  # every prompt fits
    probe = "naïve café 🙂 <|end|>" if hasattr(tok, "special_tokens") and "<|end|>" in tok.special_tokens else "ROMEO:"
    row = {"checkpoint": name, "new_tokens": n, "files": {}}
    ids = tok.encode(probe, allowed_special="all") if hasattr(tok, "special_tokens") else tok.encode(probe).tolist()
    for quant in ("f32", "q8_0", "q4_0"):
        path = save_gguf(model, folder / f"{name}-{quant}.gguf", quant, tokenizer=tok)
        reference = model if quant == "f32" else load_gguf(path)
        texts = []
        for prompt in PROMPTS:
            prompt_ids = [int(i) for i in tok.encode(prompt)]
            new = qt.generate(reference, prompt_ids, n, temperature=0)  # ids, stopping nowhere: llama-simple's n
            theirs = llama_cpp.greedy(path, prompt, n, raw=True)
            diff = first_difference(reference, tok, prompt_ids, new, theirs)
            texts.append({"prompt": prompt, "equal": diff is None, "first_difference": diff,
                          "ours": tok.decode(new)[:300], "llama_cpp": theirs.decode("utf-8", "replace")[:300]})
        row["files"][quant] = {"bytes": path.stat().st_size, "ids_equal": llama_cpp.tokenize(path, probe) == list(ids),
                               "probe": probe, "greedy": texts,
                               "llama_cpp_tokens_per_second": llama_cpp.bench(path, 1000, threads)}
        print(name, quant, {k: v for k, v in row["files"][quant].items() if k != "greedy"},
              [t["equal"] for t in texts], flush=True)
    row["ours_tokens_per_second"] = round(our_speed(model, n), 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoints", nargs="+", default=["shakespeare-llama"])
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not llama_cpp.available():
        raise SystemExit("llama.cpp's programs are not found: set QUANTA_TISSU_LLAMA_CPP (benchmarks/README.md)")
    qt.runtime.set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [check(name, args.tokens, args.threads, Path(tmp)) for name in args.checkpoints]
    RESULTS.write_text(json.dumps({"llama_cpp": "llama-cpp-python 0.3.36's vendored llama.cpp",
                                   "build": rows[0]["files"]["f32"]["llama_cpp_tokens_per_second"]["build"],
                                   "threads": args.threads, "rows": rows}, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
