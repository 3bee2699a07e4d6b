"""Dialogue rules: each speaker keeps its role. Cross-role echo runs over whole samples (both speakers'
turns), role confusion and the chatbot sign-off over each turn. ≥5 flagged and ≥5 clean each."""

from __future__ import annotations

import pytest

from agents.rules import RuleContext, check_sample
from agents.schemas import ReasonCode, Sample, Turn

D = RuleContext(kind="dialogue_turn")


def sample(*pairs: tuple[str, str]) -> Sample:
    return Sample(id="d", recipe="emollm", kind="dialogue", turns=[Turn(input=i, output=o) for i, o in pairs])


def codes(rule: str, *pairs: tuple[str, str]) -> list[ReasonCode]:
    return [h.code for h in check_sample(sample(*pairs), RuleContext(kind="dialogue_turn", enabled=frozenset({rule})))]


ASK = "听起来焦虑已经影响到你的睡眠了。能说说是什么让你这么担心吗？"

ECHOES = [
    [("我最近总是焦虑，晚上睡不着。", ASK), (ASK, "我能理解你的感受。")],  # the issue's dialogue
    [("我妈总是控制我的生活，连穿什么都要管。", "你妈妈总是控制你的生活，连你穿什么都要管。")],
    [("我考试又没考好，觉得自己很失败。", "我考试又没考好，觉得自己很失败。")],
    [("我和室友关系不好。", "和室友相处不好，每天回宿舍都会觉得很压抑吧。你们之间发生过什么吗？"),
     ("和室友相处不好，每天回宿舍都会觉得很压抑。我们之间发生过什么呢？", "你愿意具体说说吗？")],
    [("我被裁员了，不敢告诉家里人。", "被裁员了，又不敢告诉家里人，这份压力你一个人扛着。"),
     ("被裁员了，又不敢告诉家里人，这份压力我一个人扛着。", "你最担心家人的哪种反应？")],
    [("我觉得自己一事无成，三十岁了还在租房。", "三十岁了还在租房，觉得自己一事无成。")],
]
REFLECTIONS = [
    [("同事说我做事慢，我难过了一整天。", "被说做事慢，你难过了一整天，这份在意背后可能是你对自己要求很高。你觉得自己真的慢吗？")],
    [("最近期末考试压力好大，每天晚上都睡不着。", "听起来考试的压力已经影响到你的睡眠了。能说说你最担心的是哪一门吗？"),
     ("主要是高数，上次期中只考了五十多分。", "高数上次没考好，让你对这次更没底了。我们可以先每天只复习一个章节。")],
    [("我和闺蜜吵架了，她一周没理我。", "和最好的朋友冷战一周，心里一定七上八下的。你们是因为什么吵起来的呢？"),
     ("我说漏嘴把她的秘密告诉了别人。", "你也不是故意的，但你能意识到这让她受伤，说明你很在乎她。")],
    [("我总是拖延。", "拖延的时候你通常在做什么？"), ("刷手机，一晚上就过去了。", "可以试试把手机放到另一个房间，先做五分钟。")],
    [("我很难过。", "难过的时候，愿意说出来就很好。"), ("谢谢，嗯嗯。", "不客气，我们慢慢聊。")],
    [("你说“慢慢来”，可是我真的等不了了。", "等不了的那种焦急，一定很煎熬。是什么让你这么着急呢？")],
]


@pytest.mark.parametrize("pairs", ECHOES)
def test_cross_role_echo_is_flagged(pairs):
    assert codes("cross_role_echo", *pairs) == [ReasonCode.CROSS_ROLE_ECHO]


@pytest.mark.parametrize("pairs", REFLECTIONS)
def test_brief_reflection_is_not_an_echo(pairs):
    assert codes("cross_role_echo", *pairs) == []


def test_the_echo_names_the_turn_and_who_repeated_whom():
    hits = check_sample(sample(*ECHOES[0]), RuleContext(kind="dialogue_turn", enabled=frozenset({"cross_role_echo"})))
    assert hits[0].turn == 1 and "来访者的话照搬了咨询师上一轮" in hits[0].message


