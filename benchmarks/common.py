"""Shared pieces of the benchmark suite: machine description, repeat statistics, the fake server
as a separate process, and result files.

>>> spread([0.9, 1.1, 1.0])
{'median': 1.0, 'min': 0.9, 'max': 1.1, 'n': 3}
>>> fmt(spread([0.9, 1.1, 1.0]), 2)
'1.00 (0.90–1.10)'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
RESULTS = HERE / "results"
KEY_PACKAGES = ("langgraph", "langchain-openai", "openai", "aiohttp", "pydantic", "faiss-cpu",
                "sentence-transformers", "torch", "jieba", "rjieba", "datasketch")


def spread(values: list[float]) -> dict[str, Any]:
    """Median and range of repeated measurements (these machines are noisy: report both)."""
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(s: dict[str, Any] | None, digits: int = 2) -> str:
    """`median (min–max)`; a single measurement prints alone; None prints as a dash."""
    if not s:
        return "—"
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, Python and key package versions, date."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gib = round(int(line.split()[1]) / 1024 ** 2, 1)
    versions = {}
    for name in KEY_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "packages": versions,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerHandle:
    """The running fake server: `base_url`; after the block, `served` requests and `max_in_flight`."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.served: int | None = None
        self.max_in_flight: int | None = None
        self.pid: int | None = None


@contextlib.contextmanager
def fake_server(latency: float, *, script: str = "tests.three_call_graph:script", faults: dict[str, float] | None = None,
                seconds: float = 3600, extra: tuple[str, ...] = ()) -> Iterator[ServerHandle]:
    """The fake OpenAI server in its own process (its CPU is not the client's).

    It stops by itself after `seconds`; at the end of the block it gets SIGINT and reports how many
    chat requests it served and the most it had in flight at once.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "tests.fake_openai", "--port", str(port), "--latency", str(latency),
           "--script", script, "--seconds", str(seconds)]
    for kind, rate in (faults or {}).items():
        cmd += ["--fault", f"{kind}={rate}"]
    cmd += list(extra)
    # SIGINT back to its default in the child: started from a background job, it would inherit "ignore"
    # and never print its counts.
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = proc.stdout.readline()
    if "fake OpenAI server on" not in line:
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line}{proc.stdout.read()}")
    handle = ServerHandle(f"http://127.0.0.1:{port}/v1")
    handle.pid = proc.pid
    try:
        yield handle
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        m = re.search(r"served (\d+) chat requests; max in flight (\d+)", out or "")
        if m:
            handle.served, handle.max_in_flight = int(m.group(1)), int(m.group(2))


def save(name: str, data: dict[str, Any]) -> Path:
    """Write benchmarks/results/<name>.json (gitignored raw results)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def proc_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of another process (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stopwatch:
    """Wall and CPU time of this process over a block: `with Stopwatch() as sw: ...; sw.wall, sw.cpu`."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
