"""An OpenAI-compatible HTTP server for a course model (chapter 17), on FastAPI and uvicorn.

Does:
- ``POST /v1/completions`` and ``POST /v1/chat/completions`` in OpenAI's request and response formats (the official
  ``openai`` client talks to it), with server-sent events when ``stream`` is true: the streamed pieces add up to the
  text the same request returns unstreamed (same seed, same text).
- ``POST /generate``: ``{"prompt": ..., "max_new_tokens": ..., "temperature": ..., "seed": ...}`` -> ``{"text": ...}``;
  ``GET /health``; ``GET /`` a web page (prompt box, sliders, streamed output); FastAPI's ``/docs`` and
  ``/openapi.json``.
- Every request goes through one ``Scheduler`` (continuous batching) in a background thread.
- Bad requests get a 4xx and a message that names the problem, in OpenAI's error format, never a 500: malformed JSON,
  wrong types, an unknown model, characters the tokenizer does not know, a prompt or ``max_tokens`` that does not
  fit the context, knobs out of range. A client that disconnects from a stream frees its slot at the next step; a
  request that runs past ``timeout`` seconds ends with a 408 (or, streamed, an error event).
Chat template (a char-level Shakespeare model has no chat format of its own): each message becomes a speech,
``"{NAME}:\\n{content}\\n\\n"`` with NAME the message's ``name`` or its role in capitals, then ``"{speaker}:\\n"``
for the reply, which stops at the first blank line.
Does not: authenticate, rate-limit, return logprobs, or serve n > 1 choices.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

try:  # the serving extra: pip install "quanta_tissu[serve]"
    from fastapi import FastAPI, Request as HTTPRequest
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the server needs fastapi and uvicorn: pip install 'quanta_tissu[serve]' "
                      f"(or pip install fastapi uvicorn); {exc}") from None

from ..inference import Sampling
from .scheduler import Request, Scheduler

PAGE = Path(__file__).with_name("page.html")


class RequestError(ValueError):
    """A request the server refuses: ``status`` (4xx), a message, and the parameter at fault."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def error_body(message: str, param=None, code=None, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class TextStream:
    """Token ids in, text pieces out: a piece is emitted only once no stop string can still begin inside it, and
    the text ends before the first stop string. The same class cuts streamed and unstreamed text, so they agree."""

    def __init__(self, tokenizer, stop=()):
        self.tokenizer, self.stop = tokenizer, [s for s in stop if s]
        self.text, self.sent, self.stopped = "", 0, False
        self.tokens = 0  # tokens read up to the cut: the completion's length, whatever the scheduler did after

    def push(self, token: int) -> str:
        self.tokens += 1
        self.text += self.tokenizer.decode([token])
        hits = [self.text.find(s) for s in self.stop if s in self.text]
        if hits:
            self.text, self.stopped = self.text[:min(hits)], True
            return self._flush(len(self.text))
        hold = max((len(s) - 1 for s in self.stop), default=0)  # a stop string may be starting in the last chars
        return self._flush(len(self.text) - hold)

    def finish(self) -> str:
        return self._flush(len(self.text))

    def _flush(self, upto: int) -> str:
        upto = max(upto, self.sent)
        piece, self.sent = self.text[self.sent:upto], upto
        return piece


def chat_prompt(messages: list, speaker: str = "ASSISTANT") -> str:
    """The chat template: every message a speech, "NAME:\\ntext\\n\\n", then the reply's speaker."""
    speeches = [f"{(m.get('name') or m['role']).upper()}:\n{m['content']}\n\n" for m in messages]
    return "".join(speeches) + f"{speaker}:\n"


def encode_prompt(tokenizer, text: str, param: str = "prompt") -> list:
    """The prompt's ids, or a RequestError naming the characters this model's tokenizer does not know."""
    if not text:
        raise RequestError(f"{param} is empty: give at least one character", param=param)
    try:
        return [int(i) for i in tokenizer.encode(text)]
    except (KeyError, ValueError) as exc:
        raise RequestError(f"{param} cannot be encoded by this model's tokenizer: {exc}", param=param) from None


class Engine:
    """The scheduler in a background thread, and the asyncio side of each request: a queue of its events."""

    def __init__(self, model, tokenizer, name: str, slots: int = 8, timeout: float = 60.0, watermark=None):
        self.model, self.tokenizer, self.name, self.timeout = model, tokenizer, name, timeout
        self.watermark = watermark  # a qt.watermark.Watermark: every completion served carries it
        self.scheduler = Scheduler(model, slots)
        self.thread = self.stop = None

    def start(self):
        self.thread, self.stop = self.scheduler.start()

    def shutdown(self):
        if self.stop is not None:
            self.stop.set()
            self.thread.join(timeout=10)

    def submit(self, prompt_ids, max_tokens, sampling: Sampling, seed, stop_ids=frozenset()):
        """Queue a request; returns it and the asyncio.Queue that receives ("token", id) and ("finish", reason)."""
        loop, events = asyncio.get_running_loop(), asyncio.Queue()

        def put(kind):
            return lambda value: loop.call_soon_threadsafe(events.put_nowait, (kind, value))

        request = Request(prompt_ids, max_tokens, sampling, seed, frozenset(stop_ids), self.timeout,
                          on_token=put("token"), on_finish=put("finish"))
        try:
            self.scheduler.submit(request)
        except ValueError as exc:  # does not fit the context, or ids out of range
            raise RequestError(str(exc), param="max_tokens") from None
        return request, events


