"""The answerer backends through `python -m recipes.wulewule`: our index with a Serper web fallback
(the key from `.env`), and a HuixiangDou server — fake ones on 127.0.0.1 — and a failing service
that fails one item, not the run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from graphs.ledger import read_jsonl
from tests.fake_openai import FakeOpenAI
from tests.fake_services import FakeHuixiangDou, FakeSerper, Reply
from tests.recipe_replies import reply

REPO = Path(__file__).resolve().parents[1]

WEB = {"棍法": [{"title": "黑神话悟空棍法介绍", "link": "https://example.com/wukong/staff",
                 "snippet": "棍法入门。天命人的棍法分为劈棍、立棍和戳棍三种姿态。每种姿态都有各自的重击和连招方式。"}],
       "法术": [{"title": "法术一览", "link": "https://example.com/wukong/spells",
                 "snippet": "法术入门。定身法可以让敌人短暂停止行动，是最早学会的法术之一。配合重击使用效果很好。"}]}


class TopicSerper(FakeSerper):
    """Results by topic, like a real search engine: a question about 棍法 gets the 棍法 page."""

    def __init__(self, key: str):
        super().__init__([], key=key)

    def handle(self, path, headers, payload):
        self.organic = next((hits for topic, hits in WEB.items() if topic in payload.get("q", "")), [])
        return super().handle(path, headers, payload)


def recipe_yaml(tmp_path: Path, folder: Path, **changes) -> Path:
    config = yaml.safe_load((REPO / "recipes/wulewule/wulewule.yaml").read_text(encoding="utf-8"))
    config.update(knowledge_folder=str(folder), embedder="hash", aspects=["棍法类型", "天命人法术类型"],
                  questions_per_aspect=1, multi_turn={"every": 0}, **{"index_dir": str(tmp_path / "index"), **changes})
    path = tmp_path / "wulewule.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def small_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "a.md").write_text("# 建筑\n\n游戏里出现了许多山西的古建筑，例如玉皇庙和小西天，都按实地扫描还原。\n",
                                 encoding="utf-8")
    return folder


def run_recipe(tmp_path: Path, server: FakeOpenAI, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_", "SERPER_"))}
    base.update(PYTHONPATH=str(REPO), ZAOSHU_BASE_URL=server.base_url, ZAOSHU_MODEL="fake-model",
                ZAOSHU_API_KEY="sk-test-backends-0000", **(env or {}))
    return subprocess.run([sys.executable, "-m", "recipes.wulewule", *args], cwd=tmp_path, env=base,
                          capture_output=True, text=True, timeout=240)


def never_answerable(index_dir: Path) -> None:
    """Calibrate the index so that its answerability gate says no to everything."""
    from knowledge.index import KnowledgeBase

    kb = KnowledgeBase.open(index_dir)
    kb.store.set_meta("answerability", {"signal": "bm25", "threshold": 1e9})
    kb.store.commit()
    kb.close()


def test_web_fallback_answers_what_the_index_cannot_with_urls_in_meta(tmp_path):
    folder = small_folder(tmp_path)
    config = recipe_yaml(tmp_path, folder)
    (tmp_path / ".env").write_text("SERPER_API_KEY=serper-test-key\n", encoding="utf-8")  # from .env, as documented
    with FakeOpenAI(reply=reply) as server, TopicSerper(key="serper-test-key") as serper:
        first = run_recipe(tmp_path, server, "--config", str(config), "--out", "run0", "--limit", "0")
        assert first.returncode == 0, first.stderr  # builds the index
        never_answerable(tmp_path / "index")
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--web-fallback", "serper",
                            env={"ZAOSHU_SERPER_BASE_URL": serper.url})
    assert result.returncode == 0, result.stderr + result.stdout
    assert "web fallback: serper" in result.stdout
    accepted = list(read_jsonl(tmp_path / "run/accepted.jsonl"))
    assert len(accepted) == 2 and len(serper.requests) == 2
    assert sorted(r["json"]["q"] for r in serper.requests) == sorted(s["turns"][0]["input"] for s in accepted)
    for sample in accepted:
        topic = "棍法" if "棍法" in sample["meta"]["aspect"] else "法术"
        (hit,) = WEB[topic]
        assert sample["meta"]["retrieval"] == "web"
        assert [(s["origin"], s["url"], s["title"]) for s in sample["meta"]["sources"]] == \
            [("web", hit["link"], hit["title"])]
        sentences = [x for x in sample["turns"][0]["output"].split("。") if x]
        assert sentences and all(x in hit["snippet"] for x in sentences)  # answered from the result, word for word


def test_huixiangdou_answers_with_its_refs_in_both_reply_shapes(tmp_path):
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    group = {"step": [{"state": "success", "response": "天命人的棍法有劈棍、立棍和戳棍三种姿态，各有不同的连招。",
                       "refs": ["棍法.md"]}]}
    repo = "**References:**\r\n* 法术.md\r\n* 变化.md\r\n\r\n定身法能让敌人短暂停下，是天命人较早学会的法术。"
    with FakeOpenAI(reply=reply) as server, FakeHuixiangDou([Reply(200, group), Reply(200, repo)]) as hxd:
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--answerer", "huixiangdou",
                            "--huixiangdou-url", hxd.url)
    assert result.returncode == 0, result.stderr + result.stdout
    accepted = {s["turns"][0]["output"]: s for s in read_jsonl(tmp_path / "run/accepted.jsonl")}
    assert set(accepted) == {group["step"][0]["response"], "定身法能让敌人短暂停下，是天命人较早学会的法术。"}
    refs = {tuple(s["meta"]["huixiangdou_refs"]) for s in accepted.values()}
    assert refs == {("棍法.md",), ("法术.md", "变化.md")}
    assert all(s["meta"]["retrieval"] == "huixiangdou" and s["meta"]["models"]["answerer"] == "huixiangdou"
               for s in accepted.values())
    assert not (tmp_path / "index").exists()  # the server has its own knowledge: no index is built
    assert [r["path"] for r in hxd.requests] == ["/huixiangdou_inference"] * 2


def test_a_failing_service_fails_one_item_which_the_next_run_retries(tmp_path):
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    good = [{"step": [{"state": "success", "response": text, "refs": ["棍法.md"]}]}
            for text in ("天命人的棍法有劈棍、立棍和戳棍三种姿态，各有不同的连招。", "定身法能让敌人短暂停下，是天命人较早学会的法术。")]
    args = ["--config", str(config), "--out", "run", "--answerer", "huixiangdou", "--concurrency", "1"]
    replies = [Reply(503, {"detail": "busy"}), Reply(200, good[0]), Reply(200, good[1])]
    with FakeOpenAI(reply=reply) as server, FakeHuixiangDou(replies) as hxd:
        first = run_recipe(tmp_path, server, *args, "--huixiangdou-url", hxd.url)
        assert first.returncode == 0, first.stderr + first.stdout
        failed = list(read_jsonl(tmp_path / "run/failed.jsonl"))
        assert len(failed) == 1 and "HuixiangDou" in failed[0]["error"] and "503" in failed[0]["error"]
        assert len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 1
        second = run_recipe(tmp_path, server, *args, "--huixiangdou-url", hxd.url)
    assert second.returncode == 0 and "(1 of 2 items to run)" in second.stdout
    assert len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 2
    stats = json.loads((tmp_path / "run/stats.json").read_text(encoding="utf-8"))
    assert stats["accepted"] == 2 and stats["failed"] == 1


def test_a_refused_serper_key_stops_the_run_with_one_line(tmp_path):
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    with FakeOpenAI(reply=reply) as server, TopicSerper(key="the-right-key") as serper:
        run_recipe(tmp_path, server, "--config", str(config), "--out", "run0", "--limit", "0")
        never_answerable(tmp_path / "index")
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--web-fallback", "serper",
                            env={"ZAOSHU_SERPER_BASE_URL": serper.url, "SERPER_API_KEY": "wrong-key"})
    assert result.returncode == 1
    assert "fatal" in result.stdout and "Serper refused the key (HTTP 403)" in result.stdout
    assert "Traceback" not in result.stderr


def test_huixiangdou_without_a_url_is_one_clear_error(tmp_path):
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    with FakeOpenAI(reply=reply) as server:
        result = run_recipe(tmp_path, server, "--config", str(config), "--answerer", "huixiangdou")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: the huixiangdou answerer needs its server: --huixiangdou-url URL (or answerer.huixiangdou_url in "
        "the recipe YAML)"]


FIXED = [(["--answerer", "huixiangdou"], "needs its server: --huixiangdou-url URL", ["--answerer", "huixiangdou",
                                                                                      "--huixiangdou-url", "{hxd}"]),
         (["--knowledge", "missing"], "Knowledge folder not found", [])]


@pytest.mark.parametrize("wrong, said, fixed", FIXED)
def test_a_run_stopped_by_a_wrong_flag_starts_in_the_same_folder_once_the_flag_is_fixed(tmp_path, wrong, said, fixed):
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    answers = [{"step": [{"state": "success", "response": text, "refs": ["棍法.md"]}]}
               for text in ("天命人的棍法有劈棍、立棍和戳棍三种姿态，各有不同的连招。", "定身法能让敌人短暂停下，是天命人较早学会的法术。")]
    with FakeOpenAI(reply=reply) as server, FakeHuixiangDou([Reply(200, a) for a in answers]) as hxd:
        first = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", *wrong)
        assert first.returncode == 1 and said in first.stderr
        second = run_recipe(tmp_path, server, "--config", str(config), "--out", "run",
                            *[arg.format(hxd=hxd.url) for arg in fixed])
    assert second.returncode == 0, second.stderr  # it said: holds a run made with another configuration
    assert "(2 of 2 items to run)" in second.stdout
    assert len([r for f in ("accepted.jsonl", "rejected.jsonl") for r in read_jsonl(tmp_path / "run" / f)]) == 2


@pytest.mark.parametrize("url", ["localhost:23333", "ftp://x", "http://"])
def test_a_huixiangdou_url_that_is_not_http_is_one_line_before_any_call(tmp_path, url):
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    with FakeOpenAI(reply=reply) as server:
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--answerer", "huixiangdou",
                            "--huixiangdou-url", url)
        assert not server.requests  # every item used to ask its question, then fail: Request URL is missing …
    assert result.returncode == 1 and not (tmp_path / "run").exists()
    assert result.stderr.strip().splitlines() == [
        f"error: Invalid value for '--huixiangdou-url': {url!r}. Input should be an http:// or https:// URL, e.g. "
        f"http://127.0.0.1:23333"]


def test_a_question_huixiangdou_declines_is_rejected_with_its_state(tmp_path):
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    state = "internal error"
    with FakeOpenAI(reply=reply) as server, \
            FakeHuixiangDou([Reply(200, {"step": [{"state": state, "response": "", "refs": []}]})]) as hxd:
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--answerer", "huixiangdou",
                            "--huixiangdou-url", hxd.url)
    assert result.returncode == 0, result.stderr
    records = list(read_jsonl(tmp_path / "run/rejected.jsonl"))
    assert len(records) == 2  # it said UNANSWERABLE and nothing more: the knowledge base seemed to blame
    assert {(tuple(r["codes"]), r["raw"], r["sample"]["meta"]["huixiangdou_state"]) for r in records} == \
        {(("UNANSWERABLE",), "HuixiangDou did not answer: internal error", state)}


def test_runs_show_counts_where_the_answers_came_from(tmp_path):
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    answer = {"step": [{"state": "success", "response": "天命人的棍法有劈棍、立棍和戳棍三种姿态，各有不同的连招。", "refs": []}]}
    declined = {"step": [{"state": "Topics unrelated to the knowledge base.", "response": "", "refs": []}]}
    with FakeOpenAI(reply=reply) as server, FakeHuixiangDou([Reply(200, answer), Reply(200, declined)]) as hxd:
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--answerer", "huixiangdou",
                            "--huixiangdou-url", hxd.url, "--concurrency", "1")
    assert result.returncode == 0, result.stderr
    show = [sys.executable, "-m", "zaoshu_cli", "runs", "show", "run"]
    shown = json.loads(subprocess.run([*show, "--json"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                                      capture_output=True, text=True, timeout=60).stdout)
    assert shown["by"]["retrieval"] == {"huixiangdou (accepted)": 1}  # it was not shown anywhere
    assert shown["codes"] == {"UNANSWERABLE": 1}
    table = subprocess.run(show, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                           text=True, timeout=60).stdout
    assert "by retrieval" in table and "huixiangdou (accepted)" in table


class ShapedSerper(FakeSerper):
    """A server at ZAOSHU_SERPER_BASE_URL that answers 200 with JSON that is not Serper's."""

    def __init__(self, body):
        super().__init__([], key="serper-test-key")
        self.body = body

    def handle(self, path, headers, payload):
        return Reply(200, self.body)


