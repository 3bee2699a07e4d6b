"""The runner against the real local server: concurrency, back-off, resume after kill -9, Ctrl-C,
budget, target, fatal errors, and interactive review."""

import asyncio
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.llm import Usage, make_clients
from agents.settings import load_settings
from graphs.ledger import read_jsonl
from graphs.rundir import RunDir
from graphs.runner import Budget, Runner, RunOptions
from tests.fake_openai import Fault, FakeOpenAI
from tests.three_call_graph import Ctx, build_graph, items, script

REPO = Path(__file__).resolve().parents[1]


def make_runner(server, run_path, *, concurrency=8, **options):
    settings = load_settings(cli={"base_url": server.base_url, "model": "fake", "max_requests": concurrency,
                                  "max_retries": 3, "timeout": 5}, env_file=None)
    usage = Usage()
    ctx = Ctx(clients=make_clients(settings, usage=usage))
    return Runner(build_graph().compile(), ctx, RunDir(run_path), usage,
                  RunOptions(concurrency=concurrency, **options))


def ledger_ids(path):
    return [r["id"] for r in read_jsonl(path)]


async def test_concurrency_reaches_n_in_flight(tmp_path):
    with FakeOpenAI(reply=script, latency=0.3) as server:
        outcome = await make_runner(server, tmp_path / "run", concurrency=32).run(items(64))
        assert outcome.reason == "completed" and outcome.accepted == 64
        assert server.max_in_flight == 32
        assert len(server.requests) == 64 * 3


async def test_429s_back_off_then_recover(tmp_path):
    with FakeOpenAI(reply=script, latency=0.02) as server:
        server.fail_next(*[Fault("429", retry_after=0.1)] * 6)
        runner = make_runner(server, tmp_path / "run", concurrency=8)
        outcome = await runner.run(items(40))
        assert outcome.accepted == 40 and outcome.rejected == 0
        assert server.faults_served == {"429": 6}
        gate = runner.ctx.clients["asker"].gate
        assert all(c.gate is gate for c in runner.ctx.clients.values())  # one endpoint, one gate
        assert 1 <= gate.limit <= 8  # halved on 429s, regained on successes, never above N


async def test_rerun_resumes_without_duplicates(tmp_path):
    with FakeOpenAI(reply=script) as server:
        first = await make_runner(server, tmp_path / "run", target=10).run(items(30))
        assert first.reason == "target" and first.accepted == 10
        second = await make_runner(server, tmp_path / "run").run(items(30))
        assert second.reason == "completed" and second.accepted == 30
    ids = ledger_ids(tmp_path / "run" / "accepted.jsonl")
    assert len(ids) == len(set(ids)) == 30


async def test_target_stops_at_exactly_n(tmp_path):
    with FakeOpenAI(reply=script, latency=0.05) as server:
        outcome = await make_runner(server, tmp_path / "run", concurrency=16, target=7).run(items(50))
    assert outcome.reason == "target"
    assert len(ledger_ids(tmp_path / "run" / "accepted.jsonl")) == 7


async def test_budget_pauses_then_resumes(tmp_path):
    with FakeOpenAI(reply=script) as server:
        outcome = await make_runner(server, tmp_path / "run", concurrency=1,
                                    budget=Budget.parse("300 tokens")).run(items(20))
        assert outcome.reason == "budget" and 0 < outcome.accepted < 20
        spent_requests = len(server.requests)
        assert spent_requests < 20 * 3
        outcome = await make_runner(server, tmp_path / "run").run(items(20))
        assert outcome.reason == "completed" and outcome.accepted == 20


@pytest.mark.parametrize("text,amount,unit", [("5¥", 5, "¥"), ("$2.5", 2.5, "$"), ("200k tokens", 200000, "tokens"),
                                              ("10元", 10, "¥")])
def test_budget_parse(text, amount, unit):
    assert Budget.parse(text) == Budget(amount, unit)


async def test_auth_error_stops_the_run_cleanly(tmp_path):
    with FakeOpenAI(reply=script, api_key="sk-other") as server:
        outcome = await make_runner(server, tmp_path / "run").run(items(20))
    assert outcome.reason == "fatal" and "authentication failed (401)" in outcome.message
    assert len(server.requests) <= 8  # at most one per worker, no retry storm


