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


async def test_a_plain_400_is_not_mistaken_for_a_refused_format():
    from agents.llm_errors import FormatRejected, LLMError

    with FakeOpenAI(reply=lambda req: GOOD, reject_formats={"json_object"}) as server:
        client = make_client(cfg(server, json_mode="prompt"))
        result = await ask_structured(client, messages("问"), Questions)  # prompt mode never sends it
        assert result.ok
        assert issubclass(FormatRejected, LLMError)
