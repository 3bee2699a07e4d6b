"""Dialogue rules: each speaker keeps its role (EmoLLM-style counselling dialogues).

- cross-role echo: a help-seeker turn that repeats the counsellor's previous reply, or a counsellor
  reply that only mirrors the help-seeker's words (pronouns 你/您/我 are compared as one);
- role confusion: the help-seeker talks like a counsellor (我能理解你的感受、建议你…), or the
  counsellor like a help-seeker (我最近也总是睡不着…);
- a counsellor who closes like a chatbot (如果你有任何其他问题，请随时告诉我！).

A turn's `question` is the help-seeker's message, `text` the counsellor's reply.

>>> from agents.rules.base import RuleContext, TextView
>>> D = RuleContext(kind="dialogue_turn")
>>> chatbot_closing(TextView("可以试试深呼吸。如果你有任何其他想了解的问题，请随时告诉我！"), D).code.value
'PERSONA_DRIFT'
>>> views = [TextView("能说说发生了什么吗？", "我很难过。"), TextView("好的。", "能说说发生了什么吗？", 1)]
>>> cross_role_echo(views, D).code.value
'CROSS_ROLE_ECHO'
"""

from __future__ import annotations

import re

from agents.rules.base import RuleContext, RuleHit, TextView, char_ngrams, hit, rule, snippet
from agents.schemas import ReasonCode

_PRONOUN = str.maketrans({"你": "我", "您": "我"})
_ECHO_N = 4
_ECHO_COVER = 0.6
_ECHO_MIN = 6


def _plain(norm: str) -> str:
    return norm.translate(_PRONOUN).replace("我们", "我")


def _covered(later: str, earlier: str) -> float:
    """Share of `later` covered by 4-gram runs that also occur in `earlier`."""
    if len(later) < _ECHO_MIN or len(earlier) < _ECHO_N:
        return 0.0
    grams = char_ngrams(earlier, _ECHO_N)
    if _ECHO_N * len(char_ngrams(later, _ECHO_N) & grams) < _ECHO_COVER * len(later):
        return 0.0  # even with every shared 4-gram apart, too little is shared
    covered = [False] * len(later)
    for i in range(len(later) - _ECHO_N + 1):
        if later[i : i + _ECHO_N] in grams:
            covered[i : i + _ECHO_N] = [True] * _ECHO_N
    return sum(covered) / len(later)


@rule("cross_role_echo", ReasonCode.CROSS_ROLE_ECHO, "一方复述了另一方上一轮的话（来访者照抄咨询师，或咨询师只是原样复述）",
      scope="sample")  # fmt: skip
def cross_role_echo(views: list[TextView], ctx: RuleContext) -> RuleHit | None:
    if ctx.kind != "dialogue_turn":
        return None
    previous = ""
    for view in views:
        seeker, counsellor = _plain(view.question_norm()), _plain(view.norm())
        if previous and _covered(seeker, previous) >= _ECHO_COVER:
            found = hit("cross_role_echo", f"第 {view.index + 1} 轮来访者的话照搬了咨询师上一轮的回应，来访者要说自己的处境和感受。")
            return RuleHit(found.code, found.rule, found.message, None, view.index, on_input=True)
        if counsellor and _covered(counsellor, seeker) >= _ECHO_COVER:
            found = hit("cross_role_echo", f"第 {view.index + 1} 轮咨询师只是复述了来访者的话，请在共情之后追问或给出具体建议。")
            return RuleHit(found.code, found.rule, found.message, None, view.index)
        previous = counsellor
    return None


# What a counsellor says, not a help-seeker.
_COUNSELLOR_TALK = re.compile(
    r"我(?:能|可以|非常|完全|很)?(?:理解|体会|感受到)(?:你|您)(?:的|现在的|此刻的)?(?:感受|心情|处境|痛苦|难过|压力)"
    r"|听起来(?:你|您)|(?:我)?建议(?:你|您)|(?:你|您)可以(?:试着|尝试|考虑|多做|试试)|(?:你|您)?不妨(?:试试|试着)"
    r"|别担心[，,]\s*(?:你|我们)|(?:你|您)并不孤单|(?:你|您)不是一个人|我们可以一起|我会一直(?:陪着|在)"
    r"|(?:你|您)愿意(?:和我|跟我)?(?:多)?(?:说说|聊聊|谈谈|分享)|(?:感谢|谢谢)(?:你|您)的(?:信任|分享|坦诚)"
    r"|作为(?:你|您)的(?:心理)?咨询师|(?:你|您)已经做得很好|说明(?:你|您)在认真|随时(?:告诉|找|联系)我"
    r"|我明白(?:你|您)的(?:感受|心情)|我听到了(?:你|您)|(?:你|您)(?:现在)?最需要的是|(?:你|您)能(?:意识到|说出来)"
)
# What a help-seeker says about themself, not a counsellor.
_SEEKER_TALK = re.compile(
    r"我(?:最近|也|这段时间|这阵子)(?:总是|一直|经常|老是)?[^，。！？你您]{0,6}(?:睡不着|失眠|焦虑|难过|难受|好累|很累|压力|好烦|很烦|"
    r"不知道(?:该)?怎么办|想哭|撑不住)"
    r"|^(?:医生|咨询师|老师)[，,]\s*我"
)


