"""One rate budget for a whole Ray cluster: every worker asks one limiter actor before a call.

    pacing_for = ray_pacing_for(ray.get_actor("zaoshu-pacing-…", namespace="zaoshu"), workers=2)
    ctx = build_context(config, settings, services, usage=usage, pacing_for=pacing_for)

`RayLimiter` and `RayGate` have the interface of agents.limits' `RateLimiter` and `AdaptiveGate`, so
agents/llm.py uses them without knowing about Ray (graphs/ray_runner.py injects them). The actor
holds the real ones, one pair per endpoint and key (named by a hash of them; the key itself never
leaves the worker). RPM/TPM: every call asks the actor, which spaces the starts for the whole
cluster. Requests in flight: each worker holds its share of the budget in a local gate (no round
trip per call); a 429 at any worker halves every share. A budget too small to split is counted in
the actor, call by call. Under `--budget`, every worker tells the actor what it has spent before each
call, and hears whether the cluster together has reached the cap (graphs.ray_runner).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
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
        self._backoffs: dict[str, int] = {}
        self._spent: dict[str, float] = {}  # worker (each restart apart) → what it has spent, in the budget's unit
        self.calls = 0

    def _limiter(self, key: str, rpm: int, tpm: int) -> RateLimiter:
        if key not in self._limiters:
            self._limiters[key] = RateLimiter(rpm, tpm)
        return self._limiters[key]

    def _gate(self, key: str, maximum: int) -> AdaptiveGate:
        if key not in self._gates:
            self._gates[key] = AdaptiveGate(maximum)
        return self._gates[key]

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
        self._backoffs[key] = self._backoffs.get(key, 0) + 1

    async def backoffs(self, key: str, maximum: int) -> int:
        """How many 429s the cluster has seen at this endpoint (workers halve their shares as many times)."""
        return self._backoffs.get(key, 0)

    async def spent(self, worker: str, amount: float, allowance: float) -> bool:
        """`worker` has spent `amount` so far: whether the cluster together has spent `allowance` (the run's
        `--budget` less its earlier sessions). Asked before each call, so a worker learns what the others
        spent up to their own last call, not only what the driver had heard."""
        self._spent[worker] = amount
        return sum(self._spent.values()) >= allowance

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
    """`AdaptiveGate`'s interface over the whole cluster.

    With a budget of at least `SHARE_MIN` requests per worker, each worker holds its share in a local
    gate (no round trip per call) and a 429 anywhere halves every share: the worker that saw it tells
    the actor, the others learn it within `SYNC_S`. A smaller budget is counted in the actor, call by call.
    """

    SHARE_MIN = 4
    SYNC_S = 0.5

    def __init__(self, actor: Any, key: str, maximum: int, workers: int = 1):
        self.actor, self.key, self.maximum = actor, key, maximum
        share = maximum // max(1, workers)
        self.local = AdaptiveGate(share) if share >= self.SHARE_MIN else None
        self.backoffs = 0  # 429s seen by the cluster, as far as this worker knows
        self._sync: Any = None
        self._synced = 0.0

    async def __aenter__(self) -> RayGate:
        if self.local is None:
            await self.actor.enter.remote(self.key, self.maximum)
            return self
        self._maybe_sync()
        await self.local.__aenter__()
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self.local is None:
            await self.actor.leave.remote(self.key, self.maximum)
        else:
            await self.local.__aexit__(*exc_info)

    def _maybe_sync(self) -> None:
        """Learn the cluster's 429 count now and then, without waiting for the answer."""
        if self._sync is not None and self._sync.done():
            try:
                self._apply(self._sync.result())
            except Exception:  # noqa: BLE001 — a lost answer is asked again
                pass
            self._sync = None
        if self._sync is None and time.monotonic() - self._synced > self.SYNC_S:
            self._synced = time.monotonic()
            self._sync = asyncio.ensure_future(self.actor.backoffs.remote(self.key, self.maximum))

    def _apply(self, cluster_backoffs: int) -> None:
        while self.backoffs < cluster_backoffs:
            self.local.on_rate_limited()
            self.backoffs += 1

    def on_rate_limited(self) -> None:
        if self.local is not None:
            self.local.on_rate_limited()
            self.backoffs += 1
        self.actor.rate_limited.remote(self.key, self.maximum)

    def on_success(self) -> None:
        if self.local is not None:
            self.local.on_success()
        else:
            self.actor.success.remote(self.key, self.maximum)


def endpoint_key(cfg: LLMConfig) -> str:
    """A name for an endpoint and key that does not reveal the key."""
    secret = cfg.api_key.get_secret_value() if cfg.api_key else ""
    return hashlib.sha256(f"{(cfg.base_url or '').rstrip('/')}\0{secret}".encode()).hexdigest()[:16]


def ray_pacing_for(actor: Any, workers: int = 1):
    """A `pacing_for` for agents.llm.make_clients whose limits live in `actor` (a PacingActor), shared
    by `workers` workers."""

    def pacing_for(cfgs: list[LLMConfig]) -> Pacing:
        rpm, tpm, max_requests = pacing_limits(cfgs)
        key = endpoint_key(cfgs[0])
        return Pacing(RayLimiter(actor, key, rpm, tpm), RayGate(actor, key, max_requests, workers))  # type: ignore[arg-type]

    return pacing_for
