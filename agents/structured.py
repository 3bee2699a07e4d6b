"""Structured output that never raises into a graph: JSON mode, validate, re-ask, then record.

>>> from pydantic import BaseModel
>>> class Q(BaseModel):
...     questions: list[str]
>>> parse_reply('<think>先想想</think>```json\\n{"questions": ["天命人是谁？"]}\\n```', Q).questions
['天命人是谁？']
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Generic, TypeVar

from pydantic import BaseModel, Field, ValidationError

from agents.errors import pydantic_problem
from agents.llm import ChatClient, Message
from agents.llm_wire import split_think
from agents.schemas import ReasonCode

T = TypeVar("T", bound=BaseModel)

_THINK = re.compile(r"^\s*<think>.*?(</think>|$)", re.DOTALL)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)

SCHEMA_INSTRUCTION = """只输出一个 JSON 对象，不要输出任何其他文字。字段如下：
{fields}"""

REASK_PROMPT = """你上一条回复不是符合要求的 JSON：{error}
请只输出一个符合字段要求的 JSON 对象。"""

REASK_CUT_PROMPT = """你上一条回复太长，在长度上限处被截断了（上面只留了开头）。请重新输出一个完整的 JSON 对象，
写得简短：列表最多 3 条，每条一句话，不要重复。"""

#: How much of a cut reply the re-ask shows back (a looping reply would fill the prompt).
CUT_SHOWN = 200


class Structured(BaseModel, Generic[T]):
    """The outcome of a structured call: `value` when valid, else `None` with the raw text kept.

    `reasoning`: what a reasoning model thought before the reply that parsed (`reasoning_content`, or
    the `<think>…</think>` preamble `parse_reply` strips); never part of `value`."""

    value: T | None = None
    raw: str = ""
    reasoning: str = ""
    error: str | None = None
    attempts: int = 0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.value is not None

    @property
    def code(self) -> ReasonCode:
        """Why it failed: TRUNCATED (cut at max_tokens) or FORMAT (never valid)."""
        return ReasonCode.TRUNCATED if self.truncated else ReasonCode.FORMAT


def parse_reply(text: str, schema: type[T]) -> T:
    """Tolerant parse: drops a `<think>…</think>` preamble and ```json fences, then validates.

    Raises ValueError (not JSON) or pydantic.ValidationError (wrong shape).
    """
    body = _THINK.sub("", text, count=1).strip()
    fenced = _FENCE.search(body)
    if fenced:
        body = fenced.group(1).strip()
    start, end = body.find("{"), body.rfind("}")
    if start == -1 or end < start:
        raise ValueError("no JSON object in the reply")
    data = json.loads(body[start:end + 1])
    return schema.model_validate(data)


@lru_cache(maxsize=64)
def schema_fields(schema: type[BaseModel]) -> str:
    """One line per field — `- name (type): description` — for the prompt (cached: building a
    JSON schema was ~30 % of the client's CPU per critic call)."""
    props = schema.model_json_schema().get("properties", {})
    lines = []
    for name, spec in props.items():
        kind = spec.get("type") or ("|".join(
            s.get("type", "object") for s in spec.get("anyOf", [])) or "object")
        if kind == "array":
            kind = f"array of {spec.get('items', {}).get('type', 'object')}"
        enum = spec.get("enum") or spec.get("items", {}).get("enum")
        extra = f"，取值：{'/'.join(map(str, enum))}" if enum else ""
        lines.append(f"- {name} ({kind}): {spec.get('description', '')}{extra}".rstrip(": "))
    return "\n".join(lines)


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc'])) or '根'}: {pydantic_problem(e)}" for e in error.errors()[:5]]
        return "; ".join(parts)
    return str(error)


@lru_cache(maxsize=None)
def structured_of(schema: type[T]) -> type[Structured[T]]:
    """`Structured[schema]`, held: pydantic keeps parametrized generics only weakly, so a garbage
    collection made every later call rebuild the class (milliseconds, seen in a worker's profile)."""
    return Structured[schema]


async def ask_structured(client: ChatClient, messages: list[Message], schema: type[T], *,
                         attempts: int = 3, temperature: float | None = None,
                         max_tokens: int | None = None, reask_cut: bool = False) -> Structured[T]:
    """Ask for `schema` in the role's JSON mode; on a bad reply re-ask with the error, at most `attempts` times.

    The schema's fields are always described at the end of the system message (stable per role, so it
    belongs to the cached prefix); the client adds `response_format` unless its mode is "prompt".

    Transport errors (auth, unreachable, retries exhausted) propagate: the runner decides about
    those. A reply that never validates comes back as `Structured(value=None, raw=…, error=…)`; one
    cut at max_tokens comes back at once with `truncated=True` (its `code` is TRUNCATED) — unless
    `reask_cut`: a judge's verdict is not the sample, so a verdict that ran on (a small model repeating
    its reasons until max_tokens) is asked for again, briefly, while attempts are left.
    """
    instruction = SCHEMA_INSTRUCTION.format(fields=schema_fields(schema))
    history = _with_instruction(messages, instruction)
    raw, error = "", "no attempt made"
    for attempt in range(1, attempts + 1):
        reply = await client.chat(history, json_mode=schema, temperature=temperature, max_tokens=max_tokens)
        raw = reply.text
        if reply.truncated:  # a cut reply is never accepted, even when what arrived happens to parse
            if reask_cut and attempt < attempts:
                history = [*history, {"role": "assistant", "content": raw[:CUT_SHOWN]},
                           {"role": "user", "content": REASK_CUT_PROMPT}]
                continue
            return structured_of(schema)(value=None, raw=raw, attempts=attempt, truncated=True,
                                      error="the reply was cut off at max_tokens (finish_reason=length)")
        try:
            return structured_of(schema)(value=parse_reply(raw, schema), raw=raw, attempts=attempt,
                                      reasoning=getattr(reply, "reasoning", "") or split_think(raw)[0])
        except (ValueError, ValidationError) as exc:
            error = _describe(exc)
            if getattr(client, "usage", None) is not None:  # counted per role: how often a model misses the schema
                client.usage.unparsable(client.cfg.role)
            history = [*history, {"role": "assistant", "content": raw},
                       {"role": "user", "content": REASK_PROMPT.format(error=error)}]
    return structured_of(schema)(value=None, raw=raw, error=error, attempts=attempts)


def _with_instruction(messages: list[Message], instruction: str) -> list[Message]:
    """Append the JSON instruction to the system message (JSON mode needs the word JSON in it)."""
    if messages and messages[0]["role"] == "system":
        first = {"role": "system", "content": f"{messages[0]['content']}\n\n{instruction}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


JSON_MODES = ("json_schema", "json_object", "prompt")


class _Probe(BaseModel):
    ok: bool = Field(description="固定为 true")


async def probe_json_modes(cfg) -> dict[str, str]:
    """Which JSON modes an endpoint accepts: mode → "ok" | "refused" | "no valid JSON" | an error.

    One short call per mode, no retries, no fallback (a refusal is what we want to see)."""
    from agents.llm import make_client
    from agents.llm_errors import LLMError

    messages = [{"role": "user", "content": "请回复 ok 为 true 的 JSON。"}]
    results: dict[str, str] = {}
    for mode in JSON_MODES:
        client = make_client(cfg.model_copy(update={"json_mode": mode, "max_retries": 0, "max_tokens": 32}))
        try:
            result = await ask_structured(client, messages, _Probe, attempts=1)
            results[mode] = "refused" if client.json_mode != mode else ("ok" if result.ok else "no valid JSON")
        except LLMError as exc:
            results[mode] = f"error: {str(exc)[:80]}"
        finally:
            if hasattr(client, "aclose"):
                await client.aclose()
    return results


def chosen_mode(configured: str, results: dict[str, str]) -> str:
    """The mode a run will use: the configured one, or prompt when the server refuses it.

    >>> chosen_mode("json_object", {"json_schema": "ok", "json_object": "refused", "prompt": "ok"})
    'prompt'
    """
    return "prompt" if results.get(configured) == "refused" else configured


def json_mode_problem(where: str, modes: dict[str, str], results: dict[str, str]) -> str | None:
    """What will fail at the endpoint `where`, and what to try: `modes` maps each role there to the mode
    it will use (`chosen_mode`), `results` is the endpoint's probe; None when each role's mode gave valid JSON.

    >>> json_mode_problem("http://127.0.0.1:8000/v1 (qwen)", {"asker": "json_object", "critic": "prompt"},
    ...                   {"json_schema": "ok", "json_object": "no valid JSON", "prompt": "ok"})
    'json_object gave no valid JSON for asker at http://127.0.0.1:8000/v1 (qwen): its structured output will fail (a run pauses with FORMAT); json_schema gave valid JSON: set its json_mode to json_schema (ZAOSHU_JSON_MODE, or ZAOSHU_<ROLE>__JSON_MODE for one role)'
    >>> json_mode_problem("…", {"critic": "prompt"}, {"json_schema": "refused", "json_object": "refused", "prompt": "ok"})
    """
    broken = [role for role, mode in modes.items() if results.get(mode) != "ok"]
    if not broken:
        return None
    working = [mode for mode in JSON_MODES if results.get(mode) == "ok"]
    failing = " / ".join(dict.fromkeys(modes[role] for role in broken))
    their = "its" if len(broken) == 1 else "their"
    what = f"{failing} gave no valid JSON" if working else "no JSON mode gave valid JSON"
    fails = f"{what} for {', '.join(broken)} at {where}: {their} structured output will fail (a run pauses with FORMAT)"
    if not working:
        return f"{fails}; try another model, or check that the endpoint serves this model"
    return (f"{fails}; {working[0]} gave valid JSON: set {their} json_mode to {working[0]} "
            f"(ZAOSHU_JSON_MODE, or ZAOSHU_<ROLE>__JSON_MODE for one role)")