SEEKER_AS_COUNSELLOR = [
    "我能理解你的感受，焦虑是很常见的情绪，你可以试着深呼吸放松一下。",
    "听起来你最近承受了很大的压力，建议你每天留出一点时间给自己。",
    "别担心，你并不孤单，我们可以一起想办法。",
    "感谢你的信任和分享，你愿意多说说最近发生了什么吗？",
    "作为你的咨询师，我建议你先从小目标开始。",
    "慢慢来，我会一直陪着你的。",
]
SEEKER_CLEAN = [
    "我最近总是焦虑，晚上睡不着。",
    "你说得对，我可以试着早点放下手机。",
    "谢谢你，我会试试的。",
    "您这么一说，我好像轻松了一点。",
    "我试过和家人聊，但总觉得他们不太理解我。",
    "我不知道该怎么办，你能帮帮我吗？",
]


@pytest.mark.parametrize("seeker", SEEKER_AS_COUNSELLOR)
def test_help_seeker_talking_like_a_counsellor(seeker):
    assert codes("role_confusion", (seeker, "谢谢你的建议，我会试试的。")) == [ReasonCode.ROLE_CONFUSION]


@pytest.mark.parametrize("seeker", SEEKER_CLEAN)
def test_help_seeker_talking_as_a_help_seeker(seeker):
    assert codes("role_confusion", (seeker, "能说说最近发生了什么吗？")) == []


@pytest.mark.parametrize("counsellor", ["我最近也总是睡不着，压力好大，不知道该怎么办。", "我也很焦虑，天天失眠。"])
def test_counsellor_talking_like_a_help_seeker(counsellor):
    assert codes("role_confusion", ("我睡不着。", counsellor)) == [ReasonCode.ROLE_CONFUSION]


def test_counsellor_who_shares_the_feeling_is_fine():
    assert codes("role_confusion", ("我很焦虑。", "我也能感受到你的焦虑，我们一起慢慢理一理。")) == []


CHATBOT = [
    "可以试着每天运动半小时。如果你有任何其他想了解的问题，请随时告诉我！",
    "和父母沟通时可以先表达感受。希望我的回答对你有所帮助！",
    "辞职前先想清楚下一步。如果还有其他问题，欢迎随时向我提问。",
    "睡前可以试试冥想。还有什么我可以帮你的吗？",
    "可以记录每天做成的一件小事。以上建议仅供参考。",
    "被背叛真的很痛。感谢您的提问，祝您一切顺利！",
]
COUNSELLOR_CLOSINGS = [
    "今晚就试，这个决定很棒。我们下次一起看看哪里可以再调整。",
    "你已经为家里做了很多，也要记得留一点时间给自己休息。",
    "如果这周有什么变化，下次见面时说给我听听。",
    "焦虑的时候试试深呼吸吧。如果还有什么困惑，随时欢迎你来找我聊聊。",
    "先听他说，是很好的开始。这段时间你也辛苦了，记得照顾好自己。",
    "如果这种状态持续两周以上，也可以考虑去医院的心理科看看。",
]


@pytest.mark.parametrize("text", CHATBOT)
def test_counsellor_closing_like_a_chatbot(text):
    assert codes("chatbot_closing", ("我最近压力很大。", text)) == [ReasonCode.PERSONA_DRIFT]


@pytest.mark.parametrize("text", COUNSELLOR_CLOSINGS)
def test_counsellor_closing_like_a_counsellor(text):
    assert codes("chatbot_closing", ("我最近压力很大。", text)) == []


def test_the_issue_dialogue_is_caught_three_ways():
    """Issue 12: the seeker repeats the counsellor, the counsellor signs off like a chatbot, then the
    counsellor's last turn is the critic's own revision feedback."""
    feedback = "第 3 轮：回答和问题几乎一样，请给出真正的回答。"
    closing = "我能理解你的感受，这种情况很常见。如果你有任何其他想了解的问题，请随时告诉我！"
    s = sample(("我最近总是焦虑，晚上睡不着。", ASK), (ASK, closing), (closing, feedback))
    found = {h.code for h in check_sample(s, RuleContext(kind="dialogue_turn", feedback=feedback))}
    assert {ReasonCode.CROSS_ROLE_ECHO, ReasonCode.PERSONA_DRIFT, ReasonCode.FEEDBACK_LEAK} <= found
