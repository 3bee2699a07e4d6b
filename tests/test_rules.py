"""The critic's rule layer: every rule on ≥5 Chinese texts it must flag and ≥5 it must leave alone."""

from __future__ import annotations

import doctest
import importlib

import pytest

from agents.errors import ConfigError
from agents.rules import (
    RULES,
    RuleContext,
    TIANJI_ROLES,
    check_sample,
    check_text,
    count_emoji,
    feedback,
    is_sibling,
    reason_codes,
    relation_of,
)
from agents.schemas import ReasonCode, Sample, Turn

G = {"kind": "greeting"}
A = {"kind": "answer"}
D = {"kind": "dialogue_turn"}

COMPAT = {
    "领导": {"七夕节": "七夕是情人节，不适合给领导送", "生日": True},
    "爷爷": {"新婚快乐": False},
    "同学": {"重阳节": False},
    "医生": {"周年纪念": "和医生没有共同的纪念日"},
    "李总": {"七夕节": False},
}

# (rule, text, context kwargs). Each text must give exactly that rule's code when only it runs.
POSITIVE: list[tuple[str, str, dict]] = [
    ("leading_punctuation", "！啦~新年快乐，万事如意！", G),
    ("leading_punctuation", "。哦！祝你生日快乐", G),
    ("leading_punctuation", "，祝姐姐生日快乐！", G),
    ("leading_punctuation", "……新的一年，愿你平安喜乐", G),
    ("leading_punctuation", "啦~姐姐生日快乐呀！", G),
    ("leading_punctuation", "祝你生日快乐！啦~", G),
    ("leading_punctuation", "愿你万事如意。哦！", G),
    ("mixed_punctuation", "祝你生日快乐,天天开心！", G),
    ("mixed_punctuation", "新年快乐!愿你平安。", G),
    ("mixed_punctuation", "你好吗?最近怎么样？", D),
    ("mixed_punctuation", "注意:饭前要洗手。", A),
    ("mixed_punctuation", "祝您身体健康.万事如意", G),
    ("mixed_punctuation", "我想说...谢谢你一直陪着我。", D),
    ("mixed_punctuation", "我是由EmoLLM团队打造的中文领域心理健康助手, 是一个心理专家。", A),
    ("repeated_punctuation", "祝你生日快乐！！！", G),
    ("repeated_punctuation", "新年快乐。。", G),
    ("repeated_punctuation", "真的吗？？？", D),
    ("repeated_punctuation", "好开心~~~生日快乐", G),
    ("repeated_punctuation", "我想说，，谢谢你", G),
    ("repeated_punctuation", "祝你平安，。万事如意", G),
    ("bad_ending", "祝您新年快乐，", G),
    ("bad_ending", "新的一年，祝你身体健康、", G),
    ("bad_ending", "祝你前程似锦，万事如意；", G),
    ("bad_ending", "游戏的主要角色有：", A),
    ("bad_ending", "希望你能够（", G),
    ("bad_ending", "愿你所有的梦想都能实现,", G),
    ("preamble", "以下是为您准备的祝福：新年快乐！", G),
    ("preamble", "当前祝福语如下", G),
    ("preamble", "好的，祝您新年快乐，身体健康！", G),
    ("preamble", "下面是一条春节祝福：愿您新春大吉！", G),
    ("preamble", "根据您的要求，我写了一条祝福：生日快乐！", G),
    ("preamble", "这是为你写的祝福：生日快乐！", G),
    ("preamble", "！啦~以下是为您准备的祝福：新年快乐", G),
    ("preamble", "生日快乐，天天开心！希望这条祝福能让你满意。", G),
    ("preamble", "祝您新年快乐，万事如意！（共12字）", G),
    ("preamble", "当然可以！以下是为你整理的敬酒礼仪要点：先敬长辈。", A),
    ("preamble", "好的，以下是我的回答：天命人是玩家操控的角色。", A),
    ("preamble", "好的，这是为您生成的对话：来访者说自己很焦虑。", D),
    ("refusal", "抱歉，我无法提供这方面的建议。", A),
    ("refusal", "对不起，我不能帮你写这个。", G),
    ("refusal", "我无法回答这个问题。", A),
    ("refusal", "很抱歉，这个请求违反了我的使用政策。", A),
    ("refusal", "这个问题超出了我的能力范围。", A),
    ("refusal", "I'm sorry, but I can't help with that.", A),
    ("ai_self_reference", "作为一个AI，我没有生日，但祝你生日快乐！", G),
    ("ai_self_reference", "作为一个人工智能语言模型，我认为你应该多休息。", D),
    ("ai_self_reference", "我是一个语言模型，无法感受节日的气氛。", G),
    ("ai_self_reference", "虽然我没有真实的情感，但我理解你的难过。", D),
    ("ai_self_reference", "ChatGPT祝你新年快乐！", G),
    ("ai_self_reference", "As an AI, I hope you have a great day.", A),
    # an assistant's service voice (the 0.5B model's birthday wish for 奶奶 said 我在这里为您提供支持与鼓励)
    ("ai_self_reference", "亲爱的奶奶，生日快乐！我在这里为您提供支持与鼓励，愿您身体健康。", G),
    ("ai_self_reference", "很高兴为您服务，祝您新春快乐，阖家幸福！", G),
    ("ai_self_reference", "我能理解你的焦虑。还有什么可以帮你的吗？", D),
    ("ai_self_reference", "作为您的智能助手，我祝您中秋快乐，月圆人团圆。", G),
    ("ai_self_reference", "我会一直为你提供帮助，也希望你早点走出低谷。", D),
    ("markdown", "# 新年祝福\n祝您新年快乐！", G),
    ("markdown", "**新年快乐**，万事如意！", G),
    ("markdown", "祝您：\n- 身体健康\n- 万事如意", G),
    ("markdown", "【生日祝福】\n姐姐生日快乐！", G),
    ("markdown", "标题：中秋祝福\n月圆人团圆。", G),
    ("markdown", "1. 身体健康\n2. 万事如意", G),
    ("markdown", "我理解你的感受。\n\n**建议**：先好好睡一觉。", D),
    ("markdown", "# 敬酒礼仪\n先敬长辈，再敬平辈。", A),
    ("markdown", "```json\n{\"answer\": \"先敬长辈\"}\n```", A),
    ("speaker_label", "接下来我会推荐一些学习技巧。\n\n医生：另外，请记住，寻求帮助也是一种能力。", D),
    ("speaker_label", "病人：我还是很焦虑。", D),
    ("speaker_label", "用户：你好\n助手：你好！有什么可以帮你？", A),
    ("speaker_label", "Assistant: 你好，很高兴见到你。", A),
    ("speaker_label", "答：天命人是玩家操控的角色。", A),
    ("placeholder", "亲爱的{name}，生日快乐！", G),
    ("placeholder", "祝【姓名】新年快乐！", G),
    ("placeholder", "亲爱的XXX，祝你生日快乐！", G),
    ("placeholder", "祝某某老师教师节快乐！", G),
    ("placeholder", "[你的名字]敬上，祝您新春愉快。", G),
    ("placeholder", "{{称呼}}，中秋快乐！", G),
    ("placeholder", "祝（对方姓名）一切顺利！", G),
    ("english_leak", "Happy birthday! 祝你生日快乐！", G),
    ("english_leak", "祝你生日快乐，happy every day！", G),
    ("english_leak", "Here is your greeting: 新年快乐！", G),
    ("english_leak", "姐姐生日快乐！Wish you all the best!", G),
    ("english_leak", "Happy New Year，新年快乐！", G),
    ("english_leak", "这个问题很好。The answer depends on your situation.", A),
    ("english_leak", "祝你offer多多salary多多bonus多多", G),
    ("too_short", "生日快乐", {"style": "正常"}),
    ("too_short", "新年快乐！", {"style": "严肃"}),
    ("too_short", "当前祝福语如下", {"style": "正常"}),
    ("too_short", "祝 您 新 年 快 乐", {"style": "正常"}),
    ("too_short", "生日快乐呀🎂🎉", {"style": "小红书"}),
    ("too_short", "好", {}),
    ("too_long", "祝" * 201, {"style": "正常"}),
    ("too_long", "福" * 201, {"style": "严肃"}),
    ("too_long", "乐" * 301, {"style": "小红书"}),
    ("too_long", "答" * 2001, {}),
    ("too_long", "答" * 2001, {"style": "文言文"}),
    ("too_long", "安" * 51, {"style": "正常", "length_limits": {"正常": (10, 50)}}),
    ("style_markers", "姐姐生日快乐，愿你天天开心，永远十八岁！", {"style": "小红书"}),
    ("style_markers", "姐姐生日快乐🎂🎉✨愿你天天开心，永远十八岁！", {"style": "小红书"}),
    ("style_markers", "👨‍👩‍👧🎉🎂✨新年快乐，阖家幸福，万事如意！", {"style": "小红书"}),
    ("style_markers", "🎉🎉🎉🎉 新年快乐，阖家幸福，万事如意！", {"style": "小红书"}),
    ("style_markers", "新年快乐，阖家幸福，万事如意，岁岁平安！", {"style": "小红书", "kind": "greeting"}),
    ("style_markers", "恭祝新春吉祥🎉", {"style": "严肃", "emoji_range": {"严肃": (0, 0)}}),
    ("role_scene", "祝您七夕快乐！", {"role": "领导", "scene": "七夕节", "compat": COMPAT}),
    ("role_scene", "祝您新婚快乐！", {"role": "爷爷", "scene": "新婚快乐", "compat": COMPAT}),
    ("role_scene", "祝您七夕快乐！", {"role": " 领导 ", "scene": "七夕节 ", "compat": COMPAT}),
    ("role_scene", "重阳节快乐！", {"role": "同学", "scene": "重阳节", "compat": COMPAT}),
    ("role_scene", "周年快乐！", {"role": "医生", "scene": "周年纪念", "compat": COMPAT}),
    ("role_scene", "七夕快乐！", {"role": "李总", "scene": "七夕节", "compat": COMPAT}),
    ("role_scene", "升职快乐！", {"role": "同学", "scene": "工作升职", "compat": {"同学": {"工作升职 ": False}}}),
    ("honorific", "祝你重阳节快乐，身体健康！", {"role": "爷爷"}),
    ("honorific", "老师，祝你教师节快乐！", {"role": "赵老师"}),
    ("honorific", "祝你新年快乐，步步高升！", {"role": "领导"}),
    ("honorific", "祝您生日快乐！", {"role": "姐姐"}),
    ("honorific", "尊敬的表妹，生日快乐！", {"role": "表妹"}),
    ("honorific", "尊敬的弟弟，新年快乐！", {"role": "弟弟"}),
    ("honorific", "女儿，祝您生日快乐！", {"role": "女儿"}),
    ("honorific", "祝你新年快乐！", {"role": "王总"}),
    ("echo", "祝姐姐生日快乐", {"question": "祝姐姐生日快乐,小红书风格"}),
    ("echo", "天命人是谁？", {"question": "天命人是谁？"}),
    ("echo", "我最近总是失眠，怎么办", {"question": "我最近总是失眠，怎么办？"}),
    ("echo", "如何敬酒", {"question": "请问如何敬酒？"}),
    ("echo", "游戏背景设定在哪个神话世界呢？", {"question": "游戏背景设定在哪个神话世界？"}),
    ("echo", "Happy birthday", {"question": "happy birthday!"}),
    # a 0.5B model's answer: the question's request copied out with a new head (Jaccard 0.77)
    ("echo", "请问你要帮助你生成一段关于学习复习的对话数据，内容要包含以下几个方面：背景信息、问题情境、预期结果和可能的解决方案。",
     {"question": "我需要你帮我生成一段关于学习复习的对话数据，内容要包含以下几个方面：背景信息、问题情境、预期结果和可能的解决方案。"}),
    ("think_leak", "<think>用户问天命人，先查资料。</think>天命人是玩家操控的角色。", A),
    ("think_leak", "天命人是玩家操控的角色。</think>", A),
    ("think_leak", "<THINK>嗯</THINK>祝您生日快乐！", G),
    ("think_leak", "我理解你的感受。<think>来访者很焦虑</think>", D),
    ("think_leak", "<|begin_of_thought|>先想想<|end_of_thought|>先敬长辈，再敬平辈。", A),
]

