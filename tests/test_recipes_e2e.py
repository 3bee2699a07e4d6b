"""Each recipe end to end against the local OpenAI-compatible server, with small configs:
the exact files a user gets and the shape of their records; resume; dry run; no endpoint."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from graphs.ledger import read_jsonl
from graphs.execute import execute
from graphs.session import RunRequest
from recipes.emollm.recipe import EmoLLM
from recipes.tianji.recipe import Tianji
from recipes.wulewule.recipe import Wulewule
from tests.fake_openai import FakeOpenAI
from tests.recipe_replies import reply

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-recipe-test-secret-000111"


def small_config(tmp_path, name, **changes):
    config = yaml.safe_load((REPO / "recipes" / name / f"{name}.yaml").read_text(encoding="utf-8"))
    config.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def server(monkeypatch):
    with FakeOpenAI(reply=reply) as fake:
        monkeypatch.setenv("ZAOSHU_BASE_URL", fake.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-model")
        monkeypatch.setenv("ZAOSHU_API_KEY", SECRET)
        yield fake


def run(recipe, config, out, **flags):
    console = Console(record=True, width=200, file=open(os.devnull, "w"))
    code = execute(recipe, RunRequest(config=config, out=out, concurrency=flags.pop("concurrency", 1), **flags), console)
    return code, console.export_text()


def lines(path):
    return list(read_jsonl(path))


def wulewule_config(tmp_path):
    aspects = yaml.safe_load((REPO / "recipes/wulewule/wulewule.yaml").read_text(encoding="utf-8"))["aspects"][:3]
    return small_config(tmp_path, "wulewule", knowledge_folder=str(REPO / "knowledge/bases/wulewule"),
                        embedder="hash", aspects=aspects, questions_per_aspect=2, index_dir=str(tmp_path / "index"))


def test_wulewule_end_to_end_then_resume(server, tmp_path):
    out = tmp_path / "run"
    code, text = run(Wulewule(), wulewule_config(tmp_path), out)
    assert code == 0, text
    accepted = lines(out / "accepted.jsonl")
    assert len(accepted) == 6 and "done (completed): accepted 6" in text
    system = yaml.safe_load((REPO / "recipes/wulewule/wulewule.yaml").read_text(encoding="utf-8"))["system_prompt"]
    for sample in accepted:
        assert sample["recipe"] == "wulewule" and sample["kind"] == "qa" and sample["system"] == system
        assert sample["meta"]["aspect"] in text or sample["meta"]["aspect"]
        assert sample["meta"]["sources"] and all(s["source"].startswith("wulewule/") for s in sample["meta"]["sources"])
        assert sample["meta"]["verdict"]["decision"] == "accept"
    assert sorted(len(s["turns"]) for s in accepted)[:3] == [1, 1, 1]
    assert any(2 <= len(s["turns"]) <= 4 for s in accepted)  # every 2nd question grows follow-ups
    pretrain = lines(out / "exports/pretrain.jsonl")
    assert len(pretrain) == 46 and all(list(r) == ["conversation"] for r in pretrain)
    assert all(r["conversation"][0]["input"] == "" and r["conversation"][0]["output"] for r in pretrain)
    cognition = lines(out / "exports/self_cognition.jsonl")
    assert len(cognition) == 18 and all("悟了悟了" in r["conversation"][0]["output"] for r in cognition)
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["accepted"] == 6 and stats["status"] == "completed" and stats["input_tokens"] > 0
    assert all(SECRET not in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())

    requests = len(server.requests)
    code, text = run(Wulewule(), wulewule_config(tmp_path), out)  # same command again: nothing left to do
    assert code == 0 and "(0 of 6 items to run)" in text
    assert len(server.requests) == requests and len(lines(out / "accepted.jsonl")) == 6


def copying_asker(req):
    """recipe_replies, except that the asker hands back a sentence of its <context> as the question."""
    context = re.search(r"<context>\n(.*?)\n</context>", req.text, re.DOTALL)
    if "- question" in req.system and context:
        prose = [x for x in re.split(r"(?<=[。！])", context.group(1)) if len(x) >= 20 and "#" not in x]
        return {"question": prose[0].strip()}
    return reply(req)


def test_a_passage_copied_as_the_question_is_rejected_before_any_answer(monkeypatch, tmp_path):
    with FakeOpenAI(reply=copying_asker) as fake:
        monkeypatch.setenv("ZAOSHU_BASE_URL", fake.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-model")
        code, text = run(Wulewule(), wulewule_config(tmp_path), tmp_path / "run")
        systems = [r.system for r in fake.requests]
    assert code == 0, text
    rejected = lines(tmp_path / "run" / "rejected.jsonl")
    assert len(rejected) == 6 and all(r["codes"] == ["NOT_A_QUESTION"] for r in rejected)
    assert all(r["sample"]["meta"]["question_problem"].startswith("照抄了资料里的") for r in rejected)
    assert len(systems) == 6 * 3 and all("- question" in s for s in systems)  # asked 3 times each, never answered
    assert "NOT_A_QUESTION" in text


def test_wulewule_export_puts_the_system_prompt_in_the_first_turn_only(server, tmp_path):
    from finetune.export import export_run

    out = tmp_path / "run"
    assert run(Wulewule(), wulewule_config(tmp_path), out)[0] == 0
    export_run(out, "xtuner")
    records = [r for f in (out / "exports/xtuner").glob("*.jsonl") for r in lines(f)]
    assert len(records) == 6
    for record in records:
        turns = record["conversation"]
        assert turns[0]["system"] and all("system" not in t for t in turns[1:])


def test_tianji_end_to_end_with_the_compatibility_matrix(server, tmp_path):
    config = small_config(tmp_path, "tianji", roles=[{"name": "奶奶", "relation": "elder"},
                                                     {"name": "哥哥", "relation": "peer", "sibling": True},
                                                     {"name": "爷爷", "relation": "elder"}],
                          scenes=["生日", "工作升职"])
    out = tmp_path / "run"
    code, text = run(Tianji(), config, out, concurrency=4)
    assert code == 0, text
    accepted, rejected = lines(out / "accepted.jsonl"), lines(out / "rejected.jsonl")
    # 3 roles × 2 scenes × 3 styles; the YAML's matrix excludes grandparents × 工作升职
    assert len(accepted) == 12 and len(rejected) == 6
    assert all(r["codes"] == ["ROLE_SCENE_MISMATCH"] and r["key"]["scene"] == "工作升职" for r in rejected)
    assert {r["key"]["role"] for r in rejected} == {"奶奶", "爷爷"}
    for sample in accepted:
        meta, output = sample["meta"], sample["turns"][0]["output"]
        assert meta["role"] in output and meta["scene"] in sample["turns"][0]["input"]
        assert ("您" in output) == (meta["role"] != "哥哥")
        assert ("🎉" in output) == (meta["style"] == "小红书")
        if meta["style"] != "正常":
            assert sample["turns"][0]["input"].endswith(f"，{meta['style']}风格")


def test_emollm_end_to_end_writes_per_scene_files(server, tmp_path, caplog):
    config = small_config(tmp_path, "emollm", areas=["学业", "工作"], emotions=["焦虑", "同情", "同情"], turns=[2, 3])
    out = tmp_path / "run"
    code, text = run(EmoLLM(), config, out, concurrency=4)
    assert code == 0, text
    accepted = lines(out / "accepted.jsonl")
    assert len(accepted) == 4  # 2 areas × 2 unique emotions
    assert "同情 (3 entries → 2 emotions)" in caplog.text
    for sample in accepted:
        assert sample["kind"] == "dialogue" and 2 <= len(sample["turns"]) <= 3
        assert all(t["input"] and t["output"] for t in sample["turns"])  # ends with the counsellor
    files = sorted(p.relative_to(out / "exports/by_scene").as_posix() for p in (out / "exports/by_scene").rglob("*.jsonl"))
    assert files == ["学业/同情.jsonl", "学业/焦虑.jsonl", "工作/同情.jsonl", "工作/焦虑.jsonl"]
    record = lines(out / "exports/by_scene/学业/焦虑.jsonl")[0]
    assert record["conversation"][0]["system"] and "system" not in record["conversation"][-1]
    assert len(lines(out / "exports/self_cognition.jsonl")) >= 10


def test_emollm_names_with_a_slash_or_dots_stay_one_file_inside_by_scene(server, tmp_path):
    """An area or emotion is a label, not a path: 「学业/考试」 made a folder in a folder, 「焦虑/紧张」 ended the
    run with a traceback (FileNotFoundError), and 「..」 wrote outside by_scene."""
    config = small_config(tmp_path, "emollm", areas=["学业/考试", "..", "工作"], emotions=["焦虑/紧张", "同情"],
                          turns=[2, 3])
    out = tmp_path / "run"
    code, text = run(EmoLLM(), config, out, concurrency=4)
    assert code == 0 and "done (completed)" in text, text
    accepted = lines(out / "accepted.jsonl")
    assert {s["meta"]["area"] for s in accepted} >= {"学业/考试", ".."}
    expected = {f"by_scene/{s['meta']['area'].replace('/', '_').replace('..', '_')}/"
                f"{s['meta']['emotion'].replace('/', '_')}.jsonl" for s in accepted}
    files = {p.relative_to(out / "exports").as_posix() for p in (out / "exports").rglob("*.jsonl")}
    assert files == expected | {"self_cognition.jsonl"}
    assert sum(len(lines(out / "exports" / f)) for f in expected) == len(accepted)


def test_dry_run_makes_zero_requests_and_shows_the_plan(server, tmp_path):
    code, text = run(Wulewule(), wulewule_config(tmp_path), tmp_path / "run", dry_run=True)
    assert code == 0 and len(server.requests) == 0
    assert "dry run: 6 work items" in text and "total" in text
    assert "QUESTION_BY_ASPECT_PROMPT" in text and "graph TD" in text
    assert not (tmp_path / "run").exists()


def test_wulewule_without_endpoint_still_writes_chunks_then_says_how_to_configure(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_"))}
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "recipes.wulewule", "--config", str(wulewule_config(tmp_path)),
                             "--out", str(out)], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no LLM endpoint configured" in errors[0] and "deepseek" in errors[0]
    assert len(lines(out / "exports/pretrain.jsonl")) == 46
    assert len(lines(out / "exports/self_cognition.jsonl")) == 18
