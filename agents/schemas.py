"""The contracts every part of zaoshu shares: a Sample, the critic's Verdict and its reason codes.

>>> s = Sample.new(recipe="wulewule", kind="qa", key={"aspect": "主要角色", "n": 1},
...                system="你是悟了悟了", turns=[Turn(input="天命人是谁？", output="玩家操控的角色。")])
>>> s.id == Sample.stable_id("wulewule", {"n": 1, "aspect": "主要角色"})
True
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator


class ReasonCode(str, Enum):
    """Why a sample was revised or rejected; a ledger can be counted and filtered by these."""

    TOO_SHORT = "TOO_SHORT"
    TOO_LONG = "TOO_LONG"
    LEADING_PUNCTUATION = "LEADING_PUNCTUATION"
    MIXED_PUNCTUATION = "MIXED_PUNCTUATION"
    REPEATED_PUNCTUATION = "REPEATED_PUNCTUATION"
    BAD_PUNCTUATION = "BAD_PUNCTUATION"
    PREAMBLE = "PREAMBLE"
    REFUSAL = "REFUSAL"
    AI_SELF_REFERENCE = "AI_SELF_REFERENCE"
    MARKDOWN = "MARKDOWN"
    STYLE_MISMATCH = "STYLE_MISMATCH"
    ROLE_SCENE_MISMATCH = "ROLE_SCENE_MISMATCH"
    HONORIFIC = "HONORIFIC"
    PLACEHOLDER = "PLACEHOLDER"
    ENGLISH_LEAK = "ENGLISH_LEAK"
    ECHO = "ECHO"
    REPEATED_TURN = "REPEATED_TURN"
    BAD_ENDING = "BAD_ENDING"
    PERSONA_DRIFT = "PERSONA_DRIFT"
    CONTRADICTION = "CONTRADICTION"
    UNGROUNDED = "UNGROUNDED"
    IRRELEVANT = "IRRELEVANT"
    UNANSWERABLE = "UNANSWERABLE"
    DUPLICATE = "DUPLICATE"
    FORMAT = "FORMAT"
    LLM_ERROR = "LLM_ERROR"
    HUMAN_REJECTED = "HUMAN_REJECTED"
    # The rule layer's leak and structure checks (agents.rules).
    THINK_LEAK = "THINK_LEAK"
    CONTEXT_LEAK = "CONTEXT_LEAK"
    PROMPT_LEAK = "PROMPT_LEAK"
    FEWSHOT_COPY = "FEWSHOT_COPY"
    FEEDBACK_LEAK = "FEEDBACK_LEAK"
    CROSS_ROLE_ECHO = "CROSS_ROLE_ECHO"
    ROLE_CONFUSION = "ROLE_CONFUSION"
    SPEAKER_LABEL = "SPEAKER_LABEL"
    MULTIPLE_OPTIONS = "MULTIPLE_OPTIONS"
    REPEATED_SENTENCE = "REPEATED_SENTENCE"
    TRUNCATED = "TRUNCATED"
    UNBALANCED = "UNBALANCED"
    SCENE_MISMATCH = "SCENE_MISMATCH"
    ADDRESSEE_MISMATCH = "ADDRESSEE_MISMATCH"
    INCOMPLETE_ANSWER = "INCOMPLETE_ANSWER"


Decision = Literal["accept", "revise", "reject"]


class Verdict(BaseModel):
    """The critic's judgement. Reasons come first so a model writes them before deciding."""

    reasons: list[str] = Field(default_factory=list, description="先列出理由：哪里好、哪里有问题。")
    decision: Decision = Field(description="在理由之后给出结论：accept、revise 或 reject。")
    reason_codes: list[ReasonCode] = Field(default_factory=list, description="问题对应的原因代码。")
    scores: dict[str, float] = Field(default_factory=dict, description="各维度得分（0-1），如 grounding、relevance、style。")
    feedback: str | None = Field(default=None, description="如需修改，具体说明怎么改。")

    @field_validator("scores", mode="before")
    @classmethod
    def _clean_scores(cls, scores: Any) -> Any:
        """Keys as the judge meant them (`" Grounding "` → `grounding`); every value within 0–1.

        >>> Verdict(decision="accept", scores={" grounding": 0.5, "Relevance ": 0.8}).scores
        {'grounding': 0.5, 'relevance': 0.8}
        """
        if not isinstance(scores, dict):
            return scores
        clean: dict[str, Any] = {}
        for key, value in scores.items():
            name = "_".join(str(key).strip().lower().replace("-", " ").split())
            if not name:
                raise ValueError(f"scores 里有空的键 {key!r}")
            if isinstance(value, (int, float)) and not 0 <= value <= 1:
                raise ValueError(f"scores.{name} = {value}：分数必须在 0 到 1 之间")
            clean[name] = value
        return clean


class Turn(BaseModel):
    input: str
    output: str


class Sample(BaseModel):
    """One training record before export. `meta` is stripped by exports unless asked to keep it."""

    id: str
    recipe: str
    kind: Literal["qa", "dialogue", "pretrain"]
    system: str = ""
    turns: list[Turn]
    meta: dict[str, Any] = Field(default_factory=dict)

    @staticmethod
    def stable_id(recipe: str, key: dict[str, Any] | str) -> str:
        """A hash of the work item's key: the same item gets the same id on every rerun."""
        text = key if isinstance(key, str) else json.dumps(key, ensure_ascii=False, sort_keys=True)
        return hashlib.sha1(f"{recipe}\x00{text}".encode()).hexdigest()[:16]

    @classmethod
    def new(cls, *, recipe: str, kind: str, key: dict[str, Any] | str, **fields: Any) -> Sample:
        return cls(id=cls.stable_id(recipe, key), recipe=recipe, kind=kind, **fields)
