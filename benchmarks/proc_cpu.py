"""Where the machine's CPU went during a block: every process's user + system time from /proc, grouped.

    with MachineCpu(driver=os.getpid()) as cpu:
        ...                      # the timed run
    cpu.by_group  →  {"driver": 1.92, "ray::ItemWorker": 3.10, "fake server": 0.81, "raylet": 0.2, …} (CPU seconds)

Linux only (reads /proc/<pid>/stat and cmdline). A process that starts or ends inside the block counts
with the time it had when last seen; other users' processes count under "other processes".

>>> group_of("ray::ItemWorker.run_items", 1, 2)
'ray::ItemWorker'
>>> group_of("/usr/bin/python -m tests.fake_openai --port 1", 1, 2)
'fake server'
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
GROUPS = (("ray::ItemWorker", "ray::ItemWorker"), ("ray::PacingActor", "ray::PacingActor"),
          ("tests.fake_openai", "fake server"), ("raylet", "raylet"), ("gcs_server", "gcs_server"),
          ("ray", "ray (other)"))


def group_of(cmdline: str, pid: int, driver: int | None) -> str:
    """A short name for what a process is, from its command line."""
    if pid == driver:
        return "driver"
    for needle, name in GROUPS:
        if needle in cmdline:
            return name
    return "other processes"


def snapshot(driver: int | None) -> dict[int, tuple[str, float]]:
    """{pid: (group, CPU seconds so far)} for every readable process."""
    out: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        out[int(entry.name)] = (group_of(cmd, int(entry.name), driver), seconds)
    return out


class MachineCpu:
    """CPU seconds per process group between `__enter__` and `__exit__`."""

    def __init__(self, driver: int | None = None):
        self.driver = driver
        self.by_group: dict[str, float] = {}

    def __enter__(self) -> MachineCpu:
        self._before = snapshot(self.driver)
        return self

    def __exit__(self, *exc_info) -> None:
        after = snapshot(self.driver)
        groups: dict[str, float] = {}
        for pid, (group, seconds) in after.items():
            used = seconds - self._before.get(pid, (group, 0.0))[1]
            groups[group] = groups.get(group, 0.0) + max(0.0, used)
        self.by_group = {k: round(v, 2) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}
