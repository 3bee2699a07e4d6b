"""The asker: writes the human side — questions about an aspect or a passage, follow-ups, a
persona's request, a help-seeker's messages. One model call per node, structured output.

Modes (chosen from the work item's payload):

- by aspect (`aspect`): one short question about a topic's aspect, shown what was already asked
  (`payload["avoid"]` and the latest questions asked for that aspect in this run, `ctx.asked`),
  grounded on passages retrieved for the aspect when a KB is present; a question the run's
  question deduper already holds is asked again (at most `max_revisions` times), then DUPLICATE;
- by chunk (`chunk`): one question answerable from that passage alone;
- follow-up: once a turn is accepted, a natural next question given the conversation (about an aspect:
  in view of the aspect's passages, in a prompt that starts as its first question's does);
- by scene: a human-like request for a greeting (persona graph) or a help-seeker's opening and
  next messages for an emotion × life area (dialogue graph).

>>> sorted(PROMPT_INPUTS["QUESTION_BY_ASPECT_PROMPT"])
['aspect', 'avoid', 'context', 'topic']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from agents.questions import question_problem
from agents.schemas import ReasonCode
from agents.structured import ask_structured
from agents.context import (
    Context, client, emit, item_of, new_turn, provenance, rejected, render, tagged, transcript,
)

log = logging.getLogger(__name__)

ASKER_SYSTEM = "你是一位好奇、细心的中文用户，擅长提出真实、自然、具体的问题。"

#: What a question about an aspect and a follow-up in that aspect's conversation both start with, word for
#: word: the instructions, the aspect and the passages it was retrieved for. What each asks for comes
#: after, so the follow-up's prompt repeats the start of the first question's, the prefix a server's
#: prompt cache reuses (issue 15), and the follow-up is asked with the same passages in view.
ASPECT_HEAD = """请围绕 <aspect> 里的这一方面，以普通用户的口吻提问。
要求：
- 只提一个问题，简短自然，口语化，一般 8 到 40 个字；
- 问题要能从 <context> 里的资料中找到答案；
- 不要编号，不要解释，不要给出答案；
- 不要与已经问过的问题重复，也不要只是换个说法。

<aspect>「{topic}」的「{aspect}」这一方面</aspect>

<context>
{context}
</context>

"""

QUESTION_BY_ASPECT_PROMPT = ASPECT_HEAD + """已经问过的问题：
<asked>
{avoid}
</asked>

请提出一个新问题。"""

FOLLOWUP_BY_ASPECT_PROMPT = ASPECT_HEAD + """下面是用户与助手到目前为止的对话：
<conversation>
{conversation}
</conversation>

请以用户的身份，针对助手上一个回答提出一个自然的追问：问回答里提到的某个细节，或接着它往下问；不要换话题，不要重复用户问过的问题。"""

QUESTION_BY_CHUNK_PROMPT = """请阅读下面这段资料，以普通用户的口吻提出一个只凭这段资料就能回答的问题。
要求：
- 只提一个问题，简短自然，一般 8 到 40 个字；
- 不要提到“资料”“这段文字”之类的说法，直接问内容本身；
- 不要编号，不要给出答案；不要与已经问过的问题重复。

<passage>
{chunk}
</passage>

已经问过的问题：
<asked>
{avoid}
</asked>"""

FOLLOWUP_PROMPT = """下面是用户与关于「{topic}」的助手的对话。请以用户的身份提出一个自然的追问：
顺着上一个回答继续深入或问相关的细节，不要重复已经问过的内容，只提一个问题，不要给出答案。

<conversation>
{conversation}
</conversation>"""

UNANSWERED_FOLLOWUPS = """

这些追问在资料里找不到答案，不要再问：
<unanswered>
{questions}
</unanswered>

