"""What every recipe shares: its YAML, the common flags, and one `execute` that runs it.

A recipe says how it enumerates work items, which graph makes samples, what it prepares before
the first LLM call (an index, pretraining chunks) and what it writes after the run. Copy one of
`recipes/{wulewule,tianji,emollm}` to make a fifth.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Optional

import typer
import yaml
from rich.console import Console

from agents.errors import InputError, ZaoshuError
from graphs.state import WorkItem

log = logging.getLogger(__name__)


@dataclass
class RunFlags:
    """The flags every recipe takes (`python -m recipes.<name> --help`)."""

    limit: Optional[int] = None
    target: Optional[int] = None
    concurrency: int = 8
    trace: bool = False
    trace_file: Optional[Path] = None
    dry_run: bool = False
    out: Optional[Path] = None
    fresh: bool = False
    budget: Optional[str] = None
    interactive: bool = False
    config: Optional[Path] = None
    fsync_every: int = 20


class Recipe:
    """Subclass and set `name`, `graph`, `config_file`; implement `items`."""

    name: ClassVar[str]
    graph: ClassVar[str]
    config_file: ClassVar[Path]

    def load_config(self, path: Path | None = None) -> dict[str, Any]:
        path = path or self.config_file
        if not path.is_file():
            raise InputError(f"recipe config not found: {path}")
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        config["_config_dir"] = str(path.parent.resolve())
        return config

    def items(self, config: dict[str, Any]) -> Iterator[WorkItem]:
        raise NotImplementedError

    def prepare(self, config: dict[str, Any], run_dir: Path, console: Console) -> dict[str, Any]:
        """Work before any LLM call; returns Context fields (kb, search, huixiangdou …)."""
        return {}

    def finish(self, config: dict[str, Any], run_dir: Path, console: Console) -> None:
        """Work after the run (recipe-specific exports)."""


def fingerprint(config: dict[str, Any]) -> str:
    """Same recipe config → same fingerprint → a rerun resumes the same run folder."""
    data = {k: v for k, v in config.items() if not k.startswith("_")}
    return hashlib.sha1(json.dumps(data, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()[:12]


def resolve_path(config: dict[str, Any], value: str | Path) -> Path:
    """A path from the YAML: absolute, or relative to the working directory if it exists there,
    else relative to the repository (the YAML's grandparent)."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return Path(config["_config_dir"]).parents[1] / path


def execute(recipe: Recipe, flags: RunFlags, console: Console | None = None) -> int:
    """Run a recipe end to end; returns the exit code. User errors raise ZaoshuError."""
    from agents.dedup import Deduper, sample_texts
    from agents.llm import Usage, make_clients
    from agents.schemas import Sample
    from agents.settings import load_settings
    from graphs.context import Context
    from graphs.observer import RichTracer
    from graphs.plan import make_plan, render_plan
    from graphs.registry import GRAPHS
    from graphs.rundir import RunDir, resolve_run_dir
    from graphs.runner import Budget, Runner, RunOptions

    console = console or Console()
    config = recipe.load_config(flags.config)
    budget = Budget.parse(flags.budget) if flags.budget else None
    run_path = resolve_run_dir(Path("runs"), recipe.name, flags.out, flags.fresh, fingerprint(config))
    all_items = list(islice(recipe.items(config), flags.limit))
    settings = load_settings(config.get("llm"), cli={"max_concurrency": flags.concurrency})
    common = {k: config[k] for k in ("max_revisions", "structured_attempts", "top_k") if k in config}

    if flags.dry_run:  # reads an existing run folder, creates nothing
        finished = RunDir(run_path).finished if run_path.exists() else set()
        todo = [item for item in all_items if item.id not in finished]
        ctx = Context(clients={}, recipe=config, **common)
        render_plan(make_plan(recipe.graph, todo, len(all_items) - len(todo), ctx, settings, config), console)
        return 0

    run = RunDir(run_path, fsync_every=flags.fsync_every)
    todo = [item for item in all_items if item.id not in run.finished]

    console.print(f"[bold]{recipe.name}[/] → {run_path}  ({len(todo)} of {len(all_items)} items to run)")
    run.write_config({"recipe": {k: v for k, v in config.items() if not k.startswith("_")},
                      "settings": settings.masked_dump(), "flags": _flag_dump(flags)})
    _write_stats(run, None, None, config, started=time.time(), status="preparing")
    deps = recipe.prepare(config, run_path, console)
    usage = Usage()
    clients = make_clients(settings, usage=usage)  # after prepare: no endpoint still leaves its outputs
    console.print("models: " + "; ".join(f"{role} {c.cfg.model} @ {c.cfg.base_url} (key {'***' if c.cfg.api_key else 'none'})"
                                          for role, c in clients.items()), highlight=False)
    dedup_q, dedup_a = Deduper(), Deduper()  # warmed with what earlier sessions accepted
    for record in run.accepted_samples():
        texts = sample_texts(Sample.model_validate(record))
        if texts.get("question"):
            dedup_q.add(record["id"], texts["question"])
        if texts.get("answer"):
            dedup_a.add(record["id"], texts["answer"])
    ctx = Context(clients=clients, recipe=config, deduper_questions=dedup_q, deduper_answers=dedup_a,
                  **common, **deps)
    graph = GRAPHS[recipe.graph]().compile()
    tracer = RichTracer(console, total=len(all_items), trace=flags.trace, trace_file=flags.trace_file,
                        currency=settings.for_role("asker").currency)
    options = RunOptions(concurrency=flags.concurrency, target=flags.target, budget=budget)
    started = time.time()
    outcome = asyncio.run(_run(graph, ctx, run, usage, options, tracer, all_items, flags, console))
    _write_stats(run, usage, outcome, config, started=started, status=outcome.reason)
    recipe.finish(config, run_path, console)
    try:  # the dataset card is a by-product: it never fails a run
        from finetune.card import write_card

        console.print(f"dataset card → {write_card(run_path)}", highlight=False)
    except Exception as exc:  # noqa: BLE001
        console.print(f"[yellow]warning:[/] no dataset card: {type(exc).__name__}: {exc}", highlight=False)
    return _report(outcome, recipe.name, run_path, console)


async def _run(graph, ctx, run, usage, options, tracer, items, flags: RunFlags, console):
    from graphs.runner import Runner, install_signal_handlers

    invoke = None
    if flags.interactive:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        from graphs.review import ConsoleReviewer, ReviewInvoker, build_review_graph

        saver_cm = AsyncSqliteSaver.from_conn_string(str(run.checkpoints_path))
        saver = await saver_cm.__aenter__()
        review_graph = build_review_graph(graph).compile(checkpointer=saver)
        invoke = ReviewInvoker(review_graph, ConsoleReviewer(console), ctx)
    runner = Runner(graph, ctx, run, usage, options, tracer, invoke=invoke)
    install_signal_handlers(runner)
    try:
        return await runner.run(items)  # it skips the finished ones
    finally:
        if flags.interactive:
            await saver_cm.__aexit__(None, None, None)


def _flag_dump(flags: RunFlags) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(flags).items()}


