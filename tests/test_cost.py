"""What a run costs: cached prompt tokens as providers report them, their price, and the JSON modes
(json_schema / json_object / prompt) with the fallback when a server refuses `response_format`."""

import logging

import pytest
from pydantic import BaseModel, Field

from agents.llm import Usage, make_client
from agents.settings import load_settings
from agents.structured import ask_structured
from tests.fake_openai import FakeOpenAI

GOOD = '{"questions": ["天命人是谁？"]}'
SYSTEM = "你是出题人。" + "请只问关于《黑神话：悟空》的问题，简短自然。" * 20


class Questions(BaseModel):
    questions: list[str] = Field(description="问题列表")


def cfg(server, role="asker", **cli):
    return load_settings(cli={"base_url": server.base_url, "model": "fake-model", "max_retries": 0, **cli},
                         env_file=None).for_role(role)


def messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


@pytest.mark.parametrize("shape", ["deepseek", "openai"])
@pytest.mark.parametrize("backend", ["http", "langchain"])
async def test_cached_tokens_are_read_from_both_reply_shapes_and_priced_cheaper(shape, backend):
    with FakeOpenAI(reply=lambda req: GOOD, cache_usage=shape) as server:
        usage = Usage()
        client = make_client(cfg(server, price_input_per_1k=2.0, price_input_cached_per_1k=0.2,
                                 price_output_per_1k=3.0), backend=backend, usage=usage)
        first = await client.chat(messages("第一个问题"))
        second = await client.chat(messages("第二个问题"))
    if backend == "langchain" and shape == "deepseek":
        # ChatOpenAI reads only OpenAI's shape; DeepSeek's fields need the http backend (the default)
        assert second.cached_tokens == 0
        return
    assert first.cached_tokens == 0
    # the fake server counts one token per two characters; the system prompt and "第" are shared
    shared = (len(SYSTEM) + 1) // 2
    assert second.cached_tokens == shared
    role = usage.roles["asker"]
    assert role.calls == 2 and role.cached_tokens == shared
    expected = ((first.input_tokens + second.input_tokens - shared) * 2.0 + shared * 0.2
                + (first.output_tokens + second.output_tokens) * 3.0) / 1000
    assert role.cost == pytest.approx(expected)
    assert role.cost < (first.input_tokens + second.input_tokens) * 2.0 / 1000 + role.output_tokens * 3.0 / 1000


def test_preset_prices_apply_to_the_preset_model_only():
    deepseek = load_settings(cli={"preset": "deepseek"}, env_file=None).for_role("critic")
    assert (deepseek.price_input_per_1k, deepseek.price_input_cached_per_1k) == (0.002, 0.0002)
    other = load_settings(cli={"preset": "deepseek", "model": "deepseek-reasoner"}, env_file=None).for_role("critic")
    assert other.price_input_per_1k == 0.0 and other.price_input_cached_per_1k is None
    assert load_settings(cli={"preset": "openai"}, env_file=None).for_role("asker").json_mode == "json_schema"


@pytest.mark.parametrize(("mode", "sent"), [("json_object", {"type": "json_object"}), ("prompt", None),
                                            ("json_schema", "json_schema")])
async def test_each_json_mode_sends_its_response_format(mode, sent):
    with FakeOpenAI(reply=lambda req: GOOD) as server:
        result = await ask_structured(make_client(cfg(server, json_mode=mode)), messages("问"), Questions)
    assert result.ok and result.value.questions == ["天命人是谁？"]
    body = server.requests[0].body
    if sent == "json_schema":
        schema = body["response_format"]["json_schema"]
        assert schema["name"] == "Questions" and schema["strict"] is True
        assert schema["schema"]["required"] == ["questions"] and schema["schema"]["additionalProperties"] is False
    else:
        assert body.get("response_format") == sent
    assert "questions" in server.requests[0].system  # the schema is described in every mode


