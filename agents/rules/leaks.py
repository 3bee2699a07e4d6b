"""Leak rules: what the generator saw must not show up in what it wrote.

- reasoning (<think>…</think>, 思考过程, "用户让我…") in a final output;
- the retrieved context in a QA answer (根据提供的资料, [1], 【来源：…】, knowledge-base file names);
- the prompt itself: long spans shared with the prompt's instructions (tagged data such as
  <passages> or <examples> excluded), or instruction sentences any prompt of this kind carries;
- a few-shot example copied (near-duplicate, or a long span of one);
- the revision feedback (a long span of it, or 「按修改意见…」 talk).

Overlaps are counted on normalized text (agents.rules.base.normalize) with character n-grams.

>>> from agents.rules.base import RuleContext, TextView
>>> ctx = RuleContext(kind="greeting", few_shots=["奶奶，中秋节快乐！今年的月亮格外圆，我也想多回家陪陪您。"])
>>> fewshot_copy(TextView("李总，生日快乐！今年的月亮格外圆，我也想多回家陪陪您。"), ctx).code.value
'FEWSHOT_COPY'
>>> context_leak(TextView("根据提供的资料，黑熊精住在黑风山。"), RuleContext(kind="answer")).code.value
'CONTEXT_LEAK'
"""

from __future__ import annotations

import re

from agents.rules.base import (
    CJK,
    RuleContext,
    RuleHit,
    TextView,
    char_ngrams,
    gram_index,
    hit,
    jaccard,
    normalize,
    rule,
    shared_runs,
    snippet,
)
from agents.schemas import ReasonCode

# ---- reasoning ---------------------------------------------------------------------------------

_THINK = re.compile(
    r"</?\s*(?:think|thinking|thought|reasoning|reflection)\s*>|<\|?(?:begin|end)_of_thought\|?>"
    r"|(?:思考|推理|分析)过程\s*[：:】\]]|[【\[](?:思考|推理|分析)[】\]]|^\s*(?:Thinking|Reasoning)\s*[:：]"
    r"|^\s*(?:(?:嗯|好的|好|OK|Okay)[，,。.！!…\s]*)?(?:首先[，,]?\s*)?用户(?:让我|要我|想让我|希望我?|想要|需要|要求|问的是|问了|在问|的问题是|想给)"
    r"|(?:首先|接下来|现在)[，,]?\s*我(?:需要|要|得|应该)(?:先)?(?:理解|分析|考虑|确定|判断|从资料|从材料|根据资料|组织|构思|写一)"
    r"|我需要(?:先)?(?:从资料|从材料|根据资料|分析一下|考虑一下|确定一下|写一[条段个])"
    r"|我现在(?:需要|要|得)(?:写|回答|生成|处理|分析|想)|用户的(?:需求|要求|问题|意思|请求)是"
    r"|让我(?:先)?(?:想一想|想想|思考|分析|理一理|整理一下)|\A\s*(?:分析|思路|推理|思考|解析|Analysis)\s*[：:]"
    r"|let me think|let's think|\A\s*okay,? (?:so|the user)"
    r"|来访者(?:表达|表现出|提到|的情绪|似乎|可能)",  # the counsellor talking about the client: notes, not speech
    re.IGNORECASE | re.MULTILINE,
)


@rule("think_leak", ReasonCode.THINK_LEAK, "输出里有推理过程（<think>…</think>、思考过程、“用户让我…”）")
def think_leak(view: TextView, ctx: RuleContext) -> RuleHit | None:
    m = _THINK.search(view.text)
    if m is None:
        return None
    return hit("think_leak", f"输出里混进了推理过程「{snippet(view.text, m.span())}」，只保留最终给对方的正文。", m.span())


# ---- the retrieved context in a QA answer ------------------------------------------------------

