"""The critic's LLM judge: its modes, the scores each verdict must carry, and the gate those scores set.

- "off": rules only, no judge call;
- "on": a gate score (QA: grounding, relevance) under `ctx.judge_min_score` turns any decision into a
  revise, with the code the low score stands for;
- "strict": accept only when the judge accepts with no reason code and every score is at the threshold.

A reply missing a required score key fails validation, so `agents.structured` asks again.
`self_judging_warning` is the line a run prints when the critic would grade its own model's output.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from agents.context import Context
from agents.errors import ConfigError
from agents.schemas import ReasonCode, Verdict

JUDGE_MODES = ("off", "on", "strict")
#: The score keys each judge must return (a reply without one is re-asked) …
REQUIRED_SCORES: dict[str, tuple[str, ...]] = {"qa": ("grounding", "relevance", "style"),
                                               "persona": ("persona", "relevance", "style"),
                                               "dialogue": ("persona", "coherence", "helpfulness")}
#: … and the ones that gate its verdict in "on" mode, with the code a low score stands for.
GATE_SCORES: dict[str, dict[str, ReasonCode]] = {
    "qa": {"grounding": ReasonCode.UNGROUNDED, "relevance": ReasonCode.IRRELEVANT},
    "persona": {"persona": ReasonCode.HONORIFIC, "relevance": ReasonCode.SCENE_MISMATCH},
    "dialogue": {"persona": ReasonCode.PERSONA_DRIFT, "coherence": ReasonCode.CONTRADICTION},
}
LOW_SCORE_CODE = {"style": ReasonCode.STYLE_MISMATCH, "helpfulness": ReasonCode.PERSONA_DRIFT}


def _require_scores(verdict: Verdict, judge: str) -> Verdict:
    missing = [k for k in REQUIRED_SCORES[judge] if k not in verdict.scores]
    if missing:
        raise ValueError(f"scores 缺少 {'、'.join(missing)}：必须给出 {'、'.join(REQUIRED_SCORES[judge])} 三项 0 到 1 的分数")
    return verdict


class QAVerdict(Verdict):
    @model_validator(mode="after")
    def _scores(self) -> QAVerdict:
        return _require_scores(self, "qa")  # type: ignore[return-value]


class PersonaVerdict(Verdict):
    @model_validator(mode="after")
    def _scores(self) -> PersonaVerdict:
        return _require_scores(self, "persona")  # type: ignore[return-value]


class DialogueVerdict(Verdict):
    turn: int | None = Field(default=None, description="第一处需要重写的咨询师回复的轮次（从 1 开始）；不需要修改时为 null。")

    @model_validator(mode="after")
    def _scores(self) -> DialogueVerdict:
        return _require_scores(self, "dialogue")  # type: ignore[return-value]


def judge_mode(ctx: Context) -> str:
    mode = (getattr(ctx, "judge", "on") or "on").strip().lower()
    if mode not in JUDGE_MODES:
        raise ConfigError(f"critic.judge must be one of {', '.join(JUDGE_MODES)}, got {ctx.judge!r}")
    return mode


def gate(ctx: Context, verdict: Verdict, judge: str) -> tuple[Verdict, dict[str, Any] | None]:
    """The judge's verdict after its scores: (the verdict to act on, what the gate changed or None).

    >>> v = Verdict(decision="accept", scores={" grounding": 0.5, "relevance": 0.8, "style": 0.9})
    >>> gated, why = gate(Context(clients={}), v, "qa")
    >>> gated.decision, [c.value for c in gated.reason_codes], why["judge_gate"]["low_scores"]
    ('revise', ['UNGROUNDED'], {'grounding': 0.5})
    """
    mode, threshold = judge_mode(ctx), float(ctx.judge_min_score)
    if verdict.decision == "reject":
        return verdict, None
    keys = verdict.scores if mode == "strict" else GATE_SCORES[judge]
    low = {k: v for k, v in verdict.scores.items() if k in keys and v < threshold}
    coded = mode == "strict" and verdict.decision == "accept" and bool(verdict.reason_codes)
    if not low and not coded:
        return verdict, None
    codes = list(verdict.reason_codes)
    for key in low:
        code = GATE_SCORES[judge].get(key) or LOW_SCORE_CODE.get(key, ReasonCode.STYLE_MISMATCH)
        if code not in codes:
            codes.append(code)
    why = [f"{k} 得分 {v:g} 低于 {threshold:g}" for k, v in low.items()]
    if coded:
        why.append("严格模式：评审给出了原因代码 " + "、".join(c.value for c in verdict.reason_codes))
    feedback = verdict.feedback or "；".join(r for r in verdict.reasons if r) or "请按评审意见提高质量。"
    gated = Verdict(reasons=[*verdict.reasons, *why], decision="revise", reason_codes=codes, scores=verdict.scores,
                    feedback=feedback)
    return gated, {"judge_gate": {"mode": mode, "min_score": threshold, "judge_decision": verdict.decision,
                                  "low_scores": low}}


GENERATOR_ROLES = ("asker", "answerer", "responder")


def self_judging_warning(settings: Any, judge: str = "on", roles: Any = GENERATOR_ROLES) -> str | None:
    """One line to print at run start when the critic would grade its own model's output, else None;
    `roles`: the roles the recipe calls (only its generators are named).

    >>> from agents.settings import load_settings
    >>> print(self_judging_warning(load_settings(yaml_data={"preset": "ollama"}, env_file=None)))
    warning: the critic judges with the same model as the asker, answerer, responder (qwen2.5:7b at http://localhost:11434/v1); a model grading its own output is lenient: set ZAOSHU_CRITIC__MODEL (and ZAOSHU_CRITIC__BASE_URL if it is served elsewhere) to judge with another model.
    >>> self_judging_warning(load_settings(yaml_data={"preset": "ollama", "critic": {"model": "qwen2.5:32b"}},
    ...                                    env_file=None)) is None
    True
    """
    if judge == "off":
        return None
    critic = settings.for_role("critic")
    if not critic.model:
        return None
    same = [r for r in GENERATOR_ROLES if r in roles
            if (cfg := settings.for_role(r)).model == critic.model and (cfg.base_url or "") == (critic.base_url or "")]
    if not same:
        return None
    return (f"warning: the critic judges with the same model as the {', '.join(same)} ({critic.model} at "
            f"{critic.base_url}); a model grading its own output is lenient: set ZAOSHU_CRITIC__MODEL (and "
            "ZAOSHU_CRITIC__BASE_URL if it is served elsewhere) to judge with another model.")
