"""What both peer workloads share: their command line, the CPU clock, the RESULT line.

Imported as a sibling module (the scripts run by path inside each peer's venv); no zaoshu import.
"""

import argparse
import json
import resource


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    return parser.parse_args()


def cpu_seconds() -> float:
    """User + system CPU of this process and its children (distilabel runs steps in subprocesses)."""
    self_, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + children.ru_utime + children.ru_stime


def report(**figures) -> None:
    """The one line bench_peers reads: `RESULT {"items": …, "accepted": …, "wall_s": …, "cpu_s": …}`."""
    print("RESULT " + json.dumps(figures), flush=True)
