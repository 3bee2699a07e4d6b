"""The persona graph: scene → human-like input → styled output → critique (Tianji's greetings).

```
check_compat ─► ask ─► respond ─► critique ─┬─► respond (revise)
     └─(excluded role × scene: ROLE_SCENE_MISMATCH, no model call) ─► finish
                                            ├─► dedup ─► finish
                                            └─► finish (reject)
```

>>> calls_per_item(WorkItem(id="x", recipe="tianji", graph="persona", key={"role": "爷爷", "scene": "生日"}))
{'asker': 0, 'responder': 1, 'critic': 1}
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import END, START, StateGraph

from agents import asker, critic, responder
from agents.schemas import ReasonCode
from agents.context import Context, emit, item_of, rejected
from graphs.state import PersonaState, WorkItem, build_sample


async def check_compat(state: PersonaState, runtime: Any) -> dict[str, Any]:
    """Reject an excluded role × scene before any model is called."""
    item = item_of(state)
    reason = critic.compat_reason(runtime.context, item)
    if reason is None:
        return {}
    emit(runtime, "role_scene_mismatch", item.id, role=item.get("role"), scene=item.get("scene"))
    return rejected([ReasonCode.ROLE_SCENE_MISMATCH], meta={"compat_reason": reason})


def route_after_compat(state: PersonaState) -> Literal["ask", "finish"]:
    return "finish" if state.get("status") == "rejected" else "ask"


def route_after_ask(state: PersonaState) -> Literal["respond", "finish"]:
    return "finish" if state.get("status") == "rejected" else "respond"


def route_after_respond(state: PersonaState) -> Literal["critique", "finish"]:
    return "finish" if state.get("status") == "rejected" else "critique"


def route_after_critique(state: PersonaState) -> Literal["respond", "dedup", "finish"]:
    outcome = state.get("outcome")
    return {"revise": "respond", "accept": "dedup"}.get(outcome or "", "finish")  # type: ignore[return-value]


async def finish(state: PersonaState, runtime: Any) -> dict[str, Any]:
    system = runtime.context.recipe.get("system_prompt") or ""
    return {"sample": build_sample(state, kind="qa", system=system), "status": state.get("status") or "rejected"}


def build_persona_graph() -> StateGraph:
    """The uncompiled persona graph."""
    builder = StateGraph(PersonaState, context_schema=Context)
    builder.add_node("check_compat", check_compat)
    builder.add_node("ask", asker.ask_opening)
    builder.add_node("respond", responder.respond_styled)
    builder.add_node("critique", critic.critique_greeting)
    builder.add_node("dedup", critic.dedup)
    builder.add_node("finish", finish)
    builder.add_edge(START, "check_compat")
    builder.add_conditional_edges("check_compat", route_after_compat)
    builder.add_conditional_edges("ask", route_after_ask)
    builder.add_conditional_edges("respond", route_after_respond)
    builder.add_conditional_edges("critique", route_after_critique)
    builder.add_edge("dedup", "finish")
    builder.add_edge("finish", END)
    return builder


def calls_per_item(item: WorkItem, ctx: Context | None = None) -> dict[str, int]:
    """Model calls per role in the best case; a role × scene the recipe excludes (`ctx`) costs none."""
    if ctx is not None and critic.compat_reason(ctx, item):
        return {"asker": 0, "responder": 0, "critic": 0}
    return {"asker": 1 if item.get("humanize") else 0, "responder": 1, "critic": 1}


def render_examples(item: WorkItem, ctx: Context) -> dict[str, str]:
    """One rendered example of each prompt this item would use."""
    request = item.get("input") or asker.scene_example(ctx, item)
    examples = {}
    if item.get("humanize"):
        examples["SCENE_OPENING_PROMPT"] = asker.fill(ctx, "SCENE_OPENING_PROMPT", role=item.get("role"),
                                                      scene=item.get("scene"), style=item.get("style") or "正常",
                                                      example=request)
    examples["STYLED_REPLY_PROMPT"] = responder.fill(ctx, "STYLED_REPLY_PROMPT",
                                                     **responder.styled_values(ctx, item, request))
    examples["STYLED_REVISION_PROMPT"] = responder.fill(ctx, "STYLED_REVISION_PROMPT", feedback="（质检意见）")
    examples["JUDGE_PERSONA_PROMPT"] = critic.persona_judge_prompt(ctx, item, request, "（祝福语）")
    return examples
