"""The review page's server side (graphs/webreview): filters, pagination, cards, actions, conflicts, growth.

The browser drives the same app in tests/test_review_browser.py; these run without one.
"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from graphs.review_ledger import ledger_lines
from graphs.webreview.app import create_app
from tests.review_fixture import small_run, synthetic_run


@pytest.fixture
def run(tmp_path):
    return small_run(tmp_path / "run")


def page_client(run) -> TestClient:
    """A client that talks to the app as the page's htmx does (Host 127.0.0.1, HX-Request header)."""
    return TestClient(create_app(run), base_url="http://127.0.0.1", headers={"HX-Request": "true"})


@pytest.fixture
def client(run):
    return page_client(run)


def ids(html: str) -> list[str]:
    return re.findall(r'<code class="sample-id">([^<]+)</code>', html)


def total(html: str) -> int:
    return int(re.search(r'of ([\d,]+)</span>', html).group(1).replace(",", ""))


def sid(html: str, sample_id: str) -> str:
    return re.search(rf'id="s(\d+)"[^>]*>\s*<header>\s*<span[^>]*>[^<]*</span>\s*<code class="sample-id">{sample_id}<',
                     html).group(1)


@pytest.mark.parametrize(("params", "expected"), [
    ("file=rejected", ["rej0001", "rej0002", "rej0003", "rej0004"]),
    ("file=failed", ["fail0001"]),
    ("code=PREAMBLE", ["rej0001"]),
    ("code=UNGROUNDED", ["rej0002"]),
    ("emotion=焦虑", ["dlg0001"]),
    ("area=工作", ["dlg0001"]),
    ("aspect=妖怪与BOSS&file=accepted", ["qa0000", "qa0005", "qa0011", "qa0017", "qa0023"]),
    ("source=xiyouji/第016回.txt", ["qa0000", "rej0001"]),
    ("q=黑熊精", ["qa0000"]),
    ("q=rate limited", ["fail0001"]),
    ("tag=剧情&aspect=剧情", ["qa0002", "qa0008", "qa0014", "qa0020"]),
])
def test_filters_select_exactly_the_matching_samples(client, params, expected):
    html = client.get(f"/?{params}").text
    assert ids(html) == expected and total(html) == len(expected)


def test_pages_are_cut_on_the_server_and_keep_the_filters(client):
    first = client.get("/?file=accepted").text
    assert total(first) == 25 and len(ids(first)) == 20 and "page 1 / 2" in first
    assert 'href="?file=accepted&amp;page=2"' in first
    second = client.get("/?file=accepted&page=2").text
    assert ids(second) == ["qa0020", "qa0021", "qa0022", "qa0023", "dlg0001"]


def test_a_card_shows_sources_with_scores_verdict_hits_and_every_turn(client):
    html = client.get("/?code=PREAMBLE").text
    assert "<mark title=\"PREAMBLE: 删掉套话\">以下是为您准备的回答</mark>：第三回在黑风山。" in html
    assert "xiyouji/第016回.txt" in html and "0.770" in html and "bm25 0.700" in html
    assert "开头是套话" in html  # the critic's reasons
    dialogue = client.get("/?emotion=焦虑").text
    assert dialogue.count('class="turn"') == 3 and "担心被领导批评。" in dialogue and "问 3" in dialogue
    raw = client.get("/?code=FORMAT").text
    assert "这不是 JSON" in raw and '<pre class="raw">' in raw  # a rejected raw reply has no turns to accept
    assert 'data-act="accept" disabled' in raw


def test_the_overview_draws_counts_and_a_length_histogram(client):
    html = client.get("/").text
    assert 'aria-label="reason codes (critic)"' in html and ">PREAMBLE<" in html
    assert 'aria-label="answer length (characters)"' in html and "samples, max bin" in html
    assert 'aria-label="by aspect"' in html and 'aria-label="by tag"' in html and 'aria-label="by source"' in html
    assert "accepted 25" in html and "rejected 4" in html and "failed 1" in html


def test_text_from_the_run_is_escaped(tmp_path):
    run = small_run(tmp_path / "run")
    with open(run / "accepted.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "xss", "recipe": "r", "kind": "qa", "turns": [
            {"input": "<script>alert(1)</script>", "output": "<img src=x onerror=alert(2)>"}]}) + "\n")
    html = page_client(run).get("/?q=xss").text
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html


