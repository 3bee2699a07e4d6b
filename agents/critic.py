"""The critic / cleaner: the pure-Python rule layer first, then an LLM judge; dedup after acceptance.

Each critique node returns `outcome` = accept | revise | reject for the route functions:

- rule hits (agents.rules) → revise with the rules' messages as feedback (no judge call). Every rule
  runs on every draft, revisions included, with what produced it: the prompt text, the few-shots,
  the feedback just sent and the knowledge files (`rule_context`); a reply cut at max_tokens never
  gets here (`agents.structured` records it as TRUNCATED);
- the judge (`Verdict`: reasons first, then decision, codes, scores, feedback), gated by `ctx.judge`
  (off | on | strict: agents/judge.py). A reply missing a required score key is re-asked;
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

from agents.critic_rules import (  # noqa: F401  (re-exported)
    compat_reason, kept_reasoning, knowledge_files, rule_context, rule_hits,
)
from agents.dedup import sample_texts
from agents.judge import DialogueVerdict, PersonaVerdict, QAVerdict, gate, judge_mode
from agents.rules import RuleHit
from agents.rules import feedback as rule_feedback
from agents.rules import reason_codes
from agents.rules.leaks import feedback_own_words
from agents.schemas import ReasonCode, Sample, Turn, Verdict, draft_context
from agents.structured import ask_structured
from agents.context import (
    Context, client, current_turns, emit, item_of, new_turn, provenance, rejected, render, transcript,
)

log = logging.getLogger(__name__)

CRITIC_SYSTEM = "你是一名严格、公正的中文微调数据质检员。你只评估，不改写。"

_DECIDE = """先逐条写出理由（reasons），再给结论 decision：accept（可以直接使用）、revise（能改好：在 feedback 里写出具体怎么改）、
reject（无法修复）。有问题时在 reason_codes 里给出对应的原因代码。"""

JUDGE_QA_PROMPT = """请评估助手的回答能否作为高质量的微调数据。逐项检查：
1. grounding：回答里的每一条事实是否都能在资料中找到依据？有没有资料之外的编造？（UNGROUNDED）
2. relevance：是否切题、完整地回答了问题？回答必须是完整、有信息量的句子，只有一个词组（如只写“单机动作角色扮演游戏”）不合格。（IRRELEVANT、INCOMPLETE_ANSWER）
3. 资料痕迹：微调后的模型看不到资料，回答里不能出现“根据提供的资料”“资料中提到”、[1] 之类的引用编号或文件名。（CONTEXT_LEAK）
4. style：是否符合助手的人设，语言自然通顺，没有开场白、套话、拒答或复述的提示词？（STYLE_MISMATCH、PREAMBLE、REFUSAL、PROMPT_LEAK）
如果资料根本无法回答这个问题，结论为 reject，代码 UNANSWERABLE。
""" + _DECIDE + """
scores 必须给出 grounding、relevance、style 三项 0 到 1 的分数（键名就用这三个英文单词）。

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
1. 对象：祝福是不是写给对象本人的？开头的称呼是不是对象（而不是别人，比如对象是奶奶却称呼爷爷）？（ADDRESSEE_MISMATCH）
2. persona：称呼、语气是否符合和对象的关系：对长辈和上级用“您”，对平辈和晚辈用“你”？（HONORIFIC、ROLE_SCENE_MISMATCH）
3. 场景：内容是否切合场景？有没有写成别的节日或场合（比如生日祝福里写月亮、月饼）？（SCENE_MISMATCH）
4. 照抄示例：是否照抄或大段照搬了下面的示例？示例只用来学语气。（FEWSHOT_COPY）
5. style：是否符合风格的要求？（STYLE_MISMATCH）
6. 是否像真人写的，没有标题、说明、开场白、套话、HTML 或混进来的写作要求？（PREAMBLE、MARKDOWN、PROMPT_LEAK）
""" + _DECIDE + """
scores 必须给出 persona、relevance、style 三项 0 到 1 的分数（键名就用这三个英文单词）；relevance 衡量是否切合场景。

