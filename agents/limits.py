"""Request pacing: an RPM/TPM limiter and an adaptive concurrency gate (AIMD on 429s).

>>> limiter = RateLimiter(rpm=120)   # one request start every 0.5 s, no bursts
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class RateLimiter:
    """Spaces request starts evenly (60/rpm s apart) and keeps tokens in any 60 s window ≤ tpm.

    Even spacing, not a bucket that allows a burst of `rpm` at once: a provider that counts per
    second as well as per minute never sees a spike.
    """

    def __init__(self, rpm: int = 0, tpm: int = 0, clock=time.monotonic):
        self.interval = 60.0 / rpm if rpm > 0 else 0.0
        self.tpm = tpm
        self._clock = clock
        self._next_start = 0.0
        self._window: deque[tuple[float, int]] = deque()
        self._window_tokens = 0
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> None:
        if not self.interval and not self.tpm:
            return
        async with self._lock:
            now = self._clock()
            wait = max(0.0, self._next_start - now)
            self._next_start = max(now, self._next_start) + self.interval
            if self.tpm:
                wait = max(wait, self._tpm_wait(now, tokens))
                self._record(now + wait, tokens)
        if wait > 0:
            await asyncio.sleep(wait)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token window once the real usage of a request is known."""
        if self.tpm and actual != estimated:
            self._record(self._clock(), actual - estimated)

    def _record(self, at: float, tokens: int) -> None:
        self._window.append((at, tokens))
        self._window_tokens += tokens

    def _tpm_wait(self, now: float, tokens: int) -> float:
        while self._window and self._window[0][0] <= now - 60.0:
            self._window_tokens -= self._window.popleft()[1]
        if self._window_tokens + tokens <= self.tpm:
            return 0.0
        freed, needed = 0, self._window_tokens + tokens - self.tpm
        for at, used in self._window:
            freed += used
            if freed >= needed:
                return max(0.0, at + 60.0 - now)
        return 60.0


class AdaptiveGate:
    """At most `limit` calls in flight; halves the limit on a 429 and regains one per success streak.

    The limit never drops below 1 and never rises above `maximum`; `in_flight` and `limit` are
    visible for progress displays.
    """

    def __init__(self, maximum: int):
        self.maximum = max(1, maximum)
        self.limit = float(self.maximum)
        self.in_flight = 0
        self._cond = asyncio.Condition()

    async def __aenter__(self) -> AdaptiveGate:
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1
        return self

    async def __aexit__(self, *exc_info) -> None:
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def on_rate_limited(self) -> None:
        self.limit = max(1.0, self.limit / 2)

    def on_success(self) -> None:
        if self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / max(1.0, self.limit))
