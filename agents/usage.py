"""Token and cost totals per role for one run: every client adds to the same `Usage`, and asks it
before each call whether the run's spending cap (`Usage.cap`, set by the runner for `--budget`) is reached.

>>> from agents.settings import LLMConfig
>>> usage = Usage()
>>> usage.add(LLMConfig(role="critic", price_input_per_1k=2.0), ChatReply("好", input_tokens=500, output_tokens=10))
>>> usage.as_dict()["critic"]["calls"], usage.cost
(1, 1.0)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agents.llm_wire import ChatReply
from agents.settings import LLMConfig


@dataclass
class RoleUsage:
    calls: int = 0
    failures: int = 0
    unparsed: int = 0  # replies that did not parse into the asked schema (each re-asked or recorded)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # of input_tokens, served from the provider's prefix cache
    cost: float = 0.0
    #: requests sent and then given up when the run stopped (target, pause, fatal error, Ctrl-C): the
    #: endpoint may still bill them, and their tokens are unknown, so they are in no total above
    cancelled: int = 0


class SpendingCapReached(Exception):
    """No call was started: the run's spending has reached its cap (`Usage.cap`).

    Not an `LLMError`: nothing failed and nothing is to be rejected; the item is cut short, and the
    runner redoes it when the run is resumed, as it does an interrupted one."""


@dataclass
class Usage:
    """Token and cost totals per role; one instance per run, shared by every client.

    `cap`, when set, says whether the spending so far has reached the run's cap; from then on a client
    starts no call (`check_cap` raises `SpendingCapReached`). Calls already in flight finish and count.
    """

    roles: dict[str, RoleUsage] = field(default_factory=dict)
    #: may return an awaitable (a Ray worker asks the cluster: graphs.ray_runner)
    cap: Callable[[Usage], bool | Awaitable[bool]] | None = field(default=None, repr=False, compare=False)

    async def check_cap(self, role: str) -> None:
        """Called by a client just before it sends a request (each attempt: a retry is a new call)."""
        if self.cap is None:
            return
        reached = self.cap(self)
        if inspect.isawaitable(reached):
            reached = await reached
        if reached:
            raise SpendingCapReached(f"{role}: no call made, the run's spending cap is reached")

    def add(self, cfg: LLMConfig, reply: ChatReply) -> None:
        u = self.roles.setdefault(cfg.role, RoleUsage())
        u.calls += 1
        u.input_tokens += reply.input_tokens
        u.output_tokens += reply.output_tokens
        cached = getattr(reply, "cached_tokens", 0)
        u.cached_tokens += cached
        u.cost += cfg.cost(reply.input_tokens, reply.output_tokens, cached)

    def fail(self, role: str) -> None:
        self.roles.setdefault(role, RoleUsage()).failures += 1

    def unparsable(self, role: str) -> None:
        self.roles.setdefault(role, RoleUsage()).unparsed += 1

    def cancel(self, role: str) -> None:
        self.roles.setdefault(role, RoleUsage()).cancelled += 1

    @property
    def cancelled(self) -> int:
        return sum(u.cancelled for u in self.roles.values())

    @property
    def input_tokens(self) -> int:
        return sum(u.input_tokens for u in self.roles.values())

    @property
    def output_tokens(self) -> int:
        return sum(u.output_tokens for u in self.roles.values())

    @property
    def cached_tokens(self) -> int:
        return sum(u.cached_tokens for u in self.roles.values())

    @property
    def cost(self) -> float:
        return sum(u.cost for u in self.roles.values())

    def as_dict(self) -> dict[str, Any]:
        return {role: vars(u).copy() for role, u in self.roles.items()}


def calls(n: int) -> str:
    """How many LLM calls, in words.

    >>> calls(1), calls(3)
    ('1 LLM call', '3 LLM calls')
    """
    return f"{n} LLM call{'s' if n != 1 else ''}"
