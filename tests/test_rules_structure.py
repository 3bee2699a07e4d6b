"""Structure rules (several options, repeated sentences, cut-off endings, unbalanced marks, bare answers)
and the issue-12 additions to the content rules (HTML, speaker labels, placeholders, loanwords, meta
closings). Each on ≥5 outputs it must flag and ≥5 it must leave alone."""

from __future__ import annotations

import pytest

from agents.rules import RULES, RuleContext, check_text
from agents.schemas import ReasonCode

G = {"kind": "greeting"}
A = {"kind": "answer"}
D = {"kind": "dialogue_turn"}
SYSTEM = "你是天机，一个懂得人情世故的祝福语助手。"

FLAGGED: list[tuple[str, str, dict]] = [
    ("multiple_options", "版本一：奶奶，生日快乐！\n版本二：奶奶，祝您福如东海！", G),
    ("multiple_options", "祝福一：爷爷重阳节快乐！\n祝福二：祝爷爷健康长寿！", G),
    ("multiple_options", "1. 哥，新年快乐！\n2. 哥，新春大吉！", G),
    ("multiple_options", "妈，中秋快乐！\n\n或者：妈，月圆人团圆！", G),
    ("multiple_options", "【温馨版】奶奶，生日快乐！\n【幽默版】奶奶，又年轻了一岁！", G),
    ("multiple_options", "领导，新春快乐！也可以这样写：领导，新年吉祥！", G),
    ("multiple_options", "版本一：这是一款动作游戏。\n版本二：这是一款角色扮演游戏。", A),
    ("repeated_sentence", "奶奶，生日快乐！祝您身体健康，万事如意。祝您身体健康，万事如意。", G),
    ("repeated_sentence", "愿您福寿安康。愿您福寿安康。愿您福寿安康。", G),
    ("repeated_sentence", "新的一年越来越好越来越好越来越好！", G),
    ("repeated_sentence", "祝你前程似锦，步步高升。祝你前程似锦、步步高升！", G),
    ("repeated_sentence", "我能理解你的感受，我能理解你的感受，你愿意多说一点吗？", D),
    ("repeated_sentence", "黑熊精住在黑风山。它是第一回的头目。黑熊精住在黑风山。", A),
    ("truncated", "奶奶，生日快乐！愿您身体健康，福寿绵长，每天都", G),
    ("truncated", "天命人有三种棍法：劈棍、立棍和", A),
    ("truncated", "焦虑的时候身体会一直紧绷，我们可以先试着", D),
    ("truncated", "姐，生日快乐呀🎂 新的一岁继续闪闪发光，快乐自由统统", G),
    ("truncated", "妈，中秋节快乐！愿您平安喜乐。", {**G, "finish_reason": "length"}),
    ("unbalanced", "奶奶，生日快乐！愿您身体健康，福寿安康。”", G),
    ("unbalanced", "“爷爷，重阳节快乐！祝您健康长寿。", G),
    ("unbalanced", "哥，新年快乐！祝你新的一年（事业顺利。", G),
    ("unbalanced", "《黑神话：悟空》是一款以《西游记为背景的游戏。", A),
    ("unbalanced", "外婆，端午安康！粽子记得趁热吃】", G),
    ("unbalanced", "\"表妹，元宵节快乐！", G),
    ("incomplete_answer", "单机动作角色扮演游戏", A),
    ("incomplete_answer", "黑风山", A),
    ("incomplete_answer", "2024年8月20日", A),
    ("incomplete_answer", "孙悟空、猪八戒、沙悟净", A),
    ("incomplete_answer", "单机动作角色扮演游戏。", A),
    ("incomplete_answer", "黑熊精。", A),
    ("markdown", "爷爷，重阳节快乐！<br>祝您健康长寿。", G),
    ("markdown", "<p>《黑神话：悟空》是一款动作游戏。</p>", A),
    ("markdown", "<strong>领导您好</strong>，新春快乐！", G),
    ("markdown", "奶奶，生日快乐！\n\n---\n\n祝您健康。", G),
    ("markdown", "和家人吵架很难受。<div>你愿意说说吗？</div>", D),
    ("speaker_label", "回复：奶奶，生日快乐！", G),
    ("speaker_label", "祝福语：爷爷，重阳节快乐！", G),
    ("speaker_label", "天机：妈，中秋快乐！", {**G, "prompt": SYSTEM}),
    ("speaker_label", "天机回复：妈，中秋快乐！", {**G, "prompt": SYSTEM}),
    ("speaker_label", "咨询师：你最近还好吗？", D),
    ("speaker_label", "**回答：** 这是一款单机游戏。", A),
    ("placeholder", "[老师姓名]老师，生日快乐！", G),
    ("placeholder", "李总，生日快乐！（此处填写你们共同的经历）", G),
    ("placeholder", "外婆，我在[城市名]一切都好。", G),
    ("placeholder", "哥，祝你在<公司名称>步步高升。", G),
    ("placeholder", "弟弟，记得那年我们一起去___吗？", G),
    ("placeholder", "叔叔，祝您早日康复！落款：【你的名字】", G),
    ("placeholder", "奶奶，生日快乐！（署名）", G),
    ("english_leak", "同事，恭喜升职！Congratulations on your promotion!", G),
    ("english_leak", "睡不着很难受，take a deep breath and relax。", D),
    ("english_leak", "这是一款单机游戏。The player controls the Destined One.", A),
    ("english_leak", "妈，中秋快乐！May the full moon bring you joy.", G),
    ("english_leak", "奶奶，Happy birthday！愿您身体健康。", G),
    ("preamble", "哥，新年快乐！希望这条祝福能表达你的心意！", G),
    ("preamble", "妈，中秋快乐！如需调整语气或字数，请告诉我。", G),
    ("preamble", "领导，新春快乐！（以上祝福可根据实际情况修改）", G),
    ("preamble", "这是一款动作游戏。如有其他问题欢迎继续提问。", A),
    ("preamble", "好的，我来回答这个问题。这是一款动作游戏。", A),
    ("preamble", "当然！这是一条温馨的重阳节祝福：爷爷，重阳节快乐！", G),
]

