"""`zaoshu graph show <name>` and `zaoshu runs list | show`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from agents.console import make_console
from agents.errors import InputError

graph_app = typer.Typer(no_args_is_help=True, help="The LangGraph graphs that make samples.")
runs_app = typer.Typer(no_args_is_help=True, help="Runs on disk: list them, show one.")
console = make_console()

RUNS_ROOT = typer.Option(Path("runs"), "--root", help="Folder that holds runs/<recipe>/<run-name>/.")


@graph_app.command("show")
def graph_show(name: str = typer.Argument(..., help="qa | dialogue | persona")) -> None:
    """Print the graph's mermaid diagram."""
    from graphs.registry import GRAPHS, mermaid

    if name not in GRAPHS:
        raise InputError(f"unknown graph {name!r}: choose one of {', '.join(GRAPHS)}")
    console.print(mermaid(name), markup=False, highlight=False)


def _run_dirs(root: Path) -> list[Path]:
    """Runs under `root`: folders with a stats.json, their own or a shard's (the first shard may still run)."""
    own = {p.parent for p in root.glob("*/*/stats.json")}
    return sorted(own | {p.parents[2] for p in root.glob("*/*/shards/*/stats.json")})


def run_status(run: Path, stats: dict, *, long: bool = True) -> str:
    """stats.json's status, except that a run no live process holds is not `preparing` or `running`: its
    process was killed (stats.json is kept current while a run goes, so its counts stand). A sharded
    run's shards are checked one by one (graphs.rundir.shard_stats); `mixed` names each shard's."""
    from graphs.rundir import lock_held

    status = stats.get("status", "?")
    shards = stats.get("shards")
    if shards is not None:
        if status == "mixed" and long:
            return "mixed (" + ", ".join(f"{name} {each}" for name, each in shards.items()) + ")"
        return status
    if status in ("preparing", "running") and not lock_held(run):
        return "stopped (its process ended without closing; rerun to resume)" if long else "stopped"
    return status


@runs_app.command("list")
def runs_list(root: Path = RUNS_ROOT, as_json: bool = typer.Option(False, "--json")) -> None:
    """One line per run: recipe, name, status, accepted / rejected / failed, tokens, cost."""
    from graphs.rundir import read_run_stats

    runs = _run_dirs(root)
    if as_json:
        rows = [{"recipe": r.parent.name, "run": r.name, **read_run_stats(r)} for r in runs]
        console.print_json(json.dumps(rows, ensure_ascii=False))
        return
    if not runs:
        console.print(f"no runs under {root}/")
        return
    table = Table(title=f"runs under {root}/")
    for column in ("recipe", "run", "status", "accepted", "rejected", "failed", "tokens in/out", "cost", "duration"):
        table.add_column(column)
    for run in runs:
        s = read_run_stats(run)
        status = run_status(run, s, long=False) if s else "unreadable"  # its stats.json: a warning names it
        table.add_row(run.parent.name, run.name, status, str(s.get("accepted", 0)),
                      str(s.get("rejected", 0)), str(s.get("failed", 0)),
                      f"{s.get('input_tokens', 0):,}/{s.get('output_tokens', 0):,}",
                      f"{s.get('currency', '¥')}{s.get('cost', 0):.4f}", f"{s.get('duration_s', 0):.0f}s")
    console.print(table)


def summarize_run(run: Path) -> dict:
    """Counts by reason code and by aspect / persona / scene / style / emotion / area / answer source (QA
    `retrieval`), over the ledger lines that can be read (`lines`: how many, per ledger); `skipped` names each
    one that cannot (e.g. a last line torn by a crash), as export does. `stats` is stats.json, {} for a folder
    without one (a merge's)."""
    from graphs.ledger import BadLine
    from graphs.rundir import read_run_stats
    from graphs.shards import read_ledger

    stats = read_run_stats(run)
    codes: Counter[str] = Counter()
    lines = {"accepted": 0, "rejected": 0}
    by_field: dict[str, Counter[str]] = {}
    skipped: list[BadLine] = []
    # retrieval: where a QA answer came from (kb, web, huixiangdou, chunk, none; kb+web when its turns differ)
    fields = ("aspect", "role", "scene", "style", "emotion", "area", "item_kind", "tag", "retrieval")
    for status in ("accepted", "rejected"):  # every shard of the run
        for record in read_ledger(run, f"{status}.jsonl", skipped):
            lines[status] += 1
            if status == "rejected":
                codes.update(record.get("codes", []))
            meta = (record.get("meta") or {}) if status == "accepted" else {**(record.get("key") or {})}
            for name in fields:
                if meta.get(name) is not None:
                    by_field.setdefault(name, Counter())[f"{meta[name]} ({status})"] += 1
    summary = {"stats": stats, "lines": lines, "codes": dict(codes.most_common()),
               "by": {k: dict(v.most_common()) for k, v in by_field.items()}}
    stale = stale_samples(read_ledger(run, "accepted.jsonl", []))  # its unreadable lines are in `skipped` already
    if stale is not None:
        summary["stale"] = stale
    if skipped:
        summary["skipped"] = [f"{b.path}: {b}" for b in skipped]
    return summary