@pytest.mark.parametrize("body", [["a list"], {"organic": "nope"}, {"organic": ["no dict"]}])
def test_a_search_reply_that_is_not_serpers_fails_the_item_with_one_line(tmp_path, body):
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    with FakeOpenAI(reply=reply) as server, ShapedSerper(body) as serper:
        run_recipe(tmp_path, server, "--config", str(config), "--out", "run0", "--limit", "0")
        never_answerable(tmp_path / "index")
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--web-fallback", "serper",
                            env={"ZAOSHU_SERPER_BASE_URL": serper.url, "SERPER_API_KEY": "serper-test-key"})
    assert result.returncode == 0 and "Traceback" not in result.stderr  # AttributeError: 'list' object has no …
    failed = list(read_jsonl(tmp_path / "run/failed.jsonl"))
    if body == {"organic": ["no dict"]}:  # nothing usable in it: no answer from the web
        rejected = [r["codes"] for r in read_jsonl(tmp_path / "run/rejected.jsonl")]
        assert not failed and rejected == [["UNANSWERABLE"]] * 2
        return
    assert len(failed) == 2
    assert all(r["error"].startswith("WebSearchError: Serper reply has an unknown shape (check ZAOSHU_SERPER_BASE_URL)")
               for r in failed)


def test_the_huixiangdou_endpoints_own_url_works_as_the_server_url(tmp_path):
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    answer = {"step": [{"state": "success", "response": "天命人的棍法有劈棍、立棍和戳棍三种姿态，各有不同的连招。", "refs": []}]}
    with FakeOpenAI(reply=reply) as server, FakeHuixiangDou([Reply(200, answer)]) as hxd:
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--answerer", "huixiangdou",
                            "--huixiangdou-url", hxd.url + "/huixiangdou_inference/", "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert [r["path"] for r in hxd.requests] == ["/huixiangdou_inference"]  # it was …/huixiangdou_inference twice: 404
    assert len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 1


