"""Runner throughput against the local OpenAI-compatible server: `python -m benchmarks.bench_throughput [--quick]`.

The three-calls-per-item LangGraph workload (tests/three_call_graph.py: ask → answer → critique with
a structured Verdict) runs through `graphs.runner.Runner` at N = 8, 32, 64, 128 items in flight
against the fake server at a fixed latency (0.2 s, 0.5 s, 2 s), with both chat backends:

- `http`: zaoshu's lean aiohttp client (the default);
- `langchain`: the same graph calling `ChatOpenAI` (the "naive LangGraph + ChatOpenAI" baseline).

The server runs in its own process, and so does the client (one per latency), so the client CPU
time (`time.process_time()` of the client process ÷ LLM calls) counts nothing of the server's.
Each item makes 3 sequential calls, so the ideal is N / (3 × latency) items/s, i.e. N / latency
calls/s; "of ideal" = achieved calls/s ÷ (N / latency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Stopwatch, fake_server, fmt, proc_cpu_seconds, save, spread

LATENCIES = (0.2, 0.5, 2.0)
NS = (8, 32, 64, 128)
BACKENDS = ("http", "langchain")


def items_for(n: int, latency: float) -> int:
    """Items per cell: every worker runs 4 items (12 latency periods; with 2 items, ramp-up and drain
    cost ~10 % at N = 128), 1 item at 2 s (6 s per cell); never fewer than 32."""
    per_worker = 1 if latency >= 2 else 4
    return max(per_worker * n, 32)


async def one_cell(base_url: str, backend: str, n: int, n_items: int, server_pid: int | None = None) -> dict[str, Any]:
    """Run n_items through the Runner with n in flight; wall, client CPU, server CPU and calls."""
    from agents.llm import Usage, make_clients
    from agents.settings import load_settings
    from graphs.rundir import RunDir
    from graphs.runner import Runner, RunOptions
    from tests.three_call_graph import Ctx, build_graph, items

    settings = load_settings(cli={"base_url": base_url, "model": "fake", "max_requests": n, "max_retries": 2,
                                  "timeout": 60}, env_file=None)
    usage = Usage()
    ctx = Ctx(clients=make_clients(settings, backend=backend, usage=usage))
    work = items(n_items, recipe=f"bench-{backend}-{n}")
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(build_graph().compile(), ctx, RunDir(Path(tmp) / "run"), usage, RunOptions(concurrency=n))
        server_cpu = proc_cpu_seconds(server_pid)
        with Stopwatch() as sw:
            outcome = await runner.run(work)
        if server_cpu is not None:
            server_cpu = proc_cpu_seconds(server_pid) - server_cpu
    calls = sum(u.calls for u in usage.roles.values())
    return {"backend": backend, "n": n, "items": n_items, "accepted": outcome.accepted, "calls": calls,
            "wall_s": sw.wall, "cpu_s": sw.cpu, "server_cpu_s": server_cpu, "reason": outcome.reason}


async def client(base_url: str, latency: float, ns: list[int], backends: list[str], repeats: int,
                 warmup: bool = True, n_items: int | None = None, server_pid: int | None = None) -> list[dict]:
    """All cells of one latency, interleaved (repeat → N → backend) so the ratios are side by side."""
    for backend in backends if warmup else ():  # imports, pydantic schemas, connection pools
        await one_cell(base_url, backend, 8, 16)
    cells = []
    for rep in range(repeats):
        for n in ns:
            for backend in backends:
                cell = await one_cell(base_url, backend, n, n_items or items_for(n, latency), server_pid)
                cell.update(latency=latency, repeat=rep)
                cell["items_per_s"] = cell["accepted"] / cell["wall_s"]
                cell["of_ideal"] = (cell["calls"] / cell["wall_s"]) / (n / latency)
                cell["cpu_ms_per_call"] = 1000 * cell["cpu_s"] / max(1, cell["calls"])
                if cell["server_cpu_s"] is not None:
                    cell["server_cpu_ms_per_call"] = 1000 * cell["server_cpu_s"] / max(1, cell["calls"])
                    cell["cpu_busy"] = (cell["cpu_s"] + cell["server_cpu_s"]) / cell["wall_s"]
                cells.append(cell)
                print(json.dumps(cell), file=sys.stderr, flush=True)
    return cells


def run(quick: bool = False) -> dict[str, Any]:
    """The whole grid; one server process and one client process per latency."""
    latencies = (0.2, 0.5) if quick else LATENCIES
    ns = (8, 64) if quick else NS
    cells: list[dict] = []
    for latency in latencies:
        repeats = 1 if quick else (2 if latency >= 2 else 3)
        with fake_server(latency) as server:
            cmd = [sys.executable, "-m", "benchmarks.bench_throughput", "--client", "--base-url", server.base_url,
                   "--latency", str(latency), "--ns", ",".join(map(str, ns)), "--repeats", str(repeats),
                   "--server-pid", str(server.pid)]
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
            if proc.returncode != 0:
                raise RuntimeError(f"throughput client failed at latency {latency}: {proc.stderr[-2000:]}")
            cells += json.loads(proc.stdout.strip().splitlines()[-1])
    return summarize(cells)


def summarize(cells: list[dict]) -> dict[str, Any]:
    table = []
    keys = sorted({(c["latency"], c["n"]) for c in cells})
    for latency, n in keys:
        row: dict[str, Any] = {"latency": latency, "n": n, "ideal_items_per_s": n / (3 * latency)}
        by_rep: dict[int, dict[str, dict]] = {}
        for c in cells:
            if (c["latency"], c["n"]) == (latency, n):
                by_rep.setdefault(c["repeat"], {})[c["backend"]] = c
                row["items"] = c["items"]
        for backend in BACKENDS:
            mine = [r[backend] for r in by_rep.values() if backend in r]
            if mine:
                row[backend] = {k: spread([c[k] for c in mine]) for k in
                                ("items_per_s", "of_ideal", "cpu_ms_per_call", "server_cpu_ms_per_call", "cpu_busy")
                                if all(k in c for c in mine)}
                row[backend]["all_accepted"] = all(c["accepted"] == c["items"] for c in mine)
        both = [r for r in by_rep.values() if all(b in r for b in BACKENDS)]
        if both:  # measured side by side in the same repeat
            row["speedup_http_vs_langchain"] = spread([r["http"]["items_per_s"] / r["langchain"]["items_per_s"]
                                                       for r in both])
        table.append(row)
    return {"cells": cells, "table": table}


def markdown(result: dict[str, Any]) -> str:
    per_latency: dict[float, int] = {}
    for c in result["cells"]:
        per_latency[c["latency"]] = max(per_latency.get(c["latency"], 0), c["repeat"] + 1)
    reps = ", ".join(f"{n} at {lat:g} s" for lat, n in sorted(per_latency.items()))
    lines = [
        "## Throughput: runner × fake OpenAI-compatible server",
        "",
        "Three sequential LLM calls per item (ask → answer → critique with a JSON verdict) through "
        "`graphs.runner.Runner`; server and client in separate processes. Ideal = N / (3 × latency) items/s. "
        f"Each figure: median (min–max) over repeats ({reps}); "
        "a cell is 4 items per worker (1 at 2 s), at least 32 items; "
        "`http` = zaoshu's lean aiohttp client, `langchain` = the same graph with ChatOpenAI. "
        "Client CPU = `process_time` of the client process ÷ LLM calls; server CPU = the fake server process's "
        "CPU ÷ calls; cores busy = (client + server CPU) ÷ wall, for the http cells — the two processes share "
        "this machine's cores, so where that nears the core count the machine, not the client, is the limit.",
        "",
        "| latency | N | items | ideal items/s | http items/s | http of ideal | http CPU ms/call "
        "| ChatOpenAI items/s | ChatOpenAI of ideal | ChatOpenAI CPU ms/call | http ÷ ChatOpenAI "
        "| server CPU ms/call | cores busy (http) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["table"]:
        h, lc = row.get("http"), row.get("langchain")
        lines.append(
            f"| {row['latency']:g} s | {row['n']} | {row['items']} | {row['ideal_items_per_s']:.1f} "
            f"| {fmt(h and h['items_per_s'], 1)} | {fmt(h and h['of_ideal'])} | {fmt(h and h['cpu_ms_per_call'])} "
            f"| {fmt(lc and lc['items_per_s'], 1)} | {fmt(lc and lc['of_ideal'])} | {fmt(lc and lc['cpu_ms_per_call'])} "
            f"| {fmt(row.get('speedup_http_vs_langchain'))}× | {fmt(h and h.get('server_cpu_ms_per_call'))} "
            f"| {fmt(h and h.get('cpu_busy'))} |")
    goal = next((r for r in result["table"] if r["latency"] == 0.5 and r["n"] == 64), None)
    if goal and goal.get("http"):
        h = goal["http"]
        ok_ratio = h["of_ideal"]["median"] >= 0.9
        ok_cpu = max(r["http"]["cpu_ms_per_call"]["median"] for r in result["table"] if r.get("http")) <= 3
        lines += ["", f"Runner goals: ≥ 0.9 of ideal at N = 64, 0.5 s → {h['of_ideal']['median']:.2f} "
                      f"({'met' if ok_ratio else 'MISSED'}); ≤ 3 ms client CPU per call in every cell → "
                      f"{'met' if ok_cpu else 'MISSED'}."]
    waves = [r for r in result["table"] if r.get("http") and r["http"]["of_ideal"]["median"] < 0.9
             and r["http"].get("cpu_busy") and r["http"]["cpu_busy"]["median"] < 0.8]
    if waves:
        cells = ", ".join(
            f"{r['latency']:g} s/N={r['n']}: {r['n']} × {r['http']['cpu_ms_per_call']['median']:.2f} ms / 2 ≈ "
            f"{r['n'] * r['http']['cpu_ms_per_call']['median'] / 2:.0f} ms per call → predicted "
            f"{r['latency'] / (r['latency'] + r['n'] * r['http']['cpu_ms_per_call']['median'] / 2000):.2f}, "
            f"measured {r['http']['of_ideal']['median']:.2f}" for r in waves).replace(", 0.", "; 0.")
        lines += ["", "Where the lean client stays under 0.9 of ideal with the cores mostly idle, the cause is the fake "
                      "server's constant latency: all N calls come back together, and one event loop handles the wave "
                      "one reply at a time, so a call waits on average N × (CPU per call) / 2 before its next request "
                      f"goes out ({cells}). Real endpoints' latencies spread out and soften the waves; less CPU per "
                      "call shortens them."]
    not_all = [f"{r['latency']:g} s/N={r['n']}/{b}" for r in result["table"] for b in BACKENDS
               if r.get(b) and not r[b]["all_accepted"]]
    if not_all:
        lines += ["", f"Cells where not every item was accepted: {', '.join(not_all)}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 latencies × N = 8, 64, one repeat")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--ns", default=",".join(map(str, NS)), help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(BACKENDS), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-warmup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        cells = asyncio.run(client(args.base_url, args.latency, [int(x) for x in args.ns.split(",")],
                                   args.backends.split(","), args.repeats, not args.no_warmup, args.items,
                                   args.server_pid))
        print(json.dumps(cells))
        return
    result = run(args.quick)
    save("throughput", result)
    print(markdown(result))


if __name__ == "__main__":
    main()
