"""zaoshu against distilabel and bespokelabs' curator on the same work: `python -m benchmarks.bench_peers [--quick]`.

Each peer gets its own virtual environment, created here (benchmarks/.peers/<peer>, gitignored)
with `python3 -m venv` + `pip install -c constraints.txt`; a failed install is recorded with its
error line and the benchmark goes on. Every tool runs the same three-calls-per-item workload
(ask → answer → judge returning JSON) against a fresh fake OpenAI-compatible server at the same
latency, with the same concurrency setting, in its own process; the workload scripts are in
benchmarks/peers/. Runs are interleaved (repeat → N → tool) so the ratios are side by side.
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

from benchmarks.common import HERE, REPO, fake_server, fmt, save, spread

# (latency s, N): the grid at 0.5 s, plus one cell where the client's CPU per call starts to matter.
CELLS = ((0.5, 8), (0.5, 64), (0.5, 128), (0.2, 128))
PEERS_DIR = HERE / ".peers"
PEERS: dict[str, dict[str, Any]] = {
    # distilabel 1.5.3 imports requests (and, when logging, bs4) without declaring them.
    "distilabel": {"packages": ["distilabel", "openai", "requests", "beautifulsoup4"],
                   "script": HERE / "peers" / "distilabel_workload.py"},
    "curator": {"packages": ["bespokelabs-curator"], "script": HERE / "peers" / "curator_workload.py"},
}
RUN_TIMEOUT_S = 240


def ensure_venv(name: str) -> dict[str, Any]:
    """Create benchmarks/.peers/<name> and install the peer; reuse it when already installed."""
    spec = PEERS[name]
    venv = PEERS_DIR / name
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    wanted = " ".join(spec["packages"])
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return {"ok": True, "python": str(python), "install_s": 0.0, "version": _version(python, spec["packages"][0])}
    started = time.perf_counter()
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        proc = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--progress-bar", "off",
                               "-c", str(REPO / "constraints.txt"), *spec["packages"]],
                              capture_output=True, text=True, timeout=1200)
    except (subprocess.SubprocessError, OSError) as exc:
        return {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")] or proc.stderr.splitlines()[-1:]
        return {"ok": False, "error": errors[0] if errors else f"pip exited {proc.returncode}"}
    stamp.write_text(wanted)
    return {"ok": True, "python": str(python), "install_s": round(time.perf_counter() - started, 1),
            "version": _version(python, spec["packages"][0])}


def _version(python: Path, package: str) -> str:
    proc = subprocess.run([str(python), "-c", f"from importlib.metadata import version; print(version({package!r}))"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "?"


def run_zaoshu(base_url: str, latency: float, n: int, n_items: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_throughput", "--client", "--base-url", base_url,
           "--latency", str(latency), "--ns", str(n), "--backends", "http", "--repeats", "1", "--no-warmup",
           "--items", str(n_items)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    cell = json.loads(proc.stdout.strip().splitlines()[-1])[0]
    return {k: cell[k] for k in ("items", "accepted", "wall_s", "cpu_s")}


def run_peer(python: str, script: Path, base_url: str, n: int, n_items: int) -> dict[str, Any]:
    cmd = [python, "-W", "ignore", str(script), "--base-url", base_url, "--items", str(n_items),
           "--concurrency", str(n)]
    with tempfile.TemporaryDirectory() as tmp:  # peers write caches and logs into the working directory
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                                  env={**os.environ, "HOME": tmp})
        except subprocess.TimeoutExpired:
            return {"error": f"no result within {RUN_TIMEOUT_S} s"}
    result = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if result is None:
        tail = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        return {"error": tail[-1][:300] if tail else f"exit {proc.returncode}"}
    return json.loads(result[len("RESULT "):])


def run(quick: bool = False) -> dict[str, Any]:
    installs = {name: ensure_venv(name) for name in PEERS}
    tools = ["zaoshu"] + [name for name, info in installs.items() if info["ok"]]
    cells = ((0.5, 64),) if quick else CELLS
    repeats = 1 if quick else 3
    runs: list[dict[str, Any]] = []
    for rep in range(repeats):
        for latency, n in cells:
            n_items = max(4 * n, 32)
            for tool in tools:
                with fake_server(latency) as server:
                    if tool == "zaoshu":
                        res = run_zaoshu(server.base_url, latency, n, n_items)
                    else:
                        res = run_peer(installs[tool]["python"], PEERS[tool]["script"], server.base_url, n, n_items)
                res.update(tool=tool, latency=latency, n=n, repeat=rep, items=n_items, served=server.served,
                           max_in_flight=server.max_in_flight)
                if "error" not in res:
                    res["items_per_s"] = res["accepted"] / res["wall_s"]
                    res["cpu_ms_per_call"] = 1000 * res["cpu_s"] / (3 * n_items)
                print(json.dumps(res, ensure_ascii=False), file=sys.stderr, flush=True)
                runs.append(res)
    return {"installs": installs, "runs": runs, "table": summarize(runs, tools, cells)}


def summarize(runs: list[dict], tools: list[str], cells) -> list[dict]:
    table = []
    for latency, n in cells:
        row: dict[str, Any] = {"latency": latency, "n": n, "ideal_items_per_s": n / (3 * latency)}
        here = [r for r in runs if r["latency"] == latency and r["n"] == n]
        for tool in tools:
            mine = [r for r in here if r["tool"] == tool and "error" not in r]
            errors = [r["error"] for r in here if r["tool"] == tool and "error" in r]
            row[tool] = {"ok_runs": len(mine), "errors": errors}
            if mine:
                row[tool].update({k: spread([r[k] for r in mine]) for k in ("items_per_s", "cpu_ms_per_call")},
                                 accepted=min(r["accepted"] for r in mine), items=mine[0]["items"],
                                 served=spread([r["served"] or 0 for r in mine]),
                                 max_in_flight=spread([r["max_in_flight"] or 0 for r in mine]))
            if tool != "zaoshu":
                pairs = []
                for rep in {r["repeat"] for r in here}:
                    z = next((r for r in here if r["tool"] == "zaoshu" and r["repeat"] == rep), None)
                    p = next((r for r in here if r["tool"] == tool and r["repeat"] == rep), None)
                    if z and p and "error" not in z and "error" not in p and p["items_per_s"] > 0:
                        pairs.append(z["items_per_s"] / p["items_per_s"])
                if pairs:
                    row[tool]["zaoshu_ratio"] = spread(pairs)
        table.append(row)
    return table


NOTES = """\
How each tool runs the workload, and what differs:

