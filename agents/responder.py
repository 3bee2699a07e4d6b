"""The persona responder: writes the assistant side in a persona and a style.

- `respond_styled` (persona graph): a greeting for a role and scene in a style (Tianji's 小红书 /
  正常 / 严肃), with few-shot examples sampled from the recipe's `styles.<name>.few_shot` (once per
  style and run seed), the style's length limit, and one randomly injected constraint from
  `random_constraints` (the seed's `random_finalprompt_sentence` idea) — chosen per item, so a rerun
  makes the same choice.
- `respond_counsellor` (dialogue graph): the counsellor's turn, with the recipe's
  `counsellor_system_prompt` and `counsellor_few_shot` (picked once per run seed); the last turn is
  asked to close the talk (the "turn n of m" note comes last, after the dialogue).

Prompt layout, for providers' prefix caches: what every item of a style shares comes first, the item's
role, scene, constraint and request last. A revision appends the previous draft and the critic's
feedback to the same conversation.

>>> sorted(PROMPT_INPUTS["STYLED_REPLY_PROMPT"])
['constraint', 'examples', 'instruction', 'max_chars', 'request', 'role', 'scene', 'style']
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, Field

from agents.structured import ask_structured
from agents.context import Context, client, emit, item_of, provenance, rejected, render, rng

log = logging.getLogger(__name__)

DEFAULT_PERSONA_SYSTEM = "你是一个善于表达、懂得人情世故的中文祝福语写作助手。"
DEFAULT_COUNSELLOR_SYSTEM = "你是一位温暖、专业的心理咨询师，善于倾听、共情，并一步步帮助来访者找到可行的办法。"
DEFAULT_MAX_CHARS = {"正常": 200, "严肃": 200, "小红书": 300}

STYLED_REPLY_PROMPT = """请根据下面的请求写一条祝福语。
根据对象的身份用合适的语气：对长辈和上级用“您”，对平辈和晚辈用“你”，对兄弟姐妹不要用“尊敬的”。
直接给出祝福语正文：不要标题，不要任何说明或开场白，不要以标点开头，使用中文标点。
风格：{style}。
风格要求：{instruction}
字数不超过 {max_chars} 字。
参考下面例子的语气和写法（只学风格，不要照抄内容）：
<examples>
{examples}
</examples>

对象：{role}；场景：{scene}；{constraint}
<request>{request}</request>"""

STYLED_REVISION_PROMPT = """这条祝福语需要修改。修改意见：
<feedback>{feedback}</feedback>
请按意见重写整条祝福语，只输出新的祝福语。"""

COUNSELLOR_PROMPT = """你正在进行一次心理咨询对话。像下面的例子那样回应来访者：先共情，再澄清或追问，
逐步给出具体可行的建议；语言温暖、口语化，不说教，不下诊断，不自称 AI，每次 60 到 200 个字。
来访者每条消息后的 <progress> 说明对话进行到哪一轮，它不是来访者说的话。
<examples>
{examples}
</examples>"""

COUNSELLOR_TURN_PROMPT = """{message}

