"""Progress of a `kb build`: a rich bar on a terminal, one line every few seconds otherwise (logs, CI, pipes).

>>> from knowledge.sync import BuildProgress
>>> format_line(BuildProgress(12, 101, 5_452_595, 56_623_104, 3210, 8.0, "a.txt"))
'kb build: 12/101 files, 5.2/54.0 MB (10%), 3,210 chunks, 401 chunks/s, ETA 1m15s'
>>> format_line(BuildProgress(0, 0, 640, 2054, 640, 16.0, "embedding"))
'kb build: embedding 640/2,054 chunks (31%), 40 chunks/s, ETA 35s'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from knowledge.sync import BuildProgress

EMBEDDING = "embedding"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def format_line(p: BuildProgress, label: str = "kb build") -> str:
    """One line: files, MB, chunks, chunks/s and ETA (or chunks embedded, for a dense backfill)."""
    if p.current == EMBEDDING:
        share = p.bytes_done / p.bytes_total if p.bytes_total else 1.0
        return (f"{label}: embedding {p.bytes_done:,}/{p.bytes_total:,} chunks ({share:.0%}), "
                f"{p.chunks_per_second:.0f} chunks/s, ETA {_duration(p.eta_seconds)}")
    mb = 1024 * 1024
    share = p.bytes_done / p.bytes_total if p.bytes_total else 1.0
    return (f"{label}: {p.files_done}/{p.files_total} files, {p.bytes_done / mb:.1f}/{p.bytes_total / mb:.1f} MB "
            f"({share:.0%}), {p.chunks:,} chunks, {p.chunks_per_second:.0f} chunks/s, ETA {_duration(p.eta_seconds)}")


class LineProgress:
    """Writes `format_line` at most every `every` seconds, and always the last update of a build."""

    def __init__(self, write: Callable[[str], None], every: float = 5.0, label: str = "kb build") -> None:
        self.write, self.every, self.label = write, every, label
        self._last = float("-inf")
        self._pending: BuildProgress | None = None

    def __call__(self, p: BuildProgress) -> None:
        now = time.monotonic()
        finished = p.current != EMBEDDING and p.files_done == p.files_total
        if finished or now - self._last >= self.every:
            self.write(format_line(p, self.label))
            self._last, self._pending = now, None
        else:
            self._pending = p

    def close(self) -> None:
        if self._pending is not None:
            self.write(format_line(self._pending, self.label))
            self._pending = None


@contextmanager
def build_progress(console: Console, *, every: float = 5.0, label: str = "kb build") -> Iterator[Callable[[BuildProgress], None]]:
    """A progress callback for `KnowledgeBase.build/add`: a bar when `console` is a terminal, lines otherwise."""
    if not console.is_terminal:
        lines = LineProgress(lambda text: console.print(text, highlight=False, soft_wrap=True), every, label)
        try:
            yield lines
        finally:
            lines.close()
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[detail]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=None, detail="")

        def update(p: BuildProgress) -> None:
            if p.current == EMBEDDING:
                detail = f"{p.bytes_done:,}/{p.bytes_total:,} chunks embedded, {p.chunks_per_second:.0f}/s"
            else:
                detail = f"{p.files_done}/{p.files_total} files, {p.chunks:,} chunks, {p.chunks_per_second:.0f}/s"
            bar.update(task, completed=p.bytes_done, total=p.bytes_total or None, detail=detail)

        yield update