_DOC = r"(?:资料(?!片)|上下文|材料|文本|文档|段落|参考资料|参考文献|知识库|检索结果|passages?|context)"
_DOC_ANY = r"(?:" + _DOC[3:-1] + r"|内容|信息)"
_CONTEXT = re.compile(
    r"(?:根据|依据|按照|据|从|结合|参考|基于|由)\s*(?:以上|上述|前述|所|所给的?|给出的|给定的|提供的|你提供的|您提供的|"
    r"检索到的|已有的?|现有的?|这些|该)\s*" + _DOC_ANY
    + r"|(?:根据|依据|据|从|参考|基于)\s*" + _DOC + r"\s*\d*"
    + r"|(?:" + _DOC + r"|文中|上文|文章)\s*\d*\s*(?:中|里|里面)?\s*(?:提到|提及|显示|指出|说明|写道|记载|所述|表明|给出|"
    r"(?:没有|并未|未|并没有)(?:提到|提及|说明|写明|给出|相关|涉及|记载|这方面|具体))"
    r"|(?:以上|上述|前述)(?:信息|内容|资料|段落|文字)(?:来自|出自|摘自|显示|表明)"
    r"|(?:对|从|在|据|通过|按|由)[^。，！？\n]{0,4}" + _DOC + r"(?:的|中|里|内|来看|可知)"
    r"|" + _DOC + r"(?:中|里|内|上)?的?(?:描述|介绍|说法|记载|所说|内容显示|来看|可知|可以看出|得知)"
    r"|(?:提供的|所给的?|给出的|给定的|检索到的|已知的?)" + _DOC_ANY + r"(?:显示|表明|提到|指出|中|里|来看|可知)"
    r"|(?:参见|详见|见|参考|引自|出自|来自)\s*" + _DOC + r"\s*\d*"
    r"|第\s*[一二三四五六七八九十\d]{1,2}\s*(?:段|篇|条资料|份资料|个段落|个片段|则资料|个资料)"
    r"|(?:文中|上文|前文)(?:可以看出|可知|来看|得知|所述|指出)"
    r"|[（(]\s*" + _DOC + r"\s*\d+\s*[）)]|\^\[\d{1,2}\]"
    r"|(?:^|\n)\s*(?:参考|来源|出处|参考资料|参考文献|资料来源|信息来源|引用|References?|Sources?)\s*[：:]"
    r"|\[\^?\d{1,2}\]|【\d{1,2}】|〔\d{1,2}〕|\[(?:资料|来源|参考|文档|passage|source)\s*\d*\]"
    r"|[【\[（(]\s*(?:来源|出处|参考|引自|source|见)\s*[：:]?[^】\]）)\n]{0,40}[】\]）)]"
    r"|<\s*/?\s*passage|[\w" + CJK + r"\-]+\.(?:md|txt|pdf|docx?|jsonl?|csv|html?|xlsx?)\b",
    re.IGNORECASE,
)
_EXT = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def _file_names(ctx: RuleContext) -> tuple[str, ...]:
    names = set()
    for f in ctx.knowledge_files:
        base = f.replace("\\", "/").rsplit("/", 1)[-1]
        names.add(base)
        stem = _EXT.sub("", base)
        if len(stem) >= 4:
            names.add(stem)
    return tuple(sorted(names, key=len, reverse=True))


@rule("context_leak", ReasonCode.CONTEXT_LEAK,
      "问答里提到检索资料（根据提供的资料、资料中提到、[1]、【来源：…】、知识库文件名）；微调后的模型看不到资料")  # fmt: skip
def context_leak(view: TextView, ctx: RuleContext) -> RuleHit | None:
    if ctx.kind != "answer":
        return None
    text = view.text
    m = _CONTEXT.search(text)
    if m is not None:
        return hit("context_leak", f"回答里提到了资料或出处「{snippet(text, m.span())}」；训练后的模型看不到资料，"
                                   "请直接陈述内容，不提资料、编号和文件名。", m.span())  # fmt: skip
    names = ctx.cached("file_names", lambda: _file_names(ctx))
    for name in names:  # type: ignore[union-attr]
        i = text.find(name)
        if i >= 0:
            return hit("context_leak", f"回答里出现了知识库文件名「{name}」，请删掉。", (i, i + len(name)))
    return None


