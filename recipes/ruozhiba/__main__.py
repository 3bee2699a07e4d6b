"""python -m recipes.ruozhiba --input FILE --out DIR [--format openai|xtuner] [--split 0.7] [--seed 42] [--critic]

Convert COIG-CQIA rows (e.g. the 240-row ruozhiba_raw.jsonl) to OpenAI messages or XTuner
conversations and write a seeded train/test split to DIR/train.jsonl and DIR/test.jsonl
(DIR defaults to runs/ruozhiba/<run-name>/). Bad rows are reported by line number and skipped.
`--critic` asks the LLM judge configured for the critic role (ZAOSHU_PRESET / ZAOSHU_BASE_URL,
ZAOSHU_MODEL, ZAOSHU_API_KEY) about every answer and lists the disputed ones in DIR/flagged.jsonl;
each verdict is kept in DIR/verdicts.jsonl as it arrives, so a conversion into DIR again (after a
Ctrl-C, or for another split) asks the judge only about rows it has no verdict for.
Defaults come from recipes/ruozhiba/ruozhiba.yaml; flags override them.
"""

from __future__ import annotations

import logging
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import Literal

import typer
import yaml
from pydantic import Field, ValidationError
from rich.console import Console
from rich.markup import escape

from agents.console import make_console
from agents.errors import InputError, ZaoshuError
from graphs.config import LLMBlock, Strict, describe
from recipes.ruozhiba.convert import VERDICTS, RememberedJudge

DEFAULTS_YAML = Path(__file__).with_name("ruozhiba.yaml")

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0], rich_markup_mode=None)


class CriticBlock(Strict):
    concurrency: int = Field(default=4, ge=1, description="Judge calls in flight at once with --critic.")


class RuozhibaConfig(Strict):
    """ruozhiba.yaml: every key declared, so a misspelt one is an error instead of a silent default."""

    format: Literal["openai", "xtuner", "alpaca", "sharegpt"] = "openai"
    split: float = Field(default=0.7, gt=0, lt=1, description="Train fraction.")
    seed: int = 42
    system: str | None = ""
    critic: CriticBlock = Field(default_factory=CriticBlock)
    llm: LLMBlock = Field(default_factory=LLMBlock)


def load_recipe_yaml(path: Path = DEFAULTS_YAML) -> RuozhibaConfig:
    """The recipe's defaults, validated; a broken file, an unknown key or a wrong value is an
    `InputError` naming the file and the key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read recipe config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: recipe config must be a mapping of keys, not {type(data).__name__}")
    try:
        return RuozhibaConfig.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe(exc, RuozhibaConfig, path)) from None


def _make_judge(config: RuozhibaConfig):
    """The LLM judge for the critic role; `ConfigError` (one red line) when no endpoint is configured."""
    from agents.llm import make_client
    from agents.settings import load_settings
    from recipes.ruozhiba.convert import LLMJudge

    settings = load_settings(yaml_data=config.llm.model_dump(exclude_none=True))
    client = make_client(settings.for_role("critic"))
    return LLMJudge(client, attempts=settings.structured_attempts), settings


OUTPUTS = ("train.jsonl", "test.jsonl", "accepted.jsonl", "flagged.jsonl", VERDICTS, "stats.json",
           "config.resolved.yaml")


def _check_out(out: Path, input_path: Path) -> None:
    """`InputError` when the output folder cannot be made (it, or a folder above it, is a file), or when
    the conversion would write over its own input (`-i data/train.jsonl -o data`)."""
    for name in OUTPUTS:
        if (out / name).exists() and (out / name).samefile(input_path):
            raise InputError(f"--out {out} would write {name} over the input {input_path}: choose another --out")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: no permission to write in {existing}")


@app.command()
def main(
    input_path: Path = typer.Option(..., "--input", "-i", help="COIG-CQIA JSONL file (instruction/input/output rows)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder; default runs/ruozhiba/<run-name>/."),
    run_name: str | None = typer.Option(None, help="Run name for the default --out; default: a timestamp."),
    fmt: str | None = typer.Option(None, "--format", "-f", help="openai (default) | xtuner | alpaca | sharegpt."),
    split: float | None = typer.Option(None, help="Train fraction (default 0.7)."),
    seed: int | None = typer.Option(None, help="Shuffle seed (default 42)."),
    system: str | None = typer.Option(None, help="System prompt for every sample (default: none)."),
    critic: bool = typer.Option(False, "--critic", help="Ask the LLM judge about every answer (needs an endpoint)."),
    config: Path = typer.Option(DEFAULTS_YAML, help="Recipe YAML with the defaults."),
) -> None:
    """Convert COIG-CQIA rows and write a seeded train/test split."""
    console = make_console(highlight=False, soft_wrap=True)
    previous = signal.signal(signal.SIGTERM, _terminated)  # a kill ended it without a word
    try:
        _run(console, input_path, out, run_name, fmt, split, seed, system, critic, config)
    except ZaoshuError as exc:  # on stderr, as every zaoshu command says it: `> log` must not hide it
        make_console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error: {escape(str(exc))}[/]")
        raise typer.Exit(1) from None
    except Interrupted as stop:
        make_console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]{stop.how}[/]: {escape(str(stop))}")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


class Interrupted(BaseException):
    """Ctrl-C or a SIGTERM during the conversion; its text says what was kept and how to go on."""

    def __init__(self, message: str, how: str = "interrupted"):
        super().__init__(message)
        self.how = how


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the conversion is, so it stops as a Ctrl-C does."""


