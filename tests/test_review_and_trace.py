"""Interactive review driven programmatically (resumable), live tracing, and the runs / graph commands."""

import asyncio
import io
import json
import subprocess
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from agents.llm import Usage, make_clients
from agents.settings import load_settings
from graphs.cli import runs_app
from graphs.observer import RichTracer
from graphs.review import ReviewDecision, ReviewInvoker, build_review_graph, review_checkpoints
from graphs.ledger import read_jsonl
from graphs.rundir import RunDir
from graphs.runner import Runner, RunOptions
from tests.fake_openai import FakeOpenAI
from tests.three_call_graph import Ctx, build_graph, items, script


class ScriptedReviewer:
    """Accepts, rejects with a reason, edits — in turn; optionally walks away at review `stop_at`."""

    def __init__(self, stop_at=None):
        self.seen, self.stop_at = [], stop_at

    async def review(self, sample):
        self.seen.append(sample["id"])
        n = len(self.seen)
        if self.stop_at is not None and n == self.stop_at:
            raise asyncio.CancelledError  # what Ctrl-C does to a review waiting for an answer
        return [ReviewDecision(action="accept"),
                ReviewDecision(action="reject", reason="答非所问"),
                ReviewDecision(action="edit", turns=[{"input": "黑风山的首领是谁？", "output": "是黑熊精。"}])][(n - 1) % 3]


def make_ctx(server):
    settings = load_settings(cli={"base_url": server.base_url, "model": "fake"}, env_file=None)
    usage = Usage()
    return Ctx(clients=make_clients(settings, usage=usage)), usage


async def review_run(server, run_path, reviewer, work):
    ctx, usage = make_ctx(server)
    graph = build_graph().compile()
    async with review_checkpoints(run_path / "checkpoints.sqlite") as saver:
        invoke = ReviewInvoker(build_review_graph(graph).compile(checkpointer=saver), reviewer, ctx)
        runner = Runner(graph, ctx, RunDir(run_path), usage, RunOptions(concurrency=1), invoke=invoke)
        return await runner.run(work)


async def test_review_decisions_go_into_the_ledger(tmp_path):
    with FakeOpenAI(reply=script) as server:
        outcome = await review_run(server, tmp_path, ScriptedReviewer(), items(3))
    assert outcome.accepted == 2 and outcome.rejected == 1
    accepted = list(read_jsonl(tmp_path / "accepted.jsonl"))
    assert [s["meta"]["review"]["action"] for s in accepted] == ["accept", "edit"]
    assert accepted[1]["turns"] == [{"input": "黑风山的首领是谁？", "output": "是黑熊精。"}]
    rejected = next(read_jsonl(tmp_path / "rejected.jsonl"))
    assert rejected["codes"] == ["HUMAN_REJECTED"]
    assert rejected["sample"]["meta"]["review"] == {"action": "reject", "reason": "答非所问"}


async def test_a_review_left_open_resumes_without_calling_the_model_again(tmp_path):
    work = items(2)
    with FakeOpenAI(reply=script) as server:
        first = ScriptedReviewer(stop_at=2)
        await review_run(server, tmp_path, first, work)
        assert len(list(read_jsonl(tmp_path / "accepted.jsonl"))) == 1
        calls = len(server.requests)
        second = ScriptedReviewer()
        outcome = await review_run(server, tmp_path, second, work)
        assert len(server.requests) == calls  # the pending sample came back from the checkpoint
    assert second.seen == [first.seen[1]] and outcome.accepted == 2


async def test_trace_renders_steps_and_writes_jsonl(tmp_path):
    console = Console(record=True, file=io.StringIO(), width=160)
    trace_file = tmp_path / "trace.jsonl"
    with FakeOpenAI(reply=script) as server:
        ctx, usage = make_ctx(server)
        tracer = RichTracer(console, total=2, trace=True, trace_file=trace_file)
        runner = Runner(build_graph().compile(), ctx, RunDir(tmp_path / "run"), usage, RunOptions(concurrency=2), tracer)
        await runner.run(items(2))
    text = console.export_text()
    assert "ask" in text and "黑风山的首领是谁？" in text and "accepted" in text
    events = [json.loads(line) for line in trace_file.read_text(encoding="utf-8").splitlines()]
    assert {e["event"] for e in events} >= {"ask", "answer", "critique", "accepted"}
    assert {e["item"] for e in events} == {i.id for i in items(2)}
    assert any(e.get("decision") == "accept" for e in events)


