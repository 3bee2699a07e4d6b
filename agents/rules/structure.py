"""Structure rules: several options where one was asked, looping sentences, cut-off endings,
unbalanced quotes and brackets, and QA answers that are a bare fragment.

>>> from agents.rules.base import RuleContext, TextView
>>> G = RuleContext(kind="greeting")
>>> multiple_options(TextView("版本一：生日快乐！\\n版本二：祝你天天开心！"), G).code.value
'MULTIPLE_OPTIONS'
>>> unbalanced(TextView("奶奶，生日快乐！愿您身体健康。”"), G).code.value
'UNBALANCED'
>>> incomplete_answer(TextView("单机动作角色扮演游戏"), RuleContext(kind="answer")).code.value
'INCOMPLETE_ANSWER'
"""

from __future__ import annotations

import re

from agents.rules.base import CJK, RuleContext, RuleHit, TextView, char_ngrams, hit, normalize, rule, snippet
from agents.schemas import ReasonCode

# ---- several options -------------------------------------------------------------------------

_NUM = r"[一二三四五六1-6A-DＡ-Ｄ①②③④]"
_OPTIONS = re.compile(
    r"(?:版本|祝福语?|方案|选项|选择|示例|范例|写法|文案|备选)\s*" + _NUM + r"\s*[：:）)．.、]"
    r"|第\s*[一二三四1-4]\s*(?:条|种|版|个版本|则|段)\s*(?:祝福语?|写法|版本)?\s*[：:]"
    r"|(?:^|[。！？!?\n]\s*)(?:或者|或是|或|又或者|也可以这样写|还可以这样写|也可以写成|另一种(?:写法|说法|版本|风格)|换一种(?:写法|说法))\s*[：:]"
    r"|也可以这样写|还可以这样写|另一种写法|[两三四五六几多]\s*(?:条|个|种|版|款)(?:不同的?)?(?:祝福|版本|写法|风格|供|可选)"
    r"|[【\[(（][^】\]）)\n]{1,4}(?:版|款)[】\])）]",
    re.MULTILINE,
)
# Two or more lines that open with a short label (「温馨版：」「【幽默】」): variants side by side.
_LABEL_LINE = re.compile(r"^\s*(?:[【\[][^】\]\n]{1,6}[】\]]|[^\s，。！？：:\n]{1,6}[：:])", re.MULTILINE)
_ANSWER_OPTIONS = re.compile(r"(?:版本|祝福语?)\s*" + _NUM + r"\s*[：:）)．.、]")
_NUMBERED_LINE = re.compile(r"^\s*(?:\d{1,2}|[一二三四五])\s*[.、．)）]\s*\S", re.MULTILINE)


@rule("multiple_options", ReasonCode.MULTIPLE_OPTIONS, "只要一条却给了好几个版本（版本一/版本二、祝福一、1. 2. 3.、或者：）")
def multiple_options(view: TextView, ctx: RuleContext) -> RuleHit | None:
    text = view.text
    m = (_ANSWER_OPTIONS if ctx.kind == "answer" else _OPTIONS).search(text)
    if m is None and ctx.kind == "greeting" and len(_NUMBERED_LINE.findall(text)) >= 2:
        m = _NUMBERED_LINE.search(text)
    if m is None and ctx.kind == "greeting" and "\n" in text and len(_LABEL_LINE.findall(text)) >= 2:
        m = _LABEL_LINE.search(text)
    if m is None:
        return None
    return hit("multiple_options", f"只需要一条，这里给了多个版本（「{snippet(text, m.span()).strip()}」），请只保留一条完整的。",
               m.span())  # fmt: skip


# ---- repeated sentences ----------------------------------------------------------------------

_SENTENCE = re.compile(r"[。！？!?；;\n]+")
_CLAUSE = re.compile(r"[。！？!?；;\n，,、]+")
_DROP = re.compile(r"[\W_]+")
_LOOP = re.compile(r"(.{2,10})\1\1")
_MIN_SENTENCE = 5
_MIN_CONTAINED = 8
_MIN_CLAUSE = 6


@rule("repeated_sentence", ReasonCode.REPEATED_SENTENCE, "同一句话（或同一小句）在一条输出里出现了两次以上，像模型在复读")
def repeated_sentence(view: TextView, ctx: RuleContext) -> RuleHit | None:
    norm = view.norm()
    if len(set(char_ngrams(norm, 4))) > len(norm) - 4:
        return None  # fast path: no 4 characters occur twice, so nothing repeats
    folded = view.text.lower()  # split first, then drop punctuation (normalize() without NFKC)
    sentences = [s for s in (_DROP.sub("", x) for x in _SENTENCE.split(folded)) if len(s) >= _MIN_SENTENCE]
    for i, a in enumerate(sentences):
        for b in sentences[i + 1 :]:
            if a == b or (min(len(a), len(b)) >= _MIN_CONTAINED and (a in b or b in a)):
                return hit("repeated_sentence", f"「{(a if len(a) <= len(b) else b)[:12]}」重复出现，请删掉重复的句子。")
    seen: set[str] = set()
    for clause in _CLAUSE.split(folded):
        if len(clause) < _MIN_CLAUSE:
            continue
        clause = _DROP.sub("", clause)
        if len(clause) < _MIN_CLAUSE:
            continue
        if clause in seen:
            return hit("repeated_sentence", f"「{clause[:12]}」重复出现，请删掉重复的部分。")
        seen.add(clause)
    m = _LOOP.search(norm)
    if m is not None and len(set(m.group(1))) >= 2:
        return hit("repeated_sentence", f"「{m.group(1)}」连着重复了好几遍，请删掉重复的部分。")
    return None


