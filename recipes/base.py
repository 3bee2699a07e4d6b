"""What a recipe is — its config model, how it enumerates work items, what it prepares before the
first LLM call and what it writes after the run — and the command every recipe shares.

Running it is the composition root's job (graphs/session.py, graphs/execute.py). Copy one of
`recipes/{wulewule,tianji,emollm}` to make a fifth.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Optional

import typer
from rich.console import Console
from rich.markup import escape

from agents.console import make_console
from agents.errors import InputError, ZaoshuError
from graphs.config import RecipeConfig, SelfCognition
from graphs.session import RunRequest
from graphs.state import WorkItem

log = logging.getLogger(__name__)


class Recipe:
    """Subclass and set `name`, `graph`, `config_file`, `config_model`; implement `items`."""

    name: ClassVar[str]
    graph: ClassVar[str]
    config_file: ClassVar[Path]
    config_model: ClassVar[type[RecipeConfig]] = RecipeConfig

    def items(self, config: Any) -> Iterator[WorkItem]:
        raise NotImplementedError

    def work_items(self, config: Any, run_dir: Path | None) -> Iterator[WorkItem]:
        """The items of a run in `run_dir` (None for a plan): `items(config)` unless the recipe reads
        something of the run folder (docqa: its edited tag tree)."""
        return self.items(config)

    def shared_context(self, item: WorkItem) -> str | None:
        """What part of the prompts this item shares with other items (wulewule: its aspect's retrieved
        context), or None. At `--concurrency 1` items that share one run one after another, so a server
        that keeps only the previous request's prefix reuses it (graphs.execute.cache_order)."""
        return None

    def prepare(self, config: Any, run_dir: Path, console: Console) -> None:
        """Work before any LLM call that needs no service (pretraining chunks, self-cognition)."""

    def before_run(self, config: Any, run_dir: Path, ctx: Any, console: Console) -> None:
        """Work with the run's clients before the first item (docqa: propose the GA pairs)."""

    def finish(self, config: Any, run_dir: Path, console: Console) -> None:
        """Work after the run (recipe-specific exports)."""

    def after_run(self, config: Any, run_dir: Path, console: Console) -> None:
        """The recipe's `finish`, then the dataset card — a by-product that never fails a run."""
        self.finish(config, run_dir, console)
        from graphs.shards import run_ledgers

        if not run_ledgers(run_dir, "accepted.jsonl"):
            return  # nothing accepted yet (e.g. stopped at the first call): nothing to describe
        try:
            from finetune.card import write_card

            console.print(f"dataset card → {write_card(run_dir).path}", highlight=False)
        except Exception as exc:  # noqa: BLE001 — a plot library or font problem must not lose the run
            log.debug("no dataset card for %s", run_dir, exc_info=True)
            console.print(f"[yellow]warning:[/] no dataset card: {type(exc).__name__}: {exc}", highlight=False)

    @staticmethod
    def paths(config: RecipeConfig, values: list[str]) -> list[Path]:
        return [config.path(v) for v in values]


def self_cognition(sc: SelfCognition | None, system: str) -> list[dict[str, Any]]:
    """Every identity question paired with an answer chosen for *that* question (the seed zipped
    answers for a random sample with the first questions, so they did not match).

    >>> self_cognition(SelfCognition(name="悟了悟了", author="社区", questions=["你是谁？"],
    ...                              answers=["我是{name}，由{author}开发。"]), "S")
    [{'conversation': [{'system': 'S', 'input': '你是谁？', 'output': '我是悟了悟了，由社区开发。'}]}]
    """
    if sc is None:
        return []
    if sc.questions and not sc.answers:
        raise InputError("self_cognition has questions but no answers in the recipe YAML")
    records = []
    for question in sc.questions:
        answer = random.Random(f"self:{question}").choice(sc.answers) if len(sc.answers) > 1 else sc.answers[0]
        output = answer.format(name=sc.name, author=sc.author)
        records.append({"conversation": [{"system": system, "input": question, "output": output}]})
    return records


