"""The run directory: append-only JSONL ledgers that survive `kill -9` and make reruns resume.

    runs/<recipe>/<run-name>/
        config.resolved.yaml   settings and recipe config, keys masked
        accepted.jsonl         one Sample per line
        rejected.jsonl         {id, codes, verdict, raw, sample?, meta} — nothing silently dropped
        failed.jsonl           items whose LLM calls failed; retried by the next run
        stats.json             counts, tokens, cost, duration
        checkpoints.sqlite     LangGraph checkpoints (interactive review only)
        run.lock               who is writing: one process at a time (flock; released even by kill -9)

The ledgers are `graphs.ledger.Ledger`s: a killed process leaves whole lines; a torn last line
(power loss) is cut off when a run opens the folder again. A reader
leaves the file alone: `runs show` and `export` skip a line that is not JSON and name it; a dry run
passes over a torn last line, as the run will cut it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from agents.errors import InputError, file_in_the_way, pydantic_problem
from graphs.ledger import Ledger, cut_torn_tail, read_jsonl
from graphs.shards import SHARDS, shard_dirs

log = logging.getLogger(__name__)


class RunLock:
    """An exclusive lock on a run folder, so two processes never append the same items twice.

    `flock` is released by the kernel when its holder dies (even by `kill -9`): a lock file left
    behind names a PID that no longer holds it, and the next run takes it over.
    """

    def __init__(self, folder: Path):
        self.path = folder / "run.lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise InputError(f"run folder {folder} is in use by PID {holder}: wait for that run to finish, "
                             f"stop it, or choose another --out") from None
        previous = os.pread(self._fd, 64, 0).decode(errors="replace").strip()
        if previous and previous != str(os.getpid()):
            log.warning("took over the lock of %s left by PID %s, which no longer holds it", folder, previous)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def lock_held(folder: Path) -> bool:
    """Whether a live process holds the run folder's lock (a reader's test; it takes nothing)."""
    try:
        fd = os.open(Path(folder) / "run.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class RunDir:
    """A run's folder and its ledgers; `finished` holds every id that must not run again.

    Opening one for writing (`lock=True`, the default) takes the folder's `RunLock` and cuts a torn last
    line off each ledger; `close()` releases the lock. A reader (a dry run) passes `lock=False`: it changes
    no file, since a run may be appending, and passes over a torn last line as the run will cut it.
    """

    def __init__(self, path: Path, *, fsync_every: int = 20, lock: bool = True):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = RunLock(self.path) if lock else None
        self.fsync_every = fsync_every
        self.accepted_path = self.path / "accepted.jsonl"
        self.rejected_path = self.path / "rejected.jsonl"
        self.failed_path = self.path / "failed.jsonl"
        self.stats_path = self.path / "stats.json"
        self.config_path = self.path / "config.resolved.yaml"
        self.checkpoints_path = self.path / "checkpoints.sqlite"
        self._ledgers: dict[str, Ledger] = {}
        if lock:
            for ledger in (self.accepted_path, self.rejected_path, self.failed_path):
                cut_torn_tail(ledger)  # before reading, and before any append
        self.accepted_ids = {r["id"] for r in read_jsonl(self.accepted_path, whole=True)}
        self.rejected_codes = Counter()
        self.rejected_ids = set()
        for record in read_jsonl(self.rejected_path, whole=True):
            self.rejected_ids.add(record["id"])
            self.rejected_codes.update(record.get("codes", []))

    @property
    def finished(self) -> set[str]:
        return self.accepted_ids | self.rejected_ids

    def _ledger(self, path: Path) -> Ledger:
        if path.name not in self._ledgers:
            self._ledgers[path.name] = Ledger(path, self.fsync_every)
        return self._ledgers[path.name]

    def accept(self, sample: dict[str, Any]) -> None:
        self._ledger(self.accepted_path).append(sample)
        self.accepted_ids.add(sample["id"])

    def reject(self, record: dict[str, Any]) -> None:
        self._ledger(self.rejected_path).append(record)
        self.rejected_ids.add(record["id"])
        self.rejected_codes.update(record.get("codes", []))

    def fail(self, record: dict[str, Any]) -> None:
        self._ledger(self.failed_path).append(record)

    def write_config(self, data: dict[str, Any]) -> None:
        _atomic_write(self.config_path, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))

    def write_stats(self, data: dict[str, Any]) -> None:
        _atomic_write(self.stats_path, json.dumps(data, ensure_ascii=False, indent=2))

    def read_stats(self) -> dict[str, Any]:
        return load_stats(self.stats_path) or {}

    def close(self) -> None:
        for ledger in self._ledgers.values():
            ledger.close()
        self._ledgers.clear()
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _atomic_write(path: Path, text: str) -> None:
    """Replace `path` whole; the temporary file is this process's own (shards starting or ending at once
    write the run's config.resolved.yaml and stats.json: one shared temporary name let one replace the
    file the other was still writing, and the other's replace found nothing)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def new_run_name() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def resolve_run_dir(root: Path, recipe: str, out: Path | None, fresh: bool, fingerprint: str) -> Path:
    """`--out` wins; else the latest run of this recipe with the same config fingerprint resumes;
    `--fresh` (or a changed config) starts a new run folder.

    A `--out` folder that already holds a run resumes it only when it is this recipe's, made with this
    configuration, and without `--fresh`: anything else would mix two datasets in one ledger.
    """
    if out is not None:
        if (blocker := file_in_the_way(out)) is not None:  # it ended in a FileExistsError / NotADirectoryError
            raise InputError(f"--out {out}: {blocker} is a file, not a folder: choose another --out")
        held = held_run(out)
        if held is None:
            return out
        if held.get("recipe") not in (None, recipe):
            raise InputError(f"{out} holds a run of {held['recipe']}, not of {recipe}: choose another --out")
        if fresh:
            raise InputError(f"--fresh starts a new run, but {out} already holds one: choose another --out, "
                             f"or leave out --fresh to resume it")
        if held.get("fingerprint") not in (None, fingerprint):
            raise InputError(f"{out} holds a {recipe} run made with another configuration (its YAML or a flag "
                             f"such as --judge, --answerer, --knowledge or --name differs): run it as it was made to "
                             f"resume it, or choose another --out")
        return out
    base = root / recipe
    if not fresh and base.exists():
        for run in sorted((p for p in base.iterdir() if p.is_dir()), reverse=True):
            if (load_stats(run / "stats.json") or {}).get("fingerprint") == fingerprint:
                return run
    name = new_run_name()
    path, n = base / name, 2
    while path.exists():  # a run started in the same second (--fresh, or another configuration): its own folder
        path, n = base / f"{name}-{n}", n + 1
    return path


