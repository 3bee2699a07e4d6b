"""`zaoshu kb …`: build, add, search, stats, calibrate.

    zaoshu kb build knowledge/bases/xiyouji --index .kb/xiyouji
    zaoshu kb search "孙悟空在哪里学的七十二变？" --index .kb/xiyouji -k 5
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Knowledge bases: build, add, search, stats, calibrate.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

IndexOpt = typer.Option(..., "--index", envvar="ZAOSHU_KB_INDEX", help="Index folder (created by build).")
EmbedderOpt = typer.Option(
    None, "--embedder", envvar="ZAOSHU_EMBED_MODEL",
    help="auto (a downloaded bge-small-zh, else the bundled MiniLM), a local model folder, a downloaded "
         "Hugging Face name, openai:<model>, or hash. An existing index keeps the model it was built with.")


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}")


def _run_sync(action, label: str):
    """Run build/add with a progress bar over the files that need embedding."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task(label, total=None)

        def update(stage: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return action(update)


def _print_report(report, kb) -> None:
    console.print(f"[green]{report.root}[/green]: {report.added} added, {report.changed} changed, "
                  f"{report.deleted} deleted, {report.unchanged} unchanged; {report.chunks_added} chunks embedded "
                  f"({report.chunks_per_second:.1f}/s), {report.chunks_deleted} dropped; "
                  f"index now {kb.store.count_chunks()} chunks ({kb.embedder.name}).")
    for item in report.skipped[:30]:
        err.print(f"  [yellow]skipped[/yellow] {item.path}: {item.reason}")
    for item in report.empty[:30]:
        err.print(f"  [yellow]empty[/yellow]   {item.path}: {item.reason}")
    extra = len(report.skipped) + len(report.empty) - 60
    if extra > 0:
        err.print(f"  … and {extra} more (see zaoshu kb stats)")


@app.command()
def build(folder: Path = typer.Argument(..., help="Folder of documents (searched recursively)."),
          index: Path = IndexOpt, embedder: str | None = EmbedderOpt,
          chunk_size: int = typer.Option(500, help="Characters per chunk."),
          overlap: int = typer.Option(50, help="Characters shared by neighbouring chunks."),
          text_field: list[str] = typer.Option(["text", "content", "output"], "--text-field",
                                               help="JSON/JSONL/CSV fields that hold text (repeatable)."),
          rebuild: bool = typer.Option(False, "--rebuild", help="Delete the index and build it from scratch."),
          ray: bool = typer.Option(False, "--ray", help="Embed with Ray Data across a cluster (zaoshu[ray])."),
          ray_address: str | None = typer.Option(None, help="auto | ray://HOST:10001 [default: a local cluster]."),
          workers: int | None = typer.Option(None, help="Ray embedding workers [default: the cluster's CPUs]."),
          gpus: float = typer.Option(0.0, help="GPUs per Ray embedding worker (e.g. 1).")) -> None:
    """Create an index from FOLDER, or bring it up to date (only new or changed files are embedded)."""
    from knowledge.embeddings import load_embedder
    from knowledge.index import DB_FILE, KnowledgeBase

    if ray:  # knowledge/ray_build.py: the same index, the embedding done on the cluster
        from knowledge.ray_build import build_on_ray

        kb, remote, here = _run_sync(lambda update: build_on_ray(
            folder, index, embedder, address=ray_address, workers=workers, gpus=gpus, chunk_size=chunk_size,
            overlap=overlap, text_fields=text_field, rebuild=rebuild, progress=update), "embedding files")
        with kb:
            _print_report(kb.last_report, kb)
        console.print(f"ray: {remote} chunks embedded on the cluster, {here} here")
        return

    exists = (index / DB_FILE).exists() and not rebuild
    emb = None if (exists and embedder is None) else load_embedder(embedder, warn=_warn)
    kb = _run_sync(lambda update: KnowledgeBase.build(folder, index, emb, progress=update, chunk_size=chunk_size,
                                                      overlap=overlap, text_fields=text_field, rebuild=rebuild),
                   "embedding files")
    with kb:
        _print_report(kb.last_report, kb)


@app.command()
def add(folder: Path = typer.Argument(..., help="Another folder of documents."), index: Path = IndexOpt) -> None:
    """Add FOLDER to an existing index (re-running it syncs changes and deletions)."""
    from knowledge.index import KnowledgeBase

    with KnowledgeBase.open(index) as kb:
        report = _run_sync(lambda update: kb.add(folder, progress=update), "embedding files")
        _print_report(report, kb)


@app.command()
def search(query: str = typer.Argument(..., help="The question, e.g. \"孙悟空的师父是谁？\""),
           index: Path = IndexOpt, k: int = typer.Option(5, "-k", "--top-k", help="How many passages."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
           dense_weight: float | None = typer.Option(
               None, help="Weight of the dense ranking in the fusion (default 1, or 0 with the weak MiniLM fallback)."),
           bm25_weight: float | None = typer.Option(None, help="Weight of the BM25 ranking in the fusion (default 1)."),
           reranker: str | None = typer.Option(None, envvar="ZAOSHU_RERANKER",
                                               help="Cross-encoder model folder to rerank with.")) -> None:
    """Search an index: dense + BM25, fused."""
    from knowledge.index import KnowledgeBase
    from knowledge.rerank import CrossEncoderReranker

    weights = {name: w for name, w in (("dense", dense_weight), ("bm25", bm25_weight)) if w is not None}
    with KnowledgeBase.open(index, weights=weights,
                            reranker=CrossEncoderReranker(reranker) if reranker else None) as kb:
        passages = kb.retrieve(query, k)
        answerable = kb.is_answerable(passages)
        if kb.embedder.weak_for_chinese and dense_weight is None and not as_json:
            _warn(f"{kb.embedder.name} is weak on Chinese: the fusion ranks by BM25 (dense weight 0; "
                  "--dense-weight to change). Rebuild with a Chinese model for real dense retrieval.")
    if as_json:
        typer.echo(json.dumps({"query": query, "answerable": answerable,
                               "passages": [p.model_dump() for p in passages]}, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{query}  ({'answerable' if answerable else 'probably not answerable'})")
    for name, justify in (("#", "right"), ("source", "left"), ("chapter / heading", "left"), ("dense", "right"),
                          ("BM25", "right"), ("fused", "right"), ("snippet", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for rank, p in enumerate(passages, 1):
        snippet = p.text.replace("\n", " ")
        table.add_row(str(rank), p.chunk_id, p.title or "", f"{p.scores['dense']:.3f}", f"{p.scores['bm25']:.2f}",
                      f"{p.scores['fused']:.4f}", snippet[:60] + ("…" if len(snippet) > 60 else ""))
    console.print(table)


@app.command()
def stats(index: Path = IndexOpt, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """What an index holds: files, chunks, model, settings, calibration, files not indexed."""
    from knowledge.index import KnowledgeBase

    with KnowledgeBase.open(index) as kb:
        info = kb.stats()
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    table = Table(show_header=False)
    emb, cal = info["embedder"], info["answerability"]
    rows = [("index", info["index"]), ("embedding model", f"{emb['name']} (dim {emb['dim']})"),
            ("folders", "\n".join(info["roots"])), ("files", f"{info['files']} ({info['files_with_text']} with text)"),
            ("chunks", f"{info['chunks']} ({info['characters']:,} characters, {info['vector_index']} faiss index)"),
            ("chunking", f"{info['settings']['chunk_size']}/{info['settings']['overlap']}"),
            ("answerability", f"{cal['signal']} ≥ {cal['threshold']:.4f} (F1 {cal['f1']})" if cal else "not calibrated"),
            ("size on disk", f"{info['bytes_on_disk'] / 1e6:.1f} MB")]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    for item in info["files_not_indexed"][:50]:
        err.print(f"  [yellow]not indexed[/yellow] {item['path']}: {item['reason']}")


@app.command()
def calibrate(index: Path = IndexOpt,
              good: Path = typer.Option(..., "--good", help="Answerable questions (JSON list, JSONL or one per line)."),
              bad: Path = typer.Option(..., "--bad", help="Unanswerable questions, same formats."),
              k: int = typer.Option(5, "-k", help="Passages retrieved per question."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Fit the answerability threshold from good and bad questions and store it with the index."""
    from knowledge.calibrate import read_questions
    from knowledge.index import KnowledgeBase

    good_q, bad_q = read_questions(good), read_questions(bad)
    with KnowledgeBase.open(index) as kb:
        result = kb.calibrate(good_q, bad_q, k=k)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    console.print(f"answerable when the best {result.signal} score ≥ [bold]{result.threshold:.4f}[/bold] "
                  f"(precision {result.precision:.2f}, recall {result.recall:.2f}, F1 {result.f1:.2f}, "
                  f"accuracy {result.accuracy:.2f} on {result.n_good} good / {result.n_bad} bad questions)")
