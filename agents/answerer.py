"""The answerer (RAG): retrieve → answerability gate → an answer grounded only in the passages.

Backends, in order of preference for one item:

- the passage the question was written from (`payload["chunk"]`);
- a HuixiangDou server (`ctx.huixiangdou`), which answers by itself; a revision is then written by
  the answerer model from HuixiangDou's answer;
- the knowledge base (`ctx.kb.retrieve` + `ctx.kb.is_answerable`), after the passages the question was
  written from when the asker had them (an aspect's context, `with_context`);
- web search (`ctx.search`) when the knowledge base cannot answer — sources are URLs;
- otherwise the item is rejected with UNANSWERABLE. With no KB, no HuixiangDou and no search the
  model answers on its own (recorded as retrieval "none").

Source ids and scores go to `sample.meta["sources"]` (one entry per passage, with its turn).

>>> sorted(PROMPT_INPUTS["ANSWER_PROMPT"])
['conversation', 'passages', 'question']
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from pydantic import BaseModel, Field, field_validator

from agents.schemas import ReasonCode
from agents.structured import ask_structured
from agents.context import (
    Context, client, emit, item_of, placeholders, provenance, rejected, render, template, transcript,
)

log = logging.getLogger(__name__)

DEFAULT_SYSTEM = "你是一个知识丰富、严谨的中文助手。"

ANSWER_PROMPT = """请只根据下面的资料回答用户的问题。
要求：
- 资料里没有的内容不要写，不要编造；资料只能回答一部分时，只回答能确定的部分；
- 直接回答，不要说“根据资料”“以下是”之类的开场白，不要提到资料的编号；
- 用自然、准确、通顺的中文，使用中文标点；
- <conversation> 里是前面的对话（没有则为“（无）”），追问时接着它回答，不要重复已经说过的内容。

<passages>
{passages}
</passages>

<conversation>
{conversation}
</conversation>

