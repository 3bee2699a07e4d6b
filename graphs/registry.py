"""The graphs by name, their mermaid diagrams, and per-graph dry-run helpers.

>>> sorted(GRAPHS)
['dialogue', 'docqa', 'persona', 'qa']
>>> "check_compat" in mermaid("persona")
True
"""

from __future__ import annotations

from typing import Any, Callable

from langgraph.graph import StateGraph

from graphs import dialogue, docqa, persona, qa
from agents.context import Context
from graphs.state import WorkItem

GRAPHS: dict[str, Callable[[], StateGraph]] = {
    "qa": qa.build_qa_graph,
    "dialogue": dialogue.build_dialogue_graph,
    "persona": persona.build_persona_graph,
    "docqa": docqa.build_docqa_graph,
}

_MODULES = {"qa": qa, "dialogue": dialogue, "persona": persona, "docqa": docqa}


def mermaid(name: str) -> str:
    """The graph's mermaid diagram (compiled without a checkpointer)."""
    return GRAPHS[name]().compile().get_graph().draw_mermaid()


def render_examples(item: WorkItem, ctx: Context) -> dict[str, str]:
    """One rendered example of each prompt the item's graph uses (for `--dry-run`)."""
    return _MODULES[item.graph].render_examples(item, ctx)


def calls_per_item(item: WorkItem, ctx: Context | None = None) -> dict[str, Any]:
    """Best-case model calls per role for one item (for cost estimates); `ctx`: the run's, when a graph's
    count depends on it (an excluded role × scene, a dialogue's turns). With `judge: off` the critic applies
    its rules only: no critic call."""
    calls = _MODULES[item.graph].calls_per_item(item, ctx)
    if ctx is not None and getattr(ctx, "judge", "on") == "off" and "critic" in calls:
        calls = {**calls, "critic": 0}
    return calls
