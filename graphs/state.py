"""What flows through the graphs: the work item that starts one, and the state each graph keeps.

A work item is one unit of work — at most one sample comes out of it:

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

from pydantic import BaseModel, Field

from agents.schemas import ReasonCode, Sample, Turn, Verdict

GraphName = Literal["qa", "dialogue", "persona"]
Outcome = Literal["accept", "revise", "reject"]
Status = Literal["accepted", "rejected"]

#: Types kept in graph state; pass them to a checkpointer's serializer allowlist, e.g.
#: ``JsonPlusSerializer(allowed_msgpack_modules=SERDE_TYPES)``.
SERDE_TYPES = [
    ("agents.schemas", "Sample"), ("agents.schemas", "Turn"), ("agents.schemas", "Verdict"),
    ("agents.schemas", "ReasonCode"), ("graphs.state", "WorkItem"), ("knowledge.passage", "Passage"),
]  # fmt: skip


class WorkItem(BaseModel):
    """One unit of work. `key` identifies it (and makes its id); `payload` is what the graph needs."""

    id: str
    recipe: str
    graph: GraphName
    key: dict[str, Any]
    payload: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def for_recipe(cls, recipe: str, graph: GraphName, *, key: dict[str, Any],
                   payload: dict[str, Any] | None = None) -> WorkItem:
        return cls(id=Sample.stable_id(recipe, key), recipe=recipe, graph=graph, key=key, payload=payload or {})

    def get(self, name: str, default: Any = None) -> Any:
        """A payload value, else a key value, else `default`.

        >>> WorkItem(id="x", recipe="r", graph="qa", key={"aspect": "战斗系统"}).get("aspect")
        '战斗系统'
        """
        if name in self.payload:
            return self.payload[name]
        return self.key.get(name, default)


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
    feedback: str | None
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
    # shown, the model's finish_reason (the feedback sent is `feedback`).
    prompt_text: str | None
    few_shots: list[str]
    finish_reason: str | None


class QAState(BaseState, total=False):
    passages: list[Any]  # knowledge.passage.Passage, or web results as passages
    retrieval: Literal["kb", "web", "huixiangdou", "chunk", "none"] | None


class PersonaState(BaseState, total=False):
    pass


class DialogueState(BaseState, total=False):
    planned_turns: int
    dialogue_revisions: int  # whole-dialogue revisions (a turn's own budget is `revisions`)


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


def current_turns(state: dict[str, Any]) -> list[Turn]:
    """Accepted turns plus the turn in progress (its output may still be empty)."""
    turns = list(state.get("turns") or [])
    if state.get("question") is not None:
        turns.append(Turn(input=state["question"], output=state.get("draft") or ""))
    return turns


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
