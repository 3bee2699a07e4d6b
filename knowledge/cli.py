"""`zaoshu kb …`: build, add, search, stats, calibrate.

    zaoshu kb build knowledge/bases/xiyouji --index .kb/xiyouji
    zaoshu kb search "孙悟空在哪里学的七十二变？" --index .kb/xiyouji -k 5
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.table import Table

from agents.console import make_console

app = typer.Typer(help="Knowledge bases: build, add, search, stats, calibrate.", no_args_is_help=True)
console = make_console()
err = make_console(stderr=True)

IndexOpt = typer.Option(..., "--index", envvar="ZAOSHU_KB_INDEX", help="Index folder (created by build).")
EmbedderOpt = typer.Option(
    None, "--embedder", envvar="ZAOSHU_EMBED_MODEL",
    help="auto (the provider's embeddings with ZAOSHU_EMBED=provider, else BAAI/bge-small-zh-v1.5 from the cache "
         "or downloaded via HF_ENDPOINT / ModelScope, else the bundled MiniLM with BM25 only), a local model "
         "folder, a Hugging Face name, openai:<model>, provider, or hash. An existing index keeps its model.")
MaxFileOpt = typer.Option(100.0, "--max-file-mb", min=0,
                          help="Skip (and report) files larger than this many MB (0: no limit).")
ProgressEveryOpt = typer.Option(5.0, "--progress-every", help="Seconds between progress lines when not on a terminal.")


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}")


def _embed_config():
    from knowledge.embeddings import EmbedConfig

    return EmbedConfig.from_env(os.environ)


def _run_sync(action, every: float):
    """Run build/add with a progress bar on a terminal, one line every `every` seconds otherwise. Ctrl-C
    says what is kept (the files committed so far) and exits 130."""
    from knowledge.progress import build_progress

    try:
        with build_progress(err, every=every) as update:
            return action(update)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: the files indexed so far are kept; run the same command to index the rest",
                  highlight=False)
        raise typer.Exit(130) from None


def _print_bad_line(path: str, reason: str, not_indexed: set[str]) -> None:
    kept = "as is its file" if path in not_indexed else "the good lines are indexed"
    err.print(f"  [yellow]bad line[/yellow] {path}: {reason} (skipped, {kept})", highlight=False)


def _print_report(report, kb) -> None:
    dense = f"{report.chunks_embedded} embedded with {kb.embedder.name}" if kb.has_vectors else \
        "no dense index (BM25 only)"
    console.print(f"[green]{report.root}[/green]: {report.added} added, {report.changed} changed, "
                  f"{report.deleted} deleted, {report.unchanged} unchanged; {report.chunks_added} chunks indexed "
                  f"({report.chunks_per_second:.1f}/s; {dense}), {report.chunks_deleted} dropped; "
                  f"index now {kb.store.count_chunks()} chunks.", highlight=False)
    if reread := report.reread_line():
        err.print(f"  [yellow]{reread}[/yellow]", highlight=False)
    for item in report.folders_dropped:
        err.print(f"  [yellow]dropped[/yellow] {item.path}: {item.reason} (zaoshu kb add it again if it comes "
                  f"back)", highlight=False)
    not_indexed = {item.path for item in [*report.skipped, *report.empty]}
    for item in report.bad_lines[:30]:
        _print_bad_line(item.path, item.reason, not_indexed)
    if len(report.bad_lines) > 30:
        err.print(f"  … and {len(report.bad_lines) - 30} more bad lines")
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
          chunk_size: int = typer.Option(500, min=1, help="Characters per chunk."),
          overlap: int = typer.Option(50, min=0, help="Characters shared by neighbouring chunks (fewer than a chunk's)."),
          text_field: list[str] = typer.Option(["text", "content", "output"], "--text-field",
                                               help="JSON/JSONL/CSV fields that hold text (repeatable)."),
          rebuild: bool = typer.Option(False, "--rebuild", help="Delete the index and build it from scratch."),
          max_file_mb: float = MaxFileOpt, progress_every: float = ProgressEveryOpt,
          ray: bool = typer.Option(False, "--ray", help="Embed with Ray Data across a cluster (zaoshu[ray])."),
          ray_address: str | None = typer.Option(None, help="auto | ray://HOST:10001 [default: a local cluster]."),
          workers: int | None = typer.Option(None, min=1, help="Ray embedding workers [default: the cluster's CPUs]."),
          gpus: float = typer.Option(0.0, min=0.0, help="GPUs per Ray embedding worker (e.g. 1).")) -> None:
    """Create an index from FOLDER, or bring it up to date (only new or changed files are indexed).

    With the weak offline model no dense index is built (BM25 only); building again once a real model
    is available (--embedder, or the auto order finds one) embeds every chunk then.
    """
    from knowledge.embeddings import load_embedder
    from knowledge.index import DB_FILE, KnowledgeBase, has_vectors
    from knowledge.loaders import check_folder

    if not ray and (workers is not None or gpus or ray_address is not None):
        from agents.errors import InputError

        raise InputError("--workers, --gpus and --ray-address need --ray")
    check_folder(folder)  # before any model is loaded or downloaded
    if ray:  # knowledge/ray_build.py: the same index, the embedding done on the cluster
        from knowledge.ray_build import build_on_ray

        kb, remote, here = _run_sync(lambda update: build_on_ray(
            folder, index, embedder, address=ray_address, workers=workers, gpus=gpus, chunk_size=chunk_size,
            overlap=overlap, text_fields=text_field, rebuild=rebuild, progress=update), progress_every)
        with kb:
            _print_report(kb.last_report, kb)
        console.print(f"ray: {remote} chunks embedded on the cluster, {here} here")
        return

    config = _embed_config()
    exists = (index / DB_FILE).exists() and not rebuild
    if exists and embedder is None and not has_vectors(index):
        embedder = "auto"  # a BM25-only index tries the auto order again: a model found now embeds every chunk
    emb = None if (exists and embedder is None) else load_embedder(embedder, config=config, warn=_warn)
    kb = _run_sync(lambda update: KnowledgeBase.build(folder, index, emb, progress=update, chunk_size=chunk_size,
                                                      overlap=overlap, text_fields=text_field, rebuild=rebuild,
                                                      max_file_mb=max_file_mb, embed_config=config),
                   progress_every)
    with kb:
        _print_report(kb.last_report, kb)


@app.command()
def add(folder: Path = typer.Argument(..., help="Another folder of documents."), index: Path = IndexOpt,
        max_file_mb: float = MaxFileOpt, progress_every: float = ProgressEveryOpt) -> None:
    """Add FOLDER to an existing index (re-running it syncs changes and deletions)."""
    from knowledge.index import KnowledgeBase
    from knowledge.loaders import check_folder

    check_folder(folder)  # before the index's model is loaded
    with KnowledgeBase.open(index, embed_config=_embed_config()) as kb:
        report = _run_sync(lambda update: kb.add(folder, progress=update, max_file_mb=max_file_mb), progress_every)
        _print_report(report, kb)


@app.command()
def search(query: str = typer.Argument(..., help="The question, e.g. \"孙悟空的师父是谁？\""),
           index: Path = IndexOpt, k: int = typer.Option(5, "-k", "--top-k", min=1, help="How many passages."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
           dense_weight: float | None = typer.Option(
               None, help="Weight of the dense ranking in the fusion (default 1; 0 for an index without vectors)."),
           bm25_weight: float | None = typer.Option(None, help="Weight of the word BM25 ranking (default 1)."),
           bigram_weight: float | None = typer.Option(None, help="Weight of the character-bigram BM25 ranking (default 1)."),
           char_weight: float | None = typer.Option(None, help="Weight of the single-character BM25 ranking (default 0.5)."),
           section_weight: float | None = typer.Option(None, help="Weight of the section-level ranking (default 2)."),
           reranker: str = typer.Option("auto", envvar="ZAOSHU_RERANKER",
                                        help="Cross-encoder to rerank with: auto (BAAI/bge-reranker-base when it is in "
                                             "the local cache), none, a model folder or a cached model name.")) -> None:
    """Search an index: dense + BM25 (words, character bigrams and characters; chunks and sections), fused, reranked."""
    from agents.errors import InputError
    from knowledge.index import KnowledgeBase
    from knowledge.rerank import load_reranker

    if not query.strip():
        raise InputError("the query is empty: give a question, e.g. zaoshu kb search \"孙悟空的师父是谁？\" --index …")
    config = _embed_config()
    weights = {name: w for name, w in (("dense", dense_weight), ("bm25", bm25_weight), ("bigram", bigram_weight),
                                       ("char", char_weight), ("section", section_weight)) if w is not None}
    with KnowledgeBase.open(index, weights=weights, embed_config=config,
                            reranker=load_reranker(reranker, cache_dir=config.cache_dir)) as kb:
        passages = kb.retrieve(query, k)
        chunks = kb.store.count_chunks()
        answerable = kb.is_answerable(passages)
        if not kb.has_vectors and not as_json:
            _warn("this index has no dense vectors (built offline with the weak MiniLM fallback): BM25 ranks alone. "
                  "Build it again with a Chinese model (--embedder) to add them.")
    if as_json:
        typer.echo(json.dumps({"query": query, "answerable": answerable,
                               "passages": [p.model_dump() for p in passages]}, ensure_ascii=False, indent=2))
        return
    if not passages:
        err.print(f"no passage in {index} shares a word or a character with {query!r}" if chunks else
                  f"{index} holds no text: its folders' files were all empty, skipped or deleted (zaoshu kb stats)",
                  highlight=False)
        return
    table = Table(title=f"{query}  ({'answerable' if answerable else 'probably not answerable'})")
    rerank = any("rerank" in p.scores for p in passages)
    for name, justify in (("#", "right"), ("source", "left"), ("chapter / heading", "left"), ("dense", "right"),
                          ("BM25", "right"), ("bigram", "right"), ("fused", "right"),
                          *((("rerank", "right"),) if rerank else ()), ("snippet", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for rank, p in enumerate(passages, 1):
        snippet = p.text.replace("\n", " ")
        dense = f"{p.scores['dense']:.3f}" if "dense" in p.scores else "—"
        table.add_row(str(rank), p.chunk_id, p.title or "", dense, f"{p.scores['bm25']:.2f}", f"{p.scores['bigram']:.2f}",
                      f"{p.scores['fused']:.4f}", *((f"{p.scores['rerank']:.3f}",) if rerank else ()),
                      snippet[:60] + ("…" if len(snippet) > 60 else ""))
    console.print(table)


@app.command()
def stats(index: Path = IndexOpt, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """What an index holds: files, chunks, model, settings, calibration, files not indexed."""
    from knowledge.index import KnowledgeBase

    with KnowledgeBase.open(index, embed_config=_embed_config()) as kb:
        info = kb.stats()
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    table = Table(show_header=False)
    emb, cal = info["embedder"], info["answerability"]
    model = f"{emb['name']} (dim {emb['dim']})" if emb.get("dense") else f"none: BM25 only ({emb['name']} is weak on Chinese)"
    faiss = "no faiss index" if info["vector_index"] == "none" else f"{info['vector_index']} faiss index"
    rows = [("index", info["index"]), ("embedding model", model),
            ("folders", "\n".join(info["roots"])), ("files", f"{info['files']} ({info['files_with_text']} with text)"),
            ("chunks", f"{info['chunks']} ({info['characters']:,} characters, {faiss})"),
            ("chunking", f"{info['settings']['chunk_size']}/{info['settings']['overlap']}"),
            ("answerability", f"{cal['signal']} ≥ {cal['threshold']:.4f} (F1 {cal['f1']})" if cal else "not calibrated"),
            ("size on disk", f"{info['bytes_on_disk'] / 1e6:.1f} MB")]
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    def where(item: dict) -> str:  # as chunk ids name files (folder/file) once the index has several folders
        return f"{Path(item['folder']).name}/{item['path']}" if len(info["roots"]) > 1 else item["path"]

    for item in info["files_not_indexed"][:50]:
        err.print(f"  [yellow]not indexed[/yellow] {where(item)}: {item['reason']}", highlight=False)
    not_indexed = {where(item) for item in info["files_not_indexed"]}
    for item in info["bad_lines"][:50]:
        _print_bad_line(where(item), item["reason"], not_indexed)
    if len(info["bad_lines"]) > 50:
        err.print(f"  … and {len(info['bad_lines']) - 50} more bad lines (zaoshu kb stats --json lists them all)")


@app.command()
def calibrate(index: Path = IndexOpt,
              good: Path = typer.Option(..., "--good", help="Answerable questions (JSON list, JSONL or one per line)."),
              bad: Path = typer.Option(..., "--bad", help="Unanswerable questions, same formats."),
              k: int = typer.Option(5, "-k", min=1, help="Passages retrieved per question."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Fit the answerability threshold from good and bad questions and store it with the index."""
    from knowledge.calibrate import read_questions
    from knowledge.index import KnowledgeBase

    good_q, bad_q = read_questions(good), read_questions(bad)
    with KnowledgeBase.open(index, embed_config=_embed_config()) as kb:
        result = kb.calibrate(good_q, bad_q, k=k)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    console.print(f"answerable when the best {result.signal} score ≥ [bold]{result.threshold:.4f}[/bold] "
                  f"(precision {result.precision:.2f}, recall {result.recall:.2f}, F1 {result.f1:.2f}, "
                  f"accuracy {result.accuracy:.2f} on {result.n_good} good / {result.n_bad} bad questions)")