async def pieces(request: Request, events: asyncio.Queue, text: TextStream):
    """(piece, finish_reason) as the tokens arrive; the last one carries the reason. A stop string ends the
    request early (its slot is freed); if the consumer goes away, the request is cancelled."""
    wait = None if request.timeout is None else request.timeout + 5  # the scheduler's own limit, plus a margin
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(events.get(), wait)
            except asyncio.TimeoutError:  # the scheduler is not answering: end it here
                yield text.finish(), "timeout"
                return
            if kind == "finish":
                yield text.finish(), value
                return
            piece = text.push(value)
            if text.stopped:
                request.cancelled = True  # the scheduler frees the slot at its next step
                yield piece, "stop"
                return
            if piece:
                yield piece, None
    finally:
        if request.finish_reason is None:
            request.cancelled = True  # the client disconnected, or we stopped early


# -- the requests, as OpenAI defines them (unknown fields are ignored, as OpenAI's clients send many) -------------
class Knobs(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    temperature: float = 1.0  # 0 is greedy
    top_p: float = 1.0
    top_k: int = 0  # not in OpenAI's API: an extension, 0 keeps every token
    min_p: float = 0.0  # an extension
    repetition_penalty: float = 1.0  # an extension
    n: int = 1  # only 1 is served
    stream: bool = False
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**63)  # what a torch.Generator accepts


class CompletionRequest(Knobs):
    prompt: str | list[str]
    max_tokens: int = 16  # OpenAI's default


class Message(BaseModel):
    role: str
    content: str
    name: str | None = None


class ChatRequest(Knobs):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = None  # None: as many as the context leaves
    max_completion_tokens: int | None = None  # OpenAI's newer name for the same limit


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str
    max_new_tokens: int = 100
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = Field(default=None, ge=0, lt=2**63)


# -- the routes ------------------------------------------------------------------------------------------------
def sse(payload) -> str:
    """One server-sent event: a ``data:`` line (JSON, or OpenAI's closing ``[DONE]``) and a blank line."""
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def _sampling(body, watermark=None) -> Sampling:
    try:
        return Sampling(body.temperature, body.top_k, body.top_p, body.min_p, body.repetition_penalty, watermark)
    except ValueError as exc:  # names the knob and its allowed range
        raise RequestError(str(exc)) from None


