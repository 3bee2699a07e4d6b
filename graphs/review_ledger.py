"""The review ledger: every decision a reviewer makes on a run folder, one JSON line each, append-only.

    runs/<recipe>/<run-name>/review.jsonl
    {"id": "…", "action": "edit", "turn": 0, "input": "…", "output": "…", "rev": 3, "base_rev": 2, "at": "…"}

accepted.jsonl and rejected.jsonl are never rewritten; the current state of a sample is the fold of
its ledger lines (`fold`). Each line carries the sample's revision it was based on (`base_rev`, the
number of earlier lines for that sample) and the revision it makes (`rev`); `ReviewLedger.append`
refuses a stale one (`StaleRevision`), so two tabs editing one sample never lose an edit silently.
`undo` takes back the latest decision still in effect.

>>> entries = [ReviewEntry(id="s1", action="edit", turn=0, output="新答案", rev=1, base_rev=0),
...            ReviewEntry(id="s1", action="reject", reason="UNGROUNDED", rev=2, base_rev=1),
...            ReviewEntry(id="s1", action="undo", rev=3, base_rev=2)]
>>> state = fold(entries)["s1"]
>>> state.status, state.edits[0]["output"], state.rev
(None, '新答案', 3)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from agents.errors import InputError, pydantic_problem
from graphs.ledger import BadLine, cut_torn_tail, jsonl_lines

log = logging.getLogger(__name__)

LEDGER_NAME = "review.jsonl"
Action = Literal["accept", "reject", "edit", "note", "undo"]


class ReviewEntry(BaseModel):
    """One line of the review ledger."""

    id: str
    action: Action
    reason: str | None = None  # reject: a reason code
    turn: int | None = None  # edit: the turn index
    input: str | None = None  # edit: the turn's new input (None = unchanged)
    output: str | None = None  # edit: the turn's new output (None = unchanged)
    note: str | None = None
    rev: int  # the sample's revision after this line
    base_rev: int  # the revision the reviewer saw
    at: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))


class SampleReview(BaseModel):
    """The current review state of one sample: the fold of its ledger lines."""

    id: str
    status: Literal["accepted", "rejected"] | None = None
    reason: str | None = None
    edits: dict[int, dict[str, str]] = Field(default_factory=dict)  # turn → {"input"?, "output"?}
    notes: list[str] = Field(default_factory=list)
    rev: int = 0
    effective: list[ReviewEntry] = Field(default_factory=list)  # decisions in effect, oldest first

    def apply(self, entry: ReviewEntry) -> None:
        """Fold one more line in (undo removes the latest decision still in effect)."""
        self.rev = entry.rev
        if entry.action == "undo":
            if self.effective:
                self.effective.pop()
        else:
            self.effective.append(entry)
        self.status, self.reason, self.edits, self.notes = None, None, {}, []
        for e in self.effective:
            if e.action in ("accept", "reject"):
                self.status = "accepted" if e.action == "accept" else "rejected"
                self.reason = e.reason
            elif e.action == "edit" and e.turn is not None:
                turn = self.edits.setdefault(e.turn, {})  # a blank output (older ledgers) keeps the answer
                turn.update({k: v for k, v in (("input", e.input), ("output", e.output))
                             if v is not None and (k == "input" or v.strip())})
            elif e.action == "note" and e.note:
                self.notes.append(e.note)

    def edited_turns(self, turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`turns` with this review's edits applied (a copy)."""
        out = [dict(t) for t in turns]
        for index, change in self.edits.items():
            if 0 <= index < len(out):
                out[index].update(change)
        return out

    def summary(self) -> dict[str, Any]:
        """What an export keeps in `meta.review`."""
        return {"status": self.status, "reason": self.reason, "edited_turns": sorted(self.edits),
                "notes": self.notes, "rev": self.rev}


def fold(entries: Iterable[ReviewEntry]) -> dict[str, SampleReview]:
    """The current review state of every sample named in `entries` (ledger order)."""
    states: dict[str, SampleReview] = {}
    for entry in entries:
        states.setdefault(entry.id, SampleReview(id=entry.id)).apply(entry)
    return states


def read_entries(path: Path, start: int = 0) -> tuple[list[ReviewEntry], int]:
    """Whole lines of the ledger from byte `start`, and the offset after the last whole line. A line that is
    not a review entry (one a crash joined to the next, before the torn tail was cut) is skipped with a
    warning, as export skips it: the page opens, and every other decision stands."""
    if not path.exists():
        return [], 0
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    end = data.rfind(b"\n") + 1  # a line still being written is read next time
    entries = []
    for number, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(ReviewEntry.model_validate_json(line))
        except ValueError as exc:
            where = f"line {number}" + (f" after byte {start}" if start else "")
            log.warning("%s: %s is not a review entry, skipped (%s)", path, where, str(exc).splitlines()[0])
    return entries, start + end


def blank_answer(action: str, fields: dict[str, Any]) -> str | None:
    """Why an edit cannot be saved (its answer is empty or only whitespace), or None.

    >>> blank_answer("edit", {"turn": 0, "output": " \\n"})
    'an empty answer was not saved: write the answer, or reject the sample'
    >>> blank_answer("edit", {"turn": 0, "input": "新问题"}) is None  # output unchanged
    True
    """
    output = fields.get("output")
    if action == "edit" and output is not None and not output.strip():
        return "an empty answer was not saved: write the answer, or reject the sample"
    return None


