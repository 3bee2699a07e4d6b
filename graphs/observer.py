"""Seeing a run: a silent observer interface and the rich tracer that renders it at the edge.

The runner calls the observer; nodes never print. `RichTracer(console=Console(record=True,
file=io.StringIO()))` lets tests read exactly what a user would see.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from agents.console import make_console

if TYPE_CHECKING:
    from agents.schemas import WorkItem
    from graphs.outcome import ItemResult, RunOutcome, RunView


def open_trace_file(path: Path):
    """`--trace-file PATH` opened for appending, its folder made; a path that cannot be written is one line
    (`InputError`), not a traceback."""
    from agents.errors import InputError

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--trace-file {path}: cannot write there ({exc.strerror or exc})") from None


class RunObserver:
    """Does nothing; subclasses render progress or record events."""

    wants_events = False

    def run_started(self, runner: RunView) -> None: ...
    def item_started(self, item: WorkItem) -> None: ...
    def item_event(self, item: WorkItem, mode: str, chunk: Any) -> None: ...
    def item_finished(self, item: WorkItem, result: ItemResult) -> None: ...
    def item_failed(self, item: WorkItem, error: str) -> None: ...
    def item_cancelled(self, item: WorkItem) -> None: ...
    def run_finished(self, runner: RunView, outcome: RunOutcome) -> None: ...


async def invoke_observed(graph: Any, item: WorkItem, ctx: Any, observer: RunObserver | None) -> dict[str, Any]:
    """Run one item through `graph`; its steps go to `observer` when it wants them (`--trace`, `--trace-file`).
    Returns the final state."""
    if observer is None or not observer.wants_events:
        return await graph.ainvoke({"item": item}, context=ctx)
    final: dict[str, Any] = {}
    async for mode, chunk in graph.astream({"item": item}, context=ctx, stream_mode=["updates", "custom", "values"]):
        if mode == "values":
            final = chunk
        else:
            observer.item_event(item, mode, chunk)
    return final


class _StatsColumn(ProgressColumn):
    def __init__(self, tracer: RichTracer):
        super().__init__()
        self.tracer = tracer

    def render(self, task) -> Text:
        return Text.from_markup(self.tracer.status_line())


class RichTracer(RunObserver):
    """A progress bar with accepted / rejected (top codes) / failed, tokens, cost and ETA;
    with `trace`, one compact line per agent step; with `trace_file`, the same events as JSONL."""

    def __init__(self, console: Console | None = None, *, total: int | None = None, trace: bool = False,
                 trace_file: Path | None = None, currency: str = "¥"):
        self.console = console or make_console()
        self.total = total
        self.trace = trace
        self.trace_file = open_trace_file(trace_file) if trace_file else None
        self.wants_events = trace or trace_file is not None
        self.currency = currency
        self.runner: RunView | None = None
        self.progress: Progress | None = None
        self.task_id = None
        self.codes: Counter[str] = Counter()
        self.t0 = time.monotonic()

    def status_line(self) -> str:
        r = self.runner
        if r is None:
            return ""
        top = ", ".join(f"{c}×{n}" for c, n in (r.run_dir.rejected_codes + self.codes).most_common(3))
        usage = r.usage
        return (f"[green]✓ {r.accepted}[/] [yellow]✗ {r.rejected}[/]{f' ({top})' if top else ''} "
                f"[red]! {r.failed}[/]  tokens {usage.input_tokens:,}/{usage.output_tokens:,}  "
                f"{self.currency}{usage.cost:.4f}")

    def run_started(self, runner: RunView) -> None:
        self.runner = runner
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                                 _StatsColumn(self), TimeRemainingColumn(), console=self.console,
                                 transient=False, disable=not self.console.is_terminal and not self.console.record)
        self.progress.start()
        done = len(runner.run_dir.finished)
        self.task_id = self.progress.add_task(runner.run_dir.path.name, total=self.total, completed=done)

    def _advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task_id)

    def _emit(self, item: WorkItem, event: str, data: dict[str, Any]) -> None:
        if self.trace_file is not None:
            record = {"t": round(time.monotonic() - self.t0, 3), "item": item.id, "event": event, **data}
            self.trace_file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            self.trace_file.flush()
        if self.trace:
            text = " ".join(f"{k}={_short(v)}" for k, v in data.items())
            # text, not markup: a question may hold 「[b]」 or 「[/b]」
            self.console.print(Text.assemble((item.id[:8], "dim"), " ", (event, "cyan"), " ", text), highlight=False)

    def item_event(self, item: WorkItem, mode: str, chunk: Any) -> None:
        if mode == "custom" and isinstance(chunk, dict):
            data = dict(chunk)
            self._emit(item, str(data.pop("event", "event")), data)
        elif mode == "updates" and isinstance(chunk, dict):
            for node, update in chunk.items():
                self._emit(item, node, _summarise(update))

    def item_finished(self, item: WorkItem, result: ItemResult) -> None:
        self._emit(item, result.status, {"codes": result.codes} if result.codes else {})
        self._advance()

    def item_failed(self, item: WorkItem, error: str) -> None:
        self._emit(item, "failed", {"error": error})
        self._advance()

    def run_finished(self, runner: RunView, outcome: RunOutcome) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.trace_file is not None:
            self.trace_file.close()


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _summarise(update: Any) -> dict[str, Any]:
    """The parts of a node's update worth a trace line: question, answer, verdict, sources."""
    if not isinstance(update, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in update.items():
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        if key == "verdict" and isinstance(value, dict):
            out["decision"] = value.get("decision")
            out["codes"] = value.get("reason_codes")
            out["reasons"] = value.get("reasons")
        elif key in ("question", "answer", "status", "reject_codes", "sources", "draft"):
            out[key] = value
    return out
