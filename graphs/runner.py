"""The runner: work items → item graph, N in flight, results appended to the run directory.

    outcome = await Runner(compiled_graph, ctx, RunDir(path), usage, RunOptions(concurrency=32)).run(items)

- Up to N items in flight (asyncio tasks; no checkpointer in the hot path, so nothing caps N).
- Finished ids (accepted or rejected) are skipped, so a rerun resumes; in-flight items are redone.
- A fatal LLM error (auth, unreachable, 404), N consecutive failed items, `--target`, the first K
  items all rejected for one reason (graphs.failfast; `--keep-going` turns it off) or Ctrl-C stop
  the run cleanly: in-flight items are cancelled (and redone next time), ledgers are flushed, stats
  are written.
- The budget holds per call: once the run's spending reaches it, the clients start no LLM call
  (`Usage.cap`). Items in flight finish the calls they have started (their cost is real, and
  counted), then end at their next call, cut short and redone next time like interrupted items,
  or are done. So the run spends at most the cap plus the calls in flight. (With Ray the calls
  happen in the workers: each asks the pacing actor what the cluster has spent before each call,
  and the pool checks `Usage.cap` as their usage comes back and stops their calls.)
- `checkpoint()`, when given, is called after every item is recorded (execute.py keeps stats.json
  current with it, so a `kill -9` leaves the session's counts and spending behind).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from agents.errors import ServiceError, ZaoshuError
from agents.llm import Usage, close_clients
from agents.llm_errors import LLMError, LLMFatalError
from agents.schemas import ReasonCode
from agents.usage import SpendingCapReached
from graphs.failfast import FailFast, line_of, pause_message
from graphs.observer import RunObserver, invoke_observed
from graphs.outcome import ItemResult, RunOutcome, StopReason
from graphs.rundir import RunDir
from graphs.state import WorkItem

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Budget:
    """A spending cap for a whole run, its earlier sessions included: `Budget.parse("5¥")`, `"$2"`,
    `"200000 tokens"`, `"200k tokens"`; `over(stats)` counts what the run's stats.json says was spent.

    >>> b = Budget.parse("1k tokens").over({"input_tokens": 700, "output_tokens": 100})
    >>> b.spent_text(Usage())
    '800 tokens'
    """

    amount: float
    unit: str  # "tokens" or a currency symbol
    earlier: float = 0.0  # what the run's earlier sessions spent, in `unit`
    shard: str | None = None  # "2/4": the cap counts this shard of a sharded run (each counts its own)

    @classmethod
    def parse(cls, text: str) -> Budget:
        m = re.fullmatch(r"\s*([¥$])?\s*([\d.]+)\s*([kKmM])?\s*(tokens?|[¥$]|元|yuan|usd)?\s*", text)
        if not m or not (m.group(1) or m.group(4)):
            raise ZaoshuError(f"cannot read budget {text!r}: write e.g. 5¥, $2 or 200k tokens")
        amount = float(m.group(2)) * {"k": 1e3, "m": 1e6}.get((m.group(3) or "").lower(), 1)
        unit = m.group(1) or m.group(4)
        unit = {"元": "¥", "yuan": "¥", "usd": "$", "token": "tokens"}.get(unit, unit)
        return cls(amount, unit)

    def over(self, stats: dict, shard: str | None = None) -> Budget:
        """This cap over the whole run (or `shard`): what its stats.json (earlier sessions) says was spent counts."""
        if self.unit == "tokens":
            earlier = float(stats.get("input_tokens", 0) + stats.get("output_tokens", 0))
        else:
            earlier = float(stats.get("cost", 0.0))
        return replace(self, earlier=earlier, shard=shard)

    def spent(self, usage: Usage) -> float:
        return self.earlier + (usage.input_tokens + usage.output_tokens if self.unit == "tokens" else usage.cost)

    def reached(self, usage: Usage) -> bool:
        """Whether the run has spent the cap (a `Usage.cap`: from then on no call starts)."""
        return self.spent(usage) >= self.amount

    def stop_message(self, usage: Usage) -> str:
        """What a run stopped by this cap says, once its last call is counted."""
        spent = (f"this run has spent {self.spent_text(usage)}, earlier sessions included" if self.shard is None else
                 f"shard {self.shard} has spent {self.spent_text(usage)}, its earlier sessions included "
                 "(each shard counts its own)")
        return (f"budget {self} reached: {spent}; the command below goes on without a cap, add --budget above "
                "that to keep one")

    def spent_text(self, usage: Usage) -> str:
        spent = self.spent(usage)
        return f"{spent:,.0f} tokens" if self.unit == "tokens" else f"{self.unit}{spent:.4f}"

    def __str__(self) -> str:
        return f"{self.amount:g} tokens" if self.unit == "tokens" else f"{self.unit}{self.amount:g}"


@dataclass
class RunOptions:
    concurrency: int = 8
    target: int | None = None
    budget: Budget | None = None
    max_consecutive_failures: int = 5
    fail_fast: int = 10  # pause when the first K items are all rejected for one reason; 0 = off


class Runner:
    def __init__(self, graph, ctx, run: RunDir, usage: Usage, options: RunOptions,
                 observer: RunObserver | None = None, invoke=None, checkpoint: Callable[[], None] | None = None):
        self.graph = graph
        self.ctx = ctx
        self.run_dir = run
        self.usage = usage
        self.options = options
        self.observer = observer or RunObserver()
        self.invoke = invoke or self._invoke
        self.checkpoint = checkpoint
        self.failed = 0
        self.started_here = 0
        self._consecutive_failures = 0
        self._stop_reason: StopReason | None = None
        self._stop_message = ""
        self._stopped = asyncio.Event()
        # only a run folder that has accepted nothing yet is watched
        self._fail_fast = FailFast(options.fail_fast if not run.accepted_ids else 0)

    # -- control -----------------------------------------------------------------------------
    def request_stop(self, reason: StopReason, message: str = "") -> None:
        if self._stop_reason is None:
            self._stop_reason, self._stop_message = reason, message
            log.info("stopping: %s %s", reason, message)
        self._stopped.set()

    @property
    def accepted(self) -> int:
        return len(self.run_dir.accepted_ids)

    @property
    def rejected(self) -> int:
        return len(self.run_dir.rejected_ids)

    def _over_budget(self) -> bool:
        budget = self.options.budget
        return budget is not None and budget.reached(self.usage)

    def _stop_for_budget(self) -> None:
        """No new item starts. Items in flight are not cancelled; the clients refuse their next call
        (`Usage.cap`), so each ends there, cut short, or is done."""
        if self._stop_reason is None:
            self._stop_reason = "budget"
            log.info("stopping: budget reached; items in flight end at their next call")

    def _target_reached(self) -> bool:
        return self.options.target is not None and self.accepted >= self.options.target

    # -- running -----------------------------------------------------------------------------
    async def run(self, items: Iterable[WorkItem]) -> RunOutcome:
        finished = self.run_dir.finished
        pending = (item for item in items if item.id not in finished)
        self.observer.run_started(self)
        if self._target_reached():
            self.request_stop("target", f"target of {self.options.target} accepted samples already reached")
        if self.options.budget is not None:
            self.usage.cap = self.options.budget.reached
        workers = [asyncio.create_task(self._worker(pending)) for _ in range(max(1, self.options.concurrency))]
        stop_waiter = asyncio.create_task(self._stopped.wait())
        done_all = asyncio.gather(*workers, return_exceptions=True)
        await asyncio.wait([stop_waiter, done_all], return_when=asyncio.FIRST_COMPLETED)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        stop_waiter.cancel()
        self.usage.cap = None
        self.run_dir.close()
        await close_clients(getattr(self.ctx, "clients", {}) or {})
        reason = self._stop_reason or "completed"
        message = self.options.budget.stop_message(self.usage) if reason == "budget" else self._stop_message
        outcome = RunOutcome(reason, message, self.accepted, self.rejected, self.failed)
        self.observer.run_finished(self, outcome)
        return outcome

    async def _worker(self, pending) -> None:
        while self._stop_reason is None:
            if self._over_budget():
                self._stop_for_budget()
                return
            item = next(pending, None)
            if item is None:
                return
            self.started_here += 1
            await self._process(item)

    async def _invoke(self, item: WorkItem) -> dict[str, Any]:
        return await invoke_observed(self.graph, item, self.ctx, self.observer)

    async def _process(self, item: WorkItem) -> None:
        self.observer.item_started(item)
        try:
            state = await self.invoke(item)
        except asyncio.CancelledError:
            self.observer.item_cancelled(item)
            raise
        except SpendingCapReached:  # cut short: in no ledger, redone on resume
            self.observer.item_cancelled(item)
            self._stop_for_budget()
            return
        except LLMFatalError as exc:
            self.request_stop("fatal", str(exc))
            return
        except ZaoshuError as exc:  # an LLM call or an outside service failed for this item
            if isinstance(exc, LLMError) or (isinstance(exc, ServiceError) and not exc.fatal):
                self._record_failure(item, exc)
            else:
                self.request_stop("fatal", str(exc))
            return
        except Exception as exc:  # a bug in a node: keep the run going, record it, stop if it repeats
            log.exception("item %s crashed", item.id)
            self._record_failure(item, exc)
            return
        self._consecutive_failures = 0
        self._record(item, ItemResult.from_state(state))

    def _record_failure(self, item: WorkItem, exc: Exception) -> None:
        self.failed += 1
        self._consecutive_failures += 1
        error = f"{exc.__class__.__name__}: {exc}"
        self.run_dir.fail({"id": item.id, "key": item.key, "error": error, "at": time.time()})
        self.observer.item_failed(item, error)
        if self.checkpoint is not None:
            self.checkpoint()
        if self._consecutive_failures >= self.options.max_consecutive_failures:
            self.request_stop("fatal", f"{self._consecutive_failures} items in a row failed; last: {error}")

    def _record(self, item: WorkItem, result: ItemResult) -> None:
        if result.status == "accepted" and result.sample is not None:
            if self._target_reached():
                return  # another item got there first; this one is redone if the target grows
            self.run_dir.accept(result.sample)
            if self._target_reached():
                self.request_stop("target", f"target of {self.options.target} accepted samples reached")
        else:
            codes = result.codes or [ReasonCode.FORMAT.value]
            self.run_dir.reject({"id": item.id, "key": item.key, "codes": codes, "verdict": result.verdict,
                                 "raw": result.raw, "attempts": result.attempts, "sample": result.sample})
        self.observer.item_finished(item, result)
        if self.checkpoint is not None:
            self.checkpoint()
        code = self._fail_fast.observe(item.id, result.status, result.codes or [ReasonCode.FORMAT.value])
        if code is not None:
            line = line_of(self.run_dir.rejected_path, self._fail_fast.first_id)
            self.request_stop("paused", pause_message(self._fail_fast.k, code, self.run_dir.rejected_path, line))
        if self._over_budget():
            self._stop_for_budget()


def install_signal_handlers(runner: Runner, on_force=None) -> None:
    """First Ctrl-C (or SIGTERM): stop cleanly — in-flight items are redone on resume; the stop names the
    signal (a `kill` or a shutdown is not a Ctrl-C). Second one: flush the ledgers and leave at once."""
    import os
    import signal

    loop = asyncio.get_running_loop()
    presses = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            runner.request_stop("interrupted", "stopped by Ctrl-C" if sig == signal.SIGINT
                                else f"stopped by {sig.name} (a kill, or the machine shutting down)")
            return
        runner.run_dir.close()
        if on_force is not None:
            on_force()
        os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
