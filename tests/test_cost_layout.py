"""The prompt prefix a server can reuse (issue 15), seen from the requests `python -m recipes.wulewule`
sends: at --concurrency 1 an aspect's questions run back to back, every answerer call starts with the
same system message and instructions, then the passages the asker wrote the aspect's questions from."""

import json
import re

import yaml

from graphs.ledger import read_jsonl
from tests.fake_openai import FakeOpenAI
from tests.recipe_replies import reply
from tests.test_recipe_cli import REPO, run

ASPECTS = yaml.safe_load((REPO / "recipes/wulewule/wulewule.yaml").read_text(encoding="utf-8"))["aspects"][:3]


def config(tmp_path, **changes):
    data = yaml.safe_load((REPO / "recipes/wulewule/wulewule.yaml").read_text(encoding="utf-8"))
    data.update(knowledge_folder=str(REPO / "knowledge/bases/wulewule"), embedder="hash", aspects=ASPECTS,
                questions_per_aspect=2, index_dir=str(tmp_path / "index"), **changes)
    path = tmp_path / "wulewule.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def first_question_aspects(requests) -> list[str]:
    """The aspect of each first-question asker request (a follow-up names its aspect too, but shows a
    conversation, not the questions asked), in the order the server received them."""
    return [m.group(1) for r in requests if "- question (" in r.system and "<asked>" in r.last_user
            for m in [re.search(r"的「(.+?)」这一方面", r.last_user)] if m]


def wulewule(tmp_path, server, *args):
    result = run(tmp_path, server, "--config", str(config(tmp_path)), "--out", str(tmp_path / "run"), *args,
                 recipe="wulewule")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_at_concurrency_one_an_aspects_questions_run_back_to_back(tmp_path):
    with FakeOpenAI(reply=reply) as server:
        wulewule(tmp_path, server, "--concurrency", "1")
        requests = list(server.requests)
    # the recipe lists aspect-major (A1 B1 C1 A2 B2 C2); at concurrency 1 each aspect's pair runs together
    assert first_question_aspects(requests) == [a for a in ASPECTS for _ in range(2)]
    assert len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 6


def test_limit_still_picks_one_question_per_aspect_first(tmp_path):
    with FakeOpenAI(reply=reply) as server:
        wulewule(tmp_path, server, "--concurrency", "1", "--limit", "3")
        requests = list(server.requests)
    assert first_question_aspects(requests) == ASPECTS


def test_a_run_that_may_stop_early_keeps_the_recipes_order(tmp_path):
    """--target stops at 3 accepted samples: they come from three aspects, not from one and a half."""
    with FakeOpenAI(reply=reply) as server:
        wulewule(tmp_path, server, "--concurrency", "1", "--target", "3")
        requests = list(server.requests)
    assert first_question_aspects(requests)[:3] == ASPECTS


def test_at_higher_concurrency_the_recipes_order_is_kept(tmp_path):
    """Questions of one aspect in flight together would not see each other's questions: not grouped."""
    with FakeOpenAI(reply=reply, latency=0.05) as server:
        wulewule(tmp_path, server, "--concurrency", "3")
        requests = list(server.requests)
    assert sorted(first_question_aspects(requests)[:3]) == sorted(ASPECTS)


def test_every_answerer_call_starts_alike_and_the_askers_passages_come_first(tmp_path):
    with FakeOpenAI(reply=reply) as server:
        wulewule(tmp_path, server, "--concurrency", "1")
        answerer = [r.messages for r in server.requests if "- answer (" in r.system]
    assert len(answerer) >= 8
    # one system message and one prompt: identical up to the passages in every call, follow-ups included
    assert all(len(m) == 2 and m[0] == answerer[0][0] for m in answerer)
    heads = {m[1]["content"][:m[1]["content"].index("<passages>")] for m in answerer}
    assert len(heads) == 1
    follow_ups = [m[1]["content"] for m in answerer if "<conversation>\n用户：" in m[1]["content"]]
    assert follow_ups and all(p.index("</passages>") < p.index("\n<conversation>\n") < p.index("\n<question>")
                              for p in follow_ups)
    samples = list(read_jsonl(tmp_path / "run/accepted.jsonl"))
    assert samples and any(len(sample["turns"]) > 1 for sample in samples)
    for sample in samples:
        context = sample["meta"]["question_context"]
        for turn in range(len(sample["turns"])):
            ids = [s["chunk_id"] for s in sample["meta"]["sources"] if s["turn"] == turn]
            # every turn, follow-ups included, starts with the passages the asker wrote from, in its order,
            # then passages of the question's own: 4 in all for a first question, 2 more for a follow-up
            assert ids[:len(context)] == context and len(ids) == (4 if turn == 0 else len(context) + 2), ids
