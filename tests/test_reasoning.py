"""Reasoning traces: captured from the local server's `reasoning_content` and `<think>` replies by both
clients, carried through structured output to each turn, and exported only when asked for."""

import json
import os
from pathlib import Path

import pytest
import yaml
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from rich.console import Console

from agents.llm import LangChainChatClient, make_client
from agents.schemas import Sample, Turn
from agents.settings import load_settings
from agents.structured import ask_structured
from finetune.formats import from_record, to_openai, to_sharegpt, to_xtuner
from tests.fake_openai import Fault, FakeOpenAI, Reasoned
from tests.test_llm import GOOD, MSGS, Questions

REPO = Path(__file__).resolve().parents[1]
THOUGHT = "用户要两个问题，先想想主要角色有哪些。"


def cfg(role="answerer"):
    return load_settings(cli={}, env_file=None).for_role(role)


@pytest.mark.parametrize("backend", ["http", "langchain"])
async def test_think_preamble_becomes_reasoning_not_output(fake_llm, backend):
    fake_llm.reply = lambda req: f"<think>{THOUGHT}</think>\n{GOOD}"
    client = make_client(cfg(), backend=backend)
    reply = await client.chat(MSGS)
    assert reply.reasoning == THOUGHT
    result = await ask_structured(client, MSGS, Questions)
    assert result.ok and result.reasoning == THOUGHT
    assert THOUGHT not in json.dumps(result.value.model_dump(), ensure_ascii=False)


async def test_reasoning_content_is_captured_by_the_http_client(fake_llm):
    fake_llm.reply = lambda req: Reasoned(GOOD, THOUGHT)
    result = await ask_structured(make_client(cfg()), MSGS, Questions)
    assert result.ok and result.reasoning == THOUGHT and result.raw == GOOD
    assert result.value.questions == ["天命人是谁？", "黄风岭在哪一回？"]


async def test_reasoning_fault_and_plain_replies(fake_llm):
    fake_llm.reply = lambda req: GOOD
    fake_llm.fail_next(Fault("reasoning"))
    client = make_client(cfg())
    assert (await client.chat(MSGS)).reasoning == "先分析一下问题。"
    assert (await client.chat(MSGS)).reasoning == ""  # a reply without reasoning has none


async def test_langchain_client_reads_reasoning_content_from_provider_messages():
    """ChatDeepSeek and other provider classes put `reasoning_content` in additional_kwargs."""
    model = GenericFakeChatModel(messages=iter([AIMessage(content=GOOD, additional_kwargs={"reasoning_content": THOUGHT})]))
    result = await ask_structured(LangChainChatClient(model, cfg()), MSGS, Questions)
    assert result.ok and result.reasoning == THOUGHT


# ---------------------------------------------------------------- a real run, then its exports


def run_wulewule(tmp_path: Path, monkeypatch, script: str = "reply", index_dir: bool = True) -> Path:
    """A small wulewule run against the local server playing a reasoning model the critic sends back once
    (`script`: `reply`, or `leaky_reply`, whose reasoning on a revision talks about the feedback);
    without `index_dir` the recipe builds its own index, beside the run."""
    from graphs.execute import execute
    from graphs.session import RunRequest
    from recipes.wulewule.recipe import Wulewule
    from tests import revise_replies

    revise_replies.reset()
    config = yaml.safe_load((REPO / "recipes/wulewule/wulewule.yaml").read_text(encoding="utf-8"))
    config.update(knowledge_folder=str(REPO / "knowledge/bases/wulewule"), embedder="hash",
                  aspects=config["aspects"][:3], questions_per_aspect=2)
    if index_dir:
        config["index_dir"] = str(tmp_path / "kb-index")
    path = tmp_path / "wulewule.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with FakeOpenAI(reply=getattr(revise_replies, script)) as server:
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-r1")
        monkeypatch.setenv("ZAOSHU_API_KEY", "sk-test-not-a-real-key-0000")
        out = tmp_path / "run"
        console = Console(record=True, width=200, file=open(os.devnull, "w"))
        assert execute(Wulewule(), RunRequest(config=path, out=out, concurrency=1), console) == 0
    return out


