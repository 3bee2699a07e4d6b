"""The QA graph: ask → retrieve → answer → critique → revise / accept / reject, then dedup.

```
ask ─► retrieve ─► answer ─► critique ─┬─► answer      (revise, at most ctx.max_revisions)
 ▲ ▲       ├─(HuixiangDou answered)──►─┤
 │ └───────┘ (unanswerable follow-up)  │
 └──────── (follow-ups left) ◄─────────┼─► dedup ─► finish
                                       └─► finish      (reject)
```

One item → at most one sample. `payload["followups"]` (0 = single turn) asks that many follow-up
questions after the first accepted answer, each answered with a fresh retrieval. A follow-up that
nothing answers is asked again differently (at most ctx.max_revisions times), not the end of the item.

>>> calls_per_item(WorkItem(id="x", recipe="wulewule", graph="qa", key={}, payload={"followups": 2}))
{'asker': 3, 'answerer': 3, 'critic': 3}
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import END, START, StateGraph

from agents import answerer, asker, critic
from agents.schemas import Turn
from agents.context import Context, item_of, transcript
from graphs.state import QAState, WorkItem, build_sample


def route_after_ask(state: QAState) -> Literal["retrieve", "ask", "finish"]:
    if state.get("status") == "rejected":
        return "finish"
    return "ask" if state.get("outcome") == "revise" else "retrieve"


def route_after_retrieve(state: QAState) -> Literal["answer", "critique", "ask", "finish"]:
    if state.get("status") == "rejected":
        return "finish"
    if state.get("outcome") == "revise":  # a follow-up nothing answers: another one
        return "ask"
    return "critique" if state.get("draft") else "answer"


def route_after_answer(state: QAState) -> Literal["critique", "finish"]:
    return "finish" if state.get("status") == "rejected" else "critique"


def route_after_critique(state: QAState) -> Literal["answer", "ask", "dedup", "finish"]:
    outcome = state.get("outcome")
    if outcome == "revise":
        return "answer"
    if outcome != "accept":
        return "finish"
    wanted = 1 + int(item_of(state).get("followups") or 0)
    return "ask" if len(state.get("turns") or []) < wanted else "dedup"


async def finish(state: QAState, runtime: Any) -> dict[str, Any]:
    system = runtime.context.recipe.get("system_prompt") or ""
    return {"sample": build_sample(state, kind="qa", system=system), "status": state.get("status") or "rejected"}


def add_answer_loop(builder: StateGraph, *, ask: Any, retrieve: Any, answer: Any) -> StateGraph:
    """The nodes and edges from "ask" to "finish" (critic, dedup and the routes), with these three steps;
    the QA and document-QA graphs differ only in them and in what comes before "ask"."""
    builder.add_node("ask", ask)
    builder.add_node("retrieve", retrieve)
    builder.add_node("answer", answer)
    builder.add_node("critique", critic.critique_answer)
    builder.add_node("dedup", critic.dedup)
    builder.add_node("finish", finish)
    builder.add_conditional_edges("ask", route_after_ask)
    builder.add_conditional_edges("retrieve", route_after_retrieve)
    builder.add_conditional_edges("answer", route_after_answer)
    builder.add_conditional_edges("critique", route_after_critique)
    builder.add_edge("dedup", "finish")
    builder.add_edge("finish", END)
    return builder


def build_qa_graph() -> StateGraph:
    """The uncompiled QA graph; the runner compiles it (with its checkpointer)."""
    builder = StateGraph(QAState, context_schema=Context)
    add_answer_loop(builder, ask=asker.ask_question, retrieve=answerer.retrieve, answer=answerer.answer)
    builder.add_edge(START, "ask")
    return builder


def calls_per_item(item: WorkItem, ctx: Context | None = None) -> dict[str, int]:
    """Model calls per role for one item in the best case (no revision, no re-ask). A HuixiangDou server
    answers by itself: the answerer model then writes only revisions."""
    turns = 1 + int(item.get("followups") or 0)
    huixiangdou = ctx is not None and (ctx.recipe.get("answerer") or {}).get("backend") == "huixiangdou"
    return {"asker": turns, "answerer": 0 if huixiangdou else turns, "critic": turns}


def render_examples(item: WorkItem, ctx: Context) -> dict[str, str]:
    """One rendered example of each prompt this item would use (no model, KB or search call)."""
    from agents.schemas import Passage

    passage = Passage(text="（检索到的资料段落）", source="示例/资料.md", chunk_id="示例/资料.md#0")
    question = "（提问者写出的问题）"
    name, first = asker.question_prompt(ctx, item, [], [], [passage])
    examples = {name: first}
    if item.get("followups"):
        name, followup = asker.question_prompt(ctx, item, [Turn(input=question, output="（回答）")], [], [passage])
        examples[name] = followup
    examples["ANSWER_PROMPT"] = answerer.fill(ctx, "ANSWER_PROMPT", passages=answerer.format_passages([passage]),
                                              conversation=transcript([]), question=question)
    examples["ANSWER_REVISION_PROMPT"] = answerer.fill(ctx, "ANSWER_REVISION_PROMPT", feedback="（质检意见）")
    examples["JUDGE_QA_PROMPT"] = critic.fill(
        ctx, "JUDGE_QA_PROMPT", system=ctx.recipe.get("system_prompt") or answerer.DEFAULT_SYSTEM,
        passages=answerer.format_passages([passage]), conversation=transcript([]), question=question,
        answer="（回答）")
    return examples