def test_the_dry_run_plans_no_answerer_call_when_huixiangdou_answers(tmp_path):
    """HuixiangDou writes the answers (the answerer model only revisions), yet the plan priced an answerer call
    per turn."""
    from tests.test_cost import plan_calls

    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    answer = {"step": [{"state": "success", "response": "天命人的棍法有劈棍、立棍和戳棍三种姿态，各有不同的连招。", "refs": []}]}
    args = ["--config", str(config), "--answerer", "huixiangdou"]
    with FakeOpenAI(reply=reply) as server, FakeHuixiangDou([Reply(200, answer)]) as hxd:
        plan = run_recipe(tmp_path, server, *args, "--huixiangdou-url", hxd.url, "--dry-run")
        done = run_recipe(tmp_path, server, *args, "--huixiangdou-url", hxd.url, "--out", "run", "--limit", "1")
        answerer_calls = [r for r in server.requests if "- answer" in r.system]
    assert plan.returncode == 0 and done.returncode == 0, plan.stderr + done.stderr
    assert plan_calls(plan.stdout) == {"asker": 2, "answerer": 0, "critic": 2, "total": 4}
    assert not answerer_calls and len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 1


def test_a_huixiangdou_url_without_the_huixiangdou_answerer_is_one_line(tmp_path):
    """The URL alone was ignored: the run built our index and answered from it, never asking the server."""
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    with FakeOpenAI(reply=reply) as server, FakeHuixiangDou([Reply(200, "答")]) as hxd:
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--huixiangdou-url", hxd.url)
        assert not server.requests and not hxd.requests
    assert result.returncode == 1 and not (tmp_path / "run").exists()
    assert result.stderr.strip() == ("error: --huixiangdou-url is the server of --answerer huixiangdou, but the "
                                     "answerer is rag: add --answerer huixiangdou")