class StaleRevision(Exception):
    """The sample changed since the reviewer loaded it (another tab or process wrote first)."""

    def __init__(self, current: SampleReview, base_rev: int):
        super().__init__(f"sample {current.id} is at revision {current.rev}, not {base_rev}")
        self.current = current


class ReviewLedger:
    """The run folder's review.jsonl with its folded state, kept current as other writers append.

    `append` locks the file (flock), cuts a last line torn by a crash, reads what others appended, checks the
    revision and writes one line, so two tabs — or two `zaoshu review` processes — on one run folder cannot
    overwrite each other.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LEDGER_NAME
        self.states: dict[str, SampleReview] = {}
        self._offset = 0
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> list[str]:
        """Fold in lines appended since the last look; the ids they touched."""
        with self._lock:
            return self._catch_up()

    def _catch_up(self) -> list[str]:
        entries, self._offset = read_entries(self.path, self._offset)
        for entry in entries:
            self.states.setdefault(entry.id, SampleReview(id=entry.id)).apply(entry)
        return [e.id for e in entries]

    def get(self, sample_id: str) -> SampleReview:
        return self.states.get(sample_id) or SampleReview(id=sample_id)

    def append(self, sample_id: str, action: Action, base_rev: int, **fields: Any) -> SampleReview:
        """Write one decision based on revision `base_rev`; raises StaleRevision when the sample moved on, and
        InputError for an edit whose answer is blank (it would become an empty training sample)."""
        if problem := blank_answer(action, fields):
            raise InputError(problem)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                cut_torn_tail(self.path)  # never saved (a page killed mid-write): ours must not join it
                self._catch_up()
                current = self.get(sample_id)
                if current.rev != base_rev:
                    raise StaleRevision(current.model_copy(deep=True), base_rev)
                entry = ReviewEntry(id=sample_id, action=action, rev=base_rev + 1, base_rev=base_rev, **fields)
                os.write(fd, (entry.model_dump_json(exclude_none=True) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)  # releases the flock
            self._catch_up()
            return self.get(sample_id)


def review_entries(path: Path, bad: list[BadLine] | None = None) -> Iterator[ReviewEntry]:
    """Every entry of a review ledger, its last line too, for a reader (export). A line that is not an entry
    (a last line torn when the review page was killed mid-write) goes to `bad` and is skipped, or without
    `bad` stops the read (InputError), as `graphs.ledger.jsonl_lines` does."""
    for number, value in jsonl_lines(path, bad):
        try:
            yield ReviewEntry.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]  # e.g. {"loc": ("action",), "msg": "Input should be 'accept', …"}
            field = ".".join(map(str, first["loc"]))
            reason = f"not a review entry ({field + ': ' if field else ''}{pydantic_problem(first)})"
            if bad is None:
                raise InputError(f"{path}:{number}: {reason}") from None
            bad.append(BadLine(number, reason, path))


def apply_review(run_dir: Path, samples: list[Any],
                 bad: list[BadLine] | None = None) -> tuple[list[Any], dict[str, int]]:
    """Exported samples after the reviewer's decisions: edits applied, reviewer-rejected samples dropped,
    rejected samples the reviewer accepted added (from rejected.jsonl). `samples` are `agents.schemas.Sample`s.

    Returns the samples and counts {"edited", "dropped", "added"}; without a ledger, `samples` unchanged.
    A line of review.jsonl or rejected.jsonl that cannot be read is added to `bad` (once: a caller may have
    read rejected.jsonl itself) and skipped; without `bad` it stops the export.
    """
    from agents.schemas import Sample, Turn
    from graphs.shards import read_ledger, run_ledgers

    paths = run_ledgers(run_dir, LEDGER_NAME)  # the run's own, and each shard's (a shard reviewed alone)
    counts = {"edited": 0, "dropped": 0, "added": 0}
    if not paths:
        return samples, counts
    found: list[BadLine] | None = None if bad is None else []
    states = fold(entry for path in paths for entry in review_entries(path, found))

    def reviewed(sample: Any, state: SampleReview) -> Any:
        if state.edits:
            counts["edited"] += 1
        turns = state.edited_turns([t.model_dump() for t in sample.turns])
        meta = {**sample.meta, "review": state.summary()}
        return sample.model_copy(update={"turns": [Turn(**t) for t in turns], "meta": meta})

    out = []
    for sample in samples:
        state = states.get(sample.id)
        if state is None or not state.effective:
            out.append(sample)
        elif state.status == "rejected":
            counts["dropped"] += 1
        else:
            out.append(reviewed(sample, state))
    taken = {s.id for s in out}
    wanted = {i for i, s in states.items() if s.status == "accepted"} - taken
    if wanted:
        for record in read_ledger(run_dir, "rejected.jsonl", found):
            if record.get("id") in wanted and record.get("sample"):
                out.append(reviewed(Sample.model_validate(record["sample"]), states[record["id"]]))
                counts["added"] += 1
                wanted.discard(record["id"])
    if bad is not None and found:
        bad += [b for b in found if b not in bad]
    return out, counts


def ledger_lines(run_dir: Path) -> list[dict[str, Any]]:
    """The ledger's lines as dicts (for tests and tools)."""
    path = Path(run_dir) / LEDGER_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path.exists() else []
