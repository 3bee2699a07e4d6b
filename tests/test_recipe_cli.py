"""What a user of `python -m recipes.<name>` notices: which setting wins, two runs on one folder,
a reply cut at max_tokens, a misspelt YAML key — all through the recipe command itself."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agents.structured import CUT_SHOWN, REASK_CUT_PROMPT
from graphs.ledger import read_jsonl
from tests.fake_openai import FakeOpenAI
from tests.recipe_replies import ACCEPT, reply

REPO = Path(__file__).resolve().parents[1]


def tianji_yaml(tmp_path: Path, **changes) -> Path:
    config = yaml.safe_load((REPO / "recipes/tianji/tianji.yaml").read_text(encoding="utf-8"))
    config.update({"roles": [{"name": "奶奶", "relation": "elder"}, {"name": "同事", "relation": "peer"}],
                   "scenes": ["生日", "春节", "中秋节"], "styles": {"正常": config["styles"]["正常"]}, **changes})
    path = tmp_path / "tianji.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def recipe_yaml(tmp_path: Path, recipe: str, **changes) -> Path:
    """The recipe's own YAML with `changes`, written to tmp_path."""
    config = yaml.safe_load((REPO / f"recipes/{recipe}/{recipe}.yaml").read_text(encoding="utf-8"))
    path = tmp_path / f"{recipe}.yaml"
    path.write_text(yaml.safe_dump({**config, **changes}, allow_unicode=True), encoding="utf-8")
    return path


def command(tmp_path: Path, server: FakeOpenAI, *args: str, env: dict | None = None, recipe: str = "tianji"):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_", "SERPER_"))}
    base.update(PYTHONPATH=str(REPO), ZAOSHU_BASE_URL=server.base_url, ZAOSHU_MODEL="fake-model", **(env or {}))
    return [sys.executable, "-m", f"recipes.{recipe}", *args], dict(base), tmp_path


def run(tmp_path, server, *args, env=None, recipe="tianji", timeout=180) -> subprocess.CompletedProcess:
    cmd, env, cwd = command(tmp_path, server, *args, env=env, recipe=recipe)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def resolved(tmp_path: Path, out: str) -> dict:
    return yaml.safe_load((tmp_path / out / "config.resolved.yaml").read_text(encoding="utf-8"))["settings"]


# flag > environment > .env > YAML > default; a flag left out overrides nothing
PRECEDENCE = [
    # (YAML llm block, environment, .env file, flags, items in flight, temperature, requests in flight)
    ({}, {}, "", [], 8, 0.7, 16),
    ({"concurrency": 3, "temperature": 0.2, "max_requests": 5}, {}, "", [], 3, 0.2, 5),
    ({"concurrency": 3, "temperature": 0.2}, {"ZAOSHU_CONCURRENCY": "5", "ZAOSHU_TEMPERATURE": "0.4"}, "", [],
     5, 0.4, 16),
    ({"concurrency": 3}, {}, "ZAOSHU_CONCURRENCY=6\nZAOSHU_MAX_REQUESTS=7\n", [], 6, 0.7, 7),
    ({"concurrency": 3}, {"ZAOSHU_CONCURRENCY": "5"}, "ZAOSHU_CONCURRENCY=6\n", ["--concurrency", "2"], 2, 0.7, 16),
    ({"max_requests": 5}, {"ZAOSHU_MAX_REQUESTS": "9"}, "", ["--concurrency", "2"], 2, 0.7, 9),
]


@pytest.mark.parametrize("yaml_llm, environ, dotenv, flags, items, temperature, requests", PRECEDENCE)
def test_precedence_through_the_recipe_command(tmp_path, yaml_llm, environ, dotenv, flags, items, temperature,
                                               requests):
    config = tianji_yaml(tmp_path, llm=yaml_llm)
    if dotenv:
        (tmp_path / ".env").write_text(dotenv, encoding="utf-8")
    with FakeOpenAI(reply=reply, latency=0.2) as server:
        result = run(tmp_path, server, "--config", str(config), "--out", "run", *flags, env=environ)
    assert result.returncode == 0, result.stderr + result.stdout
    settings = resolved(tmp_path, "run")
    assert settings["concurrency"] == items
    assert settings["resolved"]["asker"]["temperature"] == temperature
    assert settings["resolved"]["critic"]["max_requests"] == requests
    # and it is what the run did: 6 items, one request in flight per item at a time
    assert server.max_in_flight == min(items, requests, 6)
    assert {r.body["temperature"] for r in server.requests if "- text" in r.system} == {temperature}


def test_a_malformed_dotenv_line_is_warned_about_once_and_the_rest_of_the_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("this is not valid\nZAOSHU_TEMPERATURE=0.3\n", encoding="utf-8")
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(tianji_yaml(tmp_path, scenes=["生日"])), "--out", "run")
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).count("python-dotenv could not parse statement starting at line 1") == 1
    assert resolved(tmp_path, "run")["resolved"]["asker"]["temperature"] == 0.3


def test_the_old_ambiguous_variable_is_refused_with_the_new_names(tmp_path):
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(tianji_yaml(tmp_path)), env={"ZAOSHU_MAX_CONCURRENCY": "4"})
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: ZAOSHU_MAX_CONCURRENCY is no longer read (it meant two things): use "
                                     "ZAOSHU_CONCURRENCY (work items in flight) or ZAOSHU_MAX_REQUESTS (requests in "
                                     "flight per endpoint)")


def test_an_out_folder_holding_another_run_is_never_mixed_into(tmp_path):
    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日", "春节"])
    with FakeOpenAI(reply=reply) as server:
        assert run(tmp_path, server, "--config", str(config), "--out", "run").returncode == 0
        before = (tmp_path / "run/accepted.jsonl").read_bytes()
        refused = [run(tmp_path, server, "--out", "run", "--limit", "2", recipe="emollm"),
                   run(tmp_path, server, "--config", str(config), "--out", "run", "--judge", "off"),
                   run(tmp_path, server, "--config", str(config), "--out", "run", "--fresh")]
        again = run(tmp_path, server, "--config", str(config), "--out", "run")
    assert [r.returncode for r in refused] == [1, 1, 1]
    assert [r.stderr.strip() for r in refused] == [
        "error: run holds a run of tianji, not of emollm: choose another --out",
        "error: run holds a tianji run made with another configuration (its YAML or a flag such as --judge, "
        "--answerer, --knowledge or --name differs): run it as it was made to resume it, or choose another --out",
        "error: --fresh starts a new run, but run already holds one: choose another --out, or leave out --fresh "
        "to resume it"]
    assert (tmp_path / "run/accepted.jsonl").read_bytes() == before  # nothing was added to it
    assert again.returncode == 0 and "(0 of 2 items to run)" in again.stdout  # the same command still resumes