# ---- the prompt --------------------------------------------------------------------------------

# Data inserted into a prompt is wrapped in tags (STYLE.md §3): it may be quoted, instructions may not.
_TAGGED = re.compile(r"<(\w+)[^>]*>.*?</\1>", re.DOTALL)
_PROMPT_N = 6
_PROMPT_RUN = 10  # normalized characters shared in one run with the instructions
# Instruction sentences that leak whatever the exact prompt was.
_INSTRUCTION = re.compile(
    r"对(?:长辈|上级)[^。！？\n]{0,8}用\s*[“\"「]?\s*您|对(?:平辈|晚辈)[^。！？\n]{0,8}用\s*[“\"「]?\s*你"
    r"|(?:不要|不加|无需|不用|避免)(?:使用|写|出现|加|任何)?(?:标题|表情符号|emoji|开场白|任何说明|书信格式|markdown)"
    r"|直接(?:给出|输出|返回)(?:祝福语?|回答|正文|文本|结果)|只学风格|不要照抄|字数(?:不超过|少于|控制在)\s*\d+"
    r"|(?:风格要求|对象|场景|风格)\s*[：:][^。！？\n]{0,12}[；;]|你是(?:一[个名位])?[^。，！？\n]{0,14}(?:助手|大师|专家|机器人|AI)"
    r"|请只根据|资料里没有的内容不要写|不要编造|先共情[，,]再|不下诊断|不自称\s*AI|(?:这是)?第\s*\d+\s*轮[（(]共|共\s*\d+\s*轮[）)]"
    r"|每次\s*\d+\s*到\s*\d+\s*个字|(?:use|reply in) (?:chinese|simplified)"
    r"|(?:请|要|需要|务必)?(?:使用|用)(?:中文|全角)标点|(?:不要|不能|禁止|切勿|避免|不得|请勿|勿)(?:使用|出现|加入?|带有?|包含|添加)[^。，！？\n]{0,6}"
    r"(?:表情|emoji|标题|开场白|说明|解释|markdown|格式|英文|编号)"
    r"|字数\s*[：:]?\s*\d+|\d+\s*字以内|不超过\s*\d+\s*(?:个)?字|(?:只|仅)(?:输出|返回|给出|写)[^。，！？\n]{0,6}(?:正文|祝福语?|回答|内容|文本)"
    r"|不要(?:输出|添加|包含|有)(?:其他|任何|多余)(?:的)?(?:内容|文字|说明|解释)",
    re.IGNORECASE,
)


def _instruction_grams(ctx: RuleContext) -> dict[str, list[int]]:
    text = _TAGGED.sub("\n", ctx.prompt or "")
    for shot in shot_texts(ctx):
        text = text.replace(shot, "\n")
    return gram_index(normalize(text), _PROMPT_N)


# Headings of a prompt's rules; in an answer 「要求：」 may be content (报名要求：年满 18 岁).
_INSTRUCTION_HEAD = re.compile(r"(?:^|[。！？\n【\[（(])\s*(?:要求|风格要求|写作要求|注意事项|限制条件|任务|输出格式)\s*[：:]")


@rule("prompt_leak", ReasonCode.PROMPT_LEAK, "输出重复了提示词里的指令（风格要求、称呼规则、“直接给出正文”…）")
def prompt_leak(view: TextView, ctx: RuleContext) -> RuleHit | None:
    text = view.text
    m = _INSTRUCTION.search(text)
    if m is None and ctx.kind != "answer":
        m = _INSTRUCTION_HEAD.search(text)
    if m is not None:
        return hit("prompt_leak", f"输出里混进了提示词里的要求「{snippet(text, m.span())}」，请只写正文。", m.span())
    if not ctx.prompt:
        return None
    grams = ctx.cached("prompt_grams", lambda: _instruction_grams(ctx))
    norm = normalize(text)
    runs = shared_runs(norm, grams, _PROMPT_N)  # type: ignore[arg-type]
    if runs and max(runs) >= _PROMPT_RUN:
        return hit("prompt_leak", f"输出里有 {max(runs)} 个字和提示词的指令一模一样，请删掉照搬的要求，只写正文。")
    return None