NEGATIVE: list[tuple[str, str, dict]] = [
    ("leading_punctuation", "新年快乐，万事如意！", G),
    ("leading_punctuation", "“岁岁平安”，祝您新春吉祥！", G),
    ("leading_punctuation", "《诗经》有云：呦呦鹿鸣。祝您生日快乐。", G),
    ("leading_punctuation", "哈哈，姐姐生日快乐呀！", G),
    ("leading_punctuation", "生日快乐啦~天天开心！", G),
    ("leading_punctuation", "嗯，我能理解你的感受。", D),
    ("leading_punctuation", "哦，原来是这样，那我们一起想想办法。", D),
    ("mixed_punctuation", "版本3.5更新了很多内容。", A),
    ("mixed_punctuation", "请访问 www.example.com 查看详情。", A),
    ("mixed_punctuation", "时间是10:30，别迟到。", A),
    ("mixed_punctuation", "Hello, world 是第一个程序。", A),
    ("mixed_punctuation", "祝你生日快乐，天天开心！", G),
    ("mixed_punctuation", "比分是3:2，主队赢了。", A),
    ("repeated_punctuation", "祝你生日快乐！！", G),
    ("repeated_punctuation", "真的吗？！", D),
    ("repeated_punctuation", "她沉默了……然后笑了。", D),
    ("repeated_punctuation", "好开心~~", G),
    ("repeated_punctuation", "我想说……谢谢你。", G),
    ("repeated_punctuation", "版本1.2.3已发布。", A),
    ("bad_ending", "祝您新年快乐。", G),
    ("bad_ending", "新年快乐🎉", G),
    ("bad_ending", "愿你被这个世界温柔以待…", G),
    ("bad_ending", "生日快乐呀~", G),
    ("bad_ending", "他说：“一切都会好起来的。”", D),
    ("bad_ending", "新年快乐", G),
    ("preamble", "今天真好的天气，祝你开心每一天！", G),
    ("preamble", "好的开始是成功的一半，祝你新学期顺利！", G),
    ("preamble", "以下是几种常见的敬酒礼仪：先敬长辈，再敬平辈。", A),
    ("preamble", "当然可以，我是EmoLLM，一个心理健康助手。", A),
    ("preamble", "好的，我们先试着做几次深呼吸。", D),
    ("preamble", "下面我们一起来看看你担心的是什么。", D),
    ("preamble", "这是我第一次给您写信，祝您生日快乐！", G),
    ("preamble", "收到您的礼物真开心，祝您中秋快乐！", G),
    ("preamble", "使用说明：先加热再食用。", A),
    ("refusal", "我不能替你做决定，但我们可以一起分析利弊。", D),
    ("refusal", "抱歉让你久等了，祝你生日快乐！", G),
    ("refusal", "对不起，是我没有及时关心你，这次生日一定补上！", G),
    ("refusal", "有些问题可能超出我的知识范围，但我会尽力回答。", A),
    ("refusal", "不能因为一次失败就否定自己。", D),
    ("refusal", "我无法想象你当时有多难过。", D),
    ("ai_self_reference", "我是你的老同学小王，祝你生日快乐！", G),
    ("ai_self_reference", "作为一名老师，您辛苦了！", G),
    ("ai_self_reference", "作为你的朋友，我永远支持你。", G),
    ("ai_self_reference", "人工智能正在改变我们的生活。", A),
    ("ai_self_reference", "谢谢您这些年一直为我提供支持，祝您生日快乐，身体健康！", G),
    ("ai_self_reference", "哥，生日快乐！有事随时找我，我永远站在你这边。", G),
    ("ai_self_reference", "很高兴认识你，愿我们的友谊长长久久。", G),
    ("ai_self_reference", "我很乐意听你说说最近发生的事，能讲讲那天的情形吗？", D),
    ("ai_self_reference", "领导您好，感谢您为我们提供了这么好的平台，祝您新年快乐！", G),
    ("ai_self_reference", "我没有忘记你的生日，祝你快乐！", G),
    ("markdown", "祝您新年快乐，万事如意！", G),
    ("markdown", "姐姐生日快乐！愿你永远十八岁✨", G),
    ("markdown", "在这个特别的日子里——祝你幸福。", G),
    ("markdown", "《黑神话：悟空》里的天命人，祝你通关顺利！", G),
    ("markdown", "敬酒有三点：\n1. 先敬长辈\n2. 双手持杯\n3. 杯口略低", A),
    ("markdown", "**注意**：不要空腹饮酒。", A),
    ("markdown", "亲爱的姐姐：\n生日快乐！愿你天天开心。", G),
    ("speaker_label", "医生建议你多休息。", D),
    ("speaker_label", "这位来访者的情况很常见。", D),
    ("speaker_label", "时间：周六下午三点。", A),
    ("speaker_label", "注意：饭前要洗手。", A),
    ("speaker_label", "我问：你还好吗？", D),
    ("speaker_label", "方案A：先休息一周。", A),
    ("placeholder", "祝你生日快乐，永远十八岁！", G),
    ("placeholder", "我们的尺码有XL和M两种。", A),
    ("placeholder", "祝你在新的一年里收获满满（包括体重）！", G),
    ("placeholder", "三乘以三等于九，3×3=9。", A),
    ("placeholder", "我们用[茴香豆](https://github.com/InternLM/HuixiangDou)的检索功能来提取知识。", A),  # a link
    ("placeholder", "时间：周六下午三点。", A),
    ("placeholder", "祝赵老师教师节快乐，桃李满天下！", G),
    ("english_leak", "祝你早日拿到心仪的offer！", G),
    ("english_leak", "新的一年，AI陪你一起成长！", G),
    ("english_leak", "游戏科学（Game Science）开发了这款游戏。", A),
    ("english_leak", "游戏带动了PlayStation Network的用户增长。", A),
    ("english_leak", "“An apple a day keeps the doctor away”这句谚语的意思是多吃水果。", A),
    ("english_leak", "我是EmoLLM，由EmoLLM团队开发。", A),
    ("english_leak", "Happy birthday! 祝你生日快乐！", {"allow_english": True}),
    ("too_short", "祝您新年快乐，身体健康，万事如意！", {"style": "正常"}),
    ("too_short", "好的", {}),
    ("too_short", "姐姐生日快乐🎂愿你天天开心，永远十八岁！", {"style": "小红书"}),
    ("too_short", "祝您新年快乐，阖家幸福", {"style": "严肃"}),
    ("too_short", "生日快乐", {"style": "正常", "length_limits": {"正常": (4, 20)}}),
    ("too_long", "祝" * 200, {"style": "正常"}),
    ("too_long", "乐 " * 300, {"style": "小红书"}),
    ("too_long", "答" * 2000, {}),
    ("too_long", "福" * 150, {"style": "严肃"}),
    ("too_long", "祝您新年快乐！", {"style": "正常"}),
    ("style_markers", "姐姐生日快乐🎂愿你天天开心，永远十八岁！", {"style": "小红书"}),
    ("style_markers", "姐姐生日快乐🎂🎉愿你天天开心，永远十八岁！", {"style": "小红书"}),
    ("style_markers", "👨‍👩‍👧🎉新年快乐，阖家幸福，万事如意！", {"style": "小红书"}),
    ("style_markers", "🇨🇳✨国庆快乐，愿祖国繁荣昌盛！", {"style": "小红书"}),
    ("style_markers", "新年快乐🎉🎉🎉🎉🎉", {"style": "正常"}),
    ("style_markers", "新年快乐，万事如意！", {}),
    ("role_scene", "祝您生日快乐！", {"role": "领导", "scene": "生日", "compat": COMPAT}),
    ("role_scene", "祝您春节快乐！", {"role": "领导", "scene": "春节", "compat": COMPAT}),
    ("role_scene", "七夕快乐！", {"role": "姐姐", "scene": "七夕节", "compat": COMPAT}),
    ("role_scene", "七夕快乐！", {"scene": "七夕节", "compat": COMPAT}),
    ("role_scene", "祝您快乐！", {"role": "领导", "compat": COMPAT}),
    ("role_scene", "七夕快乐！", {"role": "领导", "scene": "七夕节"}),
    ("honorific", "爷爷，祝您重阳节快乐！", {"role": "爷爷"}),
    ("honorific", "爷爷奶奶，祝你们身体健康！", {"role": "爷爷"}),
    ("honorific", "姐，祝你生日快乐！", {"role": "姐姐"}),
    ("honorific", "尊敬的领导，祝您新年快乐！", {"role": "领导"}),
    ("honorific", "老师，您常说“你要好好学习”，我一直记得。", {"role": "赵老师"}),
    ("honorific", "外婆，送您一台迷你收音机，祝您健康！", {"role": "外婆"}),
    ("honorific", "祝您快乐！", {"role": "小明"}),
    ("honorific", "祝您新年快乐！", {"role": "姐姐", "relation": "elder", "sibling": False}),
    ("honorific", "祝您学业有成！", {"role": "同学"}),
    ("honorific", "王姐，祝您乔迁之喜！", {"role": "邻居"}),
    ("echo", "祝姐姐生日快乐！愿你永远十八岁，天天开心！", {"question": "祝姐姐生日快乐"}),
    ("echo", "天命人是玩家在游戏中操控的角色。", {"question": "天命人是谁？"}),
    ("echo", "你好呀，我是EmoLLM，很高兴认识你。", {"question": "你好"}),
    ("echo", "敬酒时要先敬长辈，双手持杯。", {"question": "如何敬酒？"}),
    ("echo", "天命人的武器是棍。", {"question": "天命人的武器是什么？"}),  # the question's words, one new: the answer
    ("echo", "在安装净水器之前，需要检查自来水压力在零点一到零点四兆帕之间。",
     {"question": "在安装净水器之前，需要检查自来水压力在什么范围之内？"}),
    ("echo", "祝姐姐生日快乐", {}),
    ("echo", "祝姐姐生日快乐", {"question": "！！"}),
    ("think_leak", "天命人是玩家操控的角色。", A),
    ("think_leak", "想一想再回答：先敬长辈，再敬平辈。", A),
    ("think_leak", "我想了很久，祝您生日快乐！", G),
    ("think_leak", "think 这个词在英文里是“想”的意思。", A),
    ("think_leak", "<b>重点</b>是先敬长辈。", A),
]


