"""Chinese-aware chunking with source, index, character offsets and the heading in force.

>>> from knowledge.readers import Document
>>> chunks = split_documents([Document("第一回 灵根育孕\\n" + "石猴出世。" * 30, "001.txt")], chunk_size=100, overlap=10)
>>> [(c.chunk_index, c.start, c.end, c.title) for c in chunks]
[(0, 0, 109, '第一回 灵根育孕'), (1, 99, 159, '第一回 灵根育孕')]
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from knowledge.readers import Document

RETRIEVAL_SIZE = (500, 50)
PRETRAIN_SIZE = (1024, 50)  # as wulewule's incremental-pretraining export

# Regex levels, coarse to fine: paragraph, line, sentence end (with closing quotes), clause, space, character.
CHINESE_SEPARATORS = [
    r"\n\n+",
    r"\n",
    r"[。！？；!?…]+[”’」』）)]*",
    r"[，、,]",
    r"[ \u3000]",
    "",
]

_HEADING = re.compile(
    r"^(?:#{1,6}[ \t]+(?P<md>.+?)[ \t#]*"
    r"|(?P<cn>(?:第[零〇一二三四五六七八九十百千万两\d０-９]+[回章节卷篇部集幕]|附录|序章|楔子|尾声|后记)"
    r"(?:[ \t\u3000:：].{0,50})?))$",
    re.MULTILINE,
)


@dataclass(slots=True)
class Chunk:
    """A piece of a document. `start`/`end` are character offsets in the file's text
    (in the record's text for JSON/CSV records, whose index is `record`)."""

    text: str
    source: str
    chunk_index: int
    start: int
    end: int
    title: str | None = None
    record: int | None = None


def headings(text: str) -> list[tuple[int, str]]:
    """(offset, title) of markdown headings and chapter lines such as 「第一回　灵根育孕源流出」.

    >>> headings("# 总则\\n正文\\n第二章 细则\\n")
    [(0, '总则'), (8, '第二章 细则')]
    """
    return [(m.start(), (m.group("md") or m.group("cn")).strip()) for m in _HEADING.finditer(text)]


def _splitter(chunk_size: int, overlap: int):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=CHINESE_SEPARATORS, is_separator_regex=True, keep_separator="end",
        chunk_size=chunk_size, chunk_overlap=overlap,
    )


def iter_chunks(docs: Iterable[Document], *, chunk_size: int = RETRIEVAL_SIZE[0],
                overlap: int = RETRIEVAL_SIZE[1]) -> Iterator[Chunk]:
    """Split Documents lazily; parts of one big file (same source, consecutive) share one chunk count."""
    splitter = _splitter(chunk_size, overlap)
    source, index, title = None, 0, None
    for doc in docs:
        if doc.source != source:
            source, index, title = doc.source, 0, None
        if doc.record is not None:
            title = doc.title
        elif doc.title:
            title = doc.title
        marks = headings(doc.text)
        positions = [pos for pos, _ in marks]
        for local, end in _spans(doc.text, splitter.split_text(doc.text), chunk_size, overlap):
            at = bisect.bisect_right(positions, local) - 1
            chunk_title = marks[at][1] if at >= 0 else title
            yield Chunk(doc.text[local:end], doc.source, index, doc.start + local, doc.start + end,
                        chunk_title, doc.record)
            index += 1
        if marks and doc.record is None:
            title = marks[-1][1]


def _spans(text: str, pieces: list[str], chunk_size: int, overlap: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each piece in `text`; a piece shorter than a tenth of `chunk_size` (a lone
    chapter title, a one-line paragraph) is joined to the piece after it so it does not stand alone."""
    search_from, pending = 0, None
    for piece in pieces:
        local = text.find(piece, search_from)
        if local < 0:  # stripped substrings are always found; stay safe anyway
            local = text.find(piece)
        # The next piece overlaps this one by at most `overlap` characters.
        search_from = max(local + 1, local + len(piece) - overlap)
        start = pending if pending is not None else local
        end = local + len(piece)
        if end - start < chunk_size // 10:
            pending = start
            continue
        pending = None
        yield start, end
    if pending is not None:
        yield pending, len(text.rstrip())


def split_documents(docs: Iterable[Document], *, chunk_size: int = RETRIEVAL_SIZE[0],
                    overlap: int = RETRIEVAL_SIZE[1]) -> list[Chunk]:
    """Retrieval chunks (default ~500 characters, 50 overlap)."""
    return list(iter_chunks(docs, chunk_size=chunk_size, overlap=overlap))


def split_for_pretraining(docs: Iterable[Document]) -> list[Chunk]:
    """Incremental-pretraining chunks: 1024 characters, 50 overlap."""
    return split_documents(docs, chunk_size=PRETRAIN_SIZE[0], overlap=PRETRAIN_SIZE[1])