def started_until(tmp_path: Path, server: FakeOpenAI, config: Path, until) -> subprocess.Popen:
    """`python -m recipes.tianji --out run --concurrency 1` in the background, once `until()` holds (≤ 60 s)."""
    cmd, env, cwd = command(tmp_path, server, "--config", str(config), "--out", "run", "--concurrency", "1")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not until():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"the run ended or took too long: {proc.communicate(timeout=30)}")
        time.sleep(0.05)
    return proc


def test_a_second_run_on_a_folder_in_use_exits_at_once_naming_the_holder(tmp_path):
    config = tianji_yaml(tmp_path)
    with FakeOpenAI(reply=reply, latency=0.5) as server:
        first = started_until(tmp_path, server, config, (tmp_path / "run/config.resolved.yaml").exists)  # the lock
        try:
            started = time.monotonic()
            second = run(tmp_path, server, "--config", str(config), "--out", "run", "--concurrency", "1")
            assert time.monotonic() - started < 30  # at once: no item was run
            assert second.returncode == 1
            assert second.stderr.strip() == (f"error: run folder run is in use by PID {first.pid}: wait for that run "
                                             f"to finish, stop it, or choose another --out")
            out, err = first.communicate(timeout=120)
        finally:
            first.kill()
    assert first.returncode == 0, err
    ids = [r["id"] for f in ("accepted.jsonl", "rejected.jsonl") for r in read_jsonl(tmp_path / "run" / f)]
    assert len(ids) == len(set(ids)) == 6  # every item once


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run/run.lock").write_text(dead.stdout)
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(tianji_yaml(tmp_path)), "--out", "run")
    assert result.returncode == 0, result.stderr
    assert f"took over the lock of run left by PID {dead.stdout.strip()}, which no longer holds it" in result.stderr
    assert len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 6


def test_a_reply_cut_at_max_tokens_is_never_accepted(tmp_path):
    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"])
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(config), "--out", "run",
                     env={"ZAOSHU_RESPONDER__MAX_TOKENS": "30"})
        assert result.returncode == 0, result.stderr
        bodies = [r.body for r in server.requests]
    (record,) = read_jsonl(tmp_path / "run/rejected.jsonl")
    assert record["codes"] == ["TRUNCATED"] and record["raw"]
    assert not list(read_jsonl(tmp_path / "run/accepted.jsonl"))
    assert [b["max_tokens"] for b in bodies] == [30]  # cut once: not asked again


LOOPING_VERDICT = {**ACCEPT, "reasons": ["祝福语写给奶奶，语气亲切。"] * 60}  # a small judge repeating itself


@pytest.mark.parametrize("loops", [1, 3])
def test_a_judge_cut_at_max_tokens_is_asked_again_briefly(tmp_path, loops):
    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"])
    judged = []

    def looping_judge(req):
        if "- decision" not in req.system:
            return reply(req)
        judged.append(req)
        return LOOPING_VERDICT if len(judged) <= loops else ACCEPT

    with FakeOpenAI(reply=looping_judge) as server:
        result = run(tmp_path, server, "--config", str(config), "--out", "run",
                     env={"ZAOSHU_CRITIC__MAX_TOKENS": "200"})
    assert result.returncode == 0, result.stderr
    again = judged[1].messages
    assert again[-1]["content"] == REASK_CUT_PROMPT and len(again[-2]["content"]) == CUT_SHOWN  # only the cut start
    if loops == 1:  # the verdict asked for again is whole: the greeting is judged, not lost
        assert len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 1
    else:  # every attempt ran on: the item is rejected TRUNCATED at the critique, its raw kept
        (record,) = read_jsonl(tmp_path / "run/rejected.jsonl")
        assert record["codes"] == ["TRUNCATED"] and record["sample"]["meta"]["failed_step"] == "critique"
        assert len(judged) == 3 and record["raw"].startswith('{"reasons"')


def test_every_role_sends_its_max_tokens(tmp_path):
    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"])
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(config), "--out", "run", env={"ZAOSHU_CRITIC__MAX_TOKENS": "700"})
        assert result.returncode == 0, result.stderr
        sent = {("critic" if "- decision" in r.system else "responder"): r.body["max_tokens"] for r in server.requests}
    assert sent == {"responder": 768, "critic": 700}


@pytest.mark.parametrize("change, message", [
    ({"variants_per_cel": 2}, "unknown key 'variants_per_cel' — did you mean 'variants_per_cell'?"),
    ({"llm": {"temprature": 0.3}}, "unknown key 'llm.temprature' — did you mean 'llm.temperature'?"),
    ({"critic": {"judge": "maybe"}}, "key 'critic.judge': Input should be 'off', 'on' or 'strict'"),
])
def test_a_misspelt_yaml_key_is_one_line_naming_file_key_and_nearest(tmp_path, change, message):
    config = tianji_yaml(tmp_path, **change)
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(config), "--out", "run")
    assert result.returncode == 1 and len(server.requests) == 0
    assert result.stderr.strip() == f"error: {config}: {message}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("recipe, config, named", [
    ("tianji", None, "emollm"),  # tianji's own YAML with another recipe's name: it ran, as tianji
    ("tianji", "recipes/emollm/emollm.yaml", "emollm"),  # was "unknown key 'emotions'", not the reason
    ("emollm", "recipes/wulewule/wulewule.yaml", "wulewule"),
    ("wulewule", "recipes/docqa/docqa.yaml", "docqa"),
])
def test_a_config_for_another_recipe_is_one_line_naming_both_before_any_call(tmp_path, recipe, config, named):
    path = tianji_yaml(tmp_path, recipe="emollm") if config is None else REPO / config
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(path), "--out", "run", "--limit", "1", recipe=recipe)
    assert result.returncode == 1 and len(server.requests) == 0
    assert result.stderr.strip() == (f"error: {path} is a config for the {named} recipe (recipe: {named}), "
                                     f"not for {recipe}: use a config for {recipe}, or run the {named} recipe with it")
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("recipe, args, message", [
    ("tianji", ["--judge", "maybe"], "Invalid value for '--judge': 'maybe'. Input should be 'off', 'on' or 'strict'"),
    ("wulewule", ["--answerer", "foo"], "Invalid value for '--answerer': 'foo'. Input should be 'rag' or 'huixiangdou'"),
    ("wulewule", ["--web-fallback", "bing"],
     "Invalid value for '--web-fallback': 'bing'. Input should be 'off', 'serper' or 'ddgs'"),
])
def test_a_bad_flag_value_names_the_flag_not_the_yaml(tmp_path, recipe, args, message):
    result = run(tmp_path, CLOSED, *args, "--out", "run", recipe=recipe)
    assert result.returncode == 1 and result.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("env, says", [
    ({"ZAOSHU_JSON_MODE": "[prompt]"}, "error: ZAOSHU_JSON_MODE='[prompt]': Input should be"),
    ({"ZAOSHU_CRITIC__MODEL": "[bold]x", "ZAOSHU_CRITIC__TEMPERATURE": "[red]"},
     "error: ZAOSHU_CRITIC__TEMPERATURE='[red]': Input should be a valid number"),
])
def test_an_error_shows_the_value_as_typed_brackets_included(tmp_path, env, says):
    """The error line is printed as text, not as rich markup: '[prompt]' was shown as ''."""
    result = run(tmp_path, CLOSED, "--out", "run", env=env)
    assert result.returncode == 1 and result.stderr.startswith(says), result.stderr


