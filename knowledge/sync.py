"""Bring an index's store up to date with one folder: index only new or changed files, drop deleted ones.

Work is committed in batches; a file's chunks and its manifest row land in the same transaction, so an
interrupted build leaves whole files only and the next build resumes where it stopped.
Unchanged files are recognised by (size, mtime) without reading them, then by SHA-256; an unchanged
file is read again when its suffix's reader is newer than the one that read it (readers.READER_VERSIONS).
Chunks are embedded only when the index has a dense model (`dense=True`); otherwise only their words
are stored for BM25, and a later build with a real model embeds them then (`KnowledgeBase.build`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from knowledge.bm25 import tokenize
from knowledge.embeddings import Embedder
from knowledge.loaders import FileEntry, Skipped, cannot_read, empty_reason, iter_entry, scan_folder
from knowledge.readers import READER_VERSIONS, STREAM_THRESHOLD, Document, Unreadable
from knowledge.splitter import Chunk, index_chunks
from knowledge.store import FileRow, Store

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_MB = 100.0
READERS_META = "readers"  # {folder: the READER_VERSIONS that read its files}


@dataclass
class BuildProgress:
    """Where a build stands; handed to the progress callback after each file and during a big file."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    chunks: int
    seconds: float
    current: str = ""

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left, from the bytes read so far; None (unknown) before 1% of them, where start-up
        (listing, hashing, loading the segmenter) would be extrapolated to the whole build: an 8-byte
        first file said 'ETA 1h49m' for a build of two seconds.

        >>> BuildProgress(1, 9, 8, 300_000, 0, 0.17).eta_seconds is None
        True
        >>> BuildProgress(5, 9, 150_000, 300_000, 100, 2.0).eta_seconds, BuildProgress(9, 9, 10, 10, 1, 0.1).eta_seconds
        (2.0, 0.0)
        """
        if self.bytes_done >= self.bytes_total:
            return 0.0
        if self.seconds <= 0 or self.bytes_done < self.bytes_total / 100:
            return None
        return (self.bytes_total - self.bytes_done) * self.seconds / self.bytes_done


Progress = Callable[[BuildProgress], None]


@dataclass
class BuildReport:
    """What one `build`/`add` did. Shown by the CLI; `chunks_per_second` is the indexing throughput."""

    root: str
    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    reread: dict[str, int] = field(default_factory=dict)  # unchanged files read again by a newer reader, by suffix
    chunks_added: int = 0
    chunks_deleted: int = 0
    chunks_embedded: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    empty: list[Skipped] = field(default_factory=list)
    bad_lines: list[Skipped] = field(default_factory=list)
    folders_dropped: list[Skipped] = field(default_factory=list)  # other folders of the index, gone since
    seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_added / self.seconds if self.seconds else 0.0

    def reread_line(self) -> str | None:
        """What the files read again by a newer reader were, in one line (None: none were).

        >>> BuildReport("docs", reread={".md": 1}).reread_line()
        're-read 1 unchanged file (.md 1): this zaoshu reads them better than the one that indexed them'
        """
        if not self.reread:
            return None
        total = sum(self.reread.values())
        suffixes = ", ".join(f"{suffix} {n}" for suffix, n in sorted(self.reread.items()))
        return (f"re-read {total} unchanged file{'s' * (total != 1)} ({suffixes}): this zaoshu reads them better "
                f"than the one that indexed them")

    @property
    def touched(self) -> bool:
        """Whether the index's content changed: files added, changed or deleted, or chunks dropped (a file
        now over the size guard, or no longer readable)."""
        return bool(self.added or self.changed or self.deleted or self.chunks_deleted or self.reread)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class _Writer:
    """Buffers chunks of whole files, embeds them in batches (when dense), inserts them with their rows."""

    def __init__(self, store: Store, embedder: Embedder | None, root_id: int, prefix: str, batch_size: int) -> None:
        self.store, self.embedder, self.root_id, self.prefix = store, embedder, root_id, prefix
        self.batch_size = batch_size
        self.chunks: list[tuple[str, Chunk]] = []
        self.files: list[tuple[str, FileRow, list[str]]] = []
        self.since_commit = 0
        self.embedded = 0

    def add_file(self, rel: str, row: FileRow, chunks: list[Chunk], bad_lines: list[str]) -> None:
        """Queue a file's chunks, its manifest row and its bad lines (written together)."""
        self.chunks.extend((rel, c) for c in chunks)
        self.files.append((rel, row, bad_lines))
        if len(self.chunks) >= self.batch_size:
            self.flush()

    def insert(self, pairs: list[tuple[str, Chunk]]) -> None:
        if not pairs:
            return
        blobs = [b""] * len(pairs)
        if self.embedder is not None:
            vectors = np.ascontiguousarray(self.embedder.embed([c.text for _, c in pairs]), dtype=np.float32)
            record_dim(self.store, vectors.shape[1])
            blobs = [v.tobytes() for v in vectors]
            self.embedded += len(pairs)
        self.store.insert_chunks([
            (self.root_id, rel, f"{self.prefix}/{rel}", c.chunk_index, c.start, c.end, c.title, c.record, c.section,
             c.text, " ".join(tokenize(c.text)), blobs[i])
            for i, (rel, c) in enumerate(pairs)])
        self.since_commit += len(pairs)

    def flush(self) -> None:
        for start in range(0, len(self.chunks), self.batch_size):
            self.insert(self.chunks[start:start + self.batch_size])
        for rel, row, bad_lines in self.files:
            self.store.put_file(self.root_id, rel, row)
            self.store.put_bad_lines(self.root_id, rel, bad_lines)
        self.chunks, self.files = [], []

    def commit(self) -> None:
        self.flush()
        self.store.bump_generation()
        self.store.commit()
        self.since_commit = 0


