"""Run every benchmark and write benchmarks/REPORT.md: `python -m benchmarks [--quick] [--only NAME ...]`
(`make bench` runs it).

Benchmarks: throughput, peers, faults (this package's own), knowledge (bench_knowledge.py),
critic (bench_critic.py), critic_quality (bench_critic_quality.py), review (bench_review.py: the review
page on 100,000 samples), cost (bench_cost.py: calls, tokens and money per accepted sample, the prompt
prefix cache; its `--real` part with the local llama.cpp model is run by hand and its table pasted into
REPORT.md) and ray (bench_ray.py: the Ray runner against the local one at equal concurrency), run as
subprocesses in that order. Each one's raw results go to
benchmarks/results/<name>.json and its report section to benchmarks/results/<name>.md; REPORT.md is
assembled from the latest sections, so `--only faults` reruns one benchmark and keeps the others'
last results (each section says when it was measured). Benchmarks are not tests: CI does not run them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import HERE, REPO, RESULTS, fmt, load, machine, save, spread

log = logging.getLogger("benchmarks")

ORDER = ("throughput", "peers", "faults", "knowledge", "critic", "critic_quality", "review", "cost", "ray")
TIMEOUT_S = {"throughput": 1200, "peers": 1500, "faults": 600, "knowledge": 1200, "critic": 900, "critic_quality": 300,
             "review": 600, "cost": 900, "ray": 900}
REPORT = HERE / "REPORT.md"


def command(name: str, quick: bool) -> list[str]:
    if name == "knowledge":  # no --quick there; the hash embedder needs no model and takes seconds
        return [sys.executable, "-m", "benchmarks.bench_knowledge", *(["--embedder", "hash"] if quick else [])]
    return [sys.executable, "-m", f"benchmarks.bench_{name}", *(["--quick"] if quick else [])]


# Benchmarks that repeat nothing inside: extra runs (with these arguments) before the main one, and the
# figures whose median (min–max) over all runs is added to their section.
EXTRA_RUNS = {"critic": (["--no-trace"], 2, [("rules", "samples_per_s"), ("dedup", "texts_per_s")])}


def extra_runs(name: str) -> dict[str, list[float]]:
    args, count, figures = EXTRA_RUNS[name]
    values: dict[str, list[float]] = {f"{a}.{b}": [] for a, b in figures}
    for _ in range(count):
        proc = subprocess.run(command(name, False) + args, cwd=REPO, capture_output=True, text=True,
                              timeout=TIMEOUT_S[name])
        data = load(name)
        if proc.returncode == 0 and data:
            for a, b in figures:
                values[f"{a}.{b}"].append(data[a][b])
    return values


def run_one(name: str, quick: bool) -> dict:
    """Run one benchmark as a subprocess; keep its markdown section (stdout) and timing."""
    started = time.perf_counter()
    log.info("running %s …", name)
    repeats = extra_runs(name) if name in EXTRA_RUNS and not quick else {}
    try:
        proc = subprocess.run(command(name, quick), cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S[name])
        ok, out, err = proc.returncode == 0, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        ok, out, err = False, "", f"timed out after {exc.timeout} s"
    wall = time.perf_counter() - started
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if ok:
        section = out.strip().split("\nwritten: ")[0].strip()
    else:
        last = [ln for ln in err.strip().splitlines() if ln.strip()][-3:]
        section = f"## {name}\n\n**failed** ({'quick' if quick else 'full'} run): \n\n```\n" + "\n".join(last) + "\n```"
    if ok and repeats:
        data = load(name) or {}
        for key, values in repeats.items():
            a, b = key.split(".")
            values.append(data.get(a, {}).get(b))
        section += "\n\nOver " + str(max(len(v) for v in repeats.values())) + " runs (median (min–max)): " + "; ".join(
            f"{key} {fmt(spread([v for v in values if v is not None]), 0)}" for key, values in repeats.items()) + "."
    meta = {"name": name, "ok": ok, "quick": quick, "wall_s": round(wall, 1), "measured": when}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(section + "\n", encoding="utf-8")
    (RESULTS / f"{name}.meta.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")
    log.info("%s: %s in %.0f s", name, "done" if ok else "FAILED", wall)
    return meta


def headline() -> list[str]:
    """The ratios a README can quote, from the saved results (a result whose shape changed is skipped)."""
    lines = []
    for part in (_head_throughput, _head_peers, _head_faults, _head_knowledge, _head_critic, _head_critic_quality,
                 _head_review, _head_ray):
        try:
            lines += part()
        except (KeyError, TypeError, IndexError) as exc:
            log.warning("headline: skipped %s (%s: %s)", part.__name__, exc.__class__.__name__, exc)
    return lines


def _head_throughput() -> list[str]:
    lines = []
    tp = load("throughput")
    if tp:
        for latency, n in ((0.5, 64), (0.2, 128)):
            row = next((r for r in tp["table"] if r["latency"] == latency and r["n"] == n), None)
            if row and row.get("http"):
                text = (f"- Runner, lean client, N = {n} at {latency:g} s: {fmt(row['http']['of_ideal'])} of ideal, "
                        f"{fmt(row['http']['cpu_ms_per_call'])} ms client CPU per LLM call")
                if row.get("speedup_http_vs_langchain"):
                    text += (f"; {fmt(row['speedup_http_vs_langchain'])}× the items/s of the same graph on ChatOpenAI "
                             f"({fmt(row['langchain']['cpu_ms_per_call'])} ms CPU per call)")
                lines.append(text + ".")
    return lines


def _head_peers() -> list[str]:
    lines = []
    peers = load("peers")
    if peers:
        for row in peers["table"]:
            ratios = [f"{fmt(r['zaoshu_ratio'])}× distilabel" if tool == "distilabel" else f"{fmt(r['zaoshu_ratio'])}× curator"
                      for tool, r in row.items() if isinstance(r, dict) and r.get("zaoshu_ratio")]
            if ratios:
                lines.append(f"- Same workload, N = {row['n']} at {row['latency']:g} s: zaoshu items/s = "
                             + ", ".join(ratios) + " (median, min–max).")
    return lines


def _head_faults() -> list[str]:
    lines = []
    faults = load("faults")
    if faults:
        f = [p["faulty"] for p in faults["pairs"]]
        k = faults["kill"]
        rate = 100 * sum(faults["faults"].values())
        lines.append(f"- Under {rate:.0f} % injected faults: {sum(x['accepted'] for x in f)}/{sum(x['items'] for x in f)} accepted, "
                     f"{max(x['corrupted'] for x in f)} corrupted lines, {max(x['duplicates'] for x in f)} duplicates; "
                     f"{k['kills']} × kill -9 + resume: {k['lost']} lost, {k['duplicates']} duplicated.")
    return lines


def _head_knowledge() -> list[str]:
    lines = []
    kb = load("knowledge")
    if kb:
        fused = kb["retrieval"].get("fused", {})
        lines.append(f"- Knowledge ({kb['embedder']}): build {kb['build']['chunks_per_second']} chunks/s, fused recall@5 "
                     f"{fused.get('recall@5')}, query p50 {kb['query_latency_ms']['p50']} ms, no-op rebuild of 1,000 files "
                     f"{kb['noop_rebuild_seconds']['1000_files']} s.")
    return lines


def _head_critic() -> list[str]:
    lines = []
    critic = load("critic")
    if critic and "rules" in critic:
        d = critic.get("dedup", {})
        text = f"- Rule critic: {critic['rules']['samples_per_s']:,} samples/s"
        if d:
            text += (f"; dedup of {d['texts']:,} texts: {d['texts_per_s']:,} texts/s, peak traced memory "
                     f"{d['traced_peak_mb']} MB (RSS growth {d['maxrss_growth_mb']} MB)")
        lines.append(text + " (one run; the section gives the spread over 3).")
    return lines


def _head_critic_quality() -> list[str]:
    quality = load("critic_quality")
    if not quality:
        return []
    clean = quality["clean"]
    return [f"- Rule critic on the labelled corpus ({quality['cases']} cases, {len(quality['classes'])} classes): recall "
            f"{quality['recall']:.3f} (lowest class {quality['min_class_recall']:.2f}), false rejects "
            f"{len(clean['false_rejects'])}/{clean['cases']} on clean controls."]


def _head_review() -> list[str]:
    review = load("review")
    if not review:
        return []
    return [f"- Review page on {review['samples']:,} samples: index built in {review['indexed_s']} s; slowest page "
            f"of {len(review['views'])} views (filters, search, deep pages, actions) {review['slowest_ms']:.0f} ms."]


def _head_ray() -> list[str]:
    ray = load("ray")
    if not ray:
        return []
    return [f"- Ray runner, 2 workers vs the local runner at equal N (0.2 s): " + "; ".join(
        f"N = {row['n']}: {fmt(row['ray']['of_ideal'])} vs {fmt(row['local']['of_ideal'])} of ideal, "
        f"items/s ratio {fmt(row['ratio'])}" for row in ray["table"]) + "."]


def _suite_line() -> str:
    suite = load("suite")
    if not suite:
        return ""
    mode = "quick" if suite["quick"] else "full"
    return f"; the last complete {mode} run (`python -m benchmarks`) took {suite['wall_min']:.1f} min ({suite['date']})"


def write_report() -> Path:
    m = machine()
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    parts = [
        "# zaoshu benchmark report",
        "",
        "Generated by `make bench` (`python -m benchmarks`); rerun it to reproduce. Every figure is the median "
        "(min–max) over repeated runs; ratios are measured side by side in the same run, because absolute "
        "times on shared machines vary. Raw results: `benchmarks/results/*.json` (not committed).",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']} × {m['cores']} logical cores; RAM {m['ram_gib']} GiB; {m['os']}",
        f"- Python {m['python']}; {pkgs}",
        f"- Report written {m['date']}" + _suite_line(),
        "",
    ]
    metas = []
    for name in ORDER:
        meta_path = RESULTS / f"{name}.meta.json"
        if meta_path.exists():
            metas.append(json.loads(meta_path.read_text(encoding="utf-8")))
    if metas:
        parts += ["| benchmark | measured | mode | wall |", "|---|---|---|---|"]
        parts += [f"| {x['name']} | {x['measured']} | {'quick' if x['quick'] else 'full'}{'' if x['ok'] else ', FAILED'} "
                  f"| {x['wall_s']:.0f} s |" for x in metas]
        parts.append("")
    heads = headline()
    if heads:
        parts += ["## Headline", "", *heads, ""]
    for name in ORDER:
        section = RESULTS / f"{name}.md"
        if section.exists():
            parts += [section.read_text(encoding="utf-8").strip(), ""]
        else:
            parts += [f"## {name}", "", "not run yet: `python -m benchmarks --only " + name + "`", ""]
    REPORT.write_text("\n".join(parts), encoding="utf-8")
    return REPORT


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller grids and one repeat (minutes, not a report to quote)")
    parser.add_argument("--only", action="append", choices=ORDER, metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(ORDER)}")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    names = [n for n in ORDER if n in (args.only or ORDER)]
    started = time.perf_counter()
    metas = [run_one(name, args.quick) for name in names]
    total = time.perf_counter() - started
    if not args.only:
        save("suite", {"wall_min": round(total / 60, 1), "quick": args.quick,
                       "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
    path = write_report()
    log.info("wrote %s (%.1f min)", path.relative_to(REPO), total / 60)
    return 0 if all(m["ok"] for m in metas) else 1


if __name__ == "__main__":
    sys.exit(main())
