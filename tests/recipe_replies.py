"""A fake LLM that plays every role of the three generative recipes plausibly, for end-to-end
runs against the local server (tests, README samples, `python -m tests.fake_openai --script
tests.recipe_replies:reply`). Replies vary with the request so dedup does not reject them."""

from __future__ import annotations

import hashlib
import itertools
import re

from agents.rules.relations import relation_of
from tests.fake_openai import ChatRequest

ACCEPT = {"reasons": ["回答有资料依据，切题，语气得体。"], "decision": "accept", "reason_codes": [],
          "scores": {k: 0.9 for k in ("grounding", "relevance", "style", "persona", "coherence", "helpfulness")}, "feedback": None}

OPENERS = ["最近", "这段时间", "这几周", "这学期", "上个月开始", "自从换了环境"]
QUESTION_FORMS = ["{aspect}里最值得注意的是什么？", "能讲讲{aspect}方面的具体内容吗？", "{aspect}有哪些特别之处？",
                  "关于{aspect}，新手应该先了解什么？", "{aspect}和原著有什么联系？", "{aspect}里有哪些细节容易被忽略？"]
_greetings = itertools.count()
_turns = itertools.count()


def reset() -> None:
    """Start the scripted greetings and help-seeker turns from the first again (one server, several runs
    that should get the same replies: the cost benchmark's layouts)."""
    global _greetings, _turns
    _greetings, _turns = itertools.count(), itertools.count()
EMPATHY = ["听起来这件事让你压力很大，能说出来已经很不容易了。", "谢谢你愿意把这些告诉我，我能感受到你的疲惫。",
           "你一直在努力撑着，这份辛苦值得被看见。", "这种反复的担心确实会把人拖得很累。", "你愿意来聊，说明你在认真照顾自己。"]
STEPS = ["你愿意多说说最让你难受的是哪一刻吗？我们可以一起慢慢理一理。",
         "我们可以先试一个小方法：今晚睡前花五分钟写下担心的事，再写一件明天能做的小事。",
         "接下来一周，不妨每天给自己留十分钟散散步，留意一下心情有没有变化，下次我们再一起看看。",
         "如果方便的话，可以先找一位信任的朋友聊聊，也可以试试深呼吸，把注意力放回当下。"]
SEEKER_NEXT = ["我试过和家人聊，但总觉得他们不太理解我。", "其实我也想改变，只是每次一开始就想放弃。",
               "您这么一说，我好像轻松了一点。", "我没想到会有人这样认真听我说。"]
SEEKER_DETAIL = ["最近连吃饭都没什么胃口。", "可还是担心过几天又会回到老样子。", "有时候半夜醒来就再也睡不着。",
                 "我怕自己说出来会让别人失望。"]
WISHES = ["我想认真地对{you}说一声祝福，", "先送上我最真诚的心意，", "特意写下几句心里话送给{you}，",
          "想把满满的牵挂都装进这段话里，", "借这个机会好好谢谢{you}一直以来的照顾，"]
HOPES = ["愿{you}身体健康、精神饱满，每一天都过得踏实又舒心；", "盼{you}往后的日子平安顺遂，所求皆如愿，所行皆坦途；",
         "希望{you}在新的阶段收获更多惊喜，烦恼少一点，笑容多一点；", "愿好运一直陪着{you}，家里家外都和和美美、热热闹闹；"]
CLOSINGS = ["有空我们一起吃顿饭，好好聊聊天。", "无论走多远，我都会记得{you}给我的温暖。", "这份祝福不大，却是我最真的心意。",
            "期待下次见面时，听{you}讲讲最近的好消息。"]
FOLLOWUPS = ["那这一点在游戏里具体是怎么体现的？", "还有别的相关细节吗？", "这和西游记原著有什么不同？"]


def _pick(options: list[str], text: str) -> str:
    return options[int(hashlib.md5(text.encode()).hexdigest(), 16) % len(options)]


def _field(pattern: str, text: str, default: str = "") -> str:
    match = re.search(pattern, text)
    return match.group(1).strip() if match else default


