"""Fault tolerance: `python -m benchmarks.bench_faults [--quick]`.

1. Injected faults. The runner (in this process, lean http client) runs the three-calls-per-item
   workload against the fake server (a thread here) that answers 20 % of requests with 429/5xx,
   5 % with malformed JSON (3 % a truncated response body, 2 % a reply whose content is not JSON)
   and 2 % not within the client's timeout. Failed items are retried by rerunning, as a user would,
   until every item is accepted. Reported: accepted count reached, corrupted ledger lines (must be 0),
   duplicate ids (must be 0), reruns needed, requests spent beyond the 3 per item a fault-free
   run needs, and wall time beside a fault-free run of the same items.
2. kill -9 + resume. `tests/run_worker.py` is started and SIGKILLed at random moments, repeatedly,
   then run to completion. Reported: samples accepted before a kill and missing at the end (lost,
   must be 0), duplicated and corrupted lines (must be 0 and 0), and the requests redone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, fmt, save, spread

FAULTS = {"429": 0.10, "500": 0.04, "502": 0.03, "503": 0.03,  # 20 % 429/5xx
          "malformed": 0.03, "non_json": 0.02,  # 5 % malformed JSON
          "slow": 0.02}  # 2 % timeouts
CLIENT_TIMEOUT_S = 1.0
LATENCY = 0.05


def check_ledger(path: Path) -> dict[str, Any]:
    """Parse every line: corrupted lines, ids, duplicates."""
    ids, corrupted = [], 0
    if path.exists():
        for line in path.read_bytes().split(b"\n"):
            if not line:
                continue
            try:
                ids.append(json.loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                corrupted += 1
    return {"ids": ids, "corrupted": corrupted, "duplicates": len(ids) - len(set(ids))}


async def runner_pass(base_url: str, run: Path, n_items: int, concurrency: int):
    from agents.llm import Usage, make_clients
    from agents.settings import load_settings
    from graphs.rundir import RunDir
    from graphs.runner import Runner, RunOptions
    from tests.three_call_graph import Ctx, build_graph, items

    settings = load_settings(cli={"base_url": base_url, "model": "fake", "max_requests": concurrency,
                                  "max_retries": 6, "timeout": CLIENT_TIMEOUT_S}, env_file=None)
    usage = Usage()
    ctx = Ctx(clients=make_clients(settings, usage=usage))
    runner = Runner(build_graph().compile(), ctx, RunDir(run), usage,
                    RunOptions(concurrency=concurrency, max_consecutive_failures=50))
    return await runner.run(items(n_items))


async def faulty_run(n_items: int, concurrency: int, seed: int, faults: dict[str, float]) -> dict[str, Any]:
    """Run, then rerun (resume) until every item is accepted or 5 passes; count what it cost."""
    from tests.fake_openai import FakeOpenAI
    from tests.three_call_graph import items, script

    with tempfile.TemporaryDirectory() as tmp, \
            FakeOpenAI(reply=script, latency=LATENCY, fault_rates=faults, seed=seed) as server:
        run = Path(tmp) / "run"
        started = time.perf_counter()
        passes = 0
        outcome = None
        while passes < 5:
            passes += 1
            outcome = await runner_pass(server.base_url, run, n_items, concurrency)
            if outcome.accepted + outcome.rejected >= n_items:
                break
        wall = time.perf_counter() - started
        ledger = check_ledger(run / "accepted.jsonl")
        expected = {i.id for i in items(n_items)}
        return {"items": n_items, "accepted": len(set(ledger["ids"])), "rejected": outcome.rejected,
                "all_accepted": set(ledger["ids"]) == expected, "passes": passes,
                "corrupted": ledger["corrupted"], "duplicates": ledger["duplicates"],
                "requests": len(server.requests), "extra_requests": len(server.requests) - 3 * n_items,
                "faults_served": dict(server.faults_served), "wall_s": wall}


def kill_cycles(n_items: int, cycles: int, seed: int) -> dict[str, Any]:
    from tests.fake_openai import FakeOpenAI
    from tests.three_call_graph import script

    rng = random.Random(seed)
    seen_before_kills: set[str] = set()
    worst = {"corrupted": 0, "duplicates": 0}
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(reply=script, latency=LATENCY) as server:
        run = Path(tmp) / "run"

        def start():
            return subprocess.Popen([sys.executable, "-m", "tests.run_worker", "--base-url", server.base_url,
                                     "--run", str(run), "--items", str(n_items), "--concurrency", "8"],
                                    cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        killed_with = []
        for _ in range(cycles):
            proc = start()
            if proc.stdout.readline().strip() != "STARTED":
                raise RuntimeError(f"run_worker did not start: {proc.stdout.read()[-500:]}")
            time.sleep(rng.uniform(0.2, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            ledger = check_ledger(run / "accepted.jsonl")
            killed_with.append(len(ledger["ids"]))
            seen_before_kills |= set(ledger["ids"])
            worst = {k: max(worst[k], ledger[k]) for k in worst}
        proc = start()
        out, _ = proc.communicate(timeout=300)
        final = check_ledger(run / "accepted.jsonl")
        return {"items": n_items, "kills": cycles, "accepted_at_each_kill": killed_with,
                "final_accepted": len(set(final["ids"])), "final_exit": proc.returncode,
                "lost": len(seen_before_kills - set(final["ids"])),
                "duplicates": max(worst["duplicates"], final["duplicates"]),
                "corrupted": max(worst["corrupted"], final["corrupted"]),
                "requests": len(server.requests), "redone_requests": len(server.requests) - 3 * n_items}


def run(quick: bool = False) -> dict[str, Any]:
    n_items, concurrency = (60, 16) if quick else (200, 32)
    repeats = 1 if quick else 3
    pairs = []
    for rep in range(repeats):  # fault-free and faulty side by side, same items
        clean = asyncio.run(faulty_run(n_items, concurrency, seed=rep, faults={}))
        faulty = asyncio.run(faulty_run(n_items, concurrency, seed=rep, faults=FAULTS))
        pairs.append({"clean": clean, "faulty": faulty, "slowdown": faulty["wall_s"] / clean["wall_s"]})
        print(json.dumps(pairs[-1]), file=sys.stderr, flush=True)
    kills = kill_cycles(80 if quick else 200, 3 if quick else 10, seed=7)
    print(json.dumps(kills), file=sys.stderr, flush=True)
    return {"faults": FAULTS, "client_timeout_s": CLIENT_TIMEOUT_S, "latency_s": LATENCY,
            "concurrency": concurrency, "pairs": pairs, "kill": kills}


def markdown(result: dict[str, Any]) -> str:
    faulty = [p["faulty"] for p in result["pairs"]]
    k = result["kill"]
    p_retry = sum(rate for kind, rate in result["faults"].items() if kind != "non_json")
    rates = ", ".join(f"{kind} {rate:.0%}" for kind, rate in result["faults"].items())
    served: dict[str, int] = {}
    for f in faulty:
        for kind, count in f["faults_served"].items():
            served[kind] = served.get(kind, 0) + count
    lines = [
        "## Fault tolerance",
        "",
        f"Injected per request ({rates}; `slow` = no reply within the client's {result['client_timeout_s']:g} s timeout, "
        f"`malformed` = truncated response body, `non_json` = reply content that is not JSON); server latency "
        f"{result['latency_s']:g} s, N = {result['concurrency']}, {faulty[0]['items']} items; "
        f"{len(faulty)} runs with different fault seeds, each beside a fault-free run of the same items. "
        "Items whose calls failed after all retries are retried by rerunning (resume), as a user would.",
        "",
        "| figure | value (median, min–max over runs) | goal |",
        "|---|---|---|",
        f"| accepted / items | {', '.join(str(f['accepted']) + '/' + str(f['items']) for f in faulty)} | all |",
        f"| corrupted ledger lines | {max(f['corrupted'] for f in faulty)} | 0 |",
        f"| duplicate ids | {max(f['duplicates'] for f in faulty)} | 0 |",
        f"| runs needed (1 = no rerun) | {', '.join(str(f['passes']) for f in faulty)} | — |",
        f"| requests sent | {fmt(spread([f['requests'] for f in faulty]), 0)} (fault-free: {3 * faulty[0]['items']}) | — |",
        f"| extra requests | {fmt(spread([100 * f['extra_requests'] / (3 * f['items']) for f in faulty]), 1)} % "
        f"| ≈ {100 * p_retry / (1 - p_retry):.0f} % (one retry per transport fault) |",
        f"| wall time, faulty ÷ fault-free | {fmt(spread([p['slowdown'] for p in result['pairs']]))}× | — |",
        "",
        f"Faults served over all runs: {', '.join(f'{kind} {n}' for kind, n in sorted(served.items()))}.",
        "",
        f"**kill -9 + resume**: `tests/run_worker.py` ({k['items']} items, N = 8) SIGKILLed {k['kills']} times at random "
        f"moments (accepted so far at each kill: {', '.join(map(str, k['accepted_at_each_kill']))}), then run to the end "
        f"(exit {k['final_exit']}): **lost {k['lost']}, duplicated {k['duplicates']}, corrupted lines {k['corrupted']}**; "
        f"final {k['final_accepted']}/{k['items']} accepted; {k['redone_requests']} requests redone "
        f"({100 * k['redone_requests'] / (3 * k['items']):.1f} %: items in flight at a kill start again).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 items, one run, 3 kills")
    args = parser.parse_args()
    # the fake server's thread stops with `slow` replies still sleeping; asyncio logs each as "Task was
    # destroyed but it is pending" — noise, not a result.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    result = run(args.quick)
    save("faults", result)
    print(markdown(result))


if __name__ == "__main__":
    main()