async def test_role_override_of_the_json_mode_from_the_environment(monkeypatch):
    monkeypatch.setenv("ZAOSHU_JSON_MODE", "json_schema")
    monkeypatch.setenv("ZAOSHU_CRITIC__JSON_MODE", "prompt")
    settings = load_settings(env_file=None)
    assert settings.for_role("asker").json_mode == "json_schema"
    assert settings.for_role("critic").json_mode == "prompt"


async def test_a_server_that_refuses_response_format_gets_prompt_mode_once_and_for_good(caplog):
    with FakeOpenAI(reply=lambda req: GOOD, reject_formats={"json_object"}) as server:
        client = make_client(cfg(server))
        with caplog.at_level(logging.WARNING, logger="agents.llm"):
            first = await ask_structured(client, messages("问一"), Questions)
            second = await ask_structured(client, messages("问二"), Questions)
    assert first.ok and second.ok
    formats = [r.body.get("response_format") for r in server.requests]
    assert formats == [{"type": "json_object"}, None, None]  # refused once, then prompt mode for this client
    assert client.json_mode == "prompt"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "refused response_format json_object" in warnings[0]


@pytest.mark.parametrize("status", [422, 500])
async def test_a_validation_error_naming_response_format_is_a_refusal_not_a_server_fault(status, caplog):
    """llama-cpp-python's server (the one FINDINGS.md runs) answers json_schema with a 500 whose body is a
    validation error on `response_format.type`: it was retried 5 times as a server fault and the item
    failed. It is the same refusal as a 400: one request more, in prompt mode, and that mode from then on."""
    with FakeOpenAI(reply=lambda req: GOOD, reject_formats={"json_schema"}, reject_status=status) as server:
        client = make_client(cfg(server, json_mode="json_schema"))
        with caplog.at_level(logging.WARNING, logger="agents.llm"):
            first = await ask_structured(client, messages("问一"), Questions)
            second = await ask_structured(client, messages("问二"), Questions)
    assert first.ok and second.ok
    assert [(r.body.get("response_format") or {}).get("type") for r in server.requests] == ["json_schema", None, None]
    assert client.json_mode == "prompt"


async def test_a_plain_400_is_not_mistaken_for_a_refused_format():
    from agents.llm_errors import FormatRejected, LLMError

    with FakeOpenAI(reply=lambda req: GOOD, reject_formats={"json_object"}) as server:
        client = make_client(cfg(server, json_mode="prompt"))
        result = await ask_structured(client, messages("问"), Questions)  # prompt mode never sends it
        assert result.ok
        assert issubclass(FormatRejected, LLMError)


# ---- through the recipe command ----------------------------------------------------------------

def _tianji(tmp_path, server, *args, env=None):
    from tests.test_recipe_cli import run, tianji_yaml

    config = tianji_yaml(tmp_path, variants_per_cell=2)  # 2 roles × 3 scenes × 1 style × 2 = 12 items
    return run(tmp_path, server, "--config", str(config), "--out", "run", "--concurrency", "1", *args, env=env)


