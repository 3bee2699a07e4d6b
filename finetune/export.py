"""Export a run's accepted samples to a training format, and describe a dataset file (finetune.merge joins runs).

    zaoshu export runs/wulewule/r1 --format xtuner --split 0.7 --seed 42
    → runs/wulewule/r1/exports/xtuner/train.jsonl, test.jsonl

>>> seeded_split(list("abcdefghij"), 0.7, seed=42)
(['h', 'd', 'c', 'i', 'f', 'g', 'j'], ['e', 'a', 'b'])

The split is reproducible: items are sorted by `key` (a sample's id) when given — so the order in
which a concurrent run appended them does not matter — then shuffled with `random.Random(seed)`;
the first `floor(n × split + 0.5)` go to train (240 × 0.7 → 168 train, 72 test), the rest to test,
and each side keeps at least one (14 × 0.99 → 13 train, 1 test, not 14 and an empty test file).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agents.errors import InputError
from agents.schemas import Sample
from finetune.formats import (FORMATS, LLAMA_FACTORY_FORMATS, dataset_info_entry, detect_format, from_record,
                              preference_format, to_format)
from graphs.ledger import NOT_UTF8, BadLine, jsonl_lines

log = logging.getLogger(__name__)
T = TypeVar("T")


def read_records(path: Path) -> tuple[list[tuple[int, Any]], list[BadLine]]:
    """Read a `.jsonl` file (or a `.json` array) into `(line_number, value)` pairs plus the lines that are not JSON.

    Blank lines are skipped without complaint; invalid JSON never raises, it is returned as a `BadLine`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                raise InputError(f"{path} is not valid UTF-8 JSON: {exc}") from exc
            # one JSON value, then another: JSON Lines under a .json name, as datasets are often named
            bad: list[BadLine] = []
            return list(jsonl_lines(path, bad)), bad
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not valid UTF-8 JSON: {exc}") from exc
        if not isinstance(data, list):
            raise InputError(f"{path} must hold a JSON array of records")
        return list(enumerate(data, start=1)), []
    bad: list[BadLine] = []
    return list(jsonl_lines(path, bad)), bad


def refuse_non_utf8(path: Path, bad: Sequence[BadLine]) -> None:
    """InputError when lines of `path` are not UTF-8 (a file saved as GBK, say): every reader after this one,
    XTuner's included, reads UTF-8, so the whole file wants converting rather than its lines skipping.

    >>> refuse_non_utf8(Path("t.jsonl"), [BadLine(1, "not UTF-8 text"), BadLine(3, "not UTF-8 text")])
    Traceback (most recent call last):
    agents.errors.InputError: t.jsonl: lines 1, 3 are not UTF-8 text; convert the file, e.g. `iconv -f gbk -t utf-8 t.jsonl > t.utf8.jsonl`
    """
    lines = [b.line for b in bad if b.reason == NOT_UTF8]
    if lines:
        shown = ", ".join(map(str, lines[:10])) + ("…" if len(lines) > 10 else "")
        raise InputError(f"{path}: line{'s' if len(lines) > 1 else ''} {shown} {'are' if len(lines) > 1 else 'is'} "
                         f"not UTF-8 text; convert the file, e.g. `iconv -f gbk -t utf-8 {path} > "
                         f"{path.with_suffix('.utf8' + path.suffix)}`")


def read_samples(path: Path, *, recipe: str = "imported") -> tuple[list[Sample], list[BadLine]]:
    """Read any supported file (accepted.jsonl or an export) as Samples; unusable lines become `BadLine`s."""
    records, bad = read_records(path)
    samples = []
    for number, record in records:
        try:
            samples.append(from_record(record, recipe=recipe))
        except InputError as exc:
            bad.append(BadLine(number, str(exc), path))
    bad.sort(key=lambda b: b.line)  # the caller says them: a logged line here was a second, unstyled one
    return samples, bad


def seeded_split(items: Sequence[T], split: float, seed: int = 42,
                 key: Callable[[T], Any] | None = None) -> tuple[list[T], list[T]]:
    """Shuffle with `random.Random(seed)` (after sorting by `key` if given) and cut at `floor(n × split + 0.5)`,
    moved to 1 or n − 1 where it would leave a side empty; fewer than 2 items cannot be split.

    >>> [len(part) for part in seeded_split(range(14), 0.99)]
    [13, 1]
    """
    if not 0 < split < 1:
        raise InputError(f"--split must be between 0 and 1 (exclusive), got {split}")
    ordered = sorted(items, key=key) if key else list(items)
    if len(ordered) < 2:
        raise InputError(f"--split {split} needs at least 2 samples, one for train and one for test; "
                         f"there {'is' if len(ordered) == 1 else 'are'} {len(ordered)}")
    random.Random(seed).shuffle(ordered)
    cut = min(max(math.floor(len(ordered) * split + 0.5), 1), len(ordered) - 1)
    return ordered[:cut], ordered[cut:]


