"""The review page on a 100,000-sample run folder: `python -m benchmarks.bench_review [--samples N] [--quick]`.

Generates the run folder in a temp dir (tests/review_fixture.synthetic_run: 80 % accepted, 15 % rejected,
5 % failed), starts the real `zaoshu review RUN --port 0 --no-browser`, and times page views over HTTP:
the first page, deep pagination, each kind of filter, text search, actions, and a page after the ledgers grew.
Each view runs 5 times; the table gives the median and the slowest. The goal: every page under 1 s.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import REPO, save

REPEATS = 5
VIEWS = [
    ("first page (all files)", ""),
    ("deep page (near the end)", "page={deep}"),
    ("file = rejected", "file=rejected"),
    ("reason code = PREAMBLE", "code=PREAMBLE"),
    ("aspect + tag", "aspect=剧情&tag=新手"),
    ("source file", "source=xiyouji/第014回.txt"),
    ("text search (2 chars)", "q=火焰"),
    ("text search + code + last page", "q=芭蕉&code=UNGROUNDED&page=3"),
    ("no match", "q=不存在的文字"),
]


def _rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024


def _time(client: httpx.Client, url: str) -> tuple[list[float], int, int]:
    times, size, total = [], 0, 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - start)
        r.raise_for_status()
        size = len(r.content)
        m = re.search(r"of ([\d,]+)</span>", r.text)
        total = int(m.group(1).replace(",", "")) if m else 0
    return times, size, total


def bench(samples: int) -> dict:
    from tests.review_fixture import synthetic_run

    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        run = Path(tmp) / "run"
        start = time.perf_counter()
        synthetic_run(run, samples)
        generate_s = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in run.glob("*.jsonl")) / 1e6
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "zaoshu_cli", "review", str(run), "--port", "0", "--no-browser"],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("review page: "):
                    break
            else:
                raise RuntimeError("zaoshu review exited: " + "".join(lines))
            ready_s = time.perf_counter() - start
            url = line.split()[2]
            indexed_s = float(re.search(r" in ([\d.]+) s;", lines[0]).group(1))
            rows = []
            with httpx.Client(base_url=url, timeout=30, headers={"HX-Request": "true"}) as client:
                for name, params in VIEWS:
                    params = params.format(deep=samples // 20 - 5)
                    times, size, total = _time(client, "/?" + params)
                    rows.append({"view": name, "params": params, "matches": total, "kb": round(size / 1024),
                                 "median_ms": round(statistics.median(times) * 1000, 1),
                                 "max_ms": round(max(times) * 1000, 1)})
                # actions: edit 50 samples of the first pages, then filter by them
                page_ids = []
                for page in (1, 2, 3):
                    page_ids += re.findall(r'id="s(\d+)"', client.get(f"/?file=accepted&page={page}").text)
                action_times = []
                for sid in page_ids[:50]:
                    start = time.perf_counter()
                    r = client.post(f"/sample/{sid}/edit", data={"base_rev": 0, "turn": 0, "output": f"改过的答案{sid}"})
                    action_times.append(time.perf_counter() - start)
                    assert "edit saved" in r.text
                reply = r.content
                rows.append({"view": "action: edit a turn (50 samples)", "params": "POST", "matches": 50,
                             "kb": round(len(reply) / 1024),
                             "median_ms": round(statistics.median(action_times) * 1000, 1),
                             "max_ms": round(max(action_times) * 1000, 1)})
                times, size, total = _time(client, "/?review=edited")
                rows.append({"view": "review = edited (after the edits)", "params": "review=edited", "matches": total,
                             "kb": round(size / 1024), "median_ms": round(statistics.median(times) * 1000, 1),
                             "max_ms": round(max(times) * 1000, 1)})
                # the run goes on: 1,000 more lines appear; the next page indexes them
                extra = Path(tmp) / "extra"
                synthetic_run(extra, 1000, seed=99)
                with open(run / "accepted.jsonl", "a", encoding="utf-8") as out:
                    for line in (extra / "accepted.jsonl").read_text(encoding="utf-8").splitlines():
                        record = json.loads(line)
                        record["id"] = "late-" + record["id"]
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                start = time.perf_counter()
                r = client.get("/?file=accepted")
                grown_ms = (time.perf_counter() - start) * 1000
                grown_total = int(re.search(r"of ([\d,]+)</span>", r.text).group(1).replace(",", ""))
                rows.append({"view": "first page after ~800 lines were appended", "params": "file=accepted",
                             "matches": grown_total, "kb": round(len(r.content) / 1024),
                             "median_ms": round(grown_ms, 1), "max_ms": round(grown_ms, 1)})
            rss = _rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return {"samples": samples, "run_mb": round(size_mb, 1), "generate_s": round(generate_s, 1),
            "indexed_s": indexed_s, "ready_s": round(ready_s, 1), "server_rss_mb": round(rss),
            "slowest_ms": max(r["max_ms"] for r in rows), "views": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 samples")
    args = parser.parse_args()
    result = bench(10_000 if args.quick else args.samples)
    path = save("review", result)
    print(f"## Review page ({result['samples']:,} samples)\n")
    print(f"`zaoshu review` on a generated run folder of {result['samples']:,} lines ({result['run_mb']} MB of JSONL): "
          f"index built in {result['indexed_s']} s, URL printed {result['ready_s']} s after start, "
          f"server RSS {result['server_rss_mb']} MB. Each view was requested {REPEATS} times over HTTP; "
          f"the slowest response of all: **{result['slowest_ms']:.0f} ms** "
          f"({'under' if result['slowest_ms'] < 1000 else 'OVER'} the 1 s goal).\n")
    print("| view | query | matches | page KB | median ms | max ms |\n|---|---|---:|---:|---:|---:|")
    for r in result["views"]:
        print(f"| {r['view']} | `{r['params'] or '(none)'}` | {r['matches']:,} | {r['kb']} | {r['median_ms']} | {r['max_ms']} |")
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
