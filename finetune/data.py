"""Read training JSONL, tell its format apart, and pull what a config needs from it.

Two formats are accepted, one record per line:
- XTuner conversation: `{"conversation": [{"system": "…", "input": "…", "output": "…"}, {"input": …}]}`
- OpenAI messages: `{"messages": [{"role": "system", …}, {"role": "user", …}, {"role": "assistant", …}]}`

>>> rec = {"messages": [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "你好"}]}
>>> record_format(rec), first(rec, "system"), first(rec, "input")
('openai', '你是助手', '你好')
"""

from __future__ import annotations

import random
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agents.errors import InputError
from finetune import formats
from finetune.export import read_records, refuse_non_utf8

DataFormat = Literal["xtuner", "openai"]

_ROLE_OF_FIELD = {"system": "system", "input": "user", "output": "assistant"}


def _kind(record: Any) -> str | None:
    """`formats.detect_format` of one record, None for one it does not know."""
    try:
        return formats.detect_format(record)
    except InputError:
        return None


def record_format(record: Any) -> DataFormat | None:
    """'xtuner' for a conversation record (pretraining included), 'openai' for messages, None otherwise."""
    return {"xtuner": "xtuner", "pretrain": "xtuner", "openai": "openai"}.get(_kind(record))


def is_pretraining(records: list[dict[str, Any]]) -> bool:
    """Every record an incremental-pretraining one (one turn, empty input, no system: `zaoshu export --format
    pretrain`): XTuner then learns the text as it is, with no chat template around it (`template_map_fn=None`).

    >>> is_pretraining([{"conversation": [{"input": "", "output": "第一回 灵根育孕源流出"}]}])
    True
    >>> is_pretraining([{"conversation": [{"input": "问", "output": "答"}]}])
    False
    """
    return bool(records) and all(_kind(record) == "pretrain" for record in records)


@dataclass
class ChatFile:
    """A training or test file read once: its JSON objects, and the line of each format's first record."""

    path: Path
    records: list[dict[str, Any]]
    first_line: dict[DataFormat, int]

    @property
    def format(self) -> DataFormat:
        """The one format of its records; InputError when it mixes both: XTuner's config applies one map function
        (none for XTuner's, `openai_map_fn` for OpenAI's) to every record, and the other kind fails in training."""
        if len(self.first_line) > 1:
            unit = "record" if self.path.suffix == ".json" else "line"
            raise InputError(
                f"{self.path} mixes XTuner ('conversation') records (the first on {unit} {self.first_line['xtuner']}) "
                f"and OpenAI ('messages') records (the first on {unit} {self.first_line['openai']}): XTuner reads one "
                f"format a file; join them with `zaoshu merge {shlex.quote(str(self.path))} --out merged` and export "
                "that with one --format")
        return next(iter(self.first_line))


def read_chat(path: Path) -> ChatFile:
    """Read a chat file once; InputError when it is missing, not UTF-8, empty or holds neither format."""
    if not path.is_file():
        raise InputError(f"data file {path} does not exist: export a run first (`zaoshu export …`)")
    records, bad = read_records(path)
    refuse_non_utf8(path, bad)  # XTuner reads UTF-8: training would stop at the first such line
    first_line: dict[DataFormat, int] = {}
    for number, record in records:
        if (fmt := record_format(record)) and fmt not in first_line:
            first_line[fmt] = number
    if not first_line:
        raise InputError(
            f"{path} holds no XTuner ('conversation') or OpenAI ('messages') records: "
            f"export it with `zaoshu export --format xtuner`"
        )
    return ChatFile(path, [r for _, r in records if isinstance(r, dict)], first_line)


def first(record: dict[str, Any], field: Literal["system", "input", "output"]) -> str:
    """The first system prompt / user input / assistant answer of a record in either format ('' if none).

    Tolerant on purpose (unlike `formats.from_record`): a test record without an answer still has a question.
    """
    if record_format(record) == "xtuner":
        turns = record["conversation"]
        return str(turns[0].get(field) or "") if turns and isinstance(turns[0], dict) else ""
    role = _ROLE_OF_FIELD[field]
    for msg in record.get("messages") or []:
        if isinstance(msg, dict) and msg.get("role") == role:
            return str(msg.get("content") or "")
    return ""


def common_system(records: list[dict[str, Any]]) -> str:
    """The system prompt most records share (the recipe's); '' when there is none.

    >>> common_system([{"conversation": [{"system": "甲", "input": "a", "output": "b"}]}] * 2)
    '甲'
    """
    counts: dict[str, int] = {}
    for record in records:
        system = first(record, "system")
        counts[system] = counts.get(system, 0) + 1
    return max(counts, key=counts.get) if counts else ""


def sample_inputs(records: list[dict[str, Any]], k: int, seed: int = 0) -> list[str]:
    """`k` distinct first inputs picked with a fixed seed (the same data gives the same list).

    >>> recs = [{"conversation": [{"input": q, "output": "x"}]} for q in "甲乙丙丁"]
    >>> sample_inputs(recs, 2) == sample_inputs(recs, 2)
    True
    """
    inputs = list(dict.fromkeys(q for r in records if (q := first(r, "input").strip())))
    if len(inputs) <= k:
        return inputs
    return random.Random(seed).sample(inputs, k)