def write_records(path: Path, records: Iterable[dict[str, Any]], *, as_json: bool = False) -> int:
    """Write records as JSONL (or one JSON array) in UTF-8 with Chinese kept readable; atomic replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(records)
    # not mkstemp: its file is 0600 whatever the umask, and the export is for other users and jobs to read
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "x", encoding="utf-8") as handle:
        if as_json:
            json.dump(rows, handle, ensure_ascii=False, indent=2)
            handle.write("\n")
        else:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(tmp, path)
    return len(rows)


@dataclass
class ExportReport:
    """What `export_run` wrote: one file per split name (`train`/`test` or `all`) and its record count."""

    fmt: str
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    bad_lines: list[BadLine] = field(default_factory=list)
    dataset_info: Path | None = None
    review: dict[str, int] = field(default_factory=dict)  # review.jsonl: samples edited / dropped / added
    balanced: str = ""  # with --balance: what was kept of what


def accepted_paths(run_dir: Path, command: str = "export") -> list[Path]:
    """The accepted.jsonl files of a run: its own, or one per shard (`--shard i/n`); none for a run that
    accepted nothing. A folder is a run by its ledgers or stats.json, its own or a shard's; `command`
    (export, card) is the one the error for a file names."""
    from graphs.shards import LEDGERS, run_ledgers

    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise InputError(f"{run_dir} is a file, and {command} reads a run folder (runs/<recipe>/<run-name>/): "
                         f"zaoshu merge {run_dir} --out FOLDER, then zaoshu {command} FOLDER")
    if not run_dir.is_dir():
        raise InputError(f"run directory not found: {run_dir}")
    if not any(run_ledgers(run_dir, name) for name in (*LEDGERS, "stats.json")):
        raise InputError(f"{run_dir} has no accepted.jsonl, rejected.jsonl or stats.json; "
                         f"is it a run directory (runs/<recipe>/<run-name>/)?")
    return run_ledgers(run_dir, "accepted.jsonl")


def read_run_samples(run_dir: Path, command: str = "export") -> tuple[list[Sample], list[BadLine]]:
    """Every accepted Sample of a run, all shards read as one run; unusable lines become `BadLine`s."""
    samples: list[Sample] = []
    bad: list[BadLine] = []
    for path in accepted_paths(run_dir, command):
        more, more_bad = read_samples(path)
        samples += more
        bad += more_bad
    return samples, bad


def export_run(run_dir: Path, fmt: str, split: float | None = None, seed: int = 42,
               keep_meta: bool = False, as_json: bool = False, with_reasoning: bool = False,
               ignore_review: bool = False, balance: str | None = None, per_tag: int = 50) -> ExportReport:
    """Export `<run_dir>/accepted.jsonl` to `<run_dir>/exports/<fmt>/` (train/test files, or all.* without a split).

    For LLaMA-Factory formats (openai, alpaca, sharegpt) a `dataset_info.json` is written beside the data,
    so that folder can be LLaMA-Factory's `dataset_dir`. Files from an earlier export of this format are replaced.
    `with_reasoning` puts each turn's reasoning in (see `finetune.formats`); the preference formats
    (dpo, kto, xtuner-dpo) are `finetune.preference.export_preferences`'s.
    The reviewer's decisions in `review.jsonl` apply (edits, rejections, accepted rejects) unless `ignore_review`.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    samples, bad = read_run_samples(run_dir)
    review: dict[str, int] = {}
    if not ignore_review:
        from graphs.review_ledger import apply_review

        samples, review = apply_review(run_dir, samples, bad)
    if not samples:
        why = (f" (no line of accepted.jsonl is usable: {bad[0]}{'; …' if len(bad) > 1 else ''})" if bad
               else " (the reviewer rejected them)" if review.get("dropped") else "")
        raise InputError(f"{run_dir} has no accepted samples{why}: nothing to export as {fmt}")
    note = ""
    if balance is not None:
        kept = balanced(samples, balance, per_tag, seed)
        values = len({str(_lookup(s, {}, balance)) for s in kept})
        note = (f"--balance {balance}: {len(kept)} of {len(samples)} samples kept, at most {per_tag} for each of "
                f"{values} values (samples without meta.{balance} left out)")
        samples = kept
    if split is None:
        parts = {"all": sorted(samples, key=lambda s: s.id)}
    else:
        train, test = seeded_split(samples, split, seed, key=lambda s: s.id)
        parts = {"train": train, "test": test}

    report = ExportReport(fmt=fmt, out_dir=run_dir / "exports" / fmt, bad_lines=bad, review=review, balanced=note)
    records = {name: (to_format(s, fmt, keep_meta=keep_meta, with_reasoning=with_reasoning) for s in part)
               for name, part in parts.items()}
    write_export(report, records, as_json=as_json, info_entry=(
        lambda name, file: dataset_info_entry(f"{run_dir.name}_{name}", file, fmt))
        if fmt in LLAMA_FACTORY_FORMATS else None)
    log.info("exported %s to %s: %s", run_dir, report.out_dir, report.counts)
    return report


