"""Turn one file into Documents, by format. A file that cannot be read raises Unreadable(reason).

>>> import pathlib, tempfile
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.md"; _ = p.write_text("# 花果山\\n石猴出世。", encoding="utf-8")
>>> [d.text for d in read_file(p, "a.md")]
['# 花果山\\n石猴出世。']

A JSONL or CSV file with bad lines keeps its good lines; each bad line goes to `problems`:

>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.jsonl"; _ = p.write_text('{"text": "一"}\\n{oops\\n{"text": "二"}\\n')
>>> bad = []; [d.text for d in read_file(p, "a.jsonl", problems=bad)], bad
(['一', '二'], ['line 2: invalid JSON (Expecting property name enclosed in double quotes at column 2)'])
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.errors import json_problem
from knowledge.encoding import CUT_END, SAMPLE_BYTES, UndecodableError, decode_bytes, detect_encoding

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
RECORD_SUFFIXES = {".json", ".jsonl", ".csv"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | RECORD_SUFFIXES | {".pdf", ".docx", ".html", ".htm"}
DEFAULT_TEXT_FIELDS = ("text", "content", "output")
# The version of each suffix's reader. Bump it when a fix changes what a reader gives for a file it read
# before: the next build reads that suffix's unchanged files again (knowledge.sync), so an existing index
# picks up the fix without --rebuild. An index that recorded no versions was read by version 1.
# 2: text cut in its last character, UTF-16 without a BOM; Word tables in place and the Title style; CSV
#    delimiters; bad lines of JSON/JSONL/CSV kept apart from the good ones.
# 3 (text, Markdown, HTML): a `# comment` in fenced code (an HTML page's <pre>) is no heading, and a heading's
#    title has no Markdown markup (knowledge.splitter.outline), so sections and titles change.
READER_VERSIONS = {".txt": 3, ".md": 3, ".markdown": 3, ".json": 2, ".jsonl": 2, ".csv": 2, ".docx": 2,
                   ".pdf": 1, ".html": 3, ".htm": 3}
# Formats people keep documents in that are not read, and what to turn them into.
SAVE_AS = {".doc": "save it as .docx (Word or LibreOffice)", ".wps": "save it as .docx (WPS or LibreOffice)",
           ".xls": "save the sheet as .csv", ".xlsx": "save the sheet as .csv", ".ppt": "save it as .pdf",
           ".pptx": "save it as .pdf"}
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the first bytes of a Word 97–2003 .doc (and .xls, .ppt)
# Text files above this size are read in blocks so memory stays bounded (a 50 MB file is fine).
STREAM_THRESHOLD = 4 * 1024 * 1024
BLOCK_CHARS = 1_000_000


@dataclass(slots=True)
class Document:
    """Text from one file (or one part of a big file, or one JSON/CSV record).

    `start` is the character offset of `text` inside the file's text (0 for records), `record` the
    record's index in a JSON/JSONL/CSV file, `title` the heading in force where `text` starts, and
    `byte_end` (for a streamed part of a big file) about how many bytes of the file are read so far.
    """

    text: str
    source: str
    start: int = 0
    record: int | None = None
    title: str | None = None
    byte_end: int | None = None


class Unreadable(Exception):
    """Raised by a reader; str(exc) is the reason shown in the load report."""


def read_file(path: Path, source: str, *, text_fields: Iterable[str] = DEFAULT_TEXT_FIELDS,
              problems: list[str] | None = None) -> Iterator[Document]:
    """Yield the Documents of one supported file; raise Unreadable with a reason the user can act on.

    Bad lines of a JSONL or CSV file are skipped and described in `problems` ("line N: why"); the file
    is Unreadable only when no line is good.
    """
    suffix = path.suffix.lower()
    fields = tuple(text_fields)
    problems = problems if problems is not None else []
    try:
        if suffix in TEXT_SUFFIXES:
            yield from _read_text(path, source)
        elif suffix == ".pdf":
            yield from _read_pdf(path, source)
        elif suffix == ".docx":
            yield from _read_docx(path, source)
        elif suffix in {".html", ".htm"}:
            yield Document(_html_to_text(path.read_bytes()), source)
        elif suffix == ".jsonl":
            yield from _records_to_docs(_jsonl_records(path, problems), source, fields, problems)
        elif suffix == ".json":
            yield from _records_to_docs(_json_records(path), source, fields, problems)
        elif suffix == ".csv":
            yield from _records_to_docs(_csv_records(path, problems), source, fields, problems)
        else:
            raise Unreadable(f"unsupported file type {suffix or '(no extension)'}")
    except UndecodableError as exc:
        raise Unreadable(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise Unreadable(f"undecodable text at byte {exc.start} ({exc.encoding})") from exc


def _open_text(path: Path, newline: str | None = "") -> io.TextIOWrapper:
    with path.open("rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    return path.open("r", encoding=detect_encoding(sample), errors=CUT_END, newline=newline)


def _read_text(path: Path, source: str) -> Iterator[Document]:
    if path.stat().st_size <= STREAM_THRESHOLD:
        yield Document(decode_bytes(path.read_bytes()).replace("\r\n", "\n").replace("\r", "\n"), source)
        return
    # Big file: blocks of ~1M characters cut after a newline; offsets stay exact.
    offset, carry = 0, ""
    with _open_text(path, newline=None) as fh:  # universal newlines, as for small files
        while block := fh.read(BLOCK_CHARS):
            text = carry + block
            cut = text.rfind("\n") + 1 or len(text)
            part, carry = text[:cut], text[cut:]
            yield Document(part, source, start=offset, byte_end=fh.buffer.tell())
            offset += len(part)
    if carry:
        yield Document(carry, source, start=offset, byte_end=path.stat().st_size)


def _read_pdf(path: Path, source: str) -> Iterator[Document]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise Unreadable("encrypted PDF (no password given)")
        pages = [page.extract_text() or "" for page in reader.pages]
    except Unreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise Unreadable(f"corrupt PDF: {exc}") from exc
    yield Document("\n\n".join(p.strip() for p in pages), source)


_HEADING_STYLE = re.compile(r"^(?:Heading|标题)\s*(\d)$", re.IGNORECASE)


def _style(paragraph) -> str:
    return paragraph.style.name if paragraph.style is not None else ""


def _read_docx(path: Path, source: str) -> Iterator[Document]:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        with path.open("rb") as fh:
            if fh.read(len(OLE_MAGIC)) == OLE_MAGIC:
                raise Unreadable(f"a Word 97–2003 file named .docx: {SAVE_AS['.doc']}") from exc
        reason = "not a zip package" if isinstance(exc, PackageNotFoundError) else exc  # not: "Package not found at …"
        raise Unreadable(f"corrupt Word file: {reason}") from exc
    lines = []
    # the Title style ranks above Heading 1: with a title, Heading N is written N + 1 deep (at most 6)
    below_title = any(_style(p) == "Title" for p in document.paragraphs)
    for block in document.iter_inner_content():  # paragraphs and tables in the document's order
        if isinstance(block, Table):
            lines.extend("\t".join(cell.text for cell in row.cells) for row in block.rows)
            continue
        style = _style(block)
        level = 1 if style == "Title" else \
            min(6, int(m.group(1)) + below_title) if (m := _HEADING_STYLE.match(style)) else 0
        lines.append(("#" * level + " " if level and block.text.strip() else "") + block.text)
    yield Document("\n".join(lines), source)


def _html_to_text(data: bytes) -> str:
    """HTML to text with h1–h6 kept as markdown headings so chunks know their section, and <pre> code
    fenced as it was written (its `# comment` lines are not headings)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_bytes(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    for level in range(1, 7):
        for tag in soup.find_all(f"h{level}"):
            tag.replace_with(f"\n\n{'#' * level} {tag.get_text(' ', strip=True)}\n\n")
    code = []
    for tag in soup.find_all("pre"):  # kept out of the whitespace clean-up below
        code.append(tag.get_text().strip("\n"))
        tag.replace_with(f"\n\n{_CODE}{len(code) - 1}{_CODE}\n\n")
    text = soup.get_text("\n")
    text = re.sub(r"[ \t\u3000]*\n[ \t\u3000]*", "\n", text)
    text = re.sub(f"{_CODE}(\\d+){_CODE}", lambda m: f"```\n{code[int(m.group(1))]}\n```", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


_CODE = "\ue000"  # a private-use character: where a <pre> block goes back


def _jsonl_records(path: Path, problems: list[str]) -> Iterator[tuple[str, Any]]:
    """(where, record) for each good line, where = "line N"."""
    good = bad = 0
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    bad += 1
                    problems.append(f"line {lineno}: invalid JSON ({json_problem(exc)})")
                    continue
                good += 1
                yield f"line {lineno}", record
    if bad and not good:
        raise Unreadable(f"no valid JSON line ({bad} bad; {problems[-bad]})")


def _csv_records(path: Path, problems: list[str]) -> Iterator[tuple[str, dict]]:
    """("line N", row) with the row as a dict keyed by the header; a row with more or fewer fields than the
    header is bad."""
    good = bad = 0
    # csv refuses a field over 131,072 characters by default; no field is longer than its file
    csv.field_size_limit(max(csv.field_size_limit(), path.stat().st_size))
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=_delimiter(fh.readline()))
        fh.seek(0)
        header = next(reader, None)
        if header is None:
            return
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                bad += 1
                problems.append(f"line {reader.line_num}: {exc}")
                continue
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                bad += 1
                problems.append(f"line {reader.line_num}: {len(row)} fields, the header has {len(header)}")
                continue
            good += 1
            yield f"line {reader.line_num}", dict(zip(header, row))
    if bad and not good:
        raise Unreadable(f"no valid CSV row ({bad} bad; {problems[-bad]})")


def _delimiter(header: str) -> str:
    """The delimiter of a .csv file, told by its header line: a comma, else a tab or a semicolon (a
    tab-separated export or a European Excel file saved as .csv).

    >>> _delimiter("question\\tanswer\\n"), _delimiter("question;answer\\n"), _delimiter("问题,答案\\n")
    ('\\t', ';', ',')
    >>> _delimiter("text\\n")
    ','
    """
    try:
        return csv.Sniffer().sniff(header, delimiters=",\t;").delimiter
    except csv.Error:  # one column
        return ","


def _json_records(path: Path) -> Iterator[tuple[str, Any]]:
    """("record N", record) for each record of the file's list (or its one object)."""
    try:
        data = json.loads(decode_bytes(path.read_bytes()))
    except json.JSONDecodeError as exc:
        raise Unreadable(f"invalid JSON: {json_problem(exc, line=True)}") from exc
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 and not _collect(data, DEFAULT_TEXT_FIELDS) else [data]
    for i, record in enumerate(data if isinstance(data, list) else [data], 1):
        yield f"record {i}", record


def _collect(value: Any, fields: tuple[str, ...]) -> list[str]:
    """Text of the wanted fields, searched through nested lists/dicts (e.g. a `conversation` list)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in _collect(item, fields)]
    if isinstance(value, dict):
        found = [str(value[f]) for f in fields if isinstance(value.get(f), (str, int, float)) and str(value[f]).strip()]
        nested = [t for v in value.values() if isinstance(v, (list, dict)) for t in _collect(v, fields)]
        return found + nested
    return []


def _records_to_docs(records: Iterable[tuple[str, Any]], source: str, fields: tuple[str, ...],
                     problems: list[str]) -> Iterator[Document]:
    """One Document per record with text in `fields`. A record without any goes to `problems` ("line 3: no
    text in fields text, content, output") when others in its file have text; a file with none is said
    whole (empty: no text in fields …) by its caller, not line by line."""
    empty, read = [], 0
    for i, (where, record) in enumerate(records):
        text = "\n".join(t.strip() for t in _collect(record, fields) if t.strip())
        if text:
            title = record.get("title") if isinstance(record, dict) and isinstance(record.get("title"), str) else None
            read += 1
            yield Document(text, source, record=i, title=title)
        else:
            empty.append(where)
    if read:
        problems.extend(f"{where}: no text in fields {', '.join(fields)}" for where in empty)


def field_flags(fields: Iterable[str] | None) -> str:
    """The `kb build` flags that ask for `fields` (none for the defaults).

    >>> field_flags(["question", "answer"]), field_flags(["text", "content", "output"])
    (' --text-field question --text-field answer', '')
    """
    fields = list(fields or DEFAULT_TEXT_FIELDS)
    return "" if fields == list(DEFAULT_TEXT_FIELDS) else "".join(f" --text-field {f}" for f in fields)