def test_a_yaml_syntax_error_is_one_line_naming_file_line_column_and_problem(tmp_path):
    config = tmp_path / "tianji.yaml"
    config.write_text("recipe: tianji\nscenes: [生日, 春节\nroles: []\n", encoding="utf-8")
    result = run(tmp_path, CLOSED, "--config", str(config), "--out", "run")
    assert result.returncode == 1 and not (tmp_path / "run").exists()
    assert result.stderr.strip() == (f"error: {config}: not valid YAML at line 3, column 6: expected ',' or ']', "
                                     f"but got ':' (while parsing a flow sequence from line 2)")


def test_a_misspelt_nested_style_key(tmp_path):
    config = tianji_yaml(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["styles"]["正常"]["min_char"] = 5
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(config))
    assert result.stderr.strip() == f"error: {config}: unknown key 'styles.正常.min_char' — did you mean " \
                                    f"'styles.正常.min_chars'?"


@pytest.mark.parametrize("change, message", [
    ({"min_chars": 100, "max_chars": 10}, "min_chars 100 is above max_chars 10"),
    ({"emoji": [3, 1]}, "emoji [3, 1] must be [min, max] with 0 ≤ min ≤ max"),
    ({"emoji": [-1, 2]}, "emoji [-1, 2] must be [min, max] with 0 ≤ min ≤ max"),
])
def test_a_style_no_wish_can_meet_is_one_line_before_any_call(tmp_path, change, message):
    """A length or emoji range no wish can meet rejected every sample, one model call after another."""
    config = tianji_yaml(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["styles"]["正常"].update(change)
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(config), "--out", "run")
    assert result.returncode == 1 and len(server.requests) == 0
    assert result.stderr.strip() == f"error: {config}: key 'styles.正常': {message}"
    assert not (tmp_path / "run").exists()


def test_a_model_the_preset_has_no_price_for_is_warned_about_not_silently_free(tmp_path):
    """README's own example, ZAOSHU_CRITIC__MODEL=deepseek-reasoner with the deepseek preset, priced every judge
    call at ¥0 in the dry run, the summary and a money --budget, and said nothing."""
    config = tianji_yaml(tmp_path)
    env = {"ZAOSHU_PRESET": "deepseek", "ZAOSHU_RESPONDER__MODEL": "deepseek-chat", "ZAOSHU_API_KEY": "sk-test",
           "ZAOSHU_CRITIC__MODEL": "deepseek-reasoner"}
    says = ("warning: no price for the critic's model deepseek-reasoner (the deepseek preset's prices are "
            "deepseek-chat's): its calls count as ¥0 in the cost and a money --budget; set "
            "ZAOSHU_CRITIC__PRICE_INPUT_PER_1K, ZAOSHU_CRITIC__PRICE_OUTPUT_PER_1K")
    with FakeOpenAI(reply=reply) as server:
        plan = run(tmp_path, server, "--config", str(config), "--dry-run", env=env)
        result = run(tmp_path, server, "--config", str(config), "--out", "run", "--limit", "2", env=env)
        priced = run(tmp_path, server, "--config", str(config), "--out", "run2", "--limit", "2",
                     env={**env, "ZAOSHU_CRITIC__PRICE_INPUT_PER_1K": "0.004", "ZAOSHU_CRITIC__PRICE_OUTPUT_PER_1K": "0.016"})
    assert plan.returncode == 0 and says in plan.stdout
    assert result.returncode == 0 and says in result.stdout and result.stdout.count("no price") == 1
    assert priced.returncode == 0 and "no price" not in priced.stdout


def test_the_dry_run_counts_no_call_for_an_excluded_role_scene_cell(tmp_path):
    """An excluded role × scene is rejected before any model call; the plan counted a responder and a critic
    call for each (the full tianji recipe: 1,092 of each instead of 1,074)."""
    config = tianji_yaml(tmp_path, compat_exclusions=[{"role": "奶奶", "scene": "生日", "reason": "测试"}])
    result = run(tmp_path, CLOSED, "--config", str(config), "--dry-run")
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.stdout.splitlines()
            if line.startswith("│")}
    assert "dry run: 6 work items" in result.stdout
    assert rows["responder"] == "5" and rows["critic"] == "5"


def test_a_piped_dry_run_shows_each_prompt_whole_at_any_width(tmp_path):
    """With COLUMNS set and the output piped (no wrapping), the prompt panels cut their lines at the width."""
    result = run(tmp_path, CLOSED, "--config", str(tianji_yaml(tmp_path)), "--dry-run", env={"COLUMNS": "60"})
    assert result.returncode == 0, result.stderr
    assert "── prompt STYLED_REPLY_PROMPT ──" in result.stdout
    assert "根据对象的身份用合适的语气：对长辈和上级用“您”，对平辈和晚辈用“你”，对兄弟姐妹不要用“尊敬的”。" in result.stdout


TOO_MANY = [  # (recipe, key, the error after the key): 10**8 of a count kept even --dry-run busy listing items for hours
    ("tianji", "variants_per_cell", "variants_per_cell 100,000,000 × 1,092 cells (28 roles × 13 scenes × 3 styles) "
     "= 109,200,000,000 work items; a run holds at most 1,000,000: set variants_per_cell to 915 or less"),
    ("emollm", "dialogues_per_scene", "dialogues_per_scene 100,000,000 × 432 cells (16 areas × 27 emotions) = "
     "43,200,000,000 work items; a run holds at most 1,000,000: set dialogues_per_scene to 2,314 or less"),
    ("wulewule", "questions_per_aspect", "questions_per_aspect 100,000,000 × 18 aspects = 1,800,000,000 work items; "
     "a run holds at most 1,000,000: set questions_per_aspect to 55,555 or less"),
]


