"""Bring an index's store up to date with one folder: embed only new or changed files, drop deleted ones.

Work is committed in batches; a file's chunks and its manifest row land in the same transaction, so an
interrupted build leaves whole files only and the next build resumes where it stopped.
Unchanged files are recognised by (size, mtime) without reading them, then by SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from knowledge.bm25 import tokenize
from knowledge.embeddings import Embedder
from knowledge.loaders import FileEntry, Skipped, empty_reason, iter_entry, scan_folder
from knowledge.readers import STREAM_THRESHOLD, Unreadable
from knowledge.splitter import Chunk, iter_chunks
from knowledge.store import FileRow, Store

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class BuildReport:
    """What one `build`/`add` did. Shown by the CLI; `chunks_per_second` is the embedding throughput."""

    root: str
    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    chunks_added: int = 0
    chunks_deleted: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    empty: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_added / self.seconds if self.seconds else 0.0

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.deleted)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class _Writer:
    """Buffers chunks of whole files, embeds them in batches, inserts them with their manifest rows."""

    def __init__(self, store: Store, embedder: Embedder, root_id: int, prefix: str, batch_size: int) -> None:
        self.store, self.embedder, self.root_id, self.prefix = store, embedder, root_id, prefix
        self.batch_size = batch_size
        self.chunks: list[tuple[str, Chunk]] = []
        self.files: list[tuple[str, FileRow]] = []
        self.since_commit = 0

    def add_file(self, rel: str, row: FileRow, chunks: list[Chunk]) -> None:
        self.chunks.extend((rel, c) for c in chunks)
        self.files.append((rel, row))
        if len(self.chunks) >= self.batch_size:
            self.flush()

    def insert(self, pairs: list[tuple[str, Chunk]]) -> None:
        if not pairs:
            return
        vectors = self.embedder.embed([c.text for _, c in pairs])
        embedder_meta = self.store.get_meta("embedder")
        if embedder_meta.get("dim") is None:
            embedder_meta["dim"] = int(vectors.shape[1])
            self.store.set_meta("embedder", embedder_meta)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.store.insert_chunks([
            (self.root_id, rel, f"{self.prefix}/{rel}", c.chunk_index, c.start, c.end, c.title, c.record,
             c.text, " ".join(tokenize(c.text)), vectors[i].tobytes())
            for i, (rel, c) in enumerate(pairs)])
        self.since_commit += len(pairs)

    def flush(self) -> None:
        for start in range(0, len(self.chunks), self.batch_size):
            self.insert(self.chunks[start:start + self.batch_size])
        for rel, row in self.files:
            self.store.put_file(self.root_id, rel, row)
        self.chunks, self.files = [], []

    def commit(self) -> None:
        self.flush()
        self.store.bump_generation()
        self.store.commit()
        self.since_commit = 0


def sync_folder(store: Store, embedder: Embedder, folder: str | Path, *, chunk_size: int, overlap: int,
                text_fields: tuple[str, ...], progress: Progress | None = None, batch_size: int = 64,
                commit_every: int = 512) -> BuildReport:
    """Make the store's content for `folder` match the folder. Raises InputError for a missing/empty folder."""
    started = time.perf_counter()
    entries, skipped = scan_folder(folder)
    root = Path(folder).expanduser().resolve()
    report = BuildReport(root=str(root), skipped=list(skipped))
    root_id = store.root_id(str(root))
    known = store.files(root_id)
    todo: list[tuple[FileEntry, str, bool]] = []
    for entry in entries:
        row = known.get(entry.rel)
        if row and row.size == entry.size and row.mtime_ns == entry.mtime_ns:
            report.unchanged += 1
            _report_status(report, entry.rel, row.status)
            continue
        sha = file_sha256(entry.path)
        if row and row.sha256 == sha:  # touched but identical: just remember the new mtime
            store.put_file(root_id, entry.rel, FileRow(entry.size, entry.mtime_ns, sha, row.n_chunks, row.status))
            report.unchanged += 1
            _report_status(report, entry.rel, row.status)
            continue
        todo.append((entry, sha, row is None))
    present = {e.rel for e in entries}
    for rel in sorted(set(known) - present):
        report.chunks_deleted += store.delete_file(root_id, rel)
        report.deleted += 1

    writer = _Writer(store, embedder, root_id, root.name, batch_size)
    try:
        for done, (entry, sha, is_new) in enumerate(todo, 1):
            report.chunks_deleted += store.delete_chunks(root_id, entry.rel)
            n_chunks, status = _process(writer, entry, sha, chunk_size, overlap, text_fields)
            report.chunks_added += n_chunks
            report.added += is_new
            report.changed += not is_new
            _report_status(report, entry.rel, status)
            if writer.since_commit >= commit_every:
                writer.commit()
            if progress:
                progress("files", done, len(todo))
        writer.flush()
        if report.touched:
            store.bump_generation()
        store.commit()
    except BaseException:
        store.rollback()  # files not yet committed are redone by the next build
        raise
    report.seconds = time.perf_counter() - started
    log.info("synced %s: +%d ~%d -%d files, %d chunks in %.1f s", root, report.added, report.changed,
             report.deleted, report.chunks_added, report.seconds)
    return report


def _process(writer: _Writer, entry: FileEntry, sha: str, chunk_size: int, overlap: int,
             fields: tuple[str, ...]) -> tuple[int, str]:
    """Queue or write one file; return (chunks, status) where status is 'ok' or the skip reason."""
    def row(n: int, status: str) -> FileRow:
        return FileRow(entry.size, entry.mtime_ns, sha, n, status)

    if entry.size == 0:
        writer.files.append((entry.rel, row(0, "empty file")))
        return 0, "empty file"
    if entry.size <= STREAM_THRESHOLD:
        try:
            chunks = [c for c in iter_chunks(iter_entry(entry, fields), chunk_size=chunk_size, overlap=overlap)
                      if c.text.strip()]
        except (Unreadable, OSError) as exc:
            writer.files.append((entry.rel, row(0, str(exc))))
            return 0, str(exc)
        status = "ok" if chunks else empty_reason(entry, fields)
        writer.add_file(entry.rel, row(len(chunks), status), chunks)
        return len(chunks), status
    # A big file streams: commit what is queued, then write it on its own, rolled back if it fails midway.
    writer.commit()
    count, batch = 0, []
    try:
        for chunk in iter_chunks(iter_entry(entry, fields), chunk_size=chunk_size, overlap=overlap):
            batch.append((entry.rel, chunk))
            if len(batch) >= writer.batch_size:
                writer.insert(batch)
                count, batch = count + len(batch), []
        writer.insert(batch)
        count += len(batch)
    except (Unreadable, OSError) as exc:
        writer.store.rollback()
        writer.store.delete_chunks(writer.root_id, entry.rel)
        writer.files.append((entry.rel, row(0, str(exc))))
        return 0, str(exc)
    writer.files.append((entry.rel, row(count, "ok" if count else empty_reason(entry, fields))))
    writer.commit()
    return count, "ok" if count else empty_reason(entry, fields)


def _report_status(report: BuildReport, rel: str, status: str) -> None:
    if status == "ok":
        return
    (report.empty if status.startswith("empty") else report.skipped).append(Skipped(rel, status))