def held_run(folder: Path) -> dict[str, Any] | None:
    """The stats.json of the run in `folder` (its own, or a shard's), or None when it holds no run."""
    for stats in [folder / "stats.json", *sorted(folder.glob(f"{SHARDS}/*/stats.json"))]:
        if (data := load_stats(stats)) is not None:
            return data
    return None


def load_stats(path: Path) -> dict[str, Any] | None:
    """A stats.json as a dict; None when there is none, or it cannot be read as a JSON object (an empty or
    half-written file after a crash or a full disk: a warning names it, and the run's ledgers still stand).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s cannot be read (%s): its run's status, tokens and cost are unknown", path, exc)
        return None
    if not isinstance(data, dict):
        log.warning("%s holds a JSON %s, not an object: its run's status, tokens and cost are unknown",
                    path, type(data).__name__)
        return None
    try:
        _StatsShape.model_validate(data)
    except ValidationError as exc:  # its readers add the numbers up: a traceback, or a resume's budget lost
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        log.warning("%s: key '%s': %s: its run's status, tokens and cost are unknown", path, where,
                    pydantic_problem(error))
        return None
    return data


class _StatsShape(BaseModel):
    """What stats.json's readers print or add up (status, counts, tokens, cost, usage per role) has the type
    they expect; any other key is the writer's business (ruozhiba's `bad_rows`, say)."""

    model_config = ConfigDict(extra="allow", strict=True)  # strict: "12" is no count, True no cost

    recipe: str | None = None
    status: str | None = None
    currency: str | None = None
    accepted: float = 0
    rejected: float = 0
    failed: float = 0
    input_tokens: float = 0
    output_tokens: float = 0
    cached_tokens: float = 0
    cost: float = 0
    duration_s: float = 0
    sessions: float = 0
    usage_by_role: dict[str, dict[str, float]] = {}


def merge_shard_stats(run_dir: Path) -> dict[str, Any]:
    """`shard_stats`, written at the run's top as its stats.json (as a shard ends) so a resume and the
    dataset card find it."""
    merged = shard_stats(run_dir)
    if merged:
        _atomic_write(Path(run_dir) / "stats.json", json.dumps(merged, ensure_ascii=False, indent=2))
    return merged


def read_run_stats(run_dir: Path) -> dict[str, Any]:
    """A run's stats.json, {} when it has none; for a sharded run the shards' stats summed now
    (`shard_stats`): the run's own copy leaves out what a shard still running, or killed, has done."""
    if shard_dirs(run_dir):
        return shard_stats(run_dir)
    return load_stats(Path(run_dir) / "stats.json") or {}