def _stops(stop) -> list:
    stops = [] if stop is None else [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > 4:
        raise RequestError(f"stop takes at most 4 strings, got {len(stops)}", param="stop")
    return stops


def _usage(prompt_ids, text: TextStream) -> dict:
    n, m = len(prompt_ids), text.tokens
    return {"prompt_tokens": n, "completion_tokens": m, "total_tokens": n + m}


async def _collect(request, events, text) -> tuple:
    out, reason = [], None
    async for piece, reason in pieces(request, events, text):
        out.append(piece)
    if reason == "timeout":
        raise RequestError(f"the request ran past the server's limit of {request.timeout:g} s; ask for fewer "
                           "tokens or try again", status=408, code="timeout")
    if reason == "error":
        raise RequestError("the model failed on this batch; try again", status=503, code="model_error")
    return "".join(out), reason


async def _stream(request, events, text, chunk):
    """SSE events from ``chunk(piece, finish_reason)``, an error event on timeout, then ``[DONE]``."""
    async for piece, reason in pieces(request, events, text):
        if reason in ("timeout", "error"):
            message = (f"the request ran past the server's limit of {request.timeout:g} s" if reason == "timeout"
                       else "the model failed on this batch; try again")
            yield sse(error_body(message, code=reason))
            break
        yield sse(chunk(piece, reason))
    yield sse("[DONE]")


def _routes(app, engine: Engine) -> None:
    tok = engine.tokenizer

    def start(body, prompt_text, max_tokens, param="prompt", extra_stops=()):
        if body.model != engine.name:
            raise RequestError(f"the model {body.model!r} does not exist here; this server serves {engine.name!r}",
                               status=404, param="model", code="model_not_found")
        if body.n != 1:
            raise RequestError(f"n must be 1 (one choice per request), got {body.n}", param="n")
        ids = encode_prompt(tok, prompt_text, param)
        if max_tokens is None:
            max_tokens = max(1, engine.model.cfg.block_size - len(ids))
        request, events = engine.submit(ids, max_tokens, _sampling(body, engine.watermark), body.seed)
        meta = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": engine.name}
        return ids, request, events, TextStream(tok, _stops(body.stop) + list(extra_stops)), meta

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        prompt = body.prompt if isinstance(body.prompt, str) else (body.prompt[0] if len(body.prompt) == 1 else None)
        if prompt is None:
            raise RequestError("prompt must be one string (a list of exactly one is accepted)", param="prompt")
        ids, request, events, text, meta = start(body, prompt, body.max_tokens)

        def chunk(piece, reason):
            return {**meta, "object": "text_completion",
                    "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": reason}]}

        if body.stream:
            return StreamingResponse(_stream(request, events, text, chunk), media_type="text/event-stream")
        out, reason = await _collect(request, events, text)
        return {**chunk(out, reason), "usage": _usage(ids, text)}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest):
        prompt = chat_prompt([m.model_dump() for m in body.messages])
        limit = body.max_completion_tokens or body.max_tokens
        # the reply is one speech: it ends at a blank line
        ids, request, events, text, meta = start(body, prompt, limit, param="messages", extra_stops=["\n\n"])
        meta["id"] = "chat" + meta["id"]
        first = [True]

        def chunk(piece, reason):
            delta = ({"role": "assistant"} if first[0] else {}) | ({"content": piece} if piece or reason is None else {})
            first[0] = False
            return {**meta, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}

        if body.stream:
            return StreamingResponse(_stream(request, events, text, chunk), media_type="text/event-stream")
        out, reason = await _collect(request, events, text)
        return {**meta, "object": "chat.completion", "usage": _usage(ids, text),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": out}, "finish_reason": reason}]}

    @app.post("/generate")
    async def generate(body: GenerateRequest):
        """The simplest endpoint: a prompt in, its completion out."""
        knobs = Knobs(model=engine.name, temperature=body.temperature, top_k=body.top_k, top_p=body.top_p,
                      seed=body.seed)
        ids, request, events, text, _ = start(knobs, body.prompt, body.max_new_tokens)
        out, reason = await _collect(request, events, text)
        return {"text": out, "tokens": len(request.tokens), "finish_reason": reason}

    @app.get("/health")
    async def health():
        s = engine.scheduler
        return {"status": "ok", "model": engine.name, "slots": s.slots, "active": s.active, "waiting": len(s.waiting),
                "context": engine.model.cfg.block_size}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return PAGE.read_text(encoding="utf-8").replace("{{MODEL}}", engine.name)


def _handlers(app) -> None:
    @app.exception_handler(RequestError)
    async def refused(_, exc: RequestError):
        return JSONResponse(error_body(str(exc), exc.param, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_, exc: RequestValidationError):
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            return JSONResponse(error_body(f"malformed JSON: {errors[0].get('ctx', {}).get('error', 'cannot parse')}"),
                                status_code=400)
        where = [".".join(str(p) for p in e["loc"][1:]) or "body" for e in errors]
        message = "; ".join(f"{w}: {e['msg']}" for w, e in zip(where, errors[:3]))
        return JSONResponse(error_body(f"invalid request: {message}", param=where[0] if where else None),
                            status_code=400)


def create_app(model, tokenizer, name: str = "shakespeare-llama", slots: int = 8, timeout: float = 60.0,
               watermark=None):
    """The FastAPI app serving ``model``: its scheduler thread starts and stops with the app; with a
    ``watermark`` (``qt.watermark.Watermark``) every completion carries it."""
    engine = Engine(model, tokenizer, name, slots, timeout, watermark)

    @asynccontextmanager
    async def lifespan(_):
        engine.start()
        yield
        engine.shutdown()

    app = FastAPI(title="QuantaTissu", description=f"An OpenAI-compatible server for {name}", lifespan=lifespan)
    app.state.engine = engine
    _handlers(app)
    _routes(app, engine)
    return app


class BackgroundServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread, on a free port (tests and chapter 17):
    ``with BackgroundServer(app) as url: ...``; leaving the block shuts it down cleanly."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port or free_port(host), log_level="warning",
                                                    lifespan="on"))
        self.url = f"http://{host}:{self.server.config.port}"
        self.thread = None

    def __enter__(self) -> str:
        import threading

        self.thread = threading.Thread(target=self.server.run, name="qt-uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def load(checkpoint: str):
    """(model, tokenizer, name) from a course checkpoint name (``qt.zoo``) or a checkpoint folder."""
    from .. import zoo
    from ..tokenizer import CharTokenizer
    from ..training import checkpoint as ckpt

    if checkpoint in zoo.RECIPES:
        model, tok = zoo.pretrained(checkpoint, progress=False)
        return model, tok, checkpoint
    model, config = ckpt.load_model(checkpoint)
    if config.get("tokenizer", {}).get("tokenizer") != "char":
        raise ValueError(f"{checkpoint}: only character-level course checkpoints are served, "
                         f"got tokenizer {config.get('tokenizer', {}).get('tokenizer')!r}")
    return model, CharTokenizer(config["tokenizer"]["chars"]), config.get("name") or Path(checkpoint).name


def serve(checkpoint: str = "shakespeare-llama", host: str = "127.0.0.1", port: int = 8000, slots: int = 8,
          timeout: float = 60.0) -> None:
    """``python -m quanta_tissu serve``: load the model and serve it until interrupted."""
    import uvicorn

    model, tok, name = load(checkpoint)
    print(f"serving {name} on http://{host}:{port} (OpenAI API under /v1, web page at /, docs at /docs)")
    uvicorn.run(create_app(model, tok, name, slots, timeout), host=host, port=port, log_level="info")
