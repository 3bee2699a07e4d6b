"""Test doubles for the agents and graphs: scripted chat clients, a knowledge base, a web search.

    clients = fake_clients(asker=[question("天命人是谁？")], answerer=[answer("玩家操控的角色。")],
                           critic=[verdict("accept")])
    ctx = Context(clients=clients, kb=FakeKB([passage("天命人是玩家操控的角色。")]))
"""

from __future__ import annotations

import json
import socket
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, Callable

from agents.llm import ChatReply
from knowledge.passage import Passage

Reply = str | dict | Callable[[list[dict[str, str]]], "str | dict"]


class FakeChat:
    """A ChatClient whose replies come from a queue (the last one repeats) or a function of the messages."""

    def __init__(self, role: str, replies: list[Reply] | Callable | None = None, model: str | None = None):
        self.cfg = SimpleNamespace(role=role, model=model or f"fake-{role}")
        self.replies = replies if callable(replies) else list(replies or [])
        self.calls: list[list[dict[str, str]]] = []

    async def chat(self, messages, *, json_mode=False, temperature=None, max_tokens=None) -> ChatReply:
        self.calls.append([dict(m) for m in messages])
        if callable(self.replies):
            reply = self.replies(messages)
        elif not self.replies:
            raise AssertionError(f"unexpected call to the {self.cfg.role} model")
        else:
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if callable(reply):
            reply = reply(messages)
        text = reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)
        return ChatReply(text=text, input_tokens=10, output_tokens=5, model=self.cfg.model)

    def prompts(self) -> list[str]:
        """The last user message of every call (what the node asked)."""
        return [next(m["content"] for m in reversed(call) if m["role"] == "user") for call in self.calls]

    def texts(self) -> list[str]:
        return ["\n".join(m["content"] for m in call) for call in self.calls]


def fake_clients(**replies: list[Reply] | Callable) -> dict[str, FakeChat]:
    """One FakeChat per role; roles not given fail loudly when called."""
    return {role: FakeChat(role, replies.get(role)) for role in ("asker", "answerer", "responder", "critic")}


def total_calls(clients: dict[str, FakeChat]) -> int:
    return sum(len(c.calls) for c in clients.values())


def question(text: str) -> dict:
    return {"question": text}


def answer(text: str, used: list[int] | None = None) -> dict:
    return {"answer": text, "used_passages": used or [1]}


def reply(text: str) -> dict:
    return {"text": text}


def message(text: str) -> dict:
    return {"message": text}


#: Every score key any judge asks for (QA: grounding/relevance/style; persona: persona/relevance/style;
#: dialogue: persona/coherence/helpfulness), all passing.
ALL_SCORES = {"grounding": 0.9, "relevance": 0.9, "style": 0.9, "persona": 0.9, "coherence": 0.9, "helpfulness": 0.9}


def verdict(decision: str, codes: tuple[str, ...] = (), feedback: str | None = None, **extra: Any) -> dict:
    return {"reasons": [f"理由：{decision}"], "decision": decision, "reason_codes": list(codes),
            "scores": dict(ALL_SCORES), "feedback": feedback, **extra}


def passage(text: str, source: str = "wulewule/01_概览.md", index: int = 0, score: float = 0.05,
            dense: float = 0.8, bm25: float = 6.0) -> Passage:
    return Passage(text=text, source=source, chunk_id=f"{source}#{index}", title=None, score=score,
                   scores={"dense": dense, "bm25": bm25, "fused": score})


class FakeKB:
    """`retrieve` returns the given passages; `is_answerable` says `answerable`. Records queries."""

    def __init__(self, passages: list[Passage], answerable: bool = True):
        self.passages, self.answerable = passages, answerable
        self.queries: list[str] = []

    def retrieve(self, query: str, k: int = 5) -> list[Passage]:
        self.queries.append(query)
        return self.passages[:k]

    def is_answerable(self, passages) -> bool:
        return self.answerable and bool(passages)


class FakeSearch:
    name = "fake"

    def __init__(self, results: list[Passage]):
        self.results = results
        self.queries: list[str] = []

    async def search(self, query: str, k: int = 5) -> list[Passage]:
        self.queries.append(query)
        return self.results[:k]


def web_result(url: str, text: str) -> Passage:
    return Passage(text=text, source=url, chunk_id=url, title="网页", score=1.0, scores={"fake": 1.0})


@asynccontextmanager
async def local_clients():
    """Real clients for every role from the environment (the `fake_llm` fixture sets it); closed after."""
    from agents.llm import make_clients
    from agents.settings import load_settings

    clients = make_clients(load_settings(env_file=None))
    try:
        yield clients
    finally:
        for c in clients.values():
            closer = getattr(getattr(c, "_client", c), "aclose", None)
            if closer is not None:
                await closer()


def closed_port() -> int:
    """A local port nothing listens on: a connection to it is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