<question>{question}</question>"""

ANSWER_REVISION_PROMPT = """你的回答需要修改。修改意见：
<feedback>{feedback}</feedback>
请按意见重写回答，仍然只依据上面的资料。"""

PROMPTS: dict[str, str] = {"ANSWER_PROMPT": ANSWER_PROMPT, "ANSWER_REVISION_PROMPT": ANSWER_REVISION_PROMPT}
PROMPT_INPUTS: dict[str, frozenset[str]] = {
    "ANSWER_PROMPT": frozenset({"passages", "conversation", "question"}),
    "ANSWER_REVISION_PROMPT": frozenset({"feedback"}),
}

NO_PASSAGES = "（没有检索到资料：请凭可靠的常识回答，不确定的内容不要写。）"


class Answer(BaseModel):
    """`used_passages` is bookkeeping (meta only): what is not a passage number is dropped rather than the
    answer rejected.

    >>> Answer.model_validate({"answer": "在黑风洞。", "used_passages": ["docs/a.md", "2", "[3]", 1]}).used_passages
    [2, 3, 1]
    """

    answer: str = Field(description="给用户的回答正文。")
    used_passages: list[int] = Field(default_factory=list, description="回答用到的资料编号。")

    @field_validator("used_passages", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any) -> list[int]:
        items = value if isinstance(value, list) else [value]
        found = (re.fullmatch(r"\s*\[?\s*(\d{1,4})\s*\]?\s*", str(v)) for v in items if not isinstance(v, bool))
        return [int(m.group(1)) for m in found if m]


def fill(ctx: Context, name: str, **values: Any) -> str:
    return render(ctx, name, PROMPTS[name], PROMPT_INPUTS[name], **values)


def format_passages(passages: list[Any]) -> str:
    """Numbered passages with their source, for the prompt.

    >>> from agents.schemas import Passage
    >>> print(format_passages([Passage(text="石猴出世。", source="西游记/001.txt", chunk_id="c")]))
    <passage id="1" source="西游记/001.txt">石猴出世。</passage>
    """
    if not passages:
        return NO_PASSAGES
    return "\n".join(f'<passage id="{i}" source="{p.source}">{p.text}</passage>' for i, p in enumerate(passages, 1))


def source_records(passages: list[Any], turn: int, origin: str) -> list[dict[str, Any]]:
    """One `meta.sources` entry per passage; `origin` says where it came from (kb | web | huixiangdou |
    chunk); web sources keep their URL and page title.

    >>> from agents.schemas import Passage
    >>> source_records([Passage(text="…", source="https://x.cn/a", chunk_id="https://x.cn/a", title="甲")], 0, "web")
    [{'turn': 0, 'source': 'https://x.cn/a', 'chunk_id': 'https://x.cn/a', 'score': 0.0, 'scores': {}, 'origin': 'web', 'url': 'https://x.cn/a', 'title': '甲'}]
    """
    records = []
    for p in passages:
        record = {"turn": turn, "source": p.source, "chunk_id": p.chunk_id, "score": p.score,
                  "scores": dict(p.scores), "origin": origin}
        if origin == "web":
            record.update(url=p.source, title=p.title)
        records.append(record)
    return records


def _chunk_passage(item: Any) -> Any:
    from agents.schemas import Passage

    source = item.get("source") or "chunk"
    return Passage(text=item.get("chunk"), source=source, chunk_id=item.get("chunk_id") or f"{source}#chunk",
                   score=1.0, scores={"given": 1.0})


#: Passages a follow-up gets beyond its aspect's context: it asks for what the first answer did not say
#: (given the context and one more, the scripted follow-up answer repeated the first).
FOLLOW_UP_NEW = 2


def with_context(context: list[Any], found: list[Any], k: int, *, follow_up: bool = False) -> list[Any]:
    """The passages to answer from, given an aspect's context (the passages the asker wrote the item's
    questions from) and the `found` for this turn's question, best first.

    The context first, in the asker's order, then the best found not among it: up to k in all (at least
    one) for a first question, FOLLOW_UP_NEW for a follow-up. The passages a question was written from
    are always in view, as a chunk item's chunk is, and every call for one aspect starts with the same
    passages, the prefix a server's prompt cache reuses (answerer and critic; issue 15). No context: the
    k found.

    >>> from agents.schemas import Passage
    >>> ps = {c: Passage(text=c, source="s", chunk_id=c) for c in "abcxyz"}
    >>> [p.chunk_id for p in with_context([ps["a"], ps["b"], ps["c"]], [ps["x"], ps["c"], ps["y"], ps["a"]], 4)]
    ['a', 'b', 'c', 'x']
    >>> [p.chunk_id for p in with_context([ps["a"], ps["b"], ps["c"]], [ps["x"], ps["b"], ps["y"], ps["z"]], 4,
    ...                                   follow_up=True)]
    ['a', 'b', 'c', 'x', 'y']
    >>> [p.chunk_id for p in with_context([], [ps["x"], ps["c"], ps["y"], ps["a"]], 3)]
    ['x', 'c', 'y']
    """
    if not context:
        return found[:k]
    ids = {p.chunk_id for p in context}
    new = [p for p in found if p.chunk_id not in ids]
    return [*context, *new[:FOLLOW_UP_NEW if follow_up else max(1, k - len(context))]]


def search_query(state: dict[str, Any]) -> str:
    """What to search the knowledge base or the web for: the question, and for a follow-up the question
    before it too (「还有别的细节吗？」 alone would find the same passages in every item).

    >>> from agents.schemas import Turn
    >>> search_query({"question": "还有别的细节吗？", "turns": [Turn(input="黑熊精住在哪里？", output="黑风洞。")]})
    '黑熊精住在哪里？ 还有别的细节吗？'
    """
    turns = state.get("turns") or []
    return f"{turns[-1].input} {state['question']}" if turns else state["question"]


async def retrieve(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Find what to answer from, or reject as UNANSWERABLE. A HuixiangDou answer becomes the draft."""
    ctx: Context = runtime.context
    item = item_of(state)
    question = state["question"]
    query = search_query(state)
    turn = len(state.get("turns") or [])
    old_sources = list((state.get("meta") or {}).get("sources") or [])
    passages: list[Any] = []
    mode = "none"
    update: dict[str, Any] = {}
    declined: str | None = None  # why HuixiangDou gave no answer (its reply's state), for the rejection
    if item.get("chunk") and (turn == 0 or ctx.kb is None):
        passages, mode = [_chunk_passage(item)], "chunk"
    elif ctx.huixiangdou is not None:
        reply = await ctx.huixiangdou.aask(query)  # a follow-up with the question before it: no history there
        if reply.ok:
            from agents.schemas import Passage

            refs = reply.refs or ["huixiangdou"]
            passages = [Passage(text=reply.answer, source=", ".join(refs), chunk_id="huixiangdou", score=1.0)]
            mode = "huixiangdou"
            update = {"draft": reply.answer.strip(), "draft_reasoning": None, "attempts": state.get("attempts", 0) + 1,
                      "meta": {"models": {"answerer": "huixiangdou"}, "huixiangdou_refs": refs}}
        else:
            declined = reply.state if reply.state != "success" else "an empty answer"
            log.info("item %s: HuixiangDou did not answer (%s)", item.id, declined)
    elif ctx.kb is not None:
        found = await asyncio.to_thread(ctx.kb.retrieve, query, ctx.top_k)  # off the event loop
        if ctx.kb.is_answerable(found):
            passages = with_context(state.get("context_passages") or [], found, ctx.top_k, follow_up=turn > 0)
            mode = "kb"
        else:
            emit(runtime, "unanswerable", item.id, best=max((p.score for p in found), default=None))
    search = ctx.search if getattr(ctx.search, "name", None) != "none" else None  # NoSearch = off
    if mode == "none" and search is not None:
        passages = await search.search(query, ctx.top_k)
        mode = "web" if passages else "none"
    if mode == "none" and (ctx.kb is not None or ctx.huixiangdou is not None or search is not None):
        if turn > 0:
            return another_followup(ctx, state, question, declined)
        if declined is not None:  # its state ("internal error", "Topics unrelated …"): look at the server or not
            return rejected([ReasonCode.UNANSWERABLE], raw=f"HuixiangDou did not answer: {declined}",
                            meta={"retrieval": "none", "huixiangdou_state": declined})
        return rejected([ReasonCode.UNANSWERABLE], meta={"retrieval": "none"})
    emit(runtime, "retrieved", item.id, mode=mode, sources=[[p.source, p.score] for p in passages])
    meta = {"retrieval": every_mode(state, mode), "sources": old_sources + source_records(passages, turn, mode)}
    if mode == "web":  # every turn's pages: a follow-up's search adds to the first turn's
        meta["urls"] = list(dict.fromkeys([*(state.get("meta") or {}).get("urls", []), *(p.source for p in passages)]))
    return {**update, "passages": passages, "retrieval": mode,
            "meta": {**update.get("meta", {}), **meta}, "outcome": None}


