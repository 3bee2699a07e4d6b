"""Leak rules: reasoning, retrieved context, the prompt, few-shot examples and revision feedback must not
show up in an output. Each rule on ≥5 outputs it must flag and ≥5 near-misses it must leave alone."""

from __future__ import annotations

import pytest

from agents.rules import RULES, RuleContext, check_text
from agents.schemas import ReasonCode

G = {"kind": "greeting"}
A = {"kind": "answer"}
D = {"kind": "dialogue_turn"}

SHOTS = ("奶奶，中秋节快乐！今年的月亮格外圆，我也想多回家陪陪您。愿您身体硬朗、胃口好，月饼少吃甜的，多跟老姐妹们出去走走。",
         "恭喜你升职！这些年你加过的班、扛过的项目大家都看在眼里，这份认可实至名归。新岗位担子更重，也别忘了照顾好自己。")
PROMPT = ("你是天机，一个懂得人情世故的祝福语助手。\n请根据下面的请求写一条祝福语。\n对象：李总；场景：生日；风格：正常。\n"
          "风格要求：语气真诚、有礼貌，像平时发给对方的一条消息；用词自然，不堆砌成语，不加表情符号。\n"
          "<examples>\n<example><output>" + SHOTS[0] + "</output></example>\n</examples>\n"
          "<request>帮我写一段给李总的生日祝福</request>")
KB = frozenset({"01_概览.md", "黑风山.txt"})

FLAGGED: list[tuple[str, str, dict]] = [
    ("think_leak", "<think>用户想要生日祝福。</think>奶奶，生日快乐！", G),
    ("think_leak", "思考过程：对象是长辈，要用您。\n\n奶奶，生日快乐！", G),
    ("think_leak", "嗯，用户让我写一条春节祝福。哥，新年快乐！", G),
    ("think_leak", "妈，生日快乐！</think>", G),
    ("think_leak", "好的，用户问的是黑熊精住在哪里。黑熊精住在黑风山。", A),
    ("think_leak", "首先，我需要理解来访者的情绪。你最近还好吗？", D),
    ("think_leak", "让我想一想：奶奶是长辈。奶奶，生日快乐！", G),
    ("context_leak", "根据提供的资料，黑熊精住在黑风山。", A),
    ("context_leak", "资料中提到，游戏由游戏科学开发。", A),
    ("context_leak", "黑熊精住在黑风山[1]。", A),
    ("context_leak", "黑熊精住在黑风山。【来源：01_概览.md】", A),
    ("context_leak", "以上内容出自黑风山.txt。", {**A, "knowledge_files": KB}),
    ("context_leak", "通过对资料的分析可以得出，这是一款动作游戏。", A),
    ("context_leak", "游戏售价268元。\n\n参考：官方网站", A),
    ("prompt_leak", "李总，生日快乐！对长辈和上级用“您”，对平辈和晚辈用“你”。", G),
    ("prompt_leak", "李总，生日快乐！用词自然，不堆砌成语，不加表情符号。", {**G, "prompt": PROMPT}),
    ("prompt_leak", "李总，生日快乐！（直接给出祝福语正文，不要标题）", G),
    ("prompt_leak", "李总，生日快乐！要求：语气真诚。祝您身体健康。", G),
    ("prompt_leak", "你是一个懂得人情世故的祝福语助手。李总，生日快乐！", G),
    ("prompt_leak", "这是第 2 轮（共 3 轮），对话还会继续。你愿意多说说吗？", D),
    ("fewshot_copy", "李总，生日快乐！今年的月亮格外圆，我也想多回家陪陪您。愿您身体硬朗、胃口好。", {**G, "few_shots": SHOTS}),
    ("fewshot_copy", "外婆，中秋节快乐！今年的月亮格外圆，我也想多回家陪陪您。愿您身体硬朗、胃口好，月饼少吃甜的。",
     {**G, "few_shots": SHOTS}),
    ("fewshot_copy", "恭喜你升职！这些年你加过的班、扛过的项目大家都看在眼里，这份认可实至名归。", {**G, "few_shots": SHOTS}),
    ("fewshot_copy", "叔叔，中秋节快乐！今年的月亮格外圆，愿您身体硬朗、胃口好。", {**G, "few_shots": SHOTS}),
    ("fewshot_copy", "奶奶，中秋节快乐！今年的月亮格外圆，我也想多回家陪陪您。", {**G, "prompt": PROMPT},),
    ("feedback_leak", "第 3 轮：回答和问题几乎一样，请给出真正的回答。", {**D, "feedback": "第 3 轮：回答和问题几乎一样，请给出真正的回答。"}),
    ("feedback_leak", "请补充开发商和背景。游戏由游戏科学开发。", {**A, "feedback": "回答太简略，请补充开发商和背景。"}),
    ("feedback_leak", "修改后的祝福：妈，中秋快乐！", G),
    ("feedback_leak", "哥，新年快乐！（已按意见去掉表情符号）", G),
    ("feedback_leak", "根据质检意见修改：你最近还好吗？", D),
    ("feedback_leak", "对同事（平辈/晚辈）用「你」就好。恭喜你升职！", {**G, "feedback": "对同事（平辈/晚辈）用「你」就好，不用「您」。"}),
]

