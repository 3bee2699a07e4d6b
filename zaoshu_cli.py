"""The `zaoshu` command: one entry point that gathers each package's sub-commands.

    zaoshu --help
    zaoshu config show            # resolved settings, keys masked
    zaoshu llm ping               # one call per role: model, latency, tokens — or the clear error;
                                  # then which JSON modes each endpoint accepts and which a run will use
                                  # (exit 1 when a role's mode gets no valid JSON)
    zaoshu kb … / zaoshu graph … / zaoshu runs … / zaoshu export … / zaoshu finetune …
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from agents.console import make_console

app = typer.Typer(name="zaoshu", no_args_is_help=True, add_completion=False,
                  help="造数 zaoshu: verified fine-tuning data for Chinese LLM applications.")
config_app = typer.Typer(no_args_is_help=True, help="Show the resolved settings.")
llm_app = typer.Typer(no_args_is_help=True, help="Check the configured LLM endpoints.")
app.add_typer(config_app, name="config")
app.add_typer(llm_app, name="llm")

console = make_console()


def _recipe_llm_block(recipe: Optional[Path]) -> dict:
    if recipe is None:
        return {}
    import yaml

    from agents.errors import InputError

    if not recipe.is_file():
        raise InputError(f"recipe config not found: {recipe}")
    return (yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}).get("llm") or {}


@config_app.command("show")
def config_show(
    recipe: Optional[Path] = typer.Option(None, help="A recipe YAML whose `llm:` block sits under the environment."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print the settings each role will use (CLI > env/.env > recipe YAML > defaults), keys masked."""
    from agents.settings import ROLES, load_settings

    settings = load_settings(_recipe_llm_block(recipe))
    data = settings.masked_dump()
    if as_json:
        console.print_json(json.dumps(data["resolved"], ensure_ascii=False))
        return
    table = Table(title="zaoshu settings (keys masked)")
    table.add_column("field")
    for role in ROLES:
        table.add_column(role)
    for field in data["resolved"]["asker"]:
        if field == "role":
            continue
        table.add_row(field, *(str(data["resolved"][r][field]) for r in ROLES))
    console.print(table)


@llm_app.command("ping")
def llm_ping(recipe: Optional[Path] = typer.Option(None, help="A recipe YAML with an `llm:` block.")) -> None:
    """Send one short request to each role's endpoint and report model, latency and tokens."""
    from agents.llm import make_client
    from agents.llm_errors import LLMError
    from agents.settings import ROLES, load_settings

    settings = load_settings(_recipe_llm_block(recipe))
    table = Table(title="LLM ping")
    for column in ("role", "endpoint", "model", "latency", "tokens in/out", "result"):
        table.add_column(column)
    failed = False

    configs = {role: settings.for_role(role).require_endpoint() for role in ROLES}  # ConfigError → one line

    async def ping(role: str) -> None:
        nonlocal failed
        cfg = configs[role].model_copy(update={"max_retries": 1})
        client = make_client(cfg)
        start = time.monotonic()
        try:
            reply = await client.chat([{"role": "user", "content": "你好，请回复“在”。"}], max_tokens=8)
            table.add_row(role, cfg.base_url, reply.model, f"{time.monotonic() - start:.2f}s",
                          f"{reply.input_tokens}/{reply.output_tokens}", f"[green]ok[/]: {reply.text[:20]}")
        except LLMError as exc:
            failed = True
            table.add_row(role, cfg.base_url, cfg.model, "-", "-", f"[red]{exc}[/]")
        finally:
            await client.aclose()

    async def ping_all() -> None:
        for role in ROLES:
            await ping(role)

    asyncio.run(ping_all())
    console.print(table)
    if failed or not _probe_json_modes(configs):
        raise typer.Exit(1)


def _probe_json_modes(configs: dict) -> bool:
    """One line per endpoint and model: what each JSON mode got, and the mode each role will use; then
    an error line for each endpoint where a role's mode gave no valid JSON. False if there was one."""
    from agents.structured import chosen_mode, json_mode_problem, probe_json_modes

    endpoints: dict[tuple, list] = {}
    problems: list[str] = []
    for role, cfg in configs.items():
        endpoints.setdefault((cfg.base_url, cfg.model), []).append(cfg)
    for (url, model), cfgs in endpoints.items():
        import logging

        logging.getLogger("agents.llm").setLevel(logging.ERROR)  # the refusals are the point here
        results = asyncio.run(probe_json_modes(cfgs[0]))
        modes = {c.role: chosen_mode(c.json_mode, results) for c in cfgs}
        uses = "; ".join(f"{c.role} uses {modes[c.role]}"
                         + (f" (falls back from {c.json_mode})" if modes[c.role] != c.json_mode else "")
                         for c in cfgs)
        console.print(f"JSON modes at {url} ({model}): "
                      + " · ".join(f"{mode} {result}" for mode, result in results.items()) + f" → {uses}",
                      highlight=False, soft_wrap=True)
        if problem := json_mode_problem(f"{url} ({model})", modes, results):
            problems.append(problem)
    err = make_console(stderr=True)
    for problem in problems:
        err.print(f"[red]error:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    return not problems


def _register_subcommands() -> None:
    """Each package owns its sub-commands; importing them is cheap (heavy imports are lazy)."""
    from finetune.cli import app as finetune_app
    from finetune.export_cli import register as register_export
    from graphs.cli import graph_app, runs_app
    from graphs.webreview.cli import register as register_review
    from knowledge.cli import app as kb_app

    app.add_typer(kb_app, name="kb")
    app.add_typer(graph_app, name="graph")
    app.add_typer(runs_app, name="runs")
    app.add_typer(finetune_app, name="finetune")
    register_export(app)
    register_review(app)
    from recipes.docqa.new import new

    app.command("new")(new)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a user-facing error is one red line and exit code 1, never a traceback."""
    from recipes.base import run_app

    _register_subcommands()
    run_app(app, argv)


if __name__ == "__main__":
    main()
