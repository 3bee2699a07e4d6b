"""Punctuation rules: leading/stranded punctuation, ASCII punctuation in Chinese, repeats, bad endings.

>>> from agents.rules.base import RuleContext, TextView
>>> leading_punctuation(TextView("！啦~新年快乐"), RuleContext()).code.value
'LEADING_PUNCTUATION'
>>> mixed_punctuation(TextView("版本3.5很好用"), RuleContext()) is None
True
"""

from __future__ import annotations

import re

from agents.rules.base import CJK, RuleContext, RuleHit, TextView, hit, rule, snippet
from agents.schemas import ReasonCode

# A text may open with a quote or a bracket, never with other punctuation.
_LEADING = re.compile(r"[，。！？、；：,.!?;:~～…·）)」』】》〉”’\-—_|/\\]+")
# Particles that end a sentence and cannot begin one (啦、呢、吧、嘛), at the start.
_LEADING_PARTICLE = re.compile(r"[啦呢吧嘛]+[~～！!。，,]")
# A particle stranded after the sentence's own end mark: 「快乐！啦~」「如意。哦！」.
_STRANDED = re.compile(r"[。！？!?…]([啦呀哦哟呢吧嘛噢喔]{1,2})(?:[~～！!。，,]|$)")


@rule("leading_punctuation", ReasonCode.LEADING_PUNCTUATION,
      "以标点开头（！啦~新年快乐），或语气词落在句末标点之后（快乐！啦~）")  # fmt: skip
def leading_punctuation(view: TextView, ctx: RuleContext) -> RuleHit | None:
    text = view.text
    m = _LEADING.match(text) or _LEADING_PARTICLE.match(text)
    if m:
        return hit("leading_punctuation", f"开头不能是「{snippet(text, m.span())}」，请删掉开头的标点和语气词。", m.span())
    m = _STRANDED.search(text)
    if m:
        return hit("leading_punctuation",
                   f"语气词「{m.group(1)}」放在了句末标点之后（{m.group(0)}），请把语气词放回句末标点之前或删掉。",
                   m.span())  # fmt: skip
    return None


# ASCII , ! ? ; : touching a CJK character, a lone '.' touching CJK (not 3.5, not a.com),
# and an ASCII '...' ellipsis next to CJK.
_MIXED = re.compile(
    rf"(?<=[{CJK}])\s?[,!?;:]|[,!?;:]\s?(?=[{CJK}])"
    rf"|(?<=[{CJK}])\.(?![.\d])|(?<![.\w])\.(?=[{CJK}])"
    rf"|(?<=[{CJK}])\.{{2,}}|\.{{2,}}(?=[{CJK}])"
)
_FULLWIDTH = {",": "，", "!": "！", "?": "？", ";": "；", ":": "：", ".": "。"}


@rule("mixed_punctuation", ReasonCode.MIXED_PUNCTUATION, "中文里夹着半角标点（你好,朋友 / 快乐... ）")
def mixed_punctuation(view: TextView, ctx: RuleContext) -> RuleHit | None:
    m = _MIXED.search(view.text)
    if m is None:
        return None
    mark = m.group(0).strip()
    fix = "……" if mark.startswith("..") else _FULLWIDTH[mark]
    return hit("mixed_punctuation", f"中文里用了半角标点「{mark}」，请改成全角「{fix}」。", m.span())


# Two or more of 。，、；： (also mixed, like「，。」), three or more of ！ ？ ~, runs of 4+ dots,
# three or more '…' characters.
_REPEATED = re.compile(r"[。，、；：,;:]{2,}|[！!]{3,}|[？?]{3,}|[~～]{3,}|\.{4,}|…{3,}|[-—]{3,}")


@rule("repeated_punctuation", ReasonCode.REPEATED_PUNCTUATION, "标点重复（。。 / ！！！ / ，，）")
def repeated_punctuation(view: TextView, ctx: RuleContext) -> RuleHit | None:
    m = _REPEATED.search(view.text)
    if m is None:
        return None
    return hit("repeated_punctuation", f"标点重复「{snippet(view.text, m.span())}」，只保留一个。", m.span())


# The output stops on a mark that needs something after it: it was cut off.
_BAD_END = re.compile(r"[，、：；,:;（(“《【\-—]\s*$")


@rule("bad_ending", ReasonCode.TRUNCATED, "以逗号、顿号、冒号、左括号等结尾，像被截断了")
def bad_ending(view: TextView, ctx: RuleContext) -> RuleHit | None:
    m = _BAD_END.search(view.text)
    if m is None:
        return None
    return hit("bad_ending", f"结尾停在「{m.group(0).strip()}」，内容不完整，请写完整的结尾。", m.span())
