"""A fake LLM for the document recipe (labels, GA pairs, questions written for a genre × audience
pair); answers, follow-ups and verdicts as `tests.recipe_replies`. A passage holding 「标签失败」 never
gets a parsable label, so the heading fallback is exercised.

    python -m tests.fake_openai --script tests.docqa_replies:reply
"""

from __future__ import annotations

import hashlib
import re

from tests import recipe_replies
from tests.fake_openai import ChatRequest

GA = {"pairs": [{"genre": "售后客服", "audience": "刚买机器的用户"}, {"genre": "培训考核", "audience": "新入职的安装师傅"},
                {"genre": "入门答疑", "audience": "第一次接触的学生"}]}


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[。！？])", text) if len(s.strip()) > 8 and "#" not in s]


def _snippet(text: str, salt: str) -> str:
    sentences = _sentences(text) or [text.strip()]
    pick = sentences[int(hashlib.md5(salt.encode()).hexdigest(), 16) % len(sentences)]
    return re.sub(r"[，。！？、：；\s]", "", pick)[:14]


def reply(req: ChatRequest) -> dict | str:
    text, system = req.text, req.system
    if "- level1" in system:
        passage = re.search(r"<passage[^>]*>(.*?)</passage>", text, re.DOTALL).group(1)
        if "标签失败" in passage:
            return "这段讲的是保修，我觉得标签是保修。"  # never JSON: the labelling fails after the re-asks
        tags = re.search(r"<tags>\n(.*?)\n</tags>", text, re.DOTALL).group(1).splitlines()
        best = max(tags, key=lambda t: sum(ch in passage for ch in t.split("/")[-1]))
        level1, _, level2 = best.partition("/")
        return {"reason": "这段资料讲的是" + (level2 or level1) + "。", "level1": level1, "level2": level2}
    if "- pairs" in system:
        return GA
    if "- question" in system and "提问的人是「" in text:
        audience = re.search(r"提问的人是「(.+?)」", text).group(1)
        angle = re.search(r"从「(.+?)」的角度", text)
        # as the prompt says, the question does not name who asks, what for, or the angle; they pick its words
        if "<passage id=\"2\">" in text:
            first, second = re.findall(r'<passage id="\d">\n(.*?)\n</passage>', text, re.DOTALL)
            return {"question": f"{_snippet(first, audience)}和{_snippet(second, audience)}有什么关系？"}
        if "请围绕主题「" in text:
            tag = re.search(r"请围绕主题「(.+?)」", text).group(1)
            asked = len(re.findall(r"<q>", text))
            return {"question": f"关于{tag}，第{asked + 1}个要注意的地方是什么？"}
        passage = re.search(r"<passage>\n(.*?)\n</passage>", text, re.DOTALL).group(1)
        salt = f"{audience}{angle.group(1) if angle else ''}"
        return {"question": f"想问：{_snippet(passage, salt)}，这是为什么？"}
    return recipe_replies.reply(req)