async def test_repeated_5xx_stop_the_run(tmp_path):
    with FakeOpenAI(reply=lambda req: Fault("503")) as server:
        runner = make_runner(server, tmp_path / "run", concurrency=2, max_consecutive_failures=3)
        outcome = await runner.run(items(20))
    assert outcome.reason == "fatal" and "in a row failed" in outcome.message and "503" in outcome.message
    failed = list(read_jsonl(tmp_path / "run" / "failed.jsonl"))
    assert 3 <= len(failed) <= 4
    assert not (tmp_path / "run" / "accepted.jsonl").exists() or not ledger_ids(tmp_path / "run" / "accepted.jsonl")


async def test_malformed_verdict_is_rejected_with_raw_text(tmp_path):
    def reply(req):
        return "这不是 JSON" if req.last_user.startswith("CRITIC") or "JSON" in req.last_user else script(req)

    with FakeOpenAI(reply=reply) as server:
        outcome = await make_runner(server, tmp_path / "run").run(items(2))
    assert outcome.rejected == 2
    record = next(read_jsonl(tmp_path / "run" / "rejected.jsonl"))
    assert record["codes"] == ["FORMAT"] and record["raw"] == "这不是 JSON"


def _start_worker(server, run, n_items, concurrency=8):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.run_worker", "--base-url", server.base_url, "--run", str(run),
         "--items", str(n_items), "--concurrency", str(concurrency)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_kill_9_and_resume_loses_and_duplicates_nothing(tmp_path):
    rng = random.Random(7)
    run = tmp_path / "run"
    n = 80
    with FakeOpenAI(reply=script, latency=0.03) as server:
        for cycle in range(5):
            proc = _start_worker(server, run, n)
            first = proc.stdout.readline().strip()
            if cycle:  # the killed worker's lock file is still there: detected and taken over
                assert first.startswith(f"took over the lock of {run} left by PID ") and "no longer holds it" in first
                first = proc.stdout.readline().strip()
            assert first == "STARTED"
            time.sleep(rng.uniform(0.2, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            ids = ledger_ids(run / "accepted.jsonl") if (run / "accepted.jsonl").exists() else []
            assert len(ids) == len(set(ids)), f"duplicate after kill {cycle}"
        before = set(ledger_ids(run / "accepted.jsonl"))
        proc = _start_worker(server, run, n)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    ids = ledger_ids(run / "accepted.jsonl")  # every line parses: no torn writes
    assert len(ids) == len(set(ids)) == n
    assert before <= set(ids)  # nothing accepted before a kill was lost
    assert {i.id for i in items(n)} == set(ids)


def test_the_closing_lines_are_not_wrapped_by_rich_on_a_narrow_terminal(monkeypatch):
    """The terminal wraps them itself, so the path and the resume command copy as one line each."""
    from rich.console import Console

    from graphs.execute import _report
    from graphs.outcome import RunOutcome

    console = Console(file=io.StringIO(), width=40)
    out = "/tmp/a-long-folder-name/tianji/t2"
    monkeypatch.setattr(sys, "argv", ["recipes/tianji/__main__.py", "--limit", "40", "--concurrency", "4"])
    outcome = RunOutcome(reason="interrupted", message="stopped by Ctrl-C", accepted=3, rejected=1, failed=0)
    assert _report(outcome, "tianji", Path(out), console) == 130
    assert console.file.getvalue().splitlines() == [
        "interrupted: stopped by Ctrl-C", f"accepted 3 · rejected 1 · failed 0 → {out}/accepted.jsonl",
        f"resume with: python -m recipes.tianji --limit 40 --concurrency 4 --out {out}"]


def test_ctrl_c_stops_cleanly_and_prints_the_resume_command(tmp_path):
    run = tmp_path / "run"
    with FakeOpenAI(reply=script, latency=0.1) as server:
        proc = _start_worker(server, run, 200, concurrency=4)
        assert proc.stdout.readline().strip() == "STARTED"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 130, out
        assert "reason=interrupted" in out and "resume with: python -m tests.run_worker" in out
        ids = ledger_ids(run / "accepted.jsonl")
        assert 0 < len(ids) < 200 and len(ids) == len(set(ids))
        proc = _start_worker(server, run, 200, concurrency=16)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    assert len(set(ledger_ids(run / "accepted.jsonl"))) == len(ledger_ids(run / "accepted.jsonl")) == 200


def test_torn_last_line_is_cut_on_open(tmp_path):
    path = tmp_path / "accepted.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "tu', encoding="utf-8")
    run = RunDir(tmp_path)
    assert run.accepted_ids == {"a", "b"}
    assert path.read_text(encoding="utf-8") == '{"id": "a"}\n{"id": "b"}\n'