@pytest.mark.parametrize("name, key, problem", TOO_MANY)
def test_more_items_than_a_run_can_hold_is_one_line_at_once(tmp_path, name, key, problem):
    path = recipe_yaml(tmp_path, name, **{key: 100_000_000})
    result = run(tmp_path, CLOSED, "--config", str(path), "--dry-run", recipe=name, timeout=20)  # it answers in ~2 s
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {path}: key '{key}': {problem}"
    assert not (tmp_path / "runs").exists()


def test_more_questions_per_tag_than_a_run_can_hold_is_one_line_at_once(tmp_path):
    """docqa: max_items alone only caps the questions the corpus gives, but with questions_per_tag: 10000000
    it kept even --dry-run busy listing 15,000,000 tag items (memory and hours)."""
    (tmp_path / "docs").mkdir()
    for title in ("安装", "维护"):  # one tag each
        text = f"# {title}\n\n" + "设备的使用方法和注意事项。" * 40
        (tmp_path / "docs" / f"{title}.md").write_text(text, encoding="utf-8")
    path = recipe_yaml(tmp_path, "docqa", max_items=100_000_000, questions_per_tag=10_000_000)
    result = run(tmp_path, CLOSED, "--config", str(path), "--knowledge", "docs", "--dry-run", recipe="docqa",
                 timeout=20)  # it answers in ~3 s
    assert result.returncode == 1 and result.stderr.strip() == (
        f"error: {path}: key 'questions_per_tag': questions_per_tag 10,000,000 × 2 tags = 20,000,000 work items; "
        f"a run holds at most 1,000,000: set questions_per_tag to 500,000 or less")
    assert not (tmp_path / "runs").exists()


def test_self_judging_is_warned_at_run_start_unless_the_critic_has_its_own_model(tmp_path):
    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"])
    with FakeOpenAI(reply=reply) as server:
        same = run(tmp_path, server, "--config", str(config), "--out", "a")
        other = run(tmp_path, server, "--config", str(config), "--out", "b", env={"ZAOSHU_CRITIC__MODEL": "judge-7b"})
        off = run(tmp_path, server, "--config", str(config), "--out", "c", "--judge", "off")
    # tianji has no asker or answerer: the warning and the models line name the roles the recipe calls
    warning = "warning: the critic judges with the same model as the responder (fake-model"
    assert same.returncode == 0 and warning in " ".join(same.stdout.split())
    models = next(line for line in same.stdout.splitlines() if line.startswith("models: "))
    assert models.startswith("models: responder fake-model @") and "; critic fake-model @" in models
    assert "asker" not in models and "answerer" not in models
    assert "ZAOSHU_CRITIC__MODEL" in same.stdout
    assert other.returncode == 0 and "critic judges with the same model" not in other.stdout
    assert off.returncode == 0 and "critic judges with the same model" not in off.stdout


def test_a_run_with_nothing_to_run_names_the_roles_the_recipe_calls(tmp_path):
    """`--limit 0` listed the asker and the answerer, which tianji never calls, and warned that the critic
    judged with the same model as them."""
    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"])
    with FakeOpenAI(reply=reply) as server:
        none = run(tmp_path, server, "--config", str(config), "--out", "a", "--limit", "0")
        assert server.requests == []
    assert none.returncode == 0, none.stderr
    models = next(line for line in none.stdout.splitlines() if line.startswith("models: "))
    assert models.startswith("models: responder fake-model @") and "asker" not in models and "answerer" not in models
    assert "the critic judges with the same model as the responder (fake-model" in " ".join(none.stdout.split())


CLOSED = type("Closed", (), {"base_url": "http://127.0.0.1:9/v1"})()  # no server: these stop before any call


@pytest.mark.parametrize("args, says", [
    (["--bogus"], "No such option: --bogus"),
    (["--limit", "-1"], "Invalid value for '--limit': Input should be greater than or equal to 0"),
    (["--concurrency", "0"], "Invalid value for '--concurrency': Input should be greater than or equal to 1"),
    (["--limit", "abc"], "Invalid value for '--limit'"),
])
def test_a_bad_flag_is_the_usage_and_one_line_never_a_traceback(tmp_path, args, says):
    result = run(tmp_path, CLOSED, *args, "--out", "run")
    assert result.returncode == 2 and says in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 4
    assert not (tmp_path / "run").exists()


def test_an_empty_api_key_copied_from_env_example_is_no_key(tmp_path):
    (tmp_path / ".env").write_text("ZAOSHU_PRESET=deepseek\nZAOSHU_API_KEY=\n", encoding="utf-8")
    cmd, env, cwd = command(tmp_path, CLOSED, "--limit", "1")
    env = {k: v for k, v in env.items() if k not in ("ZAOSHU_BASE_URL", "ZAOSHU_MODEL")}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: no API key for role 'asker' at https://api.deepseek.com/v1: set "
                                     "ZAOSHU_API_KEY (platform.deepseek.com → API keys)")


def test_openai_variables_in_dotenv_reach_the_endpoint(tmp_path):
    with FakeOpenAI(reply=reply) as server:
        (tmp_path / ".env").write_text(f"OPENAI_API_KEY=sk-from-dotenv-0000\nOPENAI_BASE_URL={server.base_url}\n"
                                       f"ZAOSHU_MODEL=fake-model\n", encoding="utf-8")
        cmd, env, cwd = command(tmp_path, server, "--config", str(tianji_yaml(tmp_path)), "--limit", "1", "--out", "run")
        env = {k: v for k, v in env.items() if k not in ("ZAOSHU_BASE_URL", "ZAOSHU_MODEL")}
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        auth = {r.headers.get("authorization") or r.headers.get("Authorization") for r in server.requests}
    assert auth == {"Bearer sk-from-dotenv-0000"} and len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) == 1


