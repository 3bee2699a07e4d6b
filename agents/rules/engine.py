"""Run the registered rules over one text or over every turn of a Sample.

>>> from agents.rules import RuleContext, check_text
>>> [h.code.value for h in check_text("！啦~以下是为您准备的祝福：新年快乐！", RuleContext(kind="greeting"))]
['LEADING_PUNCTUATION', 'PREAMBLE']
"""

from __future__ import annotations

from agents.rules.base import RuleContext, RuleHit, TextView
from agents.schemas import ReasonCode, Sample


def check_text(text: str, ctx: RuleContext) -> list[RuleHit]:
    """Hits of every enabled rule on one output (`ctx.question` is the input, for the echo rule).

    Sample-scope rules (role_scene, repeated_turn) run too, on this single text.
    """
    view = TextView(text, ctx.question, 0)
    text_rules, sample_rules = ctx.active_rules()
    hits = [h for _, spec in text_rules if (h := spec.fn(view, ctx)) is not None]
    hits.extend(h for _, spec in sample_rules if (h := spec.fn([view], ctx)) is not None)
    return hits


def check_sample(sample: Sample, ctx: RuleContext) -> list[RuleHit]:
    """Text rules on every turn's output (each turn's input is its question), then the multi-turn rules.

    Every hit carries the index of the turn it was found in (None for whole-sample hits).
    """
    text_rules, sample_rules = ctx.active_rules()
    views = [TextView(t.output, t.input, i) for i, t in enumerate(sample.turns)]
    hits: list[RuleHit] = []
    for view in views:
        for _, spec in text_rules:
            h = spec.fn(view, ctx)
            if h is not None:
                hits.append(RuleHit(h.code, h.rule, h.message, h.span, view.index, h.on_input))
    hits.extend(h for _, spec in sample_rules if (h := spec.fn(views, ctx)) is not None)
    return hits


def reason_codes(hits: list[RuleHit]) -> list[ReasonCode]:
    """The distinct codes of `hits`, in the order found (for Verdict.reason_codes)."""
    return list(dict.fromkeys(h.code for h in hits))


def feedback(hits: list[RuleHit]) -> str:
    """One revision instruction per distinct message, with the turn when a sample has several.

    >>> from agents.rules.base import RuleHit
    >>> feedback([RuleHit(ReasonCode.TOO_SHORT, "too_short", "太短。", turn=1)])
    '第 2 轮：太短。'
    """
    lines = [(f"第 {h.turn + 1} 轮：" if h.turn else "") + h.message for h in hits]
    return "\n".join(dict.fromkeys(lines))
