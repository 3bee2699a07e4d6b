"""A local OpenAI-compatible HTTP server with scripted replies and fault injection.

In tests::

    with FakeOpenAI(reply=lambda req: '{"questions": ["天命人是谁？"]}') as server:
        server.fail_next(Fault("429", retry_after=0.2))
        ...  # point the client at server.base_url

By hand (for benchmarks): ``python -m tests.fake_openai --port 8000 --latency 0.2``

It serves ``POST /v1/chat/completions`` (non-streaming, honours ``response_format`` JSON mode),
``POST /v1/embeddings`` (deterministic vectors: similar texts get similar vectors) and
``GET /v1/models``; it binds 127.0.0.1 only, records every request and the most requests it ever
had in flight at once.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import inspect
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULT_KINDS = ("429", "500", "502", "503", "drop", "slow", "malformed", "non_json", "think", "reasoning")


@dataclass
class Fault:
    """One injected failure. kind: 429 | 500 | 502 | 503 | drop | slow | malformed | non_json | think | reasoning.

    think: the reply comes after a `<think>…</think>` preamble in `content`; reasoning: the reply comes
    with a separate `reasoning_content` (as DeepSeek-R1 sends it)."""

    kind: str
    retry_after: float | None = None  # for 429
    delay: float = 30.0  # for slow: longer than any client timeout in tests

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {FAULT_KINDS}")


@dataclass
class ChatRequest:
    body: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.time)  # when it arrived (wall clock: comparable across processes)
    tokens: int = 0  # prompt + completion tokens its reply reported (0 until answered, or for an error)

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.body.get("messages", [])

    @property
    def json_mode(self) -> bool:
        return (self.body.get("response_format") or {}).get("type") in ("json_object", "json_schema")

    @property
    def system(self) -> str:
        return next((m["content"] for m in self.messages if m["role"] == "system"), "")

    @property
    def last_user(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")

    @property
    def text(self) -> str:
        return "\n".join(m.get("content", "") for m in self.messages)


@dataclass
class Reasoned:
    """A reply that carries a reasoning model's thinking in `reasoning_content` (DeepSeek-R1's field)."""

    answer: str | dict | list
    reasoning: str


Reply = str | dict | list | Fault | Reasoned
#: A reply made from the request; a coroutine function may await (to hold one client back while others go on).
Script = Callable[[ChatRequest], Reply | Awaitable[Reply]]


@dataclass
class FakeOpenAI:
    """The server. `reply` answers every chat request not matched by a rule (`add_rule`)."""

    reply: Script | None = None
    latency: float = 0.0
    api_key: str | None = None  # when set, any other bearer token gets 401
    fault_rates: dict[str, float] = field(default_factory=dict)  # e.g. {"429": 0.1, "malformed": 0.05}
    seed: int = 0
    port: int = 0
    embedding_dim: int = 64
    #: response_format types answered with an error naming response_format (e.g. {"json_object"}), with
    #: `reject_status`: 400 as OpenAI, 422 as a FastAPI server, 500 as llama-cpp-python's server (0.3.x).
    reject_formats: set[str] = field(default_factory=set)
    reject_status: int = 400
    #: Report prompt tokens shared with an earlier request (the last 256, like a provider's prefix cache
    #: that holds many prefixes) as cached, in DeepSeek's shape
    #: ("deepseek": prompt_cache_hit_tokens / prompt_cache_miss_tokens) or OpenAI's ("openai":
    #: prompt_tokens_details.cached_tokens); None: no cache fields.
    cache_usage: str | None = None

    def __post_init__(self):
        self.requests: list[ChatRequest] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults_served: dict[str, int] = {}
        self._rules: list[tuple[re.Pattern[str], Reply | Script]] = []
        self._next_faults: deque[Fault] = deque()
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._prompts: deque[str] = deque(maxlen=256)

    # -- scripting ---------------------------------------------------------------------------
    def add_rule(self, pattern: str, reply: Reply | Script) -> FakeOpenAI:
        """Answer requests whose messages match `pattern` (regex) with `reply` (value or callable)."""
        self._rules.append((re.compile(pattern, re.DOTALL), reply))
        return self

    def fail_next(self, *faults: Fault) -> FakeOpenAI:
        """The next requests get these faults, in order, before any scripted reply."""
        with self._lock:
            self._next_faults.extend(faults)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- serving -----------------------------------------------------------------------------
    def _pick_fault(self) -> Fault | None:
        with self._lock:
            if self._next_faults:
                return self._next_faults.popleft()
            draw = self._rng.random()
        for kind, rate in self.fault_rates.items():
            if draw < rate:
                return Fault(kind, retry_after=0.05 if kind == "429" else None)
            draw -= rate
        return None

    def _answer(self, req: ChatRequest) -> Reply:
        for pattern, reply in self._rules:
            if pattern.search(req.text):
                return reply(req) if callable(reply) else reply
        if self.reply is not None:
            return self.reply(req)
        return '{"ok": true}' if req.json_mode else "好的。"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        req = ChatRequest(body=body, headers=dict(request.headers))
        with self._lock:
            self.requests.append(req)
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}},
                                     status=401)
        kind = (body.get("response_format") or {}).get("type")
        if kind in self.reject_formats:  # at 400 as OpenAI words it; else a validation error, as llama-cpp-python's
            message = (f"Invalid value for response_format.type: {kind!r} is not supported by this model"
                       if self.reject_status == 400 else
                       "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                       f"'msg': \"Input should be 'text' or 'json_object'\", 'input': {kind!r}}}")
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}},
                                     status=self.reject_status)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            fault = self._pick_fault()
            answer = self._answer(req)
            if inspect.isawaitable(answer):
                answer = await answer
            reasoning = None
            if isinstance(answer, Reasoned):
                answer, reasoning = answer.answer, answer.reasoning
            if isinstance(answer, Fault):
                fault = answer
            if fault is not None:
                self.faults_served[fault.kind] = self.faults_served.get(fault.kind, 0) + 1
                served = await self._serve_fault(fault, request, body, answer)
                if served is not None:
                    return served
                if fault.kind == "non_json":
                    answer = "抱歉，我这次没有按 JSON 格式回答。"
                elif fault.kind == "think":
                    answer = f"<think>先分析一下问题。</think>{_as_text(answer)}"
                elif fault.kind == "reasoning":
                    reasoning = "先分析一下问题。"
            completion = self._with_cache(_completion(body, _as_text(answer), reasoning), body)
            req.tokens = completion["usage"]["prompt_tokens"] + completion["usage"]["completion_tokens"]
            return web.json_response(completion)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _with_cache(self, completion: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """Add the cache fields: the longest prompt prefix shared with an earlier request, as tokens."""
        if self.cache_usage is None:
            return completion
        prompt = "".join(m.get("content", "") for m in body.get("messages", []))
        with self._lock:
            shared = max((common_prefix(p, prompt) for p in self._prompts), default=0)
            self._prompts.append(prompt)
        usage = completion["usage"]
        hit = min(shared // 2, usage["prompt_tokens"])
        if self.cache_usage == "deepseek":
            usage.update(prompt_cache_hit_tokens=hit, prompt_cache_miss_tokens=usage["prompt_tokens"] - hit)
        else:
            usage["prompt_tokens_details"] = {"cached_tokens": hit}
        return completion

    async def _serve_fault(self, fault: Fault, request: web.Request, body: dict[str, Any], answer: Reply) -> web.StreamResponse | None:
        if fault.kind == "429":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return web.json_response({"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                                     status=429, headers=headers)
        if fault.kind in ("500", "502", "503"):
            return web.json_response({"error": {"message": f"upstream error {fault.kind}"}}, status=int(fault.kind))
        if fault.kind == "drop":
            request.transport.close()
            return web.Response(status=500)
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return web.json_response(_completion(body, _as_text(answer)))
        if fault.kind == "malformed":
            return web.Response(text='{"id": "x", "choices": [{"message": {"content": "半截', content_type="application/json")
        return None

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.embedding_requests.append(body)
        inputs = body.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else inputs
        data = [{"object": "embedding", "index": i, "embedding": fake_embedding(t, self.embedding_dim)}
                for i, t in enumerate(inputs)]
        return web.json_response({"object": "list", "data": data, "model": body.get("model", "fake-embed"),
                                  "usage": {"prompt_tokens": sum(len(t) for t in inputs), "total_tokens": 0}})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _serve(self, stop: asyncio.Event) -> None:
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        await stop.wait()
        await runner.cleanup()
        # a reply still waiting out its latency (its client killed): cancelled, not left pending at close
        rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def start(self) -> FakeOpenAI:
        def run():
            self._loop = asyncio.new_event_loop()
            self._stop = asyncio.Event()
            self._loop.run_until_complete(self._serve(self._stop))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _as_text(answer: Reply) -> str:
    if isinstance(answer, Fault):
        return ""
    return answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)


def _completion(body: dict[str, Any], text: str, reasoning: str | None = None) -> dict[str, Any]:
    """A chat.completion; like a real server it cuts the text at `max_tokens` (finish_reason "length").

    Tokens are counted as one per two characters, the same count `usage` reports."""
    prompt = "".join(m.get("content", "") for m in body.get("messages", []))
    finish = "stop"
    limit = body.get("max_tokens")
    if limit and len(text) // 2 + 1 > limit:
        text, finish = text[: 2 * (limit - 1)], "length"
    message = {"role": "assistant", "content": text}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": len(prompt) // 2 + 1, "completion_tokens": len(text) // 2 + 1,
                  "total_tokens": len(prompt) // 2 + len(text) // 2 + 2},
    }


def common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of two strings.

    >>> common_prefix("系统提示，问题一", "系统提示，问题二")
    7
    """
    n = min(len(a), len(b))
    low, high = 0, n
    while low < high:  # binary search on slices: fast for long prompts
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def fake_embedding(text: str, dim: int = 64) -> list[float]:
    """Character-bigram hashing, L2-normalised: texts sharing bigrams point the same way."""
    vec = [0.0] * dim
    for a, b in zip(text, text[1:] or " "):
        h = int.from_bytes(hashlib.blake2b(f"{a}{b}".encode(), digest_size=4).digest(), "little")
        vec[h % dim] += 1.0 if h & 1 << 31 else -1.0
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_openai", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every chat reply")
    parser.add_argument("--script", help="module:function returning a reply for a ChatRequest")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND=RATE",
                        help=f"random faults, e.g. --fault 429=0.1; kinds: {', '.join(FAULT_KINDS)}")
    parser.add_argument("--seconds", type=float, default=3600, help="stop by itself after this long")
    parser.add_argument("--cache-usage", choices=["deepseek", "openai"],
                        help="report prompt tokens shared with an earlier request as cached, in this shape")
    parser.add_argument("--timestamps", help="on exit, write the chat requests' arrival times (JSON list) here")
    args = parser.parse_args(argv)
    script = None
    if args.script:
        module, func = args.script.split(":")
        script = getattr(importlib.import_module(module), func)
    rates = {k: float(v) for k, v in (f.split("=") for f in args.fault)}
    server = FakeOpenAI(reply=script, latency=args.latency, port=args.port, fault_rates=rates,
                        cache_usage=args.cache_usage).start()
    print(f"fake OpenAI server on {server.base_url} (latency {args.latency}s); stops after {args.seconds:g}s", flush=True)
    try:
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if args.timestamps:
            with open(args.timestamps, "w", encoding="utf-8") as f:
                json.dump([r.at for r in server.requests], f)
        print(f"served {len(server.requests)} chat requests; max in flight {server.max_in_flight}", flush=True)


if __name__ == "__main__":
    main()