def test_a_model_that_never_writes_valid_json_pauses_the_run_after_ten_items(tmp_path):
    import json

    with FakeOpenAI(reply=lambda req: "好的，这是祝福语：祝您生日快乐！") as server:
        result = _tianji(tmp_path, server)
        calls = len(server.requests)
    assert result.returncode == 1, result.stdout + result.stderr
    rejected = (tmp_path / "run/rejected.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rejected) == 10 and calls == 30  # 10 items × 3 attempts; the other 2 items were never sent
    paused = [line for line in result.stdout.splitlines() if line.startswith("paused")]
    assert paused == [f"paused: the first 10 items were all rejected with FORMAT: the model does not follow JSON "
                      f"mode: try another model, or ZAOSHU_JSON_MODE=prompt (schema in the prompt only, tolerant "
                      f"parsing; per role ZAOSHU_<ROLE>__JSON_MODE). One raw example: run/rejected.jsonl line 1. "
                      f"Rerunning the same command goes on with the next items and leaves these 10 rejected, also "
                      f"with ZAOSHU_JSON_MODE or any other ZAOSHU_ variable changed; to try every item again, start "
                      f"over with --fresh (with --out: a new folder). Add --keep-going to run the rest without "
                      f"pausing."]
    first = json.loads(rejected[0])
    assert first["codes"] == ["FORMAT"] and first["raw"] == "好的，这是祝福语：祝您生日快乐！"
    stats = json.loads((tmp_path / "run/stats.json").read_text(encoding="utf-8"))
    assert stats["status"] == "paused" and stats["accepted"] == 0 and stats["per_accepted"] is None


def test_after_a_pause_a_rerun_goes_on_with_the_next_items_and_fresh_starts_over(tmp_path):
    """The pause said "Rerun the same command to go on checking": a rerun with ZAOSHU_JSON_MODE=prompt left
    the first K items rejected, and the message never named --fresh, which runs them again."""
    from graphs.failfast import HINTS
    from graphs.ledger import read_jsonl
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import run, tianji_yaml

    args = ("--config", str(tianji_yaml(tmp_path)), "--concurrency", "1", "--fail-fast", "3")  # 6 items

    def critic_without_json(req):
        return "这条祝福语很好，可以接受。" if "- decision" in req.system else reply(req)

    with FakeOpenAI(reply=critic_without_json) as server:
        paused = run(tmp_path, server, *args)
    (folder,) = (tmp_path / "runs/tianji").iterdir()
    assert paused.returncode == 1, paused.stdout + paused.stderr
    assert [line for line in paused.stdout.splitlines() if line.startswith("paused")] == [
        f"paused: the first 3 items were all rejected with FORMAT: {HINTS['FORMAT']}. One raw example: "
        f"{folder.relative_to(tmp_path)}/rejected.jsonl line 1. Rerunning the same command goes on with the next "
        f"items and leaves these 3 rejected, also with ZAOSHU_JSON_MODE or any other ZAOSHU_ variable changed; to "
        f"try every item again, start over with --fresh (with --out: a new folder). Add --keep-going to run the "
        f"rest without pausing."]
    rejected = list(read_jsonl(folder / "rejected.jsonl"))
    assert len(rejected) == 3 and {c for r in rejected for c in r["codes"]} == {"FORMAT"}

    with FakeOpenAI(reply=reply) as server:
        again = run(tmp_path, server, *args, env={"ZAOSHU_JSON_MODE": "prompt"})
        fresh = run(tmp_path, server, *args, "--fresh")
    assert again.returncode == 0 and "(3 of 6 items to run)" in again.stdout, again.stdout + again.stderr
    assert list(read_jsonl(folder / "rejected.jsonl")) == rejected  # the 3 stay rejected
    assert len(list(read_jsonl(folder / "accepted.jsonl"))) == 3
    (new,) = set((tmp_path / "runs/tianji").iterdir()) - {folder}
    assert fresh.returncode == 0 and "(6 of 6 items to run)" in fresh.stdout, fresh.stdout + fresh.stderr
    assert len(list(read_jsonl(new / "accepted.jsonl"))) == 6


def test_keep_going_runs_every_item(tmp_path):
    with FakeOpenAI(reply=lambda req: "不是 JSON") as server:
        result = _tianji(tmp_path, server, "--keep-going")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "paused" not in result.stdout
    assert len((tmp_path / "run/rejected.jsonl").read_text(encoding="utf-8").splitlines()) == 12


def test_truncated_replies_name_the_max_tokens_variable(tmp_path):
    long_reply = '{"text": "' + "祝您生日快乐，" * 200 + '"}'
    with FakeOpenAI(reply=lambda req: long_reply) as server:
        result = _tianji(tmp_path, server, "--fail-fast", "4", env={"ZAOSHU_MAX_TOKENS": "50"})
    assert result.returncode == 1
    assert "the first 4 items were all rejected with TRUNCATED: every reply was cut at max_tokens: raise it, " \
           "e.g. ZAOSHU_MAX_TOKENS=2048" in result.stdout


def test_the_end_of_run_summary_shows_cost_per_accepted_sample(tmp_path):
    import json

    from tests.recipe_replies import reply

    env = {"ZAOSHU_PRICE_INPUT_PER_1K": "0.002", "ZAOSHU_PRICE_INPUT_CACHED_PER_1K": "0.0002",
           "ZAOSHU_PRICE_OUTPUT_PER_1K": "0.003"}
    with FakeOpenAI(reply=reply, cache_usage="deepseek") as server:
        result = _tianji(tmp_path, server, "--limit", "4", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    stats = json.loads((tmp_path / "run/stats.json").read_text(encoding="utf-8"))
    assert stats["accepted"] == 4
    per = stats["per_accepted"]
    roles = stats["usage_by_role"]
    assert per["all"]["calls"] == sum(r["calls"] for r in roles.values()) / 4
    assert per["responder"]["input_tokens"] == roles["responder"]["input_tokens"] / 4
    assert 0 < stats["cache_hit_share"] < 1 and stats["cached_tokens"] > 0
    assert per["all"]["cost"] == pytest.approx(stats["cost"] / 4, abs=1e-8)
    summary = result.stdout[result.stdout.index("per accepted sample"):]
    assert f"{per['all']['calls']:.2f} calls" in summary.splitlines()[0]
    assert any(line.strip().startswith("responder") for line in summary.splitlines()[1:4])


def test_the_dry_run_prices_the_cache_and_states_its_assumption(tmp_path):
    from tests.test_recipe_cli import run, tianji_yaml

    with FakeOpenAI() as server:
        result = run(tmp_path, server, "--config", str(tianji_yaml(tmp_path)), "--dry-run",
                     env={"ZAOSHU_PRICE_INPUT_PER_1K": "0.002", "ZAOSHU_PRICE_INPUT_CACHED_PER_1K": "0.0002",
                          "ZAOSHU_PRICE_OUTPUT_PER_1K": "0.003", "COLUMNS": "200"})
        assert not server.requests
    assert result.returncode == 0, result.stderr
    total = next(line for line in result.stdout.splitlines() if "total" in line)
    plain, cached = [float(x) for x in __import__("re").findall(r"¥([\d.]+)", total)]
    assert 0 < cached < plain
    assert "cache assumption: each role's stable prompt head" in result.stdout


def test_json_mode_per_role_from_the_recipe_yaml(tmp_path):
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import run, tianji_yaml

    config = tianji_yaml(tmp_path, llm={"json_mode": "json_schema", "critic": {"json_mode": "prompt"}})
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, server, "--config", str(config), "--out", "run", "--limit", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    sent = {("critic" if "- decision" in r.system else "responder", (r.body.get("response_format") or {}).get("type"))
            for r in server.requests}
    assert sent == {("responder", "json_schema"), ("critic", None)}


def plan_calls(stdout: str) -> dict[str, int]:
    """role → calls, from the dry run's table."""
    rows = [line.strip("│ ").split("│") for line in stdout.splitlines() if line.startswith("│")]
    return {cells[0].strip(): int(cells[1].strip().replace(",", "")) for cells in rows}


def test_the_dry_run_plans_no_critic_call_with_the_judge_off(tmp_path):
    """--judge off: the critic applies its rules and calls no model, yet the plan priced a critic call per item."""
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import run, tianji_yaml

    config = tianji_yaml(tmp_path)
    with FakeOpenAI(reply=reply) as server:
        plan = run(tmp_path, server, "--config", str(config), "--dry-run", "--judge", "off")
        done = run(tmp_path, server, "--config", str(config), "--out", "run", "--judge", "off")
        sent = len(server.requests)
    assert plan.returncode == 0 and done.returncode == 0, plan.stderr + done.stderr
    assert plan_calls(plan.stdout) == {"asker": 0, "responder": 6, "critic": 0, "total": 6}
    assert sent == 6  # what the run did
    assert "models: responder fake-model" in done.stdout and "critic fake-model" not in done.stdout
