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


def detect_format(path: Path) -> DataFormat:
    """The format of the first valid record; InputError when the file is missing, not UTF-8, empty or neither."""
    if not path.is_file():
        raise InputError(f"data file {path} does not exist: export a run first (`zaoshu export …`)")
    records, bad = read_records(path)
    refuse_non_utf8(path, bad)  # XTuner reads UTF-8: training would stop at the first such line
    for _, record in records[:1000]:
        if fmt := record_format(record):
            return fmt
    raise InputError(
        f"{path} holds no XTuner ('conversation') or OpenAI ('messages') records: "
        f"export it with `zaoshu export --format xtuner`"
    )


def load_records(path: Path) -> list[dict[str, Any]]:
    """All JSON objects of a JSONL file (invalid lines are the validator's business)."""
    records, _ = read_records(path)
    return [r for _, r in records if isinstance(r, dict)]


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
