"""Before/after evaluation with a fake judge, the markdown/JSON table, and the LLM judge over a fake client."""

from __future__ import annotations

import json

import pytest

from agents.llm import ChatReply

from finetune.evaluate import EndpointAnswerer, EvalItem, load_items, run_eval, write_report
from finetune.judge import make_llm_judge


class Fixed:
    def __init__(self, answers):
        self.answers = answers

    async def answer(self, items):
        return self.answers[: len(items)]


async def exact_judge(question, reference, answer):
    return 1.0 if answer == reference else 0.25


async def test_before_after_table(tmp_path):
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"conversation": [{"system": "你是弱智吧答主", "input": q, "output": a}]},
                                       ensure_ascii=False) + "\n"
                            for q, a in [("只剩一个心脏了还能活吗？", "能，人本来就只有一个心脏。"), ("鸡柳是鸡的柳吗？", "不是。")]),
                    encoding="utf-8")
    items = load_items(test)
    assert items[0] == EvalItem(question="只剩一个心脏了还能活吗？", reference="能，人本来就只有一个心脏。", system="你是弱智吧答主")
    report = await run_eval(items, Fixed(["不能。", "不是。"]), Fixed(["能，人本来就只有一个心脏。", "不是。"]), exact_judge)
    assert report.summary == {"n": 2, "base_mean": 0.625, "tuned_mean": 1.0, "delta": 0.375,
                              "tuned_wins": 1, "base_wins": 0, "ties": 1}
    md, js = write_report(report, tmp_path / "eval")
    text = md.read_text(encoding="utf-8")
    assert "| 1 | 只剩一个心脏了还能活吗？ | 不能。 | 0.25 | 能，人本来就只有一个心脏。 | 1.00 |" in text
    assert "胜/平/负 1/1/0，共 2 题" in text
    assert json.loads(js.read_text(encoding="utf-8"))["rows"][1]["tuned_score"] == 1.0


class ScriptedClient:
    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    async def chat(self, messages, *, json_mode=False, temperature=None, max_tokens=None):
        self.calls.append((messages, json_mode, temperature, max_tokens))
        return ChatReply(self.replies.pop(0))


async def test_llm_judge_parses_reasons_then_score_and_reasks_once():
    client = ScriptedClient(["不是 JSON", '{"reasons": ["意思一致"], "score": 8}'])
    judge = make_llm_judge(client)
    assert await judge("问题", "参考", "回答") == 0.8
    assert len(client.calls) == 2 and client.calls[0][1]  # JSON asked for (mode True or the schema)
    assert "<answer>回答</answer>" in client.calls[0][0][1]["content"]


async def test_llm_judge_scores_zero_when_it_never_parses():
    judge = make_llm_judge(ScriptedClient(["x", "y", "z"]), attempts=3)
    assert await judge("问题", "参考", "") == 0.0


async def test_endpoint_answerer_sends_system_and_question():
    client = ScriptedClient([" 答案一 ", "答案二"])
    answers = await EndpointAnswerer(client, max_new_tokens=64).answer(
        [EvalItem(question="甲", system="系统"), EvalItem(question="乙")])
    assert answers == ["答案一", "答案二"]
    assert client.calls[0][0] == [{"role": "system", "content": "系统"}, {"role": "user", "content": "甲"}]
    assert client.calls[1][0] == [{"role": "user", "content": "乙"}] and client.calls[1][3] == 64


def eval_args(tmp_path, server, *more):
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"conversation": [{"input": f"问{i}", "output": f"答{i}。"}]},
                                       ensure_ascii=False) + "\n" for i in range(4)), encoding="utf-8")
    return ["finetune", "eval", "--test", test, "--base-url", server.base_url, "--base-name", "base",
            "--tuned-name", "tuned", *more]


def test_eval_out_that_is_a_file_stops_before_any_answer(tmp_path, monkeypatch, capsys):
    """`--out notes.txt` (a file): every question was answered by both models and judged, then a
    FileExistsError traceback lost it all."""
    from tests.fake_openai import FakeOpenAI
    from tests.test_reasoning import zaoshu

    notes = tmp_path / "notes.txt"
    notes.write_text("x", encoding="utf-8")
    with FakeOpenAI(reply=lambda request: "答0。") as server:
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "judge")
        monkeypatch.setenv("ZAOSHU_API_KEY", "sk-test-not-a-real-key-0000")
        assert zaoshu(*eval_args(tmp_path, server, "--out", notes)) == 1
        assert server.requests == []
    assert capsys.readouterr().err.strip() == (f"error: --out {notes} is a file, not a folder; "
                                               f"give a folder (it is made if missing)")


@pytest.mark.parametrize("limit", ["0", "-2"])
def test_eval_limit_below_one_is_refused(tmp_path, monkeypatch, capsys, limit):
    """`--limit 0` evaluated all 4 questions, `--limit -2` the first 2 (a Python slice)."""
    from tests.fake_openai import FakeOpenAI
    from tests.test_reasoning import zaoshu

    with FakeOpenAI(reply=lambda request: "答0。") as server:
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "judge")
        monkeypatch.setenv("ZAOSHU_API_KEY", "sk-test-not-a-real-key-0000")
        assert zaoshu(*eval_args(tmp_path, server, "--out", tmp_path / "ev", "--limit", limit)) == 2
        assert server.requests == []
    assert "Invalid value for '--limit'" in capsys.readouterr().err and not (tmp_path / "ev").exists()


def test_eval_closes_its_clients(tmp_path):
    """Each eval against a server ended with aiohttp's 'Unclosed connector' / 'Unclosed client session'
    lines on stderr, one set per client."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.fake_openai import FakeOpenAI
    from tests.recipe_replies import reply

    repo = Path(__file__).resolve().parents[1]
    with FakeOpenAI(reply=reply) as server:
        env = {**os.environ, "ZAOSHU_BASE_URL": server.base_url, "ZAOSHU_MODEL": "judge",
               "ZAOSHU_API_KEY": "sk-test-not-a-real-key-0000", "PYTHONPATH": str(repo)}
        args = [str(a) for a in eval_args(tmp_path, server, "--out", tmp_path / "ev")]
        proc = subprocess.run([sys.executable, "-m", "zaoshu_cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {tmp_path / 'ev' / 'eval.md'}" in " ".join(proc.stdout.split())
    assert "Unclosed" not in proc.stderr, proc.stderr
