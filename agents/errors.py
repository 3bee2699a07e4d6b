"""Errors a user can act on. The CLI prints each as one red line and exits 1 (no traceback)."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ZaoshuError(Exception):
    """Base for every error whose message alone tells the user what went wrong and what to do."""


class ConfigError(ZaoshuError):
    """Settings are missing or invalid (e.g. no LLM endpoint configured)."""


class InputError(ZaoshuError):
    """A file, folder or argument the user gave cannot be used."""


def not_valid_yaml(path: object, exc: Exception) -> InputError:
    """One line from PyYAML's error: the file, where, and the problem.

    >>> import yaml
    >>> try: yaml.safe_load("a: [1, 2\\nb: 3\\n")
    ... except yaml.YAMLError as exc: print(not_valid_yaml("r.yaml", exc))
    r.yaml: not valid YAML at line 2, column 2: expected ',' or ']', but got ':' (while parsing a flow sequence from line 1)
    """
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or problem is None:
        return InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})")
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    where = f" from line {start.line + 1}" if context and start is not None else ""
    return InputError(f"{path}: not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
                      + (f" ({context}{where})" if context else ""))


class ServiceError(ZaoshuError):
    """An outside service (web search, HuixiangDou) failed for one item: that item is recorded as
    failed and retried on resume; the run goes on. `fatal` ones (a refused key) stop the run."""

    fatal = False


class ServiceAuthError(ServiceError):
    """The service refused the key or the configuration: retrying cannot help."""

    fatal = True


def json_problem(exc: ValueError, *, line: bool = False) -> str:
    """What json's error says with where it happened: its `msg` alone loses the place ("…starting at").
    `line` names the line too, for a whole file (a JSONL line is named by its reader).

    >>> import json
    >>> try: json.loads('{"q": "孙悟空')
    ... except ValueError as exc: print(json_problem(exc))
    Unterminated string starting at column 7
    >>> try: json.loads('[1,\\n 2,,]')
    ... except ValueError as exc: print(json_problem(exc, line=True))
    Expecting value at line 2, column 4
    """
    msg, lineno, colno = getattr(exc, "msg", None), getattr(exc, "lineno", None), getattr(exc, "colno", None)
    if msg is None or colno is None:
        return str(exc)
    where = f"line {lineno}, column {colno}" if line else f"column {colno}"
    return f"{msg.removesuffix(' at')} at {where}"


def pydantic_problem(error: Mapping[str, Any]) -> str:
    """The message of one of pydantic's `errors()`, without the "Value error, " it puts before the words
    of a validator's own ValueError (those are already written for the reader).

    >>> from pydantic import BaseModel, field_validator
    >>> class Angles(BaseModel):
    ...     n: int
    ...     @field_validator("n")
    ...     def _at_most_5(cls, n): raise ValueError("at most 5 angles")
    >>> try: Angles(n=9)
    ... except ValueError as exc: print(pydantic_problem(exc.errors()[0]))
    at most 5 angles
    >>> try: Angles(n="x")
    ... except ValueError as exc: print(pydantic_problem(exc.errors()[0]))
    Input should be a valid integer, unable to parse string as an integer
    """
    if error.get("type") == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    return error["msg"]


def file_in_the_way(path: Path) -> Path | None:
    """The file standing where `path` or a folder above it would be (the nearest of them that exists), or None.

    >>> import tempfile; tmp = Path(tempfile.mkdtemp()); (tmp / "a.txt").write_text("x")
    1
    >>> file_in_the_way(tmp / "a.txt" / "run") == tmp / "a.txt", file_in_the_way(tmp / "new" / "run")
    (True, None)
    """
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def _file_above(path: Path, flag: str) -> None:
    """InputError when a folder above `path` is a file: nothing can be written under it."""
    if (blocker := file_in_the_way(path.parent)) is not None:
        raise InputError(f"{flag} {path}: {blocker} is a file, not a folder")


def _make_folder(path: Path, flag: str, given: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{flag} {given}: cannot make the folder {path} ({exc.strerror})") from None


def output_folder(path: Path, flag: str = "--out") -> Path:
    """Make `path` (and its parents) a folder to write into; InputError naming `flag` when a file is in the way.

    >>> import tempfile; tmp = Path(tempfile.mkdtemp()); (tmp / "a.txt").write_text("x")
    1
    >>> output_folder(tmp / "new" / "cards") == tmp / "new" / "cards"
    True
    >>> try: output_folder(tmp / "a.txt")
    ... except InputError as exc: print(str(exc).replace(str(tmp), "T"))
    --out T/a.txt is a file, not a folder; give a folder (it is made if missing)
    >>> try: output_folder(tmp / "a.txt" / "cards")
    ... except InputError as exc: print(str(exc).replace(str(tmp), "T"))
    --out T/a.txt/cards: T/a.txt is a file, not a folder
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path} is a file, not a folder; give a folder (it is made if missing)")
    _file_above(path, flag)
    _make_folder(path, flag, path)
    return path


def output_file(path: Path, flag: str = "--out", example: str = "out.jsonl") -> Path:
    """Make the folder of `path`, a file to write; InputError naming `flag` when `path` is a folder or a file
    stands where a folder above it should be.

    >>> import tempfile; tmp = Path(tempfile.mkdtemp())
    >>> try: output_file(tmp, example="cfg.py")
    ... except InputError as exc: print(str(exc).replace(str(tmp), "T"))
    --out T is a folder; give a file path, e.g. T/cfg.py
    >>> (tmp / "a.txt").write_text("x")
    1
    >>> try: output_file(tmp / "a.txt" / "cfg.py")
    ... except InputError as exc: print(str(exc).replace(str(tmp), "T"))
    --out T/a.txt/cfg.py: T/a.txt is a file, not a folder
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder; give a file path, e.g. {path / example}")
    _file_above(path, flag)
    _make_folder(path.parent, flag, path)
    return path