# ---- few-shot examples -------------------------------------------------------------------------

_SHOT_N = 5
_SHOT_RUN = 14
_SHOT_JACCARD = 0.5
_SHOT_COVER = 0.5  # half of the output made of spans of one example
_SHOT_TAGS = re.compile(r"<(output|counsellor|assistant|answer)>(.*?)</\1>", re.DOTALL)
# Examples a prompt shows without tags: 「参考句子为：…」「例句：…」 (the Tianji seed's prompts).
_SHOT_LINES = re.compile(r"(?:例句|示例|例子|范例|参考句子|参考例句|参考例子)[^：:\n]{0,8}[：:]\s*([^\n]+(?:\n(?![^\n]*[：:])[^\n]+)*)")


def shot_texts(ctx: RuleContext) -> list[str]:
    """The few-shot outputs: `ctx.few_shots`, else tagged examples in the prompt, else 例句：… lines."""
    if ctx.few_shots:
        return list(ctx.few_shots)
    prompt = ctx.prompt or ""
    tagged = [m.group(2) for m in _SHOT_TAGS.finditer(prompt)]
    if tagged:
        return tagged
    return [line.strip() for m in _SHOT_LINES.finditer(prompt) for line in m.group(1).split("\n") if line.strip()]
# Stock phrases every formal wish may use; sharing them with an example is not copying it.
_STOCK = re.compile(r"值此.{0,8}之际|谨向您(?:和|及)?(?:您的)?(?:家人)?致以|致以(?:最)?(?:诚挚|衷心|美好)的(?:问候|祝福)"
                    r"|(?:由衷|衷心)地?(?:为你|为您|祝愿|祝福)(?:感到)?(?:高兴)?|(?:恭祝|祝|愿)(?:您|你)"
                    r"|身体健康|阖家(?:幸福|欢乐|安康)|万事(?:如意|顺意|胜意)|(?:生日|新年|中秋节?|春节)快乐")


def _destock(norm: str) -> str:
    return _STOCK.sub("|", norm)


def _shots(ctx: RuleContext) -> list[tuple[str, dict[str, list[int]], set[str]]]:
    shots = shot_texts(ctx)
    out = []
    for shot in shots:
        norm = normalize(shot)
        if len(norm) >= _SHOT_RUN:
            out.append((norm, gram_index(_destock(norm), _SHOT_N), char_ngrams(norm)))
    return out


@rule("fewshot_copy", ReasonCode.FEWSHOT_COPY, "照抄了提示词里的示例（几乎一样，或整句照搬）")
def fewshot_copy(view: TextView, ctx: RuleContext) -> RuleHit | None:
    if not ctx.few_shots and not ctx.prompt:
        return None
    shots = ctx.cached("shots", lambda: _shots(ctx))
    if not shots:
        return None
    norm = normalize(view.text)
    trigrams, plain = char_ngrams(norm), _destock(norm)
    for shot, grams, shot_trigrams in shots:  # type: ignore[union-attr]
        runs = [r for r in shared_runs(plain, grams, _SHOT_N) if r >= _SHOT_N + 1]
        if ((runs and max(runs) >= _SHOT_RUN) or jaccard(trigrams, shot_trigrams) >= _SHOT_JACCARD
                or (len(norm) >= _SHOT_RUN and sum(runs) >= _SHOT_COVER * len(norm))):
            return hit("fewshot_copy", f"照抄了示例「{shot[:12]}…」，示例只用来学语气，请按这次的对象和场合重新写。")
    return None


# ---- the revision feedback ---------------------------------------------------------------------