def every_mode(state: dict[str, Any], mode: str) -> str:
    """`meta.retrieval` of an item: where its turns' passages came from, in the order first used (kb+web:
    the first turn from the knowledge base, a follow-up from the web).

    >>> every_mode({"meta": {"retrieval": "kb"}, "turns": [object()]}, "web"), every_mode({}, "kb")
    ('kb+web', 'kb')
    """
    earlier = (state.get("meta") or {}).get("retrieval") if state.get("turns") else None
    return "+".join(dict.fromkeys([*(earlier.split("+") if earlier and earlier != "none" else []), mode]))


def another_followup(ctx: Context, state: dict[str, Any], question: str, declined: str | None) -> dict[str, Any]:
    """A follow-up nothing answers: the asker writes another (shown this one to avoid), up to
    `max_revisions` times, and only then is the item UNANSWERABLE: one such follow-up lost its accepted turns."""
    tried = [*(state.get("meta") or {}).get("unanswerable_followups", []), question]
    meta: dict[str, Any] = {"unanswerable_followups": tried}
    if declined is not None:
        meta["huixiangdou_state"] = declined
    if len(tried) <= ctx.max_revisions:
        log.info("item %s: follow-up %r is unanswerable; asking another", item_of(state).id, question)
        return {"outcome": "revise", "meta": meta}
    return rejected([ReasonCode.UNANSWERABLE], meta={"retrieval": "none", **meta})


