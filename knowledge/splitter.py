"""Chinese-aware chunking with source, index, character offsets and the heading in force.

For retrieval (`by_section=True`) a chunk never crosses a heading (a markdown heading or a chapter line
such as 「第二回」): the text is cut into sections at its headings first, then each section is split. Each
chunk knows its section number, so retrieval can score whole sections as well as chunks.

>>> from knowledge.readers import Document
>>> chunks = split_documents([Document("第一回 灵根育孕\\n" + "石猴出世。" * 30, "001.txt")], chunk_size=100, overlap=10)
>>> [(c.chunk_index, c.start, c.end, c.title, c.section) for c in chunks]
[(0, 0, 109, '第一回 灵根育孕', 0), (1, 99, 159, '第一回 灵根育孕', 0)]
>>> text = "第一回 出世\\n" + "石猴出世。" * 4 + "\\n第二回 学艺\\n" + "拜师学艺。" * 4
>>> [(c.text.splitlines()[0], c.section) for c in split_documents([Document(text, "a.txt")], chunk_size=100, overlap=10,
...                                                                by_section=True)]
[('第一回 出世', 0), ('第二回 学艺', 1)]
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agents.errors import InputError
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

# A chapter line: 「第二回　…」「第一章 总则」「附录」 (Markdown headings are found by markdown-it, below).
_CHAPTER = re.compile(
    r"^(?:第[零〇一二三四五六七八九十百千万两\d０-９]+[回章节卷篇部集幕]|附录|序章|楔子|尾声|后记)(?:[ \t\u3000:：].{0,50})?$",
    re.MULTILINE,
)
_LINE_END = re.compile(r"\r\n?|\n")  # as markdown-it counts lines


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
    section: int = 0
    marks: tuple[tuple[int, int, str], ...] = ()  # (offset in the file, level, title) of the headings in it


CHAPTER_LEVEL = 7  # a chapter line (「第二章」) ranks below every markdown heading level


def outline(text: str) -> list[tuple[int, int, str]]:
    """(offset, level, title) of the headings: a markdown heading at its level (`#` is 1), a chapter line
    at CHAPTER_LEVEL. A line in a fenced code block is no heading (a shell or Python `# comment`), and a
    title is the heading's words, without its markup (`**`, backticks, links).

    >>> outline("# 手册\\n## **安装**\\n```bash\\n# 启动服务\\n```\\n第一章 总则\\n")
    [(0, 1, '手册'), (5, 2, '安装'), (34, 7, '第一章 总则')]
    """
    blocks, _ = _markdown()
    marks, fences, line_starts = [], [], None
    level = 0
    for token in blocks.parse(text):
        if token.type == "fence":
            fences.append(token.map)
        elif token.type == "heading_open":
            level = int(token.tag[1])
        elif level:
            if title := _plain(token.content):
                line_starts = line_starts or _line_starts(text)
                marks.append((line_starts[token.map[0]], level, title))
            level = 0
    chapters = list(_CHAPTER.finditer(text))
    if chapters and fences:
        line_starts = line_starts or _line_starts(text)
        fenced = [(line_starts[a], line_starts[b] if b < len(line_starts) else len(text)) for a, b in fences]
        chapters = [m for m in chapters if not any(a <= m.start() < b for a, b in fenced)]
    marks.extend((m.start(), CHAPTER_LEVEL, m.group(0).strip()) for m in chapters)
    return sorted(marks)


@functools.cache
def _markdown():
    """markdown-it parsers: one for the blocks that matter here (ATX headings, fenced code), one for a
    heading's inline markup."""
    from markdown_it import MarkdownIt

    blocks = MarkdownIt("zero").enable(["heading", "fence"]).disable("inline")  # paragraphs stay unparsed
    inline = MarkdownIt("zero").enable(["emphasis", "backticks", "link", "image", "escape", "entity"])
    return blocks, inline


def _plain(markdown: str) -> str:
    """A heading's words: **粗体** → 粗体, `code` → code, [文字](url) → 文字, ![alt](src) → alt."""
    _, inline = _markdown()
    tokens = inline.parseInline(markdown)[0].children or []
    return "".join(t.content for t in tokens if t.type in ("text", "code_inline", "image")).strip()


def _line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in _LINE_END.finditer(text))]


def headings(text: str) -> list[tuple[int, str]]:
    """(offset, title) of markdown headings and chapter lines such as 「第一回　灵根育孕源流出」.

    >>> headings("# 总则\\n正文\\n第二章 细则\\n")
    [(0, '总则'), (8, '第二章 细则')]
    """
    return [(offset, title) for offset, _, title in outline(text)]


def check_chunking(chunk_size: int, overlap: int) -> None:
    """Raise InputError (one line, naming the flags) for sizes the splitter cannot cut with.

    >>> check_chunking(500, 50)
    >>> check_chunking(500, 600)
    Traceback (most recent call last):
    ...
    agents.errors.InputError: --overlap 600 must be at least 0 and less than --chunk-size 500
    """
    if chunk_size < 1:
        raise InputError(f"--chunk-size {chunk_size} must be at least 1")
    if not 0 <= overlap < chunk_size:
        raise InputError(f"--overlap {overlap} must be at least 0 and less than --chunk-size {chunk_size}")


def _splitter(chunk_size: int, overlap: int):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=CHINESE_SEPARATORS, is_separator_regex=True, keep_separator="end",
        chunk_size=chunk_size, chunk_overlap=overlap,
    )