def run_rule(name: str, text: str, kwargs: dict) -> list[ReasonCode]:
    ctx = RuleContext(enabled={name}, **kwargs)
    return [h.code for h in check_text(text, ctx)]


@pytest.mark.parametrize(("name", "text", "kwargs"), POSITIVE)
def test_rule_flags(name, text, kwargs):
    assert run_rule(name, text, kwargs) == [RULES[name].code]


@pytest.mark.parametrize(("name", "text", "kwargs"), NEGATIVE)
def test_rule_passes(name, text, kwargs):
    assert run_rule(name, text, kwargs) == []


# Rules added for issue 12 have their examples in tests/test_rules_{leaks,structure,dialogue,greeting}.py.
NEWER_RULES = {"think_leak", "context_leak", "prompt_leak", "fewshot_copy", "feedback_leak", "multiple_options",
               "repeated_sentence", "truncated", "unbalanced", "incomplete_answer", "scene_mismatch",
               "addressee_mismatch", "cross_role_echo", "role_confusion", "chatbot_closing"}


def test_every_rule_has_five_positive_and_five_negative_examples():
    multi_turn = {"repeated_turn"}  # its cases are samples, below
    for name in set(RULES) - multi_turn - NEWER_RULES:
        assert sum(r == name for r, _, _ in POSITIVE) >= 5, name
        assert sum(r == name for r, _, _ in NEGATIVE) >= 5, name


