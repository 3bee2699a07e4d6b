"""The real-model part of `python -m benchmarks.bench_cost` (`--real`, `--real-only`): one recipe on our
own llama-cpp-python server, the older prompt layout then HEAD's, same server, same run; the server's
log gives the prompt tokens it reused and its own timings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.bench_cost import BEFORE, REPO, WAVE4, config_for, extract_before, run_recipe
from benchmarks.common import free_port

LLAMA = Path("/work/llm/venv/bin/python"), Path("/work/llm/qwen-coder-0.5b-q4km.gguf")


def llama_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2):
            return True
    except OSError:
        return False


def start_llama(log_path: Path, port: int, cache: bool) -> subprocess.Popen:
    """Our own llama-cpp-python server on a port nobody else uses (no other client shares its slot)."""
    python, model = LLAMA
    cmd = [str(python), "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "8192", "--n_threads", "2", "--chat_format", "chatml"]
    if cache:
        cmd += ["--cache", "true"]
    proc = subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    if cache:  # llama-cpp-python 0.3.36's RAM cache grew past 8 GB in minutes here, whatever --cache_size said
        threading.Thread(target=memory_watchdog, args=(proc, log_path), daemon=True).start()
    for _ in range(180):
        if llama_up(f"http://127.0.0.1:{port}/v1"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(1)
    proc.terminate()
    raise RuntimeError(f"the llama.cpp server did not come up (see {log_path})")


#: The server's resident memory at which the watchdog kills it (the machine has 24 GB).
MAX_SERVER_RSS_GB = 6.0


def memory_watchdog(proc: subprocess.Popen, log_path: Path) -> None:
    """Kill the server when its resident memory passes MAX_SERVER_RSS_GB; say so in its log."""
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status.read_text()).group(1))
        except (OSError, AttributeError):
            return
        if rss_kb > MAX_SERVER_RSS_GB * 1024 * 1024:
            proc.kill()
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(f"\nwatchdog: killed the server at {rss_kb / 1024 / 1024:.1f} GB resident\n")
            return
        time.sleep(1)


def server_log(log_path: Path, offset: int) -> dict:
    """What the server's log says about the requests since `offset`: prompt tokens reused (prefix-match hits,
    or a RAM-cache hit) and evaluated, and its own timings (prompt eval, total) per request."""
    text = log_path.read_text(encoding="utf-8", errors="replace")[offset:]
    hits = [(int(a), int(b)) for a, b in re.findall(r"(\d+) prefix-match hit, remaining (\d+) prompt tokens", text)]
    prompt_ms = [float(x) for x in re.findall(r"prompt eval time =\s*([\d.]+) ms", text)]
    total_ms = [float(x) for x in re.findall(r"total time =\s*([\d.]+) ms", text)]
    return {"requests": len(re.findall(r'"POST /v1/chat/completions', text)),
            "prefix_matches": len(hits), "reused_tokens": sum(a for a, _ in hits),
            "evaluated_tokens": sum(b for _, b in hits),
            "cache_hits": len(re.findall(r"cache hit", text)),
            "prompt_eval_s": round(sum(prompt_ms) / 1000, 1), "server_total_s": round(sum(total_ms) / 1000, 1)}


def extract_head(root: Path) -> tuple[Path, str]:
    """The committed tree (HEAD) for the "after" layout: edits made during a long run do not leak into it."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    return extract_before(root, "HEAD", name="after"), commit


