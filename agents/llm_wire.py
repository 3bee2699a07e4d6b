"""What the OpenAI-compatible wire carries: a reply (`ChatReply`: text, tokens, cached tokens, finish
reason, reasoning), the cached-token fields of its `usage`, and the `response_format` each JSON mode sends.

>>> response_format("json_object", True)
{'type': 'json_object'}
>>> response_format("prompt", True) is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class ChatReply:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
    finish_reason: str | None = None  # "length": cut at max_tokens — never accepted (TRUNCATED)
    cached_tokens: int = 0  # prompt tokens the provider served from its prefix cache (billed cheaper)
    reasoning: str = ""  # a reasoning model's thinking: `reasoning_content`, or a leading <think>…</think>

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


_THINK = re.compile(r"^\s*<think>(.*?)(?:</think>|$)", re.DOTALL)


def split_think(text: str) -> tuple[str, str]:
    """(reasoning, rest) of a reply that starts with `<think>…</think>`; ("", text) when it does not.

    >>> split_think("<think>先想想。</think>\\n答案")
    ('先想想。', '答案')
    """
    found = _THINK.match(text)
    if found is None:
        return "", text
    return found.group(1).strip(), text[found.end():].lstrip()


def reasoning_of(text: str, separate: Any = None) -> str:
    """The reasoning a reply carries: the separate field when the server sent one, else a <think> preamble."""
    return separate.strip() if isinstance(separate, str) and separate.strip() else split_think(text)[0]


def cached_tokens_of(usage: dict[str, Any]) -> int:
    """Prompt tokens a reply's `usage` says came from the provider's prefix cache.

    DeepSeek sends `prompt_cache_hit_tokens` (and `prompt_cache_miss_tokens`); OpenAI, DashScope, vLLM
    and others `prompt_tokens_details.cached_tokens`; LangChain's `usage_metadata` `input_token_details.cache_read`.

    >>> cached_tokens_of({"prompt_tokens": 900, "prompt_cache_hit_tokens": 640, "prompt_cache_miss_tokens": 260})
    640
    >>> cached_tokens_of({"prompt_tokens": 900, "prompt_tokens_details": {"cached_tokens": 768}})
    768
    >>> cached_tokens_of({"prompt_tokens": 900})
    0
    """
    if usage.get("prompt_cache_hit_tokens") is not None:
        return int(usage["prompt_cache_hit_tokens"] or 0)
    details = usage.get("prompt_tokens_details") or usage.get("input_token_details") or {}
    return int(details.get("cached_tokens") or details.get("cache_read") or 0)


def response_format(mode: str, json_mode: Any) -> dict[str, Any] | None:
    """The `response_format` for a call: None for plain text (`json_mode` falsy) or prompt mode; a strict
    `json_schema` when the mode is json_schema and `json_mode` is the pydantic model; else json_object."""
    if not json_mode or mode == "prompt":
        return None
    if mode == "json_schema" and isinstance(json_mode, type):
        return {"type": "json_schema", "json_schema": {
            "name": json_mode.__name__, "strict": True, "schema": strict_schema(json_mode)}}
    return {"type": "json_object"}


@lru_cache(maxsize=64)
def strict_schema(model: Any) -> dict[str, Any]:
    """The model's JSON schema as OpenAI's strict mode wants it: every object closed
    (`additionalProperties: false`) and every property required (cached: building a JSON schema
    costs more CPU than the rest of a call). A schema strict mode cannot express (an open dict such as
    the critic's `scores`) is refused by the server, and the client falls back to prompt mode.

    >>> from pydantic import BaseModel
    >>> class Q(BaseModel):
    ...     question: str
    ...     tags: list[str] = []
    >>> s = strict_schema(Q); s["required"], s["additionalProperties"]
    (['question', 'tags'], False)
    """
    def close(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: ({name: close(v) for name, v in value.items()} if k in ("properties", "$defs")
                        else close(value)) for k, value in node.items() if k not in ("default", "title")}
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            return node
        if isinstance(node, list):
            return [close(v) for v in node]
        return node

    return close(model.model_json_schema())