<progress>{progress}</progress>"""

COUNSELLOR_REVISION_PROMPT = """你刚才的回应需要修改。修改意见：
<feedback>{feedback}</feedback>
请按意见重写这一轮的回应。"""

PROMPTS: dict[str, str] = {
    "STYLED_REPLY_PROMPT": STYLED_REPLY_PROMPT,
    "STYLED_REVISION_PROMPT": STYLED_REVISION_PROMPT,
    "COUNSELLOR_PROMPT": COUNSELLOR_PROMPT,
    "COUNSELLOR_TURN_PROMPT": COUNSELLOR_TURN_PROMPT,
    "COUNSELLOR_REVISION_PROMPT": COUNSELLOR_REVISION_PROMPT,
}
PROMPT_INPUTS: dict[str, frozenset[str]] = {
    "STYLED_REPLY_PROMPT": frozenset({"role", "scene", "style", "instruction", "max_chars", "constraint",
                                      "examples", "request"}),
    "STYLED_REVISION_PROMPT": frozenset({"feedback"}),
    "COUNSELLOR_PROMPT": frozenset({"examples"}),
    "COUNSELLOR_TURN_PROMPT": frozenset({"message", "progress"}),
    "COUNSELLOR_REVISION_PROMPT": frozenset({"feedback"}),
}


class Reply(BaseModel):
    text: str = Field(description="回复正文，只有正文本身。")


def fill(ctx: Context, name: str, **values: Any) -> str:
    return render(ctx, name, PROMPTS[name], PROMPT_INPUTS[name], **values)


def style_config(ctx: Context, style: str | None) -> dict[str, Any]:
    return ((ctx.recipe.get("styles") or {}).get(style or "") or {})


def max_chars(ctx: Context, style: str | None) -> int:
    return int(style_config(ctx, style).get("max_chars") or DEFAULT_MAX_CHARS.get(style or "", 200))


def pick_constraint(ctx: Context, item_id: str) -> str:
    """One of the recipe's `random_constraints` ("" allowed), fixed per item and run seed."""
    choices = ctx.recipe.get("random_constraints") or []
    return rng(ctx, item_id, "constraint").choice(choices).strip() if choices else ""


def pick_examples(ctx: Context, examples: list[dict[str, Any]], key: str, salt: str) -> list[dict[str, Any]]:
    """`few_shot_k` of the examples, chosen by the run seed and `key`.

    The key is the style (greetings) or the recipe (counsellor), not the item: the examples then sit
    in the part of the prompt every item of that style shares, which a provider's prefix cache serves
    at a fraction of the price (a per-item pick re-sent ~300 tokens uncached on every call). Another
    run seed picks other examples."""
    k = int(ctx.recipe.get("few_shot_k") or 3)
    return rng(ctx, key, salt).sample(examples, min(k, len(examples))) if examples else []


def styled_shots(ctx: Context, item: Any) -> list[dict[str, Any]]:
    """The few-shot examples this item's prompt shows (the same on every call and rerun)."""
    style = item.get("style") or "正常"
    return pick_examples(ctx, style_config(ctx, style).get("few_shot") or [], f"style:{style}", "few_shot")


def styled_values(ctx: Context, item: Any, request: str) -> dict[str, Any]:
    """Everything STYLED_REPLY_PROMPT needs for this item (pure: a rerun gets the same values)."""
    style = item.get("style") or "正常"
    cfg = style_config(ctx, style)
    shots = styled_shots(ctx, item)
    examples = "\n".join(f"<example><input>{s['input']}</input><output>{s['output']}</output></example>"
                         for s in shots) or "（无）"
    constraint = pick_constraint(ctx, item.id)
    return {"role": item.get("role") or "", "scene": item.get("scene") or "", "style": style,
            "instruction": cfg.get("instruction") or f"{style}风格。", "max_chars": max_chars(ctx, style),
            "constraint": f"另外：{constraint}" if constraint else "", "examples": examples, "request": request}