def test_piped_output_keeps_paths_and_the_resume_command_on_one_line(tmp_path, monkeypatch):
    """Not a terminal (a pipe, a CI log): rich once wrapped at 80 columns, and the pasted command failed."""
    monkeypatch.delenv("COLUMNS", raising=False)
    config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日", "春节"])
    done_out = tmp_path / "a-folder-with-a-long-name-for-the-runs" / "tianji-done"
    stopped_out = tmp_path / "a-folder-with-a-long-name-for-the-runs" / "tianji-stopped"
    with FakeOpenAI(reply=reply) as server:
        done = run(tmp_path, server, "--config", str(config), "--out", str(done_out))
        stopped = run(tmp_path, server, "--config", str(config), "--out", str(stopped_out), "--concurrency", "1",
                      "--budget", "1 tokens")
        plan = run(tmp_path, server, "--config", str(config), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("done (completed): accepted ")
    assert done.stdout.splitlines()[-1].endswith(f" → {done_out}/accepted.jsonl")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1] == (f"resume with: python -m recipes.tianji --config {config} --out "
                                               f"{stopped_out} --concurrency 1")  # the cap is spent: it is left out
    widest_prompt = max(len(line) for line in plan.stdout.splitlines() if line.startswith("│"))
    assert widest_prompt < 300  # a prompt's panel fits its text, not the wide console's 10,000 columns


def test_the_budget_caps_the_whole_run_its_earlier_sessions_included(tmp_path):
    """Rerunning a stopped run with the same --budget spends nothing more: a cap that began again with every
    session would let a resumed run spend it again."""
    config = tianji_yaml(tmp_path)
    out = tmp_path / "run"
    with FakeOpenAI(reply=reply) as server:
        first = run(tmp_path, server, "--config", str(config), "--out", str(out), "--concurrency", "1",
                    "--budget", "600 tokens")
        calls, spent = len(server.requests), json.loads((out / "stats.json").read_text(encoding="utf-8"))
        again = run(tmp_path, server, "--config", str(config), "--out", str(out), "--concurrency", "1",
                    "--budget", "600 tokens")
        assert len(server.requests) == calls  # not one more call
        more = run(tmp_path, server, "--config", str(config), "--out", str(out), "--concurrency", "1",
                   "--budget", "100k tokens")
    total = spent["input_tokens"] + spent["output_tokens"]
    assert first.returncode == again.returncode == more.returncode == 0, first.stderr + again.stderr + more.stderr
    assert total >= 600 and spent["accepted"] + spent["rejected"] == 1  # the first item spent the cap
    assert f"budget 600 tokens reached: this run has spent {total:,} tokens, earlier sessions included" in again.stdout
    assert "--budget" not in again.stdout.splitlines()[-1]
    assert more.stdout.splitlines()[-1].startswith("done (completed): ")
    assert json.loads((out / "stats.json").read_text(encoding="utf-8"))["sessions"] == 3


def test_the_budget_holds_per_call_and_the_items_it_cut_short_are_redone_once(tmp_path):
    """--budget was checked only as items finished, so the items in flight ran to their end: capped at 1k
    tokens, 8 tianji items in flight spent ~10k. Now no call starts once the cap is spent: the run spends
    at most the cap and the 8 calls in flight, and the items cut short are in no ledger (not rejected,
    not duplicated): the resume makes each item once."""
    with FakeOpenAI(reply=reply, latency=0.05) as server:
        capped = run(tmp_path, server, "--out", "run", "--limit", "24", "--budget", "1k tokens")
        stats = json.loads((tmp_path / "run/stats.json").read_text(encoding="utf-8"))
        calls = list(server.requests)
        resumed = run(tmp_path, server, "--out", "run", "--limit", "24")
    assert capped.returncode == 0, capped.stderr
    spent = stats["input_tokens"] + stats["output_tokens"]
    assert spent == sum(call.tokens for call in calls)  # the calls in flight at the stop finished and count
    assert 1000 <= spent <= 1000 + 8 * max(call.tokens for call in calls)  # 8 items in flight, one call each
    assert (f"budget: budget 1000 tokens reached: this run has spent {spent:,} tokens, earlier sessions included; "
            f"the command below goes on without a cap, add --budget above that to keep one") in capped.stdout
    assert capped.stdout.splitlines()[-1] == "resume with: python -m recipes.tianji --out run --limit 24"
    assert stats["accepted"] + stats["rejected"] + stats["failed"] < 8  # the items cut short: in no ledger
    assert resumed.returncode == 0 and resumed.stdout.splitlines()[-1].startswith("done (completed): accepted 24 ")
    ids = [r["id"] for name in ("accepted.jsonl", "rejected.jsonl") for r in read_jsonl(tmp_path / "run" / name)]
    assert len(ids) == len(set(ids)) == 24


def test_calls_cancelled_in_flight_at_a_stop_are_counted_and_said(tmp_path):
    """--target (like a pause, a fatal error or Ctrl-C) cancels the items in flight, and with them requests
    the endpoint has received and may bill: stats.json counted none of them and nothing said so (an emollm
    pause: 72,761 tokens counted, 77,885 served). Now every request sent is counted, as a call or as a call
    cancelled in flight, and the run's closing lines and `runs show` say how many were cancelled."""
    from tests.test_cli import zaoshu

    with FakeOpenAI(reply=reply, latency=0.3) as server:
        done = run(tmp_path, server, "--out", "run", "--limit", "24", "--target", "2", env={"ZAOSHU_MAX_REQUESTS": "3"})
        received = len(server.requests)
    assert done.returncode == 0, done.stderr
    roles = json.loads((tmp_path / "run/stats.json").read_text(encoding="utf-8"))["usage_by_role"]
    counted = sum(u["calls"] for u in roles.values())
    cancelled = sum(u.get("cancelled", 0) for u in roles.values())
    assert received > counted  # requests the endpoint got that no call count holds
    assert counted + cancelled >= received and cancelled > 0
    assert (f"{cancelled} LLM calls cancelled in flight when the run stopped: the endpoint may bill them, "
            "and their tokens are not in the counts or cost") in done.stdout
    shown = zaoshu("runs", "show", str(tmp_path / "run"))
    assert f"{cancelled} LLM calls cancelled in flight (stops, Ctrl-C): possibly billed" in shown.stdout


def test_a_sigterm_stops_cleanly_and_is_named_not_called_a_ctrl_c(tmp_path):
    """`kill PID` (or a shutdown, a scheduler's timeout) stops a run as Ctrl-C does, and says so: the
    closing line read 'stopped by Ctrl-C' though nobody pressed a key."""
    config = tianji_yaml(tmp_path)
    with FakeOpenAI(reply=reply, latency=0.3) as server:
        proc = started_until(tmp_path, server, config,
                             lambda: len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) >= 1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: stopped by SIGTERM (a kill, or the machine shutting down)" in out
    assert "Ctrl-C" not in out and "resume with: python -m recipes.tianji" in out
    stats = json.loads((tmp_path / "run/stats.json").read_text(encoding="utf-8"))
    assert stats["status"] == "interrupted" and stats["accepted"] == len(list(read_jsonl(tmp_path / "run/accepted.jsonl")))


