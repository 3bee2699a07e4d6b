"""The critic's fast, pure-Python rule layer: named rules, each reporting one ReasonCode.

>>> from agents.rules import RULES, RuleContext, check_text
>>> ctx = RuleContext(style="正常", role="爷爷", scene="重阳节", kind="greeting")
>>> [(h.rule, h.code.value) for h in check_text("祝你重阳节快乐,身体健康！", ctx)]
[('mixed_punctuation', 'MIXED_PUNCTUATION'), ('honorific', 'HONORIFIC')]
>>> RULES["honorific"].code.value
'HONORIFIC'

Rules register on import, in this order (the order they run and report). A recipe picks them by
name with RuleContext(enabled=...) or RuleContext(disabled=...).
"""

from agents.rules.base import (
    DEFAULT_EMOJI_RANGE,
    DEFAULT_LENGTH,
    DEFAULT_LENGTH_LIMITS,
    RULES,
    RuleContext,
    RuleHit,
    RuleSpec,
    TextView,
    rule,
)
from agents.rules import punctuation, content, dialogue, leaks, structure, scenes, style, turns  # noqa: E402,F401  (registers the rules)
from agents.rules.engine import check_sample, check_text, feedback, reason_codes
from agents.rules.relations import TIANJI_ROLES, is_sibling, relation_of
from agents.rules.style import count_emoji, visible_len

__all__ = [
    "DEFAULT_EMOJI_RANGE",
    "DEFAULT_LENGTH",
    "DEFAULT_LENGTH_LIMITS",
    "RULES",
    "RuleContext",
    "RuleHit",
    "RuleSpec",
    "TIANJI_ROLES",
    "TextView",
    "check_sample",
    "check_text",
    "count_emoji",
    "feedback",
    "is_sibling",
    "reason_codes",
    "relation_of",
    "rule",
    "visible_len",
]