请换一个方向，提出一个新的追问。"""

SCENE_OPENING_PROMPT = """请模仿真实用户，写一句请 AI 帮忙写祝福语的话。
要求：口语化，像在聊天框里随手打的字，一句话，不超过 30 个字，要写明对象、场景和风格；
对象：{role}；场景：{scene}；想要的风格：{style}。
参考说法（不要照抄）：{example}"""

SEEKER_OPENING_PROMPT = """请扮演一位正在寻求心理帮助的来访者，写下你对心理咨询师说的第一段话。
{instruction}
要求：第一人称，讲一个具体的处境和感受，50 到 150 个字；不要使用诊断名词，不要自称病人。
你的处境属于「{area}」方面，主要情绪是「{emotion}」。"""

SEEKER_NEXT_PROMPT = """请继续扮演这位来访者。
{instruction}
下面是到目前为止的对话。请写下来访者接下来要说的话：回应咨询师刚才的话，补充新的细节或感受，
不要重复说过的内容，30 到 120 个字。
来访者的处境属于「{area}」方面，主要情绪是「{emotion}」。

<conversation>
{conversation}
</conversation>"""

PROMPTS: dict[str, str] = {
    "QUESTION_BY_ASPECT_PROMPT": QUESTION_BY_ASPECT_PROMPT,
    "QUESTION_BY_CHUNK_PROMPT": QUESTION_BY_CHUNK_PROMPT,
    "FOLLOWUP_PROMPT": FOLLOWUP_PROMPT,
    "FOLLOWUP_BY_ASPECT_PROMPT": FOLLOWUP_BY_ASPECT_PROMPT,
    "SCENE_OPENING_PROMPT": SCENE_OPENING_PROMPT,
    "SEEKER_OPENING_PROMPT": SEEKER_OPENING_PROMPT,
    "SEEKER_NEXT_PROMPT": SEEKER_NEXT_PROMPT,
}

#: What each node supplies to each prompt (a test checks these equal the placeholders).
PROMPT_INPUTS: dict[str, frozenset[str]] = {
    "QUESTION_BY_ASPECT_PROMPT": frozenset({"topic", "aspect", "context", "avoid"}),
    "QUESTION_BY_CHUNK_PROMPT": frozenset({"chunk", "avoid"}),
    "FOLLOWUP_PROMPT": frozenset({"topic", "conversation"}),
    "FOLLOWUP_BY_ASPECT_PROMPT": frozenset({"topic", "aspect", "context", "conversation"}),
    "SCENE_OPENING_PROMPT": frozenset({"role", "scene", "style", "example"}),
    "SEEKER_OPENING_PROMPT": frozenset({"area", "emotion", "instruction"}),
    "SEEKER_NEXT_PROMPT": frozenset({"area", "emotion", "instruction", "conversation"}),
}

DEFAULT_SEEKER_INSTRUCTION = "说话像普通人倾诉，真诚、具体，带一点犹豫。"


class Question(BaseModel):
    question: str = Field(description="一个问题，只有问题本身。")


class Message(BaseModel):
    message: str = Field(description="要说的话，只有这段话本身。")


def vet_question(ctx: Context, state: dict[str, Any], question: str, sources: Sequence[str],
                 prov: dict[str, Any], *, dedup: bool, asked_key: str | None = None,
                 about_sources: bool = False, withheld: Sequence[str] = ()) -> dict[str, Any] | None:
    """None when `question` can go on; else the state update that asks again or, after `max_revisions`,
    rejects: NOT_A_QUESTION (`question_problem`) or DUPLICATE (the run's question deduper holds it; with
    `dedup`). A duplicate joins the questions shown as already asked; a non-question joins neither those nor,
    under `asked_key`, the run's `ctx.asked`: a small model shown its broken "question" copies it again."""
    item = item_of(state)
    problem = question_problem(question, sources, about_sources=about_sources, withheld=withheld)
    if problem is None:
        if asked_key:
            ctx.asked.setdefault(asked_key, []).append(question)
        if dedup and ctx.dedup_catch_up is not None:
            ctx.dedup_catch_up()
        hit = ctx.deduper_questions.check(question, key_id=item.id) if dedup and ctx.deduper_questions else None
        if hit is None:
            return None
        code, extra = ReasonCode.DUPLICATE, {"duplicate_of": hit.earlier_id}
    else:
        log.info("item %s: the asker's %r: %s", item.id, question, problem)
        code, extra = ReasonCode.NOT_A_QUESTION, {"question_problem": problem}
    earlier = list((state.get("meta") or {}).get("duplicate_questions") or [])
    shown = [*earlier, question] if code is ReasonCode.DUPLICATE else earlier
    meta = {**prov, "duplicate_questions": shown, **extra}
    used = state.get("revisions", 0)
    if used >= ctx.max_revisions:
        return rejected([code], question=question, meta=meta)
    return {"outcome": "revise", "revisions": used + 1, "meta": meta}