def then_my_docs(tmp_path: Path, **changes) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess, Path]:
    """A run on the recipe's folder, then one with `--knowledge mydocs` (a note on tea): both, and mydocs."""
    config = recipe_yaml(tmp_path, small_folder(tmp_path), **changes)
    mine = tmp_path / "mydocs"
    mine.mkdir()
    (mine / "tea.md").write_text("# 茶\n\n龙井茶产于杭州西湖一带，是中国十大名茶之一。\n", encoding="utf-8")
    with FakeOpenAI(reply=reply) as server:
        first = run_recipe(tmp_path, server, "--config", str(config), "--out", "run0", "--limit", "0")
        then = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--limit", "0",
                          "--knowledge", str(mine))
    assert first.returncode == 0 and then.returncode == 0, then.stderr
    return first, then, mine


def test_an_index_holding_another_folder_is_said_when_knowledge_names_a_different_one(tmp_path):
    """--knowledge mydocs answered from the recipe's own documents too, left in the shared index by an earlier
    run, and not a word said."""
    first, mixed, mine = then_my_docs(tmp_path)
    assert "also holds" not in first.stdout
    assert (f"warning: the index {tmp_path / 'index'} also holds the documents of {tmp_path / 'kb'}, not among this "
            f"run's knowledge folders: they answer too. To answer from {mine} alone, give the recipe YAML an "
            f"index_dir of its own") in mixed.stdout


