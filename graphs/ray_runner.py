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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from agents.errors import InputError, ZaoshuError
from agents.usage import RoleUsage, Usage
from agents.schemas import WorkItem
from graphs.outcome import RunOutcome
from graphs.state import plain

log = logging.getLogger(__name__)

RETRIES = 3  # sends of one item to workers that died under it, before it counts as failed
MAX_WORKERS = 8
NAMESPACE = "zaoshu"  # workers are named zaoshu-worker-<run>-<i> in it (tests kill one by name)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'zaoshu[ray]'") from None
    return ray


class RecipeSetup:
    """What a worker runs, built on the worker: the recipe's item graph and a Context from the resolved
    config (plain data) and that machine's settings. Any picklable `setup(pacing_for) -> (graph, ctx,
    usage)` will do (benchmarks/bench_ray.py passes its own)."""

    def __init__(self, recipe: Any, config: Any, request: Any, run_root: Path, accepted_path: Path):
        self.recipe = recipe
        self.config_data = config.model_dump(mode="json", exclude_unset=True)
        self.config_source = str(config.source)
        self.request, self.run_root, self.accepted_path = request, str(run_root), str(accepted_path)

    def __call__(self, pacing_for: Any) -> tuple[Any, Any, Usage]:
        from graphs.config import load_recipe_config
        from graphs.registry import GRAPHS
        from graphs.rundir import read_jsonl
        from graphs.session import build_context, build_services, resolve_settings

        config = load_recipe_config(self.config_data, self.recipe.config_model, Path(self.config_source))
        config.set_source(Path(self.config_source))
        settings = resolve_settings(config, self.request)  # this machine's environment: keys stay here
        services = build_services(config, settings, Path(self.run_root), Console(file=io.StringIO()))
        usage = Usage()
        ctx = build_context(config, settings, services, usage=usage, accepted=read_jsonl(Path(self.accepted_path)),
                            pacing_for=pacing_for)
        return GRAPHS[self.recipe.graph]().compile(), ctx, usage


class ItemWorker:
    """One event loop running an item graph (a Ray actor: see `worker_pool`)."""

    def __init__(self, setup: Any, pacing: str, workers: int):
        import ray

        from graphs.ray_pacing import ray_pacing_for

        self.id = uuid.uuid4().hex[:8]  # one per (re)start: its usage counts separately
        # the pacing actor by name, not by handle: a handle argument would make Ray keep the constructor
        # arguments in the object store (and warn that a restart may fail)
        actor = ray.get_actor(pacing, namespace=NAMESPACE)
        self.error: ZaoshuError | None = None
        try:
            self.graph, self.ctx, self.usage = setup(ray_pacing_for(actor, workers))
        except ZaoshuError as exc:  # a user mistake (no endpoint, bad key…): one line at the driver
            self.error, self.usage = exc, Usage()

    async def ready(self) -> ZaoshuError | None:
        return self.error

    async def run_item(self, item: WorkItem) -> dict[str, Any]:
        state = await self.graph.ainvoke({"item": item}, context=self.ctx)
        return {"state": {k: plain(state.get(k)) for k in ("status", "sample", "verdict", "raw", "attempts")}
                | {"reject_codes": [getattr(c, "value", str(c)) for c in state.get("reject_codes") or []]},
                "worker": self.id, "usage": self.usage.as_dict()}

    async def usage_now(self) -> tuple[str, dict[str, Any]]:
        return self.id, self.usage.as_dict()


class WorkerPool:
    """The `invoke` of a Runner: send an item to the least busy worker, await its final state."""

    def __init__(self, ray: Any, workers: list[Any], usage: Usage):
        self.ray = ray
        self.workers = workers
        self.busy = [0] * len(workers)
        self.usage = usage
        self._by_worker: dict[str, dict[str, Any]] = {}

    async def invoke(self, item: WorkItem) -> dict[str, Any]:
        from ray.exceptions import RayActorError, RayTaskError

        for attempt in range(1, RETRIES + 1):
            slot = min(range(len(self.workers)), key=self.busy.__getitem__)
            self.busy[slot] += 1
            try:
                reply = await self.workers[slot].run_item.remote(item)
            except RayTaskError as exc:  # the node raised: the runner sorts it as it would locally
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, BaseException) else exc) from None
            except RayActorError as exc:  # the worker died: Ray restarts it; send the item again
                log.warning("worker died under item %s (send %d of %d): %s", item.id, attempt, RETRIES,
                            str(exc).splitlines()[0])
                if attempt == RETRIES:
                    raise
                continue
            finally:
                self.busy[slot] -= 1
            self._count(reply["worker"], reply["usage"])
            return reply["state"]
        raise AssertionError("unreachable")

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
                address: str | None = None, name: str = "run", console: Console | None = None) -> Iterator[WorkerPool]:
    """Workers (and the pacing actor) on a Ray cluster for the length of a `with`; a local cluster is
    started when none is running and `address` is None. `concurrency` items in flight over all workers."""
    ray = _import_ray()
    from graphs.ray_pacing import PacingActor

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=False)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, workers or min(MAX_WORKERS, cpus))
        per_worker = math.ceil(concurrency / n)
        pacing_name = f"zaoshu-pacing-{name}-{uuid.uuid4().hex[:8]}"
        pacing = PacingActor.options(max_concurrency=10_000, name=pacing_name, namespace=NAMESPACE).remote()
        # max_restarts: a dead worker comes back (its items are sent again by WorkerPool.invoke)
        actor = ray.remote(num_cpus=min(1.0, cpus / n), max_restarts=-1, max_task_retries=0,
                           max_concurrency=per_worker)(ItemWorker)
        handles = [actor.options(name=f"zaoshu-worker-{name}-{i}", namespace=NAMESPACE).remote(setup, pacing_name, n)
                   for i in range(n)]
        pool = WorkerPool(ray, handles, usage)
        try:
            errors = [e for e in ray.get([w.ready.remote() for w in handles]) if e is not None]
            if errors:  # a worker could not build its Context: the user's mistake, said once
                raise errors[0]
            if console is not None:
                console.print(f"ray: {n} workers × {per_worker} items in flight on {cpus} CPUs "
                              f"({ray.get_runtime_context().gcs_address})", highlight=False)
            yield pool
        finally:
            pool.collect()
            for handle in [*handles, pacing]:
                ray.kill(handle, no_restart=True)
    finally:
        if started_here:
            ray.shutdown()


def run_on_ray(recipe, config, request, run, usage: Usage, options, tracer, items: list[WorkItem],
               console: Console) -> RunOutcome:
    """The Ray counterpart of graphs.execute's local run: same Runner, same ledgers, workers in Ray."""
    from graphs.runner import Runner, install_signal_handlers

    setup = RecipeSetup(recipe, config, request, Path(run.path).parent, run.accepted_path)
    with worker_pool(setup, usage, concurrency=options.concurrency, workers=request.workers,
                     address=request.ray_address, name=run.path.name, console=console) as pool:

        async def main() -> RunOutcome:
            runner = Runner(None, None, run, usage, options, tracer, invoke=pool.invoke)
            install_signal_handlers(runner)
            return await runner.run(items)

        return asyncio.run(main())
