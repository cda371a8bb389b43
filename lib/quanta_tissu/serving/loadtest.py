"""A bounded loopback load test (chapter 17): N clients at once, each sending its requests one after another.

Does: ``load_test(url, model, prompts, clients, requests_per_client, max_tokens)`` runs the clients concurrently
with httpx's async client and returns what was measured: tokens per second over the whole run, each request's
latency, and every response's text (so a caller can check that none was lost, merged or sent to the wrong client).
Does not: start the server (``app.BackgroundServer`` does), or retry: a failed request raises.
"""
from __future__ import annotations

import asyncio
import time


async def _client(http, url: str, model: str, prompts: list, max_tokens: int, results: list) -> None:
    for prompt in prompts:  # one request after another, as a user waiting for each answer would
        start = time.perf_counter()
        r = await http.post(f"{url}/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": max_tokens,
                                                           "temperature": 0})
        r.raise_for_status()
        body = r.json()
        results.append({"prompt": prompt, "text": body["choices"][0]["text"], "seconds": time.perf_counter() - start,
                        "tokens": body["usage"]["completion_tokens"]})


def _run_to_completion(make_coroutine) -> None:
    """asyncio.run, also from inside a running event loop (a Jupyter kernel has one): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop running here: the plain way
        asyncio.run(make_coroutine())
        return
    import threading

    errors = []
    worker = threading.Thread(target=lambda: errors.extend(_capture(lambda: asyncio.run(make_coroutine()))))
    worker.start()
    worker.join()
    if errors:
        raise errors[0]


def _capture(fn) -> list:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread
        return [exc]
    return []


def load_test(url: str, model: str, prompts: list, clients: int, requests_per_client: int = 2,
              max_tokens: int = 32) -> dict:
    """``clients`` concurrent clients, each sending ``requests_per_client`` greedy requests (prompts taken in turn)."""
    import httpx

    if clients < 1 or requests_per_client < 1:
        raise ValueError(f"clients and requests_per_client must be >= 1, got {clients} and {requests_per_client}")
    work = [[prompts[(c * requests_per_client + i) % len(prompts)] for i in range(requests_per_client)]
            for c in range(clients)]
    results = []

    async def run():
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            await asyncio.gather(*(_client(http, url, model, w, max_tokens, results) for w in work))

    start = time.perf_counter()
    _run_to_completion(run)
    seconds = time.perf_counter() - start
    latencies = sorted(r["seconds"] for r in results)
    return {"clients": clients, "requests": len(results), "seconds": seconds,
            "tokens_per_s": sum(r["tokens"] for r in results) / seconds,
            "median_latency_s": latencies[len(latencies) // 2], "results": results}