# ---- multi-turn ----------------------------------------------------------------------------


def dialogue(*pairs: tuple[str, str]) -> Sample:
    return Sample(id="d", recipe="emollm", kind="dialogue", turns=[Turn(input=i, output=o) for i, o in pairs])


BREATHE = "先试着做几次深呼吸，让自己放松下来。"
REPEATS = [
    (dialogue(("我好焦虑", BREATHE), ("还是很紧张", "我们聊聊让你紧张的事情吧。"), ("怎么办", BREATHE)), 2),
    (dialogue(("我好焦虑", BREATHE), ("还是很紧张", "先试着做几次深呼吸，让自己放松下来！")), 1),
    (dialogue(("我最近总是睡不着觉，怎么办？", "可以先调整作息。"), ("我最近总是睡不着觉，怎么办？", "睡前少看手机。")), 1),
    (dialogue(("a", "你愿意说说最近发生了什么吗？"), ("b", "我在听。"), ("c", "好的。"), ("d", "你愿意说说最近发生了什么呢？")), 3),
    (dialogue(("我好焦虑", BREATHE), ("嗯", "先试着做几次深呼吸，让自己放松下来吧")), 1),
]
NOT_REPEATS = [
    dialogue(("我好焦虑", BREATHE), ("还是很紧张", "我们聊聊让你紧张的事情吧。"), ("好", "你愿意说说最近发生了什么吗？")),
    dialogue(("谢谢你", "不客气。"), ("谢谢你", "不客气。")),  # too short to count as a loop
    dialogue(("我好焦虑", BREATHE)),
    dialogue(("我好焦虑", "先深呼吸，慢慢说。"), ("嗯", "我们先深呼吸，慢慢地说吧。")),
    dialogue(("我想聊聊工作上的压力。", "好的，你说。"), ("你说得对", "我想聊聊工作上的压力。")),
]


