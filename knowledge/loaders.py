"""Walk a knowledge folder and load every supported file, reporting what was skipped and why.

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp()); _ = (root / "a.txt").write_text("花果山。", encoding="gb18030")
>>> _ = (root / "b.bin").write_bytes(b"\\x00\\x01"); _ = (root / "c.md").write_text("")
>>> report = load_folder(root)
>>> [d.text for d in report.documents], [s.reason for s in report.skipped], [e.path for e in report.empty]
(['花果山。'], ['unsupported file type .bin'], ['c.md'])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agents.errors import InputError
from knowledge.readers import DEFAULT_TEXT_FIELDS, SAVE_AS, SUPPORTED_SUFFIXES, Document, Unreadable, read_file

log = logging.getLogger(__name__)


# Folders zaoshu writes are never read as knowledge, wherever they are (`cd docs && python -m recipes.docqa
# --knowledge .` puts the index and the run folders inside the documents): the file that marks each.
OWN_OUTPUT = {"kb.sqlite": "zaoshu's own output: a knowledge index",
              "config.resolved.yaml": "zaoshu's own output: a run folder"}


@dataclass(slots=True)
class FileEntry:
    """A file found in the folder. `rel` is its path relative to the folder, with '/' separators."""

    path: Path
    rel: str
    size: int
    mtime_ns: int


@dataclass(slots=True)
class Skipped:
    path: str
    reason: str


@dataclass
class LoadReport:
    """What `load_folder` found: documents, files skipped (with the reason) and empty files."""

    root: Path
    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    empty: list[Skipped] = field(default_factory=list)
    files_loaded: int = 0

    def summary(self) -> str:
        return (f"{self.files_loaded} files loaded ({len(self.documents)} documents), "
                f"{len(self.skipped)} skipped, {len(self.empty)} empty")


def nested(root: Path, others: Iterable[Path]) -> tuple[Path, Path] | None:
    """(inner, outer) for the first of `others` that `root` is inside or holds, else None: a file under
    two nested roots would be read, or indexed, twice.

    >>> nested(Path("/d/more"), [Path("/x"), Path("/d")])
    (PosixPath('/d/more'), PosixPath('/d'))
    >>> nested(Path("/d"), [Path("/d/more")]), nested(Path("/d"), [Path("/d"), Path("/e")])
    ((PosixPath('/d/more'), PosixPath('/d')), None)
    """
    for other in others:
        if other in root.parents:
            return root, other
        if root in other.parents:
            return other, root
    return None


def check_folder(path: str | Path) -> Path:
    """Resolve `path` or raise InputError with one clear sentence."""
    root = Path(path).expanduser()
    if not root.exists():
        raise InputError(f"Knowledge folder not found: {root}")
    if not root.is_dir():
        raise InputError(f"Not a folder: {root} (give the folder that holds your documents)")
    return root.resolve()


def scan_folder(path: str | Path) -> tuple[list[FileEntry], list[Skipped]]:
    """List supported files under `path` (recursively, sorted) and the entries skipped with reasons.

    Hidden files and folders are skipped, and so are zaoshu's own index and run folders (OWN_OUTPUT); a
    symlink is followed only when it points inside the folder.
    Raises InputError for a missing folder or one with no files at all.
    """
    root = check_folder(path)
    entries: list[FileEntry] = []
    skipped: list[Skipped] = []
    seen_dirs = {root}
    any_file = False

    def walk(directory: Path) -> None:
        nonlocal any_file
        try:
            children = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Skipped(_rel(root, Path(directory)), f"cannot list folder: {exc.strerror}"))
            return
        for child in children:
            child_path = Path(child.path)
            rel = _rel(root, child_path)
            if child.name.startswith("."):
                any_file = any_file or child.is_file()
                skipped.append(Skipped(rel, "hidden folder" if child.is_dir() else "hidden file"))
                continue
            if child.is_symlink():
                target = child_path.resolve()
                if not target.is_relative_to(root):
                    skipped.append(Skipped(rel, "symlink outside the folder (not followed)"))
                    continue
                if not target.exists():
                    skipped.append(Skipped(rel, "broken symlink"))
                    continue
            if child.is_dir():
                if own := next((why for mark, why in OWN_OUTPUT.items() if (child_path / mark).is_file()), None):
                    skipped.append(Skipped(rel, own))
                    continue
                real = child_path.resolve()
                if real not in seen_dirs:
                    seen_dirs.add(real)
                    walk(child_path)
                continue
            if not child.is_file():
                continue
            any_file = True
            if child_path.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append(Skipped(rel, unsupported(child_path.suffix.lower())))
                continue
            try:
                stat = child.stat()
            except OSError as exc:  # gone (or made unreadable) since the folder was listed
                skipped.append(Skipped(rel, cannot_read(exc)))
                continue
            entries.append(FileEntry(child_path, rel, stat.st_size, stat.st_mtime_ns))

    walk(root)
    if not any_file:
        raise InputError(f"Knowledge folder is empty: {root} (put .txt/.md/.pdf/.docx/.html/.json/.jsonl/.csv files in it)")
    return entries, skipped


def iter_entry(entry: FileEntry, text_fields: Iterable[str] = DEFAULT_TEXT_FIELDS,
               problems: list[str] | None = None) -> Iterator[Document]:
    """The Documents of one scanned file (source = its relative path). Raises Unreadable.
    Bad lines of a JSONL/CSV file are skipped and described in `problems`."""
    return read_file(entry.path, entry.rel, text_fields=text_fields, problems=problems)


def load_folder(path: str | Path, *, text_fields: Iterable[str] = DEFAULT_TEXT_FIELDS) -> LoadReport:
    """Load every supported file under `path`; unreadable files go to `skipped`, textless ones to `empty`."""
    entries, skipped = scan_folder(path)
    report = LoadReport(root=Path(path).resolve(), skipped=skipped)
    fields = tuple(text_fields)
    for entry in entries:
        docs: list[Document] = []
        reason = load_entry(entry, fields, docs.append)
        if reason is None:
            report.documents.extend(docs)
            report.files_loaded += 1
        elif reason.startswith("empty"):
            report.empty.append(Skipped(entry.rel, reason))
        else:
            report.skipped.append(Skipped(entry.rel, reason))
    log.info("%s: %s", report.root, report.summary())
    return report


def load_entry(entry: FileEntry, fields: tuple[str, ...], sink) -> str | None:
    """Feed one file's non-empty Documents to `sink`; return None when it had text, else the reason.

    A reason starting with "empty" means the file is readable but has no text.
    """
    if entry.size == 0:
        return "empty file"
    count = 0
    try:
        for doc in iter_entry(entry, fields):
            if doc.text.strip():
                sink(doc)
                count += 1
    except Unreadable as exc:
        return str(exc)
    except OSError as exc:
        return cannot_read(exc)
    return None if count else empty_reason(entry, fields)


def unsupported(suffix: str) -> str:
    """The reason shown for a file type that is not read, with what to do for the common office formats.

    >>> unsupported(".doc")
    'unsupported file type .doc: save it as .docx (Word or LibreOffice)'
    >>> unsupported(".bin"), unsupported("")
    ('unsupported file type .bin', 'unsupported file type (no extension)')
    """
    hint = f": {SAVE_AS[suffix]}" if suffix in SAVE_AS else ""
    return f"unsupported file type {suffix or '(no extension)'}{hint}"


def cannot_read(exc: OSError) -> str:
    """The reason shown for a file the system would not let us read (permissions, gone since listed).

    >>> cannot_read(PermissionError(13, "Permission denied", "/kb/秘密.md"))
    'cannot read: Permission denied'
    """
    return f"cannot read: {exc.strerror or exc}"


def empty_reason(entry: FileEntry, fields: tuple[str, ...]) -> str:
    """Why a readable file gave no text (always starts with "empty")."""
    suffix = entry.path.suffix.lower()
    if suffix in {".json", ".jsonl", ".csv"}:
        return f"empty: no text in fields {', '.join(fields)}"
    if suffix == ".pdf":
        return "empty: no extractable text (a scanned PDF needs OCR first)"
    return "empty: no text"


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
