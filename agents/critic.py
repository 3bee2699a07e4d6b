"""The critic / cleaner: the pure-Python rule layer first, then an LLM judge; dedup after acceptance.

Each critique node returns `outcome` = accept | revise | reject for the route functions:

- rule hits (agents.rules) → revise with the rules' messages as feedback (no judge call);
- the judge (`Verdict`: reasons first, then decision, codes, scores, feedback) → its decision;
- revise when `revisions` has reached `ctx.max_revisions` → reject with the last codes;
- an unparsable judge reply → reject with FORMAT, the raw text kept.

Accepting commits the turn in progress to `turns`. `dedup` then checks the first question and the
answers joined (`agents.dedup.sample_texts`, what the runner warms the dedupers with on resume)
against `ctx.deduper_questions` / `ctx.deduper_answers` → DUPLICATE + `meta["duplicate_of"]`.

>>> sorted(PROMPT_INPUTS["JUDGE_QA_PROMPT"])
['answer', 'conversation', 'passages', 'question', 'system']
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from agents.dedup import sample_texts
from agents.rules import DEFAULT_EMOJI_RANGE, DEFAULT_LENGTH, DEFAULT_LENGTH_LIMITS, RuleContext, RuleHit, check_sample
from agents.rules import feedback as rule_feedback
from agents.rules import reason_codes
from agents.schemas import ReasonCode, Sample, Turn, Verdict, draft_context
from agents.structured import ask_structured
from agents.context import (
    Context, client, current_turns, emit, item_of, provenance, rejected, render, transcript,
)

log = logging.getLogger(__name__)

CRITIC_SYSTEM = "你是一名严格、公正的中文微调数据质检员。你只评估，不改写。"

_DECIDE = """先逐条写出理由（reasons），再给结论 decision：accept（可以直接使用）、revise（能改好：在 feedback 里写出具体怎么改）、
reject（无法修复）。有问题时在 reason_codes 里给出对应的原因代码。"""

JUDGE_QA_PROMPT = """请评估助手的回答能否作为高质量的微调数据。逐项检查：
1. grounding：回答里的每一条事实是否都能在资料中找到依据？有没有资料之外的编造？（UNGROUNDED）
2. relevance：是否切题、完整地回答了问题？（IRRELEVANT）
3. style：是否符合助手的人设，语言自然通顺，没有开场白、套话或拒答？（STYLE_MISMATCH、PREAMBLE、REFUSAL）
如果资料根本无法回答这个问题，结论为 reject，代码 UNANSWERABLE。
""" + _DECIDE + """
scores 给出 grounding、relevance、style 三项 0 到 1 的分数。

<system>{system}</system>
<passages>
{passages}
</passages>
<conversation>
{conversation}
</conversation>
<question>{question}</question>
<answer>{answer}</answer>"""

JUDGE_PERSONA_PROMPT = """请评估这条祝福语能否作为高质量的微调数据。对象、场景和风格见文末的 <target>。逐项检查：
1. persona：是否符合对象的身份和关系，称呼、语气是否得体？（HONORIFIC、ROLE_SCENE_MISMATCH）
2. relevance：是否切合场景和用户的请求？（IRRELEVANT）
3. style：是否符合风格的要求？（STYLE_MISMATCH）
4. 是否像真人写的，没有标题、说明、开场白或套话？（PREAMBLE、MARKDOWN）
""" + _DECIDE + """
scores 给出 persona、relevance、style 三项 0 到 1 的分数。

<system>{system}</system>
<target>对象：{role}；场景：{scene}；风格：{style}，{instruction}</target>
<request>{request}</request>
<reply>{reply}</reply>"""

JUDGE_DIALOGUE_PROMPT = """请评估这段心理咨询对话能否作为高质量的微调数据。来访者的处境和情绪见文末的 <situation>。
逐项检查：
1. persona：咨询师是否始终保持温暖、专业的人设，没有说教、下诊断或自称 AI？（PERSONA_DRIFT）
2. repetition：有没有哪一轮重复前面的内容？（REPEATED_TURN）
3. contradiction：前后有没有自相矛盾，包括来访者的经历前后不一？（CONTRADICTION）
4. ending：对话是否以咨询师温和的小结或鼓励结束？（BAD_ENDING）
""" + _DECIDE + """
如果需要修改，在 turn 里给出第一处需要重写的咨询师回复的轮次（从 1 开始）。
scores 给出 persona、coherence、helpfulness 三项 0 到 1 的分数。