@pytest.mark.parametrize(("sample", "turn"), REPEATS)
def test_repeated_turn_flags_the_later_turn(sample, turn):
    hits = check_sample(sample, RuleContext(kind="dialogue_turn", enabled={"repeated_turn"}))
    assert [(h.code, h.turn) for h in hits] == [(ReasonCode.REPEATED_TURN, turn)]


@pytest.mark.parametrize("sample", NOT_REPEATS)
def test_repeated_turn_passes(sample):
    assert check_sample(sample, RuleContext(kind="dialogue_turn", enabled={"repeated_turn"})) == []


def test_check_sample_reports_turns_and_echo_uses_each_turns_input():
    sample = dialogue(("我很焦虑", "我能理解你的焦虑，我们慢慢来。"), ("怎么办？", "怎么办"), ("嗯", "你好吗?"))
    hits = check_sample(sample, RuleContext(kind="dialogue_turn"))
    assert [(h.rule, h.turn) for h in hits] == [("truncated", 1), ("echo", 1), ("mixed_punctuation", 2)]
    assert feedback(hits) == ("第 2 轮：结尾「怎么办」没有句末标点，话没说完，请写完整并以句号、感叹号等结尾。\n"
                              "第 2 轮：回答只是复述了问题，请给出真正的回答。\n第 3 轮：中文里用了半角标点「?」，请改成全角「？」。")


