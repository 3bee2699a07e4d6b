"""Human review with LangGraph's `interrupt`: every sample that passed the critic is shown to a
person who accepts, rejects (with a reason) or edits it. Decisions go into the ledger.

The item graph runs inside a two-node review graph (`generate` → `review`) compiled with a SQLite
checkpointer, thread id = item id, so a review left open when the process stopped resumes at the
question without calling any model again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel

from agents.schemas import ReasonCode
from graphs.review_ledger import blank_answer
from graphs.state import SERDE_TYPES, plain


class ReviewDecision(BaseModel):
    action: Literal["accept", "reject", "edit"]
    reason: str = ""
    turns: list[dict[str, str]] | None = None  # for "edit": the corrected turns


class Reviewer(Protocol):
    async def review(self, sample: dict[str, Any]) -> ReviewDecision: ...


@asynccontextmanager
async def review_checkpoints(path: Path) -> AsyncIterator[Any]:
    """The SQLite checkpointer of a run's reviews. Its serializer reads back only our state's types
    (graphs.state.SERDE_TYPES), allowed by name: LangGraph warns about any other type it unpickles."""
    import aiosqlite
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with aiosqlite.connect(str(path)) as conn:
        yield AsyncSqliteSaver(conn, serde=JsonPlusSerializer(allowed_msgpack_modules=SERDE_TYPES))


class ReviewState(TypedDict, total=False):
    item: Any
    result: dict[str, Any]


def build_review_graph(item_graph, observer: Any = None) -> StateGraph:
    """Wrap a compiled item graph: generate (the whole item graph, its steps shown to `observer`, as a run
    without review shows them) → review (interrupt)."""
    from graphs.observer import invoke_observed

    async def generate(state: ReviewState, runtime: Runtime) -> dict[str, Any]:
        final = await invoke_observed(item_graph, state["item"], runtime.context, observer)
        keys = ("status", "sample", "verdict", "reject_codes", "raw", "attempts")
        return {"result": {k: plain(final.get(k)) for k in keys}}

    def review(state: ReviewState) -> dict[str, Any]:
        result = dict(state["result"])
        if result.get("status") != "accepted":
            return {}
        decision = ReviewDecision.model_validate(interrupt({"sample": result["sample"]}))
        sample = dict(result["sample"])
        sample["meta"] = {**sample.get("meta", {}), "review": decision.model_dump(exclude_none=True)}
        if decision.action == "reject":
            result.update(status="rejected", reject_codes=[ReasonCode.HUMAN_REJECTED.value])
        elif decision.action == "edit" and decision.turns:
            sample["turns"] = decision.turns
        result["sample"] = sample
        return {"result": result}

    builder = StateGraph(ReviewState)
    builder.add_node("generate", generate)
    builder.add_node("review", review)
    builder.add_edge(START, "generate")
    builder.add_edge("generate", "review")
    builder.add_edge("review", END)
    return builder


class ReviewInvoker:
    """The runner's `invoke` for interactive runs: one review at a time, resumable."""

    def __init__(self, review_graph, reviewer: Reviewer, ctx):
        self.graph = review_graph
        self.reviewer = reviewer
        self.ctx = ctx
        self._one_at_a_time = asyncio.Lock()

    async def __call__(self, item) -> dict[str, Any]:
        config = {"configurable": {"thread_id": item.id}}
        snapshot = await self.graph.aget_state(config)
        if snapshot.next and snapshot.tasks and snapshot.tasks[0].interrupts:
            out = {"__interrupt__": snapshot.tasks[0].interrupts}  # left open last time: ask again
        else:
            out = await self.graph.ainvoke({"item": item}, config, context=self.ctx)
        while out.get("__interrupt__"):
            payload = out["__interrupt__"][0].value
            async with self._one_at_a_time:
                decision = await self.reviewer.review(payload["sample"])
            out = await self.graph.ainvoke(Command(resume=decision.model_dump()), config, context=self.ctx)
        return out["result"]


class ConsoleReviewer:
    """Asks on the terminal: [a]ccept, [r]eject with a reason, [e]dit the last answer (a blank answer is
    refused, as on the review page, and the question asked again)."""

    def __init__(self, console):
        self.console = console

    async def review(self, sample: dict[str, Any]) -> ReviewDecision:
        try:
            return await asyncio.to_thread(self._ask, sample)
        except EOFError:  # Ctrl-D, or answers piped from a file ran out: the review stays open for the next run
            from agents.errors import InputError

            self.console.print()  # end the prompt's line
            raise InputError("no more input at the review prompt: rerun the same command to review the rest "
                             "(the sample waiting for a review is asked again, not written again)") from None

    def _ask(self, sample: dict[str, Any]) -> ReviewDecision:
        from rich.markup import escape
        from rich.panel import Panel
        from rich.prompt import Prompt

        # a sample is text, not markup: 「[/]」 in an answer would stop the review with a MarkupError
        body = "\n\n".join(f"[bold]问[/] {escape(t['input'])}\n[bold]答[/] {escape(t['output'])}" for t in sample["turns"])
        self.console.print(Panel(body, title=f"review {sample['id']}", expand=False,  # piped: the console is WIDE
                                 subtitle=escape(str(sample.get("meta", {}).get("aspect", "")))))
        while True:
            # \[ : a literal bracket, not rich markup (which showed "ccept / eject / dit")
            choice = Prompt.ask(r"\[a]ccept / \[r]eject / \[e]dit", choices=["a", "r", "e"], default="a",
                                console=self.console)
            if choice == "r":
                return ReviewDecision(action="reject", reason=Prompt.ask("reason", console=self.console))
            if choice != "e":
                return ReviewDecision(action="accept")
            turns = [dict(t) for t in sample["turns"]]
            answer = Prompt.ask("new answer", default=turns[-1]["output"], console=self.console)
            if problem := blank_answer("edit", {"output": answer}):  # the review page's rule
                self.console.print(f"[yellow]{problem}[/]", highlight=False)
                continue  # asked again: an empty answer never becomes a training sample
            turns[-1]["output"] = answer
            return ReviewDecision(action="edit", turns=turns)
