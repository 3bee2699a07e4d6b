"""Run a recipe end to end: plan (dry run) or lock the run folder, prepare, run, write stats, report.

    code = execute(Wulewule(), RunRequest(limit=10), Console())

What is built for the run comes from graphs.session (the composition root); this module only
orders the steps and talks to the user.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from agents.console import make_console
from graphs.rundir import per_accepted
from graphs.session import (
    RecipeLike,
    RunRequest,
    build_context,
    build_services,
    context_fields,
    fingerprint,
    load_config,
    resolve_settings,
)

log = logging.getLogger(__name__)


def execute(recipe: RecipeLike, request: RunRequest, console: Console | None = None) -> int:
    """Run a recipe; returns the exit code. User errors raise ZaoshuError (one line at the CLI)."""
    from agents.context import Context
    from agents.judge import self_judging_warning
    from agents.llm import Usage
    from agents.settings import ROLES, unpriced_warning
    from graphs.observer import RichTracer
    from graphs.plan import make_plan, render_plan
    from graphs.registry import GRAPHS, calls_per_item
    from graphs.rundir import RunDir, merge_shard_stats, resolve_run_dir
    from graphs.runner import Budget, RunOptions
    from graphs.shards import OtherShards, check_shards, read_ledger, shard_of, shard_path

    console = console or make_console()
    if request.ray and (request.interactive or request.trace or request.trace_file):
        from agents.errors import InputError

        raise InputError("--interactive, --trace and --trace-file show the agent steps in this process, but with "
                         "--ray they run in the Ray workers: drop --ray (or use --shard i/n for a local part)")
    if not request.ray and (request.workers is not None or request.ray_address is not None):
        from agents.errors import InputError

        raise InputError("--workers and --ray-address need --ray")
    if request.shard and request.fresh and request.out is None:  # the other shards could not find it
        from agents.errors import InputError

        raise InputError("--fresh with --shard starts a new run folder for this shard alone: name the run's "
                         "folder with --out, the same for every shard")
    if request.ray:  # a wrong or unreachable --ray-address is one line before anything is built
        from knowledge.ray_cluster import check_address

        check_address(request.ray_address)
    config = load_config(recipe, request)
    settings = resolve_settings(config, request)
    if request.trace_file is not None and not request.dry_run:  # one line before the run folder, not a traceback after
        from graphs.observer import open_trace_file

        open_trace_file(request.trace_file).close()
    budget = Budget.parse(request.budget) if request.budget else None
    print_ = fingerprint(config)
    run_path = resolve_run_dir(Path("runs"), recipe.name, request.out, request.fresh, print_)
    all_items = list(islice(recipe.work_items(config, run_path if run_path.exists() else None), request.limit))
    if settings.concurrency == 1 and request.target is None and request.budget is None:
        # one request at a time, and a run that goes to the end: items sharing a prompt context back to back
        all_items = cache_order(all_items, recipe.shared_context)
    shard = request.shard_spec()
    ledger_path = run_path
    if shard is not None:  # this shard's items, in its own folder with its own lock
        check_shards(run_path, shard)
        all_items = [item for item in all_items if shard_of(item.id, shard[1]) == shard[0]]
        ledger_path = shard_path(run_path, shard)
    elif run_path.exists():
        check_shards(run_path, None)

    if request.dry_run:  # reads an existing run folder, creates nothing
        finished = RunDir(ledger_path, lock=False).finished if ledger_path.exists() else set()
        todo = [item for item in all_items if item.id not in finished]
        ctx = Context(clients={}, **context_fields(config, settings))
        recipe_dict = config.model_dump(mode="json")
        plan = make_plan(recipe.graph, todo, len(all_items) - len(todo), ctx, settings, recipe_dict)
        render_plan(plan, console)
        if warning := unpriced_warning(settings, [role for role, rp in plan.roles.items() if rp.calls]):
            console.print(f"[yellow]{escape(warning)}[/]", highlight=False, soft_wrap=True)
        return 0

    # a cluster that cannot be joined (`auto` with none running, an auth token asked for) stops the run
    # before its folder is made: it left one 'preparing' for ever, and the next command resumed it
    started_ray = _join_ray(request.ray_address, ledger_path, all_items) if request.ray else None
    run = RunDir(ledger_path, fsync_every=request.fsync_every)  # takes the folder's lock, or says who holds it
    if budget is not None:  # a cap on the whole run, as --target counts the run's accepted samples
        budget = budget.over(run.read_stats(), shard=shard and f"{shard[0]}/{shard[1]}")
    try:
        todo = [item for item in all_items if item.id not in run.finished]
        console.print(f"[bold]{recipe.name}[/] → {ledger_path}  ({len(todo)} of {len(all_items)} items to run)")
        # before the folder is marked as this configuration's run: a missing --huixiangdou-url, key or knowledge
        # folder stops here and leaves no run behind, so the same command with the flag fixed starts it
        services = build_services(config, settings, run_path.parent, console)
        resolved = {"recipe": config.model_dump(mode="json", exclude_unset=True),
                    "settings": settings.masked_dump(), "flags": request.dump()}
        run.write_config(resolved)
        if shard is not None:  # the run's own copy, for readers of the whole run (the dataset card)
            RunDir(run_path, lock=False).write_config(resolved)
        earlier = _write_stats(run, None, None, config.recipe, print_, started=time.time(), status="preparing")
        recipe.prepare(config, run_path, console)
        usage = Usage()
        # after prepare: a run with no endpoint configured still leaves the recipe's own outputs
        # the dedupers know every sample the run accepted, the other shards' included, and what those
        # accept while this shard runs (made before the run's samples are read: nothing falls between)
        others = OtherShards(run_path, shard) if shard is not None else None
        ctx = build_context(config, settings, services, usage=usage,
                            accepted=read_ledger(run_path, "accepted.jsonl", []), others=others)
        # the roles this recipe's graph calls (tianji: responder and critic); with no item to run (--limit 0),
        # its first items tell
        probe = all_items[:100] or list(islice(recipe.work_items(config, run_path), 100))
        called = {role for item in probe for role, calls in calls_per_item(item, ctx).items() if calls}
        roles = [role for role in ROLES if role in called] or list(ROLES)
        console.print("models: " + "; ".join(
            f"{role} {c.cfg.model} @ {c.cfg.base_url} (key {'***' if c.cfg.api_key else 'none'})"
            for role, c in ctx.clients.items() if role in roles), highlight=False)
        if warning := self_judging_warning(settings, config.critic.judge, roles):
            console.print(f"[yellow]{warning}[/]", highlight=False)
        if warning := unpriced_warning(settings, roles):
            console.print(f"[yellow]{escape(warning)}[/]", highlight=False, soft_wrap=True)
        recipe.before_run(config, run_path, ctx, console)
        tracer = RichTracer(console, total=len(all_items), trace=request.trace, trace_file=request.trace_file,
                            currency=settings.for_role("asker").currency)
        options = RunOptions(concurrency=settings.concurrency, target=request.target, budget=budget,
                             fail_fast=request.fail_fast(config))
        started = time.time()

        written, trailing = 0.0, None

        def checkpoint(runner) -> None:
            """stats.json current while the run goes, so a kill -9 loses no spending: at most every
            CHECKPOINT_S (one write takes ~1 ms; a fast endpoint finishes hundreds of items a second), and
            what finished since the last write is written at the end of the interval, not when the next
            item finishes (a kill meanwhile lost it)."""
            nonlocal trailing
            wait = written + CHECKPOINT_S - time.monotonic()
            if wait <= 0:
                write_running(runner)
            elif trailing is None:
                trailing = asyncio.get_running_loop().call_later(wait, write_running, runner)

        def write_running(runner) -> None:
            nonlocal written, trailing
            if trailing is not None:
                trailing.cancel()
            written, trailing = time.monotonic(), None
            _write_stats(run, usage, None, config.recipe, print_, started=started, status="running",
                         currency=settings.for_role("asker").currency, earlier=earlier, failed=runner.failed)

        if request.ray and not todo:
            console.print("ray: nothing to run, no worker started", highlight=False)
        if request.ray and todo:  # the same items and ledgers; the graph runs in Ray actors, each with its own Context
            from graphs.ray_runner import run_on_ray

            outcome = run_on_ray(recipe, config, request, run, usage, options, tracer, all_items, console, ctx,
                                 checkpoint, run_path=run_path)  # the run's folder, not a shard's
        else:
            graph = GRAPHS[recipe.graph]().compile()
            outcome = asyncio.run(_run(graph, ctx, run, usage, options, tracer, all_items, request, console,
                                       checkpoint))
        stats = _write_stats(run, usage, outcome, config.recipe, print_, started=started, status=outcome.reason,
                             currency=settings.for_role("asker").currency, earlier=earlier)
        if shard is not None:
            merge_shard_stats(run_path)
        recipe.after_run(config, run_path, console)
    finally:
        run.close()
        if started_ray is not None:
            started_ray.shutdown()
    return _report(outcome, recipe.name, run_path, console, stats, ledger_path, cancelled=usage.cancelled)


def _join_ray(address: str | None, ledger_path: Path, items: list) -> Any:
    """Join (or start) the Ray cluster when some item is left to run; the `ray` module when the cluster was
    started here (the caller shuts it down), else None. The workers then find Ray initialised."""
    from graphs.rundir import RunDir
    from knowledge.ray_cluster import join_cluster

    finished = RunDir(ledger_path, lock=False).finished if ledger_path.exists() else set()
    if all(item.id in finished for item in items):
        return None

    ray, started_here = join_cluster(address)
    return ray if started_here else None


#: Seconds between two writes of stats.json while a run goes.
CHECKPOINT_S = 0.5


def cache_order(items: list, key) -> list:
    """Items with the same `key(item)` next to each other, groups in order of first appearance, each
    group in its own order; items whose key is None keep their place relative to the groups.

    `--limit` is applied before (the recipe's order still decides which items run); only the order
    in which they run changes. Used at `--concurrency 1`: a single-slot server (llama.cpp) keeps only
    the previous request's prompt prefix, so an aspect's questions back to back reuse its context.
    Not with `--target` or `--budget`: a run that stops early covers what the recipe's order puts first.
    At higher concurrency the items stay as the recipe orders them: questions of one aspect in flight
    together would not see each other's questions (duplicates), and a provider caches a prefix only
    once its first request has finished.

    >>> cache_order(["a1", "b1", "c1", "a2", "b2", "x"], lambda s: None if s == "x" else s[0])
    ['a1', 'a2', 'b1', 'b2', 'c1', 'x']
    """
    groups: dict = {}
    for index, item in enumerate(items):
        k = key(item)
        groups.setdefault(("item", index) if k is None else ("key", k), []).append(item)
    return [item for group in groups.values() for item in group]


async def _run(graph, ctx, run, usage, options, tracer, items, request: RunRequest, console: Console,
               checkpoint=None):
    from graphs.runner import Runner, install_signal_handlers

    invoke = None
    if request.interactive:
        from graphs.review import ConsoleReviewer, ReviewInvoker, build_review_graph, review_checkpoints

        checkpoints = review_checkpoints(run.checkpoints_path)
        saver = await checkpoints.__aenter__()
        review_graph = build_review_graph(graph, tracer).compile(checkpointer=saver)
        invoke = ReviewInvoker(review_graph, ConsoleReviewer(console), ctx)
    runner = Runner(graph, ctx, run, usage, options, tracer, invoke=invoke,
                    checkpoint=checkpoint and (lambda: checkpoint(runner)))
    install_signal_handlers(runner)
    try:
        return await runner.run(items)  # it skips the finished ones
    finally:
        if request.interactive:
            await checkpoints.__aexit__(None, None, None)


def _write_stats(run, usage, outcome, recipe: str, print_: str, *, started: float, status: str,
                 currency: str | None = None, earlier: dict | None = None, failed: int = 0) -> dict:
    """stats.json: counts, tokens and cost summed over every session of this run. `earlier`: the
    stats of the sessions before this one (read from the file when not given); with `usage` and no
    `outcome` it is this session so far (the run goes on)."""
    prev = run.read_stats() if earlier is None else earlier
    data = {"recipe": recipe, "fingerprint": print_, "status": status,
            "accepted": len(run.accepted_ids), "rejected": len(run.rejected_ids),
            "rejected_by_code": dict(run.rejected_codes.most_common()),
            "failed": prev.get("failed", 0) + (outcome.failed if outcome else failed),  # over all sessions
            "duration_s": prev.get("duration_s", 0.0), "input_tokens": prev.get("input_tokens", 0),
            "output_tokens": prev.get("output_tokens", 0), "cached_tokens": prev.get("cached_tokens", 0),
            "cost": prev.get("cost", 0.0),
            "usage_by_role": prev.get("usage_by_role", {}), "sessions": prev.get("sessions", 0),
            "currency": currency or prev.get("currency", "¥"), "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    if usage is not None:
        data.update(duration_s=data["duration_s"] + time.time() - started,
                    input_tokens=data["input_tokens"] + usage.input_tokens,
                    output_tokens=data["output_tokens"] + usage.output_tokens,
                    cached_tokens=data["cached_tokens"] + usage.cached_tokens,
                    cost=data["cost"] + usage.cost, sessions=data["sessions"] + 1,
                    message=outcome.message if outcome is not None else "")
        data["usage_by_role"] = {role: dict(u) for role, u in data["usage_by_role"].items()}  # not `earlier`'s
        for role, u in usage.as_dict().items():
            total = data["usage_by_role"].setdefault(role, {})
            for key, value in u.items():
                total[key] = total.get(key, 0) + value
    data.update(per_accepted(data))
    run.write_stats(data)
    return data


def _report(outcome, name: str, run_path: Path, console: Console, stats: dict | None = None,
            ledger_path: Path | None = None, cancelled: int = 0) -> int:
    """The closing lines; `ledger_path` is this shard's folder in a sharded run (resume names the run);
    `cancelled`: this session's LLM requests given up in flight when it stopped.
    Printed with soft_wrap: a terminal wraps them, not rich, so a path or the resume command copies as one line."""
    line = (f"accepted {outcome.accepted} · rejected {outcome.rejected} · failed {outcome.failed} → "
            f"{ledger_path or run_path}/accepted.jsonl")
    if stats and stats.get("per_accepted"):
        console.print(cost_lines(stats), highlight=False, soft_wrap=True)
    if cancelled:
        from agents.usage import calls

        them, their = ("them", "their") if cancelled > 1 else ("it", "its")
        console.print(f"[yellow]{calls(cancelled)} cancelled in flight when the run stopped: the endpoint may bill "
                      f"{them}, and {their} tokens are not in the counts or cost[/]", highlight=False, soft_wrap=True)
    if outcome.reason in ("completed", "target"):
        console.print(f"[green]done[/] ({outcome.reason}): {line}", highlight=False, soft_wrap=True)
        return 0
    args = [a for a in sys.argv[1:] if a != "--fresh"]
    if outcome.reason == "budget":  # rerun with the same cap would stop at once: the message says so
        args = without_option(args, "--budget")
    if "--out" not in args:
        args += ["--out", str(run_path)]
    if outcome.reason == "paused":
        console.print(f"[red]paused[/]: {outcome.message}", highlight=False, soft_wrap=True)
        console.print(line, highlight=False, soft_wrap=True)
        return 1
    resume = shlex.join(["python", "-m", f"recipes.{name}", *args])
    color = "red" if outcome.reason == "fatal" else "yellow"
    console.print(f"[{color}]{outcome.reason}[/]: {outcome.message}", highlight=False, soft_wrap=True)
    console.print(f"{line}\nresume with: {resume}", highlight=False, soft_wrap=True)
    return {"fatal": 1, "interrupted": 130}.get(outcome.reason, 0)


def without_option(args: list[str], name: str) -> list[str]:
    """`args` with `name VALUE` and `name=VALUE` left out.

    >>> without_option(["--out", "r", "--budget", "1 tokens", "--budget=2¥", "--limit", "3"], "--budget")
    ['--out', 'r', '--limit', '3']
    """
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def cost_lines(stats: dict) -> str:
    """The end-of-run summary per accepted sample: overall, then one line per role."""
    cur = stats.get("currency") or "¥"

    def fmt(d: dict) -> str:
        return (f"{d['calls']:.2f} calls · {d['input_tokens']:,.0f} tokens in ({d['cache_hit_share']:.0%} cached)"
                f" / {d['output_tokens']:,.0f} out · {cur}{d['cost']:.5f}")

    per = stats["per_accepted"]
    rows = [f"per accepted sample: {fmt(per['all'])}"]
    rows += [f"  {role:<9} {fmt(d)}" for role, d in per.items() if role != "all"]
    return "\n".join(rows)