async def test_runs_list_and_show(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "tianji" / "20261121-000000"
    rd = RunDir(run)
    rd.accept({"id": "a", "meta": {"style": "小红书", "scene": "生日"}, "turns": []})
    rd.reject({"id": "b", "key": {"style": "正常", "scene": "生日"}, "codes": ["HONORIFIC", "TOO_SHORT"]})
    rd.close()
    rd.write_stats({"status": "completed", "accepted": 1, "rejected": 1, "failed": 0, "input_tokens": 1200,
                    "output_tokens": 300, "cost": 0.0123, "currency": "¥", "duration_s": 42})
    runner = CliRunner()
    listed = runner.invoke(runs_app, ["list"])
    assert listed.exit_code == 0 and "tianji" in listed.stdout and "runs under runs/" in listed.stdout
    rows = json.loads(runner.invoke(runs_app, ["list", "--json"]).stdout)
    assert [(r["recipe"], r["run"], r["accepted"], r["cost"]) for r in rows] == [("tianji", run.name, 1, 0.0123)]
    shown = runner.invoke(runs_app, ["show", str(run), "--json"])
    data = json.loads(shown.stdout)
    assert data["codes"] == {"HONORIFIC": 1, "TOO_SHORT": 1}
    assert data["by"]["style"] == {"小红书 (accepted)": 1, "正常 (rejected)": 1}


def test_a_blank_new_answer_on_the_terminal_is_asked_for_again_never_saved(tmp_path):
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import command, tianji_yaml

    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"])  # one item
    with FakeOpenAI(reply=reply) as server:
        cmd, env, cwd = command(tmp_path, server, "--config", str(config), "--out", "run", "--interactive")
        # edit, a blank answer (spaces), then edit again with a real one
        result = subprocess.run(cmd, cwd=cwd, env=env, input="e\n   \ne\n奶奶生日快乐，身体健康！\n",
                                capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "[a]ccept / [r]eject / [e]dit [a/r/e] (a):" in result.stdout
    assert "an empty answer was not saved: write the answer, or reject the sample" in result.stdout
    [sample] = read_jsonl(tmp_path / "run/accepted.jsonl")
    assert sample["turns"] == [{"input": "祝奶奶生日", "output": "奶奶生日快乐，身体健康！"}]
    assert sample["meta"]["review"]["turns"] == sample["turns"]


def test_the_terminal_review_shows_a_sample_as_written_brackets_and_all(tmp_path):
    """A sample is text, not rich markup: 「[/]」 in it had stopped the review with a MarkupError."""
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import command, tianji_yaml

    config = tianji_yaml(tmp_path, roles=[{"name": "[b]同事[/]", "relation": "peer"}], scenes=["生日"])
    with FakeOpenAI(reply=reply) as server:
        cmd, env, cwd = command(tmp_path, server, "--config", str(config), "--out", "run", "--interactive")
        result = subprocess.run(cmd, cwd=cwd, env=env, input="a\n", capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "问 祝[b]同事[/]生日" in result.stdout
    assert "unregistered type" not in result.stderr  # the checkpoints hold our own types: no LangGraph warning
    assert len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 1


def test_the_trace_shows_the_steps_as_written_brackets_and_all(tmp_path):
    """A trace line is text, not rich markup: 「[b]…[/]」 in a question was swallowed, and 「[/b]」 failed the
    item with a MarkupError."""
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import run, tianji_yaml

    roles = [{"name": "[b]同事[/]", "relation": "peer"}, {"name": "同事[/b]", "relation": "peer"}]
    config = tianji_yaml(tmp_path, roles=roles, scenes=["生日"])
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(config), "--out", "run", "--trace",
                     "--trace-file", "trace.jsonl")
    assert result.returncode == 0, result.stderr
    assert "MarkupError" not in result.stdout + result.stderr and not (tmp_path / "run/failed.jsonl").exists()
    assert "ask question=祝[b]同事[/]生日" in result.stdout  # as written, on a piped stdout too
    assert "ask question=祝同事[/b]生日" in result.stdout
    events = (tmp_path / "trace.jsonl").read_text(encoding="utf-8")
    assert "祝[b]同事[/]生日" in events and "祝同事[/b]生日" in events


def test_a_review_whose_input_ends_stops_the_run_in_one_line_and_asks_again_next_time(tmp_path):
    """stdin closed (Ctrl-D, or answers piped from a file) at the review prompt: every item waiting for a
    review failed with an EOFError traceback; now the run stops and the rerun asks for the open review."""
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import command, tianji_yaml

    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日", "春节"])
    with FakeOpenAI(reply=reply) as server:
        cmd, env, cwd = command(tmp_path, server, "--config", str(config), "--out", "run", "--interactive",
                                "--concurrency", "1")
        first = subprocess.run(cmd, cwd=cwd, env=env, input="a\n", capture_output=True, text=True, timeout=180)
        calls = len(server.requests)
        second = subprocess.run(cmd, cwd=cwd, env=env, input="a\n", capture_output=True, text=True, timeout=180)
        assert len(server.requests) == calls  # the open review is asked again, not written again
    assert first.returncode == 1 and "Traceback" not in first.stdout + first.stderr
    assert "no more input at the review prompt" in first.stdout
    assert not (tmp_path / "run/failed.jsonl").exists()
    assert second.returncode == 0, second.stderr
    assert len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 2


def test_the_terminal_review_panel_is_as_wide_as_its_text_on_a_piped_stdout(tmp_path):
    """Off a terminal the console is 10,000 columns wide (lines stay whole): the review panel filled all of
    them, every border line 10,000 characters."""
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import command, tianji_yaml

    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"])
    with FakeOpenAI(reply=reply) as server:
        cmd, env, cwd = command(tmp_path, server, "--config", str(config), "--out", "run", "--interactive")
        result = subprocess.run(cmd, cwd=cwd, env=env, input="a\n", capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    [sample] = read_jsonl(tmp_path / "run/accepted.jsonl")
    panel = [line for line in result.stdout.splitlines() if line[:1] in "╭│╰"]
    assert any(sample["turns"][0]["output"] in line for line in panel)
    assert max(map(len, panel)) < 2 * len(sample["turns"][0]["output"]) + 10


def test_a_trace_file_in_a_new_folder_is_written_and_one_that_cannot_be_is_one_line(tmp_path):
    """A missing folder, or a folder given as the file, ended the run in a FileNotFoundError (IsADirectoryError)
    traceback, after the run folder and its exports were made."""
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import run, tianji_yaml

    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"])
    with FakeOpenAI(reply=reply) as server:
        made = run(tmp_path, server, "--config", str(config), "--out", "run", "--trace-file", "traces/a/t.jsonl")
        refused = run(tmp_path, server, "--config", str(config), "--out", "run2", "--trace-file", str(tmp_path))
    assert made.returncode == 0, made.stderr
    assert "accepted" in (tmp_path / "traces/a/t.jsonl").read_text(encoding="utf-8")
    assert refused.returncode == 1 and not (tmp_path / "run2").exists()
    assert refused.stderr.strip() == f"error: --trace-file {tmp_path}: cannot write there (Is a directory)"


def test_an_interactive_run_traces_every_step(tmp_path):
    """--interactive --trace showed only 'accepted' per item: the agent steps were not traced, nor written to
    --trace-file."""
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import command, tianji_yaml

    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"])
    with FakeOpenAI(reply=reply) as server:
        cmd, env, cwd = command(tmp_path, server, "--config", str(config), "--out", "run", "--interactive", "--trace",
                                "--trace-file", "trace.jsonl")
        result = subprocess.run(cmd, cwd=cwd, env=env, input="a\n", capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line)["event"] for line in (tmp_path / "trace.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {"ask", "respond", "critique", "accepted"} <= set(events)
    assert "ask question=祝奶奶生日" in result.stdout and "critique decision=accept" in result.stdout
