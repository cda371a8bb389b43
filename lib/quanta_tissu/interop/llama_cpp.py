"""llama.cpp's own programs on the course's GGUF files (chapter 18): tokenize, decode greedily, measure speed.

Does:
- ``find(name)``: a llama.cpp program, from ``$QUANTA_TISSU_LLAMA_CPP`` (a folder holding the binaries, such as
  ``build/bin`` of a llama.cpp tree) or else the PATH; ``available()`` says whether all three are there;
- ``tokenize(path, text)``: the ids llama.cpp's tokenizer gives (``llama-tokenize``, special tokens parsed, its default);
- ``greedy(path, prompt, n)``: llama.cpp's greedy continuation as text (``llama-simple``: it echoes the prompt's
  tokens, then prints each new token's bytes, and stops early at an end-of-generation token);
- ``bench(path, n, threads)``: decoding tokens/s (``llama-bench``'s JSON).
Does not: build llama.cpp (it is not on PyPI as a binary; ``benchmarks/README.md`` gives the commands), or
pretend it ran: without the programs every function raises ``FileNotFoundError`` and the tests skip.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

PROGRAMS = ("llama-tokenize", "llama-simple", "llama-bench")


def find(name: str) -> Path | None:
    """The program ``name``: in ``$QUANTA_TISSU_LLAMA_CPP`` if set, else on the PATH; None if absent."""
    folder = os.environ.get("QUANTA_TISSU_LLAMA_CPP")
    if folder:
        path = Path(folder) / name
        return path if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which(name)
    return Path(found) if found else None


def available() -> bool:
    return all(find(name) for name in PROGRAMS)


def _run(name: str, args: list[str], stdin: bytes | None = None, timeout: float = 600) -> bytes:
    program = find(name)
    if program is None:
        raise FileNotFoundError(f"{name} not found: build llama.cpp (benchmarks/README.md) and set "
                                f"QUANTA_TISSU_LLAMA_CPP to the folder holding {', '.join(PROGRAMS)}")
    done = subprocess.run([str(program), *args], input=stdin, capture_output=True, timeout=timeout)
    if done.returncode:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{name} failed (exit {done.returncode}): {' | '.join(tail)}")
    return done.stdout


def tokenize(path, text: str) -> list[int]:
    """llama.cpp's ids for ``text``; special-token strings become their ids (as ``allowed_special="all"``)."""
    out = _run("llama-tokenize", ["-m", str(path), "--stdin", "--ids", "--no-escape",
                                    "--log-disable"],
               stdin=text.encode("utf-8"))
    return json.loads(out.decode().strip().splitlines()[-1])


def greedy(path, prompt: str, n: int, raw: bool = False) -> str | bytes:
    """llama.cpp's greedy continuation of ``prompt``: at most ``n`` new tokens, as text (bad UTF-8 as U+FFFD), or
    as the bytes it printed with ``raw=True``."""
    out = _run("llama-simple", ["-m", str(path), "-n", str(n), prompt])
    echo = prompt.encode("utf-8")  # byte-level tokens spell the prompt's bytes exactly
    if not out.startswith(echo):
        raise RuntimeError(f"llama-simple did not echo the prompt: {out[:80]!r}")
    new = out[len(echo):].removesuffix(b"\n")
    return new if raw else new.decode("utf-8", errors="replace")


def bench(path, n: int = 1000, threads: int = 2) -> dict:
    """llama.cpp's decoding speed for ``n`` tokens at batch 1: {"tokens_per_second", "build", "threads"}."""
    out = _run("llama-bench", ["-m", str(path), "-p", "0", "-n", str(n), "-t", str(threads), "-o", "json"])
    (row,) = json.loads(out)
    return {"tokens_per_second": round(row["avg_ts"], 1), "build": f"{row['build_number']} ({row['build_commit']})",
            "threads": row["n_threads"]}
