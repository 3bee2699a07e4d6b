"""Chat clients for any OpenAI-compatible endpoint, with retries, pacing and token accounting.

Two clients share one interface, `await client.chat(messages, json_mode=...) -> ChatReply`:

- `HttpChatClient`: a lean aiohttp client that posts the JSON body itself. It is the default for
  runs: the openai SDK's request transform costs 6–15 ms of CPU per call (FINDINGS), this ~1 ms.
- `LangChainChatClient`: wraps any LangChain chat model — `make_chat_model(cfg)` builds a
  `ChatOpenAI`, tests pass a fake model — for users who want LangChain's callbacks and LangSmith.

Both retry 429 / 5xx / timeouts / dropped connections with exponential back-off (a 429's
`Retry-After` is waited out), fail fast on 401/403 and 404, and record usage per role. Once the
run's spending cap is reached (`Usage.cap`), they start no call: `SpendingCapReached`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from agents.limits import AdaptiveGate, RateLimiter
from agents.llm_wire import ChatReply, cached_tokens_of, reasoning_of, response_format
from agents.llm_errors import (
    FormatRejected,
    LLMAuthError,
    LLMError,
    LLMNotFound,
    Transient,
    final_error,
    parse_retry_after,
)
from agents.settings import ROLES, LLMConfig, Settings
from agents.usage import Usage

log = logging.getLogger(__name__)

Message = dict[str, str]


class ChatClient(Protocol):
    """`json_mode`: False (plain text), True (JSON in the role's `json_mode`), or the pydantic model the
    reply must match (sent as a strict `json_schema` where the role's mode is json_schema)."""

    cfg: LLMConfig

    async def chat(self, messages: list[Message], *, json_mode: Any = False,
                   temperature: float | None = None, max_tokens: int | None = None) -> ChatReply: ...


def estimate_tokens(messages: list[Message]) -> int:
    """Rough prompt size for pacing and dry runs: ~1 token per Chinese character or 4 ASCII chars.

    Counted without a Python loop over characters (it runs on every call): in UTF-8 a CJK
    character is 3 bytes and ASCII 1, so (bytes − chars) / 2 counts the non-ASCII characters.

    >>> estimate_tokens([{"role": "user", "content": "天命人是谁 who"}])
    10
    """
    text = "".join(m.get("content", "") for m in messages)
    non_ascii = (len(text.encode("utf-8")) - len(text)) // 2
    return non_ascii + (len(text) - non_ascii) // 4 + 4 * len(messages)


@dataclass
class Pacing:
    """The limits of one endpoint and key: an RPM/TPM limiter and a requests-in-flight gate.

    Every role that calls the same endpoint with the same key shares one, whatever its model or
    temperature, so two roles never double the rate one account sees."""

    limiter: RateLimiter
    gate: AdaptiveGate

    @classmethod
    def for_config(cls, cfg: LLMConfig) -> Pacing:
        return cls(RateLimiter(cfg.rpm, cfg.tpm), AdaptiveGate(cfg.max_requests))


class _RetryingClient:
    """Shared retry / pacing / accounting around one `_attempt`; subclasses do the transport."""

    def __init__(self, cfg: LLMConfig, usage: Usage | None = None, pacing: Pacing | None = None):
        self.cfg = cfg
        self.usage = usage if usage is not None else Usage()
        pacing = pacing or Pacing.for_config(cfg)
        self.limiter, self.gate = pacing.limiter, pacing.gate
        self.json_mode = cfg.json_mode  # becomes "prompt" once the server refuses response_format

    async def chat(self, messages: list[Message], *, json_mode: Any = False,
                   temperature: float | None = None, max_tokens: int | None = None) -> ChatReply:
        """One completion; `max_tokens` defaults to the role's (`cfg.max_tokens`).

        A server that refuses `response_format` (HTTP 400 naming it) gets the same request once more
        without it, and this client stays in prompt mode (the schema is in the system message anyway)."""
        try:
            return await self._chat(messages, json_mode, temperature, max_tokens)
        except FormatRejected as exc:
            if not json_mode or self.json_mode == "prompt":
                raise
            log.warning("%s: %s refused response_format %s (%s); falling back to JSON by prompt instructions",
                        self.cfg.role, self.cfg.base_url, self.json_mode, exc)
            self.json_mode = "prompt"
            return await self._chat(messages, json_mode, temperature, max_tokens)

    def response_format(self, json_mode: Any) -> dict[str, Any] | None:
        """The `response_format` to send for this call, or None (plain text, or prompt mode)."""
        return response_format(self.json_mode, json_mode)

    async def _chat(self, messages, json_mode, temperature, max_tokens) -> ChatReply:
        role_cfg = self.cfg
        json_mode = self.response_format(json_mode)
        max_tokens = max_tokens or self.cfg.max_tokens
        estimate = estimate_tokens(messages) + (max_tokens or 256)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Transient),
            stop=stop_after_attempt(self.cfg.max_retries + 1),
            wait=_wait_for_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self.limiter.acquire(estimate)
                    async with self.gate:
                        await self.usage.check_cap(role_cfg.role)  # at the cap no call starts; those in flight finish
                        try:
                            reply = await self._attempt(messages, json_mode, temperature, max_tokens)
                        except asyncio.CancelledError:  # the request may be out and billed: said, not counted
                            self.usage.cancel(role_cfg.role)
                            raise
                        except Transient as exc:
                            if exc.kind == "rate_limit":
                                self.gate.on_rate_limited()
                            log.info("%s: retrying after %s", self.cfg.role, exc)
                            raise
                    self.gate.on_success()
        except Transient as exc:
            self.usage.fail(role_cfg.role)
            raise final_error(exc, f"{role_cfg.role} → {self.cfg.base_url}", self.cfg.max_retries + 1) from None
        except LLMError:
            self.usage.fail(role_cfg.role)
            raise
        self.limiter.settle(estimate, reply.input_tokens + reply.output_tokens)
        self.usage.add(role_cfg, reply)
        return reply

    async def _attempt(self, messages, response_format, temperature, max_tokens) -> ChatReply:
        raise NotImplementedError


def _wait_for_retry(state) -> float:
    exc = state.outcome.exception()
    if isinstance(exc, Transient) and exc.retry_after is not None:
        return min(exc.retry_after, 120.0)
    return wait_exponential_jitter(multiplier=0.5, max=20.0, jitter=0.5)(state)


def _status_error(status: int, body: str, where: str, retry_after: str | None) -> Exception:
    """Map an HTTP status to what the retry loop should do with it."""
    detail = body.strip().replace("\n", " ")[:200]
    if status in (401, 403):
        return LLMAuthError(f"authentication failed ({status}) at {where}: check ZAOSHU_API_KEY — {detail}")
    if status == 404:
        return LLMNotFound(f"not found (404) at {where}: check the base URL and the model name — {detail}")
    if status == 429:
        return Transient(f"rate limited (429) {detail}", retry_after=parse_retry_after(retry_after), kind="rate_limit")
    if status in (400, 422, 500) and "response_format" in body:  # llama-cpp-python's server: a 500 validation error
        return FormatRejected(f"response_format refused ({status}) at {where}: {detail}")
    if status >= 500:
        return Transient(f"server error ({status}) {detail}", kind="server")
    return LLMError(f"request rejected ({status}) at {where}: {detail}")


class SessionPool:
    """One aiohttp session (its connection pool) per event loop, shared by every role that calls the
    same endpoint with the same key: their requests reuse one set of keep-alive connections."""

    def __init__(self, cfg: LLMConfig):
        self.headers = {"Content-Type": "application/json"}
        if cfg.api_key is not None:
            self.headers["Authorization"] = f"Bearer {cfg.api_key.get_secret_value()}"
        self._session = None
        self._loop = None

    async def session(self):
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, headers=self.headers)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