def zaoshu(*args: str) -> int:
    """The `zaoshu` command in-process (its registration and its one-line errors included)."""
    from zaoshu_cli import main

    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    return exited.value.code


def accepted(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "accepted.jsonl").read_text(encoding="utf-8").splitlines()]


def test_every_turn_keeps_its_reasoning_apart_from_the_output(tmp_path, monkeypatch):
    run = run_wulewule(tmp_path, monkeypatch)
    samples = accepted(run)
    assert len(samples) == 6
    turns = [t for s in samples for t in s["turns"]]
    assert len(turns) > 6 and all(t["reasoning"].startswith("用户问的是「") for t in turns)
    assert all("<think>" not in t["output"] and "用户问的是" not in t["output"] for t in turns)
    # the critic sent every first draft back: each turn keeps the accepted revision's reasoning
    assert all(t["reasoning"].endswith("只留下有出处的句子。") for t in turns)
    assert not any("reasoning_dropped" in s["meta"] for s in samples)


def test_reasoning_that_talks_about_the_revision_feedback_is_not_kept(tmp_path, monkeypatch):
    run = run_wulewule(tmp_path, monkeypatch, script="leaky_reply")
    samples = accepted(run)
    assert len(samples) == 6
    for sample in samples:  # every turn is a revision whose reasoning said 「按修改意见…」: the answers stay
        assert not any("reasoning" in t for t in sample["turns"])
        assert sample["meta"]["reasoning_dropped"] == {str(i): "推理里说到了修改过程「按修改意见」"
                                                       for i in range(len(sample["turns"]))}
        drafts = sample["meta"]["drafts"]  # a turn's first draft keeps its reasoning (no feedback yet), revisions not
        first = [i == 0 or drafts[i - 1]["turn"] != d["turn"] for i, d in enumerate(drafts)]
        assert ["reasoning" in d for d in drafts] == first and len(drafts) > len(sample["turns"])
    assert zaoshu("export", run, "--format", "dpo", "--with-reasoning") == 0
    pairs = [json.loads(x) for x in (run / "exports/dpo/all.jsonl").read_text(encoding="utf-8").splitlines()]
    assert pairs and "修改意见" not in json.dumps(pairs, ensure_ascii=False)
    assert not any(p["chosen"]["value"].startswith("<think>") for p in pairs)  # the accepted revisions: no reasoning
    assert any(p["rejected"]["value"].startswith("<think>\n用户问的是") for p in pairs)  # a first draft keeps its own


def test_the_counsellor_turns_keep_reasoning_through_a_dialogue_revision(tmp_path, monkeypatch):
    from graphs.execute import execute
    from graphs.session import RunRequest
    from recipes.emollm.recipe import EmoLLM
    from tests import revise_replies

    revise_replies.reset()
    config = yaml.safe_load((REPO / "recipes/emollm/emollm.yaml").read_text(encoding="utf-8"))
    config.update(areas=["学业"], emotions=["焦虑", "孤独"], turns=[2, 2])
    path = tmp_path / "emollm.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with FakeOpenAI(reply=revise_replies.reply) as server:
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-r1")
        monkeypatch.setenv("ZAOSHU_API_KEY", "sk-test-not-a-real-key-0000")
        console = Console(record=True, width=200, file=open(os.devnull, "w"))
        assert execute(EmoLLM(), RunRequest(config=path, out=tmp_path / "run", concurrency=1), console) == 0
    samples = accepted(tmp_path / "run")
    assert len(samples) == 2
    for sample in samples:
        assert all(t["reasoning"] and "<think>" not in t["output"] for t in sample["turns"])
        judged = [d for d in sample["meta"]["drafts"] if d["by"] == "judge"]
        assert [d["decision"] for d in judged] == ["revise", "accept"]  # the whole dialogue sent back once
        assert judged[0]["turn"] == len(sample["turns"]) - 1 and judged[0]["text"] != sample["turns"][-1]["output"]


