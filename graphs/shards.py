"""Shards: one run folder, several writers. `--shard i/n` writes its ledgers in <run>/shards/i-of-n/
(own lock, own stats); every reader goes through `run_ledgers` / `read_ledger`, so a sharded run
reads as one run, and a shard running at the same time as others learns their new samples from
`OtherShards`. (graphs.rundir sums the shards' stats.)
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agents.errors import InputError
from graphs.ledger import BadLine, Tail, read_jsonl

SHARDS = "shards"


def parse_shard(text: str) -> tuple[int, int]:
    """`"2/4"` → (2, 4): shard 2 of 4, counted from 1.

    >>> parse_shard("1/2")
    (1, 2)
    """
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"cannot read --shard {text!r}: write i/n, e.g. 1/4") from None
    if n < 1 or not 1 <= i <= n:
        raise InputError(f"--shard {text}: i must be between 1 and n (got {i} of {n})")
    return i, n


def shard_of(item_id: str, n: int) -> int:
    """The shard (1..n) an item belongs to: a stable hash of its id, the same on every machine.

    >>> shard_of("abc", 1)
    1
    """
    return int(hashlib.sha1(item_id.encode()).hexdigest()[:12], 16) % n + 1


def shard_path(run_dir: Path, shard: tuple[int, int]) -> Path:
    return Path(run_dir) / SHARDS / f"{shard[0]}-of-{shard[1]}"


def shard_dirs(run_dir: Path) -> list[Path]:
    """The shard folders of a run, in order (none for an unsharded run)."""
    folder = Path(run_dir) / SHARDS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"\d+-of-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[0]))


class OtherShards:
    """What the other shards of a run accept while this one runs (shards may run at the same time, on
    machines that share the run folder): `new_samples()` returns the samples their accepted.jsonl gained
    since the last call. Made before the run's samples are read, so what is there then is not repeated.
    """

    def __init__(self, run_dir: Path, shard: tuple[int, int]):
        self.run_dir, self.own = Path(run_dir), shard_path(run_dir, shard)
        self.tails: dict[Path, Tail] = {}
        self._listed: int | None = None  # the shards folder's mtime when it was last listed
        self._look(at_end=True)

    def new_samples(self) -> list[dict[str, Any]]:
        self._look(at_end=False)  # a shard that started since: all of it is new
        return [record for tail in self.tails.values() for record in tail.new()]

    def _look(self, *, at_end: bool) -> None:
        try:
            listed = (self.run_dir / SHARDS).stat().st_mtime_ns  # a new shard folder changes it
        except FileNotFoundError:
            return
        if listed == self._listed and time.time() - listed / 1e9 > 2:  # not changed, and not within a coarse
            return  # mtime's tick of the last listing (a file system may keep whole seconds)
        self._listed = listed
        for folder in shard_dirs(self.run_dir):
            if folder != self.own and folder not in self.tails:
                self.tails[folder] = Tail(folder / "accepted.jsonl", at_end=at_end)


def check_shards(run_dir: Path, shard: tuple[int, int] | None) -> None:
    """Refuse to mix shard counts (or sharded and unsharded writers) in one run folder."""
    run_dir = Path(run_dir)
    counts = {int(p.name.rsplit("-", 1)[1]) for p in shard_dirs(run_dir)}
    flat = any((run_dir / name).exists() for name in LEDGERS)
    if shard is None:
        if counts:
            raise InputError(f"{run_dir} is sharded {max(counts)} ways: pass --shard i/{max(counts)}")
        return
    n = shard[1]
    if flat:
        raise InputError(f"{run_dir} was run without --shard: rerun it without --shard, or choose another --out")
    if counts - {n}:
        raise InputError(f"{run_dir} is sharded {max(counts - {n})} ways, not {n}: "
                         f"pass --shard i/{max(counts - {n})}, or choose another --out")


LEDGERS = ("accepted.jsonl", "rejected.jsonl", "failed.jsonl")


def run_ledgers(run_dir: Path, name: str) -> list[Path]:
    """Every file of one ledger in a run (`name` e.g. "accepted.jsonl"): the run's own, then each shard's."""
    run_dir = Path(run_dir)
    paths = [run_dir / name, *(p / name for p in shard_dirs(run_dir))]
    return [p for p in paths if p.is_file()]


def read_ledger(run_dir: Path, name: str, bad: list[BadLine] | None = None) -> Iterator[dict[str, Any]]:
    """The records of one ledger over all shards of a run, as if it were one file; a line that is not
    JSON goes to `bad` (each `BadLine` names its file), or without it stops the read."""
    for path in run_ledgers(run_dir, name):
        yield from read_jsonl(path, bad)
