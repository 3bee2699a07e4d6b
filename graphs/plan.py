"""`--dry-run`: the plan of a run without a single LLM call.

Work items, LLM calls per role (best case: no revisions, no re-asks), estimated tokens and cost
from the rendered prompts and expected output lengths, one rendered example of each prompt, and
the graph's mermaid diagram.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from agents.llm import estimate_tokens
from agents.settings import ROLES, Settings

# Typical reply lengths in tokens, per role; a recipe may override under `expected_output_tokens:`.
EXPECTED_OUTPUT_TOKENS = {"asker": 40, "answerer": 300, "responder": 150, "critic": 150}


@dataclass
class RolePlan:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


@dataclass
class Plan:
    items: int
    skipped: int
    roles: dict[str, RolePlan] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    mermaid: str = ""
    currency: str = "¥"
    kinds: dict[str, int] = field(default_factory=dict)  # items by payload["item_kind"], when a recipe sets it

    @property
    def cost(self) -> float:
        return sum(r.cost for r in self.roles.values())


def make_plan(graph_name: str, items: list, skipped: int, ctx: Any, settings: Settings,
              recipe: dict[str, Any]) -> Plan:
    from graphs.registry import mermaid

    module = importlib.import_module(f"graphs.{graph_name}")
    expected = {**EXPECTED_OUTPUT_TOKENS, **(recipe.get("expected_output_tokens") or {})}
    plan = Plan(items=len(items), skipped=skipped, mermaid=mermaid(graph_name),
                currency=settings.for_role("asker").currency)
    for item in items:
        if item.payload.get("item_kind"):
            plan.kinds[item.payload["item_kind"]] = plan.kinds.get(item.payload["item_kind"], 0) + 1
    if items:
        plan.examples = module.render_examples(items[0], ctx)
    prompt_tokens = {name: estimate_tokens([{"role": "user", "content": text}]) for name, text in plan.examples.items()}
    per_call_in = max(prompt_tokens.values(), default=200)
    for item in items:
        for role, calls in module.calls_per_item(item).items():
            rp = plan.roles.setdefault(role, RolePlan())
            rp.calls += calls
            rp.input_tokens += calls * per_call_in
            rp.output_tokens += calls * expected.get(role, 150)
    for role, rp in plan.roles.items():
        cfg = settings.for_role(role) if role in ROLES else settings.for_role("asker")
        rp.cost = cfg.cost(rp.input_tokens, rp.output_tokens)
    return plan


def render_plan(plan: Plan, console) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console.print(f"[bold]dry run[/]: {plan.items} work items to run ({plan.skipped} already finished); "
                  "no LLM calls made")
    if plan.kinds:
        console.print("items by kind: " + " · ".join(f"{k} {n}" for k, n in plan.kinds.items()), highlight=False)
    table = Table(title="LLM calls (best case: no revisions)")
    for column in ("role", "calls", "est. input tokens", "est. output tokens", "est. cost"):
        table.add_column(column, justify="right" if column != "role" else "left")
    for role, rp in plan.roles.items():
        table.add_row(role, f"{rp.calls:,}", f"{rp.input_tokens:,}", f"{rp.output_tokens:,}",
                      f"{plan.currency}{rp.cost:.4f}")
    table.add_row("[bold]total", f"{sum(r.calls for r in plan.roles.values()):,}",
                  f"{sum(r.input_tokens for r in plan.roles.values()):,}",
                  f"{sum(r.output_tokens for r in plan.roles.values()):,}", f"[bold]{plan.currency}{plan.cost:.4f}")
    console.print(table)
    for name, text in plan.examples.items():
        console.print(Panel(Text(text), title=f"prompt {name}", title_align="left"))
    console.print("[bold]graph[/] (mermaid):")
    console.print(plan.mermaid, markup=False, highlight=False)