def fill(ctx: Context, name: str, **values: Any) -> str:
    """Render this module's prompt `name` (or the recipe's override) with exactly its inputs."""
    return render(ctx, name, PROMPTS[name], PROMPT_INPUTS[name], **values)


def topic_of(ctx: Context, item: Any) -> str:
    return item.get("topic") or ctx.recipe.get("topic") or ctx.recipe.get("recipe") or item.recipe


def question_prompt(ctx: Context, item: Any, turns: list[Any], extra_avoid: list[str],
                    context_passages: list[Any]) -> tuple[str, str]:
    """(prompt name, rendered prompt) for the next question of a QA item; `context_passages`: the
    passages its aspect's questions are asked from (a follow-up in an aspect sees them again).
    `extra_avoid`: for a first question, questions to avoid besides those asked; for a follow-up, the
    follow-ups nothing answered (said after the prompt, which a recipe may have replaced)."""
    context = "\n\n".join(p.text[:400] for p in context_passages) or "（无）"
    if turns:
        conversation = transcript(turns)
        overrides = ctx.recipe.get("prompts") or {}
        own_followup = "FOLLOWUP_PROMPT" in overrides and "FOLLOWUP_BY_ASPECT_PROMPT" not in overrides
        if item.get("aspect") and not item.get("chunk") and not own_followup:  # a recipe's own follow-up prompt wins
            name, prompt = "FOLLOWUP_BY_ASPECT_PROMPT", fill(
                ctx, "FOLLOWUP_BY_ASPECT_PROMPT", topic=topic_of(ctx, item), aspect=item.get("aspect"),
                context=context, conversation=conversation)
        else:
            name, prompt = "FOLLOWUP_PROMPT", fill(ctx, "FOLLOWUP_PROMPT", topic=topic_of(ctx, item),
                                                   conversation=conversation)
        return name, prompt + (UNANSWERED_FOLLOWUPS.format(questions=tagged(extra_avoid, "q")) if extra_avoid else "")
    earlier = ctx.asked.get(item.get("aspect") or "", [])[-ctx.asked_shown:] if ctx.asked_shown else []
    avoid = tagged(list(dict.fromkeys([*(item.get("avoid") or []), *earlier, *extra_avoid])), "q")
    if item.get("chunk"):
        return "QUESTION_BY_CHUNK_PROMPT", fill(ctx, "QUESTION_BY_CHUNK_PROMPT", chunk=item.get("chunk"), avoid=avoid)
    return "QUESTION_BY_ASPECT_PROMPT", fill(ctx, "QUESTION_BY_ASPECT_PROMPT", topic=topic_of(ctx, item),
                                             aspect=item.get("aspect") or "", context=context, avoid=avoid)


