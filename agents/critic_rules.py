"""The critic's rule layer glue: the `RuleContext` for a work item and the state, and its hits.

What produced the draft travels in the state (set by the answerer and responder nodes):
`prompt_text` (the system message and the prompts filled for this draft), `few_shots` (the example
outputs shown), `feedback_sent` (every revision feedback sent on the turn, in its own words: a model
that copied one round's feedback may write it out again rounds later), and the passages whose file
names an answer must not cite.
"""

from __future__ import annotations

from typing import Any

from agents.rules import (
    DEFAULT_EMOJI_RANGE, DEFAULT_LENGTH, DEFAULT_LENGTH_LIMITS, RULES, RuleContext, RuleHit, TextView, check_sample,
)
from agents.rules.base import snippet, style_length
from agents.schemas import Sample
from agents.context import Context, current_turns, item_of


def rule_context(ctx: Context, item: Any, kind: str, state: dict[str, Any] | None = None) -> RuleContext:
    """The rule layer's context from the work item, the recipe (styles, roles, compat, rules) and, when
    given, the state: the prompt that produced the draft, its few-shots, every feedback sent on the
    turn (`state["feedback_sent"]`, one per line) and the passages' file names.

    >>> from agents.schemas import WorkItem
    >>> recipe = {"styles": {"小红书": {"min_chars": 20, "max_chars": 200, "emoji": [1, 2]}},
    ...           "roles": [{"name": "爷爷", "relation": "elder"}],
    ...           "compat_exclusions": [{"role": "爷爷", "scene": "新婚快乐", "reason": "不常见"}]}
    >>> item = WorkItem(id="x", recipe="tianji", graph="persona",
    ...                 key={"role": "爷爷", "scene": "生日", "style": "小红书"})
    >>> rc = rule_context(Context(clients={}, recipe=recipe), item, "greeting")
    >>> rc.limits(), rc.relation, rc.compat
    ((20, 200), 'elder', {'爷爷': {'新婚快乐': '不常见'}})
    """
    recipe = ctx.recipe
    limits = dict(DEFAULT_LENGTH_LIMITS)
    emoji = dict(DEFAULT_EMOJI_RANGE)
    for name, cfg in (recipe.get("styles") or {}).items():
        cfg = cfg or {}
        limits[name] = style_length(name, cfg.get("min_chars"), cfg.get("max_chars"))
        if "emoji" in cfg:
            if cfg["emoji"]:
                emoji[name] = (int(cfg["emoji"][0]), int(cfg["emoji"][1]))
            else:
                emoji.pop(name, None)
    role = item.get("role")
    role_cfg = next((r for r in recipe.get("roles") or [] if isinstance(r, dict) and r.get("name") == role), {})
    compat: dict[str, dict[str, bool | str]] = {}
    for ex in recipe.get("compat_exclusions") or []:
        compat.setdefault(ex["role"].strip(), {})[ex["scene"].strip()] = ex.get("reason") or False
    rules_cfg = recipe.get("rules") or {}
    length_key = {"answer": "answer_length", "dialogue_turn": "turn_length"}.get(kind)
    default_length = tuple(recipe.get(length_key) or DEFAULT_LENGTH) if length_key else DEFAULT_LENGTH
    state = state or {}
    return RuleContext(
        style=item.get("style") if kind == "greeting" else None, length_limits=limits, emoji_range=emoji,
        default_length=default_length, role=role, relation=role_cfg.get("relation"),
        sibling=role_cfg.get("sibling"), scene=item.get("scene"), compat=compat, kind=kind,
        allow_english=bool(rules_cfg.get("allow_english", False)),
        enabled=frozenset(rules_cfg["enabled"]) if rules_cfg.get("enabled") else None,
        disabled=frozenset(rules_cfg.get("disabled") or ()),
        prompt=state.get("prompt_text"), few_shots=tuple(state.get("few_shots") or ()),
        feedback="\n".join(feedback_sent(state)) or None,
        knowledge_files=knowledge_files(state.get("passages") or []),
    )


def feedback_sent(state: dict[str, Any]) -> list[str]:
    """Every revision feedback sent on the turn in progress, in its own words (`feedback_own_words`),
    the latest last; a state from before `feedback_sent` has only the latest, as sent.

    >>> feedback_sent({"feedback_sent": ["太短", "照抄了修改意见"], "feedback": "照抄了修改意见。"})
    ['太短', '照抄了修改意见']
    >>> feedback_sent({"feedback": "照抄了修改意见。"})
    ['照抄了修改意见。']
    """
    return list(state.get("feedback_sent") or ([state["feedback"]] if state.get("feedback") else []))


def kept_reasoning(ctx: Context, state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state as the sample keeps it, and the meta that says why.

    A reasoning model revising a draft thinks about the feedback (「按修改意见删掉…」, or the feedback
    restated). The fine-tuned model never sees that feedback, so a reasoning that talks about it is not
    kept: the draft's reasoning is dropped (`meta.reasoning_dropped`: turn → why), its output stays.
    """
    reasoning = state.get("draft_reasoning")
    if not reasoning or state.get("draft") is None:
        return state, {}
    found = RULES["feedback_leak"].fn(TextView(reasoning), rule_context(ctx, item_of(state), "answer", state))
    if found is None:
        return state, {}
    why = f"推理里说到了修改过程「{snippet(reasoning, found.span)}」" if found.span else "推理里照抄了修改意见"
    turn = str(len(state.get("turns") or []))
    return {**state, "draft_reasoning": None}, {"reasoning_dropped": {turn: why}}


def knowledge_files(passages: list[Any]) -> frozenset[str]:
    """File names among the passages' sources (not URLs): what an answer must not cite.

    >>> from knowledge.passage import Passage
    >>> sorted(knowledge_files([Passage(text="…", source="wulewule/01_概览.md", chunk_id="c"),
    ...                         Passage(text="…", source="https://example.com/a", chunk_id="u")]))
    ['01_概览.md']
    """
    names = set()
    for p in passages:
        for source in str(getattr(p, "source", "") or "").split(", "):
            base = source.replace("\\", "/").rsplit("/", 1)[-1]
            if "://" not in source and "." in base:
                names.add(base)
    return frozenset(names)


def compat_reason(ctx: Context, item: Any) -> str | None:
    """Why the recipe excludes this role × scene, or None when it is allowed (checked before any call)."""
    allowed = rule_context(ctx, item, "greeting").compat.get(item.get("role") or "", {}).get(
        (item.get("scene") or "").strip(), True)
    if allowed is True:
        return None
    return allowed if isinstance(allowed, str) and allowed else "配方的兼容矩阵不允许这个组合"


def rule_hits(ctx: Context, state: dict[str, Any], kind: str) -> list[RuleHit]:
    """Rule hits on the turn in progress (and whole-sample rules such as repeated turns)."""
    item = item_of(state)
    turns = current_turns(state)
    sample = Sample(id=item.id, recipe=item.recipe, kind="qa", turns=turns)
    last = len(turns) - 1
    return [h for h in check_sample(sample, rule_context(ctx, item, kind, state)) if h.turn in (None, last)]
