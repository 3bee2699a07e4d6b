"""The LLM layer against a real local HTTP server: retries, fail-fast, timeouts, pacing, structured output."""

import asyncio
import time

import pytest
from pydantic import BaseModel, Field, SecretStr

from agents.limits import RateLimiter
from agents.llm import Usage, make_client, make_clients
from agents.llm_errors import LLMAuthError, LLMTimeout, LLMUnreachable
from agents.settings import load_settings
from agents.structured import ask_structured, parse_reply
from tests.fake_openai import Fault, FakeOpenAI


class Questions(BaseModel):
    questions: list[str] = Field(description="问题列表")


GOOD = '{"questions": ["天命人是谁？", "黄风岭在哪一回？"]}'
MSGS = [{"role": "system", "content": "你是出题人。"}, {"role": "user", "content": "就主要角色出两个问题。"}]


def cfg(role="asker", **cli):
    return load_settings(cli=cli, env_file=None).for_role(role)


@pytest.mark.parametrize("backend", ["http", "langchain"])
@pytest.mark.parametrize("reply", [
    GOOD,
    f"```json\n{GOOD}\n```",
    f"<think>用户要两个问题，我想想。</think>\n{GOOD}",
    f"好的，以下是 JSON：{GOOD}",
])
async def test_structured_accepts_clean_fenced_and_think_prefixed(fake_llm, backend, reply):
    fake_llm.reply = lambda req: reply
    client = make_client(cfg(), backend=backend)
    result = await ask_structured(client, MSGS, Questions)
    assert result.ok and result.attempts == 1
    assert result.value.questions == ["天命人是谁？", "黄风岭在哪一回？"]
    sent = fake_llm.requests[0]
    assert sent.json_mode  # JSON mode was asked for
    assert "questions" in sent.system and "JSON" in sent.system


async def test_structured_reasks_with_the_error_then_succeeds(fake_llm):
    replies = iter(['{"questions": "不是列表"}', GOOD])
    fake_llm.reply = lambda req: next(replies)
    result = await ask_structured(make_client(cfg()), MSGS, Questions)
    assert result.ok and result.attempts == 2
    reask = fake_llm.requests[1].messages
    assert reask[-2] == {"role": "assistant", "content": '{"questions": "不是列表"}'}
    assert "questions" in reask[-1]["content"] and "JSON" in reask[-1]["content"]


async def test_structured_always_invalid_is_recorded_not_raised(fake_llm):
    fake_llm.reply = lambda req: "我不会输出 JSON。"
    result = await ask_structured(make_client(cfg()), MSGS, Questions, attempts=3)
    assert not result.ok
    assert result.attempts == 3 and len(fake_llm.requests) == 3
    assert result.raw == "我不会输出 JSON。"
    assert "no JSON object" in result.error


@pytest.mark.parametrize("text", ["", "null", "[1, 2]", '{"questions": [1, {}]}', "{broken"])
def test_parse_reply_rejects_invalid(text):
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        parse_reply(text, Questions)


@pytest.mark.parametrize("backend", ["http", "langchain"])
async def test_429_retry_after_is_waited_out(fake_llm, backend):
    fake_llm.reply = lambda req: "好的。"
    fake_llm.fail_next(Fault("429", retry_after=0.6))
    start = time.monotonic()
    reply = await make_client(cfg(), backend=backend).chat(MSGS)
    assert reply.text == "好的。"
    assert time.monotonic() - start >= 0.6
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize("backend", ["http", "langchain"])
async def test_401_fails_fast_with_one_request(backend):
    with FakeOpenAI(api_key="sk-right") as server:
        c = load_settings(cli={"base_url": server.base_url, "model": "m"}, env_file=None).for_role("critic")
        c.api_key = SecretStr("sk-wrong")
        with pytest.raises(LLMAuthError, match="authentication failed \\(401\\).*ZAOSHU_API_KEY"):
            await make_client(c, backend=backend).chat(MSGS)
        assert len(server.requests) == 1  # no retry storm


@pytest.mark.parametrize("backend", ["http", "langchain"])
async def test_timeout_is_retried_then_reported(fake_llm, backend):
    fake_llm.fail_next(Fault("slow", delay=3), Fault("slow", delay=3))
    c = cfg(timeout=0.3, max_retries=1)
    with pytest.raises(LLMTimeout, match="timed out.*after 2 attempts"):
        await make_client(c, backend=backend).chat(MSGS)
    assert len(fake_llm.requests) == 2