def record_dim(store: Store, dim: int) -> None:
    meta = store.get_meta("embedder")
    if meta.get("dim") is None:
        store.set_meta("embedder", {**meta, "dim": int(dim), "dense": True})


def sync_folder(store: Store, embedder: Embedder | None, folder: str | Path, *, chunk_size: int, overlap: int,
                text_fields: tuple[str, ...], progress: Progress | None = None, batch_size: int = 64,
                commit_every: int = 512, max_file_mb: float | None = DEFAULT_MAX_FILE_MB) -> BuildReport:
    """Make the store's content for `folder` match the folder. `embedder=None`: store no vectors.

    A file larger than `max_file_mb` is skipped with a reason (and its old chunks dropped).
    Raises InputError for a missing/empty folder.
    """
    started = time.perf_counter()
    entries, skipped = scan_folder(folder)
    root = Path(folder).expanduser().resolve()
    report = BuildReport(root=str(root), skipped=list(skipped))
    root_id = store.root_id(str(root))
    known = store.files(root_id)
    remembered: dict[str, list[str]] = {}  # the bad lines of files not read again are reported as found before
    for rel, reason in store.bad_lines(root_id):
        remembered.setdefault(rel, []).append(reason)
    limit = int(max_file_mb * 1024 * 1024) if max_file_mb else None
    read_by = store.get_meta(READERS_META, {}).get(str(root), {})
    newer = {suffix for suffix, version in READER_VERSIONS.items() if read_by.get(suffix, 1) < version}
    if newer and not known:  # a new folder: all its files are read by these readers, in this build or the next
        _record_readers(store, root)
        newer = set()
    todo: list[tuple[FileEntry, str, str]] = []  # (file, its hash, "new" | "changed" | "reread")
    for entry in entries:
        row = known.get(entry.rel)
        if row and not row.sha256:
            row = None  # never read (over an earlier build's size guard): this build's guard decides
        if limit is not None and entry.size > limit:
            reason = (f"{entry.size / 1048576:.1f} MB is over the size guard ({max_file_mb:g} MB; "
                      f"raise it with --max-file-mb)")
            report.skipped.append(Skipped(entry.rel, reason))
            if entry.rel in known:
                report.chunks_deleted += store.delete_file(root_id, entry.rel)
            # remembered without a hash (not read), so `kb stats` lists it among the files not indexed
            store.put_file(root_id, entry.rel, FileRow(entry.size, entry.mtime_ns, "", 0, reason))
            continue
        reread = row is not None and entry.path.suffix.lower() in newer
        if row and row.size == entry.size and row.mtime_ns == entry.mtime_ns and not reread:
            report.unchanged += 1
            _report_status(report, entry.rel, row.status, remembered.get(entry.rel, []))
            continue
        try:
            sha = file_sha256(entry.path)
        except OSError as exc:  # no manifest row: the next build tries it again
            report.skipped.append(Skipped(entry.rel, cannot_read(exc)))
            if row:
                report.chunks_deleted += store.delete_file(root_id, entry.rel)
            continue
        if row and row.sha256 == sha and reread:
            suffix = entry.path.suffix.lower()
            report.reread[suffix] = report.reread.get(suffix, 0) + 1
            todo.append((entry, sha, "reread"))
            continue
        if row and row.sha256 == sha:  # touched but identical: just remember the new mtime
            store.put_file(root_id, entry.rel, FileRow(entry.size, entry.mtime_ns, sha, row.n_chunks, row.status))
            report.unchanged += 1
            _report_status(report, entry.rel, row.status, remembered.get(entry.rel, []))
            continue
        todo.append((entry, sha, "changed" if row else "new"))
    present = {e.rel for e in entries}
    for rel in sorted(set(known) - present):
        report.chunks_deleted += store.delete_file(root_id, rel)
        report.deleted += 1

    writer = _Writer(store, embedder, root_id, root.name, batch_size)
    tracker = _Tracker(progress, len(todo), sum(e.size for e, _, _ in todo), started)
    try:
        for entry, sha, why in todo:
            report.chunks_deleted += store.delete_chunks(root_id, entry.rel)
            problems: list[str] = []
            n_chunks, status = _process(writer, entry, sha, chunk_size, overlap, text_fields, problems, tracker)
            report.chunks_added += n_chunks
            report.added += why == "new"
            report.changed += why == "changed"
            _report_status(report, entry.rel, status, problems)
            if writer.since_commit >= commit_every:
                writer.commit()
            tracker.file_done(entry, n_chunks)
        writer.flush()
        if report.touched:
            store.bump_generation()
        if newer:  # only now: an interrupted build reads the rest, and again those already read
            _record_readers(store, root)
        store.commit()
    except BaseException:
        store.rollback()  # files not yet committed are redone by the next build
        raise
    report.chunks_embedded = writer.embedded
    report.seconds = time.perf_counter() - started
    log.info("synced %s: +%d ~%d -%d files, %d chunks in %.1f s", root, report.added, report.changed,
             report.deleted, report.chunks_added, report.seconds)
    return report


