"""The runtime context every node receives, and the small helpers nodes share (in `agents/`, so
the agents never import the graphs that wire them).

Dependencies are injected here, never imported as globals: the runner builds one `Context` per
run and passes it with ``compiled.ainvoke({"item": item}, context=ctx)``; tests pass fakes.

>>> ctx = Context(clients={}, recipe={"prompts": {"X": "问：{q}"}})
>>> render(ctx, "X", "默认：{q}", {"q"}, q="天命人是谁？")
'问：天命人是谁？'
"""

from __future__ import annotations

import hashlib
import logging
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.errors import ConfigError
from agents.schemas import ReasonCode, Turn, WorkItem

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What nodes may use besides the state. Only `clients` is required.

    clients: role ("asker" | "answerer" | "responder" | "critic") → ChatClient.
    kb: a knowledge.index.KnowledgeBase (retrieve / is_answerable) or None.
    search: a web search provider (`await search.search(query, k)`) or None (web fallback off).
    huixiangdou: a HuixiangDou client (`await aask(text)`) — when set it answers instead of RAG.
    deduper_questions / deduper_answers: agents.dedup.Deduper or None.
    dedup_catch_up: called before each dedup check, to add what other writers of the run accepted
      meanwhile (the other shards running at the same time), or None.
    recipe: the recipe YAML as a dict (system prompt, styles, few-shot, prompts overrides …).
    """

    clients: dict[str, Any]
    kb: Any = None
    search: Any = None
    huixiangdou: Any = None
    deduper_questions: Any = None
    deduper_answers: Any = None
    dedup_catch_up: Callable[[], None] | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    max_revisions: int = 2
    structured_attempts: int = 3
    rng_seed: int = 0
    top_k: int = 4
    #: Questions asked so far in this run, per aspect: the asker shows the latest ones to avoid repeats.
    asked: dict[str, list[str]] = field(default_factory=dict)
    asked_shown: int = 20
    #: The LLM judge after the rules: "off" (rules only), "on" (its scores gate its decision), "strict"
    #: (accept only with every score ≥ judge_min_score and no reason code). See agents.critic.
    judge: str = "on"
    judge_min_score: float = 0.6


def placeholders(template: str) -> set[str]:
    """The named fields of a str.format template.

    >>> sorted(placeholders("就{aspect}提问，<context>{context}</context>，{{不是}}"))
    ['aspect', 'context']
    """
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def template(ctx: Context, name: str, default: str) -> str:
    """The prompt `name`: the recipe's override under ``prompts:`` or the built-in `default`."""
    return (ctx.recipe.get("prompts") or {}).get(name, default)


def render(ctx: Context, name: str, default: str, inputs: set[str] | frozenset[str], **values: Any) -> str:
    """Fill prompt `name` with `values`, which must be exactly its declared `inputs`.

    A recipe override may use any subset of the inputs; an unknown placeholder is a ConfigError.
    """
    if set(values) != set(inputs):
        raise ValueError(f"prompt {name}: node supplied {sorted(values)}, declared {sorted(inputs)}")
    text = template(ctx, name, default)
    unknown = placeholders(text) - set(inputs)
    if unknown:
        raise ConfigError(f"prompt override {name} uses unknown placeholders {sorted(unknown)}; "
                          f"available: {', '.join(sorted(inputs))}")
    return text.format(**values)


def prompt_version(ctx: Context, name: str, default: str) -> str:
    """`NAME#hash8` of the text in force, so a sample records which prompt wrote it.

    >>> prompt_version(Context(clients={}), "P", "abc")
    'P#a9993e36'
    """
    return f"{name}#{hashlib.sha1(template(ctx, name, default).encode()).hexdigest()[:8]}"


def client(ctx: Context, role: str) -> Any:
    try:
        return ctx.clients[role]
    except KeyError:
        raise ConfigError(f"no chat client for role '{role}' in the run context") from None


def model_name(ctx: Context, role: str) -> str | None:
    cfg = getattr(ctx.clients.get(role), "cfg", None)
    return getattr(cfg, "model", None)


def rng(ctx: Context, item_id: str, salt: Any = "") -> random.Random:
    """A generator seeded by the run seed, the item and `salt`: reruns make the same choices."""
    return random.Random(f"{ctx.rng_seed}:{item_id}:{salt}")


def emit(runtime: Any, event: str, item_id: str, **data: Any) -> None:
    """Send a custom event to the live tracer (stream_mode "custom") and log it."""
    log.debug("%s %s %s", event, item_id, data)
    writer = getattr(runtime, "stream_writer", None)
    if writer is not None:
        writer({"event": event, "item": item_id, **data})


def tagged(items: list[str], tag: str = "item") -> str:
    """Tagged lines for a prompt; "（无）" for none.

    >>> tagged(["甲", "乙"])
    '<item>甲</item>\\n<item>乙</item>'
    """
    return "\n".join(f"<{tag}>{x}</{tag}>" for x in items) if items else "（无）"


def provenance(ctx: Context, role: str, step: str, name: str, default: str) -> dict[str, Any]:
    """The meta a node adds for one model call: which model (per role) and which prompt (per step).

    >>> provenance(Context(clients={}), "critic", "judge", "P", "abc")
    {'models': {'critic': None}, 'prompts': {'judge': 'P#a9993e36'}}
    """
    return {"models": {role: model_name(ctx, role)}, "prompts": {step: prompt_version(ctx, name, default)}}


def transcript(turns: list[Any], asker: str = "用户", answerer: str = "助手") -> str:
    """A conversation as labelled lines for a prompt (turns have `.input` / `.output`).

    >>> from agents.schemas import Turn
    >>> transcript([Turn(input="你好", output="你好呀")], "来访者", "咨询师")
    '来访者：你好\\n咨询师：你好呀'
    """
    lines = []
    for turn in turns:
        lines.append(f"{asker}：{turn.input}")
        if turn.output:
            lines.append(f"{answerer}：{turn.output}")
    return "\n".join(lines) if lines else "（无）"


def item_of(state: dict[str, Any]) -> WorkItem:
    """The work item, whether the state holds the model or (after a checkpoint) a dict."""
    item = state["item"]
    return item if isinstance(item, WorkItem) else WorkItem.model_validate(item)


def rejected(codes: list[ReasonCode], *, raw: str | None = None, **extra: Any) -> dict[str, Any]:
    """The state update that ends an item as rejected with `codes`.

    >>> rejected([ReasonCode.FORMAT], raw="不是 JSON")["status"]
    'rejected'
    """
    update: dict[str, Any] = {"status": "rejected", "reject_codes": list(codes), "outcome": "reject"}
    if raw is not None:
        update["raw"] = raw
    update.update(extra)
    return update


def new_turn(question: str | None) -> dict[str, Any]:
    """The state update that starts a turn on `question`: no draft yet, no feedback sent, no revisions used."""
    return {"question": question, "draft": None, "feedback": None, "feedback_sent": [], "revisions": 0}


def current_turns(state: dict[str, Any]) -> list[Turn]:
    """Accepted turns plus the turn in progress (its output may still be empty)."""
    turns = list(state.get("turns") or [])
    if state.get("question") is not None:
        turns.append(Turn(input=state["question"], output=state.get("draft") or "",
                          reasoning=state.get("draft_reasoning") or None))
    return turns