def answer_messages(ctx: Context, state: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
    """The conversation for the answerer: system, the prompt, and a revision request.

    The earlier turns of a multi-turn item sit in the prompt's <conversation>, after the passages, so
    every call of the answerer starts with the same system message, instructions and (first) passages:
    the prefix a server's prompt cache can reuse from the previous call (issue 15)."""
    system = ctx.recipe.get("system_prompt") or DEFAULT_SYSTEM
    turns = state.get("turns") or []
    messages = [{"role": "system", "content": system}]
    if turns and "conversation" not in placeholders(template(ctx, "ANSWER_PROMPT", ANSWER_PROMPT)):
        # a recipe's own ANSWER_PROMPT without {conversation}: the earlier turns go as chat turns
        for turn in turns:
            messages += [{"role": "user", "content": turn.input}, {"role": "assistant", "content": turn.output}]
    messages.append({"role": "user", "content": fill(ctx, "ANSWER_PROMPT", passages=format_passages(
        state.get("passages") or []), conversation=transcript(turns), question=state["question"])})
    name = "ANSWER_PROMPT"
    if state.get("feedback") and state.get("draft"):
        messages += [{"role": "assistant", "content": state["draft"]},
                     {"role": "user", "content": fill(ctx, "ANSWER_REVISION_PROMPT", feedback=state["feedback"])}]
    return messages, name


async def answer(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Write (or revise, given `feedback`) the answer to the question in progress."""
    ctx: Context = runtime.context
    messages, name = answer_messages(ctx, state)
    return await answer_with(ctx, runtime, state, messages, name)


async def answer_with(ctx: Context, runtime: Any, state: dict[str, Any], messages: list[dict[str, str]],
                      name: str) -> dict[str, Any]:
    """Ask the answerer with these messages (a recipe may add to `answer_messages`'s) and make the state
    update: the draft, and the prompt it was written from (for the critic's rules)."""
    item = item_of(state)
    result = await ask_structured(client(ctx, "answerer"), messages, Answer, attempts=ctx.structured_attempts)
    attempts = state.get("attempts", 0) + 1
    prov = provenance(ctx, "answerer", "answer", name, ANSWER_PROMPT)
    if not result.ok:
        log.info("item %s: answer unparsable: %s", item.id, result.error)
        return rejected([result.code], raw=result.raw, attempts=attempts, meta={**prov, "failed_step": "answer"})
    emit(runtime, "answered", item.id, attempt=attempts)
    return {"draft": result.value.answer.strip(), "draft_reasoning": result.reasoning or None, "attempts": attempts,
            "prompt_text": sent_prompt(messages, state), "meta": {**prov, "used_passages": result.value.used_passages}}


def sent_prompt(messages: list[dict[str, str]], state: dict[str, Any]) -> str:
    """The instructions the model saw for this draft: the system message and the prompts we filled,
    for the critic's prompt-leak rule (which ignores tagged data: the passages and the earlier turns
    in <conversation>, which the answer may quote; nor the earlier questions, when a recipe's own
    ANSWER_PROMPT sends them as chat turns)."""
    asked = {turn.input for turn in state.get("turns") or []}
    return "\n".join(m["content"] for m in messages
                     if m["role"] == "system" or (m["role"] == "user" and m["content"] not in asked))