def _record_readers(store: Store, root: Path) -> None:
    store.set_meta(READERS_META, {**store.get_meta(READERS_META, {}), str(root): READER_VERSIONS})


class _Tracker:
    """Counts files, bytes and chunks and calls the progress callback (after each file, and every
    batch inside a big file)."""

    def __init__(self, progress: Progress | None, files_total: int, bytes_total: int, started: float) -> None:
        self.progress, self.started = progress, started
        self.files_done, self.files_total, self.bytes_done, self.bytes_total = 0, files_total, 0, bytes_total
        self.chunks = 0

    def partial(self, rel: str, byte_end: int | None, chunks_in_file: int) -> None:
        """Inside a big file: `chunks_in_file` written so far, about `byte_end` bytes of it read."""
        self._emit(rel, self.bytes_done + (byte_end or 0), self.chunks + chunks_in_file)

    def file_done(self, entry: FileEntry, n_chunks: int) -> None:
        self.files_done += 1
        self.bytes_done += entry.size
        self.chunks += n_chunks
        self._emit(entry.rel, self.bytes_done, self.chunks)

    def _emit(self, rel: str, bytes_done: int, chunks: int) -> None:
        if self.progress is not None:
            self.progress(BuildProgress(self.files_done, self.files_total, min(bytes_done, self.bytes_total),
                                        self.bytes_total, chunks, time.perf_counter() - self.started, rel))


def _tracked(docs: Iterator[Document], holder: list[int | None]) -> Iterator[Document]:
    for doc in docs:
        holder[0] = doc.byte_end
        yield doc


def _process(writer: _Writer, entry: FileEntry, sha: str, chunk_size: int, overlap: int,
             fields: tuple[str, ...], problems: list[str], tracker: _Tracker) -> tuple[int, str]:
    """Queue or write one file; return (chunks, status) where status is 'ok' or the skip reason."""
    def row(n: int, status: str) -> FileRow:
        return FileRow(entry.size, entry.mtime_ns, sha, n, status)

    if entry.size == 0:
        writer.add_file(entry.rel, row(0, "empty file"), [], [])
        return 0, "empty file"
    if entry.size <= STREAM_THRESHOLD:
        try:
            chunks = list(index_chunks(iter_entry(entry, fields, problems), chunk_size=chunk_size, overlap=overlap))
        except (Unreadable, OSError) as exc:
            return _unread(writer, entry, exc, row(0, str(exc)), problems)
        status = "ok" if chunks else empty_reason(entry, fields)
        writer.add_file(entry.rel, row(len(chunks), status), chunks, problems)
        return len(chunks), status
    # A big file streams: commit what is queued, then write it on its own, rolled back if it fails midway.
    writer.commit()
    count, batch, at = 0, [], [None]
    try:
        docs = _tracked(iter_entry(entry, fields, problems), at)
        for chunk in index_chunks(docs, chunk_size=chunk_size, overlap=overlap):
            batch.append((entry.rel, chunk))
            if len(batch) >= writer.batch_size:
                writer.insert(batch)
                count, batch = count + len(batch), []
                tracker.partial(entry.rel, at[0], count)
        writer.insert(batch)
        count += len(batch)
    except (Unreadable, OSError) as exc:
        writer.store.rollback()
        writer.store.delete_chunks(writer.root_id, entry.rel)
        return _unread(writer, entry, exc, row(0, str(exc)), problems)
    writer.add_file(entry.rel, row(count, "ok" if count else empty_reason(entry, fields)), [], problems)
    writer.commit()
    return count, "ok" if count else empty_reason(entry, fields)


def _unread(writer: _Writer, entry: FileEntry, exc: Exception, failed: FileRow,
            bad_lines: list[str]) -> tuple[int, str]:
    """A file that gave no chunks because reading it failed. An Unreadable one (corrupt, undecodable, a
    JSONL with no good line) is remembered with its reason and bad lines until it changes; an OSError
    (permissions, gone since listed) leaves no manifest row, so the next build tries it again."""
    if isinstance(exc, Unreadable):
        writer.add_file(entry.rel, failed, [], bad_lines)
        return 0, failed.status
    writer.store.delete_file(writer.root_id, entry.rel)
    return 0, cannot_read(exc)


def _report_status(report: BuildReport, rel: str, status: str, bad_lines: list[str]) -> None:
    report.bad_lines.extend(Skipped(rel, reason) for reason in bad_lines)
    if status == "ok":
        return
    (report.empty if status.startswith("empty") else report.skipped).append(Skipped(rel, status))
