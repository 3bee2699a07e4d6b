"""The review ledger (graphs/review_ledger.py) and `zaoshu export` honouring it."""

from __future__ import annotations

import doctest
import importlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from graphs.review_ledger import ReviewLedger, StaleRevision, apply_review, fold, ledger_lines, read_entries
from tests.review_fixture import small_run


@pytest.mark.parametrize("name", ["graphs.review_ledger", "graphs.webreview.index", "graphs.webreview.charts",
                                  "graphs.webreview.facets",
                                  "graphs.webreview.view"])
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


def test_decisions_fold_into_the_current_state_and_undo_takes_back_the_latest(tmp_path):
    ledger = ReviewLedger(tmp_path)
    ledger.append("s1", "edit", 0, turn=0, output="改过的答案")
    ledger.append("s1", "note", 1, note="来源不够")
    ledger.append("s1", "reject", 2, reason="UNGROUNDED")
    state = ledger.get("s1")
    assert (state.status, state.reason, state.rev) == ("rejected", "UNGROUNDED", 3)
    assert state.edits == {0: {"output": "改过的答案"}} and state.notes == ["来源不够"]

    ledger.append("s1", "undo", 3)
    state = ledger.get("s1")
    assert state.status is None and state.rev == 4 and state.notes == ["来源不够"]
    ledger.append("s1", "undo", 4)
    assert ledger.get("s1").notes == [] and ledger.get("s1").edits == {0: {"output": "改过的答案"}}

    lines = ledger_lines(tmp_path)
    assert [ln["action"] for ln in lines] == ["edit", "note", "reject", "undo", "undo"]
    assert [ln["rev"] for ln in lines] == [1, 2, 3, 4, 5] and [ln["base_rev"] for ln in lines] == [0, 1, 2, 3, 4]
    assert all(ln["id"] == "s1" and ln["at"] for ln in lines)
    # a second reader (another process) folds the same state from the file
    assert fold(read_entries(tmp_path / "review.jsonl")[0])["s1"].model_dump() == ledger.get("s1").model_dump()


def test_a_stale_revision_is_refused_and_nothing_is_written(tmp_path):
    tab_a, tab_b = ReviewLedger(tmp_path), ReviewLedger(tmp_path)  # two readers of one folder
    tab_a.append("s1", "edit", 0, turn=0, output="A 的修改")
    with pytest.raises(StaleRevision) as info:
        tab_b.append("s1", "edit", 0, turn=0, output="B 的修改")
    assert info.value.current.rev == 1 and info.value.current.edits[0]["output"] == "A 的修改"
    assert [ln["output"] for ln in ledger_lines(tmp_path)] == ["A 的修改"]
    tab_b.append("s1", "edit", 1, turn=0, output="B 的修改")  # based on what it now sees: accepted
    assert tab_a.refresh() == ["s1"] and tab_a.get("s1").edits[0]["output"] == "B 的修改"


def test_concurrent_writers_on_one_revision_get_exactly_one_through(tmp_path):
    ledgers = [ReviewLedger(tmp_path) for _ in range(8)]
    results: list[str] = []

    def write(i: int) -> None:
        try:
            ledgers[i].append("s1", "note", 0, note=f"note {i}")
            results.append("ok")
        except StaleRevision:
            results.append("stale")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["stale"] * 7
    assert len(ledger_lines(tmp_path)) == 1


def test_a_torn_last_line_is_not_read_until_it_is_whole(tmp_path):
    ledger = ReviewLedger(tmp_path)
    ledger.append("s1", "accept", 0)
    with open(tmp_path / "review.jsonl", "ab") as f:
        f.write(b'{"id":"s2","action":"acc')
    assert ledger.refresh() == [] and ledger.get("s2").rev == 0


def _exported(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_applies_edits_drops_reviewer_rejects_and_adds_reviewer_accepts(tmp_path):
    run = small_run(tmp_path / "run")
    accepted_before = (run / "accepted.jsonl").read_bytes()
    rejected_before = (run / "rejected.jsonl").read_bytes()
    ledger = ReviewLedger(run)
    ledger.append("qa0001", "edit", 0, turn=0, output="审核员改写的答案。")
    ledger.append("qa0002", "reject", 0, reason="UNGROUNDED")
    ledger.append("rej0002", "accept", 0)
    ledger.append("rej0003", "edit", 0, turn=0, output="猪八戒是唐僧的二徒弟。")
    ledger.append("rej0003", "accept", 1)
    ledger.append("qa0003", "reject", 0, reason="TOO_SHORT")
    ledger.append("qa0003", "undo", 1)  # taken back: stays exported

    proc = subprocess.run([sys.executable, "-m", "zaoshu_cli", "export", str(run), "--format", "openai", "--keep-meta"],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 edited, 1 rejected by the reviewer (dropped), 2 rejected samples accepted by the reviewer" in proc.stdout
    records = {r["id"]: r for r in _exported(run / "exports/openai/all.jsonl")}
    assert len(records) == 25 - 1 + 2
    assert records["qa0001"]["messages"][-1]["content"] == "审核员改写的答案。"
    assert "qa0002" not in records and "qa0003" in records
    assert records["rej0003"]["messages"][-1]["content"] == "猪八戒是唐僧的二徒弟。"
    assert records["rej0002"]["meta"]["review"]["status"] == "accepted"
    # the run's own ledgers are untouched
    assert (run / "accepted.jsonl").read_bytes() == accepted_before
    assert (run / "rejected.jsonl").read_bytes() == rejected_before

    proc = subprocess.run([sys.executable, "-m", "zaoshu_cli", "export", str(run), "--format", "openai",
                           "--keep-meta", "--ignore-review"],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = {r["id"]: r for r in _exported(run / "exports/openai/all.jsonl")}
    assert len(records) == 25 and "qa0002" in records and "rej0002" not in records
    assert records["qa0001"]["messages"][-1]["content"].startswith("天命人在战斗系统中")


def test_a_blank_answer_never_reaches_an_export(tmp_path):
    """A blank edit is refused; one already in a ledger written before that check leaves the answer as it was."""
    from agents.errors import InputError

    run = small_run(tmp_path / "run")
    with pytest.raises(InputError, match="an empty answer was not saved"):
        ReviewLedger(run).append("qa0001", "edit", 0, turn=0, output=" \n")
    assert ledger_lines(run) == []
    with open(run / "review.jsonl", "w", encoding="utf-8") as f:  # as an older zaoshu wrote it
        f.write('{"id":"qa0001","action":"edit","turn":0,"input":"改过的问题","output":"  ","rev":1,"base_rev":0}\n')
    proc = subprocess.run([sys.executable, "-m", "zaoshu_cli", "export", str(run), "--format", "openai"],
                          capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr
    messages = {r["messages"][-2]["content"]: r["messages"][-1]["content"]
                for r in _exported(run / "exports/openai/all.jsonl")}
    assert messages["改过的问题"].startswith("天命人在战斗系统中要留意体力与法力的分配")


def test_without_a_ledger_export_is_unchanged(tmp_path):
    from finetune.export import read_samples

    run = small_run(tmp_path / "run")
    samples, _ = read_samples(run / "accepted.jsonl")
    out, counts = apply_review(run, samples)
    assert out == samples and counts == {"edited": 0, "dropped": 0, "added": 0}