def test_a_killed_session_leaves_its_spending_and_counts_in_stats(tmp_path):
    """kill -9 gives no chance to write stats.json at the end: it is kept current as items finish, so
    `runs show` counts what the ledgers hold and --budget counts what the killed session spent."""
    config = tianji_yaml(tmp_path)
    with FakeOpenAI(reply=reply, latency=0.3) as server:
        first = started_until(tmp_path, server, config,
                              lambda: len(list(read_jsonl(tmp_path / "run/accepted.jsonl"))) >= 2)
        try:
            time.sleep(0.2)
        finally:
            first.kill()
            first.communicate(timeout=30)
        stats = json.loads((tmp_path / "run/stats.json").read_text(encoding="utf-8"))
        accepted = len(list(read_jsonl(tmp_path / "run/accepted.jsonl")))
        assert stats["accepted"] == accepted >= 2
        from tests.test_cli import zaoshu

        shown = zaoshu("runs", "show", str(tmp_path / "run"))
        assert f"status stopped (its process ended without closing; rerun to resume)  accepted {accepted}" \
            in shown.stdout, shown.stdout + shown.stderr
        spent = stats["input_tokens"] + stats["output_tokens"]
        assert spent > 0 and stats["usage_by_role"]["responder"]["calls"] >= 2
        calls = len(server.requests)
        again = run(tmp_path, server, "--config", str(config), "--out", "run", "--concurrency", "1",
                    "--budget", f"{spent} tokens")
        assert len(server.requests) == calls, again.stdout  # the killed session's spending counts
    assert again.returncode == 0 and "budget" in again.stdout