async def respond_styled(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Persona node: the styled greeting for the request in `question` (revised when feedback is set)."""
    ctx: Context = runtime.context
    item = item_of(state)
    values = styled_values(ctx, item, state["question"])
    messages = [{"role": "system", "content": ctx.recipe.get("system_prompt") or DEFAULT_PERSONA_SYSTEM},
                {"role": "user", "content": fill(ctx, "STYLED_REPLY_PROMPT", **values)}]
    if state.get("feedback") and state.get("draft"):
        messages += [{"role": "assistant", "content": state["draft"]},
                     {"role": "user", "content": fill(ctx, "STYLED_REVISION_PROMPT", feedback=state["feedback"])}]
    shots = [str(s["output"]) for s in styled_shots(ctx, item)]
    return await _reply(ctx, runtime, state, item, messages, "respond", "STYLED_REPLY_PROMPT",
                        {"constraint": values["constraint"].removeprefix("另外：")}, shots)


def counsellor_progress(turn: int, planned: int) -> str:
    """Where the dialogue stands, so the last counsellor turn closes it.

    >>> counsellor_progress(3, 3)
    '这是最后一轮（第 3 轮，共 3 轮）：回应来访者后，温和地小结并给予鼓励，作为这次对话的结束。'
    """
    if turn >= planned:
        return f"这是最后一轮（第 {turn} 轮，共 {planned} 轮）：回应来访者后，温和地小结并给予鼓励，作为这次对话的结束。"
    return f"这是第 {turn} 轮（共 {planned} 轮），对话还会继续：不要急于结束。"


def counsellor_shots(ctx: Context, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The counsellor examples shown for the turn in progress (the same for every item of the run)."""
    return pick_examples(ctx, ctx.recipe.get("counsellor_few_shot") or [], "counsellor", "few_shot")


def counsellor_messages(ctx: Context, state: dict[str, Any]) -> list[dict[str, str]]:
    turns = list(state.get("turns") or [])
    shots = counsellor_shots(ctx, state)
    examples = "\n".join(f"<example><seeker>{s['seeker']}</seeker><counsellor>{s['counsellor']}</counsellor></example>"
                         for s in shots) or "（无）"
    system = ctx.recipe.get("counsellor_system_prompt") or ctx.recipe.get("system_prompt") or DEFAULT_COUNSELLOR_SYSTEM
    guide = fill(ctx, "COUNSELLOR_PROMPT", examples=examples)
    progress = counsellor_progress(len(turns) + 1, int(state.get("planned_turns") or len(turns) + 1))
    # stable first (system, guide, examples, then the JSON schema appended to it), the dialogue after it,
    # and what changes every turn — where the dialogue stands — last
    messages = [{"role": "system", "content": f"{system}\n\n{guide}"}]
    for turn in turns:
        messages += [{"role": "user", "content": turn.input}, {"role": "assistant", "content": turn.output}]
    messages.append({"role": "user", "content": fill(ctx, "COUNSELLOR_TURN_PROMPT", message=state["question"],
                                                     progress=progress)})
    if state.get("feedback") and state.get("draft"):
        messages += [{"role": "assistant", "content": state["draft"]},
                     {"role": "user", "content": fill(ctx, "COUNSELLOR_REVISION_PROMPT", feedback=state["feedback"])}]
    return messages


async def respond_counsellor(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Dialogue node: the counsellor's answer to the seeker's message in `question`."""
    ctx: Context = runtime.context
    item = item_of(state)
    shots = [str(s["counsellor"]) for s in counsellor_shots(ctx, state)]
    return await _reply(ctx, runtime, state, item, counsellor_messages(ctx, state), "counsel", "COUNSELLOR_PROMPT", {},
                        shots)


def sent_prompt(messages: list[dict[str, str]]) -> str:
    """The instructions the model saw: the system message and the prompts we filled. The
    conversation so far (the help-seeker's words, earlier replies) is left out: a reply may echo it,
    and other rules judge that."""
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), len(messages))
    filled = [m["content"] for m in messages[:first_user] if m["role"] == "system"]
    if messages[first_user:first_user + 1] and "<request>" in messages[first_user]["content"]:
        filled.append(messages[first_user]["content"])  # the styled prompt is the first user message
    if messages and "<feedback>" in messages[-1]["content"]:
        filled.append(messages[-1]["content"])  # the revision request with its feedback
    return "\n".join(filled)


async def _reply(ctx: Context, runtime: Any, state: dict[str, Any], item: Any, messages: list[dict[str, str]],
                 step: str, name: str, meta: dict[str, Any], shots: list[str]) -> dict[str, Any]:
    result = await ask_structured(client(ctx, "responder"), messages, Reply, attempts=ctx.structured_attempts)
    attempts = state.get("attempts", 0) + 1
    prov = provenance(ctx, "responder", step, name, PROMPTS[name])
    if not result.ok:
        log.info("item %s: responder output unparsable: %s", item.id, result.error)
        return rejected([result.code], raw=result.raw, attempts=attempts, meta={**prov, "failed_step": step})
    emit(runtime, "responded", item.id, step=step, attempt=attempts)
    return {"draft": result.value.text.strip(), "draft_reasoning": result.reasoning or None, "attempts": attempts,
            "prompt_text": sent_prompt(messages), "few_shots": shots, "meta": {**prov, **meta}}