def test_export_with_and_without_reasoning(tmp_path, monkeypatch):
    run = run_wulewule(tmp_path, monkeypatch)
    for fmt in ("xtuner", "openai", "sharegpt", "alpaca"):
        assert zaoshu("export", run, "--format", fmt) == 0
        clean = (run / f"exports/{fmt}/all.jsonl").read_text(encoding="utf-8")
        assert "<think>" not in clean and "reasoning" not in clean and "用户问的是" not in clean

        assert zaoshu("export", run, "--format", fmt, "--with-reasoning") == 0
        records = [json.loads(x) for x in (run / f"exports/{fmt}/all.jsonl").read_text(encoding="utf-8").splitlines()]
        assert len(records) == 6
        for record, sample in zip(records, sorted(accepted(run), key=lambda s: s["id"])):
            first = sample["turns"][0]
            if fmt == "xtuner":
                assert record["conversation"][0]["output"] == f"<think>\n{first['reasoning']}\n</think>\n\n{first['output']}"
            elif fmt == "openai":
                answer = record["messages"][2]
                assert answer == {"role": "assistant", "content": first["output"], "reasoning_content": first["reasoning"]}
            elif fmt == "sharegpt":
                value = record["conversations"][1]["value"]
                assert value.startswith("<think>\n用户问的是") and value.endswith(first["output"])
            else:
                assert record["output"].startswith("<think>\n") and "</think>\n\n" in record["output"]


def test_formats_with_reasoning_on_a_turn_without_one_stay_plain():
    s = Sample(id="x", recipe="r", kind="qa", system="S",
               turns=[Turn(input="问", output="答。", reasoning="想。"), Turn(input="再问", output="再答。")])
    assert to_xtuner(s, with_reasoning=True)["conversation"][1]["output"] == "再答。"
    assert "reasoning_content" not in to_openai(s, with_reasoning=True)["messages"][4]
    assert to_sharegpt(s, with_reasoning=True)["conversations"][1]["value"] == "<think>\n想。\n</think>\n\n答。"
    assert to_xtuner(s) == to_xtuner(s.model_copy(update={"turns": [Turn(input="问", output="答。"),
                                                                     Turn(input="再问", output="再答。")]}))
    assert from_record(to_openai(s)).turns == [Turn(input="问", output="答。"), Turn(input="再问", output="再答。")]
    back = from_record(to_openai(s, with_reasoning=True))  # `zaoshu merge` of such an export keeps the reasoning
    assert [t.reasoning for t in back.turns] == ["想。", None]


def test_samples_without_reasoning_serialize_as_before():
    s = Sample(id="x", recipe="r", kind="qa", turns=[Turn(input="问", output="答。")])
    assert s.model_dump_json() == '{"id":"x","recipe":"r","kind":"qa","system":"","turns":[{"input":"问","output":"答。"}],"meta":{}}'


def test_reasoning_stays_apart_through_a_merge_of_an_export_made_with_it(tmp_path, monkeypatch):
    """xtuner/sharegpt/alpaca carry the thinking as `<think>…</think>` before the answer: read back by merge,
    it had become part of every answer, and an export without --with-reasoning kept it."""
    run = run_wulewule(tmp_path, monkeypatch)
    for fmt in ("xtuner", "sharegpt", "alpaca"):
        assert zaoshu("export", run, "--format", fmt, "--with-reasoning") == 0
        merged = tmp_path / f"merged-{fmt}"
        assert zaoshu("merge", run / f"exports/{fmt}/all.jsonl", "--out", merged) == 0
        assert zaoshu("export", merged, "--format", "openai") == 0
        clean = (merged / "exports/openai/all.jsonl").read_text(encoding="utf-8")
        assert "<think>" not in clean and "用户问的是" not in clean
        again = [json.loads(x) for x in (merged / "accepted.jsonl").read_text(encoding="utf-8").splitlines()]
        assert all(turn.get("reasoning") for sample in again for turn in sample["turns"][-1:])