class HttpChatClient(_RetryingClient):
    """The lean path: aiohttp, a pooled session per event loop (`SessionPool`), JSON built by hand."""

    def __init__(self, cfg: LLMConfig, usage: Usage | None = None, pacing: Pacing | None = None,
                 pool: SessionPool | None = None):
        super().__init__(cfg.require_endpoint(), usage, pacing)
        self._url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.pool = pool or SessionPool(cfg)

    async def _session_for_loop(self):
        return await self.pool.session()

    async def _attempt(self, messages, response_format, temperature, max_tokens) -> ChatReply:
        import aiohttp

        body: dict[str, Any] = {
            "model": self.cfg.model,
            "messages": messages,
            "temperature": self.cfg.temperature if temperature is None else temperature,
        }
        if max_tokens:
            body["max_tokens"] = max_tokens
        if response_format:
            body["response_format"] = response_format
        session = await self._session_for_loop()
        try:
            async with session.post(self._url, data=json.dumps(body, ensure_ascii=False).encode(),
                                    timeout=aiohttp.ClientTimeout(total=self.cfg.timeout)) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise _status_error(resp.status, raw.decode("utf-8", "replace"), self._url,
                                        resp.headers.get("Retry-After"))
        except asyncio.TimeoutError:
            raise Transient(f"no reply within {self.cfg.timeout:g} s", kind="timeout") from None
        except aiohttp.ClientConnectorError as exc:
            raise Transient(f"cannot connect: {exc.os_error or exc}", kind="connect") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            raise Transient(f"connection dropped: {exc.__class__.__name__}", kind="dropped") from None
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            message = choice["message"]
            text = message["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise Transient(f"malformed response body: {raw[:80]!r}", kind="malformed") from None
        usage = data.get("usage") or {}
        return ChatReply(text=text, input_tokens=int(usage.get("prompt_tokens") or 0),
                         output_tokens=int(usage.get("completion_tokens") or 0), cached_tokens=cached_tokens_of(usage),
                         model=data.get("model") or self.cfg.model, finish_reason=choice.get("finish_reason"),
                         reasoning=reasoning_of(text, message.get("reasoning_content") or message.get("reasoning")))

    async def aclose(self) -> None:
        await self.pool.aclose()


class LangChainChatClient(_RetryingClient):
    """Any LangChain chat model behind the same interface (ChatOpenAI, or a fake in tests)."""

    def __init__(self, model, cfg: LLMConfig, usage: Usage | None = None, pacing: Pacing | None = None):
        super().__init__(cfg, usage, pacing)
        self.model = model

    async def aclose(self) -> None:
        """ChatOpenAI's httpx clients are closed by the SDK when collected."""

    async def _attempt(self, messages, response_format, temperature, max_tokens) -> ChatReply:
        import openai

        kwargs: dict[str, Any] = {}
        if response_format:
            kwargs["response_format"] = response_format
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens:
            kwargs["max_tokens"] = max_tokens
        model = self.model.bind(**kwargs) if kwargs and hasattr(self.model, "bind") else self.model
        where = self.cfg.base_url or "model"
        try:
            message = await model.ainvoke(messages)
        except openai.APIStatusError as exc:
            raise _status_error(exc.status_code, str(exc.message), where,
                                exc.response.headers.get("retry-after")) from None
        except openai.APITimeoutError:
            raise Transient(f"no reply within {self.cfg.timeout:g} s", kind="timeout") from None
        except openai.APIConnectionError as exc:
            kind = "connect" if "connect" in str(exc.__cause__ or exc).lower() else "dropped"
            raise Transient(f"connection error: {exc.__cause__ or exc}", kind=kind) from None
        except (ValueError, json.JSONDecodeError) as exc:
            raise Transient(f"malformed response body: {exc}", kind="malformed") from None
        usage = getattr(message, "usage_metadata", None) or {}
        finish = (getattr(message, "response_metadata", None) or {}).get("finish_reason")
        text = _text_of(message.content)
        return ChatReply(text=text, input_tokens=usage.get("input_tokens", 0),
                         output_tokens=usage.get("output_tokens", 0), model=self.cfg.model or "",
                         cached_tokens=cached_tokens_of(usage),
                         finish_reason=finish, reasoning=reasoning_of(text, _reasoning_of(message)))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


def _reasoning_of(message: Any) -> str:
    """Reasoning a LangChain message carries: `additional_kwargs["reasoning_content"]` (ChatDeepSeek and
    other provider classes) or reasoning / thinking content blocks. Plain `ChatOpenAI` drops DeepSeek's
    `reasoning_content`; the default http backend keeps it."""
    found = (getattr(message, "additional_kwargs", None) or {}).get("reasoning_content")
    if isinstance(found, str) and found.strip():
        return found
    content = getattr(message, "content", None)
    blocks = content if isinstance(content, list) else []
    return "".join(str(b.get("reasoning") or b.get("thinking") or "") for b in blocks
                   if isinstance(b, dict) and b.get("type") in ("reasoning", "thinking"))


def make_chat_model(cfg: LLMConfig):
    """A `ChatOpenAI` for this role's endpoint. Retries are ours (`max_retries=0` inside)."""
    from langchain_openai import ChatOpenAI

    cfg.require_endpoint()
    key = cfg.api_key.get_secret_value() if cfg.api_key is not None else "EMPTY"
    return ChatOpenAI(model=cfg.model, base_url=cfg.base_url, api_key=key, temperature=cfg.temperature,
                      timeout=cfg.timeout, max_retries=0)


def make_client(cfg: LLMConfig, *, backend: str = "http", usage: Usage | None = None,
                pacing: Pacing | None = None, pool: SessionPool | None = None) -> ChatClient:
    """The client for one role. backend: "http" (lean, default) or "langchain" (ChatOpenAI)."""
    if backend == "langchain":
        return LangChainChatClient(make_chat_model(cfg), cfg, usage, pacing)
    if backend == "http":
        return HttpChatClient(cfg, usage, pacing, pool)
    raise ValueError(f"unknown LLM backend {backend!r}: use 'http' or 'langchain'")


def make_clients(settings: Settings, *, roles=ROLES, backend: str = "http", usage: Usage | None = None,
                 pacing_for: Callable[[list[LLMConfig]], Pacing] | None = None) -> dict[str, ChatClient]:
    """One client per role; roles that call the same endpoint with the same key share one `Pacing`.

    When such roles set different limits, the strictest applies to all of them. `pacing_for` builds the
    Pacing of one such group (default: in this process; graphs.ray_pacing: one budget for a cluster).
    """
    usage = usage if usage is not None else Usage()
    configs = {role: settings.for_role(role) for role in roles}
    groups: dict[tuple, list[LLMConfig]] = {}
    for cfg in configs.values():
        groups.setdefault(_endpoint(cfg), []).append(cfg)
    pacing = {key: (pacing_for or local_pacing)(cfgs) for key, cfgs in groups.items()}
    pools = {key: SessionPool(cfgs[0]) for key, cfgs in groups.items()}  # one connection pool per endpoint too
    return {role: make_client(cfg, backend=backend, usage=usage, pacing=pacing[_endpoint(cfg)],
                              pool=pools[_endpoint(cfg)])
            for role, cfg in configs.items()}


def pacing_limits(cfgs: list[LLMConfig]) -> tuple[int, int, int]:
    """(rpm, tpm, requests in flight) of roles sharing one endpoint and key: the strictest of each."""
    return (_strictest(c.rpm for c in cfgs), _strictest(c.tpm for c in cfgs), min(c.max_requests for c in cfgs))


def local_pacing(cfgs: list[LLMConfig]) -> Pacing:
    rpm, tpm, max_requests = pacing_limits(cfgs)
    return Pacing(RateLimiter(rpm, tpm), AdaptiveGate(max_requests))


def _endpoint(cfg: LLMConfig) -> tuple[str | None, str | None]:
    return (cfg.base_url or "").rstrip("/"), cfg.api_key.get_secret_value() if cfg.api_key else None


def _strictest(limits) -> int:
    """The lowest non-zero limit (0 = none).

    >>> _strictest([0, 60, 30])
    30
    """
    return min((limit for limit in limits if limit), default=0)


async def close_clients(clients: dict[str, ChatClient]) -> None:
    """Close the HTTP sessions behind a set of clients."""
    for client in clients.values():
        if hasattr(client, "aclose"):
            await client.aclose()