- **zaoshu**: `graphs.runner.Runner` over the LangGraph item graph (ask → answer → critique), lean
  aiohttp client, N items in flight; the critique is parsed and validated against `Verdict`
  (with a bounded re-ask), and every sample is appended to the run directory's JSONL ledger as it finishes.
  It runs here without a warm-up, like the peers, so its smallest run carries first-call costs
  (lazy imports, connection pool).
- **distilabel**: a `Pipeline` of `LoadDataFromDicts` → 3 × `TextGeneration` with
  `OpenAILLM(base_url=…, api_key=…)` → a `@step` that parses the judge's JSON. Concurrency is
  `input_batch_size = N` (a batch is sent with `asyncio.gather`); its steps run as separate processes
  over successive batches, so up to 3 batches (≈ 3N requests) can be in flight at once — see the
  server's "max in flight". Its wall time includes starting those processes. Output is written once,
  at the end of the run (a Distiset); items are not resumable one by one.
- **curator**: three `curator.LLM` passes over the dataset (`backend="openai"`,
  `backend_params={"base_url", "max_concurrent_requests": N, …}`); the judge's JSON is parsed in
  `parse()`. curator processes one LLM over the whole dataset before the next, so an item's three
  calls are separated by stage barriers (no per-item pipeline). Offline it cannot load tiktoken's
  `cl100k_base` (it downloads it on first use), so the workload points `TIKTOKEN_CACHE_DIR` at the
  copy litellm ships. It sends one probe request per `LLM` to read rate-limit headers (counted in
  "requests served").
- Neither peer validates the judge's reply against a schema with a re-ask, nor keeps a rejection
  ledger; those parts of zaoshu's work are extra work zaoshu does inside the same numbers.
"""


def markdown(result: dict[str, Any]) -> str:
    installs = result["installs"]
    repeats = 1 + max((r["repeat"] for r in result["runs"]), default=0)
    lines = ["## Peers: zaoshu vs distilabel vs curator on the same workload", "",
             "Fake OpenAI-compatible server, a fresh server process per run; "
             f"3 calls per item; each figure median (min–max) over {repeats} interleaved repeat(s); "
             "ratio = zaoshu items/s ÷ peer items/s within the same repeat. Ideal = N / (3 × latency) items/s. "
             "CPU = user + system time of the tool's processes ÷ LLM calls.", ""]
    for name, info in installs.items():
        lines.append(f"- {name}: " + (f"{info['version']} (own venv; install {info['install_s']} s, 0 = reused)"
                                       if info["ok"] else f"**install failed**: `{info['error']}`"))
    lines += ["", "| latency | N | items | ideal items/s | tool | items/s | accepted | CPU ms/call | requests served "
                  "| server max in flight | zaoshu ÷ tool |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["table"]:
        for tool, r in row.items():
            if not isinstance(r, dict):
                continue
            if not r["ok_runs"]:
                lines.append(f"| {row['latency']:g} s | {row['n']} | | {row['ideal_items_per_s']:.1f} | {tool} | failed: "
                             f"`{(r['errors'] or ['?'])[0]}` | | | | | |")
                continue
            ratio = f"{fmt(r.get('zaoshu_ratio'))}×" if tool != "zaoshu" else "—"
            lines.append(f"| {row['latency']:g} s | {row['n']} | {r['items']} | {row['ideal_items_per_s']:.1f} | {tool} "
                         f"| {fmt(r['items_per_s'], 1)} | {r['accepted']}/{r['items']} | {fmt(r['cpu_ms_per_call'])} "
                         f"| {fmt(r['served'], 0)} | {fmt(r['max_in_flight'], 0)} | {ratio} |")
    lines += ["", NOTES]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 64 at 0.5 s only, one repeat")
    args = parser.parse_args()
    result = run(args.quick)
    save("peers", result)
    print(markdown(result))


if __name__ == "__main__":
    main()
