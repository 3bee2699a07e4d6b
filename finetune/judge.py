"""The LLM judge for `finetune eval`: the critic's model scores one answer against the reference.

>>> JUDGE_PROMPT.count("{question}"), JUDGE_PROMPT.count("{reference}"), JUDGE_PROMPT.count("{answer}")
(1, 1, 1)
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, Field

from finetune.evaluate import Judge

log = logging.getLogger(__name__)

JUDGE_SYSTEM = "你是严格、公正的评测员，只根据题目和参考答案评价回答的质量。"

JUDGE_PROMPT = """请评价下面这个回答。
<question>{question}</question>
<reference>{reference}</reference>
<answer>{answer}</answer>
评分标准（0-10 分）：与参考答案的意思是否一致、事实是否正确、是否切题、表达是否通顺自然。
回答为空、答非所问或胡言乱语给 0 分；与参考答案同样好给 10 分。先写理由，再给分。"""


class JudgeScore(BaseModel):
    reasons: list[str] = Field(default_factory=list, description="先列出评分理由。")
    score: float = Field(ge=0, le=10, description="在理由之后给出 0-10 的分数。")


def make_llm_judge(client: Any, attempts: int = 3) -> Judge:
    """A judge over any `agents.llm` client; a reply that never parses scores 0 and is logged."""
    from agents.structured import ask_structured

    async def judge(question: str, reference: str, answer: str) -> float:
        messages = [
            {"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": JUDGE_PROMPT.format(question=question, reference=reference or "（无）",
                                                            answer=answer or "（空）")},
        ]
        result = await ask_structured(client, messages, JudgeScore, attempts=attempts, temperature=0.0)
        if result.value is None:
            log.warning("judge reply did not parse (%s): scoring 0 for %r", result.error, question[:40])
            return 0.0
        return result.value.score / 10

    return judge
