"""What a run reports: one item's result, the run's outcome, and what an observer may read of a run.

Its own module so the runner and its observers (graphs.observer) import it, not each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agents.llm import Usage
from agents.schemas import ReasonCode
from graphs.state import plain

StopReason = Literal["completed", "target", "budget", "interrupted", "fatal", "paused"]


class RunView(Protocol):
    """What observers read of a running run (the Runner is one)."""

    run_dir: Any  # graphs.rundir.RunDir
    usage: Usage
    failed: int

    @property
    def accepted(self) -> int: ...

    @property
    def rejected(self) -> int: ...


@dataclass
class ItemResult:
    """What the runner needs from a graph's final state (see graphs.state)."""

    status: Literal["accepted", "rejected"]
    sample: dict[str, Any] | None
    codes: list[str] = field(default_factory=list)
    verdict: dict[str, Any] | None = None
    raw: str | None = None
    attempts: int = 0

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ItemResult:
        codes = [c.value if isinstance(c, ReasonCode) else str(c) for c in state.get("reject_codes") or []]
        return cls(status=state.get("status") or "rejected", sample=plain(state.get("sample")), codes=codes,
                   verdict=plain(state.get("verdict")), raw=state.get("raw"), attempts=state.get("attempts") or 0)


@dataclass
class RunOutcome:
    reason: StopReason
    message: str
    accepted: int
    rejected: int
    failed: int