def shard_stats(run_dir: Path) -> dict[str, Any]:
    """The stats of a sharded run: the shards' counts, tokens, cost, usage per role and failures summed,
    the cache share and per-accepted figures recomputed from the sums; `shards` holds each shard's status,
    `stopped` for one that says it is running but whose process is gone (killed), `not started` for one
    of the n that has no folder yet (the run is not whole until every shard has run)."""
    found = {}
    for p in shard_dirs(run_dir):
        if (stats := load_stats(p / "stats.json")) is not None:
            if stats.get("status") in ("preparing", "running") and not lock_held(p):
                stats["status"] = "stopped"
            found[p.name] = stats
    shards = list(found.values())
    if not shards:
        return {}
    merged: dict[str, Any] = {k: shards[0].get(k) for k in ("recipe", "fingerprint", "currency")}
    for key in ("accepted", "rejected", "failed", "input_tokens", "output_tokens", "cached_tokens", "cost", "sessions"):
        merged[key] = sum(s.get(key, 0) for s in shards)
    roles: dict[str, Counter[str]] = {}
    for s in shards:
        for role, usage in (s.get("usage_by_role") or {}).items():
            roles.setdefault(role, Counter()).update(usage)
    merged["usage_by_role"] = {role: dict(usage) for role, usage in roles.items()}
    merged["duration_s"] = max(s.get("duration_s", 0.0) for s in shards)
    codes: Counter[str] = Counter()
    for s in shards:
        codes.update(s.get("rejected_by_code") or {})
    merged["rejected_by_code"] = dict(codes.most_common())
    n = int(next(iter(found)).rsplit("-", 1)[1])
    merged["shards"] = {f"{i}-of-{n}": found.get(f"{i}-of-{n}", {"status": "not started"}).get("status")
                        for i in range(1, n + 1)}
    statuses = set(merged["shards"].values())
    merged["status"] = statuses.pop() if len(statuses) == 1 else "mixed"
    merged["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
    merged.update(per_accepted(merged))  # shares and per-sample figures from the sums, not averaged
    return merged


def per_accepted(stats: dict) -> dict:
    """What one accepted sample cost — calls, tokens, money — over the whole run and per role, and the
    share of prompt tokens the provider served from its cache.

    >>> per_accepted({"accepted": 2, "input_tokens": 1000, "output_tokens": 200, "cached_tokens": 600, "cost": 0.5,
    ...               "usage_by_role": {"critic": {"calls": 4, "input_tokens": 1000, "output_tokens": 200,
    ...                                            "cached_tokens": 600, "cost": 0.5}}})["per_accepted"]["critic"]
    {'calls': 2.0, 'input_tokens': 500.0, 'output_tokens': 100.0, 'cost': 0.25, 'cache_hit_share': 0.6}
    """
    def share(d: dict) -> float:
        return round(d.get("cached_tokens", 0) / d["input_tokens"], 4) if d.get("input_tokens") else 0.0

    accepted = stats.get("accepted") or 0
    roles = stats.get("usage_by_role") or {}
    out: dict = {"cache_hit_share": share(stats), "per_accepted": None}
    if accepted:
        def each(d: dict) -> dict:
            return {"calls": round(d.get("calls", 0) / accepted, 3),
                    "input_tokens": round(d.get("input_tokens", 0) / accepted, 1),
                    "output_tokens": round(d.get("output_tokens", 0) / accepted, 1),
                    "cost": round(d.get("cost", 0.0) / accepted, 8), "cache_hit_share": share(d)}

        total = {"calls": sum(r.get("calls", 0) for r in roles.values()), **stats}
        out["per_accepted"] = {"all": each(total), **{role: each(r) for role, r in roles.items()}}
    return out