def test_real_emollm_turn_with_leaked_doctor_label():
    # datasets/data.json of EmoLLM, conversation 1, turn 3 (SEED_PITFALLS EmoLLM 5)
    output = (
        "对于数学学习困难的问题，我们可以探讨更具针对性的学习策略，如分解复杂问题为小块、寻找优质的学习资源或参加学习小组等。"
        "\n\n医生：另外，请记住，寻求帮助也是一种能力。"
    )
    sample = dialogue(("医生，我最近总是感到很焦虑。", "你好，首先感谢你对我敞开心扉。"), ("我在数学方面总是比他落后很多。", output))
    hits = check_sample(sample, RuleContext(kind="dialogue_turn"))
    assert [(h.code, h.turn) for h in hits] == [(ReasonCode.SPEAKER_LABEL, 1)]
    assert hits[0].span == (output.index("医生：") - 2, output.index("医生：") + 3)


# ---- whole-layer behaviour -----------------------------------------------------------------

CLEAN_GREETINGS = [
    ("爷爷", "重阳节", "正常", "爷爷，重阳节快乐！祝您身体健康，福寿安康。"),
    ("领导", "春节", "严肃", "尊敬的领导，值此新春佳节，感谢您一年来的悉心指导，祝您阖家幸福，万事顺意！"),
    ("姐姐", "生日", "小红书", "姐姐生日快乐🎂！愿你被世界温柔以待，永远闪闪发光呀～"),
    ("同事", "乔迁新居", "正常", "恭喜乔迁新居！祝你新家温馨，生活越来越好。"),
    ("邻居赵大妈", "中秋节", "正常", "赵大妈，中秋节快乐！祝您和家人团团圆圆，身体健康。"),
    ("表妹", "康复", "小红书", "表妹早日康复呀💪！等你好了我们一起去吃火锅，快快好起来哦～"),
    ("李总", "发财赚钱", "严肃", "李总，祝您事业蒸蒸日上，财源广进，生意兴隆！"),
]


