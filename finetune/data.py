"""Read training JSONL, tell its format apart, and pull what a config needs from it.

Two formats are accepted, one record per line:
- XTuner conversation: `{"conversation": [{"system": "…", "input": "…", "output": "…"}, {"input": …}]}`
- OpenAI messages: `{"messages": [{"role": "system", …}, {"role": "user", …}, {"role": "assistant", …}]}`

>>> rec = {"messages": [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "你好"}]}
>>> record_format(rec), record_system(rec), first_input(rec)
('openai', '你是助手', '你好')
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from agents.errors import InputError

DataFormat = Literal["xtuner", "openai"]


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """Yield `(line_number, record_or_None, error)` for every non-blank line (1-based line numbers)."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})"
                continue
            if not isinstance(obj, dict):
                yield lineno, None, f"expected a JSON object, got {type(obj).__name__}"
                continue
            yield lineno, obj, ""


def record_format(record: dict[str, Any]) -> DataFormat | None:
    """'xtuner' for a conversation record, 'openai' for a messages record, None otherwise."""
    if isinstance(record.get("conversation"), list):
        return "xtuner"
    if isinstance(record.get("messages"), list):
        return "openai"
    return None


def detect_format(path: Path) -> DataFormat:
    """The format of the first valid record; InputError when the file is missing, empty or neither."""
    if not path.is_file():
        raise InputError(f"data file {path} does not exist: export a run first (`zaoshu export …`)")
    for lineno, record, _ in iter_jsonl(path):
        if record is not None and (fmt := record_format(record)):
            return fmt
        if lineno > 1000:
            break
    raise InputError(
        f"{path} holds no XTuner ('conversation') or OpenAI ('messages') records: "
        f"export it with `zaoshu export --format xtuner`"
    )


def load_records(path: Path) -> list[dict[str, Any]]:
    """All valid JSON objects of a JSONL file (invalid lines are the validator's business)."""
    return [r for _, r, _ in iter_jsonl(path) if r is not None]


def record_system(record: dict[str, Any]) -> str:
    """The system prompt of a record in either format ('' if none)."""
    if record_format(record) == "xtuner":
        turns = record["conversation"]
        return str(turns[0].get("system") or "") if turns and isinstance(turns[0], dict) else ""
    for msg in record.get("messages") or []:
        if isinstance(msg, dict) and msg.get("role") == "system":
            return str(msg.get("content") or "")
    return ""


def first_input(record: dict[str, Any]) -> str:
    """The first user input of a record ('' if none)."""
    if record_format(record) == "xtuner":
        turns = record["conversation"]
        return str(turns[0].get("input") or "") if turns and isinstance(turns[0], dict) else ""
    for msg in record.get("messages") or []:
        if isinstance(msg, dict) and msg.get("role") == "user":
            return str(msg.get("content") or "")
    return ""


def first_output(record: dict[str, Any]) -> str:
    """The first assistant answer of a record ('' if none): the reference answer in evaluation."""
    if record_format(record) == "xtuner":
        turns = record["conversation"]
        return str(turns[0].get("output") or "") if turns and isinstance(turns[0], dict) else ""
    for msg in record.get("messages") or []:
        if isinstance(msg, dict) and msg.get("role") == "assistant":
            return str(msg.get("content") or "")
    return ""


def common_system(records: list[dict[str, Any]]) -> str:
    """The system prompt most records share (the recipe's); '' when there is none.

    >>> common_system([{"conversation": [{"system": "甲", "input": "a", "output": "b"}]}] * 2)
    '甲'
    """
    counts: dict[str, int] = {}
    for record in records:
        system = record_system(record)
        counts[system] = counts.get(system, 0) + 1
    return max(counts, key=counts.get) if counts else ""


def sample_inputs(records: list[dict[str, Any]], k: int, seed: int = 0) -> list[str]:
    """`k` distinct first inputs picked with a fixed seed (the same data gives the same list).

    >>> recs = [{"conversation": [{"input": q, "output": "x"}]} for q in "甲乙丙丁"]
    >>> sample_inputs(recs, 2) == sample_inputs(recs, 2)
    True
    """
    inputs = list(dict.fromkeys(q for r in records if (q := first_input(r).strip())))
    if len(inputs) <= k:
        return inputs
    return random.Random(seed).sample(inputs, k)
