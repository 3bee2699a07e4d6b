"""Whether what the asker wrote is a question worth answering: `question_problem` says why not, in one
line (the asker's nodes ask again with it, then reject NOT_A_QUESTION: agents.asker.vet_question).
Written from a 0.5B asker's output; pure functions, no model call.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from agents.rules.base import CJK, char_ngrams, gram_index, normalize, shared_runs
from agents.rules.content import ANSWER_IN_QUESTION

#: What makes a user's line a question or a request: a question mark, an interrogative, or asking to be told.
_QUESTION_FORM = re.compile(
    r"[？?]|什么|甚么|谁|哪|怎|为何|为啥|何时|何处|何地|多少|多久|几[个次种位岁年天回条]|吗|呢|是否|能否|可否|有没有|"
    r"是不是|会不会|能不能|可不可以|如何|请问|想知道|想了解|"
    r"(?<![不别勿])(?<!不要)(?<!不用)(?<!无需)(?<!不必)(?:介绍|讲讲|说说|谈谈|聊聊|解释|描述|列举|告诉我|推荐)")  # 不要解释 asks for nothing
#: Where a sentence ends without asking (a question mark stays with its sentence).
_SENTENCE_END = re.compile(r"(?<=[。！!；;])|\n")
#: The share of a "question" (≥ 12 characters, no question mark) copied in one run from a passage that makes it
#: the passage, not a question. A passage's own question, copied with its question mark, is still a question.
COPY_SHARE = 0.8


def question_problem(question: str, sources: Sequence[str] = (), *, about_sources: bool = False,
                     withheld: Sequence[str] = ()) -> str | None:
    """Why the asker's `question` is no question (one line), or None. Seen from a 0.5B asker: a question
    with its answer written after it, a sentence of its passage copied out, a statement; for a question
    that must be about its `sources` (`about_sources`), one that holds none of their words; and one that
    says what its prompt told the asker only to shape it (`withheld`: who asks, what for), unless the
    sources say it too.

    >>> question_problem("黑熊精住在哪里？", ["黑熊精盘踞黑风山，自称黑风大王，手下小妖众多。"]) is None
    True
    >>> question_problem("黑熊精盘踞黑风山，自称黑风大王，手下小妖众多。", ["黑熊精盘踞黑风山，自称黑风大王，手下小妖众多。"])
    '照抄了资料里的 20 个字，不是提问'
    >>> question_problem("黑熊精为什么要偷袈裟？", ["问：黑熊精为什么要偷袈裟？答：他见宝起意。"]) is None  # the passage's own
    True
    >>> question_problem("天命人踏上了寻找六根的旅程")
    '不是一个问题：最后一句没有问号、疑问词或请求'
    >>> question_problem("天命人在寻找六根。不要解释，不要与已经问过的问题重复。")  # it asks nothing, it leaks the prompt
    '不是一个问题：最后一句没有问号、疑问词或请求'
    >>> question_problem("游戏是谁开发的？答：游戏科学。")
    '问题后面写上了答案'
    >>> question_problem("我卡在第二章了。该怎么打？") is None
    True
    >>> question_problem("请问，您在处理这种问题时如何理解关键事实与细节？", ["我们用文心一言生成对话数据。"], about_sources=True)
    '问题里没有资料中的词语，问的不是这段资料'
    >>> question_problem("文心一言用来做什么？", ["我们用文心一言生成对话数据。"], about_sources=True) is None
    True
    >>> question_problem("滤芯多久换一次？", ["這個產品的濾芯需要定期更換。"], about_sources=True) is None  # 繁體 passage
    True
    >>> question_problem("请问在学习复习中，文心一言用来做什么？", ["我们用文心一言生成对话数据。"], withheld=["学习复习"])
    '问题里写出了只用来定口吻的「学习复习」（提问者的身份、用途或提问角度），请直接问内容'
    """
    if ANSWER_IN_QUESTION.search(question):
        return "问题后面写上了答案"
    norm = normalize(question)
    if len(norm) >= 12 and not question.rstrip().endswith(("？", "?")):
        for text in sources:
            longest = max(shared_runs(norm, gram_index(normalize(text), 3), 3), default=0)
            if longest >= COPY_SHARE * len(norm):
                return f"照抄了资料里的 {longest} 个字，不是提问"
    last = [x for x in _SENTENCE_END.split(question.strip()) if x.strip()]
    if not last or not _QUESTION_FORM.search(last[-1]):
        return "不是一个问题：最后一句没有问号、疑问词或请求"
    if about_sources and sources:
        texts = [_simplified(normalize(text)) for text in sources]
        if not any(term in text for term in _terms(_simplified(norm)) for text in texts):
            return "问题里没有资料中的词语，问的不是这段资料"
    if said := next((w for w in withheld if w and w in question and not any(w in text for text in sources)), None):
        return f"问题里写出了只用来定口吻的「{said}」（提问者的身份、用途或提问角度），请直接问内容"
    return None


#: Character pairs any question may hold whatever it asks about: no sign that it asks about a passage.
_ASKING = frozenset(pair for word in (
    "请问 问题 这种 这个 那个 这些 那些 如何 什么 怎么 怎样 为什么 为何 哪些 哪个 哪里 是否 能否 可以 需要 应该 "
    "时候 情况 方面 一下 一些 一个 有没有 没有 主要 具体 关于 处理 理解 我们 你们 介绍 说明 的话 有什么 是什么").split()
    for pair in (word[i:i + 2] for i in range(len(word) - 1)))


def _terms(norm: str) -> set[str]:
    """The normalized question's character pairs (Chinese) and words of other scripts, less `_ASKING`."""
    pairs = {pair for pair in char_ngrams(norm, 2) if _CJK_PAIR.fullmatch(pair)}
    return (pairs | set(re.findall(r"[a-z0-9]{2,}", norm))) - _ASKING


_CJK_PAIR = re.compile(f"[{CJK}]{{2}}")


@functools.cache
def _to_simplified() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def _simplified(text: str) -> str:
    """Traditional characters as simplified (OpenCC), so a question in either script meets its passage."""
    return _to_simplified().convert(text)
