"""The dialogue graph: a help-seeker and a counsellor alternate for T turns (EmoLLM).

```
plan ─► seek ─► counsel ─► check_turn ─┬─► counsel   (rule hits: revise the turn)
         ▲                             ├─► seek      (turns left)
         └─────────────────────────────┤
                                       └─► judge ─┬─► counsel (revise from the named turn)
                                                  ├─► dedup ─► finish
                                                  └─► finish (reject)
```

T is drawn (seeded per item) from `payload["turns"]` or the recipe's `turns` range (default 3–6);
each turn is a seeker message + the counsellor's reply, so the dialogue always ends with the
counsellor; the judge checks persona drift, repetition, contradiction and the ending.

>>> plan_turns(WorkItem(id="x", recipe="emollm", graph="dialogue", key={}, payload={"turns": [4, 4]}),
...            Context(clients={}))
4
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import END, START, StateGraph

from agents import asker, critic, responder
from agents.schemas import Turn
from agents.context import Context, emit, item_of, rng, transcript
from graphs.state import DialogueState, WorkItem, build_sample

DEFAULT_TURNS = (3, 6)


def turn_range(item: WorkItem, ctx: Context) -> tuple[int, int]:
    spec = item.get("turns") or ctx.recipe.get("turns") or DEFAULT_TURNS
    low, high = (spec, spec) if isinstance(spec, int) else (int(spec[0]), int(spec[-1]))
    if not 1 <= low <= high:
        from agents.errors import ConfigError

        raise ConfigError(f"turns must be a range like [3, 6] with 1 ≤ low ≤ high, got {spec!r}")
    return low, high


def plan_turns(item: WorkItem, ctx: Context) -> int:
    """How many seeker/counsellor exchanges this item gets (the same on every rerun)."""
    low, high = turn_range(item, ctx)
    return rng(ctx, item.id, "turns").randint(low, high)


async def plan(state: DialogueState, runtime: Any) -> dict[str, Any]:
    item = item_of(state)
    planned = plan_turns(item, runtime.context)
    emit(runtime, "planned", item.id, turns=planned)
    return {"planned_turns": planned, "turns": [], "meta": {"turns_planned": planned}}


def _failed(state: DialogueState) -> bool:
    return state.get("status") == "rejected"


def route_after_seek(state: DialogueState) -> Literal["counsel", "finish"]:
    return "finish" if _failed(state) else "counsel"


def route_after_counsel(state: DialogueState) -> Literal["check_turn", "finish"]:
    return "finish" if _failed(state) else "check_turn"


def route_after_turn(state: DialogueState) -> Literal["counsel", "seek", "judge", "finish"]:
    outcome = state.get("outcome")
    if outcome == "revise":
        return "counsel"
    if outcome != "accept":
        return "finish"
    return "seek" if len(state.get("turns") or []) < int(state.get("planned_turns") or 1) else "judge"


def route_after_judge(state: DialogueState) -> Literal["counsel", "dedup", "finish"]:
    return {"revise": "counsel", "accept": "dedup"}.get(state.get("outcome") or "", "finish")  # type: ignore[return-value]


async def finish(state: DialogueState, runtime: Any) -> dict[str, Any]:
    ctx: Context = runtime.context
    system = ctx.recipe.get("counsellor_system_prompt") or ctx.recipe.get("system_prompt") or ""
    return {"sample": build_sample(state, kind="dialogue", system=system),
            "status": state.get("status") or "rejected"}


def build_dialogue_graph() -> StateGraph:
    """The uncompiled dialogue graph."""
    builder = StateGraph(DialogueState, context_schema=Context)
    builder.add_node("plan", plan)
    builder.add_node("seek", asker.ask_seeker)
    builder.add_node("counsel", responder.respond_counsellor)
    builder.add_node("check_turn", critic.check_turn)
    builder.add_node("judge", critic.critique_dialogue)
    builder.add_node("dedup", critic.dedup)
    builder.add_node("finish", finish)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "seek")
    builder.add_conditional_edges("seek", route_after_seek)
    builder.add_conditional_edges("counsel", route_after_counsel)
    builder.add_conditional_edges("check_turn", route_after_turn)
    builder.add_conditional_edges("judge", route_after_judge)
    builder.add_edge("dedup", "finish")
    builder.add_edge("finish", END)
    return builder


def calls_per_item(item: WorkItem, ctx: Context | None = None) -> dict[str, int]:
    """Model calls per role in the best case: the shortest dialogue the range allows, no revision."""
    low, _ = turn_range(item, ctx or Context(clients={}))
    return {"asker": low, "responder": low, "critic": 1}


def render_examples(item: WorkItem, ctx: Context) -> dict[str, str]:
    """One rendered example of each prompt this item would use."""
    values = {"area": item.get("area") or "", "emotion": item.get("emotion") or "",
              "instruction": ctx.recipe.get("seeker_instruction") or asker.DEFAULT_SEEKER_INSTRUCTION}
    sample_turns = [Turn(input="（来访者的话）", output="（咨询师的回应）")]
    examples = {
        "SEEKER_OPENING_PROMPT": asker.fill(ctx, "SEEKER_OPENING_PROMPT", **values),
        "SEEKER_NEXT_PROMPT": asker.fill(ctx, "SEEKER_NEXT_PROMPT",
                                         conversation=transcript(sample_turns, "来访者", "咨询师"), **values),
    }
    state = {"item": item, "turns": [], "question": "（来访者的话）", "planned_turns": plan_turns(item, ctx)}
    counsellor = responder.counsellor_messages(ctx, state)
    examples["COUNSELLOR_PROMPT"] = counsellor[0]["content"]
    examples["COUNSELLOR_TURN_PROMPT"] = counsellor[-1]["content"]
    examples["COUNSELLOR_REVISION_PROMPT"] = responder.fill(ctx, "COUNSELLOR_REVISION_PROMPT", feedback="（质检意见）")
    examples["JUDGE_DIALOGUE_PROMPT"] = critic.fill(
        ctx, "JUDGE_DIALOGUE_PROMPT", area=values["area"], emotion=values["emotion"],
        system=ctx.recipe.get("counsellor_system_prompt") or responder.DEFAULT_COUNSELLOR_SYSTEM,
        dialogue=transcript(sample_turns, "来访者", "咨询师"))
    return examples