def real_runs(root: Path, cache: bool = False, items: int = 3, recipe: str = "tianji") -> dict:
    """One recipe on our own llama.cpp server: the older layout, then HEAD's, same server, same run.

    tianji compares the layout before any reordering (BEFORE) with HEAD; wulewule compares wave 4's
    (WAVE4: follow-ups and answers not yet asked and written from the aspect's passages) with HEAD."""
    port = free_port()
    log_path = root / "llama.log"
    if recipe == "wulewule":
        older = ("wave 4", extract_before(root, WAVE4, "wave4"))
    else:
        older = ("before", root / "before" if (root / "before").exists() else extract_before(root))
    after, commit = extract_head(root)
    load = os.getloadavg()
    server = start_llama(log_path, port, cache)
    results: dict = {"_server": {"cache": cache, "port": port, "after_commit": commit, "recipe": recipe,
                                 "older_commit": WAVE4 if recipe == "wulewule" else BEFORE,
                                 "loadavg_start": [round(x, 2) for x in load]}}
    try:
        for layout, tree in (older, ("after", after)):
            config, _ = config_for(recipe, root, quick=True, real=True, tag=tree.name)
            offset = len(log_path.read_text(encoding="utf-8", errors="replace"))
            env = {"ZAOSHU_BASE_URL": f"http://127.0.0.1:{port}/v1", "ZAOSHU_MODEL": "qwen2.5-coder-0.5b",
                   "ZAOSHU_TIMEOUT": "900", "ZAOSHU_MAX_RETRIES": "1", "ZAOSHU_MAX_TOKENS": "512"}
            run = run_recipe(tree, recipe, config, ["--limit", str(items)], root / f"real-{tree.name}", env, 1500)
            calls = sum(r["calls"] for r in run["usage_by_role"].values())
            srv = server_log(log_path, offset)
            run.update(calls=calls, s_per_call=round(run["wall_s"] / max(calls, 1), 1),
                       s_per_accepted=round(run["wall_s"] / run["accepted"], 1) if run["accepted"] else None,
                       s_per_item=round(run["wall_s"] / max(run["accepted"] + run["rejected"], 1), 1),
                       server=srv, loadavg_end=[round(x, 2) for x in os.getloadavg()])
            results[layout] = run
            print(f"real {layout}: {run}", file=sys.stderr)
    finally:
        code = server.poll()  # None: still up; a number: it died during the run
        server.terminate()
        server.wait(30)
        kept = REPO / "benchmarks/results" / f"llama-{recipe}{'-cache' if cache else ''}.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(log_path.read_bytes())  # the server's own account, kept beside the results
        if code is not None:
            print(f"the llama.cpp server exited with {code} during the run; its log: {kept}", file=sys.stderr)
    return results


REAL_KEYS = ("real", "real_cache", "real_wulewule", "real_wulewule_cache")


def real_table(real: dict) -> list[str]:
    srv = real.get("_server", {})
    recipe = srv.get("recipe", "tianji")
    older = next(k for k in real if not k.startswith("_") and k != "after")
    cache = "`--cache true` (a RAM cache of many prefixes)" if srv.get("cache") else "no `--cache` (one slot: only the previous request's prefix is kept)"
    lines = [f"Real model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M on llama-cpp-python 0.3, 2 threads), our own server on a free "
             f"port with no other client, {cache}; {recipe}, {older} layout (commit {srv.get('older_commit', BEFORE)}) then "
             f"HEAD's (commit {srv.get('after_commit')}), "
             f"same server, same run; load average at the start {srv.get('loadavg_start')}. Reused / evaluated: prompt "
             "tokens the server's log reports as prefix-match hits / still to evaluate; server s: its own prompt-eval "
             "and total time summed over the phase's requests:", "",
             "| layout | accepted / items | calls (server requests) | s per call | s per item | s per accepted | "
             "prompt tokens reused / evaluated | server prompt-eval s / total s (prompt-eval s per request) | "
             "rejected by code | load avg at end |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for layout in (older, "after"):
        run = real.get(layout)
        if not run:
            continue
        s = run.get("server") or {}
        per_acc = f"{run['s_per_accepted']}" if run["s_per_accepted"] is not None else "– (none accepted)"
        lines.append(f"| {layout} | {run['accepted']} / {run['accepted'] + run['rejected']} | {run['calls']} "
                     f"({s.get('requests')}) | {run['s_per_call']} | {run['s_per_item']} | {per_acc} | "
                     f"{s.get('reused_tokens', 0):,} / {s.get('evaluated_tokens', 0):,} | "
                     f"{s.get('prompt_eval_s')} / {s.get('server_total_s')} "
                     f"({(s.get('prompt_eval_s') or 0) / max(s.get('requests') or 1, 1):.2f}) | "
                     f"{', '.join(f'{k} {v}' for k, v in (run.get('rejected_by_code') or {}).items()) or '–'} | "
                     f"{run.get('loadavg_end')} |")
    return lines