def test_the_recipes_own_index_holds_its_knowledge_folders_and_no_others(tmp_path):
    """Without an index_dir, the index is the recipe's: a folder taken out of the YAML (or replaced with
    --knowledge) went on answering from it, with only a warning."""
    from knowledge.index import KnowledgeBase

    _, mine_only, mine = then_my_docs(tmp_path, index_dir=None)
    assert (f"index index: dropped {tmp_path / 'kb'}: not among the knowledge folders now: its 1 "
            f"files (1 chunks) are dropped from the index") in mine_only.stdout
    assert "also holds" not in mine_only.stdout
    with KnowledgeBase.open(tmp_path / "index") as kb:
        assert kb.store.roots() == [str(mine)]
        assert [p.source for p in kb.retrieve("古建筑 玉皇庙", k=3)] == ["mydocs/tea.md"]


def test_the_huixiangdou_timeout_is_a_setting_a_resumed_run_may_change(tmp_path):
    """A slow server (a local LLM behind HuixiangDou) failed every item after a fixed 120 s: nothing set it. An
    environment setting, not a YAML key, so that the rerun with a longer wait resumes the same run."""
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    answer = {"step": [{"state": "success", "response": "天命人的棍法有劈棍、立棍和戳棍三种姿态，各有不同的连招。", "refs": []}]}
    args = ["--config", str(config), "--out", "run", "--limit", "1", "--answerer", "huixiangdou"]
    with FakeOpenAI(reply=reply) as server, FakeHuixiangDou([Reply(200, answer, delay=1.5)]) as hxd:
        short = run_recipe(tmp_path, server, *args, "--huixiangdou-url", hxd.url,
                           env={"ZAOSHU_HUIXIANGDOU_TIMEOUT": "0.5"})
        longer = run_recipe(tmp_path, server, *args, "--huixiangdou-url", hxd.url,
                            env={"ZAOSHU_HUIXIANGDOU_TIMEOUT": "10"})
    assert short.returncode == 0 and longer.returncode == 0, short.stderr + longer.stderr
    [failed] = read_jsonl(tmp_path / "run/failed.jsonl")
    assert failed["error"] == (f"HuixiangDouError: HuixiangDou at {hxd.url}/huixiangdou_inference did not answer "
                               f"within 0.5 s")
    assert len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 1