def reply(req: ChatRequest) -> dict | str:
    """Decide what to say from the JSON fields the system message asks for, then the request."""
    user, text, system = req.last_user, req.text, req.system
    if "- decision" in system:
        return ACCEPT
    if "- question" in system:
        if "<conversation>" in text:
            asked = len(re.findall(r"^用户：", text, re.MULTILINE))
            return {"question": FOLLOWUPS[asked % len(FOLLOWUPS)]}
        aspect = _field(r"的「(.+?)」这一方面", text, "游戏")
        asked = set(re.findall(r"<q>(.*?)</q>", text))  # questions the asker is told to avoid
        fresh = [q for q in (f.format(aspect=aspect) for f in QUESTION_FORMS) if q not in asked]
        return {"question": _pick(fresh or ["还有什么值得一提的吗？"], text)}
    if "- answer" in system:
        passages = re.findall(r'<passage id="\d+" source="[^"]*">(.*?)</passage>', text, re.DOTALL)
        # quote the passages' plain sentences (headings and list lines left out), so answers are
        # grounded and differ from each other
        prose = "\n".join(line.strip().split("答：")[-1] for p in passages for line in p.splitlines()
                        if line.strip() and (not re.match(r"\s*([#*|>]|-\s|\d+\.\s)", line) or "答：" in line))
        sentences = [x.strip() for x in re.split(r"(?<=[。！])", prose)
                     if len(x.strip()) > 12 and not re.search(r"[？?#\-\n*：:]|答|[A-Za-z]{2,}", x)]
        sentences = list(dict.fromkeys(sentences))  # a passage may come twice (source chunk and retrieved)
        said = re.search(r"<conversation>\n(.*?)\n</conversation>", text, re.DOTALL)  # as told: don't repeat earlier turns
        said = said.group(1) if said else ""
        sentences = [x for x in sentences if x not in said] or sentences
        question = _field(r"<question>(.*?)</question>", user) or user
        # two of the six sentences that share most with the question (ties by a hash), chosen by the
        # question's hash: a real model answers two questions about the same passages differently
        rank = int(hashlib.md5(question.encode()).hexdigest(), 16) + len(req.messages)
        pairs = {question[i:i + 2] for i in range(len(question) - 1)}
        order = sorted(range(len(sentences)), key=lambda i: (-sum(p in sentences[i] for p in pairs),
                                                             (i - rank) % max(1, len(sentences))))[:6]
        chosen = list(dict.fromkeys(order[(rank + j) % len(order)] for j in range(min(2, len(order)))))
        body = "".join(sentences[i] for i in chosen) or "这一点目前还不能确定。"
        return {"answer": body, "used_passages": [1]}
    if "- message" in system:
        area, emotion = _field(r"属于「(.+?)」方面", text), _field(r"主要情绪是「(.+?)」", text)
        if "<conversation>" in text:
            n = next(_turns)
            return {"message": SEEKER_NEXT[n % len(SEEKER_NEXT)] + SEEKER_DETAIL[n // len(SEEKER_NEXT) % len(SEEKER_DETAIL)]}
        return {"message": f"{_pick(OPENERS, text)}在{area}上遇到的事情让我一直很{emotion}，晚上也睡不好，"
                           f"我不知道该跟谁说，也不知道自己该怎么办。"}
    if "- text" in system and "祝福语" in text:
        role, scene = _field(r"对象：(.+?)；", text), _field(r"场景：(.+?)[；。]", text)
        style = _field(r"风格：(.+?)。", text, "正常")
        you = "您" if relation_of(role) == "elder" else "你"
        n = next(_greetings)  # every greeting a different combination, so none is a near-duplicate
        wish = WISHES[n % len(WISHES)].format(you=you)
        hope = HOPES[n // len(WISHES) % len(HOPES)].format(you=you)
        close = CLOSINGS[n // (len(WISHES) * len(HOPES)) % len(CLOSINGS)].format(you=you)
        body = f"{role}，在{scene}这个特别的日子里，{wish}{hope}{close}"
        return {"text": body + ("🎉" if style == "小红书" else "")}
    if "- text" in system:  # the counsellor
        n = next(_turns)
        return {"text": EMPATHY[n % len(EMPATHY)] + STEPS[n // len(EMPATHY) % len(STEPS)]}
    return "好的。"
