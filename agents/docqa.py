"""The document-QA agents: label a chunk with a tag, ask a question written for one genre × audience
("GA") pair from one chunk, two related chunks or a tag, and answer it for that pair from the whole
knowledge base with the source chunks kept among the passages (the critic then checks grounding
against exactly those passages).

Item payload (recipes/docqa): `item_kind` (chunk | cross_chunk | tag), `sources` (the source chunks:
`chunk_id`, `hash`, `source`, `text`), `tag` (a label given in tags.yaml) or `heading_tag` (the
fallback), `tags` (the tag tree as "一级/二级" paths), `ga_slot`, `n`, `followups`.

>>> sorted(PROMPT_INPUTS["DOC_CHUNK_QUESTION_PROMPT"])
['angle', 'audience', 'avoid', 'chunk', 'genre']
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import BaseModel, Field, field_validator

from agents import answerer, asker
from agents.context import Context, client, emit, item_of, new_turn, provenance, rejected, render, tagged
from agents.schemas import Passage
from agents.structured import ask_structured

log = logging.getLogger(__name__)

TAGGER_SYSTEM = "你是一位细心的资料编目员，擅长给文档片段归类。"

LABEL_PROMPT = """下面是一棵两级主题标签树（每行一个标签，写作“大类/小类”或只有“大类”），以及一段资料。
请为这段资料选出最合适的一个标签：level1 必须是树里已有的某个大类；level2 优先用该大类下已有的小类，都不合适时可以新拟一个简短的小类（2 到 12 个字），也可以留空。

<tags>
{tags}
</tags>

<passage source="{source}">
{chunk}
</passage>"""

DOC_CHUNK_QUESTION_PROMPT = """请阅读下面这段资料，提出一个只凭这段资料就能回答的问题。
提问的人是「{audience}」，问题会用于「{genre}」，请用这类人在这种场合的口吻和关注点来问，但问题里不要写出提问者的身份或问题的用途。
这次请从「{angle}」的角度提问。
要求：
- 只提一个问题，自然具体，一般 8 到 50 个字；
- 不要提到“资料”“这段文字”“文中”之类的说法，直接问内容本身；
- 不要编号，不要给出答案；不要与已经问过的问题重复。

<passage>
{chunk}
</passage>

已经问过的问题：
<asked>
{avoid}
</asked>"""

DOC_CROSS_QUESTION_PROMPT = """下面是同一份资料里相关的两段内容。请提出一个需要把两段内容结合起来才能完整回答的问题（比如比较、因果、先后步骤、条件与结果），只看其中一段不够。
提问的人是「{audience}」，问题会用于「{genre}」，请用这类人在这种场合的口吻和关注点来问，但问题里不要写出提问者的身份或问题的用途。
要求：只提一个问题，自然具体，一般 10 到 60 个字；不要提到“资料”“第一段”之类的说法；不要给出答案。

<passage id="1">
{first}
</passage>
<passage id="2">
{second}
</passage>"""

DOC_TAG_QUESTION_PROMPT = """请围绕主题「{tag}」提出一个问题，答案要能在下面的资料中找到。
提问的人是「{audience}」，问题会用于「{genre}」，请用这类人在这种场合的口吻和关注点来问，但问题里不要写出提问者的身份或问题的用途。
要求：只提一个问题，自然具体，一般 8 到 50 个字；不要提到“资料”；不要与已经问过的问题重复；不要给出答案。

<context>
{context}
</context>

已经问过的问题：
<asked>
{avoid}
</asked>"""

GA_ANSWER_NOTE = """这段对话的提问者是<audience>{audience}</audience>，回答会用于<genre>{genre}</genre>：请用适合这类读者和场合的措辞、详略和语气回答，但内容只能来自给出的资料。"""

GA_PAIRS_PROMPT = """下面是一批文档的目录与开头摘录。请为基于这些文档的问答数据设计 {count} 组「体裁 × 受众」搭配：体裁是问答会用在什么场合（如 入门答疑、操作指南、考试复习、客服回复、专业咨询），受众是谁在提问（如 新用户、一线员工、学生、领域专家）。各组之间要有明显区别，并且都适合这批文档。

