"""A client for a running HuixiangDou server (`POST /huixiangdou_inference`).

It parses both reply shapes: `chat_in_group`'s `{"step": [{"state", "response", "refs"}]}` (the answer is
the last step whose state is "success") and `chat_with_repo`'s bare JSON string, optionally prefixed by
a `**References:**` list.

>>> parse_reply('"**References:**\\\\r\\\\n* 第一回.txt\\\\r\\\\n\\\\r\\\\n石猴出世。"')
HuixiangDouReply(answer='石猴出世。', refs=['第一回.txt'], state='success')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import httpx

from agents.errors import ServiceError

SUCCESS = "success"
ENDPOINT = "/huixiangdou_inference"
_REFS = re.compile(r"^\s*\*\*References:\*\*\s*\r?\n((?:\s*\*\s.*\r?\n)*)\s*", re.MULTILINE)


class HuixiangDouError(ServiceError):
    """The HuixiangDou server could not be reached or answered with something unusable, for one item."""


@dataclass
class HuixiangDouReply:
    answer: str
    refs: list[str] = field(default_factory=list)
    state: str = SUCCESS

    @property
    def ok(self) -> bool:
        return self.state == SUCCESS and bool(self.answer.strip())


def parse_reply(body: str) -> HuixiangDouReply:
    """Turn a response body into a reply; raise HuixiangDouError when it has neither known shape."""
    try:
        data = json.loads(body, strict=False)
    except json.JSONDecodeError as exc:
        raise HuixiangDouError(f"HuixiangDou replied with invalid JSON: {body[:80]!r}") from exc
    if isinstance(data, str):
        match = _REFS.match(data)
        if not match:
            return HuixiangDouReply(answer=data.strip())
        refs = [line.strip()[1:].strip() for line in match.group(1).splitlines() if line.strip()]
        return HuixiangDouReply(answer=data[match.end():].strip(), refs=refs)
    if isinstance(data, dict) and isinstance(data.get("step"), list):
        steps = [s for s in data["step"] if isinstance(s, dict)]
        if not steps:
            raise HuixiangDouError("HuixiangDou replied with an empty step list")
        done = [s for s in steps if s.get("state") == SUCCESS]
        step = done[-1] if done else steps[-1]
        refs = step.get("refs") or []
        return HuixiangDouReply(answer=str(step.get("response") or "") if done else "",
                                refs=[str(r) for r in refs] if isinstance(refs, list) else [str(refs)],
                                state=str(step.get("state") or "unknown"))
    raise HuixiangDouError(f"HuixiangDou reply has an unknown shape: {body[:80]!r}")


class HuixiangDouClient:
    """`ask` (sync) and `aask` (async) one question; `base_url` like http://127.0.0.1:23333, or the endpoint's
    own URL (http://127.0.0.1:23333/huixiangdou_inference, as HuixiangDou's docs show it)."""

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        base = base_url.rstrip("/")
        self.url = base if base.endswith(ENDPOINT) else base + ENDPOINT
        self.timeout = timeout

    def ask(self, text: str, image: str = "") -> HuixiangDouReply:
        try:
            response = httpx.post(self.url, json={"text": text, "image": image}, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise HuixiangDouError(f"HuixiangDou at {self.url} did not answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise HuixiangDouError(f"Cannot reach HuixiangDou at {self.url}: {exc}") from exc
        return self._reply(response)

    async def aask(self, text: str, image: str = "") -> HuixiangDouReply:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, json={"text": text, "image": image})
        except httpx.TimeoutException as exc:
            raise HuixiangDouError(f"HuixiangDou at {self.url} did not answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise HuixiangDouError(f"Cannot reach HuixiangDou at {self.url}: {exc}") from exc
        return self._reply(response)

    def _reply(self, response: httpx.Response) -> HuixiangDouReply:
        if response.status_code != 200:
            raise HuixiangDouError(f"HuixiangDou at {self.url} answered HTTP {response.status_code}: "
                                   f"{response.text[:120]!r}")
        return parse_reply(response.text)
