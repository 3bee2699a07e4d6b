"""Dataset record formats: a `Sample` to and from XTuner, OpenAI, Alpaca, ShareGPT and pretraining records.

Pure functions, no I/O. Every `to_*` strips `meta` unless `keep_meta=True` (then `id` and `meta` are
added); every `from_*` gives back a `Sample` whose `system` and `turns` equal the original's.

>>> s = Sample(id="a1", recipe="demo", kind="qa", system="你是助手", turns=[Turn(input="你好", output="你好！")])
>>> to_xtuner(s)
{'conversation': [{'system': '你是助手', 'input': '你好', 'output': '你好！'}]}
>>> to_alpaca(s)
{'instruction': '你好', 'input': '', 'output': '你好！', 'system': '你是助手', 'history': []}
>>> from_record(to_sharegpt(s)).turns == s.turns
True
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from agents.errors import InputError, pydantic_problem
from agents.llm_wire import split_think
from agents.schemas import Sample, Turn

FORMATS = ("xtuner", "openai", "alpaca", "sharegpt", "pretrain")
"""Export formats `zaoshu export --format` accepts."""

LLAMA_FACTORY_FORMATS = ("openai", "alpaca", "sharegpt")
"""Formats LLaMA-Factory reads (through a `dataset_info.json` entry); XTuner's `conversation` is not one."""


def _finish(record: dict[str, Any], sample: Sample, keep_meta: bool) -> dict[str, Any]:
    if keep_meta:
        record["id"] = sample.id
        record["meta"] = sample.meta
    return record


def _output(turn: Turn, with_reasoning: bool) -> str:
    """The turn's answer; with `with_reasoning`, after its `<think>…</think>` (Qwen3 / DeepSeek-R1 templates)."""
    if with_reasoning and turn.reasoning and turn.reasoning.strip():
        return f"<think>\n{turn.reasoning.strip()}\n</think>\n\n{turn.output}"
    return turn.output


def to_xtuner(sample: Sample, *, keep_meta: bool = False, with_reasoning: bool = False) -> dict[str, Any]:
    """XTuner's `conversation` format; the system prompt appears only in the first turn.

    >>> s = Sample(id="x", recipe="r", kind="dialogue", system="S", turns=[Turn(input="a", output="b"), Turn(input="c", output="d")])
    >>> to_xtuner(s)["conversation"]
    [{'system': 'S', 'input': 'a', 'output': 'b'}, {'input': 'c', 'output': 'd'}]
    """
    conversation = []
    for i, turn in enumerate(sample.turns):
        item = {"system": sample.system} if i == 0 and sample.system else {}
        item.update(input=turn.input, output=_output(turn, with_reasoning))
        conversation.append(item)
    return _finish({"conversation": conversation}, sample, keep_meta)


def to_pretrain(sample: Sample, *, keep_meta: bool = False, with_reasoning: bool = False) -> dict[str, Any]:
    """XTuner incremental-pretraining record: one turn, empty input, the text in `output`.

    A `pretrain` sample's chunk is its single output; any other sample's texts are joined with a newline.

    >>> to_pretrain(Sample(id="p", recipe="r", kind="pretrain", turns=[Turn(input="", output="第一回")]))
    {'conversation': [{'input': '', 'output': '第一回'}]}
    """
    text = "\n".join(part for t in sample.turns for part in (t.input, t.output) if part)
    return _finish({"conversation": [{"input": "", "output": text}]}, sample, keep_meta)


def to_openai(sample: Sample, *, keep_meta: bool = False, with_reasoning: bool = False) -> dict[str, Any]:
    """OpenAI chat `messages`: an optional system message, then user/assistant pairs; with
    `with_reasoning`, an assistant message carries its reasoning in `reasoning_content` (DeepSeek's field).

    >>> to_openai(Sample(id="o", recipe="r", kind="qa", turns=[Turn(input="问", output="答")]))
    {'messages': [{'role': 'user', 'content': '问'}, {'role': 'assistant', 'content': '答'}]}
    """
    messages = [{"role": "system", "content": sample.system}] if sample.system else []
    for turn in sample.turns:
        answer = {"role": "assistant", "content": turn.output}
        if with_reasoning and turn.reasoning:
            answer["reasoning_content"] = turn.reasoning
        messages += [{"role": "user", "content": turn.input}, answer]
    return _finish({"messages": messages}, sample, keep_meta)


