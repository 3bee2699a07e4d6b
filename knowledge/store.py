"""The SQLite side of a knowledge index: metadata, the file manifest, chunks with tokens and vectors.

Vectors are float32 bytes (numpy `tobytes`), or empty while the index has no dense model; metadata is
JSON: nothing is pickled.

>>> import tempfile, pathlib
>>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "kb.sqlite")
>>> store.set_meta("embedder", {"name": "hash-256", "dim": 256}); store.commit()
>>> store.get_meta("embedder")
{'name': 'hash-256', 'dim': 256}
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roots (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    root_id INTEGER NOT NULL, rel TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL, n_chunks INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'ok',
    PRIMARY KEY (root_id, rel));
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, root_id INTEGER NOT NULL, rel TEXT NOT NULL, source TEXT NOT NULL,
    chunk_index INTEGER NOT NULL, start INTEGER NOT NULL, end_ INTEGER NOT NULL, title TEXT,
    record INTEGER, section INTEGER NOT NULL DEFAULT 0, text TEXT NOT NULL, tokens TEXT NOT NULL,
    vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks (root_id, rel);
CREATE TABLE IF NOT EXISTS bad_lines (root_id INTEGER NOT NULL, rel TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS bad_lines_by_file ON bad_lines (root_id, rel);
"""


@dataclass(slots=True)
class FileRow:
    size: int
    mtime_ns: int
    sha256: str
    n_chunks: int
    status: str


@dataclass(slots=True)
class ChunkRow:
    id: int
    source: str
    chunk_index: int
    start: int
    end: int
    title: str | None
    record: int | None
    text: str
    vector: np.ndarray | None


class Store:
    """A thin, explicit wrapper over one SQLite file. Writes happen inside the caller's transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)  # callers serialise
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                        (key, json.dumps(value, ensure_ascii=False)))

    def bump_generation(self) -> int:
        generation = int(self.get_meta("generation", 0)) + 1
        self.set_meta("generation", generation)
        return generation

    # -- roots and files --------------------------------------------------------------------
    def root_id(self, path: str) -> int:
        self.db.execute("INSERT OR IGNORE INTO roots (path) VALUES (?)", (path,))
        return self.db.execute("SELECT id FROM roots WHERE path = ?", (path,)).fetchone()[0]

    def roots(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT path FROM roots ORDER BY id")]

    def drop_root(self, path: str) -> tuple[int, int]:
        """Forget a folder: its files, chunks and bad lines; return how many (files, chunks) went."""
        row = self.db.execute("SELECT id FROM roots WHERE path = ?", (path,)).fetchone()
        if row is None:
            return 0, 0
        files = self.db.execute("DELETE FROM files WHERE root_id = ?", row).rowcount
        chunks = self.db.execute("DELETE FROM chunks WHERE root_id = ?", row).rowcount
        self.db.execute("DELETE FROM bad_lines WHERE root_id = ?", row)
        self.db.execute("DELETE FROM roots WHERE id = ?", row)
        return files, chunks

    def files(self, root_id: int) -> dict[str, FileRow]:
        rows = self.db.execute(
            "SELECT rel, size, mtime_ns, sha256, n_chunks, status FROM files WHERE root_id = ?", (root_id,))
        return {r[0]: FileRow(*r[1:]) for r in rows}

    def put_file(self, root_id: int, rel: str, row: FileRow) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO files (root_id, rel, size, mtime_ns, sha256, n_chunks, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (root_id, rel, row.size, row.mtime_ns, row.sha256, row.n_chunks, row.status))

    def delete_file(self, root_id: int, rel: str) -> int:
        """Drop a file, its chunks and its bad lines; return how many chunks went."""
        removed = self.delete_chunks(root_id, rel)
        self.db.execute("DELETE FROM files WHERE root_id = ? AND rel = ?", (root_id, rel))
        self.put_bad_lines(root_id, rel, [])
        return removed

    def put_bad_lines(self, root_id: int, rel: str, reasons: list[str]) -> None:
        """Replace the bad lines remembered for a JSONL/CSV file ("line 3: invalid JSON (…)")."""
        self.db.execute("DELETE FROM bad_lines WHERE root_id = ? AND rel = ?", (root_id, rel))
        self.db.executemany("INSERT INTO bad_lines (root_id, rel, reason) VALUES (?, ?, ?)",
                            [(root_id, rel, reason) for reason in reasons])

    def bad_lines(self, root_id: int) -> list[tuple[str, str]]:
        """(rel, reason) of the bad lines remembered for one root's files, in the order they were found."""
        return self.db.execute("SELECT rel, reason FROM bad_lines WHERE root_id = ? ORDER BY rel, rowid",
                               (root_id,)).fetchall()

    # -- chunks -----------------------------------------------------------------------------
    def delete_chunks(self, root_id: int, rel: str) -> int:
        return self.db.execute("DELETE FROM chunks WHERE root_id = ? AND rel = ?", (root_id, rel)).rowcount

    def insert_chunks(self, rows: list[tuple]) -> None:
        """rows: (root_id, rel, source, chunk_index, start, end, title, record, section, text, tokens, vector bytes)."""
        self.db.executemany(
            "INSERT INTO chunks (root_id, rel, source, chunk_index, start, end_, title, record, section, text, tokens, "
            "vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def iter_texts(self, *, missing_vectors: bool = False, page: int = 256) -> Iterator[list[tuple[int, str]]]:
        """Pages of (id, text) in id order; with `missing_vectors`, only chunks not embedded yet."""
        last = -1
        where = " AND LENGTH(vector) = 0" if missing_vectors else ""
        while True:
            rows = self.db.execute(f"SELECT id, text FROM chunks WHERE id > ?{where} ORDER BY id LIMIT ?",
                                   (last, page)).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def set_vectors(self, ids: list[int], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.db.executemany("UPDATE chunks SET vector = ? WHERE id = ?",
                            [(vectors[i].tobytes(), chunk_id) for i, chunk_id in enumerate(ids)])

    def count_missing_vectors(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks WHERE LENGTH(vector) = 0").fetchone()[0]

    def count_chunks(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def iter_vectors(self, dim: int, page: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) pages in id order, for (re)building the faiss index."""
        last = -1
        while True:
            rows = self.db.execute(
                "SELECT id, vector FROM chunks WHERE id > ? AND LENGTH(vector) > 0 ORDER BY id LIMIT ?",
                (last, page)).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            yield ids, vectors
            last = int(ids[-1])

    def iter_lexical(self) -> Iterator[tuple[int, int, str, int, str, str]]:
        """(id, root id, rel, section, text, space-joined word tokens) of every chunk, in id order."""
        yield from self.db.execute("SELECT id, root_id, rel, section, text, tokens FROM chunks ORDER BY id")

    def chunks_by_id(self, ids: list[int], dim: int | None) -> dict[int, ChunkRow]:
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for r in self.db.execute(
                    f"SELECT id, source, chunk_index, start, end_, title, record, text, vector FROM chunks "
                    f"WHERE id IN ({marks})", part):
                vector = np.frombuffer(r[8], dtype=np.float32).reshape(dim) if dim and r[8] else None
                out[r[0]] = ChunkRow(*r[:8], vector)
        return out

    def commit(self) -> None:
        self.db.commit()

    def rollback(self) -> None:
        self.db.rollback()

    def close(self) -> None:
        self.db.close()
