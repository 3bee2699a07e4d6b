"""The user's folders as chunks with stable ids, and the work items made from them.

A chunk's id is the hash of its source and text, so an item made from it keeps its id across runs:
a rerun after `zaoshu kb add` (or after editing a file) makes items only for new or changed chunks.
Chunks are cut exactly as the knowledge index cuts them (`knowledge.splitter.index_chunks`, with the
index's chunk size, overlap and text fields), so `meta.source_chunk` is the index's own chunk id
(`<folder>/<file>#<n>`) for the very text the question was asked from.

>>> chunk_questions(520, 250, 3), chunk_questions(60, 250, 3), chunk_questions(5000, 250, 3)
(2, 1, 3)
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.errors import InputError
from knowledge.loaders import cannot_read, empty_reason, iter_entry, nested, scan_folder
from knowledge.readers import DEFAULT_TEXT_FIELDS, Unreadable, field_flags
from knowledge.splitter import RETRIEVAL_SIZE, Chunk, headings, index_chunks
from knowledge.sync import file_sha256

log = logging.getLogger(__name__)


@dataclass
class DocChunk:
    hash: str          # sha1 of source + text: the stable id
    chunk_id: str      # as the index names it: <folder name>/<rel>#<index>
    source: str        # <folder name>/<rel>
    path: str          # the file, absolute
    file_sha: str
    index: int
    text: str
    heading: str | None  # the heading in force where the chunk starts
    doc_title: str
    inner: list[str] = field(default_factory=list)  # headings inside the chunk

    def ref(self) -> dict[str, str]:
        return {"chunk_id": self.chunk_id, "hash": self.hash, "source": self.source, "text": self.text}


@dataclass
class Corpus:
    chunks: list[DocChunk] = field(default_factory=list)
    files_skipped: dict[str, list[str]] = field(default_factory=dict)  # reason → files (<folder>/<rel>)
    bad_lines: list[tuple[str, str]] = field(default_factory=list)  # (file, "line N: why") of JSONL/CSV files
    folders: list[Path] = field(default_factory=list)
    text_fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS

    def skip(self, reason: str, source: str) -> None:
        self.files_skipped.setdefault(reason, []).append(source)

    def skipped_by_count(self) -> list[tuple[str, list[str]]]:
        """(reason, files) of the files skipped, the most common reason first."""
        return sorted(self.files_skipped.items(), key=lambda kv: -len(kv[1]))


def chunk_hash(source: str, text: str) -> str:
    return hashlib.sha1(f"{source}\n{text}".encode()).hexdigest()[:16]


def chunk_questions(length: int, chars_per_question: int, most: int) -> int:
    """Questions for a chunk of `length` characters: one per `chars_per_question`, 1 … `most`."""
    return max(1, min(most, round(length / chars_per_question)))


FRONT_MATTER = re.compile(r"---\n(.*?)\n---[ \t]*(?:\n|$)", re.S)  # a Markdown file's YAML header (Hugo, Jekyll)


def first_line_title(text: str) -> str | None:
    """A plain-text document's title: its first line, when short, not a sentence and not a heading (a
    Markdown file's YAML header is not a first line: its `title:` is the title).

    >>> first_line_title("保修条款\\n\\n本产品整机保修一年。"), first_line_title("本产品整机保修一年。")
    ('保修条款', None)
    >>> first_line_title("# 第一章 安装\\n主机应固定在橱柜内侧。")
    >>> first_line_title("---\\ntitle: 安装指南\\n---\\n正文。"), first_line_title("---\\ndate: 2024\\n---\\n\\n保修条款\\n正文。")
    ('安装指南', '保修条款')
    """
    if front := FRONT_MATTER.match(text.lstrip()):
        named = re.search(r"^title:\s*[\"']?(.+?)[\"']?\s*$", front.group(1), re.M)
        return named.group(1) if named else first_line_title(text.lstrip()[front.end():])
    line = text.strip().split("\n", 1)[0].strip()
    short = 0 < len(line) <= 20 and not any(p in line for p in "。！？；，,.") and any(c.isalnum() for c in line)
    return line if short and not headings(line) else None


def document_title(chunks: list[Chunk], name: str) -> str:
    """A document's title: its first heading when no other heading ranks as high (a `# 手册` over `##`
    sections, a Word title over its headings), else its short first line, else `name` (the file's).
    Sibling headings (「第一章」「第二章」, or several `#`) are sections, not the title.

    >>> from knowledge.splitter import index_chunks
    >>> from knowledge.readers import Document
    >>> def title(text): return document_title(list(index_chunks([Document(text, "a.md")])), "a")
    >>> title("# 手册\\n## 安装\\n装好。\\n## 滤芯\\n换好。"), title("第一章 总则\\n适用。\\n第二章 保修\\n一年。")
    ('手册', 'a')
    >>> title("售后条例\\n\\n第一章 总则\\n适用。\\n第二章 保修\\n一年。"), title("第一章 保修\\n保修一年。")
    ('售后条例', '第一章 保修')
    """
    marks = {(c.record, offset): (level, heading)  # overlapping chunks see a heading twice
             for c in chunks for offset, level, heading in c.marks}
    levels = [level for _, (level, _) in sorted(marks.items())]
    if levels and all(level > levels[0] for level in levels[1:]):
        return min(marks.items())[1][1]
    fallback = None if marks else next((c.title for c in chunks if c.title), None)  # a JSON record's title
    return fallback or first_line_title(chunks[0].text) or name


def index_roots(index_dir: Path, asked: list[str] | None = None, where: str = "--text-field",
                folder: Path | str = "<folder>") -> tuple[list[Path], dict[str, Any]]:
    """Folders an existing index holds (e.g. added by `zaoshu kb add`) and how it cuts chunks:
    `scan_corpus` keywords (chunk_size, overlap, text_fields). The text fields are the `asked` ones
    (from `where`), else the index's own; asked fields the index was not built with are an InputError
    that names both and a rebuild that keeps them all."""
    from knowledge.index import DB_FILE
    from knowledge.store import Store

    if not (index_dir / DB_FILE).exists():
        return [], {"text_fields": tuple(asked or DEFAULT_TEXT_FIELDS)}
    store = Store(index_dir / DB_FILE)
    try:
        settings = store.get_meta("settings") or {}
        roots = [Path(r) for r in store.roots()]
    finally:
        store.close()
    built = list(settings.get("text_fields", DEFAULT_TEXT_FIELDS))
    if asked and list(asked) != built:
        both = built + [f for f in asked if f not in built]
        raise InputError(f"Index {index_dir} was built with fields {','.join(built)}; you asked for fields "
                         f"{','.join(asked)} ({where}): leave them out to use the index's fields, or rebuild the "
                         f"index with all of them: zaoshu kb build {folder} --index {index_dir} --rebuild"
                         f"{field_flags(both)}")
    return roots, {"chunk_size": settings.get("chunk_size", RETRIEVAL_SIZE[0]),
                   "overlap": settings.get("overlap", RETRIEVAL_SIZE[1]), "text_fields": tuple(built)}


def scan_corpus(folders: list[Path], chunk_size: int = RETRIEVAL_SIZE[0], overlap: int = RETRIEVAL_SIZE[1],
                text_fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS) -> Corpus:
    """Every chunk of every readable file under `folders`; files skipped are kept by reason, and the
    bad lines of JSONL/CSV files (the good lines are used) with their file."""
    corpus = Corpus(text_fields=tuple(text_fields))
    roots = [Path(folder).expanduser().resolve() for folder in folders]
    for i, root in enumerate(roots):
        if hit := nested(root, roots[i + 1:]):
            raise InputError(f"knowledge folder {hit[0]} is inside knowledge folder {hit[1]}: its files would be "
                             f"read twice; give folders that do not nest")
    seen: set[Path] = set()
    for folder in folders:
        root = Path(folder).expanduser().resolve()
        if root in seen or not root.is_dir():
            continue
        seen.add(root)
        corpus.folders.append(root)
        entries, skipped = scan_folder(root)
        for s in skipped:
            corpus.skip(s.reason, f"{root.name}/{s.path}")
        for entry in entries:
            source = f"{root.name}/{entry.rel}"
            if entry.size == 0:
                corpus.skip("empty file", source)
                continue
            problems: list[str] = []
            try:
                chunks = list(index_chunks(iter_entry(entry, text_fields, problems), chunk_size=chunk_size,
                                           overlap=overlap))
                sha = file_sha256(entry.path)
            except Unreadable as exc:  # grouped by the reason's head: "corrupt PDF", "no valid JSON line"
                corpus.skip(re.split(r": | \(", str(exc))[0], source)
                continue
            except OSError as exc:
                corpus.skip(cannot_read(exc), source)
                continue
            finally:
                corpus.bad_lines.extend((source, problem) for problem in problems)
            if not chunks:
                corpus.skip(empty_reason(entry, tuple(text_fields)), source)
                continue
            title = document_title(chunks, Path(entry.rel).stem)
            for c in chunks:
                corpus.chunks.append(DocChunk(
                    hash=chunk_hash(source, c.text), chunk_id=f"{source}#{c.chunk_index}", source=source,
                    path=str(entry.path.resolve()), file_sha=sha, index=c.chunk_index, text=c.text,
                    heading=c.title, doc_title=title, inner=[h for _, _, h in c.marks]))
    return corpus