def to_alpaca(sample: Sample, *, keep_meta: bool = False, with_reasoning: bool = False) -> dict[str, Any]:
    """Alpaca: the last turn is instruction/output, earlier turns go to `history: [[q, a], ...]`.

    >>> s = Sample(id="a", recipe="r", kind="dialogue", turns=[Turn(input="q1", output="a1"), Turn(input="q2", output="a2")])
    >>> to_alpaca(s)
    {'instruction': 'q2', 'input': '', 'output': 'a2', 'system': '', 'history': [['q1', 'a1']]}
    """
    *earlier, last = sample.turns
    record = {
        "instruction": last.input,
        "input": "",
        "output": _output(last, with_reasoning),
        "system": sample.system,
        "history": [[t.input, _output(t, with_reasoning)] for t in earlier],
    }
    return _finish(record, sample, keep_meta)


def to_sharegpt(sample: Sample, *, keep_meta: bool = False, with_reasoning: bool = False) -> dict[str, Any]:
    """ShareGPT: `conversations` of human/gpt messages and a separate `system` field; with `with_reasoning`
    the thinking variant LLaMA-Factory's reasoning templates read: `<think>…</think>` before each answer.

    >>> to_sharegpt(Sample(id="s", recipe="r", kind="qa", system="S", turns=[Turn(input="问", output="答")]))
    {'conversations': [{'from': 'human', 'value': '问'}, {'from': 'gpt', 'value': '答'}], 'system': 'S'}
    """
    conversations = []
    for turn in sample.turns:
        conversations += [{"from": "human", "value": turn.input}, {"from": "gpt", "value": _output(turn, with_reasoning)}]
    return _finish({"conversations": conversations, "system": sample.system}, sample, keep_meta)


EXPORTERS: dict[str, Callable[..., dict[str, Any]]] = {
    "xtuner": to_xtuner,
    "openai": to_openai,
    "alpaca": to_alpaca,
    "sharegpt": to_sharegpt,
    "pretrain": to_pretrain,
}


def to_format(sample: Sample, fmt: str, *, keep_meta: bool = False, with_reasoning: bool = False) -> dict[str, Any]:
    """Dispatch to `to_<fmt>`; an unknown format is an `InputError` that lists the known ones."""
    if fmt not in EXPORTERS:
        raise InputError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return EXPORTERS[fmt](sample, keep_meta=keep_meta, with_reasoning=with_reasoning)


# ---------------------------------------------------------------- reading records back


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{where} must be a string, got {type(value).__name__}")
    return value


def _sample(record: dict[str, Any], turns: list[Turn], system: str, recipe: str, kind: str | None = None) -> Sample:
    """A Sample from a record's turns; an answer that starts with `<think>…</think>` (an export made
    --with-reasoning) keeps that as the turn's reasoning, never as part of its output.

    >>> turn = _sample({}, [Turn(input="问", output="<think>\\n想想。\\n</think>\\n\\n答。")], "", "r").turns[0]
    >>> turn.output, turn.reasoning
    ('答。', '想想。')
    """
    if not turns:
        raise InputError("record has no complete user/assistant turn")
    if kind is None:
        kind = "qa" if len(turns) == 1 else "dialogue"
    if kind != "pretrain":
        turns = [_split_reasoning(turn) for turn in turns]
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    sample_id = record.get("id")
    if not isinstance(sample_id, str) or not sample_id:
        key = json.dumps([system, [t.model_dump() for t in turns]], ensure_ascii=False)
        sample_id = Sample.stable_id(recipe, key)
    return Sample(id=sample_id, recipe=recipe, kind=kind, system=system, turns=turns, meta=meta)


def _split_reasoning(turn: Turn) -> Turn:
    thought, answer = split_think(turn.output)
    if not thought or turn.reasoning:
        return turn
    return Turn(input=turn.input, output=answer, reasoning=thought)


def from_xtuner(record: dict[str, Any], *, recipe: str = "imported") -> Sample:
    """Read an XTuner `conversation` record (pretraining records too: one turn with empty input → kind pretrain).

    >>> from_xtuner({"conversation": [{"input": "", "output": "正文"}]}).kind
    'pretrain'
    """
    conversation = record.get("conversation")
    if not isinstance(conversation, list) or not all(isinstance(t, dict) for t in conversation):
        raise InputError("`conversation` must be a list of {input, output} objects")
    system = ""
    turns = []
    for i, item in enumerate(conversation):
        if i == 0:
            system = _text(item.get("system"), "conversation[0].system")
        if "output" not in item:
            raise InputError(f"conversation[{i}] has no `output`")
        turns.append(Turn(input=_text(item.get("input"), f"conversation[{i}].input"),
                          output=_text(item["output"], f"conversation[{i}].output")))
    is_pretrain = len(turns) == 1 and not turns[0].input and not system
    return _sample(record, turns, system, recipe, "pretrain" if is_pretrain else None)