def test_a_torn_ledger_line_is_skipped_and_named_by_runs_show_as_export_does(tmp_path):
    """A line of accepted.jsonl cut short (the last one, by a crash) made `runs show` refuse the whole run
    while `zaoshu export` skipped it and said so: both count the good lines and name the line skipped."""
    from tests.test_cli import zaoshu

    with FakeOpenAI(reply=reply) as server:
        made = run(tmp_path, server, "--config", str(tianji_yaml(tmp_path)), "--out", "run")
    assert made.returncode == 0, made.stderr
    ledger = tmp_path / "run/accepted.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    assert len(lines) == 6
    torn = b"".join(lines[:-1]) + lines[-1][:len(lines[-1]) // 2]
    ledger.write_bytes(torn)

    shown = zaoshu("runs", "show", "run", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    (warning,) = [line for line in shown.stdout.splitlines() if line.startswith("warning:")]
    assert warning.startswith("warning: run/accepted.jsonl: line 6: invalid JSON (") and warning.endswith(" (skipped)")
    summary = json.loads(zaoshu("runs", "show", "run", "--json", cwd=tmp_path).stdout)
    assert summary["skipped"] == [warning.removeprefix("warning: ").removesuffix(" (skipped)")]
    assert sum(n for value, n in summary["by"]["role"].items() if value.endswith("(accepted)")) == 5
    exported = zaoshu("export", "run", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.splitlines()[0] == warning and "all: 5 records" in exported.stdout
    assert ledger.read_bytes() == torn  # a reader leaves the ledger as it found it


def test_a_reviewed_runs_torn_lines_in_rejected_and_review_ledgers_are_skipped_and_named_by_export(tmp_path):
    """Export of a reviewed run read rejected.jsonl strictly (for the rejects the reviewer accepted): a torn
    last line there stopped it; a torn last line of review.jsonl (the review page killed) was dropped unsaid."""
    from tests.test_cli import zaoshu

    def picky(req):  # the critic rejects both 春节 greetings
        if "- decision" in req.system and "春节" in req.text:
            return {**ACCEPT, "decision": "reject", "reason_codes": ["STYLE_MISMATCH"], "reasons": ["太随意"]}
        return reply(req)

    with FakeOpenAI(reply=picky) as server:
        made = run(tmp_path, server, "--config", str(tianji_yaml(tmp_path)), "--out", "run")
    assert made.returncode == 0, made.stderr
    accepted = [r["id"] for r in read_jsonl(tmp_path / "run/accepted.jsonl")]
    rejected = tmp_path / "run/rejected.jsonl"
    lines = rejected.read_bytes().splitlines(keepends=True)
    assert len(accepted) == 4 and len(lines) == 2
    rejected.write_bytes(lines[0] + lines[1][:len(lines[1]) // 2])
    decisions = [{"id": json.loads(lines[0])["id"], "action": "accept", "rev": 1, "base_rev": 0},
                 {"id": accepted[0], "action": "reject", "reason": "STYLE_MISMATCH", "rev": 1, "base_rev": 0}]
    review = tmp_path / "run/review.jsonl"
    review.write_text("".join(json.dumps(d) + "\n" for d in decisions) + '{"id": "' + accepted[1] + '", "act',
                      encoding="utf-8")
    before = {p: p.read_bytes() for p in (rejected, review)}

    skipped = ["warning: run/rejected.jsonl: line 2: invalid JSON", "warning: run/review.jsonl: line 3: invalid JSON"]
    exported = zaoshu("export", "run", "--keep-meta", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    out = exported.stdout.splitlines()
    assert sorted(line.split(" (")[0] for line in out if line.startswith("warning:")) == skipped
    assert ("review.jsonl: 0 edited, 1 rejected by the reviewer (dropped), 1 rejected samples accepted by the "
            "reviewer (added)") in out
    assert "all: 4 records → run/exports/xtuner/all.jsonl" in out
    records = [json.loads(line) for line in (tmp_path / "run/exports/xtuner/all.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted([*accepted[1:], decisions[0]["id"]])
    kto = zaoshu("export", "run", "--format", "kto", cwd=tmp_path)  # reads rejected.jsonl itself too: named once
    assert kto.returncode == 0, kto.stderr
    assert sorted(line.split(" (")[0] for line in kto.stdout.splitlines() if line.startswith("warning:")) == skipped
    assert {p: p.read_bytes() for p in before} == before  # a reader leaves the ledgers as it found them


def test_a_dry_run_leaves_a_torn_ledger_byte_for_byte_and_the_next_run_repairs_it(tmp_path):
    """--dry-run opened the run folder as the run does and cut a torn last line off accepted.jsonl: a look
    must not write to a folder another process may be writing. The run itself still cuts it and redoes the item."""
    def folder() -> dict[str, bytes | None]:
        return {str(p.relative_to(tmp_path)): p.read_bytes() if p.is_file() else None
                for p in sorted((tmp_path / "run").rglob("*"))}

    config = tianji_yaml(tmp_path)
    with FakeOpenAI(reply=reply) as server:
        assert run(tmp_path, server, "--config", str(config), "--out", "run").returncode == 0
        ledger = tmp_path / "run/accepted.jsonl"
        lines = ledger.read_bytes().splitlines(keepends=True)
        ledger.write_bytes(b"".join(lines[:-1]) + lines[-1][:len(lines[-1]) // 2])
        before = folder()
        plan = run(tmp_path, server, "--config", str(config), "--out", "run", "--dry-run")
        assert plan.returncode == 0, plan.stderr
        assert "dry run: 1 work items to run (5 already finished)" in plan.stdout
        assert folder() == before
        again = run(tmp_path, server, "--config", str(config), "--out", "run")
    assert again.returncode == 0, again.stderr
    assert "(1 of 6 items to run)" in again.stdout
    ids = [r["id"] for r in read_jsonl(ledger)]  # every line whole again
    assert len(ids) == len(set(ids)) == 6


def test_ctrl_c_before_the_run_starts_says_how_to_go_on(monkeypatch, capsys):
    import graphs.execute
    from recipes.base import recipe_app, run_cli
    from recipes.tianji.recipe import Tianji

    def interrupted(recipe, request):  # Ctrl-C while the index is built or the recipe's exports are written
        raise KeyboardInterrupt

    monkeypatch.setattr(graphs.execute, "execute", interrupted)
    monkeypatch.setattr(sys, "argv", ["recipes.tianji", "--limit", "1"])
    with pytest.raises(SystemExit) as exited:
        run_cli(recipe_app(Tianji(), "tianji"))
    assert exited.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted: rerun the same command to go on"


def test_a_fresh_run_started_in_the_same_second_as_another_gets_its_own_folder(tmp_path):
    """Run folders are named by the second they start in; a second run in that second must not write into the first."""
    now = time.time()
    taken = [tmp_path / "runs/tianji" / time.strftime("%Y%m%d-%H%M%S", time.localtime(now + s)) for s in range(-1, 30)]
    for folder in taken:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stats.json").write_text('{"recipe": "tianji", "fingerprint": "another"}', encoding="utf-8")
        (folder / "accepted.jsonl").write_text('{"id": "theirs"}\n', encoding="utf-8")
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(tianji_yaml(tmp_path, scenes=["生日"])), "--fresh")
    assert result.returncode == 0, result.stderr + result.stdout
    made = tmp_path / re.search(r"→ (runs/tianji/\S+)", result.stdout).group(1)
    assert made not in taken and "(2 of 2 items to run)" in result.stdout and (made / "stats.json").exists()
    assert all((folder / "accepted.jsonl").read_text(encoding="utf-8") == '{"id": "theirs"}\n' for folder in taken)


@pytest.mark.parametrize("recipe, changes, key", [
    ("wulewule", {"multi_turn": {"every": 1, "turns": [4, 2]}}, "multi_turn.turns"),  # a ValueError traceback
    ("emollm", {"turns": [5, 2]}, "turns"),  # one line, but once the run folder was made: fixing it was refused
])
def test_a_turn_range_upside_down_is_one_line_before_the_run_folder(tmp_path, recipe, changes, key):
    config = recipe_yaml(tmp_path, recipe, **changes)
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(config), "--out", "run", "--limit", "1", recipe=recipe)
    assert result.returncode == 1 and not (tmp_path / "run").exists()
    assert result.stderr.strip() == (f"error: {config}: key '{key}': Input should be a range [low, high] with "
                                     f"1 ≤ low ≤ high, e.g. [2, 4]")


@pytest.mark.parametrize("recipe, changes, items, warning", [
    ("emollm", {"areas": ["工作", "学业 ", "工作", "学业"], "emotions": ["焦虑", "同情", "同情"]}, 4,
     "areas listed more than once, de-duplicated: 工作、学业 (4 entries → 2 areas)"),
    ("tianji", {"roles": [{"name": "奶奶 ", "relation": "elder"}, "奶奶"], "scenes": ["生日", " 生日", "春节"]}, 2,
     "roles listed more than once, de-duplicated: 奶奶 (2 entries → 1 roles)"),
])
def test_a_label_listed_twice_or_with_spaces_is_one_item(tmp_path, recipe, changes, items, warning):
    """Only emollm's emotions were de-duplicated: an area, role or scene listed twice made two items of one id
    (the second written to the ledger again), and '学业 ' with its space another cell (seed: '工作升职 ')."""
    config = tianji_yaml(tmp_path, **changes) if recipe == "tianji" else recipe_yaml(tmp_path, recipe, **changes)
    result = run(tmp_path, CLOSED, "--config", str(config), "--dry-run", recipe=recipe, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"dry run: {items} work items" in result.stdout
    assert warning in result.stderr


@pytest.mark.parametrize("recipe, key, value, where", [
    ("emollm", "areas", ["工作", " "], "areas.1"),
    ("tianji", "scenes", ["生日", ""], "scenes.1"),
    ("tianji", "roles", [{"name": "", "relation": "elder"}], "roles.0.Role.name"),
])
def test_a_blank_label_is_one_line_before_any_call(tmp_path, recipe, key, value, where):
    """A blank area made items about nothing that were accepted and exported to by_scene/_/."""
    config = tianji_yaml(tmp_path, **{key: value}) if recipe == "tianji" else recipe_yaml(tmp_path, recipe, **{key: value})
    result = run(tmp_path, CLOSED, "--config", str(config), "--dry-run", recipe=recipe, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {config}: key '{where}'")
    assert "not be blank" in result.stderr


@pytest.mark.parametrize("recipe", ["emollm", "wulewule"])
@pytest.mark.parametrize("self_cognition, says", [
    ({"name": "心晴", "questions": ["你是谁？"], "answers": ["我是{nam}。"]}, "unknown placeholder {nam} in '我是{nam}。'"),
    ({"name": "心晴", "questions": ["你是谁？"], "answers": ["我是{name。"]}, "in '我是{name。'"),
    ({"name": "心晴", "questions": ["你是谁？"], "answers": []}, "self_cognition has questions but no answers"),
])
def test_a_self_cognition_answer_that_cannot_be_filled_is_one_line_before_the_run_folder(tmp_path, recipe,
                                                                                         self_cognition, says):
    """A typo in an answer template ({nam}) passed --dry-run, then ended the run in a KeyError traceback as it
    wrote the records, leaving its run folder 'preparing'; answers: [] was caught there too, after the folder."""
    config = recipe_yaml(tmp_path, recipe, self_cognition=self_cognition)
    for args in (["--dry-run"], []):
        result = run(tmp_path, CLOSED, "--config", str(config), "--limit", "1", "--out", "o", *args, recipe=recipe,
                     timeout=60)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: {config}: key 'self_cognition")
        assert says in result.stderr
        assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("prompts, says", [
    ({"STYLED_REPLY_PROMT": "写一段祝福：{request}"}, "unknown prompt 'STYLED_REPLY_PROMT' — did you mean "
                                                    "'STYLED_REPLY_PROMPT'?"),
    ({"STYLED_REPLY_PROMPT": "写{foo}"}, "STYLED_REPLY_PROMPT uses unknown placeholders ['foo']; available: "),
    ({"STYLED_REPLY_PROMPT": "写{request"}, "STYLED_REPLY_PROMPT: expected '}' before end of string"),
])
def test_a_wrong_prompt_override_is_one_line_before_the_run_folder(tmp_path, prompts, says):
    """A misspelt prompt name was ignored without a word (the built-in prompt ran); an unknown placeholder
    stopped the run as 'fatal' at its first item, after the folder was made, saying 'resume with' a command
    that could not help."""
    config = tianji_yaml(tmp_path, prompts=prompts)
    result = run(tmp_path, CLOSED, "--config", str(config), "--limit", "1", "--out", "o", timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {config}: key 'prompts': {says}")
    assert not (tmp_path / "o").exists()


def test_an_input_template_with_a_typo_is_one_line_not_a_traceback_or_failed_items(tmp_path):
    """input_templates: ['祝{rol}{scene}'] ended --dry-run in a KeyError traceback, and a run marked every
    item it fell to 'failed' after paying for nothing."""
    config = tianji_yaml(tmp_path, input_templates=["祝{rol}{scene}"])
    for args in (["--dry-run"], []):
        result = run(tmp_path, CLOSED, "--config", str(config), "--limit", "1", "--out", "o", *args, timeout=60)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1] == (
            f"error: {config}: key 'input_templates': unknown placeholder {{rol}} in '祝{{rol}}{{scene}}': "
            "the placeholders are {role} and {scene} (write a brace itself as {{ or }})")
        assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("recipe, key", [("emollm", "turn_length"), ("wulewule", "answer_length")])
@pytest.mark.parametrize("value", [[200, 10], [0, 0]])
def test_a_length_range_no_text_can_meet_is_one_line_before_any_call(tmp_path, recipe, key, value):
    """turn_length: [200, 10] (or [0, 0]) ran every dialogue and rejected each one TOO_SHORT / TOO_LONG after it
    was paid for; tianji's style ranges were checked, these were not."""
    config = recipe_yaml(tmp_path, recipe, **{key: value})
    result = run(tmp_path, CLOSED, "--config", str(config), "--limit", "1", "--out", "o", recipe=recipe, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {config}: key '{key}': Input should be a range [min, max] of characters with 0 ≤ min ≤ max and "
        f"max ≥ 1, e.g. [20, 300], not {value}")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("styles, says", [
    ({"小红书": {"suffix": "，小红书风格", "max_chars": 10}},
     "style 小红书: min_chars 15 is above max_chars 10 (min_chars is the style's default where the YAML sets none)"),
    ({"幽默": {"suffix": "，幽默风格", "min_chars": 3000}},
     "style 幽默: min_chars 3000 is above max_chars 2000 (max_chars is the style's default where the YAML sets none)"),
])
def test_a_style_bound_that_crosses_its_default_is_one_line_before_any_call(tmp_path, styles, says):
    """Only a style setting both bounds was checked: `max_chars: 10` alone on 小红书 (default minimum 15) rejected
    every wish of the style TOO_SHORT or TOO_LONG after it was paid for."""
    config = tianji_yaml(tmp_path, styles=styles)
    result = run(tmp_path, CLOSED, "--config", str(config), "--limit", "1", "--out", "o", timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {config}: key 'styles': {says}: no wish can meet it"
    assert not (tmp_path / "o").exists()


def test_min_chars_zero_lets_a_short_wish_through(tmp_path):
    """`min_chars: 0` was read as 'not set' (`or`), so the style's default minimum (10) rejected a short wish."""
    def short(req):
        return ACCEPT if "- decision" in req.system else {"text": "祝您生日快乐！"}

    styles = {"正常": {"suffix": "", "min_chars": 0, "max_chars": 120}}
    config = tianji_yaml(tmp_path, styles=styles, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"])
    with FakeOpenAI(reply=short) as server:
        result = run(tmp_path, server, "--config", str(config), "--out", "o", "--judge", "off", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "accepted 1 · rejected 0" in result.stdout
    assert [s["turns"][0]["output"] for s in read_jsonl(tmp_path / "o" / "accepted.jsonl")] == ["祝您生日快乐！"]


def test_an_exclusion_naming_no_listed_scene_is_warned_about(tmp_path):
    """compat_exclusions with a typo (生曰 for 生日) excluded nothing, without a word: the run made and paid
    for the very cells the user had excluded."""
    config = tianji_yaml(tmp_path, compat_exclusions=[{"role": "奶奶", "scene": "生曰", "reason": "测试"}])
    result = run(tmp_path, CLOSED, "--config", str(config), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert ("compat_exclusions 1 (奶奶 × 生曰): scene '生曰' is not in scenes, so it excludes nothing — did you "
            "mean '生日'?") in result.stderr
    assert "dry run: 6 work items" in result.stdout


@pytest.mark.parametrize("out", ["notes.txt", "notes.txt/run"])
def test_an_out_that_is_a_file_is_one_line(tmp_path, out):
    """`--out` naming a file (or a folder under one) ended in a FileExistsError / NotADirectoryError traceback."""
    (tmp_path / "notes.txt").write_text("mine\n", encoding="utf-8")
    for args in (["--dry-run"], []):
        result = run(tmp_path, CLOSED, "--config", str(tianji_yaml(tmp_path)), "--out", out, *args, timeout=60)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip() == f"error: --out {out}: notes.txt is a file, not a folder: choose another --out"
        assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine\n"