# ---- cut-off endings -------------------------------------------------------------------------

# The last visible character: a letter, digit or CJK character means the text stopped mid-clause
# (an emoji, a closing mark or a closing quote is an ending).
_OPEN_END = re.compile(rf"[{CJK}A-Za-z0-9]\s*$")


@rule("truncated", ReasonCode.TRUNCATED, "输出被截断：finish_reason 是 length，或结尾没有句末标点（话没说完）")
def truncated(view: TextView, ctx: RuleContext) -> RuleHit | None:
    if ctx.finish_reason == "length":
        return hit("truncated", "输出达到长度上限被截断了，请写一条更短、完整的输出。")
    m = _OPEN_END.search(view.text)
    if m is None:
        return None
    return hit("truncated", f"结尾「{view.text[-6:]}」没有句末标点，话没说完，请写完整并以句号、感叹号等结尾。", m.span())


# ---- unbalanced quotes and brackets ----------------------------------------------------------

_PAIRS = {"“": "”", "「": "」", "『": "』", "（": "）", "(": ")", "【": "】", "《": "》", "[": "]", "{": "}"}
_CLOSERS = {v: k for k, v in _PAIRS.items()}
_MARKS = re.compile(r"[“”「」『』（）()【】《》\[\]{}\"]")
# A list number like 「1）」「a)」 closes nothing.
_LIST_NUMBER = re.compile(r"(?:^|[\s\n])[0-9A-Za-z①-⑩一二三四五]{1,2}$")


@rule("unbalanced", ReasonCode.UNBALANCED, "引号或括号不成对（结尾多出一个 ”、少了右括号、书名号不闭合）")
def unbalanced(view: TextView, ctx: RuleContext) -> RuleHit | None:
    text = view.text
    if not _MARKS.search(text):
        return None
    stack: list[tuple[str, int]] = []
    for m in _MARKS.finditer(text):
        c, i = m.group(0), m.start()
        if c == '"':
            if stack and stack[-1][0] == '"':
                stack.pop()
            else:
                stack.append((c, i))
        elif c in _PAIRS:
            stack.append((c, i))
        else:
            opener = _CLOSERS[c]
            if stack and stack[-1][0] == opener:
                stack.pop()
            elif c in "）)" and _LIST_NUMBER.search(text, 0, i):
                continue
            else:
                return hit("unbalanced", f"「{c}」没有对应的左半边，请删掉多余的符号或补全。", (i, i + 1))
    if stack:
        c, i = stack[0]
        close = _PAIRS.get(c, '"')
        return hit("unbalanced", f"「{c}」没有闭合（缺少「{close}」），请补全或删掉。", (i, i + 1))
    return None


# ---- a QA answer that is no reply -----------------------------------------------------------

_END_MARK = re.compile(r"[。！？!?…]")
# A short answer with none of these has no predicate: a bare noun phrase, a date, a list of names.
_PREDICATE = re.compile(r"[是有在为叫能会可要了过着住用让把被给到说做去来像属称想爱看打拿带开走出进回得需应该靠]"
                        r"|^[他她它这那我你您其该此]")  # a sentence with a subject pronoun
_MIN_SHORT = 12
_NUMBER = re.compile(r"\d|[一二三四五六七八九十百千万两]+(?:元|个|岁|年|天|小时|分钟|次|章|回|种|位|名)")  # 售价268元。


@rule("incomplete_answer", ReasonCode.INCOMPLETE_ANSWER, "问答的回答不是完整的句子（只有一个名词短语、日期或几个词，没有句末标点）")
def incomplete_answer(view: TextView, ctx: RuleContext) -> RuleHit | None:
    if ctx.kind != "answer":
        return None
    text = view.text
    norm = normalize(text)
    if not norm:
        return None
    if _END_MARK.search(text) is None and not re.search(r"[，,；;：:]", text):
        return hit("incomplete_answer", "回答只是一个词组，不是完整的句子；请用完整的一两句话回答，并以句号结尾。")
    if len(norm) < _MIN_SHORT and _PREDICATE.search(norm) is None and not (len(norm) >= 6 and _NUMBER.search(norm)):
        return hit("incomplete_answer", "回答太简略，只是一个词组；请用完整的句子把问题答清楚。")
    return None