<documents>
{documents}
</documents>"""

PROMPTS: dict[str, str] = {
    "LABEL_PROMPT": LABEL_PROMPT,
    "DOC_CHUNK_QUESTION_PROMPT": DOC_CHUNK_QUESTION_PROMPT,
    "DOC_CROSS_QUESTION_PROMPT": DOC_CROSS_QUESTION_PROMPT,
    "DOC_TAG_QUESTION_PROMPT": DOC_TAG_QUESTION_PROMPT,
    "GA_ANSWER_NOTE": GA_ANSWER_NOTE,
    "GA_PAIRS_PROMPT": GA_PAIRS_PROMPT,
}
PROMPT_INPUTS: dict[str, frozenset[str]] = {
    "LABEL_PROMPT": frozenset({"tags", "source", "chunk"}),
    "DOC_CHUNK_QUESTION_PROMPT": frozenset({"genre", "audience", "angle", "chunk", "avoid"}),
    "DOC_CROSS_QUESTION_PROMPT": frozenset({"genre", "audience", "first", "second"}),
    "DOC_TAG_QUESTION_PROMPT": frozenset({"genre", "audience", "tag", "context", "avoid"}),
    "GA_ANSWER_NOTE": frozenset({"genre", "audience"}),
    "GA_PAIRS_PROMPT": frozenset({"count", "documents"}),
}

#: The n-th question of a chunk asks from the n-th angle, so several questions on one chunk differ.
ANGLES = ["关键事实与细节", "原因、目的或原理", "具体做法或步骤", "条件、限制与例外", "比较与区别"]
#: Used when the recipe lists no pairs and the model could not propose any.
DEFAULT_GA_PAIRS = [{"genre": "入门答疑", "audience": "第一次接触这些内容的新手"},
                    {"genre": "操作指南", "audience": "需要照着做的一线人员"},
                    {"genre": "学习复习", "audience": "准备考核的学生"},
                    {"genre": "专业咨询", "audience": "追问细节的业内人士"}]


class TagLabel(BaseModel):
    reason: str = Field(description="先用一句话说明这段资料讲的是什么。")
    level1: str = Field(description="一级标签。")
    level2: str = Field(default="", description="二级标签（可为空）。")

    @field_validator("level1", "level2")
    @classmethod
    def short(cls, value: str) -> str:
        value = value.strip().strip("/")
        if len(value) > 30 or "\n" in value:
            raise ValueError("标签要简短（不超过 30 个字）")
        return value


class GAPair(BaseModel):
    genre: str = Field(description="体裁：问答用在什么场合。")
    audience: str = Field(description="受众：谁在提问。")


class GAPairs(BaseModel):
    pairs: list[GAPair] = Field(description="体裁 × 受众 搭配的列表。")


def fill(ctx: Context, name: str, **values: Any) -> str:
    return render(ctx, name, PROMPTS[name], PROMPT_INPUTS[name], **values)


def ga_of(ctx: Context, item: Any) -> dict[str, str]:
    """The genre × audience pair of this item: its slot in the run's list of pairs."""
    pairs = ctx.recipe.get("ga_pairs") or DEFAULT_GA_PAIRS
    pair = pairs[int(item.get("ga_slot") or 0) % len(pairs)]
    return {"genre": pair["genre"], "audience": pair["audience"]}


def tag_path(level1: str, level2: str = "") -> str:
    """The tag as one string.

    >>> tag_path("安装", ""), tag_path("安装", "环境要求")
    ('安装', '安装/环境要求')
    """
    return f"{level1}/{level2}" if level2 else level1


