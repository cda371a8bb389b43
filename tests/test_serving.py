"""Chapter 17: continuous batching (each request's tokens are its own, whoever shares the batch) and the
OpenAI-compatible server (the official client, streaming, bad requests, disconnects, concurrency)."""
import asyncio
import json
import threading
import time

import pytest

torch = pytest.importorskip("torch")
from quanta_tissu.gpt import GPT, GPTConfig  # noqa: E402
from quanta_tissu.inference import Sampling, complete  # noqa: E402
from quanta_tissu.serving.scheduler import Request, Scheduler  # noqa: E402
from quanta_tissu.tokenizer import CharTokenizer  # noqa: E402

TOK = CharTokenizer.from_text("\n !',.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)  # random weights: the scheduler's bookkeeping, not the text, is under test here
    return GPT(GPTConfig.llama(vocab_size=TOK.vocab_size, block_size=48, n_layer=2, n_head=4, n_embd=32, d_ff=64,
                               n_kv_heads=2)).eval()


def ids(text):
    return [int(i) for i in TOK.encode(text)]


PROMPTS = ["ROMEO:\n", "O Romeo, Romeo", "Before we proceed any", "K", "To be, or not", "\n", "What, ho!", "Ay"]


def test_batched_greedy_equals_each_prompt_alone_with_joins_leaves_and_compaction(model):
    budgets = [5, 17, 9, 25, 12, 30, 3, 20] * 3  # staggered: rows leave and new ones join at every step
    prompts = PROMPTS * 3
    alone = [complete(model, [ids(p)], n, temperature=0)[0] for p, n in zip(prompts, budgets)]
    scheduler = Scheduler(model, slots=5)
    compactions = []
    original = scheduler.compact
    scheduler.compact = lambda: (compactions.append(scheduler.cache.length), original())[1]
    requests = scheduler.run_all([Request(ids(p), n, Sampling(temperature=0)) for p, n in zip(prompts, budgets)])
    assert [r.tokens for r in requests] == alone
    assert compactions and all(r.finish_reason == "length" for r in requests)
    assert scheduler.active == 0 and scheduler.steps < sum(budgets)  # batched: fewer steps than tokens


def test_seeded_sampling_is_the_requests_own(model):
    def run(prompts, seeds, slots):
        scheduler = Scheduler(model, slots=slots)
        requests = [Request(ids(p), 12, Sampling(temperature=1.0, top_k=20), seed=s) for p, s in zip(prompts, seeds)]
        return [r.tokens for r in scheduler.run_all(requests)]

    together = run(PROMPTS, range(8), slots=8)
    assert together == [run([p], [s], slots=1)[0] for s, p in enumerate(PROMPTS)]
    assert together != run(PROMPTS, range(1, 9), slots=8)


def test_stop_tokens_cancellation_timeout_and_errors(model):
    scheduler = Scheduler(model, slots=2)
    greedy = complete(model, [ids("ROMEO:\n")], 10, temperature=0)[0]
    stop = Request(ids("ROMEO:\n"), 10, Sampling(temperature=0), stop_ids=frozenset({greedy[3]}))
    scheduler.run_all([stop])
    assert stop.finish_reason == "stop" and stop.tokens == greedy[:greedy.index(greedy[3])]
    finished = []
    cancelled = Request(ids("abc"), 20, Sampling(temperature=0), on_finish=finished.append)
    scheduler.submit(cancelled)
    scheduler.step()
    cancelled.cancelled = True
    scheduler.step()
    assert finished == ["cancelled"] and scheduler.active == 0  # the slot is free at the next step
    late = Request(ids("abc"), 20, Sampling(temperature=0), timeout=0.0)
    time.sleep(0.01)
    scheduler.run_all([late])
    assert late.finish_reason == "timeout" and not late.tokens
    for bad, match in [(Request([], 5), "fit the context"), (Request(ids("abc"), 46), "fit the context"),
                       (Request([99], 5), "prompt ids must be in")]:
        with pytest.raises(ValueError, match=match):
            scheduler.submit(bad)
    with pytest.raises(ValueError, match="slots must be"):
        Scheduler(model, slots=0)


# -- the HTTP server --------------------------------------------------------------------------------------------
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def server(model):
    from quanta_tissu.serving.app import BackgroundServer, create_app

    app = create_app(model, TOK, name="tiny", slots=4, timeout=20)
    with BackgroundServer(app) as url:
        yield url, app.state.engine


def test_openai_client_completions_chat_and_streams(server, model):
    openai = pytest.importorskip("openai")
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    got = client.completions.create(model="tiny", prompt="ROMEO:\n", max_tokens=12, temperature=0)
    assert got.choices[0].text == TOK.decode(complete(model, [ids("ROMEO:\n")], 12, temperature=0)[0])
    assert got.usage.prompt_tokens == 7 and got.usage.completion_tokens == 12
    for stop in (None, ["e"], ["ou", "\n"]):
        whole = client.completions.create(model="tiny", prompt="ROMEO:\n", max_tokens=20, seed=3, stop=stop).choices[0]
        pieces = list(client.completions.create(model="tiny", prompt="ROMEO:\n", max_tokens=20, seed=3, stop=stop,
                                                stream=True))
        assert "".join(p.choices[0].text for p in pieces) == whole.text
        assert pieces[-1].choices[0].finish_reason == whole.finish_reason
        assert not any(s in whole.text for s in stop or [])
    chat = dict(model="tiny", messages=[{"role": "user", "content": "What news?"}], seed=1, max_tokens=15)
    reply = client.chat.completions.create(**chat).choices[0]
    streamed = list(client.chat.completions.create(**chat, stream=True))
    assert reply.message.role == "assistant" and "\n\n" not in reply.message.content
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == reply.message.content


def test_bad_requests_get_4xx_with_a_message(server):
    url, _ = server
    cases = [("{not json", 400, "malformed JSON"),
             ('{"model": "tiny", "prompt": "x", "max_tokens": "many"}', 400, "max_tokens"),
             ('{"model": "tiny"}', 400, "prompt"),
             ('{"model": "gpt-4", "prompt": "x"}', 404, "does not exist"),
             ('{"model": "tiny", "prompt": "caf\\u00e9"}', 400, "not in the vocabulary"),
             ('{"model": "tiny", "prompt": "x", "max_tokens": 500}', 400, "fit the context"),
             ('{"model": "tiny", "prompt": "' + "a" * 60 + '"}', 400, "fit the context"),
             ('{"model": "tiny", "prompt": "x", "temperature": -1}', 400, "temperature"),
             ('{"model": "tiny", "prompt": "x", "top_p": 0}', 400, "top_p"),
             ('{"model": "tiny", "prompt": "x", "n": 2}', 400, "n must be 1"),
             ('{"model": "tiny", "prompt": ""}', 400, "empty")]
    for body, status, words in cases:
        r = httpx.post(url + "/v1/completions", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status and words in r.json()["error"]["message"], (body, r.text)
    r = httpx.post(url + "/v1/chat/completions", json={"model": "tiny", "messages": []})
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    r = httpx.post(url + "/generate", json={"prompt": "abc", "max_new_tokens": 5, "unknown": 1})
    assert r.status_code == 400
    assert httpx.post(url + "/generate", json={"prompt": "abc", "max_new_tokens": 5}).json()["tokens"] == 5
    assert httpx.get(url + "/health").json()["status"] == "ok"
    assert "/v1/completions" in httpx.get(url + "/openapi.json").json()["paths"]


def test_a_client_that_disconnects_frees_its_slot(server):
    url, engine = server
    with httpx.stream("POST", url + "/v1/completions", json={"model": "tiny", "prompt": "a", "max_tokens": 30,
                                                             "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break  # one piece, then hang up
    deadline = time.monotonic() + 10
    while engine.scheduler.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.scheduler.active == 0 and not engine.scheduler.waiting


def test_concurrent_clients_get_their_own_answers(server, model):
    """32 clients at once, 4 slots: no response lost, merged or sent to the wrong client."""
    url, engine = server
    prompts = [p[: 1 + i % len(p)] for i, p in enumerate(PROMPTS * 4)]  # 32 different prompts
    expected = [TOK.decode(t) for t in (complete(model, [ids(p)], 10, temperature=0)[0] for p in prompts)]

    async def one(client, prompt):
        r = await client.post(url + "/v1/completions", json={"model": "tiny", "prompt": prompt, "max_tokens": 10,
                                                             "temperature": 0})
        return r.json()["choices"][0]["text"]

    async def main():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(one(client, p) for p in prompts))

    assert asyncio.run(main()) == expected
    assert engine.scheduler.active == 0


def test_a_watermarking_server_marks_what_it_serves(model):
    """create_app(watermark=...) puts the mark on every completion: its tokens equal qt.generate's with it."""
    from quanta_tissu.serving.app import BackgroundServer, create_app
    from quanta_tissu.watermark import Watermark

    wm = Watermark(vocab_size=TOK.vocab_size)
    with BackgroundServer(create_app(model, TOK, name="tiny", slots=2, watermark=wm)) as url:
        got = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "ROMEO:\n", "max_tokens": 30,
                                                        "temperature": 0}).json()["choices"][0]["text"]
    assert got == TOK.decode(complete(model, [ids("ROMEO:\n")], 30, temperature=0, watermark=wm)[0])
    assert got != TOK.decode(complete(model, [ids("ROMEO:\n")], 30, temperature=0)[0])


def test_timeouts_and_huge_seeds_are_4xx(model):
    from quanta_tissu.serving.app import BackgroundServer, create_app

    with BackgroundServer(create_app(model, TOK, name="tiny", slots=1, timeout=0.0)) as url:
        r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "abc", "max_tokens": 5})
        assert r.status_code == 408 and "limit" in r.json()["error"]["message"]
        r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": "abc", "seed": 2**64})
        assert r.status_code == 400 and "seed" in r.json()["error"]["message"]