<examples>
{examples}
</examples>
<system>{system}</system>
<target>对象：{role}；场景：{scene}；风格：{style}，{instruction}</target>
<request>{request}</request>
<reply>{reply}</reply>"""

JUDGE_DIALOGUE_PROMPT = """请评估这段心理咨询对话能否作为高质量的微调数据。来访者的处境和情绪见文末的 <situation>。
逐项检查：
1. persona：咨询师是否始终保持温暖、专业的人设，没有说教、下诊断或自称 AI？（PERSONA_DRIFT）
2. repetition：有没有哪一轮重复前面的内容？（REPEATED_TURN）
3. contradiction：前后有没有自相矛盾，包括来访者的经历前后不一？（CONTRADICTION）
4. roles：来访者是否始终以来访者的身份说话，没有复述咨询师的话、没有说咨询师的话？咨询师有没有照抄来访者？（CROSS_ROLE_ECHO、ROLE_CONFUSION）
5. ending：对话是否以咨询师温和的小结或鼓励结束，而不是像客服一样说“如果你有任何问题请随时告诉我”？（BAD_ENDING、PERSONA_DRIFT）
6. 有没有混进修改意见、写作要求或照抄的示例？（FEEDBACK_LEAK、PROMPT_LEAK、FEWSHOT_COPY）
""" + _DECIDE + """
如果需要修改，在 turn 里给出第一处需要重写的咨询师回复的轮次（从 1 开始）。
scores 必须给出 persona、coherence、helpfulness 三项 0 到 1 的分数（键名就用这三个英文单词）。

<system>{system}</system>
<situation>处境属于「{area}」方面，主要情绪是「{emotion}」</situation>
<dialogue>
{dialogue}
</dialogue>"""

PROMPTS: dict[str, str] = {"JUDGE_QA_PROMPT": JUDGE_QA_PROMPT, "JUDGE_PERSONA_PROMPT": JUDGE_PERSONA_PROMPT,
                           "JUDGE_DIALOGUE_PROMPT": JUDGE_DIALOGUE_PROMPT}
PROMPT_INPUTS: dict[str, frozenset[str]] = {
    "JUDGE_QA_PROMPT": frozenset({"system", "passages", "conversation", "question", "answer"}),
    "JUDGE_PERSONA_PROMPT": frozenset({"role", "scene", "style", "instruction", "examples", "system", "request",
                                       "reply"}),
    "JUDGE_DIALOGUE_PROMPT": frozenset({"area", "emotion", "system", "dialogue"}),
}

#: The code recorded when the judge rejects or revises without naming one, per graph (agents.schemas.GraphName;
#: docqa's answers are grounded in the user's documents, as qa's in the index).
DEFAULT_CODE = {"qa": ReasonCode.UNGROUNDED, "docqa": ReasonCode.UNGROUNDED, "persona": ReasonCode.STYLE_MISMATCH,
                "dialogue": ReasonCode.PERSONA_DRIFT}


def fill(ctx: Context, name: str, **values: Any) -> str:
    return render(ctx, name, PROMPTS[name], PROMPT_INPUTS[name], **values)


# ---- the rule layer ---------------------------------------------------------------------------

def rules_step(ctx: Context, state: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The update for rule hits (revise, or reject when out of revisions); None when clean.

    Hits that are all in the turn's input (a help-seeker's message that echoes the counsellor) reject
    at once: the reviser can only rewrite the output, so a revision could not fix them.
    """
    hits = rule_hits(ctx, state, kind)
    if not hits:
        return None
    codes = reason_codes(hits)
    text = rule_feedback(hits)
    unfixable = all(h.on_input for h in hits)
    verdict = Verdict(reasons=[h.message for h in hits], decision="reject" if unfixable else "revise",
                      reason_codes=codes, feedback=None if unfixable else text)
    meta = {"rule_hits": [_hit_record(h, current_turns(state)) for h in hits]}
    return decide(ctx, state, verdict, meta=meta)