@pytest.mark.parametrize(("role", "scene", "style", "text"), CLEAN_GREETINGS)
def test_clean_greetings_pass_every_rule(role, scene, style, text):
    ctx = RuleContext(kind="greeting", role=role, scene=scene, style=style, compat=COMPAT,
                      question=f"祝{role}{scene},{style}风格")  # fmt: skip
    assert check_text(text, ctx) == []


def test_dirty_greeting_reports_every_problem_in_rule_order():
    ctx = RuleContext(kind="greeting", role="爷爷", scene="重阳节", style="小红书")
    hits = check_text("！啦~以下是为您准备的祝福：祝你重阳节快乐,身体健康！！！", ctx)
    assert [h.rule for h in hits] == [
        "leading_punctuation", "mixed_punctuation", "repeated_punctuation", "preamble", "style_markers", "honorific",
    ]  # fmt: skip
    assert reason_codes(hits) == [
        ReasonCode.LEADING_PUNCTUATION, ReasonCode.MIXED_PUNCTUATION, ReasonCode.REPEATED_PUNCTUATION,
        ReasonCode.PREAMBLE, ReasonCode.STYLE_MISMATCH, ReasonCode.HONORIFIC,
    ]  # fmt: skip


def test_disabled_rules_do_not_run():
    ctx = RuleContext(kind="answer", disabled={"ai_self_reference", "english_leak"})
    assert check_text("我是一个AI助手，my name is EmoLLM assistant.", ctx) == []


def test_unknown_rule_name_is_a_config_error():
    with pytest.raises(ConfigError, match="未知的规则名 \\['honorifics'\\]"):
        RuleContext(disabled={"honorifics"})


