"""Serving throughput (chapter 17): continuous batching against serving one request at a time, in one run.

For 1, 2, 4, 8, 16 and 32 concurrent clients (each sending its requests one after another: greedy, 16-character
prompts from the corpus, 32 new tokens), the server on 127.0.0.1 with 32 slots (continuous batching) and with 1
slot (one request at a time), on the course checkpoint. Prints tokens/s and median latency, and the ratio of the
two at each load; also checks every response against the same prompt run alone (nothing lost or cross-wired).
Writes benchmarks/results/serve.json.
Usage: python benchmarks/bench_serve.py [--threads 2] [--smoke]
"""
import argparse
import json
import platform
from pathlib import Path

import quanta_tissu as qt
from quanta_tissu.serving.app import BackgroundServer, create_app
from quanta_tissu.serving.loadtest import load_test

RESULTS = Path(__file__).parent / "results" / "serve.json"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="two loads, a few tokens: checks that it runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    qt.setup(seed=1337, threads=args.threads, verbose=False)
    model, tok = qt.pretrained("shakespeare-llama", progress=False)
    text = qt.load_text("tinyshakespeare")
    prompts = [text[i * 997:i * 997 + 16] for i in range(64)]
    loads, tokens = ([1, 4], 4) if args.smoke else ([1, 2, 4, 8, 16, 32], 32)
    expected = dict(zip(prompts, qt.generate(model, prompts, tokens, tok, temperature=0)))
    rows = {}
    for mode, slots in (("continuous batching, 32 slots", 32), ("one at a time", 1)):
        with BackgroundServer(create_app(model, tok, slots=slots)) as url:
            for clients in loads:
                run = load_test(url, "shakespeare-llama", prompts, clients, requests_per_client=2, max_tokens=tokens)
                wrong = [r for r in run["results"] if r["text"] != expected[r["prompt"]]]
                assert not wrong, f"{len(wrong)} responses differ from their prompt run alone: {wrong[:2]}"
                rows.setdefault(clients, {})[mode] = {"tokens_per_s": run["tokens_per_s"],
                                                      "median_latency_s": run["median_latency_s"]}
                print(f"{mode:>32}  {clients:>2} clients: {run['tokens_per_s']:7.0f} tokens/s, "
                      f"median latency {run['median_latency_s']:.2f} s")
    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads, "new_tokens": tokens,
              "loads": [{"clients": c, **{m: v for m, v in r.items()},
                         "speedup": r["continuous batching, 32 slots"]["tokens_per_s"] / r["one at a time"]["tokens_per_s"]}
                        for c, r in rows.items()]}
    for row in result["loads"]:
        print(f"{row['clients']:>2} clients: continuous batching {row['speedup']:.2f}x the throughput of one at a time")
    if not args.smoke:
        args.out.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