def _hit_record(hit: RuleHit, turns: list[Turn]) -> dict[str, Any]:
    """A rule hit for `meta.rule_hits`; with a span, also the text under it (the review page highlights it)."""
    record = {"rule": hit.rule, "code": hit.code.value, "message": hit.message, "turn": hit.turn}
    if hit.on_input:
        record["on_input"] = True  # in the turn's input (a help-seeker's message), not its output
    if hit.span is not None and hit.turn is not None and hit.turn < len(turns):
        turn = turns[hit.turn]
        record["span"] = list(hit.span)  # offsets into the turn's output (or input), stripped
        record["text"] = (turn.input if hit.on_input else turn.output).strip()[hit.span[0]:hit.span[1]]
    return record


# ---- deciding ---------------------------------------------------------------------------------

def accept_turn(state: dict[str, Any]) -> dict[str, Any]:
    """Commit the turn in progress."""
    turn = Turn(input=state["question"], output=state.get("draft") or "",
                reasoning=state.get("draft_reasoning") or None)
    return {"turns": [*(state.get("turns") or []), turn], **new_turn(None), "draft_reasoning": None,
            "prompt_text": None, "few_shots": []}


def decide(ctx: Context, state: dict[str, Any], verdict: Verdict, *, meta: dict[str, Any] | None = None,
           commit: bool = True, counter: str = "revisions") -> dict[str, Any]:
    """Turn a verdict into the state update: accept (commit), revise (with feedback) or reject.

    `counter` is the state key counting revisions against `ctx.max_revisions`. A draft's reasoning that
    talks about the revision loop is kept neither in the turn nor in the drafts (`kept_reasoning`).
    """
    item = item_of(state)
    state, dropped = kept_reasoning(ctx, state)
    history = list((state.get("meta") or {}).get("critic_history") or [])
    history.append({"decision": verdict.decision, "codes": [c.value for c in verdict.reason_codes],
                    "by": "rules" if meta and ("rule_hits" in meta or meta.get("judge") == "off") else "judge"})
    extra = {"meta": {**(meta or {}), "critic_history": history}}
    turns = list(state.get("turns") or [])
    judged = current_turns(state) if state.get("draft") is not None else turns  # the dialogue judge: the last turn
    if judged:
        drafts = list((state.get("meta") or {}).get("drafts") or [])
        extra["meta"]["drafts"] = [*drafts, draft_record(judged, len(judged) - 1, history[-1])]
    if verdict.decision == "accept":
        extra["meta"].update(dropped)
        return {"verdict": verdict, "outcome": "accept", **(accept_turn(state) if commit else {}), **extra}
    codes = verdict.reason_codes or [DEFAULT_CODE[item.graph]]
    used = state.get(counter) or 0
    if verdict.decision == "revise" and used < ctx.max_revisions:
        text = verdict.feedback or "；".join(verdict.reasons) or "请提高质量。"
        return {"verdict": verdict, "outcome": "revise", counter: used + 1, "feedback": text,
                "feedback_sent": [*(state.get("feedback_sent") or []), feedback_own_words(text, state.get("draft"))],
                **extra}
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
                 schema: type[Verdict]) -> tuple[Verdict | None, dict[str, Any]]:
    item = item_of(state)
    messages = [{"role": "system", "content": CRITIC_SYSTEM}, {"role": "user", "content": prompt}]
    result = await ask_structured(client(ctx, "critic"), messages, schema, attempts=ctx.structured_attempts,
                                  reask_cut=True)
    prov = provenance(ctx, "critic", "judge", name, PROMPTS[name])
    if not result.ok:
        log.info("item %s: critic output unparsable: %s", item.id, result.error)
        return None, rejected([result.code], raw=result.raw, meta={**prov, "failed_step": "critique"})
    emit(runtime, "verdict", item.id, decision=result.value.decision,
         codes=[c.value for c in result.value.reason_codes])
    return result.value, prov


def judged(ctx: Context, state: dict[str, Any], verdict: Verdict, update: dict[str, Any], judge: str, *,
           commit: bool = True, counter: str = "revisions") -> dict[str, Any]:
    """Decide on the judge's verdict after the score gate (`gate`); the gate's reason goes to meta."""
    plain = Verdict.model_validate(verdict.model_dump(include=set(Verdict.model_fields)))
    gated, why = gate(ctx, plain, judge)
    return decide(ctx, state, gated, meta={**update, "judge": ctx.judge, **(why or {})}, commit=commit,
                  counter=counter)