async def test_timeout_then_success(fake_llm):
    fake_llm.fail_next(Fault("slow", delay=3))
    reply = await make_client(cfg(timeout=0.3)).chat(MSGS)
    assert reply.text == "好的。" and len(fake_llm.requests) == 2


@pytest.mark.parametrize("kind", ["500", "502", "503", "drop", "malformed"])
async def test_transient_faults_are_retried(fake_llm, kind):
    fake_llm.fail_next(Fault(kind))
    reply = await make_client(cfg()).chat(MSGS)
    assert reply.text == "好的。"
    assert len(fake_llm.requests) == 2


async def test_unreachable_endpoint_is_a_distinct_error():
    c = load_settings(cli={"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 1},
                      env_file=None).for_role("asker")
    with pytest.raises(LLMUnreachable, match="endpoint unreachable"):
        await make_client(c).chat(MSGS)


async def test_limiter_keeps_requests_at_or_under_rpm(fake_llm):
    c = cfg(rpm=240)  # one start every 0.25 s
    client = make_client(c)
    start = time.monotonic()
    await asyncio.gather(*(client.chat(MSGS) for _ in range(6)))
    elapsed = time.monotonic() - start
    assert elapsed >= 5 * 0.25 - 0.02
    assert len(fake_llm.requests) == 6


async def test_rate_limiter_window_counts(monkeypatch):
    """Starts are scheduled 60/rpm apart (checked on the waits it asks for, not on a loaded machine's clock)."""
    import agents.limits

    waits = []

    async def no_sleep(seconds):
        waits.append(seconds)

    monkeypatch.setattr(agents.limits.asyncio, "sleep", no_sleep)
    limiter = RateLimiter(rpm=600, clock=lambda: 100.0)  # 0.1 s apart; time stands still
    await asyncio.gather(*(limiter.acquire() for _ in range(10)))
    assert [0.0] + sorted(waits) == pytest.approx([round(0.1 * i, 6) for i in range(10)])


async def test_usage_is_counted_per_role_and_costed(fake_llm, monkeypatch):
    monkeypatch.setenv("ZAOSHU_PRICE_INPUT_PER_1K", "2")
    monkeypatch.setenv("ZAOSHU_PRICE_OUTPUT_PER_1K", "8")
    usage = Usage()
    clients = make_clients(load_settings(env_file=None), usage=usage)
    await clients["asker"].chat(MSGS)
    await clients["critic"].chat(MSGS)
    await clients["critic"].chat(MSGS)
    assert usage.roles["asker"].calls == 1 and usage.roles["critic"].calls == 2
    per_call_in = usage.roles["asker"].input_tokens
    assert per_call_in > 0 and usage.roles["critic"].input_tokens == 2 * per_call_in
    expected = 3 * (per_call_in * 2 + usage.roles["asker"].output_tokens * 8) / 1000
    assert usage.cost == pytest.approx(expected)


async def test_roles_on_one_endpoint_and_key_share_one_pacing_whatever_their_temperature(fake_llm, monkeypatch):
    monkeypatch.setenv("ZAOSHU_CRITIC__TEMPERATURE", "0")  # as .env.example suggests
    monkeypatch.setenv("ZAOSHU_CRITIC__MODEL", "judge-model")
    monkeypatch.setenv("ZAOSHU_RPM", "600")  # one start every 0.1 s for the account, not per role
    clients = make_clients(load_settings(env_file=None))
    assert len({id(c.limiter) for c in clients.values()}) == 1 and len({id(c.gate) for c in clients.values()}) == 1
    start = time.monotonic()
    await asyncio.gather(*(clients[role].chat(MSGS) for role in ("asker", "critic") * 3))
    assert time.monotonic() - start >= 5 * 0.1 - 0.02  # 6 starts, 0.1 s apart, across both roles
    assert {r.body["temperature"] for r in fake_llm.requests} == {0.0, 0.7}
    monkeypatch.setenv("ZAOSHU_CRITIC__BASE_URL", fake_llm.base_url.replace("127.0.0.1", "localhost"))
    clients = make_clients(load_settings(env_file=None))
    assert clients["critic"].limiter is not clients["asker"].limiter  # another endpoint: its own limits