<system>{system}</system>
<situation>处境属于「{area}」方面，主要情绪是「{emotion}」</situation>
<dialogue>
{dialogue}
</dialogue>"""

PROMPTS: dict[str, str] = {"JUDGE_QA_PROMPT": JUDGE_QA_PROMPT, "JUDGE_PERSONA_PROMPT": JUDGE_PERSONA_PROMPT,
                           "JUDGE_DIALOGUE_PROMPT": JUDGE_DIALOGUE_PROMPT}
PROMPT_INPUTS: dict[str, frozenset[str]] = {
    "JUDGE_QA_PROMPT": frozenset({"system", "passages", "conversation", "question", "answer"}),
    "JUDGE_PERSONA_PROMPT": frozenset({"role", "scene", "style", "instruction", "system", "request", "reply"}),
    "JUDGE_DIALOGUE_PROMPT": frozenset({"area", "emotion", "system", "dialogue"}),
}

#: The code recorded when the judge rejects or revises without naming one.
DEFAULT_CODE = {"qa": ReasonCode.UNGROUNDED, "persona": ReasonCode.STYLE_MISMATCH, "dialogue": ReasonCode.PERSONA_DRIFT}


class DialogueVerdict(Verdict):
    turn: int | None = Field(default=None, description="第一处需要重写的咨询师回复的轮次（从 1 开始）；不需要修改时为 null。")


def fill(ctx: Context, name: str, **values: Any) -> str:
    return render(ctx, name, PROMPTS[name], PROMPT_INPUTS[name], **values)


# ---- the rule layer ---------------------------------------------------------------------------

def rule_context(ctx: Context, item: Any, kind: str) -> RuleContext:
    """The rule layer's context from the work item and the recipe (styles, roles, compat, rules).

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
        low, high = limits.get(name, DEFAULT_LENGTH)
        limits[name] = (int(cfg.get("min_chars") or low), int(cfg.get("max_chars") or high))
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
    return RuleContext(
        style=item.get("style") if kind == "greeting" else None, length_limits=limits, emoji_range=emoji,
        default_length=default_length, role=role, relation=role_cfg.get("relation"),
        sibling=role_cfg.get("sibling"), scene=item.get("scene"), compat=compat, kind=kind,
        allow_english=bool(rules_cfg.get("allow_english", False)),
        enabled=frozenset(rules_cfg["enabled"]) if rules_cfg.get("enabled") else None,
        disabled=frozenset(rules_cfg.get("disabled") or ()),
    )


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
    return [h for h in check_sample(sample, rule_context(ctx, item, kind)) if h.turn in (None, last)]


