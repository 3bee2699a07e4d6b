"""The document-QA graph: label → ask → retrieve → answer → critique → revise / accept / reject.

```
label ─► ask ─► retrieve ─► answer ─► critique ─┬─► answer   (revise, at most ctx.max_revisions)
          ▲                                     ├─► ask      (follow-ups left)
          └─ (duplicate question: ask again)    ├─► dedup ─► finish
                                                └─► finish   (reject)
```

The same retrieval, answerer and critic as the QA graph (graphs/qa.py); what differs is the tag label,
the question written from a chunk, two related chunks or a tag for one genre × audience pair, and the
source chunks kept among the passages the answer and the critic see.

>>> from agents.schemas import WorkItem
>>> calls_per_item(WorkItem(id="x", recipe="docqa", graph="docqa", key={}, payload={"item_kind": "chunk"}))
{'asker': 2, 'answerer': 1, 'critic': 1}
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import START, StateGraph

from agents import answerer, critic, docqa
from agents.context import Context, transcript
from agents.schemas import Passage, Turn, WorkItem
from graphs.qa import add_answer_loop
from graphs.state import QAState


def route_after_label(state: QAState) -> Literal["ask", "finish"]:
    return "finish" if state.get("status") == "rejected" else "ask"


def build_docqa_graph() -> StateGraph:
    """The uncompiled document-QA graph; the runner compiles it."""
    builder = StateGraph(QAState, context_schema=Context)
    builder.add_node("label", docqa.label_chunk)
    add_answer_loop(builder, ask=docqa.ask_doc_question, retrieve=docqa.retrieve_doc, answer=docqa.answer_doc)
    builder.add_edge(START, "label")
    builder.add_conditional_edges("label", route_after_label)
    return builder


def calls_per_item(item: WorkItem, ctx: Context | None = None) -> dict[str, int]:
    """Model calls per role in the best case; a chunk without a given tag costs one labelling call."""
    turns = 1 + int(item.get("followups") or 0)
    label = 0 if item.get("tag") else 1
    return {"asker": turns + label, "answerer": turns, "critic": turns}


def render_examples(item: WorkItem, ctx: Context) -> dict[str, str]:
    """One rendered example of each prompt this item would use (no model, KB or search call)."""
    passage = Passage(text="（检索到的资料段落）", source="示例/资料.md", chunk_id="示例/资料.md#0")
    examples: dict[str, str] = {}
    if not item.get("tag"):
        first = (item.get("sources") or [{"source": "示例/资料.md", "text": "（资料段落）"}])[0]
        examples["LABEL_PROMPT"] = docqa.fill(ctx, "LABEL_PROMPT", tags="\n".join(item.get("tags") or []),
                                              source=first["source"], chunk=first["text"])
    name, prompt = docqa.question_prompt(ctx, item, [], [passage])
    examples[name] = prompt
    question = "（提问者写出的问题）"
    examples["ANSWER_PROMPT"] = answerer.fill(ctx, "ANSWER_PROMPT", passages=answerer.format_passages([passage]),
                                              conversation=transcript([]), question=question)
    examples["GA_ANSWER_NOTE"] = docqa.fill(ctx, "GA_ANSWER_NOTE", **docqa.ga_of(ctx, item))
    examples["JUDGE_QA_PROMPT"] = critic.fill(
        ctx, "JUDGE_QA_PROMPT", system=ctx.recipe.get("system_prompt") or answerer.DEFAULT_SYSTEM,
        passages=answerer.format_passages([passage]), conversation=transcript([]), question=question,
        answer="（回答）")
    if item.get("followups"):
        from agents import asker

        examples["FOLLOWUP_PROMPT"] = asker.question_prompt(ctx, item, [Turn(input=question, output="（回答）")],
                                                            [], [])[1]
    return examples