def iter_chunks(docs: Iterable[Document], *, chunk_size: int = RETRIEVAL_SIZE[0],
                overlap: int = RETRIEVAL_SIZE[1], by_section: bool = False) -> Iterator[Chunk]:
    """Split Documents lazily; parts of one big file (same source, consecutive) share one chunk count.

    `by_section=True` (what the knowledge base uses) cuts at headings first, so no chunk crosses one,
    and numbers the sections (a record of a JSON/CSV file is its own section). Without it (pretraining
    chunks) the text is split as a whole and each chunk gets the heading in force where it starts.
    """
    splitter = _splitter(chunk_size, overlap)
    source, index, title, section = None, 0, None, -1
    for doc in docs:
        if doc.source != source:
            source, index, title, section = doc.source, 0, None, -1
        if doc.record is not None:
            title, section = doc.title, section + 1
        elif doc.title:
            title = doc.title
        section = max(section, 0)
        marks = outline(doc.text)
        positions = [pos for pos, _, _ in marks]
        segments = _sections(doc.text, [(pos, title) for pos, _, title in marks], chunk_size) if by_section \
            else [(0, len(doc.text), None)]
        for seg_start, seg_end, seg_title in segments:
            if seg_title is not None and doc.record is None and (seg_start > 0 or index > 0):
                section += 1
            if seg_title is not None:
                title = seg_title
            segment = doc.text[seg_start:seg_end]
            head = len(seg_title or "") + 16 if seg_title is not None else 0
            for local, end in _spans(segment, splitter.split_text(segment), chunk_size, overlap, head):
                chunk_title = title
                if not by_section:
                    at = bisect.bisect_right(positions, local) - 1
                    chunk_title = marks[at][2] if at >= 0 else title
                inside = marks[bisect.bisect_left(positions, seg_start + local):
                               bisect.bisect_left(positions, seg_start + end)]
                yield Chunk(segment[local:end], doc.source, index, doc.start + seg_start + local,
                            doc.start + seg_start + end, chunk_title, doc.record, section,
                            tuple((doc.start + pos, level, heading) for pos, level, heading in inside))
                index += 1
        if not by_section and marks and doc.record is None:
            title = marks[-1][2]


def index_chunks(docs: Iterable[Document], *, chunk_size: int = RETRIEVAL_SIZE[0],
                 overlap: int = RETRIEVAL_SIZE[1]) -> Iterator[Chunk]:
    """How one file's Documents become the knowledge index's chunks: cut at headings first
    (`by_section=True`), blank chunks left out (their numbers are kept). The local build, the Ray build
    and docqa all cut with this, so a chunk id `<folder>/<file>#<n>` names the same text in each.

    >>> from knowledge.readers import Document
    >>> text = "## 报销\\n" + "发票要在三十天内提交。" * 6 + "\\n## 住宿\\n" + "住宿按城市分三档。" * 6
    >>> [(c.chunk_index, c.title) for c in index_chunks([Document(text, "差旅.md")])]
    [(0, '报销'), (1, '住宿')]
    """
    return (c for c in iter_chunks(docs, chunk_size=chunk_size, overlap=overlap, by_section=True) if c.text.strip())


def _sections(text: str, marks: list[tuple[int, str]], chunk_size: int) -> Iterator[tuple[int, int, str | None]]:
    """(start, end, heading) of the text before the first heading (heading None) and of each heading's
    section. A heading with (almost) no text of its own, as 「# 第一部」 right above 「## 第一章」, stays
    with the section below it."""
    cuts: list[tuple[int, str | None]] = [(0, None)] if not marks or marks[0][0] > 0 else []
    for pos, title in marks:
        if cuts and pos - cuts[-1][0] < max(chunk_size // 10, len(cuts[-1][1] or "") + 8):
            cuts[-1] = (cuts[-1][0], title)  # a bare title line or a few words before it: one section
            continue
        cuts.append((pos, title))
    for i, (start, title) in enumerate(cuts):
        end = cuts[i + 1][0] if i + 1 < len(cuts) else len(text)
        if text[start:end].strip():
            yield start, end, title


def _spans(text: str, pieces: list[str], chunk_size: int, overlap: int, head: int = 0) -> Iterator[tuple[int, int]]:
    """(start, end) of each piece in `text`; a piece shorter than a tenth of `chunk_size` (a lone
    chapter title, a one-line paragraph), or only the `head` characters of heading lines at the top of a
    section, is joined to the piece after it so it does not stand alone."""
    search_from, pending = 0, None
    for piece in pieces:
        local = text.find(piece, search_from)
        if local < 0:  # stripped substrings are always found; stay safe anyway
            local = text.find(piece)
        # The next piece overlaps this one by at most `overlap` characters.
        search_from = max(local + 1, local + len(piece) - overlap)
        start = pending if pending is not None else local
        end = local + len(piece)
        if end - start < chunk_size // 10 or (start == 0 and end <= head):
            pending = start
            continue
        pending = None
        yield start, end
    if pending is not None:
        yield pending, len(text.rstrip())


def split_documents(docs: Iterable[Document], *, chunk_size: int = RETRIEVAL_SIZE[0],
                    overlap: int = RETRIEVAL_SIZE[1], by_section: bool = False) -> list[Chunk]:
    """Chunks (default ~500 characters, 50 overlap); `by_section` as in `iter_chunks`."""
    return list(iter_chunks(docs, chunk_size=chunk_size, overlap=overlap, by_section=by_section))


def split_for_pretraining(docs: Iterable[Document]) -> list[Chunk]:
    """Incremental-pretraining chunks: 1024 characters, 50 overlap."""
    return split_documents(docs, chunk_size=PRETRAIN_SIZE[0], overlap=PRETRAIN_SIZE[1])