def test_actions_write_the_ledger_and_a_stale_edit_gets_a_conflict(client, run):
    html = client.get("/?code=UNGROUNDED").text
    n = sid(html, "rej0002")
    edited = client.post(f"/sample/{n}/edit", data={"base_rev": 0, "turn": 0, "input": "定风珠加多少攻击？",
                                                    "output": "知识库没有定风珠的攻击数值。"}).text
    assert "edit saved (revision 1)" in edited and "知识库没有定风珠的攻击数值。" in edited and "original" in edited
    stale = client.post(f"/sample/{n}/edit", data={"base_rev": 0, "turn": 0, "output": "另一个标签页的修改"}).text
    assert "Conflict:" in stale and "not saved" in stale and '<pre class="unsaved">另一个标签页的修改</pre>' in stale
    assert "知识库没有定风珠的攻击数值。" in stale  # the current text, not the stale one
    client.post(f"/sample/{n}/accept", data={"base_rev": 1})
    client.post(f"/sample/{n}/note", data={"base_rev": 2, "note": "已核对"})
    assert "nothing to undo" not in client.post(f"/sample/{n}/undo", data={"base_rev": 3}).text
    bad = client.post(f"/sample/{n}/reject", data={"base_rev": 4, "reason": "NOT_A_CODE"}).text
    assert "unknown reason code" in bad
    lines = ledger_lines(run)
    assert [(ln["action"], ln["rev"]) for ln in lines] == [("edit", 1), ("accept", 2), ("note", 3), ("undo", 4)]
    assert lines[0]["output"] == "知识库没有定风珠的攻击数值。" and lines[0]["turn"] == 0
    reviewed = client.get("/?review=accepted").text
    assert ids(reviewed) == ["rej0002"]
    assert ids(client.get("/?review=edited").text) == ["rej0002"]
    assert ids(client.get("/?q=攻击数值").text) == ["rej0002"]  # edited text is searchable


@pytest.mark.parametrize("output", ["", "  \n\t　"])
def test_an_edit_that_empties_the_answer_is_refused_and_the_sample_kept(client, run, output):
    """An empty (or whitespace-only) answer was saved as the turn's output and exported as a training sample."""
    n = sid(client.get("/?q=黑熊精").text, "qa0000")
    refused = client.post(f"/sample/{n}/edit", data={"base_rev": 0, "turn": 0, "input": "黑熊精在哪一回出场？",
                                                     "output": output}).text
    assert "an empty answer was not saved" in refused and "edit saved" not in refused
    assert "黑熊精出现在第二回「黑风山」，守着观音禅院后山。" in refused and 'class="badge rev-edited"' not in refused
    assert ledger_lines(run) == []
    saved = client.post(f"/sample/{n}/edit", data={"base_rev": 0, "turn": 0, "output": "黑熊精在第二回出场。"}).text
    assert "edit saved (revision 1)" in saved  # the sample is still at revision 0: nothing was written


def test_a_page_or_sample_number_past_sqlite_integers_is_not_a_server_error(client):
    """?page=10**20 and /sample/10**20 raised OverflowError inside SQLite: a 500 instead of an empty page or a 404."""
    huge = str(10 ** 20)
    page = client.get(f"/?page={huge}")
    assert page.status_code == 200 and ids(page.text) == []
    assert client.get(f"/sample/{huge}").status_code == 404
    assert client.post(f"/sample/{huge}/accept", data={"base_rev": "0"}).status_code == 404


def test_a_failed_item_cannot_be_accepted_or_edited(client, run):
    n = sid(client.get("/?file=failed").text, "fail0001")
    assert "no sample to accept" in client.post(f"/sample/{n}/accept", data={"base_rev": 0}).text
    assert "no such turn" in client.post(f"/sample/{n}/edit", data={"base_rev": 0, "turn": 0, "output": "x"}).text
    assert ledger_lines(run) == []


