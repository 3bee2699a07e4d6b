"""The Ray runner against the local runner at equal total concurrency: `python -m benchmarks.bench_ray [--quick]`.

The tianji recipe (`python -m recipes.tianji`, two LLM calls per item: responder and judge) runs
against the fake server (its own process) at 0.2 s latency with N items in flight: once with the
local runner (one event loop), once with `--ray --workers 2` (two actors with N/2 each, one pacing
actor, the driver writing the ledgers). Throughput is taken from the server's request arrival
times (first → last + latency), so Ray's start-up (cluster, actors, imports) is left out and
reported apart as the command's wall time. "of ideal" = calls/s ÷ (N / latency).
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

CELLS = ((128, 0.2), (8, 0.2))
MODES = {"local": [], "ray": ["--ray", "--workers", "2"]}


def items_for(n: int) -> int:
    """8 items per slot (16 latency periods: ramp-up and drain cost little); at least 64."""
    return max(8 * n, 64)


def one(mode: str, n: int, latency: float, tmp: Path) -> dict[str, Any]:
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
    done = sum(1 for name in ("accepted.jsonl", "rejected.jsonl")
               for _ in open(tmp / f"{mode}-{n}" / name, encoding="utf-8")) if (tmp / f"{mode}-{n}").exists() else 0
    return {"mode": mode, "n": n, "latency": latency, "items": done, "calls": len(at), "span_s": span,
            "wall_s": wall, "items_per_s": done / span, "of_ideal": (len(at) / span) / (n / latency)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ray", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            for n, latency in CELLS:
                for mode in MODES:  # side by side, alternating
                    folder = Path(tmp) / f"r{rep}"
                    folder.mkdir(exist_ok=True)
                    cell = one(mode, n, latency, folder)
                    cells.append(cell | {"repeat": rep})
                    print(f"# {mode} N={n}: {cell['items_per_s']:.1f} items/s, {cell['of_ideal']:.2f} of ideal",
                          file=sys.stderr, flush=True)
    table = []
    for n, latency in CELLS:
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
    save("ray", {"table": table, "cells": cells, "repeats": repeats})
    lines = ["## ray", "",
             "The Ray runner (`--ray --workers 2`: two actors, one pacing actor, the driver writing the ledgers) "
             "against the local runner at the same total N, tianji recipe (responder + judge per item), fake server "
             "in its own process at 0.2 s. Throughput from the server's request times (start-up excluded; the "
             f"command's whole wall time is given apart). Median (min–max) over {repeats} runs.", "",
             "| N | items | local items/s | local of ideal | ray items/s | ray of ideal | ray ÷ local | wall local / ray |",
             "|---|---|---|---|---|---|---|---|"]
    for row in table:
        lo, ra = row["local"], row["ray"]
        lines.append(f"| {row['n']} | {lo['items']} | {fmt(lo['items_per_s'], 1)} | {fmt(lo['of_ideal'])} | "
                     f"{fmt(ra['items_per_s'], 1)} | {fmt(ra['of_ideal'])} | {fmt(row['ratio'])} | "
                     f"{lo['wall_s']['median']:.0f} s / {ra['wall_s']['median']:.0f} s |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