def test_registry_lists_name_code_function_description():
    assert len(RULES) == 33
    for name, (code, fn, description, scope) in RULES.items():
        assert isinstance(code, ReasonCode) and callable(fn) and description and scope in ("text", "sample"), name
    assert RULES["role_scene"].scope == "sample" and RULES["repeated_turn"].scope == "sample"
    assert RULES["cross_role_echo"].scope == "sample"


def test_context_defaults_from_role_and_style():
    ctx = RuleContext(role="表哥", style="小红书")
    assert (ctx.relation, ctx.sibling, ctx.limits(), ctx.emoji_limits()) == ("peer", True, (15, 300), (1, 2))
    assert RuleContext().limits() == (2, 2000) and RuleContext(style="正常").emoji_limits() is None
    assert RuleContext(role="同学").sibling is False
    assert RuleContext(scene="工作升职 ").scene == "工作升职"
    ctx = RuleContext(style="正常", length_limits={"正常": (5, 50)}, emoji_range={"严肃": (0, 0)})
    assert ctx.limits() == (5, 50) and ctx.length_limits["小红书"] == (15, 300)  # merged with the defaults
    assert ctx.emoji_range == {"小红书": (1, 2), "严肃": (0, 0)}


TIANJI_28 = ["赵老师", "大舅", "大伯", "李总", "邻居赵大妈", "母亲", "姐姐", "妹妹", "哥哥", "弟弟", "爷爷", "奶奶",
             "外公", "外婆", "伯母", "叔叔", "阿姨", "堂兄", "堂妹", "表哥", "表妹", "导师", "同学", "同事", "领导",
             "邻居", "老板", "医生"]  # fmt: skip


def test_relation_table_covers_the_28_tianji_roles():
    assert sorted(TIANJI_ROLES) == sorted(TIANJI_28)
    peers = {r for r in TIANJI_28 if relation_of(r) == "peer"}
    juniors = {r for r in TIANJI_28 if relation_of(r) == "junior"}
    assert peers == {"姐姐", "哥哥", "堂兄", "表哥", "同学", "同事", "邻居"}
    assert juniors == {"妹妹", "弟弟", "堂妹", "表妹"}  # as the tianji recipe classifies them
    assert {r for r in TIANJI_28 if is_sibling(r)} == (peers | juniors) - {"同学", "同事", "邻居"}
    assert [relation_of(r) for r in ("王老师", "张总", "二舅", "表弟", "孙女", "小明")] == [
        "elder", "elder", "elder", "junior", "junior", None,
    ]  # fmt: skip


def test_count_emoji():
    assert [count_emoji(t) for t in ("新年快乐", "🎉", "❤️", "👍🏻", "👨‍👩‍👧", "🇨🇳", "🎂🎉✨")] == [0, 1, 1, 1, 1, 1, 3]


@pytest.mark.parametrize("module", ["base", "relations", "punctuation", "content", "style", "turns", "engine", "__init__",
                                    "leaks", "structure", "scenes", "dialogue"])
def test_docstring_examples(module):
    name = "agents.rules" if module == "__init__" else f"agents.rules.{module}"
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


QUESTIONS_WITH_ANSWERS = [  # the asker wrote a label or its own answer into the question
    "《黑神话：悟空》的主要角色是什么？答：天命人，一只来自花果山的猴子。",
    "问：游戏有几种结局？",
    "游戏里有多人模式吗？回答：没有。",
    "定身法是谁教的？答案：灵吉菩萨。",
    "用户：黑风山的头目是谁？",
]
PLAIN_QUESTIONS = ["《黑神话：悟空》的主要角色是什么？", "游戏里的答题环节难吗？", "回答这个问题前，要先了解原著吗？",
                   "“答应”的那个支线怎么触发？", "为什么说天命人不是孙悟空本人？"]


@pytest.mark.parametrize("question", QUESTIONS_WITH_ANSWERS)
def test_a_question_carrying_a_label_or_its_answer_is_flagged_on_the_input(question):
    hits = [h for h in check_text("天命人是玩家操控的角色，一只生在花果山的猴子。",
                                  RuleContext(kind="answer", question=question)) if h.rule == "speaker_label"]
    assert len(hits) == 1 and hits[0].on_input and hits[0].code == ReasonCode.SPEAKER_LABEL


@pytest.mark.parametrize("question", PLAIN_QUESTIONS)
def test_a_plain_question_is_not_flagged(question):
    assert not [h for h in check_text("天命人是玩家操控的角色，一只生在花果山的猴子。",
                                      RuleContext(kind="answer", question=question)) if h.rule == "speaker_label"]