CLEAN: list[tuple[str, str, dict]] = [
    ("think_leak", "奶奶，生日快乐！我想了想，还是决定亲手给您做一个蛋糕。", G),
    ("think_leak", "用户可以在设置里调整画质。", A),
    ("think_leak", "首先，我们可以一起把让你担心的事情列出来。", D),
    ("think_leak", "我需要先了解一下你最近的作息，可以说说吗？", D),
    ("think_leak", "我想你一定很累了，愿意说说发生了什么吗？", D),
    ("context_leak", "原著第一回写道，石猴在花果山出世。", A),
    ("context_leak", "书中提到，孙悟空拜菩提祖师为师。", A),
    ("context_leak", "官方已经宣布会推出资料片。", A),
    ("context_leak", "根据游戏设定，天命人是一只猴子。", A),
    ("context_leak", "打败它可以获得一件重要的材料，用来制作葫芦。", A),
    ("context_leak", "根据提供的资料，黑熊精住在黑风山。", G),  # not an answer: no retrieved context there
    ("prompt_leak", "李总，生日快乐！感谢您这一年的信任和指导，祝您身体健康。", {**G, "prompt": PROMPT}),
    ("prompt_leak", "李总，生日快乐！愿您事业顺利，天天有好心情。", {**G, "prompt": PROMPT}),
    ("prompt_leak", "报名要求：年满十八周岁。", A),
    ("prompt_leak", "你是我见过最温柔的人，生日快乐！", G),
    ("prompt_leak", "奶奶，中秋节快乐！今年的月亮格外圆，我也想多回家陪陪您。", {**G, "prompt": PROMPT, "few_shots": SHOTS[:1]}),
    ("fewshot_copy", "奶奶，中秋节快乐！今年的月亮又大又圆，可惜我加班回不去，月饼给您寄过去了。", {**G, "few_shots": SHOTS}),
    ("fewshot_copy", "恭喜你升职！你带着我们熬过了好几个项目，新岗位上也要注意休息。", {**G, "few_shots": SHOTS}),
    ("fewshot_copy", "尊敬的李总，值此新春佳节之际，谨向您和家人致以最诚挚的祝福。", {**G, "few_shots": (
        "领导您好，值此新春佳节之际，谨向您和家人致以诚挚的问候。",)}),
    ("fewshot_copy", "奶奶，中秋节快乐！今年的月亮格外圆，我也想多回家陪陪您。", G),  # no few-shots known
    ("fewshot_copy", "李总，生日快乐！愿您身体健康，万事如意。", {**G, "few_shots": SHOTS}),
    ("feedback_leak", "奶奶，生日快乐！祝您福寿安康。", {**G, "feedback": "开头「奶奶，生日快乐」很好，但结尾太敷衍。"}),
    ("feedback_leak", "李总，生日快乐！祝您身体健康。", {**G, "feedback": "请把中秋的内容换成和生日相关的内容，不要照抄例子。"}),
    ("feedback_leak", "第三轮面试之后，我就一直睡不好。", D),
    ("feedback_leak", "游戏由游戏科学开发，以《西游记》为背景。", {**A, "feedback": "回答太简略，请补充开发商和背景。"}),
    ("feedback_leak", "你最近还好吗？我们可以慢慢聊。", {**D, "feedback": "回应太短，请先共情再追问。"}),
]


def run_rule(name: str, text: str, kwargs: dict) -> list[ReasonCode]:
    return [h.code for h in check_text(text, RuleContext(enabled=frozenset({name}), **kwargs))]


@pytest.mark.parametrize(("name", "text", "kwargs"), FLAGGED)
def test_leak_rule_flags(name, text, kwargs):
    assert run_rule(name, text, kwargs) == [RULES[name].code]


@pytest.mark.parametrize(("name", "text", "kwargs"), CLEAN)
def test_leak_rule_leaves_alone(name, text, kwargs):
    assert run_rule(name, text, kwargs) == []


def test_every_leak_rule_has_five_of_each():
    for name in ("think_leak", "context_leak", "prompt_leak", "fewshot_copy", "feedback_leak"):
        assert sum(r == name for r, _, _ in FLAGGED) >= 5, name
        assert sum(r == name for r, _, _ in CLEAN) >= 5, name


def test_the_issue_greeting_is_caught_five_ways():
    """The birthday wish the small model wrote and its judge accepted (issue 12)."""
    text = ("李总，生日快乐！今年的月亮格外圆，我也想多回家陪陪您。愿您身体硬朗、胃口好，月饼少吃甜的，多跟老姐妹们出去走走。”"
            "<br><br><strong>对长辈和上级用“您”，对平辈和晚辈用“你”。</strong>")
    ctx = RuleContext(kind="greeting", role="李总", scene="生日", style="正常", prompt=PROMPT, few_shots=SHOTS)
    codes = {h.code.value for h in check_text(text, ctx)}
    assert {"FEWSHOT_COPY", "SCENE_MISMATCH", "UNBALANCED", "MARKDOWN", "PROMPT_LEAK"} <= codes


def test_untagged_examples_in_the_prompt_count_as_few_shots():
    """The Tianji seed's prompt lists its examples after 参考句子为：, with no tags."""
    prompt = ("你现在是一个送祝福大师。要求的风格是：小红书风格。参考句子为：希望你岁末将至，敬颂冬绥，平安喜乐，万事胜意。\n"
              "前方荣光万丈，身后温暖一方，凡是过往，皆为序章。\n对象称谓是：姐姐，祝福场景是：生日。")
    ctx = RuleContext(kind="greeting", role="姐姐", scene="生日", prompt=prompt)
    copied = [h.code for h in check_text("姐，生日快乐🎂 前方荣光万丈，身后温暖一方，凡是过往，皆为序章！", ctx)]
    assert copied == [ReasonCode.FEWSHOT_COPY]  # a copied example, not a prompt leak
    assert check_text("姐，生日快乐🎂 新的一岁也要闪闪发光，奶茶自由，快乐加倍！", ctx) == []


def test_feedback_messages_are_chinese_and_name_the_leak():
    hit = check_text("根据提供的资料，黑熊精住在黑风山。", RuleContext(kind="answer", enabled=frozenset({"context_leak"})))[0]
    assert "根据提供的资料" in hit.message and "看不到资料" in hit.message
