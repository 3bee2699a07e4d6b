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
    NOT_A_QUESTION = "NOT_A_QUESTION"


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
    reasoning: str | None = Field(default=None, exclude_if=lambda v: v is None, repr=False,
                                  description="What a reasoning model thought before `output` (never part of it).")


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


GraphName = Literal["qa", "dialogue", "persona", "docqa"]


class WorkItem(BaseModel):
    """One unit of work. `key` identifies it (and makes its id); `payload` is what the graph needs."""

    id: str
    recipe: str
    graph: GraphName
    key: dict[str, Any]
    payload: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def for_recipe(cls, recipe: str, graph: GraphName, *, key: dict[str, Any],
                   payload: dict[str, Any] | None = None) -> WorkItem:
        return cls(id=Sample.stable_id(recipe, key), recipe=recipe, graph=graph, key=key, payload=payload or {})

    def get(self, name: str, default: Any = None) -> Any:
        """A payload value, else a key value, else `default`.

        >>> WorkItem(id="x", recipe="r", graph="qa", key={"aspect": "战斗系统"}).get("aspect")
        '战斗系统'
        """
        if name in self.payload:
            return self.payload[name]
        return self.key.get(name, default)


class Passage(BaseModel):
    """A retrieved passage: what the answerer grounds on, from the knowledge base or the web.

    >>> Passage(text="石猴出世。", source="xiyouji/001.txt", chunk_id="xiyouji/001.txt#0", score=0.03,
    ...         scores={"dense": 0.8, "bm25": 5.1, "fused": 0.03}).scores["bm25"]
    5.1
    """

    text: str
    source: str = Field(description="Where it came from: '<folder>/<relative path>' or a URL.")
    chunk_id: str = Field(description="Stable id: '<source>#<chunk index>' (or the URL for web results).")
    title: str | None = Field(default=None, description="Chapter or heading in force, or the web page title.")
    score: float = Field(default=0.0, description="The ranking score (fused for the knowledge base).")
    scores: dict[str, float] = Field(default_factory=dict, description="Each retriever's score: dense, bm25, fused…")
    start: int | None = Field(default=None, description="Character offset in the source text.")
    end: int | None = None


def draft_context(earlier: list[Turn], question: str) -> str:
    """A short hash of the conversation an output answers: the earlier turns and the question.

    Two outputs with the same context answer the same prompt, so they can form a preference pair.

    >>> draft_context([], "天命人是谁？") == draft_context([], "天命人是谁？") != draft_context([], "别的")
    True
    """
    text = json.dumps([[t.input, t.output] for t in earlier] + [question], ensure_ascii=False)
    return hashlib.sha1(text.encode()).hexdigest()[:12]