def test_lines_appended_while_the_page_is_open_appear_on_the_next_request(client, run):
    assert total(client.get("/").text) == 30
    with open(run / "rejected.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "late", "key": {}, "codes": ["REFUSAL"], "sample": None, "raw": "抱歉"}) + "\n")
        f.write('{"id": "half')  # a line being written is not shown yet
    html = client.get("/?code=REFUSAL").text
    assert ids(html) == ["late"]
    assert total(client.get("/").text) == 31
    with open(run / "review.jsonl", "a", encoding="utf-8") as f:  # another process's decision
        f.write(json.dumps({"id": "qa0004", "action": "reject", "reason": "DUPLICATE", "rev": 1, "base_rev": 0}) + "\n")
    assert ids(client.get("/?review=rejected").text) == ["qa0004"]
    assert ids(client.get("/?code=DUPLICATE").text) == ["qa0004"]


def test_a_decision_after_a_torn_last_line_is_saved_whole_and_the_page_keeps_working(run):
    """The review page killed mid-write leaves a torn last line in review.jsonl; the next page appended its
    decision onto it, one line that is neither, and every request after that failed on it."""
    first = json.dumps({"id": "qa0004", "action": "reject", "reason": "DUPLICATE", "rev": 1, "base_rev": 0})
    (run / "review.jsonl").write_text(first + '\n{"id": "qa0001", "act', encoding="utf-8")
    client = page_client(run)  # the page started again
    n = sid(client.get("/?q=黑熊精").text, "qa0000")
    assert "accepted" in client.post(f"/sample/{n}/accept", data={"base_rev": 0}).text
    assert [(ln["id"], ln["action"]) for ln in ledger_lines(run)] == [("qa0004", "reject"), ("qa0000", "accept")]
    assert ids(client.get("/?review=accepted").text) == ["qa0000"]


def test_a_broken_line_inside_the_review_ledger_is_skipped_and_the_page_opens(run, caplog):
    """A line a crash joined to the next (before torn tails were cut) stopped every request of the page;
    export already skips it. The decisions around it stand."""
    first = json.dumps({"id": "qa0004", "action": "reject", "reason": "DUPLICATE", "rev": 1, "base_rev": 0})
    (run / "review.jsonl").write_text(first + '\n{"id": "qa0001", "act{"id": "qa0002"}\n', encoding="utf-8")
    with caplog.at_level("WARNING"):
        client = page_client(run)
        assert ids(client.get("/?review=rejected").text) == ["qa0004"]
    assert "review.jsonl: line 2 is not a review entry, skipped" in caplog.text
    n = sid(client.get("/?q=黑熊精").text, "qa0000")
    assert "accepted" in client.post(f"/sample/{n}/accept", data={"base_rev": 0}).text


def test_a_large_folder_filters_within_a_second(tmp_path):
    import time

    run = synthetic_run(tmp_path / "big", 5000)
    client = page_client(run)
    for params in ("", "code=PREAMBLE", "aspect=剧情&tag=新手", "q=火焰", "file=rejected&page=20"):
        start = time.perf_counter()
        html = client.get(f"/?{params}").text
        assert time.perf_counter() - start < 1.0, params
        assert total(html) > 0


def _cli(*args: str, timeout: float = 60):
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run([sys.executable, "-m", "zaoshu_cli", "review", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=timeout)


def test_the_cli_says_in_one_line_what_is_wrong(tmp_path, run):
    import socket

    proc = _cli(str(tmp_path / "missing"), "--no-browser")
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: run directory not found: {tmp_path / 'missing'}"
    (tmp_path / "empty").mkdir()
    proc = _cli(str(tmp_path / "empty"), "--no-browser")
    assert proc.returncode == 1 and "has no accepted.jsonl, rejected.jsonl or failed.jsonl" in proc.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = _cli(str(run), "--no-browser", "--port", str(port))
    assert proc.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "--port 0" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (run / "review.jsonl").exists()


def test_with_a_filter_the_overview_counts_only_the_matching_samples(client):
    html = client.get("/?file=rejected").text
    assert "overview of the 4 matching samples" in html
    chart = re.search(r'<svg[^>]*aria-label="reason codes \(critic\)".*?</svg>', html).group(0)
    assert re.findall(r"<title>(\w+)</title>", chart) == ["FORMAT", "PREAMBLE", "TOO_SHORT", "UNGROUNDED"]
    assert "3 samples, max bin" in html  # lengths of the 3 rejected samples that have turns
    aspect = re.search(r'<svg[^>]*aria-label="by aspect".*?</svg>', html).group(0)
    assert ">6<" not in aspect and ">1<" in aspect
    assert "overview of the run folder" in client.get("/").text


def test_other_hosts_and_cross_site_posts_are_refused(run):
    app = create_app(run)
    foreign = TestClient(app, base_url="http://evil.example")
    assert foreign.get("/").status_code == 400  # DNS rebinding: a foreign Host header
    local = TestClient(app, base_url="http://127.0.0.1")
    assert local.get("/").status_code == 200
    html = local.get("/?file=accepted").text
    n = re.search(r'id="s(\d+)"', html).group(1)
    response = local.post(f"/sample/{n}/reject", data={"base_rev": 0, "reason": "UNGROUNDED"})  # a plain form
    assert response.status_code == 403 and ledger_lines(run) == []


def test_an_action_from_a_page_older_than_the_index_is_refused(client, run):
    html = client.get("/?file=accepted").text
    n = re.search(r'id="s(\d+)"', html).group(1)
    assert f"hx-vals='{{\"sample_id\": \"qa0000\"}}'" in html
    response = client.post(f"/sample/{n}/accept", data={"base_rev": 0, "sample_id": "some-other-sample"})
    assert response.status_code == 409 and "reload the page" in response.text and ledger_lines(run) == []


def test_a_run_folder_written_by_the_runner_renders(tmp_path, monkeypatch):
    """Real records (wulewule QA via the local fake LLM): sources with scores, verdicts, an accepted edit."""
    from tests.fake_openai import FakeOpenAI
    from tests.recipe_replies import reply
    from tests.test_recipes_e2e import run as run_recipe
    from tests.test_recipes_e2e import wulewule_config
    from recipes.wulewule.recipe import Wulewule

    with FakeOpenAI(reply=reply) as fake:
        monkeypatch.setenv("ZAOSHU_BASE_URL", fake.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-model")
        monkeypatch.setenv("ZAOSHU_API_KEY", "sk-test-not-a-real-key-0000")
        code, _ = run_recipe(Wulewule(), wulewule_config(tmp_path), tmp_path / "run")
    assert code == 0
    client = page_client(tmp_path / "run")
    html = client.get("/?file=accepted").text
    assert total(html) >= 1 and '<aside class="sources">' in html and "critic: accept" in html
    source = re.search(r'<td class="src">([^<]+)</td>', html).group(1)
    assert total(client.get(f"/?source={source}").text) >= 1