def _from_messages(record: dict[str, Any], messages: Any, field: str, role_key: str, content_key: str,
                   user: str, assistant: str, system_role: str, recipe: str, system: str = "") -> Sample:
    """Shared reader for role-tagged message lists (OpenAI and ShareGPT)."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise InputError(f"`{field}` must be a list of message objects")
    turns: list[Turn] = []
    pending: list[str] = []
    for i, message in enumerate(messages):
        role = message.get(role_key)
        content = _text(message.get(content_key), f"{field}[{i}].{content_key}")
        if role == system_role:
            system = content
        elif role == user:
            pending.append(content)
        elif role == assistant:
            if not pending:
                raise InputError(f"{field}[{i}]: an assistant message without a user message before it")
            reasoning = message.get("reasoning_content")  # an OpenAI export made --with-reasoning
            turns.append(Turn(input="\n".join(pending), output=content,
                              reasoning=reasoning if isinstance(reasoning, str) and reasoning else None))
            pending = []
        else:
            raise InputError(f"{field}[{i}] has unknown {role_key} {role!r}")
    if pending:
        raise InputError(f"`{field}` ends with a user message that has no answer")
    return _sample(record, turns, system, recipe)


def from_openai(record: dict[str, Any], *, recipe: str = "imported") -> Sample:
    """Read an OpenAI `messages` record; consecutive user messages are joined with a newline.

    >>> from_openai({"messages": [{"role": "user", "content": "问"}, {"role": "assistant", "content": "答"}]}).turns
    [Turn(input='问', output='答')]
    """
    return _from_messages(record, record.get("messages"), "messages", "role", "content",
                          "user", "assistant", "system", recipe)


def from_sharegpt(record: dict[str, Any], *, recipe: str = "imported") -> Sample:
    """Read a ShareGPT record (`system` field, or a leading `from: system` message).

    >>> from_sharegpt({"conversations": [{"from": "human", "value": "问"}, {"from": "gpt", "value": "答"}], "system": "S"}).system
    'S'
    """
    system = _text(record.get("system"), "system")
    return _from_messages(record, record.get("conversations"), "conversations", "from", "value",
                          "human", "gpt", "system", recipe, system=system)


def from_alpaca(record: dict[str, Any], *, recipe: str = "imported") -> Sample:
    """Read an Alpaca record; a non-empty `input` is appended to `instruction` after a newline (as LLaMA-Factory does).

    >>> from_alpaca({"instruction": "q2", "input": "", "output": "a2", "history": [["q1", "a1"]]}).turns[0]
    Turn(input='q1', output='a1')
    """
    history = record.get("history") or []
    if not isinstance(history, list):
        raise InputError("`history` must be a list of [question, answer] pairs")
    turns = []
    for i, pair in enumerate(history):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise InputError(f"history[{i}] must be a [question, answer] pair")
        turns.append(Turn(input=_text(pair[0], f"history[{i}][0]"), output=_text(pair[1], f"history[{i}][1]")))
    instruction = _text(record.get("instruction"), "instruction")
    extra = _text(record.get("input"), "input")
    if "output" not in record:
        raise InputError("record has no `output`")
    question = f"{instruction}\n{extra}" if instruction and extra else instruction or extra
    turns.append(Turn(input=question, output=_text(record["output"], "output")))
    return _sample(record, turns, _text(record.get("system"), "system"), recipe)


def from_text(record: dict[str, Any], *, recipe: str = "imported") -> Sample:
    """Read a plain pretraining record `{"text": ...}` (LLaMA-Factory's pretraining format)."""
    return _sample(record, [Turn(input="", output=_text(record.get("text"), "text"))], "", recipe, "pretrain")


def detect_format(record: Any) -> str:
    """Name the format of one record: `sample` (an accepted.jsonl line), `xtuner`, `pretrain`, `openai`,
    `sharegpt`, `alpaca` or `text`. Raises `InputError` when none fits.

    >>> detect_format({"messages": []}), detect_format({"conversation": [{"input": "", "output": "x"}]})
    ('openai', 'pretrain')
    """
    if not isinstance(record, dict):
        raise InputError(f"a record must be a JSON object, got {type(record).__name__}")
    if "turns" in record and "kind" in record:
        return "sample"
    if "conversation" in record:
        conv = record["conversation"]
        single = isinstance(conv, list) and len(conv) == 1 and isinstance(conv[0], dict)
        if single and not conv[0].get("input") and not conv[0].get("system"):
            return "pretrain"
        return "xtuner"
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record or ("input" in record and "output" in record):
        return "alpaca"
    if "text" in record:
        return "text"
    raise InputError(f"unrecognised record format (keys: {', '.join(sorted(record)) or 'none'})")


def preference_format(record: Any) -> str | None:
    """'dpo' or 'xtuner-dpo' for a preference pair (`zaoshu export --format dpo | xtuner-dpo`), else None.

    >>> preference_format({"prompt": [], "chosen": [], "rejected": []}), preference_format({"messages": []})
    ('xtuner-dpo', None)
    """
    if not isinstance(record, dict) or "chosen" not in record or "rejected" not in record:
        return None
    return "xtuner-dpo" if "prompt" in record else "dpo"


def from_preference(record: dict[str, Any], *, recipe: str = "imported") -> Sample:
    """A dpo / xtuner-dpo pair read as the conversation it prefers: its prompt followed by `chosen`
    (what `zaoshu stats` describes; the rejected answer is not a sample).

    >>> from_preference({"conversations": [{"from": "human", "value": "问"}], "chosen": {"from": "gpt", "value": "好"},
    ...                  "rejected": {"from": "gpt", "value": "坏"}, "system": "S"}).turns
    [Turn(input='问', output='好')]
    """
    chosen = record.get("chosen")
    if preference_format(record) == "xtuner-dpo":
        prompt = record.get("prompt")
        if not isinstance(prompt, list) or not isinstance(chosen, list):
            raise InputError("`prompt` and `chosen` must be lists of messages")
        return _from_messages(record, [*prompt, *chosen], "prompt + chosen", "role", "content",
                              "user", "assistant", "system", recipe)
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or not isinstance(chosen, dict):
        raise InputError("`conversations` must be a list of messages and `chosen` one message")
    return _from_messages(record, [*conversations, chosen], "conversations + chosen", "from", "value",
                          "human", "gpt", "system", recipe, system=_text(record.get("system"), "system"))


def from_record(record: Any, fmt: str | None = None, *, recipe: str = "imported") -> Sample:
    """Turn a record of any known format (detected when `fmt` is None) back into a `Sample`; a dpo /
    xtuner-dpo pair is read as the conversation it prefers (`from_preference`). A KTO record marked
    undesirable (`kto_tag: false`, a draft the critic sent back) and a turn with no answer are not samples
    to train on: InputError, so a reader skips and names the line."""
    if isinstance(record, dict) and record.get("kto_tag") is False:
        raise InputError("a KTO record marked undesirable (kto_tag: false) is a draft the critic sent back, "
                         "not a sample")
    if fmt is None and preference_format(record):
        return _answered(from_preference(record, recipe=recipe))
    fmt = fmt or detect_format(record)
    if fmt == "sample":
        try:
            return Sample.model_validate(record)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            raise InputError(f"invalid Sample: {where}: {pydantic_problem(first)}") from exc
    readers = {"xtuner": from_xtuner, "pretrain": from_xtuner, "openai": from_openai,
               "sharegpt": from_sharegpt, "alpaca": from_alpaca, "text": from_text}
    if fmt not in readers:
        raise InputError(f"cannot read format {fmt!r}")
    return _answered(readers[fmt](record, recipe=recipe))


def _answered(sample: Sample) -> Sample:
    if blank := next((i for i, turn in enumerate(sample.turns, 1) if not turn.output.strip()), None):
        raise InputError(f"turn {blank} has an empty answer")
    return sample


# ---------------------------------------------------------------- LLaMA-Factory


_ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output",
                   "system": "system", "history": "history"}
_SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                  "assistant_tag": "gpt", "system_tag": "system"}
_OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                "assistant_tag": "assistant", "system_tag": "system"}


def dataset_info_entry(name: str, file: str, fmt: str) -> dict[str, Any]:
    """One LLaMA-Factory `dataset_info.json` entry (fields as LLaMA-Factory's data/README documents).

    OpenAI messages are LLaMA-Factory's `sharegpt` formatting with role/content tags.

    >>> dataset_info_entry("demo", "train.jsonl", "alpaca")["demo"]["columns"]["history"]
    'history'
    >>> dataset_info_entry("demo", "train.jsonl", "openai")["demo"]["tags"]["user_tag"]
    'user'
    """
    if fmt == "alpaca":
        entry = {"file_name": file, "formatting": "alpaca", "columns": dict(_ALPACA_COLUMNS)}
    elif fmt == "sharegpt":
        entry = {"file_name": file, "formatting": "sharegpt",
                 "columns": {"messages": "conversations", "system": "system"}, "tags": dict(_SHAREGPT_TAGS)}
    elif fmt == "openai":
        entry = {"file_name": file, "formatting": "sharegpt",
                 "columns": {"messages": "messages"}, "tags": dict(_OPENAI_TAGS)}
    else:
        raise InputError(f"LLaMA-Factory cannot read the {fmt!r} format; use one of {', '.join(LLAMA_FACTORY_FORMATS)}")
    return {name: entry}