CLEAN: list[tuple[str, str, dict]] = [
    ("multiple_options", "有两个办法：第一，先把主线打通；第二，回头收集道具。", A),
    ("multiple_options", "标准版和豪华版的区别在于附赠的数字内容。", A),
    ("multiple_options", "主要有以下几点：\n1. 先敬长辈；\n2. 不要劝酒。", A),
    ("multiple_options", "奶奶，生日快乐！祝福一下您，愿您长寿。", G),
    ("multiple_options", "妈，中秋快乐！或者说，月圆人团圆，愿您平安。", G),
    ("repeated_sentence", "奶奶，生日快乐！再祝您生日快乐！", G),
    ("repeated_sentence", "哈哈哈哈哈哈，生日快乐！", G),
    ("repeated_sentence", "慢慢来，一步一步走。", D),
    ("repeated_sentence", "谢谢谢谢，真的太感谢了。", D),
    ("repeated_sentence", "天命人有劈棍、立棍、戳棍三种棍法，每种棍法各有所长。", A),
    ("truncated", "姐，生日快乐呀🎂 爱你哦✨", G),
    ("truncated", "生日快乐呀~", G),
    ("truncated", "愿你被这个世界温柔以待…", G),
    ("truncated", "他说：“一切都会好起来的。”", D),
    ("truncated", "游戏在2024年8月20日发售。", {**A, "finish_reason": "stop"}),
    ("unbalanced", "老师说过“读书是最好的修行”，祝您生日快乐！", G),
    ("unbalanced", "外公，您说过《论语》里“仁者寿”，祝您长寿。", G),
    ("unbalanced", "游戏使用虚幻引擎5（Unreal Engine 5）开发。", A),
    ("unbalanced", "主要有：\n1) 先敬长辈；\n2) 不要劝酒。", A),
    ("unbalanced", "叔叔，您是我们家的“开心果”，春节快乐！", G),
    ("incomplete_answer", "《黑神话：悟空》是一款单机动作角色扮演游戏。", A),
    ("incomplete_answer", "他觊觎唐僧的锦斓袈裟。", A),
    ("incomplete_answer", "游戏售价268元。", A),
    ("incomplete_answer", "是的，游戏有多个结局，取决于你是否集齐六根。", A),
    ("incomplete_answer", "黑风山", G),  # only QA answers must be sentences
    ("markdown", "主要有以下几点：\n1. 先敬长辈；\n2. 不要劝酒。", A),
    ("markdown", "用 **Boss** 这个词称呼头目。", A),
    ("markdown", "妈，生日快乐！愿您平安。", G),
    ("markdown", "小于号<和大于号>在中文里很少用。", A),
    ("markdown", "外婆——祝您端午安康！", G),
    ("speaker_label", "奶奶：生日快乐！祝您身体健康。", G),
    ("speaker_label", "妈妈总说：“你们平平安安就好。”妈，生日快乐！", G),
    ("speaker_label", "时间：周六下午三点。", A),
    ("speaker_label", "注意：第一回的隐藏Boss需要特定道具。", A),
    ("speaker_label", "天机：妈，中秋快乐！", G),  # without the prompt, 天机 is not known as a name
    ("placeholder", "游戏使用虚幻引擎5（Unreal Engine 5）开发。", A),
    ("placeholder", "黑熊精住在黑风山[1]。", A),  # a citation, not a slot: context_leak's
    ("placeholder", "哥，新年快乐！给你买了件XXL的羽绒服。", G),
    ("placeholder", "奶奶，生日快乐！（笑）", G),
    ("placeholder", "《西游记》里的【大闹天宫】一回最精彩。", A),
    ("english_leak", "新年快乐！祝你拿offer拿到手软，KPI轻松完成！", G),
    ("english_leak", "今年终于把PS5抱回家了吧？祝你Steam愿望单全部打折，Boss一次就过！", G),
    ("english_leak", "游戏使用Unreal Engine 5开发，已经登陆PS5和Steam平台。", A),
    ("english_leak", "可以通过App提前预约。", A),
    ("english_leak", "哥，恭喜你用Unreal Engine 5做的游戏上线了，这份offer来得太值了！", G),
    ("english_leak", "游戏的英文名是Black Myth: Wukong。", A),
    ("preamble", "奶奶，生日快乐！希望这份小小的祝福能带给您一整天的好心情。", G),
    ("preamble", "这份祝福不大，却是我最真的心意。", G),
    ("preamble", "以下是几种常见的敬酒礼仪：先敬长辈，再敬平辈。", A),
    ("preamble", "好的，我试试先听他说。", D),
    ("preamble", "哥，新年快乐！祝你生活愉快，万事顺意。", G),
]


