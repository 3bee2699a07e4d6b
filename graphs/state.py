"""What flows through the graphs: the state each graph keeps, and the sample built from it.

A work item (`agents.schemas.WorkItem`) is one unit of work — at most one sample comes out of it:

>>> item = WorkItem.for_recipe("wulewule", "qa", key={"aspect": "主要角色", "n": 1},
...                            payload={"aspect": "主要角色"})
>>> item.id == Sample.stable_id("wulewule", {"aspect": "主要角色", "n": 1})
True

The runner starts a graph with ``{"item": item}`` and reads from the final state: ``sample``,
``verdict`` (the last one), ``status`` ("accepted" | "rejected"), ``reject_codes``, ``raw`` (the
model's text when a structured reply never parsed) and ``attempts``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

from agents.context import current_turns, item_of
from agents.schemas import ReasonCode, Sample, Turn, Verdict, WorkItem  # noqa: F401 (WorkItem re-exported)

Outcome = Literal["accept", "revise", "reject"]
Status = Literal["accepted", "rejected"]

#: Types kept in graph state; pass them to a checkpointer's serializer allowlist, e.g.
#: ``JsonPlusSerializer(allowed_msgpack_modules=SERDE_TYPES)``.
SERDE_TYPES = [
    ("agents.schemas", "Sample"), ("agents.schemas", "Turn"), ("agents.schemas", "Verdict"),
    ("agents.schemas", "ReasonCode"), ("agents.schemas", "WorkItem"), ("agents.schemas", "Passage"),
]  # fmt: skip


def merge_meta(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer for `meta`: nodes return only the keys they add; dict values merge one level deep.

    >>> merge_meta({"a": 1, "models": {"asker": "m1"}}, {"b": 2, "models": {"critic": "m2"}})
    {'a': 1, 'models': {'asker': 'm1', 'critic': 'm2'}, 'b': 2}
    """
    merged = dict(old or {})
    for key, value in (new or {}).items():
        old_value = merged.get(key)
        merged[key] = {**old_value, **value} if isinstance(value, dict) and isinstance(old_value, dict) else value
    return merged


class BaseState(TypedDict, total=False):
    """Keys every graph shares. `question`/`draft` are the turn in progress; `turns` are accepted."""

    item: WorkItem
    turns: list[Turn]
    question: str | None
    draft: str | None
    draft_reasoning: str | None  # the reasoning model's thinking behind `draft` (becomes Turn.reasoning)
    feedback: str | None  # the revision feedback just sent (the revision prompt shows it)
    feedback_sent: list[str]  # every feedback sent on the turn, in its own words (the leak rule checks them all)
    revisions: int  # revisions used on the output in progress
    attempts: int  # outputs produced (answer / reply calls, HuixiangDou answers)
    outcome: Outcome | None  # what the last check decided; routes read it
    verdict: Verdict | None
    status: Status | None
    reject_codes: list[ReasonCode]
    raw: str | None
    sample: Sample | None
    meta: Annotated[dict[str, Any], merge_meta]
    # What produced the draft, for the critic's leak rules: the prompt text sent, the few-shot outputs
    # shown (the feedback sent is `feedback_sent`).
    prompt_text: str | None
    few_shots: list[str]


class QAState(BaseState, total=False):
    passages: list[Any]  # agents.schemas.Passage: from the knowledge base, the web or HuixiangDou
    context_passages: list[Any]  # the passages the asker wrote the first question from (its aspect's context)
    retrieval: Literal["kb", "web", "huixiangdou", "chunk", "none"] | None


class PersonaState(BaseState, total=False):
    pass


class DialogueState(BaseState, total=False):
    planned_turns: int
    dialogue_revisions: int  # whole-dialogue revisions (a turn's own budget is `revisions`)


_META_FROM_ITEM = ("aspect", "role", "scene", "style", "emotion", "area", "variant", "source", "n")


def build_sample(state: dict[str, Any], *, kind: str, system: str) -> Sample | None:
    """The sample as it stands (accepted or not), with meta; None when nothing was produced yet."""
    item = item_of(state)
    turns = current_turns(state)
    if not turns:
        return None
    meta: dict[str, Any] = {"graph": item.graph}
    meta.update({k: item.get(k) for k in _META_FROM_ITEM if item.get(k) is not None})
    meta.update(state.get("meta") or {})
    verdict = state.get("verdict")
    if verdict is not None:
        meta["verdict"] = verdict.model_dump(mode="json")
    meta["attempts"] = state.get("attempts", 0)
    if state.get("status") == "rejected":
        meta["reject_codes"] = [ReasonCode(c).value for c in state.get("reject_codes") or []]
    return Sample(id=item.id, recipe=item.recipe, kind=kind, system=system, turns=turns, meta=meta)


def plain(value: Any) -> Any:
    """A pydantic value as JSON-ready data; anything else as it is (for ledgers and checkpoints)."""
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value