def write_export(report: ExportReport, parts: dict[str, Iterable[dict[str, Any]]], *, as_json: bool,
                 info_entry: Callable[[str, str], dict[str, Any]] | None = None) -> ExportReport:
    """Write each part (`train`/`test` or `all`) to `report.out_dir`, replacing an earlier export of the
    format, and with `info_entry(part, file name)` LLaMA-Factory's `dataset_info.json` beside them."""
    out_dir = report.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("train", "test", "all", "dataset_info"):
        for suffix in (".jsonl", ".json"):
            (out_dir / f"{stale}{suffix}").unlink(missing_ok=True)
    suffix = ".json" if as_json else ".jsonl"
    for name, records in parts.items():
        path = out_dir / f"{name}{suffix}"
        report.counts[name] = write_records(path, records, as_json=as_json)
        report.files[name] = path
    if info_entry is not None:
        info: dict[str, Any] = {}
        for name, path in report.files.items():
            info.update(info_entry(name, path.name))
        report.dataset_info = out_dir / "dataset_info.json"
        report.dataset_info.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return report


def balanced(samples: list[Sample], field: str, per_value: int, seed: int = 42) -> list[Sample]:
    """At most `per_value` samples for each value of `meta.<field>` (a seeded draw), e.g. a dataset
    balanced by tag; samples without the field are left out.

    >>> s = [Sample(id=str(i), recipe="r", kind="qa", turns=[], meta={"tag": "甲" if i < 5 else "乙"})
    ...      for i in range(7)]
    >>> sorted(x.meta["tag"] for x in balanced(s, "tag", 2))
    ['乙', '乙', '甲', '甲']
    """
    groups: dict[str, list[Sample]] = {}
    for sample in sorted(samples, key=lambda s: s.id):
        value = _lookup(sample, {}, field)
        if value is not None and value != "(missing)":
            groups.setdefault(str(value), []).append(sample)
    if not groups:
        raise InputError(f"no sample has meta.{field}: nothing to balance by")
    out: list[Sample] = []
    for value in sorted(groups):
        group = groups[value]
        out += random.Random(f"{seed}:{value}").sample(group, per_value) if len(group) > per_value else group
    return out


# ---------------------------------------------------------------- stats


def _summary(values: list[int]) -> dict[str, float]:
    """min / mean / p50 / p95 / max (nearest-rank percentiles) of a list of lengths.

    >>> _summary([1, 2, 3, 4, 100])
    {'min': 1, 'mean': 22.0, 'p50': 3, 'p95': 100, 'max': 100}
    """
    if not values:
        return {"min": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    ordered = sorted(values)

    def rank(q: float) -> int:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {"min": ordered[0], "mean": round(sum(ordered) / len(ordered), 1),
            "p50": rank(0.5), "p95": rank(0.95), "max": ordered[-1]}


def _lookup(sample: Sample, record: dict[str, Any], dotted: str) -> Any:
    """A `--by` field: a (dotted) path into `meta`, else a Sample field, else a top-level key of the raw record."""
    for root in (sample.meta, sample.model_dump(exclude={"meta", "turns"}), record):
        value: Any = root
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            return value
    return "(missing)"


def file_stats(path: Path, by: Sequence[str] = ()) -> dict[str, Any]:
    """Counts, turns and character lengths of a dataset file in any supported format (or an accepted.jsonl);
    a dpo / xtuner-dpo pair counts as its prompt and its chosen answer.

    `by` names fields to count values of (e.g. `aspect`, `critic.decision`); list values count each element.
    """
    records, bad = read_records(Path(path))
    formats: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    by_counts: dict[str, Counter[str]] = {name: Counter() for name in by}
    turns, inputs, outputs, with_system = [], [], [], 0
    for number, record in records:
        try:
            # a dpo / xtuner-dpo export is described by its chosen side (from_record reads it so)
            formats[preference_format(record) or detect_format(record)] += 1
            sample = from_record(record)
        except InputError as exc:
            bad.append(BadLine(number, str(exc)))
            continue
        kinds[sample.kind] += 1
        with_system += bool(sample.system)
        turns.append(len(sample.turns))
        inputs += [len(t.input) for t in sample.turns]
        outputs += [len(t.output) for t in sample.turns]
        for name in by:
            value = _lookup(sample, record, name)
            for item in value if isinstance(value, list) else [value]:
                by_counts[name][item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)] += 1
    turn_summary = _summary(turns)
    return {
        "file": str(path),
        "records": len(turns),
        "bad_lines": [str(b) for b in sorted(bad, key=lambda b: b.line)],
        "formats": dict(formats),
        "kinds": dict(kinds),
        "with_system": with_system,
        "turns": {"total": sum(turns), "min": turn_summary["min"], "mean": turn_summary["mean"], "max": turn_summary["max"]},
        "input_chars": _summary(inputs),
        "output_chars": _summary(outputs),
        "by": {name: dict(counter.most_common()) for name, counter in by_counts.items()},
    }
