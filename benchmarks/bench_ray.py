"""The Ray runner against the local runner at equal total concurrency: `python -m benchmarks.bench_ray [--quick]`.

Two workloads, each with the fake server in its own process at 0.2 s latency and N items in flight
in total, once with the local runner (one event loop) and once on a local Ray cluster with two
worker actors (N/2 each, one pacing actor, the driver writing the ledgers):

- `graph`: the three-call graph of bench_throughput (ask → answer → critique, lean client): what
  the client side costs. Timed around `Runner.run` (Ray's start-up is left out: the pool is up).
- `recipe`: `python -m recipes.tianji` (responder + judge per item, the rule critic, dedup): a real
  recipe through its command. Timed from the server's request arrival times (first → last + latency);
  the command's whole wall time, start-up included, is given apart.

"of ideal" = calls/s ÷ (N / latency).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, fake_server, fmt, save, spread
from graphs.shards import read_ledger

CELLS = ((128, 0.2), (8, 0.2))
LONG_ITEMS = 4096  # the `graph` cell at N = 128 again, 32 items per slot: start-up ramp and drain weigh ~4× less


class ThreeCallSetup:
    """A worker's graph and Context for the `graph` workload (picklable: built on the worker)."""

    def __init__(self, base_url: str, max_requests: int):
        self.base_url, self.max_requests = base_url, max_requests

    def __call__(self, pacing_for: Any = None):
        from agents.llm import Usage, make_clients
        from agents.settings import load_settings
        from tests.three_call_graph import Ctx, build_graph

        settings = load_settings(cli={"base_url": self.base_url, "model": "fake", "max_requests": self.max_requests,
                                      "max_retries": 2, "timeout": 60}, env_file=None)
        usage = Usage()
        ctx = Ctx(clients=make_clients(settings, usage=usage, pacing_for=pacing_for))
        return build_graph().compile(), ctx, usage


async def graph_cell(mode: str, base_url: str, n: int, n_items: int) -> dict[str, Any]:
    """One `graph` cell in this process: the Runner with the graph here (local) or in 2 Ray workers."""
    import contextlib

    from benchmarks.common import Stopwatch
    from benchmarks.proc_cpu import MachineCpu
    from graphs.rundir import RunDir
    from graphs.runner import Runner, RunOptions
    from tests.three_call_graph import items

    setup = ThreeCallSetup(base_url, n)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if mode == "local":
            graph, ctx, usage = setup()
            runner = Runner(graph, ctx, RunDir(Path(tmp) / "run"), usage, RunOptions(concurrency=n))
        else:
            from agents.llm import Usage
            from graphs.ray_runner import worker_pool

            usage = Usage()
            pool = stack.enter_context(worker_pool(setup, usage, concurrency=n, workers=2, name="bench"))
            warm = Runner(None, None, RunDir(Path(tmp) / "warm"), usage, RunOptions(concurrency=8), invoke=pool.invoke)
            await warm.run(items(16, recipe="warm"))  # imports and connection pools, as the local warm-up
            pool.collect()
            warm_calls = sum(u.calls for u in usage.roles.values())  # worker totals include the warm-up
            runner = Runner(None, None, RunDir(Path(tmp) / "run"), usage, RunOptions(concurrency=n),
                            invoke=pool.invoke)
        if mode == "local":
            await Runner(graph, ctx, RunDir(Path(tmp) / "warm"), usage, RunOptions(concurrency=8)).run(
                items(16, recipe="warm"))
            usage.roles.clear()
            warm_calls = 0
        with MachineCpu(driver=os.getpid()) as cpu, Stopwatch() as sw:
            outcome = await runner.run(items(n_items, recipe=f"bench-{mode}-{n}"))
        if mode != "local":
            pool.collect()
    calls = sum(u.calls for u in usage.roles.values()) - warm_calls
    return {"mode": mode, "n": n, "items": outcome.accepted + outcome.rejected, "calls": calls, "wall_s": sw.wall,
            "items_per_s": (outcome.accepted + outcome.rejected) / sw.wall,
            "of_ideal": (calls / sw.wall) / (n / 0.2), "cpu_s": cpu.by_group}


def graph_one(mode: str, n: int, latency: float, n_items: int | None = None) -> dict[str, Any]:
    """A `graph` cell in its own process (the client's CPU is all its own); `n_items` = items_for(n) unless given."""
    with fake_server(latency) as server:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_ray", "--cell", mode, str(n), server.base_url,
                               "--items", str(n_items or items_for(n))],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                              timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"graph {mode} N={n} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"latency": latency}
MODES = {"local": [], "ray": ["--ray", "--workers", "2"]}


def items_for(n: int) -> int:
    """8 items per slot (16 latency periods: ramp-up and drain cost little); at least 64."""
    return max(8 * n, 64)


def recipe_one(mode: str, n: int, latency: float, tmp: Path) -> dict[str, Any]:
    stamps = tmp / f"{mode}-{n}.json"
    items = items_for(n)
    with fake_server(latency, script="tests.recipe_replies:reply", extra=("--timestamps", str(stamps))) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_"))}
        env.update(ZAOSHU_BASE_URL=server.base_url, ZAOSHU_MODEL="fake", ZAOSHU_MAX_REQUESTS=str(n),
                   PYTHONPATH=str(REPO))
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "recipes.tianji", "--limit", str(items), "--concurrency", str(n),
                               "--out", str(tmp / f"{mode}-{n}"), "--fsync-every", "0", *MODES[mode]],
                              cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} N={n} failed: {proc.stderr[-2000:]}")
    at = sorted(json.loads(stamps.read_text()))
    span = at[-1] + latency - at[0]
    done = sum(1 for _ in read_ledger(tmp / f"{mode}-{n}", "accepted.jsonl")) + \
        sum(1 for _ in read_ledger(tmp / f"{mode}-{n}", "rejected.jsonl"))
    return {"mode": mode, "n": n, "latency": latency, "items": done, "calls": len(at), "span_s": span,
            "wall_s": wall, "items_per_s": done / span, "of_ideal": (len(at) / span) / (n / latency)}