@rule("role_confusion", ReasonCode.ROLE_CONFUSION, "角色错位：来访者说咨询师的话（我理解你的感受、建议你…），或咨询师说来访者的话")
def role_confusion(view: TextView, ctx: RuleContext) -> RuleHit | None:
    if ctx.kind != "dialogue_turn":
        return None
    if view.question:
        m = _COUNSELLOR_TALK.search(view.question)
        if m is not None:
            return hit("role_confusion", f"来访者说了咨询师的话「{snippet(view.question, m.span())}」，"
                                         "来访者应该讲自己的处境和感受。", on_input=True)  # fmt: skip
    m = _SEEKER_TALK.search(view.text)
    if m is not None:
        return hit("role_confusion", f"咨询师说成了来访者的话「{snippet(view.text, m.span())}」，请以咨询师的身份回应。", m.span())
    return None


# A chatbot's sign-off: for an answer it is meta talk (preamble), for a counsellor persona drift.
CHATBOT_CLOSING = re.compile(
    r"(?:如果|若|如|假如)(?:你|您)?(?:还)?有(?:任何|其他|别的|更多|其它)[^。！？\n]{0,8}(?:问题|疑问|需要|需求)"
    r"[^。！？\n]{0,12}(?:随时|欢迎|请|可以|告诉|联系|提问|问我|解答|乐意)"
    r"|(?:如果|若|如|假如)(?:你|您)?(?:还)?有[^。！？\n]{0,8}(?:问题|疑问)[^。！？\n]{0,12}(?:随时|欢迎|请|可以|告诉|联系|提问|问我|解答|乐意)"
    r"|有(?:什么|任何)(?:问题|疑问|需要)[^。！？\n]{0,6}随时(?:问|找|告诉|联系)我"
    r"|(?:欢迎|随时)(?:继续|再)?(?:向我)?(?:提问|咨询|问我|来问)|有需要(?:可以)?随时(?:来)?(?:问|找|联系)我"
    r"|还有(?:什么|其他|别的)(?:我|需要我)?(?:可以|能)(?:帮|为)(?:你|您)|我很乐意(?:为|帮)(?:你|您)"
    r"|希望(?:我的|以上|上述|这些|这个|这条|此)?[^。！？\n]{0,8}(?:对你|对您|能)(?:有所|有)?(?:帮助|帮到|启发)"
    r"|希望以上|(?:感谢|谢谢)(?:你|您)的(?:提问|问题|咨询|阅读)|仅供参考|如需进一步(?:帮助|咨询|了解)"
    r"|(?:有|遇到)(?:任何|什么)(?:其他)?(?:问题|疑问)(?:都|也)?(?:可以|欢迎)(?:问|找|告诉|联系)(?:我|我们)"
    r"|还有(?:什么|其他|别的)(?:想|要|需要)?(?:了解|知道|问|咨询)的(?:吗|嘛)|以上是我的(?:建议|回答)"
    r"|(?:如果|若|如)(?:你|您)?(?:还)?需要(?:进一步|更多|其他)的?(?:帮助|支持|建议|信息|解答)"
    r"|(?:还)?有(?:什么|任何)?(?:其他|别的|其它)的?(?:问题|疑问)(?:吗|嘛|么)"
    r"|(?:想|要)(?:了解|知道)(?:更多|其他)[^。！？\n]{0,10}(?:问我|告诉我|找我|联系我)|(?:可以|欢迎)?继续(?:问我|向我提问|提问|咨询我)"
)


@rule("chatbot_closing", ReasonCode.PERSONA_DRIFT, "咨询师像聊天机器人一样收尾（如果你有任何其他问题，请随时告诉我！）")
def chatbot_closing(view: TextView, ctx: RuleContext) -> RuleHit | None:
    if ctx.kind != "dialogue_turn":
        return None
    m = CHATBOT_CLOSING.search(view.text)
    if m is None:
        return None
    return hit("chatbot_closing", f"咨询师不会这样收尾「{snippet(view.text, m.span())}」，"
                                  "请用咨询师的口吻小结或鼓励，不要像客服一样结束。", m.span())  # fmt: skip