def rules_step(ctx: Context, state: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The update for rule hits (revise, or reject when out of revisions); None when clean."""
    hits = rule_hits(ctx, state, kind)
    if not hits:
        return None
    codes = reason_codes(hits)
    text = rule_feedback(hits)
    verdict = Verdict(reasons=[h.message for h in hits], decision="revise", reason_codes=codes, feedback=text)
    meta = {"rule_hits": [_hit_record(h, current_turns(state)) for h in hits]}
    return decide(ctx, state, verdict, meta=meta)


def _hit_record(hit: RuleHit, turns: list[Turn]) -> dict[str, Any]:
    """A rule hit for `meta.rule_hits`; with a span, also the text under it (the review page highlights it)."""
    record = {"rule": hit.rule, "code": hit.code.value, "message": hit.message, "turn": hit.turn}
    if hit.span is not None and hit.turn is not None and hit.turn < len(turns):
        record["span"] = list(hit.span)  # offsets into the turn's output, stripped
        record["text"] = turns[hit.turn].output.strip()[hit.span[0]:hit.span[1]]
    return record


# ---- deciding ---------------------------------------------------------------------------------

def accept_turn(state: dict[str, Any]) -> dict[str, Any]:
    """Commit the turn in progress."""
    turn = Turn(input=state["question"], output=state.get("draft") or "",
                reasoning=state.get("draft_reasoning") or None)
    return {"turns": [*(state.get("turns") or []), turn], "question": None, "draft": None,
            "draft_reasoning": None, "feedback": None, "revisions": 0}


def decide(ctx: Context, state: dict[str, Any], verdict: Verdict, *, meta: dict[str, Any] | None = None,
           commit: bool = True, counter: str = "revisions") -> dict[str, Any]:
    """Turn a verdict into the state update: accept (commit), revise (with feedback) or reject.

    `counter` is the state key counting revisions against `ctx.max_revisions`.
    """
    item = item_of(state)
    history = list((state.get("meta") or {}).get("critic_history") or [])
    history.append({"decision": verdict.decision, "codes": [c.value for c in verdict.reason_codes],
                    "by": "rules" if meta and "rule_hits" in meta else "judge"})
    extra = {"meta": {**(meta or {}), "critic_history": history}}
    turns = list(state.get("turns") or [])
    judged = current_turns(state) if state.get("draft") is not None else turns  # the dialogue judge: the last turn
    if judged:
        drafts = list((state.get("meta") or {}).get("drafts") or [])
        extra["meta"]["drafts"] = [*drafts, draft_record(judged, len(judged) - 1, history[-1])]
    if verdict.decision == "accept":
        return {"verdict": verdict, "outcome": "accept", **(accept_turn(state) if commit else {}), **extra}
    codes = verdict.reason_codes or [DEFAULT_CODE[item.graph]]
    used = state.get(counter) or 0
    if verdict.decision == "revise" and used < ctx.max_revisions:
        text = verdict.feedback or "；".join(verdict.reasons) or "请提高质量。"
        return {"verdict": verdict, "outcome": "revise", counter: used + 1, "feedback": text, **extra}
    if verdict.decision == "revise":
        extra["meta"]["revisions_exhausted"] = used  # the last verdict said revise: no revisions were left
    return rejected(codes, verdict=verdict, **extra)


def draft_record(turns: list[Turn], index: int, verdict: dict[str, Any]) -> dict[str, Any]:
    """What `meta["drafts"]` keeps of one judged output: its turn, text, reasoning, the verdict, and
    `context` — the hash of what came before it (`draft_context`), so an export pairs it only with an
    answer to the very same conversation.

    >>> r = draft_record([Turn(input="问", output="答")], 0, {"decision": "revise", "codes": ["PREAMBLE"], "by": "rules"})
    >>> r["turn"], r["text"], r["decision"], r["context"] == draft_context([], "问")
    (0, '答', 'revise', True)
    """
    turn = turns[index]
    record = {"turn": index, "input": turn.input, "text": turn.output, **verdict,
              "context": draft_context(turns[:index], turn.input)}
    if turn.reasoning:
        record["reasoning"] = turn.reasoning
    return record


async def _judge(ctx: Context, runtime: Any, state: dict[str, Any], name: str, prompt: str,
                 schema: type[Verdict] = Verdict) -> tuple[Verdict | None, dict[str, Any]]:
    item = item_of(state)
    messages = [{"role": "system", "content": CRITIC_SYSTEM}, {"role": "user", "content": prompt}]
    result = await ask_structured(client(ctx, "critic"), messages, schema, attempts=ctx.structured_attempts)
    prov = provenance(ctx, "critic", "judge", name, PROMPTS[name])
    if not result.ok:
        log.info("item %s: critic output unparsable: %s", item.id, result.error)
        return None, rejected([result.code], raw=result.raw, meta={**prov, "failed_step": "critique"})
    emit(runtime, "verdict", item.id, decision=result.value.decision,
         codes=[c.value for c in result.value.reason_codes])
    return result.value, prov


# ---- critique nodes ---------------------------------------------------------------------------

async def critique_answer(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """QA node: rules on the answer, then the grounding / relevance / style judge."""
    from agents.answerer import DEFAULT_SYSTEM, format_passages

    ctx: Context = runtime.context
    found = rules_step(ctx, state, "answer")
    if found is not None:
        return found
    prompt = fill(ctx, "JUDGE_QA_PROMPT", system=ctx.recipe.get("system_prompt") or DEFAULT_SYSTEM,
                  passages=format_passages(state.get("passages") or []),
                  conversation=transcript(state.get("turns") or []), question=state["question"],
                  answer=state.get("draft") or "")
    verdict, update = await _judge(ctx, runtime, state, "JUDGE_QA_PROMPT", prompt)
    return update if verdict is None else decide(ctx, state, verdict, meta=update)


async def critique_greeting(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Persona node: rules (punctuation, preamble, length, emoji, honorifics …), then the persona/style judge."""
    from agents.responder import DEFAULT_PERSONA_SYSTEM, style_config

    ctx: Context = runtime.context
    item = item_of(state)
    found = rules_step(ctx, state, "greeting")
    if found is not None:
        return found
    style = item.get("style") or "正常"
    prompt = fill(ctx, "JUDGE_PERSONA_PROMPT", role=item.get("role") or "", scene=item.get("scene") or "",
                  style=style, instruction=style_config(ctx, style).get("instruction") or f"{style}风格",
                  system=ctx.recipe.get("system_prompt") or DEFAULT_PERSONA_SYSTEM, request=state["question"],
                  reply=state.get("draft") or "")
    verdict, update = await _judge(ctx, runtime, state, "JUDGE_PERSONA_PROMPT", prompt)
    return update if verdict is None else decide(ctx, state, verdict, meta=update)


async def check_turn(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Dialogue node: the rule layer on the counsellor's latest turn (no model call)."""
    ctx: Context = runtime.context
    found = rules_step(ctx, state, "dialogue_turn")
    if found is not None:
        return found
    return {"outcome": "accept", **accept_turn(state)}


async def critique_dialogue(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Dialogue node: the whole dialogue — persona drift, repetition, contradiction, the ending.

    A revise names the first counsellor turn to rewrite: the dialogue is cut back to it and the
    counsellor rewrites that turn with the feedback (then the dialogue continues to its length).
    """
    from agents.responder import DEFAULT_COUNSELLOR_SYSTEM

    ctx: Context = runtime.context
    item = item_of(state)
    turns = list(state.get("turns") or [])
    if not turns or not turns[-1].output.strip():
        return rejected([ReasonCode.BAD_ENDING], meta={"ending": "the dialogue does not end with the counsellor"})
    system = ctx.recipe.get("counsellor_system_prompt") or DEFAULT_COUNSELLOR_SYSTEM
    prompt = fill(ctx, "JUDGE_DIALOGUE_PROMPT", area=item.get("area") or "", emotion=item.get("emotion") or "",
                  system=system, dialogue=transcript(turns, "来访者", "咨询师"))
    verdict, update = await _judge(ctx, runtime, state, "JUDGE_DIALOGUE_PROMPT", prompt, DialogueVerdict)
    if verdict is None:
        return update
    plain = Verdict.model_validate(verdict.model_dump(exclude={"turn"}))
    result = decide(ctx, state, plain, meta=update, commit=False, counter="dialogue_revisions")
    if result["outcome"] == "revise":
        cut = min(max((verdict.turn or len(turns)) - 1, 0), len(turns) - 1)
        result.update(turns=turns[:cut], question=turns[cut].input, draft=turns[cut].output,
                      draft_reasoning=turns[cut].reasoning)
        result["meta"]["drafts"][-1] = draft_record(turns, cut, result["meta"]["critic_history"][-1])
        emit(runtime, "dialogue_revise", item.id, turn=cut + 1)
    return result


async def dedup(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """After acceptance: the first question (qa, dialogue) and the answers against the run's dedupers."""
    ctx: Context = runtime.context
    item = item_of(state)
    turns = list(state.get("turns") or [])
    texts = sample_texts(Sample(id=item.id, recipe=item.recipe, kind="qa", turns=turns)) if turns else {}
    checks = []
    if item.graph != "persona" and ctx.deduper_questions is not None and texts.get("question"):
        checks.append((ctx.deduper_questions, "question", texts["question"]))
    if ctx.deduper_answers is not None and texts.get("answer"):
        checks.append((ctx.deduper_answers, "answer", texts["answer"]))
    for deduper, field, text in checks:
        hit = deduper.check(text, key_id=item.id)
        if hit is not None:
            emit(runtime, "duplicate", item.id, of=hit.earlier_id, field=field)
            return rejected([ReasonCode.DUPLICATE], meta={"duplicate_of": hit.earlier_id, "duplicate_kind": hit.kind,
                                                          "duplicate_field": field,
                                                          "similarity": round(hit.similarity, 4)})
    for deduper, _, text in checks:
        deduper.add(item.id, text)
    return {"status": "accepted", "outcome": "accept"}
