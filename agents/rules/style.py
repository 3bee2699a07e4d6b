"""Rules that depend on the work item: length and emoji for the style, role–scene fit, honorifics.

>>> from agents.rules.base import RuleContext, TextView
>>> ctx = RuleContext(style="小红书", kind="greeting")
>>> style_markers(TextView("姐姐生日快乐，愿你天天开心，永远十八岁！"), ctx).message
'小红书风格需要 1–2 个 emoji，这里有 0 个。'
>>> count_emoji("生日快乐🎂🎉 ❤️ 👨‍👩‍👧")
4
"""

from __future__ import annotations

import re

from agents.rules.base import RuleContext, RuleHit, TextView, hit, rule
from agents.schemas import ReasonCode

_SPACE = re.compile(r"\s+")


def visible_len(text: str) -> int:
    """Characters that are not whitespace (what a reader counts as 字数).

    >>> visible_len("新年 快乐！\\n")
    5
    """
    return len(text) - sum(len(s) for s in _SPACE.findall(text))


@rule("too_short", ReasonCode.TOO_SHORT, "短于该风格的最少字数（正常/严肃 10，小红书 15，默认 2）")
def too_short(view: TextView, ctx: RuleContext) -> RuleHit | None:
    low, _ = ctx.limits()
    n = visible_len(view.text)
    if n >= low:
        return None
    return hit("too_short", f"太短：{n} 字，至少需要 {low} 字。")


@rule("too_long", ReasonCode.TOO_LONG, "长于该风格的最多字数（正常/严肃 200，小红书 300，默认 2000）")
def too_long(view: TextView, ctx: RuleContext) -> RuleHit | None:
    _, high = ctx.limits()
    if len(view.text) <= high:  # fast path: even with spaces it fits
        return None
    n = visible_len(view.text)
    if n <= high:
        return None
    return hit("too_long", f"太长：{n} 字，最多 {high} 字。")


# One emoji = a pictograph (optionally with a variation selector or skin tone) joined by ZWJ to
# more, or a pair of regional indicators (a flag).
_EMOJI_BASE = (
    "\U0001f300-\U0001f5ff\U0001f600-\U0001f64f\U0001f680-\U0001f6ff\U0001f900-\U0001faff"  # pictographs
    "\u2600-\u27bf\u2b50\u2b55\u2b06\u2934\u2935\u3030\u303d\u3297\u3299"  # symbols and dingbats (☀ ✨ ❤)
    "\U0001f004\U0001f0cf\U0001f170-\U0001f251"  # mahjong, cards, enclosed letters (🀄 🅰 🈵)
)
_EMOJI = re.compile(
    rf"[\U0001f1e6-\U0001f1ff]{{2}}"
    rf"|[{_EMOJI_BASE}][\ufe0f\U0001f3fb-\U0001f3ff]?(?:\u200d[{_EMOJI_BASE}][\ufe0f\U0001f3fb-\U0001f3ff]?)*"
)


def count_emoji(text: str) -> int:
    """Number of emoji (a ZWJ family or a flag counts once)."""
    return len(_EMOJI.findall(text))


@rule("style_markers", ReasonCode.STYLE_MISMATCH, "风格标记不符（小红书风格要 1–2 个 emoji）")
def style_markers(view: TextView, ctx: RuleContext) -> RuleHit | None:
    limits = ctx.emoji_limits()
    if limits is None:
        return None
    n = count_emoji(view.text)
    low, high = limits
    if low <= n <= high:
        return None
    want = f"{low}–{high} 个" if low != high else f"{low} 个"
    return hit("style_markers", f"{ctx.style}风格需要 {want} emoji，这里有 {n} 个。")


@rule("role_scene", ReasonCode.ROLE_SCENE_MISMATCH, "对象与场景不搭（按配方的兼容矩阵，如 给领导送七夕祝福）",
      scope="sample")  # fmt: skip
def role_scene(views: list[TextView], ctx: RuleContext) -> RuleHit | None:
    if not (ctx.role and ctx.scene and ctx.compat):
        return None
    allowed = ctx.compat.get(ctx.role, {}).get(ctx.scene, True)
    if allowed is True:
        return None
    why = allowed if isinstance(allowed, str) and allowed else "配方的兼容矩阵不允许这个组合"
    return hit("role_scene", f"给「{ctx.role}」送「{ctx.scene}」祝福不合适：{why}。")


# 你 as a pronoun: not 你们 (addressing a group is fine), not 迷你.
_NI = re.compile(r"(?<!迷)你(?!们)")
_NIN = re.compile(r"您")
_ZUNJING = re.compile(r"尊敬的")
# Quoted speech may use any pronoun: 您常说“你要好好学习”.
_QUOTED = re.compile(r"“[^”]*”|「[^」]*」|\"[^\"]*\"|『[^』]*』")


@rule("honorific", ReasonCode.HONORIFIC,
      "称呼与关系不符：对长辈/上级用了「你」；对兄弟姐妹、晚辈用了「您」或「尊敬的」（对邻居、同事、同学用您没问题）")  # fmt: skip
def honorific(view: TextView, ctx: RuleContext) -> RuleHit | None:
    """你 to an elder or a superior is the defect. 您 to a peer (邻居、同事、同学) is polite and fine;
    您 or 尊敬的 to a sibling (Tianji rewrote both away for 哥哥…表妹) or a child reads odd."""
    relation = ctx.relation
    if relation is None and not ctx.sibling:
        return None
    text = view.text
    if any(q in text for q in "“「\"『"):
        text = _QUOTED.sub(lambda m: "·" * len(m.group(0)), text)  # keep spans aligned
    who = ctx.role or "对方"
    if ctx.sibling or relation == "junior":
        m = _ZUNJING.search(text)
        if m:
            return hit("honorific", f"对{who}不要用「尊敬的」，太生分了。", m.span())
    if relation == "elder":
        m = _NI.search(text)
        if m:
            return hit("honorific", f"对{who}（长辈/上级）要用「您」而不是「你」。", m.span())
    elif relation == "junior" or ctx.sibling:
        m = _NIN.search(text)
        if m:
            return hit("honorific", f"对{who}（兄弟姐妹/晚辈）用「你」就好，用「您」反而生分。", m.span())
    return None
