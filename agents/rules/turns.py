"""Rules that compare texts: the question echoed as the answer, a later turn repeating an earlier one.

>>> from agents.rules.base import RuleContext, TextView
>>> echo(TextView("祝姐姐生日快乐", question="祝姐姐生日快乐,小红书风格"), RuleContext()).code.value
'ECHO'
>>> views = [TextView("先深呼吸，慢慢说。"), TextView("我们先深呼吸，慢慢说吧。", index=1)]
>>> repeated_turn(views, RuleContext()) is None   # similar, but under the 0.8 threshold
True
"""

from __future__ import annotations

from agents.rules.base import (RuleContext, RuleHit, TextView, char_ngrams, gram_index, hit, jaccard, normalize,
                               rule, shared_runs)
from agents.schemas import ReasonCode

_ECHO_JACCARD = 0.8
# An answer made of the question copied out, with a few words of its own around it: one run of this many
# characters copied, and copies making up this share of the answer. 「天命人的武器是棍。」 copies 7 of 8: an answer.
_ECHO_RUN = 20
_ECHO_COVER = 0.8
_MIN_REPEAT_LEN = 6  # 「谢谢」「嗯嗯」 may come twice in a real conversation


@rule("echo", ReasonCode.ECHO, "答案只是把问题复述一遍（相同、是问题的一部分，或字符 3-gram 高度重合）")
def echo(view: TextView, ctx: RuleContext) -> RuleHit | None:
    question = view.question if view.question is not None else ctx.question
    if not question:
        return None
    a = view.norm()
    q = view.question_norm() if view.question is not None else normalize(question)
    if not a or not q:
        return None
    if a in q:  # identical, or nothing but a piece of the question
        return hit("echo", "回答只是复述了问题，请给出真正的回答。")
    if len(a) <= 2 * len(q) and jaccard(char_ngrams(a), char_ngrams(q)) >= _ECHO_JACCARD:
        return hit("echo", "回答和问题几乎一样，请给出真正的回答。")
    runs = shared_runs(a, gram_index(q, 3), 3)
    if runs and max(runs) >= _ECHO_RUN and sum(runs) >= _ECHO_COVER * len(a):
        return hit("echo", "回答几乎是把问题抄了一遍，请给出真正的回答。")
    return None


@rule("repeated_turn", ReasonCode.REPEATED_TURN, "多轮对话里后一轮的回答（或提问）重复了前面某一轮", scope="sample")
def repeated_turn(views: list[TextView], ctx: RuleContext) -> RuleHit | None:
    if len(views) < 2:
        return None
    for field, label in (("text", "回答"), ("question", "提问")):
        seen: list[tuple[int, str, set[str]]] = []
        for view in views:
            norm = view.norm() if field == "text" else view.question_norm()
            if len(norm) < _MIN_REPEAT_LEN:
                continue
            grams = char_ngrams(norm)
            for index, earlier, earlier_grams in seen:
                if norm == earlier or jaccard(grams, earlier_grams) >= ctx.repeat_threshold:
                    found = hit("repeated_turn", f"第 {view.index + 1} 轮的{label}重复了第 {index + 1} 轮，请换个说法推进对话。")
                    return RuleHit(found.code, found.rule, found.message, None, view.index)
            seen.append((view.index, norm, grams))
    return None
