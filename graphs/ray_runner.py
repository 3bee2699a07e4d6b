"""Run a recipe's items in Ray actors: `python -m recipes.<name> --ray [--ray-address auto] [--workers N]`.

    driver (this process)                         Ray cluster
    Runner: items, resume, ledgers, progress ──►  ItemWorker × N   (one event loop each: the item graph)
                                                  PacingActor × 1  (RPM/TPM, requests in flight, 429s)

The driver keeps the local runner's loop (graphs.runner.Runner) and only swaps how one item is
invoked: the item goes to the least busy worker, its final state comes back, and the driver writes
the ledgers. One writer per run folder means no duplicate lines and the same run lock, resume and
rejection codes as a local run. A worker that dies is restarted by Ray and its in-flight items are
sent again (to any worker); an item whose worker died `RETRIES` times is recorded as failed, so the
next run retries it. Each worker builds its own Context from the resolved config (plain data) and
the settings of its own environment: API keys never travel.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import pickle
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from agents.errors import ZaoshuError
from agents.usage import RoleUsage, Usage
from agents.schemas import WorkItem
from graphs.outcome import RunOutcome
from graphs.ray_dedup import RunDedup, learn_accepted
from graphs.state import plain

log = logging.getLogger(__name__)

POLL_S = 5.0  # a poll returns at least this often, finished items or not (a dead worker shows then)
RETRIES = 3  # sends of one item to workers that died under it, before it counts as failed
MAX_WORKERS = 8
NAMESPACE = "zaoshu"  # workers are named zaoshu-worker-<run>-<i> in it (tests kill one by name)


class RecipeSetup:
    """What a worker runs, built on the worker: the recipe's item graph and a Context from the resolved
    config (plain data) and that machine's settings. Any picklable `setup(pacing_for) -> (graph, ctx,
    usage)` will do (benchmarks/bench_ray.py passes its own)."""

    def __init__(self, recipe: Any, config: Any, request: Any, run_path: Path):
        self.recipe = recipe
        self.config_data = config.model_dump(mode="json", exclude_unset=True)
        self.config_source = str(config.source)
        # absolute: a worker starts in the cluster's folder, not the driver's (the run folder is shared)
        self.request, self.run_path = request, str(Path(run_path).resolve())

    def __call__(self, pacing_for: Any) -> tuple[Any, Any, Usage]:
        from graphs.config import load_recipe_config
        from graphs.registry import GRAPHS
        from graphs.shards import read_ledger
        from graphs.session import build_context, build_services, resolve_settings

        config = load_recipe_config(self.config_data, self.recipe.config_model, Path(self.config_source))
        config.set_source(Path(self.config_source))
        settings = resolve_settings(config, self.request)  # this machine's environment: keys stay here
        services = build_services(config, settings, Path(self.run_path).parent, Console(file=io.StringIO()))
        usage = Usage()
        # every sample the run accepted, its other shards' included (as the driver's dedupers know them)
        ctx = build_context(config, settings, services, usage=usage,
                            accepted=read_ledger(Path(self.run_path), "accepted.jsonl", []), pacing_for=pacing_for)
        return GRAPHS[self.recipe.graph]().compile(), ctx, usage


class WorkerDied(Exception):
    """The worker holding an item died (Ray restarts it); the item is sent again."""


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it pickles (the driver sorts it as the local runner would), else its text."""
    try:
        pickle.dumps(exc)
        return exc
    except Exception:  # noqa: BLE001 — anything that does not pickle travels as a line of text
        return RuntimeError(f"{exc.__class__.__name__}: {exc}")


class ItemWorker:
    """One event loop running an item graph (a Ray actor: see `worker_pool`).

    Items arrive in batches (`submit`) and finished items leave in batches (`poll`, which waits until
    one is done): two actor calls per batch instead of one per item, the same items in flight.
    """

    def __init__(self, setup: Any, pacing: str, workers: int, budget: Any = None):
        import ray

        from graphs.ray_pacing import ray_pacing_for

        self.id = uuid.uuid4().hex[:8]  # one per (re)start: its usage counts separately
        # the pacing actor by name, not by handle: a handle argument would make Ray keep the constructor
        # arguments in the object store (and warn that a restart may fail)
        actor = ray.get_actor(pacing, namespace=NAMESPACE)
        self.pacing = actor
        self.budget = budget  # the run's graphs.runner.Budget (`--budget`), or None
        self.error: ZaoshuError | None = None
        self.done: list[tuple[str, str, Any]] = []  # (item id, "ok" | "error", state | exception)
        self.tasks: set[asyncio.Task] = set()
        self._ready: asyncio.Event | None = None
        try:
            self.graph, self.ctx, self.usage = setup(ray_pacing_for(actor, workers))
        except ZaoshuError as exc:  # a user mistake (no endpoint, bad key…): one line at the driver
            self.error, self.usage = exc, Usage()
        if budget is not None:
            self.usage.cap = self._cluster_spent

    async def ready(self) -> ZaoshuError | None:
        return self.error

    async def submit(self, items: list[WorkItem], accepted: list[tuple[str, str | None, str]] = (),
                     capped: bool = False) -> None:
        """Start `items`; `accepted` = (id, question, answer) the run accepted since the last batch, so
        this worker's dedupers know what the other workers made; `capped`: the run's spending cap is
        reached (a worker restarted since `stop_calls` has not heard it)."""
        learn_accepted(self.ctx, accepted)
        if capped:
            await self.stop_calls()
        for item in items:
            task = asyncio.create_task(self._run(item))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(self, item: WorkItem) -> None:
        try:
            state = await self.graph.ainvoke({"item": item}, context=self.ctx)
            out = ("ok", {k: plain(state.get(k)) for k in ("status", "sample", "verdict", "raw", "attempts")}
                   | {"reject_codes": [getattr(c, "value", str(c)) for c in state.get("reject_codes") or []]})
        except Exception as exc:  # noqa: BLE001 — the driver's runner sorts it, as it would locally
            out = ("error", _portable(exc))
        self.done.append((item.id, *out))
        self._event().set()

    def _event(self) -> asyncio.Event:
        if self._ready is None:  # made on the actor's event loop
            self._ready = asyncio.Event()
        return self._ready

    async def poll(self, wait_s: float = POLL_S) -> tuple[list[tuple[str, str, Any]], str, dict[str, Any]]:
        """The items finished since the last poll (waits up to `wait_s` for one), and this worker's usage."""
        event = self._event()
        if not self.done:
            try:
                await asyncio.wait_for(event.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
        event.clear()
        done, self.done = self.done, []
        return done, self.id, self.usage.as_dict()

    async def _cluster_spent(self, usage: Usage) -> bool:
        """`Usage.cap` under `--budget`: the pacing actor adds what every worker has spent, as each reported
        before its last call (one round trip per call), where the driver heard it only as items finished.
        A worker that asks before another has reported its last replies still starts its call."""
        own = self.budget.spent(usage) - self.budget.earlier
        return await self.pacing.spent.remote(self.id, own, self.budget.amount - self.budget.earlier)

    async def usage_now(self) -> tuple[str, dict[str, Any]]:
        return self.id, self.usage.as_dict()

    async def stop_calls(self) -> None:
        """The run's spending cap is reached: start no LLM call (`Usage.cap`). Calls in flight finish and
        count; their items end at their next call (`SpendingCapReached`, redone on resume) or are done."""
        self.usage.cap = _reached


def _reached(usage: Usage) -> bool:
    return True


class _Slot:
    """The driver's side of one worker: items in flight on it, the batch to send, the poll loop."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.waiting: dict[str, asyncio.Future] = {}  # item id → the invoke awaiting it
        self.outbox: list[WorkItem] = []
        self.pump: asyncio.Task | None = None


class WorkerPool:
    """The `invoke` of a Runner: send an item to the least busy worker, await its final state.

    Items sent in one turn of the driver's event loop go to a worker as one batch; one poll per
    worker brings back every item finished meanwhile. A worker's death fails its items in flight
    with `WorkerDied`, and `invoke` sends them again (to any worker). The run's spending cap
    (`usage.cap`, set by the Runner for `--budget`) is checked on each poll's usage: once reached,
    every worker starts no call (`ItemWorker.stop_calls`), as the clients of a local run do.
    """

    def __init__(self, ray: Any, workers: list[Any], usage: Usage, dedup: RunDedup | None = None):
        self.ray = ray
        self.workers = workers
        self.slots = [_Slot(w) for w in workers]
        self.usage = usage
        self.dedup = dedup or RunDedup(None, None)
        self._by_worker: dict[str, dict[str, Any]] = {}
        self._flush_soon = False
        self._capped = False

    @property
    def busy(self) -> list[int]:
        return [len(slot.waiting) for slot in self.slots]

    async def invoke(self, item: WorkItem) -> dict[str, Any]:
        for attempt in range(1, RETRIES + 1):
            slot = min(self.slots, key=lambda s: len(s.waiting))
            future = asyncio.get_running_loop().create_future()
            slot.waiting[item.id] = future
            slot.outbox.append(item)
            self._schedule_flush()
            try:
                kind, value = await future
            except WorkerDied as exc:
                log.warning("worker died under item %s (send %d of %d): %s", item.id, attempt, RETRIES, exc)
                if attempt == RETRIES:
                    raise
                continue
            finally:
                if slot.waiting.get(item.id) is future:
                    del slot.waiting[item.id]
            if kind == "error":
                raise value
            return self.dedup.review(item, value)
        raise AssertionError("unreachable")

    def _schedule_flush(self) -> None:
        if not self._flush_soon:  # every item sent in this turn of the loop goes in one batch
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        news = self.dedup.news()
        for slot in self.slots:
            if slot.outbox or news:
                batch, slot.outbox = slot.outbox, []
                # a lost batch shows as the worker's death in poll
                slot.handle.submit.remote(batch, news, self._capped)
            if slot.pump is None and slot.waiting:
                slot.pump = asyncio.ensure_future(self._pump(slot))

    async def _pump(self, slot: _Slot) -> None:
        """Poll one worker while it holds items; resolve their futures."""
        from ray.exceptions import RayActorError

        try:
            while slot.waiting:
                try:
                    done, worker, usage = await slot.handle.poll.remote()
                except RayActorError as exc:  # Ray restarts it; everything it held is sent again
                    reason = WorkerDied(str(exc).splitlines()[0])
                    for future in list(slot.waiting.values()):
                        if not future.done():
                            future.set_exception(reason)
                    slot.waiting.clear()
                    break
                self._count(worker, usage)
                for item_id, kind, value in done:
                    future = slot.waiting.get(item_id)
                    if future is not None and not future.done():
                        future.set_result((kind, value))
        finally:
            slot.pump = None

    def _count(self, worker: str, usage: dict[str, Any]) -> None:
        """Usage of the whole run: the latest totals of every worker (each restart counts apart)."""
        self._by_worker[worker] = usage
        roles: dict[str, RoleUsage] = {}
        for per_worker in self._by_worker.values():
            for role, fields in per_worker.items():
                total = roles.setdefault(role, RoleUsage())
                for name, value in fields.items():
                    setattr(total, name, getattr(total, name) + value)
        self.usage.roles = roles
        if not self._capped and self.usage.cap is not None and self.usage.cap(self.usage):
            self._capped = True
            for worker_handle in self.workers:
                worker_handle.stop_calls.remote()

    def collect(self) -> None:
        """Last usage from every live worker (items that failed reported none)."""
        refs = [w.usage_now.remote() for w in self.workers]
        for ref in refs:
            try:
                worker, usage = self.ray.get(ref, timeout=30)
            except Exception:  # noqa: BLE001 — a dead worker's last calls are lost from the count only
                continue
            self._count(worker, usage)


@contextmanager
def worker_pool(setup: Any, usage: Usage, *, concurrency: int, workers: int | None = None,
                address: str | None = None, name: str = "run", console: Console | None = None,
                dedup: RunDedup | None = None, items: int | None = None, budget: Any = None) -> Iterator[WorkerPool]:
    """Workers (and the pacing actor) on a Ray cluster for the length of a `with`; a local cluster is
    started when none is running and `address` is None. `concurrency` items in flight over all workers;
    no more workers than that, or than `items` (to run), since each builds its own clients. `budget`: the
    run's `--budget`, which each worker asks the pacing actor about before each call."""
    from knowledge.ray_cluster import join_cluster

    ray, started_here = join_cluster(address)
    from graphs.ray_pacing import PacingActor

    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(workers or min(MAX_WORKERS, cpus), concurrency, items or concurrency))
        per_worker = math.ceil(concurrency / n)
        pacing_name = f"zaoshu-pacing-{name}-{uuid.uuid4().hex[:8]}"
        pacing = PacingActor.options(max_concurrency=10_000, name=pacing_name, namespace=NAMESPACE).remote()
        # max_restarts: a dead worker comes back (its items are sent again by WorkerPool.invoke)
        actor = ray.remote(num_cpus=min(1.0, cpus / n), max_restarts=-1, max_task_retries=0,
                           max_concurrency=16)(ItemWorker)  # calls: submit, poll (items run as tasks)
        handles = [actor.options(name=f"zaoshu-worker-{name}-{i}", namespace=NAMESPACE)
                   .remote(setup, pacing_name, n, budget) for i in range(n)]
        pool = WorkerPool(ray, handles, usage, dedup)
        try:
            errors = [e for e in ray.get([w.ready.remote() for w in handles]) if e is not None]
            if errors:  # a worker could not build its Context: the user's mistake, said once
                raise errors[0]
            if console is not None:
                fewer = (f" (--workers {workers}: no more workers than items to run or in flight)"
                         if workers and n < workers else "")
                console.print(f"ray: {n} workers × {per_worker} items in flight on {cpus} CPUs "
                              f"({ray.get_runtime_context().gcs_address}){fewer}", highlight=False)
            yield pool
        finally:
            pool.collect()
            for handle in [*handles, pacing]:
                ray.kill(handle, no_restart=True)
    finally:
        if started_here:
            ray.shutdown()


def run_on_ray(recipe, config, request, run, usage: Usage, options, tracer, items: list[WorkItem],
               console: Console, ctx: Any = None, checkpoint: Callable[[Any], None] | None = None,
               *, run_path: Path) -> RunOutcome:
    """The Ray counterpart of graphs.execute's local run: same Runner, same ledgers, workers in Ray.
    `ctx` (the driver's Context) lends its dedupers, warmed with the run's accepted samples, to the
    last check before a sample is written (graphs.ray_dedup). `checkpoint(runner)`, as in the local
    run, keeps stats.json current as items finish (their worker's usage has come back with them).
    The workers' clients do not see the driver's `usage` as they call: `--budget` is asked of the pacing
    actor before each call (`ItemWorker._cluster_spent`), and checked again as their usage comes back (each
    poll), and then the workers start no call (`WorkerPool._count`). `run_path`:
    the run's folder, for a shard too (its parent holds a knowledge recipe's default index)."""
    from graphs.runner import Runner, install_signal_handlers

    setup = RecipeSetup(recipe, config, request, run_path)
    with worker_pool(setup, usage, concurrency=options.concurrency, workers=request.workers,
                     address=request.ray_address, name=run.path.name, console=console,
                     dedup=RunDedup(getattr(ctx, "deduper_questions", None), getattr(ctx, "deduper_answers", None),
                                    getattr(ctx, "dedup_catch_up", None)),
                     items=sum(1 for item in items if item.id not in run.finished), budget=options.budget) as pool:

        async def main() -> RunOutcome:
            runner = Runner(None, None, run, usage, options, tracer, invoke=pool.invoke,
                            checkpoint=checkpoint and (lambda: checkpoint(runner)))
            install_signal_handlers(runner)
            return await runner.run(items)

        outcome = asyncio.run(main())
    if outcome.reason == "budget":  # the workers' last usage came back as the pool closed: count it
        outcome.message = options.budget.stop_message(usage)
    return outcome
