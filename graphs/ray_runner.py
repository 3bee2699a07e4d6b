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
from pathlib import Path
from typing import Any

from rich.console import Console

from agents.errors import InputError
from agents.llm import RoleUsage, Usage
from agents.schemas import WorkItem
from graphs.outcome import RunOutcome
from graphs.state import plain

log = logging.getLogger(__name__)

RETRIES = 3  # sends of one item to workers that died under it, before it counts as failed
MAX_WORKERS = 8


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'zaoshu[ray]'") from None
    return ray


class ItemWorker:
    """One event loop running the recipe's item graph (a Ray actor: see `_worker_class`)."""

    def __init__(self, recipe: Any, config_data: dict[str, Any], config_source: str, request: Any,
                 run_root: str, accepted_path: str, pacing: Any):
        from graphs.config import load_recipe_config
        from graphs.registry import GRAPHS
        from graphs.ray_pacing import ray_pacing_for
        from graphs.rundir import read_jsonl
        from graphs.session import build_context, build_services, resolve_settings

        self.id = uuid.uuid4().hex[:8]  # one per (re)start: its usage counts separately
        config = load_recipe_config(config_data, recipe.config_model, Path(config_source))
        config.set_source(Path(config_source))
        settings = resolve_settings(config, request)  # this machine's environment: keys stay here
        quiet = Console(file=io.StringIO())
        services = build_services(config, settings, Path(run_root), quiet)
        self.usage = Usage()
        self.ctx = build_context(config, settings, services, usage=self.usage,
                                 accepted=read_jsonl(Path(accepted_path)), pacing_for=ray_pacing_for(pacing))
        self.graph = GRAPHS[recipe.graph]().compile()

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


def _worker_class(ray: Any, per_worker: int):
    return ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0,
                      max_concurrency=per_worker)(ItemWorker)


def run_on_ray(recipe, config, request, run, usage: Usage, options, tracer, items: list[WorkItem],
               console: Console) -> RunOutcome:
    """The Ray counterpart of graphs.execute's local run: same Runner, same ledgers, workers in Ray."""
    ray = _import_ray()
    from graphs.ray_pacing import PacingActor
    from graphs.runner import Runner, install_signal_handlers

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=request.ray_address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=False)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, request.workers or min(MAX_WORKERS, cpus))
        per_worker = math.ceil(options.concurrency / n)
        pacing = PacingActor.options(max_concurrency=10_000).remote()
        worker_cls = _worker_class(ray, per_worker)
        if n > cpus:
            worker_cls = worker_cls.options(num_cpus=cpus / n)  # more workers than CPUs: share them
        source = str(config.source) if getattr(config, "source", None) else str(recipe.config_file)
        workers = [worker_cls.options(name=f"zaoshu-worker-{run.path.name}-{i}", namespace="zaoshu",
                                      lifetime=None).remote(
                       recipe, config.model_dump(mode="json", exclude_unset=True), source, request,
                       str(Path(run.path).parent), str(run.accepted_path), pacing)
                   for i in range(n)]
        ray.get([w.usage_now.remote() for w in workers])  # every worker built its Context (errors surface here)
        console.print(f"ray: {n} workers × {per_worker} items in flight on {cpus} CPUs "
                      f"({ray.get_runtime_context().gcs_address})", highlight=False)
        pool = WorkerPool(ray, workers, usage)

        async def main() -> RunOutcome:
            runner = Runner(None, None, run, usage, options, tracer, invoke=pool.invoke)
            install_signal_handlers(runner)
            return await runner.run(items)

        try:
            outcome = asyncio.run(main())
        finally:
            pool.collect()
            for w in [*workers, pacing]:
                ray.kill(w, no_restart=True)
        return outcome
    finally:
        if started_here:
            ray.shutdown()
