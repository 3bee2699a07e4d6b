"""Smoke-run each recipe for a few items against a real model and print what a person must read.

    ZAOSHU_SMOKE_BASE_URL=http://127.0.0.1:8899/v1 make smoke-real
    python -m benchmarks.bench_real_model --base-url URL [--model NAME] [--items 4] [--recipes tianji,emollm]

Real models fail in ways scripted replies never do; this is where we see it. Per recipe it reports
accepted and rejected by code, the share of replies that did not parse, seconds, calls and tokens per
accepted sample, and the first accepted outputs in full. The report goes to stdout and to
benchmarks/REAL_MODEL.md (committed by hand after reading it). Not part of CI: it needs a live model.

Each recipe runs through its real command (`python -m recipes.<name>`) on a small copy of its YAML.
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

import yaml

from benchmarks.common import REPO, machine

REPORT = REPO / "benchmarks" / "REAL_MODEL.md"
SHOWN = 3  # accepted outputs printed in full per recipe

#: A few items per recipe that cover its hard cases (elders and peers, festivals and life events; a
#: short and a longer dialogue; a single and a multi-turn question).
SMALL = {
    "tianji": lambda c: {**c, "roles": [r for r in c["roles"] if r["name"] in ("李总", "邻居", "奶奶", "弟弟")],
                         "scenes": ["生日", "中秋节", "乔迁新居"]},
    "emollm": lambda c: {**c, "areas": ["学业", "工作"], "emotions": ["焦虑", "孤独"], "turns": [2, 3]},
    "wulewule": lambda c: {**c, "aspects": ["游戏概述", "主要角色", "棍法类型"], "questions_per_aspect": 2,
                           "multi_turn": {"every": 2, "turns": [2, 2]},
                           "knowledge_folder": str(REPO / "knowledge/bases/wulewule")},
    # a user's own folder (the wulewule Markdown files stand in), no YAML of theirs: tag, chunk and cross-chunk items
    "docqa": lambda c: {**c, "name": "悟了悟了", "knowledge_folder": str(REPO / "knowledge/bases/wulewule")},
}


def small_config(name: str, folder: Path) -> Path:
    config = yaml.safe_load((REPO / "recipes" / name / f"{name}.yaml").read_text(encoding="utf-8"))
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(SMALL[name](config), allow_unicode=True), encoding="utf-8")
    return path


def run_recipe(name: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    out = folder / name
    env = {**os.environ, "ZAOSHU_BASE_URL": args.base_url, "ZAOSHU_MODEL": args.model,
           "ZAOSHU_TIMEOUT": str(args.timeout), "ZAOSHU_MAX_RETRIES": "1", "PYTHONPATH": str(REPO)}
    env.pop("ZAOSHU_PRESET", None)
    command = [sys.executable, "-m", f"recipes.{name}", "--config", str(small_config(name, folder)),
               "--out", str(out), "--limit", str(args.items), "--concurrency", "1"]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=args.budget_s)
    seconds = time.monotonic() - started
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8")) if (out / "stats.json").exists() else {}
    accepted = _lines(out / "accepted.jsonl")
    rejected = _lines(out / "rejected.jsonl")
    roles = stats.get("usage_by_role", {})
    calls = sum(r.get("calls", 0) for r in roles.values())
    unparsed = sum(r.get("unparsed", 0) for r in roles.values())
    codes: dict[str, int] = {}
    for record in rejected:
        for code in record.get("codes") or []:
            codes[code] = codes.get(code, 0) + 1
    return {"recipe": name, "exit": proc.returncode, "seconds": seconds, "accepted": accepted,
            "rejected": rejected, "codes": codes, "calls": calls, "unparsed": unparsed,
            "tokens": stats.get("input_tokens", 0) + stats.get("output_tokens", 0),
            "stderr": proc.stderr.strip().splitlines()[-3:], "stdout": proc.stdout.strip().splitlines()[-2:]}


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def per_accepted(value: float, result: dict[str, Any]) -> str:
    n = len(result["accepted"])
    return f"{value / n:.1f}" if n else "—"


def render(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    m = machine()
    lines = [f"# Real-model smoke run — {args.model} at {args.base_url}", "",
             f"{m['date']} · {m['cpu']} · {m['cores']} cores · up to {args.items} items per recipe, one at a time.",
             "", "| recipe | accepted | rejected (by code) | replies not parsed | s / accepted | calls / accepted "
                 "| tokens / accepted |", "|---|---|---|---|---|---|---|"]
    for r in results:
        codes = ", ".join(f"{c}×{n}" for c, n in sorted(r["codes"].items(), key=lambda x: -x[1])) or "—"
        share = f"{r['unparsed'] / r['calls']:.0%} ({r['unparsed']}/{r['calls']})" if r["calls"] else "—"
        lines.append(f"| {r['recipe']} | {len(r['accepted'])} | {len(r['rejected'])} ({codes}) | {share} | "
                     f"{per_accepted(r['seconds'], r)} | {per_accepted(r['calls'], r)} | "
                     f"{per_accepted(r['tokens'], r)} |")
    for r in results:
        lines += ["", f"## {r['recipe']}: the first accepted outputs, in full", ""]
        if r["exit"] not in (0, None):
            lines.append(f"(the run exited {r['exit']}: {' / '.join(r['stdout'] + r['stderr'])})")
        for sample in r["accepted"][:SHOWN]:
            meta = {k: sample["meta"][k] for k in ("aspect", "role", "scene", "style", "area", "emotion", "item_kind",
                                                   "tag", "ga") if k in sample["meta"]}
            lines.append(f"- `{json.dumps(meta, ensure_ascii=False)}`")
            for turn in sample["turns"]:
                lines.append(f"  - **in:** {turn['input']}")
                lines.append(f"  - **out:** {turn['output']}")
        if not r["accepted"]:
            lines.append("(none accepted)")
        lines += ["", f"Rejected in {r['recipe']}, one line each (codes: the critic's first reasons):", ""]
        for record in r["rejected"][:8]:
            reasons = ((record.get("verdict") or {}).get("reasons") or [])[:2]
            output = ((record.get("sample") or {}).get("turns") or [{}])[-1].get("output", record.get("raw") or "")
            lines.append(f"- {','.join(record.get('codes') or [])}: {'；'.join(reasons)[:120]} — "
                         f"「{str(output)[:90]}」")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("ZAOSHU_SMOKE_BASE_URL"))
    parser.add_argument("--model", default=os.environ.get("ZAOSHU_SMOKE_MODEL", "local"))
    parser.add_argument("--items", type=int, default=4)
    parser.add_argument("--recipes", default="tianji,emollm,wulewule,docqa")
    parser.add_argument("--timeout", type=float, default=900, help="Seconds per LLM call (a small CPU model is slow).")
    parser.add_argument("--budget-s", type=float, default=3600, help="Seconds per recipe before giving up.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave REAL_MODEL.md alone.")
    args = parser.parse_args()
    if not args.base_url:
        print("error: give the model's OpenAI-compatible endpoint: ZAOSHU_SMOKE_BASE_URL=http://127.0.0.1:8899/v1 "
              "(FINDINGS.md: llama.cpp with Qwen2.5-0.5B)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="zaoshu-smoke-") as tmp:
        results = [run_recipe(name, args, Path(tmp)) for name in args.recipes.split(",")]
    report = render(results, args)
    print(report)
    if not args.no_write:
        REPORT.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