async def ask_question(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """QA node: the first question (by aspect or chunk) or a follow-up; dedups first questions."""
    ctx: Context = runtime.context
    item = item_of(state)
    turns = list(state.get("turns") or [])
    meta = state.get("meta") or {}
    extra_avoid = list(meta.get("unanswerable_followups" if turns else "duplicate_questions") or [])
    passages = []
    if not turns and not item.get("chunk") and ctx.kb is not None:
        passages = ctx.kb.retrieve(f"{topic_of(ctx, item)} {item.get('aspect') or ''}", 3)
    shown = list(state.get("context_passages") or []) if turns else passages
    name, prompt = question_prompt(ctx, item, turns, extra_avoid, shown)
    messages = [{"role": "system", "content": ASKER_SYSTEM}, {"role": "user", "content": prompt}]
    result = await ask_structured(client(ctx, "asker"), messages, Question, attempts=ctx.structured_attempts)
    prov = provenance(ctx, "asker", "ask", name, PROMPTS[name])
    if not result.ok:
        log.info("item %s: asker output unparsable: %s", item.id, result.error)
        return rejected([result.code], raw=result.raw, meta={**prov, "failed_step": "ask"})
    question = result.value.question.strip()
    emit(runtime, "asked", item.id, question=question, followup=bool(turns))
    sources = [p.text for p in shown] + ([str(item.get("chunk"))] if item.get("chunk") else [])
    again = vet_question(ctx, state, question, sources, prov, dedup=not turns,  # deduped only once accepted
                         asked_key=None if turns else item.get("aspect"))
    if again is not None:
        if "duplicate_of" in again["meta"]:
            emit(runtime, "duplicate_question", item.id, earlier=again["meta"]["duplicate_of"])
        else:
            emit(runtime, "not_a_question", item.id, problem=again["meta"]["question_problem"])
        return again
    update = {**new_turn(question), "outcome": "accept",
              "meta": {**prov, "question_context": [p.chunk_id for p in passages]} if passages else prov}
    return {**update, "context_passages": passages} if passages else update


def scene_example(ctx: Context, item: Any) -> str:
    """The templated request for this role/scene/style: variant-th template + the style's suffix.

    >>> ctx = Context(clients={}, recipe={"input_templates": ["祝{role}{scene}", "帮我给{role}写{scene}祝福"],
    ...                                 "styles": {"小红书": {"suffix": "，小红书风格"}}})
    >>> from agents.schemas import WorkItem
    >>> item = WorkItem(id="x", recipe="tianji", graph="persona",
    ...                 key={"role": "爷爷", "scene": "生日", "style": "小红书", "variant": 1})
    >>> scene_example(ctx, item)
    '帮我给爷爷写生日祝福，小红书风格'
    """
    templates = ctx.recipe.get("input_templates") or ["祝{role}{scene}"]
    template = templates[int(item.get("variant") or 0) % len(templates)]
    style = item.get("style") or ""
    suffix = ((ctx.recipe.get("styles") or {}).get(style) or {}).get("suffix", "")
    return template.format(role=item.get("role"), scene=item.get("scene")) + (suffix or "")


async def ask_opening(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Persona node: the user's request. Templated (no model call) unless `payload["humanize"]`."""
    ctx: Context = runtime.context
    item = item_of(state)
    example = item.get("input") or scene_example(ctx, item)
    if not item.get("humanize"):
        return {"question": example, "meta": {"input_source": "template"}}
    prompt = fill(ctx, "SCENE_OPENING_PROMPT", role=item.get("role"), scene=item.get("scene"),
                  style=item.get("style") or "正常", example=example)
    messages = [{"role": "system", "content": ASKER_SYSTEM}, {"role": "user", "content": prompt}]
    result = await ask_structured(client(ctx, "asker"), messages, Message, attempts=ctx.structured_attempts)
    prov = provenance(ctx, "asker", "ask", "SCENE_OPENING_PROMPT", SCENE_OPENING_PROMPT)
    if not result.ok:
        return rejected([result.code], raw=result.raw, meta={**prov, "failed_step": "ask"})
    return {"question": result.value.message.strip(), "meta": {**prov, "input_source": "asker"}}


async def ask_seeker(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Dialogue node: the help-seeker's opening message, or the next one given the conversation."""
    ctx: Context = runtime.context
    item = item_of(state)
    turns = list(state.get("turns") or [])
    values = {"area": item.get("area") or "", "emotion": item.get("emotion") or "",
              "instruction": ctx.recipe.get("seeker_instruction") or DEFAULT_SEEKER_INSTRUCTION}
    if turns:
        name = "SEEKER_NEXT_PROMPT"
        prompt = fill(ctx, name, conversation=transcript(turns, "来访者", "咨询师"), **values)
    else:
        name = "SEEKER_OPENING_PROMPT"
        prompt = fill(ctx, name, **values)
    messages = [{"role": "system", "content": ASKER_SYSTEM}, {"role": "user", "content": prompt}]
    result = await ask_structured(client(ctx, "asker"), messages, Message, attempts=ctx.structured_attempts)
    prov = provenance(ctx, "asker", "seek", name, PROMPTS[name])
    if not result.ok:
        return rejected([result.code], raw=result.raw, meta={**prov, "failed_step": "seek"})
    message = result.value.message.strip()
    emit(runtime, "seeker", item.id, turn=len(turns) + 1, text=message)
    return {**new_turn(message), "meta": prov}
