"""`--dry-run`: the plan of a run without a single LLM call.

Work items, LLM calls per role (best case: no revisions, no re-asks), estimated tokens and cost
from the rendered prompts and expected output lengths, one rendered example of each prompt, and
the graph's mermaid diagram.

The cost is given twice: every prompt token at the input price, and with the provider's prefix cache —
assumed to serve each role's stable prompt head (the template's text before its first item value) on
every call of that role but the first, at `price_input_cached_per_1k`. The system prompt and the JSON
schema, also stable, are left out of the estimate, and a real cache works in blocks and expires, so the
cached figure is a rough middle, not a bound.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from agents.context import placeholders
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
    cached_tokens: int = 0
    cost_cached: float = 0.0


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

    @property
    def cost_cached(self) -> float:
        return sum(r.cost_cached for r in self.roles.values())


def stable_share(name: str, rendered: str, recipe: dict[str, Any]) -> tuple[str | None, float]:
    """(role, share of the rendered prompt that is its template's head before the first placeholder).

    >>> stable_share("ANSWER_PROMPT", "x" * 4000, {})[0]
    'answerer'
    """
    from agents import answerer, asker, critic, responder

    for role, module in (("asker", asker), ("answerer", answerer), ("responder", responder), ("critic", critic)):
        if name in module.PROMPTS:
            template = (recipe.get("prompts") or {}).get(name, module.PROMPTS[name])
            first = min((template.find("{" + p) for p in placeholders(template)), default=len(template))
            total = estimate_tokens([{"role": "user", "content": rendered}])
            return role, min(1.0, estimate_tokens([{"role": "user", "content": template[:first]}]) / max(total, 1))
    return None, 0.0


def make_plan(graph_name: str, items: list, skipped: int, ctx: Any, settings: Settings,
              recipe: dict[str, Any]) -> Plan:
    from graphs.registry import calls_per_item, mermaid

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
        for role, calls in calls_per_item(item, ctx).items():
            rp = plan.roles.setdefault(role, RolePlan())
            rp.calls += calls
            rp.input_tokens += calls * per_call_in
            rp.output_tokens += calls * expected.get(role, 150)
    shares: dict[str, list[float]] = {}
    for name, text in plan.examples.items():
        role, share = stable_share(name, text, recipe)
        if role is not None:
            shares.setdefault(role, []).append(share)
    for role, rp in plan.roles.items():
        cfg = settings.for_role(role) if role in ROLES else settings.for_role("asker")
        rp.cost = cfg.cost(rp.input_tokens, rp.output_tokens)
        share = min(shares.get(role) or [0.0])
        rp.cached_tokens = int(max(rp.calls - 1, 0) * per_call_in * share)
        rp.cost_cached = cfg.cost(rp.input_tokens, rp.output_tokens, rp.cached_tokens)
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
    for column in ("role", "calls", "est. input tokens", "of which cached", "est. output tokens", "est. cost",
                   "with cache"):
        table.add_column(column, justify="right" if column != "role" else "left")
    for role, rp in plan.roles.items():
        table.add_row(role, f"{rp.calls:,}", f"{rp.input_tokens:,}", f"{rp.cached_tokens:,}", f"{rp.output_tokens:,}",
                      f"{plan.currency}{rp.cost:.4f}", f"{plan.currency}{rp.cost_cached:.4f}")
    table.add_row("[bold]total", f"{sum(r.calls for r in plan.roles.values()):,}",
                  f"{sum(r.input_tokens for r in plan.roles.values()):,}",
                  f"{sum(r.cached_tokens for r in plan.roles.values()):,}",
                  f"{sum(r.output_tokens for r in plan.roles.values()):,}", f"[bold]{plan.currency}{plan.cost:.4f}",
                  f"[bold]{plan.currency}{plan.cost_cached:.4f}")
    console.print(table)
    console.print("cache assumption: each role's stable prompt head (instructions before the first item value) is "
                  "served from the provider's prefix cache on every call but the first, at the role's "
                  "price_input_cached_per_1k (a cache hit costs the full input price where none is set)",
                  highlight=False)
    for name, text in plan.examples.items():
        if console.is_terminal:
            console.print(Panel(Text(text), title=f"prompt {name}", title_align="left"))
        else:  # piped: the prompt line by line, whole (a panel crops its lines at COLUMNS when output does not wrap)
            console.print(f"── prompt {name} ──", highlight=False)
            console.print(Text(text), soft_wrap=True)
    console.print("[bold]graph[/] (mermaid):")
    console.print(plan.mermaid, markup=False, highlight=False)