def test_a_follow_up_answered_from_other_pages_keeps_every_turns_urls(tmp_path):
    """meta.urls held only the last turn's pages: the first turn's were dropped from it."""
    from tests.recipe_replies import FOLLOWUPS

    pages = {"first": {"title": "棍法", "link": "https://example.com/staff",
                       "snippet": "天命人的棍法分为劈棍、立棍和戳棍三种姿态。每种姿态都有各自的重击和连招方式。"},
             "follow": {"title": "连招", "link": "https://example.com/combo",
                        "snippet": "连招需要在敌人的攻击间隙里打出。蓄满棍势的重击可以造成大量伤害。"}}

    class FollowUpSerper(FakeSerper):
        def handle(self, path, headers, payload):
            self.organic = [pages["follow" if any(f in payload["q"] for f in FOLLOWUPS) else "first"]]  # by turn
            return super().handle(path, headers, payload)

    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    config.write_text(yaml.safe_dump({**data, "multi_turn": {"every": 1, "turns": [2, 2]}}, allow_unicode=True),
                      encoding="utf-8")
    with FakeOpenAI(reply=reply) as server, FollowUpSerper([], key="serper-test-key") as serper:
        run_recipe(tmp_path, server, "--config", str(config), "--out", "run0", "--limit", "0")
        never_answerable(tmp_path / "index")
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--web-fallback", "serper",
                            env={"ZAOSHU_SERPER_BASE_URL": serper.url, "SERPER_API_KEY": "serper-test-key"})
    assert result.returncode == 0, result.stderr
    sample = next(read_jsonl(tmp_path / "run/accepted.jsonl"))
    assert len(sample["turns"]) == 2 and sample["meta"]["retrieval"] == "web"
    assert [(s["turn"], s["url"]) for s in sample["meta"]["sources"]] == \
        [(0, "https://example.com/staff"), (1, "https://example.com/combo")]
    assert sample["meta"]["urls"] == ["https://example.com/staff", "https://example.com/combo"]


class TopicHuixiangDou(FakeHuixiangDou):
    """Like HuixiangDou's pipeline: a question without a topic of its knowledge base is declined."""

    def __init__(self):
        super().__init__([])

    def handle(self, path, headers, payload):
        if "棍法" not in payload["text"]:
            return Reply(200, {"step": [{"state": "The question does not have a topic. It might be a meaningless "
                                                  "sentence.", "response": "", "refs": []}]})
        return Reply(200, {"step": [{"state": "success", "response": "天命人的棍法有劈棍、立棍和戳棍三种姿态，各有不同的连招。"
                                                                      if len(self.requests) == 1 else
                                     "劈棍重在连击，立棍可以躲开地面攻击，戳棍擅长远距离突刺。", "refs": ["棍法.md"]}]})


def test_huixiangdou_gets_a_follow_up_with_the_question_before_it(tmp_path):
    """The server keeps no history: 「还有别的相关细节吗？」 alone has no topic, so it declined and the whole
    two-turn item, its accepted first turn included, was rejected as UNANSWERABLE."""
    config = recipe_yaml(tmp_path, small_folder(tmp_path))
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    config.write_text(yaml.safe_dump({**data, "aspects": ["棍法类型"], "multi_turn": {"every": 1, "turns": [2, 2]}},
                                     allow_unicode=True), encoding="utf-8")
    with FakeOpenAI(reply=reply) as server, TopicHuixiangDou() as hxd:
        result = run_recipe(tmp_path, server, "--config", str(config), "--out", "run", "--answerer", "huixiangdou",
                            "--huixiangdou-url", hxd.url)
    assert result.returncode == 0, result.stderr
    [sample] = read_jsonl(tmp_path / "run/accepted.jsonl")
    first, follow = (turn["input"] for turn in sample["turns"])
    assert [r["json"]["text"] for r in hxd.requests] == [first, f"{first} {follow}"]
