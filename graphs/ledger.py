"""One append-only JSONL file: `Ledger` writes whole lines, `cut_torn_tail` repairs a line a crash tore,
`jsonl_lines` / `read_jsonl` read it back, a line that is not JSON named as a `BadLine`, and `Tail`
follows what another process appends (a shard reading the others' accepted samples as they come).

Each record is one `os.write` of a whole line to a file opened with O_APPEND, so a killed process
leaves whole lines; a torn last line (power loss) has no newline and was never acknowledged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.errors import InputError, json_problem

log = logging.getLogger(__name__)


class Ledger:
    """One append-only JSONL file. `fsync_every` lines (0 = never) are forced to disk as a batch.
    Its owner (RunDir) cuts a torn last line before opening it."""

    def __init__(self, path: Path, fsync_every: int = 20):
        self.path = path
        self.fsync_every = fsync_every
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._pending = 0

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        os.write(self._fd, line)
        self._pending += 1
        if self.fsync_every and self._pending >= self.fsync_every:
            self.sync()

    def sync(self) -> None:
        if self._pending:
            os.fsync(self._fd)
            self._pending = 0

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1


def cut_torn_tail(path: Path) -> None:
    """Cut a last line that has no newline (a write torn by a crash): it was never acknowledged."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        end = f.seek(0, os.SEEK_END)
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return
        pos = end
        while pos > 0:  # scan back in blocks for the last newline
            start = max(0, pos - 65536)
            f.seek(start)
            block = f.read(pos - start)
            cut = block.rfind(b"\n")
            if cut != -1:
                f.truncate(start + cut + 1)
                return
            pos = start
        f.truncate(0)


NOT_UTF8 = "not UTF-8 text"
"""The reason of a line that is not UTF-8 (a file saved as GBK, say)."""


@dataclass(frozen=True)
class BadLine:
    """A line that could not be used, with its 1-based line number (item number for a .json array) and,
    when it was read from a file, that file."""

    line: int
    reason: str
    path: Path | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def jsonl_lines(path: Path, bad: list[BadLine] | None = None, *,
                whole: bool = False) -> Iterator[tuple[int, Any]]:
    """`(line number, value)` for each line of a JSONL file; blank lines and a UTF-8 BOM are passed over.

    A line that is not JSON (a torn last line, a stray edit) is added to `bad` and skipped — what a
    reader does, so one line never hides the rest. Without `bad` it raises an InputError naming the
    file and line: a run about to append to the ledger stops instead. `whole` passes over a last line
    without its newline (torn, or being written), as a run opening the folder cuts it.
    """
    if not path.exists():
        return
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if whole and not line.endswith(b"\n"):
                return
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if not line.strip():
                continue
            try:
                value = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                reason = NOT_UTF8
            except json.JSONDecodeError as exc:
                reason = f"invalid JSON ({json_problem(exc)})"
            else:
                yield number, value
                continue
            if bad is None:
                raise InputError(f"{path}:{number}: {reason}")
            bad.append(BadLine(number, reason, path))


def read_jsonl(path: Path, bad: list[BadLine] | None = None, *, whole: bool = False) -> Iterator[dict[str, Any]]:
    """Records of a ledger; a line that is not JSON goes to `bad`, or without it stops the read (`jsonl_lines`)."""
    for _, record in jsonl_lines(path, bad, whole=whole):
        yield record


class Tail:
    """The records another process appends to a JSONL file, as it appends them: `new()` returns the whole
    lines written since the last call (a line still being written waits for its newline; a line that is
    not JSON is passed over, as its writer's readers report it). `at_end`: start from the file's end now."""

    def __init__(self, path: Path, *, at_end: bool = False):
        self.path = path
        self.offset = path.stat().st_size if at_end and path.is_file() else 0

    def new(self) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:  # replaced by a shorter file: read it again (its records are known by id)
            self.offset = 0
        if size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        whole = data[:data.rfind(b"\n") + 1]
        self.offset += len(whole)
        records = []
        for line in whole.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records
