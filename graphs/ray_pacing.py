"""One rate budget for a whole Ray cluster: every worker asks one limiter actor before a call.

    pacing_for = ray_pacing_for(PacingActor.remote())
    ctx = build_context(config, settings, services, usage=usage, pacing_for=pacing_for)

`RayLimiter` and `RayGate` have the interface of agents.limits' `RateLimiter` and `AdaptiveGate`, so
agents/llm.py uses them without knowing about Ray. The actor holds the real ones, one pair per
endpoint and key (named by a hash of them; the key itself never leaves the worker): RPM/TPM spacing,
requests in flight and the 429 back-off (the gate halves its limit for every worker) hold across the
cluster.
"""

from __future__ import annotations

import hashlib
from typing import Any

import ray

from agents.limits import AdaptiveGate, RateLimiter
from agents.llm import Pacing, pacing_limits
from agents.settings import LLMConfig


@ray.remote(num_cpus=0, max_restarts=-1)
class PacingActor:
    """The cluster's limiters and gates (an async actor: a waiting caller does not block the others)."""

    def __init__(self) -> None:
        self._limiters: dict[str, RateLimiter] = {}
        self._gates: dict[str, AdaptiveGate] = {}
        self.calls = 0

    def _limiter(self, key: str, rpm: int, tpm: int) -> RateLimiter:
        return self._limiters.setdefault(key, RateLimiter(rpm, tpm))

    def _gate(self, key: str, maximum: int) -> AdaptiveGate:
        return self._gates.setdefault(key, AdaptiveGate(maximum))

    async def acquire(self, key: str, rpm: int, tpm: int, tokens: int) -> None:
        self.calls += 1
        await self._limiter(key, rpm, tpm).acquire(tokens)

    async def settle(self, key: str, rpm: int, tpm: int, estimated: int, actual: int) -> None:
        self._limiter(key, rpm, tpm).settle(estimated, actual)

    async def enter(self, key: str, maximum: int) -> None:
        await self._gate(key, maximum).__aenter__()

    async def leave(self, key: str, maximum: int) -> None:
        await self._gate(key, maximum).__aexit__(None, None, None)

    async def rate_limited(self, key: str, maximum: int) -> None:
        self._gate(key, maximum).on_rate_limited()

    async def success(self, key: str, maximum: int) -> None:
        self._gate(key, maximum).on_success()

    async def state(self) -> dict[str, Any]:
        """{key: {in_flight, limit}} for each endpoint, and how many calls asked (tests, progress)."""
        return {"calls": self.calls,
                "gates": {k: {"in_flight": g.in_flight, "limit": g.limit} for k, g in self._gates.items()}}


class RayLimiter:
    """`RateLimiter`'s interface; the spacing happens in the cluster's `PacingActor`."""

    def __init__(self, actor: Any, key: str, rpm: int, tpm: int):
        self.actor, self.key, self.rpm, self.tpm = actor, key, rpm, tpm

    async def acquire(self, tokens: int = 0) -> None:
        if self.rpm or self.tpm:  # no limit: no round trip
            await self.actor.acquire.remote(self.key, self.rpm, self.tpm, tokens)

    def settle(self, estimated: int, actual: int) -> None:
        if self.tpm and actual != estimated:
            self.actor.settle.remote(self.key, self.rpm, self.tpm, estimated, actual)


class RayGate:
    """`AdaptiveGate`'s interface: requests in flight counted, and halved on a 429, for the whole cluster."""

    def __init__(self, actor: Any, key: str, maximum: int):
        self.actor, self.key, self.maximum = actor, key, maximum

    async def __aenter__(self) -> RayGate:
        await self.actor.enter.remote(self.key, self.maximum)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.actor.leave.remote(self.key, self.maximum)

    def on_rate_limited(self) -> None:
        self.actor.rate_limited.remote(self.key, self.maximum)

    def on_success(self) -> None:
        self.actor.success.remote(self.key, self.maximum)


def endpoint_key(cfg: LLMConfig) -> str:
    """A name for an endpoint and key that does not reveal the key."""
    secret = cfg.api_key.get_secret_value() if cfg.api_key else ""
    return hashlib.sha256(f"{(cfg.base_url or '').rstrip('/')}\0{secret}".encode()).hexdigest()[:16]


def ray_pacing_for(actor: Any):
    """A `pacing_for` for agents.llm.make_clients whose limits live in `actor` (a PacingActor)."""

    def pacing_for(cfgs: list[LLMConfig]) -> Pacing:
        rpm, tpm, max_requests = pacing_limits(cfgs)
        key = endpoint_key(cfgs[0])
        return Pacing(RayLimiter(actor, key, rpm, tpm), RayGate(actor, key, max_requests))  # type: ignore[arg-type]

    return pacing_for