def run_rule(name: str, text: str, kwargs: dict) -> list[ReasonCode]:
    return [h.code for h in check_text(text, RuleContext(enabled=frozenset({name}), **kwargs))]


@pytest.mark.parametrize(("name", "text", "kwargs"), FLAGGED)
def test_structure_rule_flags(name, text, kwargs):
    assert run_rule(name, text, kwargs) == [RULES[name].code]


@pytest.mark.parametrize(("name", "text", "kwargs"), CLEAN)
def test_structure_rule_leaves_alone(name, text, kwargs):
    assert run_rule(name, text, kwargs) == []


def test_every_rule_here_has_five_of_each():
    for name in {r for r, _, _ in FLAGGED}:
        assert sum(r == name for r, _, _ in FLAGGED) >= 5, name
        assert sum(r == name for r, _, _ in CLEAN) >= 5, name


def test_codes_for_the_new_classes():
    assert RULES["speaker_label"].code is ReasonCode.SPEAKER_LABEL
    assert RULES["bad_ending"].code is ReasonCode.TRUNCATED and RULES["truncated"].code is ReasonCode.TRUNCATED
    assert RULES["markdown"].code is ReasonCode.MARKDOWN  # HTML is markup too


# ---- more phrasings small models use (one per line: text, context, the class it must raise or None) ----
G_ = dict(kind="greeting", role="奶奶", scene="生日", style="正常")
A_ = dict(kind="answer")
D_ = dict(kind="dialogue_turn")
MORE_PHRASINGS = [
 ("*奶奶，生日快乐！*愿您身体健康。", G_, "MARKDOWN"),
 ("奶奶，生日快乐！&nbsp;愿您身体健康。", G_, "MARKDOWN"),
 ("• 身体健康\n• 万事如意", G_, "MARKDOWN"),
 ("<font color='red'>奶奶，生日快乐！</font>", G_, "MARKDOWN"),
 ("【生日祝福】奶奶，生日快乐！愿您身体健康。", G_, "MARKDOWN"),
 ("奶奶生日快乐！\n#生日快乐# #奶奶#", G_, None),
 ("Okay, here's a birthday wish: 奶奶，生日快乐！", G_, "PREAMBLE"),
 ("奶奶，生日快乐！\n\n希望这段祝福能让奶奶感受到你的爱。", G_, "PREAMBLE"),
 ("奶奶，生日快乐！\n\n（如果需要更正式的版本，可以告诉我）", G_, "PREAMBLE"),
 ("奶奶，生日快乐！这段文字适合在家庭聚会上朗读。", G_, "PREAMBLE"),
 ("标题：给奶奶的生日祝福\n奶奶，生日快乐！", G_, "MARKDOWN"),
 ("当然可以！奶奶，生日快乐！", G_, "PREAMBLE"),
 ("作为您的孙子，我祝您生日快乐！", G_, None),
 ("根据您提供的信息，我为奶奶写了一段祝福：奶奶，生日快乐！", G_, "PREAMBLE"),
 ("```\n奶奶，生日快乐！\n```", G_, "MARKDOWN"),
 ("奶奶，生日快乐！{{祝福结束}}", G_, "PLACEHOLDER"),
 ("奶奶，生日快乐！祝您【具体祝愿】。", G_, "PLACEHOLDER"),
 ("奶奶，生日快乐！祝您...", G_, "MIXED_PUNCTUATION"),
 ("奶奶，生日快乐！祝您身体健康，”", G_, "UNBALANCED"),
 ("奶奶，生日快乐！祝您身体健康。”\n\n", G_, "UNBALANCED"),
 ("奶奶，生日快乐！\n祝福二：奶奶，祝您长寿！", G_, "MULTIPLE_OPTIONS"),
 ("奶奶，生日快乐！愿您身体健康。\n\n或：奶奶，寿比南山！", G_, "MULTIPLE_OPTIONS"),
 ("奶奶，生日快乐！愿您\n", G_, "TRUNCATED"),
 ("根据提供的内容，这是一款动作游戏。", A_, "CONTEXT_LEAK"),
 ("在给定的段落中，提到这是一款动作游戏。", A_, "CONTEXT_LEAK"),
 ("如参考资料所示，这是一款动作游戏。", A_, "CONTEXT_LEAK"),
 ("这是一款动作游戏。(来源: 01_概览.md)", A_, "CONTEXT_LEAK"),
 ("这是一款动作游戏。[Source: passage 1]", A_, "CONTEXT_LEAK"),
 ("我不确定，资料里没有相关信息。", A_, "CONTEXT_LEAK"),
 ("答案：这是一款动作游戏。", A_, "SPEAKER_LABEL"),
 ("A: 这是一款动作游戏。", A_, "SPEAKER_LABEL"),
 ("助理：这是一款动作游戏。", A_, "SPEAKER_LABEL"),
 ("Assistant：这是一款动作游戏。", A_, "SPEAKER_LABEL"),
 ("以下是我的回答：这是一款动作游戏。", A_, "PREAMBLE"),
 ("这是一款动作游戏。以上就是关于这款游戏的介绍。", A_, "PREAMBLE"),
 ("这是一款动作游戏。如果你想了解更多，可以继续问我哦！", A_, "PREAMBLE"),
 ("我（咨询师）能理解你的感受。", D_, "SPEAKER_LABEL"),
 ("嗯嗯，我理解。作为一名心理咨询师，我建议你多休息。", D_, None),
 ("很抱歉听到这个消息。如果你需要进一步的帮助，请随时联系我。", D_, "PERSONA_DRIFT"),
 ("你可以试试深呼吸。祝你一切顺利！", D_, None),
 ("<think>\n\n</think>\n\n你可以试试深呼吸。", D_, "THINK_LEAK"),
 ("【回复】你可以试试深呼吸。", D_, "SPEAKER_LABEL"),
 ("思考：来访者很焦虑。回复：你可以试试深呼吸。", D_, "THINK_LEAK"),
 ("（温和地）你可以试试深呼吸。", D_, None),
]


@pytest.mark.parametrize(("text", "ctx", "want"), MORE_PHRASINGS)
def test_more_phrasings(text, ctx, want):
    found = [h.code.value for h in check_text(text, RuleContext(**ctx))]
    assert (want in found) if want else found == []