async def label_chunk(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Tag the item: a tag item has its own; a label from tags.yaml wins; else the model picks one from
    the tree (bounded re-asks); a failed labelling falls back to the heading-derived tag (counted)."""
    ctx: Context = runtime.context
    item = item_of(state)
    ga = ga_of(ctx, item)
    sources = item.get("sources") or []
    meta: dict[str, Any] = {"item_kind": item.get("item_kind"), "ga": ga,
                            "source_chunk": sources[0]["chunk_id"] if sources else None,
                            "source_chunks": [s["chunk_id"] for s in sources],
                            "chunk_hashes": [s["hash"] for s in sources],
                            "source_files": item.get("files") or {}}
    if item.get("tag"):
        origin = "tag item" if item.get("item_kind") == "tag" else "tags.yaml"
        return {"meta": {**meta, "tag": item.get("tag"), "tag_source": origin}}
    first = sources[0]
    prompt = fill(ctx, "LABEL_PROMPT", tags="\n".join(item.get("tags") or []) or "（暂无）",
                  source=first["source"], chunk=first["text"])
    messages = [{"role": "system", "content": TAGGER_SYSTEM}, {"role": "user", "content": prompt}]
    result = await ask_structured(client(ctx, "asker"), messages, TagLabel, attempts=ctx.structured_attempts)
    prov = provenance(ctx, "asker", "label", "LABEL_PROMPT", LABEL_PROMPT)
    known = {p.split("/")[0] for p in item.get("tags") or []}
    if result.ok and known and result.value.level1 not in known:
        result = result.model_copy(update={"value": None, "error": f"level1 {result.value.level1!r} is not in the tree"})
    if not result.ok or not result.value.level1:
        log.info("item %s: labelling failed (%s); heading tag used", item.id, result.error)
        return {"meta": {**meta, **prov, "tag": item.get("heading_tag"), "tag_source": "heading (labelling failed)",
                         "tag_fallback": True, "tag_error": result.error}}
    tag = tag_path(result.value.level1, result.value.level2)
    emit(runtime, "labelled", item.id, tag=tag)
    return {"meta": {**meta, **prov, "tag": tag, "tag_source": "llm"}}


def question_prompt(ctx: Context, item: Any, avoid: list[str], context: list[Passage]) -> tuple[str, str]:
    """(prompt name, rendered prompt) for the first question of a document item."""
    ga = ga_of(ctx, item)
    sources = item.get("sources") or []
    kind = item.get("item_kind")
    if kind == "cross_chunk":
        return "DOC_CROSS_QUESTION_PROMPT", fill(ctx, "DOC_CROSS_QUESTION_PROMPT", **ga, first=sources[0]["text"],
                                                 second=sources[1]["text"])
    if kind == "tag":
        text = "\n\n".join(p.text[:400] for p in context) or "（无）"
        return "DOC_TAG_QUESTION_PROMPT", fill(ctx, "DOC_TAG_QUESTION_PROMPT", **ga, tag=item.get("tag") or "",
                                               context=text, avoid=tagged(avoid, "q"))
    return "DOC_CHUNK_QUESTION_PROMPT", fill(ctx, "DOC_CHUNK_QUESTION_PROMPT", **ga, angle=angle_of(item),
                                             chunk=sources[0]["text"], avoid=tagged(avoid, "q"))


def angle_of(item: Any) -> str:
    return ANGLES[int(item.get("n") or 0) % len(ANGLES)]


def withheld(ctx: Context, item: Any) -> list[str]:
    """What the question prompt tells the asker but the question must not say: the genre, the audience
    (「问题里不要写出提问者的身份或问题的用途」) and a chunk question's angle. A 0.5B asker wrote
    「请问在学习复习中，…」 and 「…应以关键事实与细节为中心…」."""
    ga = ga_of(ctx, item)
    return [ga["genre"], ga["audience"], *([angle_of(item)] if item.get("item_kind") == "chunk" else [])]


def _asked_key(item: Any) -> str:
    sources = item.get("sources") or []
    return f"tag:{item.get('tag')}" if item.get("item_kind") == "tag" else f"chunk:{sources[0]['hash']}"


async def ask_doc_question(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """The first question from the item's chunk(s) or tag, for its GA pair; follow-ups as the QA graph."""
    ctx: Context = runtime.context
    item = item_of(state)
    if state.get("turns"):
        return await asker.ask_question(state, runtime)
    meta = state.get("meta") or {}
    duplicates = list(meta.get("duplicate_questions") or [])
    key = _asked_key(item)
    avoid = list(dict.fromkeys([*ctx.asked.get(key, [])[-ctx.asked_shown:], *duplicates]))
    context: list[Passage] = []
    if item.get("item_kind") == "tag" and ctx.kb is not None:
        context = await asyncio.to_thread(ctx.kb.retrieve, str(item.get("tag")).replace("/", " "), 3)
    name, prompt = question_prompt(ctx, item, avoid, context)
    messages = [{"role": "system", "content": asker.ASKER_SYSTEM}, {"role": "user", "content": prompt}]
    result = await ask_structured(client(ctx, "asker"), messages, asker.Question, attempts=ctx.structured_attempts)
    prov = provenance(ctx, "asker", "ask", name, PROMPTS[name])
    if not result.ok:
        return rejected([result.code], raw=result.raw, meta={**prov, "failed_step": "ask"})
    question = result.value.question.strip()
    emit(runtime, "asked", item.id, question=question, followup=False)
    sources = [p.text for p in context] + [s["text"] for s in item.get("sources") or []] + \
        ([str(item.get("tag"))] if item.get("tag") else [])
    again = asker.vet_question(ctx, state, question, sources, prov, dedup=True, asked_key=key, about_sources=True,
                               withheld=withheld(ctx, item))
    if again is not None:
        return again
    extra = {"question_context": [p.chunk_id for p in context]} if context else {}
    return {**new_turn(question), "outcome": "accept",
            "meta": {**prov, **extra}}


def source_passages(item: Any) -> list[Passage]:
    return [Passage(text=s["text"], source=s["source"], chunk_id=s["chunk_id"], score=1.0, scores={"source": 1.0})
            for s in item.get("sources") or []]


async def retrieve_doc(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """Retrieve from the whole knowledge base (as the QA graph); on the first turn the item's source
    chunks are added when retrieval missed them, so the answer can always use them."""
    update = await answerer.retrieve(state, runtime)
    item = item_of(state)
    if state.get("turns") or not item.get("sources"):
        return update
    if update.get("status") == "rejected":  # the KB gate said no, yet the question came from these chunks
        update = {"passages": [], "retrieval": "kb", "outcome": None,
                  "meta": {"retrieval": "kb", "sources": list((state.get("meta") or {}).get("sources") or [])}}
    passages = list(update.get("passages") or [])
    have = {p.chunk_id for p in passages}
    missing = [p for p in source_passages(item) if p.chunk_id not in have]
    meta = dict(update.get("meta") or {})
    meta["sources"] = [*meta.get("sources", []), *answerer.source_records(missing, 0, "source_chunk")]
    meta["source_chunk_retrieved"] = [p.chunk_id in have for p in source_passages(item)]
    return {**update, "passages": missing + passages, "meta": meta}


async def answer_doc(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    """The answerer's answer (or revision), written for the item's GA pair."""
    ctx: Context = runtime.context
    item = item_of(state)
    messages, name = answerer.answer_messages(ctx, state)
    note = fill(ctx, "GA_ANSWER_NOTE", **ga_of(ctx, item))
    messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n{note}"}
    return await answerer.answer_with(ctx, runtime, state, messages, name)


async def propose_ga_pairs(chat_client: Any, documents: str, count: int, *, attempts: int = 3,
                           prompts: dict[str, str] | None = None) -> list[dict[str, str]] | None:
    """GA pairs for a corpus from the model (one structured call, bounded re-asks); None if it failed."""
    ctx = Context(clients={}, recipe={"prompts": prompts or {}})
    messages = [{"role": "system", "content": TAGGER_SYSTEM},
                {"role": "user", "content": fill(ctx, "GA_PAIRS_PROMPT", count=count, documents=documents)}]
    result = await ask_structured(chat_client, messages, GAPairs, attempts=attempts)
    if not result.ok:
        log.warning("GA pairs: the model gave no usable list (%s)", result.error)
        return None
    pairs = [p.model_dump() for p in result.value.pairs if p.genre.strip() and p.audience.strip()]
    return pairs[:count] or None