_QUOTED = re.compile(r"「[^」]*」|“[^”]*”|『[^』]*』|\"[^\"]*\"|（[^）]{0,12}）|\([^)]{0,12}\)")
_TURN_PREFIX = re.compile(r"第\s*\d+\s*轮[：:]")
_FEEDBACK_N = 4
_FEEDBACK_RUN = 8
_REVISION_TALK = re.compile(
    r"第\s*\d+\s*轮\s*[：:]|修改意见|质检意见|(?:按|根据|按照|依照)(?:你的|您的|上述|以上)?(?:修改)?意见|"
    r"(?:已|我已|已经)(?:按|根据|按照)[^。！？\n]{0,8}(?:意见|要求|反馈)|修改后的?(?:祝福语?|回答|版本|内容|回复|如下|[：:])"
    r"|(?:重写|改写|修改)(?:后)?如下|请给出真正的回答|请按意见|(?:删掉|删除|去掉)(?:套话|开场白|标题|表情符号|emoji|元信息|占位符)"
    r"|[（(](?:长辈|平辈|晚辈)/(?:上级|晚辈)[）)]"
    r"|(?:修改|改进|优化|调整|润色|重写|改写)(?:后|过)的(?:祝福语?|回答|版本|内容|回复|文案)|已(?:修改|删除|去掉|改为|调整|更正|补充|按要求)"
    r"|(?:根据|按照)(?:你的|您的)?(?:反馈|建议|质检)",
    re.IGNORECASE,
)


def feedback_own_words(feedback: str, draft: str | None) -> str:
    """What `feedback` says in its own words, for the feedback-leak rule: its quotes and what it repeats
    of the draft it was written about are left out (normalized pieces, one per line). A small judge
    copies the draft into its reasons; a revision that keeps its own sentences has not copied the feedback.

    >>> feedback_own_words("未拆封的茶叶七天内可以无理由退换。grounding 得分 0.5 低于 0.6",
    ...                    "未拆封的茶叶七天内可以无理由退换，请当面检查。")
    'grounding得分05低于06'
    """
    text = _TURN_PREFIX.sub("\n", _QUOTED.sub("|", feedback))
    pieces = [normalize(p) for p in re.split(r"[|\n]", text)]
    drafted = char_ngrams(normalize(draft or ""), _FEEDBACK_N)
    kept: list[str] = []
    for piece in pieces:  # normalized: no "|" left in it, so "|" marks what the draft holds
        covered = {j for i in range(len(piece) - _FEEDBACK_N + 1) if piece[i:i + _FEEDBACK_N] in drafted
                   for j in range(i, i + _FEEDBACK_N)}
        kept.extend(p for p in "".join("|" if i in covered else ch for i, ch in enumerate(piece)).split("|") if p)
    return "\n".join(kept)


def _feedback_grams(ctx: RuleContext) -> dict[str, list[int]]:
    text = _TURN_PREFIX.sub("\n", _QUOTED.sub("|", ctx.feedback or ""))
    return gram_index("|".join(normalize(p) for p in re.split(r"[|\n]", text)), _FEEDBACK_N)


@rule("feedback_leak", ReasonCode.FEEDBACK_LEAK, "修改后的输出里混进了修改意见本身（“第 3 轮：…”“按修改意见…”）")
def feedback_leak(view: TextView, ctx: RuleContext) -> RuleHit | None:
    text = view.text
    m = _REVISION_TALK.search(text)
    if m is not None:
        return hit("feedback_leak", f"输出里写了修改意见或修改过程「{snippet(text, m.span())}」，只输出改好的正文。", m.span())
    if not ctx.feedback:
        return None
    grams = ctx.cached("feedback_grams", lambda: _feedback_grams(ctx))
    runs = [r for r in shared_runs(normalize(text), grams, _FEEDBACK_N) if r >= 5]  # type: ignore[arg-type]
    if runs and (max(runs) >= _FEEDBACK_RUN or sum(runs) >= 2 * _FEEDBACK_RUN):
        return hit("feedback_leak", "输出里照抄了修改意见，请按意见改写正文，不要把意见写进去。")
    return None