def _terminated(signum, frame) -> None:
    raise _Terminated()


def _run(console: Console, input_path: Path, out: Path | None, run_name: str | None, fmt: str | None,
         split: float | None, seed: int | None, system: str | None, critic: bool, config_path: Path) -> None:
    from recipes.ruozhiba.convert import convert

    config = load_recipe_yaml(config_path)
    fmt = fmt or config.format
    split = split if split is not None else config.split
    seed = seed if seed is not None else config.seed
    system = system if system is not None else config.system or ""
    given_out = out is not None
    out = out or Path("runs") / "ruozhiba" / (run_name or datetime.now().strftime("%Y%m%d-%H%M%S"))
    if not input_path.is_file():
        raise InputError(f"input file not found: {input_path}")
    _check_out(out, input_path)  # before the critic's paid calls: a folder that cannot be made lost every verdict

    judge, resolved = None, {"input": str(input_path), "out": str(out), "format": fmt, "split": split,
                             "seed": seed, "system": system, "critic": critic}
    if critic:
        llm_judge, settings = _make_judge(config)
        resolved["llm"] = settings.masked_dump()["resolved"]["critic"]
        console.print(f"critic: {resolved['llm']['model']} at {resolved['llm']['base_url']}")
        judge = RememberedJudge(llm_judge, out / VERDICTS, resolved["llm"]["model"])
        if judge.known:
            console.print(f"critic: {len(judge.known)} verdicts of {resolved['llm']['model']} in {judge.path} "
                          "from an earlier conversion: rows they judged are not asked again")

    try:
        report = convert(input_path, out, fmt=fmt, split=split, seed=seed, system=system, judge=judge,
                         concurrency=config.critic.concurrency)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (_terminated): the verdicts so far are in verdicts.jsonl
        raise _stopped(exc, judge, out, given_out) from None
    (out / "config.resolved.yaml").write_text(yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False),
                                              encoding="utf-8")
    for b in report.bad:
        console.print(f"[yellow]warning:[/] {input_path} {b} — skipped")
    accepted = report.counts["train"] + report.counts["test"]
    console.print(f"read {report.rows} rows from {input_path}: {accepted} converted, {len(report.bad)} bad rows skipped"
                  + (f" (lines {', '.join(str(b.line) for b in report.bad)})" if report.bad else ""))
    for name in ("train", "test"):
        console.print(f"{name}: {report.counts[name]} → {report.files[name]}")
    for path in report.removed:
        console.print(f"removed {path}: an earlier --critic conversion's, and this one was not judged")
    if report.critic is not None:
        c = report.critic
        unjudged = ", ".join(str(sample.meta.get("source_line")) for sample, _ in c.errors)
        console.print(f"critic: {c.judged} judged, {len(c.flagged)} flagged → {report.files['flagged']}, "
                      f"{len(c.errors)} could not be judged" + (f" (lines {unjudged})" if c.errors else ""))


def _stopped(exc: KeyboardInterrupt, judge: RememberedJudge | None, out: Path, given_out: bool) -> Interrupted:
    """What the user is told when the conversion stops half way: nothing but the verdicts is written, and
    those are kept for the next conversion into the same folder."""
    how = "stopped by SIGTERM (a kill, or the machine shutting down)" if isinstance(exc, _Terminated) else "interrupted"
    message = "the conversion did not finish; "
    kept = len(judge.known) + judge.written if judge is not None else 0
    if not kept:
        return Interrupted(message + "rerun the same command to write it", how)
    rerun = "rerun the same command" if given_out else f"rerun with --out {out}"
    return Interrupted(f"{message}{kept} verdicts are kept in {judge.path}: {rerun} "
                       "to judge only the other rows and write the split", how)


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    app()
