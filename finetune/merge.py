"""Join runs and dataset files into one accepted.jsonl, dropping exact duplicates: `zaoshu merge A B --out M`.

    report = merge_runs([Path("runs/tianji/a"), Path("more.jsonl")], Path("merged"))   # → merged/accepted.jsonl
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agents.errors import InputError, output_file, output_folder
from agents.schemas import Sample
from finetune.export import accepted_paths, read_run_samples, read_samples, refuse_non_utf8, write_records
from graphs.ledger import BadLine

log = logging.getLogger(__name__)


def normalized_text(sample: Sample) -> str:
    """The text two samples must share to count as duplicates: system + turns, NFKC, case-folded, whitespace collapsed.

    >>> normalized_text(Sample(id="x", recipe="r", kind="qa", turns=[{"input": " 你好  ", "output": "ＯＫ"}]))
    '\\x1e你好\\x1fok'
    """
    def norm(text: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", text).casefold().split())

    return "\x1e".join([norm(sample.system)] + [f"{norm(t.input)}\x1f{norm(t.output)}" for t in sample.turns])


@dataclass
class MergeReport:
    """What `merge_runs` did: samples read per input, duplicates dropped, samples written."""

    out: Path
    read: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    written: int = 0
    bad_lines: dict[str, list[BadLine]] = field(default_factory=dict)


RECIPE_RUN_FILES = ("stats.json", "config.resolved.yaml", "rejected.jsonl", "failed.jsonl")


def _refuse_a_recipe_run(folder: Path) -> None:
    """InputError when `folder` is a recipe's run (a merge's own folder holds accepted.jsonl only): merging
    into it would replace the accepted samples its stats.json and ledgers describe."""
    from graphs.shards import run_ledgers

    marks = [name for name in RECIPE_RUN_FILES if run_ledgers(folder, name)]
    if marks:
        accepted = sum(1 for path in run_ledgers(folder, "accepted.jsonl")
                       for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        raise InputError(f"{folder} is a recipe's run (it has {', '.join(marks)}): merging into it would replace "
                         f"its {accepted} accepted samples; choose a new --out, or name {folder} as an input")


def merge_runs(inputs: Sequence[Path], out: Path, dedup: bool = True) -> MergeReport:
    """Join run directories and/or dataset files into one accepted.jsonl of Samples, dropping exact duplicates.

    `out` is a run directory (→ `out/accepted.jsonl`, ready for `zaoshu export`) or a `.jsonl` path; a recipe's
    run is refused as `out` (its accepted samples would be replaced), a merge's own folder is rewritten.
    Duplicates are samples whose `normalized_text` is equal; the first one seen is kept.
    """
    if not inputs:
        raise InputError("merge needs at least one run directory or file")
    out = Path(out)
    target = out if out.suffix == ".jsonl" else out / "accepted.jsonl"
    report = MergeReport(out=target)
    seen: set[str] = set()
    merged: list[Sample] = []
    for source in map(Path, inputs):
        paths = accepted_paths(source) if source.is_dir() else [source]
        if any(path.resolve() == target.resolve() for path in paths):
            raise InputError(f"the merge output {target} is also an input; choose another --out")
        samples, bad = read_run_samples(source) if source.is_dir() else read_samples(source)
        if not source.is_dir():
            refuse_non_utf8(source, bad)  # a file saved as GBK, say: converted, none of its lines is lost
        report.read[str(source)] = len(samples)
        if bad:
            report.bad_lines[str(source)] = bad
        for sample in samples:
            key = normalized_text(sample)
            if dedup and key in seen:
                report.duplicates += 1
                continue
            seen.add(key)
            merged.append(sample)
    if not merged:  # a wrong input (a GBK file, an empty run) must not empty an earlier merge
        raise InputError(f"no usable sample in {', '.join(map(str, inputs))}: nothing to merge; {target} is left as it was")
    if target.name == "accepted.jsonl":
        output_folder(target.parent)
        _refuse_a_recipe_run(target.parent)
    output_file(target, example="accepted.jsonl")
    report.written = write_records(target, (s.model_dump(mode="json") for s in merged))
    log.info("merged %d inputs into %s: %d written, %d duplicates", len(inputs), target, report.written, report.duplicates)
    return report
