"""A minimal item graph with the real workload's shape — ask → answer → critique, one LLM call
each — for runner tests and the throughput benchmark. Replies come from the fake server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents.schemas import ReasonCode, Sample, Turn, Verdict
from agents.structured import ask_structured
from graphs.state import WorkItem


@dataclass
class Ctx:
    clients: dict[str, Any]
    attempts: int = 3
    extra: dict[str, Any] = field(default_factory=dict)


class State(TypedDict, total=False):
    item: WorkItem
    question: str
    answer: str
    sample: Sample | None
    verdict: Verdict | None
    status: Literal["accepted", "rejected"]
    reject_codes: list[ReasonCode]
    raw: str | None
    attempts: int


async def ask(state: State, runtime: Runtime[Ctx]) -> dict[str, Any]:
    reply = await runtime.context.clients["asker"].chat(
        [{"role": "user", "content": f"ASK 关于{state['item'].key['topic']}提一个问题"}])
    return {"question": reply.text}


async def answer(state: State, runtime: Runtime[Ctx]) -> dict[str, Any]:
    reply = await runtime.context.clients["answerer"].chat(
        [{"role": "user", "content": f"ANSWER {state['question']}"}])
    return {"answer": reply.text}


async def critique(state: State, runtime: Runtime[Ctx]) -> dict[str, Any]:
    result = await ask_structured(runtime.context.clients["critic"],
                                  [{"role": "user", "content": f"CRITIC {state['answer']}"}], Verdict,
                                  attempts=runtime.context.attempts)
    item = state["item"]
    sample = Sample(id=item.id, recipe=item.recipe, kind="qa",
                    turns=[Turn(input=state["question"], output=state["answer"])], meta=dict(item.key))
    if not result.ok:
        return {"status": "rejected", "reject_codes": [ReasonCode.FORMAT], "raw": result.raw, "sample": sample}
    verdict = result.value
    if verdict.decision == "accept":
        return {"status": "accepted", "sample": sample, "verdict": verdict}
    return {"status": "rejected", "reject_codes": verdict.reason_codes, "verdict": verdict, "sample": sample}


def build_graph() -> StateGraph:
    builder = StateGraph(State, context_schema=Ctx)
    builder.add_node("ask", ask)
    builder.add_node("answer", answer)
    builder.add_node("critique", critique)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", "answer")
    builder.add_edge("answer", "critique")
    builder.add_edge("critique", END)
    return builder


def items(n: int, recipe: str = "bench") -> list[WorkItem]:
    return [WorkItem(id=Sample.stable_id(recipe, {"topic": f"t{i}"}), recipe=recipe, graph="qa",
                     key={"topic": f"t{i}"}, payload={}) for i in range(n)]


def script(req) -> str:
    """Replies for the fake server: a question, an answer, and an accepting verdict."""
    text = req.last_user
    if text.startswith("ASK"):
        return "黑风山的首领是谁？"
    if text.startswith("ANSWER"):
        return "黑风山的首领是黑熊精。"
    return '{"reasons": ["答案有依据"], "decision": "accept", "reason_codes": [], "feedback": null}'
