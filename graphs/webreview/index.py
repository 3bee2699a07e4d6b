"""A SQLite index over a run folder's ledgers, built once and extended as the files grow.

The JSONL files are read once: each line's byte offset, its filterable fields (reason codes, the
labels in `meta`, source files) and its text go into an in-memory SQLite database; a page reads its
20 records back by offset. `refresh()` (called per request, one `stat` per file) indexes lines
appended since, and rebuilds when a file shrank or was replaced.

>>> labels_of({"meta": {"aspect": "主要角色", "tags": ["boss", "剧情"]}})["tags"]
'|boss|剧情|'
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphs.webreview.facets import FacetCounts

FILES = ("accepted", "rejected", "failed")
LABELS = ("aspect", "role", "scene", "style", "emotion", "area")
FACETS = (*LABELS, "tag", "source")
_BATCH = 5000


def sample_of(file: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """The Sample inside a ledger line: the line itself (accepted), its `sample` (rejected), or None."""
    if file == "accepted":
        return record
    sample = record.get("sample")
    return sample if isinstance(sample, dict) else None


def labels_of(sample: dict[str, Any] | None, key: dict[str, Any] | None = None) -> dict[str, str | None]:
    """The label columns of one sample: aspect … area from `meta` (else the work item's key), tags as `|a|b|`."""
    meta = (sample or {}).get("meta") or {}
    key = key or {}
    out: dict[str, str | None] = {}
    for name in LABELS:
        value = meta.get(name, key.get(name))
        out[name] = str(value) if value not in (None, "") else None
    tags = meta.get("tags", meta.get("tag"))
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    out["tags"] = "|" + "|".join(str(t) for t in tags) + "|" if tags else None
    return out


def codes_of(file: str, record: dict[str, Any]) -> list[str]:
    """Every reason code a line carries: the rejection's, the verdict's, rule hits' and the critic history's."""
    sample = sample_of(file, record) or {}
    meta = sample.get("meta") or {}
    verdict = meta.get("verdict") or record.get("verdict") or {}
    codes = list(record.get("codes") or []) + list(meta.get("reject_codes") or [])
    codes += list((verdict or {}).get("reason_codes") or [])
    codes += [h.get("code") for h in meta.get("rule_hits") or [] if isinstance(h, dict)]
    for step in meta.get("critic_history") or []:
        codes += list(step.get("codes") or []) if isinstance(step, dict) else []
    return [c for c in dict.fromkeys(codes) if isinstance(c, str) and c]


def text_of(file: str, record: dict[str, Any]) -> tuple[str, int, int]:
    """(searchable text, answer characters, turns) of one line."""
    sample = sample_of(file, record)
    if sample is None:
        text = " ".join(str(record.get(k) or "") for k in ("raw", "error")) + " " + json.dumps(
            record.get("key") or {}, ensure_ascii=False)
        return text, len(record.get("raw") or ""), 0
    turns = [t for t in sample.get("turns") or [] if isinstance(t, dict)]
    parts = [sample.get("system") or ""] + [f"{t.get('input', '')}\n{t.get('output', '')}" for t in turns]
    return "\n".join(parts), sum(len(t.get("output") or "") for t in turns), len(turns)


#: The largest integer SQLite stores; a page or sample number past it matches nothing.
SQLITE_MAX = 2 ** 63 - 1


@dataclass
class Query:
    """The filters of one page view; empty strings mean 'any'."""

    file: str = ""
    code: str = ""
    review: str = ""  # "" | unreviewed | accepted | rejected | edited | noted
    q: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # facet → value
    page: int = 1
    per_page: int = 20


@dataclass
class _FileState:
    offset: int = 0
    inode: int = -1


class RunIndex:
    """The index of one run folder. Thread-safe: one connection, one lock."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._files = {name: _FileState() for name in FILES}
        self.generation = 0  # bumped whenever rows are added
        self._create()
        self.refresh()

    def _create(self) -> None:
        self._facets = FacetCounts()
        self._length_rows: list[int] = []
        self._lengths: list[int] = []
        self._length_arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._db.executescript("""
            DROP TABLE IF EXISTS samples; DROP TABLE IF EXISTS codes; DROP TABLE IF EXISTS sources;
            DROP TABLE IF EXISTS tags;
            CREATE TABLE samples(sid INTEGER PRIMARY KEY, file TEXT, id TEXT, offset INTEGER, length INTEGER,
                aspect TEXT, role TEXT, scene TEXT, style TEXT, emotion TEXT, area TEXT, tags TEXT,
                text TEXT, chars INTEGER, turns INTEGER);
            CREATE TABLE codes(sid INTEGER, code TEXT);
            CREATE TABLE sources(sid INTEGER, source TEXT);
            CREATE TABLE tags(sid INTEGER, tag TEXT);
            CREATE TABLE IF NOT EXISTS review(id TEXT PRIMARY KEY, status TEXT, reason TEXT, edited INTEGER,
                noted INTEGER, text TEXT);
            CREATE INDEX samples_file ON samples(file); CREATE INDEX samples_id ON samples(id);
            CREATE INDEX codes_code ON codes(code, sid); CREATE INDEX sources_source ON sources(source, sid);
            CREATE INDEX codes_sid ON codes(sid); CREATE INDEX sources_sid ON sources(sid);
            CREATE INDEX tags_tag ON tags(tag, sid); CREATE INDEX tags_sid ON tags(sid);
            CREATE TEMP TABLE IF NOT EXISTS hits(sid INTEGER PRIMARY KEY);
        """)

    def path(self, file: str) -> Path:
        return self.run_dir / f"{file}.jsonl"

    def refresh(self) -> bool:
        """Index lines appended since the last call; rebuild from scratch if a file shrank or was replaced."""
        with self._lock:
            changed = False
            for name, state in self._files.items():
                try:
                    st = os.stat(self.path(name))
                except FileNotFoundError:
                    continue
                if st.st_ino != state.inode and state.inode != -1 or st.st_size < state.offset:
                    self._files = {n: _FileState() for n in FILES}
                    self._create()
                    return self.refresh()
                state.inode = st.st_ino
                if st.st_size > state.offset:
                    changed |= self._index_tail(name, state)
            if changed:
                self.generation += 1
            return changed

    def _index_tail(self, name: str, state: _FileState) -> bool:
        rows, codes, sources, tags = [], [], [], []
        next_sid = (self._db.execute("SELECT COALESCE(MAX(sid), 0) FROM samples").fetchone()[0]) + 1
        with open(self.path(name), "rb") as f:
            f.seek(state.offset)
            offset = state.offset
            for line in f:
                if not line.endswith(b"\n"):
                    break  # being written; indexed next time
                start, offset = offset, offset + len(line)
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a corrupt line; RunDir reports it when a run opens the folder
                if not isinstance(record, dict):
                    continue
                sample = sample_of(name, record)
                labels = labels_of(sample, record.get("key") if isinstance(record.get("key"), dict) else None)
                text, chars, turns = text_of(name, record)
                sid = next_sid + len(rows)
                rows.append((sid, name, str(record.get("id", "")), start, len(line), *labels.values(),
                             text, chars, turns))
                codes += [(sid, c) for c in codes_of(name, record)]
                meta = (sample or {}).get("meta") or {}
                srcs = {s.get("source") for s in meta.get("sources") or [] if isinstance(s, dict)}
                sources += [(sid, s) for s in srcs if isinstance(s, str)]
                tags += [(sid, t) for t in (labels["tags"] or "").strip("|").split("|") if t]
                self._count(sid, labels, codes, sources, tags, chars if turns else None)
                if len(rows) >= _BATCH:
                    self._insert(rows, codes, sources, tags)
                    next_sid += len(rows)
                    rows, codes, sources, tags = [], [], [], []
        self._insert(rows, codes, sources, tags)
        grew = offset > state.offset
        state.offset = offset
        return grew

    def _count(self, sid: int, labels: dict[str, str | None], codes: list, sources: list, tags: list,
               length: int | None) -> None:
        """Add one sample to the facet counts (the lists hold this batch's pairs; this sample's are last)."""
        for name in LABELS:
            if labels[name] is not None:
                self._facets.add(name, sid, labels[name])
        for facet, pairs in (("code", codes), ("source", sources), ("tag", tags)):
            for row, value in reversed(pairs):
                if row != sid:
                    break
                self._facets.add(facet, sid, value)
        if length is not None:
            self._length_rows.append(sid)
            self._lengths.append(length)

    def _insert(self, rows: list, codes: list, sources: list, tags: list) -> None:
        self._db.executemany(f"INSERT INTO samples VALUES ({','.join('?' * 15)})", rows)
        self._db.executemany("INSERT INTO codes VALUES (?, ?)", codes)
        self._db.executemany("INSERT INTO sources VALUES (?, ?)", sources)
        self._db.executemany("INSERT INTO tags VALUES (?, ?)", tags)

    def set_review(self, sample_id: str, status: str | None, reason: str | None, edited: bool, noted: bool,
                   text: str) -> None:
        """Mirror one sample's review state so the page can filter by it."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO review VALUES (?, ?, ?, ?, ?, ?)",
                             (sample_id, status, reason, int(edited), int(noted), text))
            self.generation += 1

    # ---- reading

    def _where(self, query: Query) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if query.file in FILES:
            clauses.append("s.file = ?")
            args.append(query.file)
        if query.code:
            clauses.append("(s.sid IN (SELECT sid FROM codes WHERE code = ?) OR (r.status = 'rejected' AND r.reason = ?))")
            args += [query.code, query.code]
        for facet, value in query.labels.items():
            if not value:
                continue
            if facet == "source":
                clauses.append("s.sid IN (SELECT sid FROM sources WHERE source = ?)")
                args.append(value)
            elif facet == "tag":
                clauses.append("s.sid IN (SELECT sid FROM tags WHERE tag = ?)")
                args.append(value)
            elif facet in LABELS:
                clauses.append(f"s.{facet} = ?")
                args.append(value)
        review = {"unreviewed": "r.id IS NULL OR (r.status IS NULL AND r.edited = 0 AND r.noted = 0)",
                  "accepted": "r.status = 'accepted'", "rejected": "r.status = 'rejected'",
                  "edited": "r.edited = 1", "noted": "r.noted = 1"}.get(query.review)
        if review:
            clauses.append(f"({review})")
        if query.q:
            clauses.append("(instr(s.text, ?) > 0 OR instr(s.id, ?) > 0 OR instr(COALESCE(r.text, ''), ?) > 0)")
            args += [query.q] * 3
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def search(self, query: Query, summarize: bool = False) -> tuple[int, list[tuple[int, str, str]], dict | None]:
        """(matching count, [(sid, file, id)] of the requested page, and — when filtered and `summarize` —
        the facets and answer lengths of the matching samples), in file order."""
        where, args = self._where(query)
        limit = [query.per_page, min((max(query.page, 1) - 1) * query.per_page, SQLITE_MAX)]  # past the end: no rows
        with self._lock:
            if not where:
                total = self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
                rows = self._db.execute("SELECT sid, file, id FROM samples ORDER BY sid LIMIT ? OFFSET ?",
                                        limit).fetchall()
                return total, rows, None
            self._db.execute("DELETE FROM hits")  # the filter runs once; count, page and summary read its result
            self._db.execute(f"INSERT INTO hits SELECT s.sid FROM samples s LEFT JOIN review r ON r.id = s.id{where}",
                             args)
            total = self._db.execute("SELECT COUNT(*) FROM hits").fetchone()[0]
            rows = self._db.execute("SELECT s.sid, s.file, s.id FROM hits h CROSS JOIN samples s ON s.sid = h.sid "
                                    "ORDER BY h.sid LIMIT ? OFFSET ?", limit).fetchall()
            summary = None
            if summarize:
                mask = self._hits_mask()
                summary = {"facets": self.facets(only_hits=True, mask=mask),
                           "lengths": self.lengths(only_hits=True, mask=mask)}
        return total, rows, summary

    def record(self, sid: int) -> tuple[str, dict[str, Any]] | None:
        """(file, the ledger line as written) of one indexed sample."""
        if not 0 <= sid <= SQLITE_MAX:  # no such sample (SQLite would raise OverflowError)
            return None
        with self._lock:
            row = self._db.execute("SELECT file, offset, length FROM samples WHERE sid = ?", (sid,)).fetchone()
        if row is None:
            return None
        file, offset, length = row
        with open(self.path(file), "rb") as f:
            f.seek(offset)
            return file, json.loads(f.read(length))

    def facets(self, limit: int = 300, only_hits: bool = False,
               mask: np.ndarray | None = None) -> dict[str, list[tuple[str, int]]]:
        """Each filterable field's values with their counts (most common first), codes included;
        `only_hits`: over the samples the last `search` matched."""
        with self._lock:
            if only_hits and mask is None:
                mask = self._hits_mask()
            out = {name: self._facets.counts(name, mask=mask, limit=limit) for name in ("code", *FACETS)}
            out["reviewer"] = self._db.execute(
                "SELECT reason, COUNT(*) c FROM review r WHERE status = 'rejected'"
                + (" AND r.id IN (SELECT s.id FROM hits h CROSS JOIN samples s ON s.sid = h.sid)" if only_hits else "")
                + " GROUP BY reason ORDER BY c DESC").fetchall()
        return out

    def _hits_mask(self) -> np.ndarray:
        sids = np.array(self._db.execute("SELECT sid FROM hits").fetchall(), dtype=np.int64).reshape(-1)
        return self._facets.mask(sids)

    def counts(self) -> dict[str, int]:
        """Lines per file, and reviewer decisions."""
        with self._lock:
            out = dict(self._db.execute("SELECT file, COUNT(*) FROM samples GROUP BY file").fetchall())
            for status, n in self._db.execute(
                    "SELECT status, COUNT(*) FROM review WHERE status IS NOT NULL GROUP BY status"):
                out[f"reviewer_{status}"] = n
        return {**{f: 0 for f in FILES}, **out}

    def lengths(self, only_hits: bool = False, mask: np.ndarray | None = None) -> np.ndarray:
        """Answer lengths (characters) of every sample that has turns (or of the last search's), for the histogram."""
        with self._lock:
            if self._length_arrays is None or len(self._length_arrays[0]) != len(self._lengths):
                self._length_arrays = (np.asarray(self._length_rows, dtype=np.int64),
                                       np.asarray(self._lengths, dtype=np.int64))
            rows, values = self._length_arrays
            if only_hits:
                mask = self._hits_mask() if mask is None else mask
                values = values[mask[rows]]
            return values
