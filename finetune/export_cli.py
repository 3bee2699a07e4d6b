"""`zaoshu export`, `zaoshu merge`, `zaoshu stats` and `zaoshu card`: top-level commands added to the root CLI by `register(app)`.

    zaoshu export runs/wulewule/r1 --format xtuner --split 0.7 --seed 42
    zaoshu merge runs/tianji/a runs/tianji/b --out runs/tianji/merged
    zaoshu stats runs/tianji/merged/accepted.jsonl --by style --by critic.decision
    zaoshu card runs/tianji/merged --out docs/

>>> import typer; app = typer.Typer(); register(app)
>>> sorted(c.name for c in app.registered_commands)
['card', 'export', 'merge', 'stats']
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agents.console import make_console
from agents.errors import InputError
from finetune.formats import FORMATS
from finetune.preference import PREFERENCE_FORMATS
from graphs.ledger import BadLine

EXPORT_FORMATS = FORMATS + PREFERENCE_FORMATS
"""Every `zaoshu export --format`: `export_run`'s, then `export_preferences`'s."""


def _console() -> Console:
    return make_console(highlight=False, soft_wrap=True)


def _warn_bad(console: Console, source: str, bad: list[BadLine]) -> None:
    """One line for each line skipped, naming the file it is in (a shard's ledger, say), else `source`."""
    for b in bad:
        console.print(f"[yellow]warning:[/] {escape(f'{b.path or source}: {b}')} (skipped)")


def export(
    run_dir: Path = typer.Argument(..., help="Run directory (runs/<recipe>/<run-name>/)."),
    fmt: str = typer.Option("xtuner", "--format", "-f", help=f"One of: {', '.join(EXPORT_FORMATS)}."),
    split: float | None = typer.Option(None, help="Train fraction, e.g. 0.7 → train/test files; none → all.jsonl."),
    seed: int = typer.Option(42, help="Seed of the shuffle before the split."),
    keep_meta: bool = typer.Option(False, "--keep-meta", help="Keep each sample's id and meta in the records."),
    as_json: bool = typer.Option(False, "--json/--jsonl", help="Write one JSON array per file instead of JSONL."),
    with_reasoning: bool = typer.Option(False, "--with-reasoning",
                                        help="Put each answer's reasoning in: <think>…</think> before it "
                                             "(xtuner, sharegpt, alpaca, dpo, kto, xtuner-dpo) or reasoning_content (openai)."),
    skip_artifacts: bool = typer.Option(False, "--skip-artifacts",
                                        help="dpo / kto / xtuner-dpo: leave out drafts sent back only for "
                                             "artifacts (markup, preamble, punctuation, leaks)."),
    ignore_review: bool = typer.Option(False, "--ignore-review", help="Export accepted.jsonl as written, "
                                       "without the decisions of `zaoshu review` (review.jsonl)."),
    balance: str | None = typer.Option(None, "--balance", help="Draw the same number of samples for each value "
                                       "of this meta field, e.g. tag (docqa)."),
    per_tag: int | None = typer.Option(None, "--per-tag", min=1, help="With --balance: samples per value, at most "
                                       "(default 50)."),
) -> None:
    """Export a run's accepted samples to XTuner, OpenAI, Alpaca, ShareGPT or pretraining records, or the
    critic's decisions to preference data (dpo, kto, xtuner-dpo)."""
    from finetune.export import export_run
    from finetune.preference import export_preferences

    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of: {', '.join(EXPORT_FORMATS)}")
    if with_reasoning and fmt == "pretrain":
        raise InputError("--with-reasoning does nothing for --format pretrain: a pretraining record is the text "
                         "alone; leave it out, or choose xtuner, openai, sharegpt, alpaca or a preference format")
    if balance is not None and fmt in PREFERENCE_FORMATS:
        raise InputError(f"--balance does nothing for --format {fmt}: it draws samples of {', '.join(FORMATS)}; "
                         f"leave it out, or choose one of those")
    if per_tag is not None and balance is None:
        raise InputError(f"--per-tag {per_tag} does nothing without --balance FIELD (e.g. --balance tag)")
    if skip_artifacts and fmt not in PREFERENCE_FORMATS:
        raise InputError(f"--skip-artifacts does nothing for --format {fmt}: it leaves out sent-back drafts, which "
                         f"only {', '.join(PREFERENCE_FORMATS)} write; leave it out, or choose one of those")
    console = _console()
    common = dict(split=split, seed=seed, keep_meta=keep_meta, as_json=as_json, with_reasoning=with_reasoning,
                  ignore_review=ignore_review)
    if fmt in PREFERENCE_FORMATS:
        report = export_preferences(run_dir, fmt, skip_artifacts=skip_artifacts, **common)
    else:
        report = export_run(run_dir, fmt, balance=balance, per_tag=per_tag or 50, **common)
    _warn_bad(console, str(run_dir), report.bad_lines)
    if any(report.review.values()):
        console.print("review.jsonl: {edited} edited, {dropped} rejected by the reviewer (dropped), "
                      "{added} rejected samples accepted by the reviewer (added)".format(**report.review))
    if report.balanced:
        console.print(report.balanced, highlight=False)
    for name, path in report.files.items():
        console.print(f"{name}: {report.counts[name]} records → {path}")
    if report.dataset_info:
        console.print(f"LLaMA-Factory dataset_info: {report.dataset_info}")


def merge(
    inputs: list[Path] = typer.Argument(..., help="Run directories and/or dataset files (any supported format)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output run directory (→ accepted.jsonl) or a .jsonl file."),
    dedup: bool = typer.Option(True, "--dedup/--no-dedup", help="Drop samples whose normalized text repeats."),
) -> None:
    """Join runs into one accepted.jsonl, dropping exact (normalized-text) duplicates."""
    from finetune.merge import merge_runs

    console = _console()
    report = merge_runs(inputs, out, dedup=dedup)
    for source, bad in report.bad_lines.items():
        _warn_bad(console, source, bad)
    for source, count in report.read.items():
        console.print(f"read {count} samples from {source}")
    console.print(f"wrote {report.written} samples to {report.out} ({report.duplicates} duplicates dropped)")


def _stats_tables(stats: dict) -> list[Table]:
    main = Table(title=f"{stats['file']}", show_header=True)
    main.add_column("measure")
    for column in ("min", "mean", "p50", "p95", "max"):
        main.add_column(column, justify="right")
    t = stats["turns"]
    main.add_row("turns per record", str(t["min"]), str(t["mean"]), "", "", str(t["max"]))
    for name in ("input_chars", "output_chars"):
        s = stats[name]
        main.add_row(name.replace("_", " ") + " per turn", *(str(s[k]) for k in ("min", "mean", "p50", "p95", "max")))
    counts = Table(show_header=True)
    counts.add_column("count")
    counts.add_column("value")
    counts.add_column("n", justify="right")
    counts.add_row("records", "", str(stats["records"]))
    counts.add_row("turns", "", str(t["total"]))
    counts.add_row("with system prompt", "", str(stats["with_system"]))
    counts.add_row("bad lines", "", str(len(stats["bad_lines"])))
    for group in ("formats", "kinds"):
        for value, n in stats[group].items():
            counts.add_row(group[:-1], value, str(n))
    for field, values in stats["by"].items():
        for value, n in values.items():
            counts.add_row(field, value, str(n))
    return [main, counts]


def stats(
    path: Path = typer.Argument(..., help="A dataset file: accepted.jsonl or any export (.jsonl or .json)."),
    by: list[str] = typer.Option([], "--by", help="Count values of this meta field (dotted paths allowed); repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Counts, turns and input/output lengths of a dataset file, and counts by meta fields."""
    from finetune.export import file_stats

    result = file_stats(path, by=by)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    console = _console()
    for line in result["bad_lines"]:
        console.print(f"[yellow]warning:[/] {path}: {line} (skipped)")
    for table in _stats_tables(result):
        console.print(table)


def card(
    run_dir: Path = typer.Argument(..., help="Run directory (runs/<recipe>/<run-name>/)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for DATASET_CARD.md and its plots (default: the run)."),
    license: str = typer.Option("other", help="The license to put in the card's header (a Hub license id)."),
) -> None:
    """Write a Hugging Face dataset card (DATASET_CARD.md) with PNG plots for a run."""
    from finetune.card import license_warning, write_card

    card = write_card(run_dir, out, license=license)
    console = _console()
    if warning := license_warning(license):
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    for line in card.bad_lines:
        console.print(f"[yellow]warning:[/] {escape(line)} (skipped)")
    console.print(f"dataset card → {card.path} (plots: {', '.join(p.name for p in card.plots)})")


def register(app: typer.Typer) -> None:
    """Add `export`, `merge`, `stats` and `card` as top-level commands of the root CLI."""
    app.command("export")(export)
    app.command("merge")(merge)
    app.command("stats")(stats)
    app.command("card")(card)