def rules_only(ctx: Context, state: dict[str, Any], *, commit: bool = True) -> dict[str, Any]:
    """`judge: off`: the rules found nothing, so the draft is accepted without a model call."""
    verdict = Verdict(reasons=["规则检查通过；LLM 评审已关闭（judge: off）。"], decision="accept")
    return decide(ctx, state, verdict, meta={"judge": "off"}, commit=commit)


# ---- critique nodes ---------------------------------------------------------------------------

async def critique_answer(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """QA node: rules on the answer, then the grounding / relevance / style judge."""
    from agents.answerer import DEFAULT_SYSTEM, format_passages

    ctx: Context = runtime.context
    found = rules_step(ctx, state, "answer")
    if found is not None:
        return found
    if judge_mode(ctx) == "off":
        return rules_only(ctx, state)
    prompt = fill(ctx, "JUDGE_QA_PROMPT", system=ctx.recipe.get("system_prompt") or DEFAULT_SYSTEM,
                  passages=format_passages(state.get("passages") or []),
                  conversation=transcript(state.get("turns") or []), question=state["question"],
                  answer=state.get("draft") or "")
    verdict, update = await _judge(ctx, runtime, state, "JUDGE_QA_PROMPT", prompt, QAVerdict)
    return update if verdict is None else judged(ctx, state, verdict, update, "qa")


async def critique_greeting(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Persona node: rules (punctuation, preamble, length, emoji, honorifics …), then the persona/style judge."""
    ctx: Context = runtime.context
    found = rules_step(ctx, state, "greeting")
    if found is not None:
        return found
    if judge_mode(ctx) == "off":
        return rules_only(ctx, state)
    prompt = persona_judge_prompt(ctx, item_of(state), state["question"], state.get("draft") or "")
    verdict, update = await _judge(ctx, runtime, state, "JUDGE_PERSONA_PROMPT", prompt, PersonaVerdict)
    return update if verdict is None else judged(ctx, state, verdict, update, "persona")


def persona_judge_prompt(ctx: Context, item: Any, request: str, reply: str) -> str:
    """JUDGE_PERSONA_PROMPT for this item: role, scene, style, the few-shots the writer saw, the reply."""
    from agents.responder import DEFAULT_PERSONA_SYSTEM, style_config, styled_shots

    style = item.get("style") or "正常"
    examples = "\n".join(f"<example>{s['output']}</example>" for s in styled_shots(ctx, item)) or "（无）"
    return fill(ctx, "JUDGE_PERSONA_PROMPT", role=item.get("role") or "", scene=item.get("scene") or "",
                style=style, instruction=style_config(ctx, style).get("instruction") or f"{style}风格",
                examples=examples, system=ctx.recipe.get("system_prompt") or DEFAULT_PERSONA_SYSTEM,
                request=request, reply=reply)


async def check_turn(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Dialogue node: the rule layer on the counsellor's latest turn (no model call)."""
    ctx: Context = runtime.context
    found = rules_step(ctx, state, "dialogue_turn")
    if found is not None:
        return found
    state, dropped = kept_reasoning(ctx, state)
    return {"outcome": "accept", **accept_turn(state), **({"meta": dropped} if dropped else {})}


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
    if judge_mode(ctx) == "off":
        return rules_only(ctx, state, commit=False)
    system = ctx.recipe.get("counsellor_system_prompt") or DEFAULT_COUNSELLOR_SYSTEM
    prompt = fill(ctx, "JUDGE_DIALOGUE_PROMPT", area=item.get("area") or "", emotion=item.get("emotion") or "",
                  system=system, dialogue=transcript(turns, "来访者", "咨询师"))
    verdict, update = await _judge(ctx, runtime, state, "JUDGE_DIALOGUE_PROMPT", prompt, DialogueVerdict)
    if verdict is None:
        return update
    result = judged(ctx, state, verdict, update, "dialogue", commit=False, counter="dialogue_revisions")
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
    if ctx.dedup_catch_up is not None:
        ctx.dedup_catch_up()
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
