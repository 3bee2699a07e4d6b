"""Export formats: exact records per format, round trips Sample → format → Sample, detection, LLaMA-Factory entries."""

import json
from pathlib import Path

import pytest

from agents.errors import InputError
from agents.schemas import Sample, Turn
from finetune.formats import (
    dataset_info_entry,
    detect_format,
    from_alpaca,
    from_openai,
    from_record,
    from_sharegpt,
    from_xtuner,
    to_alpaca,
    to_format,
    to_openai,
    to_pretrain,
    to_sharegpt,
    to_xtuner,
)

REFERENCE = Path(__file__).parents[2] / "shared" / "reference"

DIALOGUE = Sample(
    id="d1", recipe="tianji", kind="dialogue", system="你是天机",
    turns=[Turn(input="你好", output="你好呀！"), Turn(input="祝福语？", output="新年快乐。")],
    meta={"scene": "春节"},
)
QA_NO_SYSTEM = Sample(id="q1", recipe="ruozhiba", kind="qa", turns=[Turn(input="咖啡是豆浆吗？", output="不是。")])
CHUNK = Sample(id="p1", recipe="wulewule", kind="pretrain", turns=[Turn(input="", output="第一回 灵根育孕源流出")])
SAMPLES = [DIALOGUE, QA_NO_SYSTEM, CHUNK]


def test_xtuner_puts_system_only_in_first_turn():
    assert to_xtuner(DIALOGUE) == {"conversation": [
        {"system": "你是天机", "input": "你好", "output": "你好呀！"},
        {"input": "祝福语？", "output": "新年快乐。"},
    ]}
    assert to_xtuner(QA_NO_SYSTEM) == {"conversation": [{"input": "咖啡是豆浆吗？", "output": "不是。"}]}


def test_openai_messages():
    assert to_openai(DIALOGUE) == {"messages": [
        {"role": "system", "content": "你是天机"},
        {"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好呀！"},
        {"role": "user", "content": "祝福语？"}, {"role": "assistant", "content": "新年快乐。"},
    ]}
    assert to_openai(QA_NO_SYSTEM)["messages"][0] == {"role": "user", "content": "咖啡是豆浆吗？"}


def test_alpaca_moves_earlier_turns_to_history():
    assert to_alpaca(DIALOGUE) == {"instruction": "祝福语？", "input": "", "output": "新年快乐。",
                                   "system": "你是天机", "history": [["你好", "你好呀！"]]}


def test_sharegpt_conversations_and_system():
    assert to_sharegpt(DIALOGUE) == {"conversations": [
        {"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好呀！"},
        {"from": "human", "value": "祝福语？"}, {"from": "gpt", "value": "新年快乐。"},
    ], "system": "你是天机"}


def test_pretrain_is_xtuner_conversation_with_empty_input():
    assert to_pretrain(CHUNK) == {"conversation": [{"input": "", "output": "第一回 灵根育孕源流出"}]}
    assert to_pretrain(QA_NO_SYSTEM) == {"conversation": [{"input": "", "output": "咖啡是豆浆吗？\n不是。"}]}


def test_meta_is_stripped_unless_kept():
    for fmt in ("xtuner", "openai", "alpaca", "sharegpt", "pretrain"):
        assert "meta" not in to_format(DIALOGUE, fmt) and "id" not in to_format(DIALOGUE, fmt)
        kept = to_format(DIALOGUE, fmt, keep_meta=True)
        assert kept["id"] == "d1" and kept["meta"] == {"scene": "春节"}
        assert from_record(kept).id == "d1" and from_record(kept).meta == {"scene": "春节"}


@pytest.mark.parametrize("fmt", ["xtuner", "openai", "alpaca", "sharegpt"])
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.id)
def test_round_trip_preserves_system_and_turns(fmt, sample):
    record = json.loads(json.dumps(to_format(sample, fmt), ensure_ascii=False))
    back = from_record(record)
    assert (back.system, back.turns) == (sample.system, sample.turns)


@pytest.mark.parametrize("fmt", ["xtuner", "openai", "alpaca", "sharegpt"])
def test_round_trip_keeps_kind_when_meta_kept(fmt):
    assert from_record(to_format(DIALOGUE, fmt)).kind == "dialogue"
    assert from_record(to_format(QA_NO_SYSTEM, fmt)).kind == "qa"


def test_chain_of_formats_returns_the_same_xtuner_record():
    record = to_xtuner(DIALOGUE)
    for fmt in ("openai", "alpaca", "sharegpt", "xtuner"):
        record = to_format(from_record(record), fmt)
    assert record == to_xtuner(DIALOGUE)