def _write_stats(run, usage, outcome, config, *, started: float, status: str) -> None:
    """stats.json: counts, tokens and cost summed over every session of this run."""
    prev = run.read_stats()
    data = {"recipe": config.get("recipe"), "fingerprint": fingerprint(config), "status": status,
            "accepted": len(run.accepted_ids), "rejected": len(run.rejected_ids),
            "rejected_by_code": dict(run.rejected_codes.most_common()),
            "failed": prev.get("failed_total", 0) + (outcome.failed if outcome else 0),
            "duration_s": prev.get("duration_s", 0.0), "input_tokens": prev.get("input_tokens", 0),
            "output_tokens": prev.get("output_tokens", 0), "cost": prev.get("cost", 0.0),
            "usage_by_role": prev.get("usage_by_role", {}), "sessions": prev.get("sessions", 0),
            "currency": prev.get("currency", "¥"), "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    if outcome is not None and usage is not None:
        data.update(failed_total=data["failed"], duration_s=data["duration_s"] + time.time() - started,
                    input_tokens=data["input_tokens"] + usage.input_tokens,
                    output_tokens=data["output_tokens"] + usage.output_tokens,
                    cost=data["cost"] + usage.cost, sessions=data["sessions"] + 1, message=outcome.message)
        for role, u in usage.as_dict().items():
            total = data["usage_by_role"].setdefault(role, {})
            for key, value in u.items():
                total[key] = total.get(key, 0) + value
    run.write_stats(data)


def _report(outcome, name: str, run_path: Path, console: Console) -> int:
    line = (f"accepted {outcome.accepted} · rejected {outcome.rejected} · failed {outcome.failed} → "
            f"{run_path}/accepted.jsonl")
    if outcome.reason in ("completed", "target"):
        console.print(f"[green]done[/] ({outcome.reason}): {line}", highlight=False)
        return 0
    args = [a for a in sys.argv[1:] if a != "--fresh"]
    if "--out" not in args:
        args += ["--out", str(run_path)]
    resume = shlex.join(["python", "-m", f"recipes.{name}", *args])
    color = "red" if outcome.reason == "fatal" else "yellow"
    console.print(f"[{color}]{outcome.reason}[/]: {outcome.message}", highlight=False)
    console.print(f"{line}\nresume with: {resume}", highlight=False)
    return {"fatal": 1, "interrupted": 130}.get(outcome.reason, 0)


def self_cognition(config: dict[str, Any], system_key: str = "system_prompt") -> list[dict[str, Any]]:
    """Every identity question paired with an answer chosen for *that* question (the seed zipped
    answers for a random sample with the first questions, so they did not match).

    >>> self_cognition({"system_prompt": "S", "self_cognition": {"name": "悟了悟了", "author": "社区",
    ...     "questions": ["你是谁？"], "answers": ["我是{name}，由{author}开发。"]}})
    [{'conversation': [{'system': 'S', 'input': '你是谁？', 'output': '我是悟了悟了，由社区开发。'}]}]
    """
    sc = config.get("self_cognition") or {}
    questions, answers = sc.get("questions") or [], sc.get("answers") or []
    if questions and not answers:
        raise InputError("self_cognition has questions but no answers in the recipe YAML")
    records = []
    for question in questions:
        answer = random.Random(f"self:{question}").choice(answers) if len(answers) > 1 else answers[0]
        output = answer.format(name=sc.get("name", ""), author=sc.get("author", ""))
        records.append({"conversation": [{"system": config.get(system_key, ""), "input": question,
                                          "output": output}]})
    return records


def write_jsonl(path: Path, records) -> None:
    """Write records as JSONL through a temporary file: a crash never leaves half a file."""
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def recipe_app(recipe: Recipe, doc: str) -> typer.Typer:
    """A typer app with the common flags; `python -m recipes.<name> --help` shows them."""
    app = typer.Typer(add_completion=False, help=doc, rich_markup_mode=None)

    @app.command(help=doc)
    def main(
        limit: Optional[int] = typer.Option(None, help="Run at most this many work items."),
        target: Optional[int] = typer.Option(None, help="Stop once this many samples are accepted."),
        concurrency: int = typer.Option(8, help="Work items in flight at once.", envvar="ZAOSHU_MAX_CONCURRENCY"),
        trace: bool = typer.Option(False, "--trace", help="Show each item's agent steps live."),
        trace_file: Optional[Path] = typer.Option(None, help="Write the trace events as JSONL here."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Plan, prompts and cost estimate; no LLM calls."),
        out: Optional[Path] = typer.Option(None, help="Run folder (default runs/<recipe>/<run-name>/)."),
        fresh: bool = typer.Option(False, "--fresh", help="Start a new run instead of resuming the last one."),
        budget: Optional[str] = typer.Option(None, help="Pause when spent reaches this: 5¥, $2, 200k tokens."),
        interactive: bool = typer.Option(False, "--interactive", help="Review each accepted sample by hand."),
        config: Optional[Path] = typer.Option(None, help="Use this YAML instead of the recipe's own."),
        fsync_every: int = typer.Option(20, help="fsync the ledgers every N records (0: leave it to the OS)."),
    ) -> None:
        flags = RunFlags(limit, target, concurrency, trace, trace_file, dry_run, out, fresh, budget,
                         interactive, config, fsync_every)
        raise typer.Exit(execute(recipe, flags))

    return app


def run_cli(app: typer.Typer) -> None:
    """Entry for `python -m recipes.<name>`: user errors are one red line, exit 1."""
    import click

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        rc = app(standalone_mode=False)
    except ZaoshuError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