def table_of(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for n, latency in sorted({(c["n"], c["latency"]) for c in cells}, reverse=True):
        row: dict[str, Any] = {"n": n, "latency": latency}
        for mode in MODES:
            mine = [c for c in cells if c["mode"] == mode and c["n"] == n]
            row[mode] = {"items_per_s": spread([c["items_per_s"] for c in mine]),
                         "of_ideal": spread([c["of_ideal"] for c in mine]),
                         "wall_s": spread([c["wall_s"] for c in mine]), "items": mine[0]["items"]}
        pairs = [(r, l) for r in cells for l in cells if r["mode"] == "ray" and l["mode"] == "local"
                 and r["n"] == l["n"] == n and r["repeat"] == l["repeat"]]
        row["ratio"] = spread([r["items_per_s"] / l["items_per_s"] for r, l in pairs])
        table.append(row)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ray", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cell", nargs=3, metavar=("MODE", "N", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        import asyncio

        mode, n, url = args.cell
        print(json.dumps(asyncio.run(graph_cell(mode, url, int(n), args.items or items_for(int(n))))))
        return
    repeats = 1 if args.quick else args.repeats
    results: dict[str, list[dict[str, Any]]] = {"graph": [], "recipe": [], "graph, long run": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            for n, latency in CELLS:
                for mode in MODES:  # side by side, alternating
                    folder = Path(tmp) / f"r{rep}"
                    folder.mkdir(exist_ok=True)
                    for workload, cell in (("graph", graph_one(mode, n, latency)),
                                           ("recipe", recipe_one(mode, n, latency, folder))):
                        results[workload].append(cell | {"repeat": rep})
                        print(f"# {workload} {mode} N={n}: {cell['items_per_s']:.1f} items/s, "
                              f"{cell['of_ideal']:.2f} of ideal, wall {cell['wall_s']:.0f} s", file=sys.stderr, flush=True)
            for mode in MODES:
                cell = graph_one(mode, CELLS[0][0], CELLS[0][1], LONG_ITEMS)
                results["graph, long run"].append(cell | {"repeat": rep})
                print(f"# graph {mode} N={cell['n']}, {cell['items']} items: {cell['of_ideal']:.2f} of ideal",
                      file=sys.stderr, flush=True)
    tables = {workload: table_of(cells) for workload, cells in results.items()}
    save("ray", {"table": tables["graph"], "recipe_table": tables["recipe"], "long_table": tables["graph, long run"],
                 "cells": results, "repeats": repeats})
    lines = ["## ray", "",
             "The Ray runner (`--ray --workers 2`: two actors, one pacing actor, the driver writing the ledgers) "
             "against the local runner at the same total N, fake server in its own process at 0.2 s. "
             f"Median (min–max) over {repeats} runs; ray ÷ local pairs runs side by side.", "",
             "`graph`: the three-call graph of the throughput benchmark (lean client), timed around the run "
             "(workers already up). `recipe`: `python -m recipes.tianji` through its command (responder + judge, "
             "rule critic, dedup), timed from the server's request times; wall = the whole command, start-up "
             f"included. `graph, long run`: the `graph` cell at N = {CELLS[0][0]} with {LONG_ITEMS} items "
             "(steady state: start-up ramp and drain weigh ~4× less).", "",
             "| workload | N | items | local items/s | local of ideal | ray items/s | ray of ideal | ray ÷ local | "
             "wall local / ray |", "|---|---|---|---|---|---|---|---|---|"]
    for workload, table in tables.items():
        for row in table:
            lo, ra = row["local"], row["ray"]
            lines.append(f"| {workload} | {row['n']} | {lo['items']} | {fmt(lo['items_per_s'], 1)} | "
                         f"{fmt(lo['of_ideal'])} | {fmt(ra['items_per_s'], 1)} | {fmt(ra['of_ideal'])} | "
                         f"{fmt(row['ratio'])} | {lo['wall_s']['median']:.0f} s / {ra['wall_s']['median']:.0f} s |")
    lines += ["", *cpu_lines(results["graph"])]
    print("\n".join(lines))


def cpu_lines(cells: list[dict[str, Any]]) -> list[str]:
    """Where the machine's CPU went in the `graph` cells: ms per item per process group (median over
    runs), and the cores busy over the timed run (all groups, other users' processes included)."""
    import statistics

    groups = ("driver", "ray::ItemWorker", "ray::PacingActor", "fake server", "raylet", "gcs_server", "ray (other)",
              "other processes")
    out = ["CPU per item in the `graph` cells (ms, median over runs; /proc times of every process during the "
           "timed run; `other processes` = whatever else ran on the machine):", "",
           "| mode | N | " + " | ".join(groups) + " | cores busy (of 2) |", "|---" * (len(groups) + 3) + "|"]
    for n, _ in CELLS:
        for mode in MODES:
            mine = [c for c in cells if c["mode"] == mode and c["n"] == n]
            per_item = {g: statistics.median([c["cpu_s"].get(g, 0.0) / c["items"] * 1000 for c in mine]) for g in groups}
            busy = statistics.median([sum(c["cpu_s"].values()) / c["wall_s"] for c in mine])
            out.append(f"| {mode} | {n} | " + " | ".join(f"{per_item[g]:.2f}" for g in groups) + f" | {busy:.2f} |")
    return out


if __name__ == "__main__":
    main()