def test_id_of_a_meta_less_record_is_stable():
    record = to_openai(DIALOGUE)
    assert from_record(record).id == from_record(json.loads(json.dumps(record))).id
    assert from_record(record).id != from_record(to_openai(QA_NO_SYSTEM)).id


@pytest.mark.parametrize("record, fmt", [
    ({"id": "x", "recipe": "r", "kind": "qa", "turns": [{"input": "a", "output": "b"}]}, "sample"),
    ({"conversation": [{"system": "S", "input": "", "output": "b"}]}, "xtuner"),
    ({"conversation": [{"input": "a", "output": "b"}]}, "xtuner"),
    ({"conversation": [{"input": "", "output": "chunk"}]}, "pretrain"),
    ({"messages": [{"role": "user", "content": "a"}]}, "openai"),
    ({"conversations": []}, "sharegpt"),
    ({"instruction": "a", "input": "", "output": "b"}, "alpaca"),
    ({"text": "chunk"}, "text"),
])
def test_detect_format(record, fmt):
    assert detect_format(record) == fmt


def test_detect_format_rejects_unknown_records():
    with pytest.raises(InputError, match="unrecognised record format"):
        detect_format({"question": "a", "answer": "b"})
    with pytest.raises(InputError, match="must be a JSON object"):
        detect_format(["a", "b"])


def test_alpaca_input_is_appended_to_instruction():
    sample = from_alpaca({"instruction": "翻译成英文", "input": "你好", "output": "Hello"})
    assert sample.turns == [Turn(input="翻译成英文\n你好", output="Hello")]


def test_sharegpt_reads_a_leading_system_message():
    sample = from_sharegpt({"conversations": [{"from": "system", "value": "S"},
                                              {"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]})
    assert sample.system == "S" and sample.turns == [Turn(input="a", output="b")]


def test_openai_joins_consecutive_user_messages():
    sample = from_openai({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                       {"role": "assistant", "content": "c"}]})
    assert sample.turns == [Turn(input="a\nb", output="c")]


@pytest.mark.parametrize("record, message", [
    ({"messages": [{"role": "user", "content": "a"}]}, "no answer"),
    ({"messages": [{"role": "assistant", "content": "a"}]}, "without a user message"),
    ({"messages": [{"role": "tool", "content": "a"}]}, "unknown role 'tool'"),
    ({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}]}, "must be a string"),
    ({"messages": "hi"}, "must be a list"),
    ({"conversation": [{"input": "a"}]}, "has no `output`"),
    ({"instruction": "a", "input": ""}, "no `output`"),
    ({"instruction": "a", "output": "b", "history": [["only one"]]}, r"history\[0\]"),
    ({"id": "x", "recipe": "r", "kind": "essay", "turns": []}, "invalid Sample: kind"),
])
def test_broken_records_raise_input_error(record, message):
    with pytest.raises(InputError, match=message):
        from_record(record)


def test_unknown_export_format():
    with pytest.raises(InputError, match="unknown format 'csv'"):
        to_format(DIALOGUE, "csv")


def test_dataset_info_entries_follow_llama_factory():
    assert dataset_info_entry("r1_train", "train.jsonl", "alpaca") == {"r1_train": {
        "file_name": "train.jsonl", "formatting": "alpaca",
        "columns": {"prompt": "instruction", "query": "input", "response": "output",
                    "system": "system", "history": "history"}}}
    assert dataset_info_entry("r1", "all.json", "sharegpt") == {"r1": {
        "file_name": "all.json", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "system_tag": "system"}}}
    assert dataset_info_entry("r1", "all.jsonl", "openai") == {"r1": {
        "file_name": "all.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                 "assistant_tag": "assistant", "system_tag": "system"}}}
    with pytest.raises(InputError, match="LLaMA-Factory cannot read"):
        dataset_info_entry("r1", "all.jsonl", "xtuner")


def _reference_lines(name: str) -> list[dict]:
    path = REFERENCE / "wulewule" / name
    if not path.is_file():
        pytest.skip(f"reference data absent: {path}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_wulewule_pretraining_records_round_trip_exactly():
    for record in _reference_lines("heishenghua_pretraining_first5.jsonl"):
        sample = from_record(record)
        assert sample.kind == "pretrain"
        assert to_pretrain(sample) == record


def test_wulewule_multiturn_records_round_trip_exactly():
    records = _reference_lines("huixiangdou_conversations_multiturn10.jsonl")
    assert len(records) == 10
    for record in records:
        sample = from_xtuner(record)
        assert sample.system.startswith("你是悟了悟了")
        assert to_xtuner(sample) == record
        assert to_xtuner(from_record(to_sharegpt(sample))) == record
