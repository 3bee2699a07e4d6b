"""A reasoning model whose first answers the critic sends back: end-to-end runs that exercise the
revise loop, reasoning traces and preference pairs against the local server (tests, README records,
`python -m tests.fake_openai --script tests.revise_replies:reply`).

Built on `tests.recipe_replies.reply`, with three changes:

- every answer / reply comes with reasoning: on even calls as DeepSeek-R1's separate
  `reasoning_content`, on odd calls as a `<think>…</think>` preamble in the content;
- the first answer to every other question opens with a preamble (「好的，以下是回答：」), which the
  rule layer sends back (PREAMBLE: an artifact-only rejection);
- the judge says revise (UNGROUNDED) the first time it sees a question, accept after that.

`leaky_reply` is the same model, except that its reasoning on a revision talks about the feedback
(「按修改意见删掉…」), as a real reasoning model's often does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading

from tests.fake_openai import ChatRequest, Reasoned
from tests.recipe_replies import ACCEPT
from tests.recipe_replies import reply as plain_reply

REVISE = {"reasons": ["回答里有一句资料中找不到依据。"], "decision": "revise", "reason_codes": ["UNGROUNDED"],
          "scores": {"grounding": 0.4, "relevance": 0.8, "style": 0.8, "persona": 0.8, "coherence": 0.4,
                     "helpfulness": 0.8},
          "feedback": "删掉资料里没有的内容，只保留有依据的句子。"}
PREAMBLE = "好的，以下是回答："

_lock = threading.Lock()
_judged: dict[str, int] = {}
_calls = itertools.count()


def reset() -> None:
    """Forget which questions were judged (one run per test)."""
    with _lock:
        _judged.clear()


def _key(text: str) -> str:
    """What identifies the item being judged: its question or request; a dialogue by its first line
    (a revision changes the later lines)."""
    found = re.search(r"<(question|request|dialogue)>(.*?)</\1>", text, re.DOTALL)
    if found is None:
        return text[-200:]
    return found.group(2).strip().split("\n")[0] if found.group(1) == "dialogue" else found.group(2).strip()


def _even(text: str) -> bool:
    return int(hashlib.md5(text.encode()).hexdigest(), 16) % 2 == 0


def reply(req: ChatRequest, *, leaky: bool = False):
    system, text = req.system, req.text
    if "- decision" in system:
        key = _key(req.last_user)
        with _lock:
            seen = _judged.get(key, 0)
            _judged[key] = seen + 1
        return REVISE if seen == 0 else ACCEPT
    answer = plain_reply(req)
    field = "answer" if "- answer" in system else "text" if "- text" in system else None
    if field is None or not isinstance(answer, dict):
        return answer
    question = _key(text)
    revising = "修改意见" in req.last_user
    if field == "answer" and not revising and _even(question):
        answer = {**answer, "answer": PREAMBLE + answer["answer"]}
    if field == "answer" and revising:  # as the feedback asks: drop the sentence without support
        sentences = [x for x in re.split(r"(?<=[。！])", answer["answer"]) if x]
        answer = {**answer, "answer": "".join(sentences[:-1]) if len(sentences) > 1 else answer["answer"]}
    step = ("按修改意见删掉没有依据的句子。" if leaky else "只留下有出处的句子。") if revising else "先找资料里能回答它的句子。"
    thought = f"用户问的是「{question[:30]}」。{step}"
    if next(_calls) % 2 == 0:
        return Reasoned(answer, thought)
    return f"<think>{thought}</think>\n" + json.dumps(answer, ensure_ascii=False)


def leaky_reply(req: ChatRequest):
    return reply(req, leaky=True)