def write_jsonl(path: Path, records) -> None:
    """Write records as JSONL through a temporary file: a crash never leaves half a file."""
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def recipe_app(recipe: Recipe, doc: str) -> typer.Typer:
    """A typer app with the common flags; `python -m recipes.<name> --help` shows them.

    A flag left out is `None` and overrides nothing: the environment, `.env` and the YAML decide.
    """
    from graphs.execute import execute

    app = typer.Typer(add_completion=False, help=doc, rich_markup_mode=None)
    qa = "answerer" in recipe.config_model.model_fields
    named = "name" in recipe.config_model.model_fields

    @app.command(help=doc)
    def main(
        limit: Optional[int] = typer.Option(None, min=0, help="Only the first N work items of the recipe's order, "
                                            "finished ones included (a rerun with the same N resumes them)."),
        target: Optional[int] = typer.Option(None, min=1, help="Stop once this many samples are accepted."),
        concurrency: Optional[int] = typer.Option(
            None, min=1, help="Work items in flight at once [env ZAOSHU_CONCURRENCY, YAML llm.concurrency; default 8]. "
                       "Requests in flight per endpoint: ZAOSHU_MAX_REQUESTS / llm.max_requests."),
        trace: bool = typer.Option(False, "--trace", help="Show each item's agent steps live."),
        trace_file: Optional[Path] = typer.Option(None, help="Write the trace events as JSONL here."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Plan, prompts and cost estimate; no LLM calls."),
        out: Optional[Path] = typer.Option(None, help="Run folder (default runs/<recipe>/<run-name>/)."),
        fresh: bool = typer.Option(False, "--fresh", help="Start a new run instead of resuming the last one."),
        budget: Optional[str] = typer.Option(
            None, help="Stop once the run (earlier sessions included; with --shard, the shard) has spent this: 5¥, "
                       "$2, 200k tokens. No LLM call starts past it (calls in flight finish); with --ray it is "
                       "checked as the workers report their spending (as items finish)."),
        interactive: bool = typer.Option(False, "--interactive", help="Review each accepted sample by hand."),
        config: Optional[Path] = typer.Option(None, help="Use this YAML instead of the recipe's own."),
        fsync_every: int = typer.Option(20, min=0, help="fsync the ledgers every N records (0: leave it to the OS)."),
        judge: Optional[str] = typer.Option(None, help="LLM judge after the rules: off | on | strict "
                                                       "[YAML critic.judge; default on]."),
        fail_fast: Optional[int] = typer.Option(None, "--fail-fast", min=0, help="Pause when the first K items are all "
                                                "rejected for one reason [YAML fail_fast; default 10; 0 = never]."),
        keep_going: bool = typer.Option(False, "--keep-going", help="Run every item even when the first ones "
                                                                    "all fail the same way."),
        answerer: Optional[str] = typer.Option(None, help="rag | huixiangdou [YAML answerer.backend; default rag].",
                                               hidden=not qa),
        huixiangdou_url: Optional[str] = typer.Option(None, help="HuixiangDou server, e.g. http://127.0.0.1:23333.",
                                                      hidden=not qa),
        web_fallback: Optional[str] = typer.Option(None, help="off | serper | ddgs: search the web when the "
                                                              "knowledge base cannot answer [default off].",
                                                   hidden=not qa),
        shard: Optional[str] = typer.Option(None, help="Run only shard i of n (e.g. 1/4) of the items, in "
                                                       "<run>/shards/i-of-n/; readers see one run."),
        ray: bool = typer.Option(False, "--ray", help="Run the items in Ray actors (pip install 'zaoshu[ray]')."),
        ray_address: Optional[str] = typer.Option(None, help="Ray cluster: auto | ray://HOST:10001 "
                                                             "[default: start a local one]."),
        workers: Optional[int] = typer.Option(None, min=1, help="Ray worker actors [default: CPUs, at most 8; never "
                                                                 "more than the items to run or in flight]."),
        knowledge: Optional[list[Path]] = typer.Option(None, "--knowledge", help="A folder of your documents "
                                                       "(repeatable); replaces the YAML's knowledge folders.",
                                                       hidden=not qa),
        text_field: Optional[list[str]] = typer.Option(
            None, "--text-field", help="JSON/JSONL/CSV fields that hold text (repeatable) [YAML text_fields; "
                                       "default: the index's own, else text, content, output].", hidden=not qa),
        name: Optional[str] = typer.Option(None, "--name", help="The dataset's name [YAML name].", hidden=not named),
    ) -> None:
        request = RunRequest(limit=limit, target=target, concurrency=concurrency, trace=trace, trace_file=trace_file,
                             dry_run=dry_run, out=out, fresh=fresh, budget=budget, interactive=interactive,
                             config=config, fsync_every=fsync_every, answerer=answerer,
                             huixiangdou_url=huixiangdou_url, web_fallback=web_fallback, judge=judge,
                             fail_fast_k=fail_fast, keep_going=keep_going, shard=shard, ray=ray,
                             ray_address=ray_address, workers=workers, knowledge=knowledge, text_field=text_field,
                             name=name)
        try:
            code = execute(recipe, request)
        except KeyboardInterrupt:  # before the run (index, exports); the run itself stops cleanly on its own
            make_console(stderr=True).print("[red]interrupted[/]: rerun the same command to go on", highlight=False)
            code = 130
        raise typer.Exit(code)

    return app


#: What typer raises for a usage error (a misspelt flag, a bad value) and for an aborted prompt. Newer
#: typer (0.29 here) raises its own copy of click's classes (`typer._click`), older typer click's:
#: both are reached through typer's public names.
USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
ABORT = typer.Abort


def run_app(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run a zaoshu command (`zaoshu …`, `python -m recipes.<name>`) and exit with its code: a user
    error is one red line (exit 1), a usage error the usage and one line (exit 2), an aborted prompt
    one line (exit 130) — never a traceback."""
    err = make_console(stderr=True)
    try:
        rc = app(args=argv, standalone_mode=False)
    except ZaoshuError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)  # text, not markup
        sys.exit(1)
    except USAGE_ERROR as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ABORT:
        err.print("[red]aborted[/]")
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


def run_cli(app: typer.Typer) -> None:
    """Entry for `python -m recipes.<name>`."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run_app(app)