def stale_samples(records) -> dict[str, int] | None:
    """Accepted samples whose source file (`meta.source_files`: path → SHA-256 when it was written) is
    gone or has changed since; None when no sample records its files."""
    from knowledge.sync import file_sha256

    now: dict[str, str | None] = {}
    counts = {"deleted": 0, "changed": 0, "current": 0}
    seen = False
    for record in records:
        files = (record.get("meta") or {}).get("source_files") or {}
        if not files:
            continue
        seen = True
        states = []
        for path, sha in files.items():
            if path not in now:
                try:
                    now[path] = file_sha256(Path(path)) if Path(path).is_file() else None
                except OSError:  # it cannot be shown unchanged: counted as changed, to be looked at
                    now[path] = "unreadable"
            states.append("deleted" if now[path] is None else "changed" if now[path] != sha else "current")
        counts["deleted" if "deleted" in states else "changed" if "changed" in states else "current"] += 1
    return counts if seen else None


@runs_app.command("show")
def runs_show(run: Path = typer.Argument(..., help="A run folder, e.g. runs/tianji/20261121-101500"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Counts by reason code and by aspect / scene / style / answer source, tokens, cost, duration."""
    from agents.usage import calls
    from graphs.shards import run_ledgers

    if not run_ledgers(run, "accepted.jsonl") and not (run / "stats.json").exists():
        raise InputError(f"not a run folder: {run} (no stats.json or accepted.jsonl)")
    summary = summarize_run(run)
    if as_json:
        console.print_json(json.dumps(summary, ensure_ascii=False))
        return
    for line in summary.get("skipped", []):
        console.print(f"[yellow]warning:[/] {escape(line)} (skipped)", highlight=False)
    s = summary["stats"]
    name = f"[bold]{escape(str(run))}[/]"
    if not s:  # e.g. `zaoshu merge --out`: samples, but no run made them here
        n = summary["lines"]
        what = "an unreadable stats.json" if (run / "stats.json").exists() else "no stats.json"
        console.print(f"{name}  accepted {n['accepted']}  rejected {n['rejected']}  "
                      f"(ledger lines; {what}, so no status, failures, tokens or cost)", highlight=False)
    else:
        console.print(f"{name}  status {run_status(run, s)}  accepted {s.get('accepted', 0)}  "
                      f"rejected {s.get('rejected', 0)}  failed {s.get('failed', 0)}  "
                      f"tokens {s.get('input_tokens', 0):,}/{s.get('output_tokens', 0):,}  "
                      f"cost {s.get('currency', '¥')}{s.get('cost', 0):.4f}  duration {s.get('duration_s', 0):.0f}s")
        if cancelled := sum(u.get("cancelled", 0) for u in (s.get("usage_by_role") or {}).values()):
            console.print(f"{calls(cancelled)} cancelled in flight (stops, Ctrl-C): possibly billed, "
                          "not in the tokens or cost", highlight=False)
    if summary.get("stale"):
        st = summary["stale"]
        console.print(f"stale: {st['deleted'] + st['changed']} samples come from files deleted ({st['deleted']}) "
                      f"or changed ({st['changed']}) since; {st['current']} current", highlight=False)
    if s.get("chunks"):
        ch = s["chunks"]
        skipped = ", ".join(f"{r} {n}" for r, n in ch.get("skipped", {}).items()) or "none"
        console.print(f"chunks: {ch['total']} total · {ch['used']} used · {ch['failed']} failed · "
                      f"{ch['pending']} not run yet · skipped: {skipped}", highlight=False)
    if summary["codes"]:
        table = Table(title="rejections by reason code")
        table.add_column("code")
        table.add_column("count", justify="right")
        for code, n in summary["codes"].items():
            table.add_row(code, str(n))
        console.print(table)
    for name, counts in summary["by"].items():
        table = Table(title=f"by {name}")
        table.add_column(name)
        table.add_column("count", justify="right")
        for value, n in counts.items():
            table.add_row(value, str(n))
        console.print(table)
