"""The rule layer's shared types: a hit, the context rules read, the view they inspect, the registry.

A rule is a small pure function registered under a name with the ReasonCode it reports:

>>> @rule("no_xyz", ReasonCode.FORMAT, "the text contains 'xyz'")     # doctest: +SKIP
... def no_xyz(view: TextView, ctx: RuleContext) -> RuleHit | None:
...     i = view.text.find("xyz")
...     return None if i < 0 else hit("no_xyz", "请删除 xyz。", (i, i + 3))

Text rules see one output (`TextView`); sample rules (scope="sample") see every turn of a sample.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from agents.errors import ConfigError
from agents.rules.relations import Relation, is_sibling, relation_of
from agents.schemas import ReasonCode

Kind = Literal["greeting", "answer", "dialogue_turn"]
Scope = Literal["text", "sample"]

#: (min, max) characters, whitespace not counted. Styles not listed use DEFAULT_LENGTH.
DEFAULT_LENGTH_LIMITS: dict[str, tuple[int, int]] = {"正常": (10, 200), "严肃": (10, 200), "小红书": (15, 300)}
DEFAULT_LENGTH: tuple[int, int] = (2, 2000)
#: (min, max) emoji per output. Styles not listed are not checked.
DEFAULT_EMOJI_RANGE: dict[str, tuple[int, int]] = {"小红书": (1, 2)}


def style_length(style: str, min_chars: int | None, max_chars: int | None) -> tuple[int, int]:
    """(min, max) characters of a style: its own bounds where set, its default for the others; `is None`,
    not `or`: min_chars 0 (any length) is a bound.

    >>> style_length("小红书", None, 10), style_length("正常", 0, None), style_length("诗意", None, None)
    ((15, 10), (0, 200), (2, 2000))
    """
    low, high = DEFAULT_LENGTH_LIMITS.get(style, DEFAULT_LENGTH)
    return (low if min_chars is None else int(min_chars), high if max_chars is None else int(max_chars))


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One problem found by one rule. `message` is short and usable as revision feedback.

    >>> RuleHit(ReasonCode.PREAMBLE, "preamble", "删除开头的「以下是…」。", (0, 3)).code.value
    'PREAMBLE'
    """

    code: ReasonCode
    rule: str
    message: str
    span: tuple[int, int] | None = None
    turn: int | None = None
    #: The defect is in the turn's input (a help-seeker's message), which the reviser cannot rewrite.
    on_input: bool = False


class TextView:
    """What a text rule inspects: one output, the input it answers and its turn index.

    >>> TextView("  新年快乐！ ", question="祝姐姐新年快乐").text
    '新年快乐！'
    """

    __slots__ = ("text", "raw", "question", "index", "_norm", "_qnorm")

    def __init__(self, raw: str, question: str | None = None, index: int = 0) -> None:
        self.raw = raw
        self.text = raw.strip()
        self.question = question
        self.index = index
        self._norm: str | None = None
        self._qnorm: str | None = None

    def norm(self) -> str:
        """`normalize(text)`, computed once for all the rules that compare texts."""
        if self._norm is None:
            self._norm = normalize(self.text)
        return self._norm

    def question_norm(self) -> str:
        """`normalize(question)` ("" without a question), computed once."""
        if self._qnorm is None:
            self._qnorm = normalize(self.question or "")
        return self._qnorm


RuleFn = Callable[..., "RuleHit | None"]


class RuleSpec(NamedTuple):
    """A registry entry: RULES[name] == (code, fn, description, scope)."""

    code: ReasonCode
    fn: RuleFn
    description: str
    scope: Scope = "text"


#: name -> RuleSpec, in registration order (the order rules run and hits are reported).
RULES: dict[str, RuleSpec] = {}


def rule(name: str, code: ReasonCode, description: str, scope: Scope = "text") -> Callable[[RuleFn], RuleFn]:
    """Register `fn` under `name`; a recipe enables or disables rules by this name."""

    def register(fn: RuleFn) -> RuleFn:
        if name in RULES:
            raise ValueError(f"rule {name!r} registered twice")
        RULES[name] = RuleSpec(code, fn, description, scope)
        return fn

    return register


def hit(name: str, message: str, span: tuple[int, int] | None = None, *, on_input: bool = False) -> RuleHit:
    """Build the hit for rule `name` with the code it was registered with."""
    return RuleHit(RULES[name].code, name, message, span, on_input=on_input)


class RuleContext(BaseModel):
    """Everything a rule may need besides the text. Build one per work item (a few µs); do not
    `model_copy(update=...)` the role, which would skip deriving `relation`/`sibling`.

    `relation` and `sibling` default from `role` (see `relation_of`, `is_sibling`); pass them to
    override. `compat` is the recipe's role→scene matrix: False or a reason string = not allowed,
    missing = allowed.

    >>> ctx = RuleContext(style="小红书", role="爷爷", scene="重阳节", kind="greeting")
    >>> (ctx.relation, ctx.sibling, ctx.limits(), ctx.emoji_limits())
    ('elder', False, (15, 300), (1, 2))
    """

    model_config = ConfigDict(extra="forbid")

    style: str | None = Field(default=None, description="风格，如 小红书 / 正常 / 严肃；None = 不限。")
    length_limits: dict[str, tuple[int, int]] = Field(default_factory=lambda: dict(DEFAULT_LENGTH_LIMITS))
    default_length: tuple[int, int] = Field(default=DEFAULT_LENGTH, description="未列出的风格的字数范围。")
    emoji_range: dict[str, tuple[int, int]] = Field(default_factory=lambda: dict(DEFAULT_EMOJI_RANGE))
    role: str | None = Field(default=None, description="说话对象，如 爷爷、同事。")
    relation: Relation | None = Field(default=None, description="elder=用您；peer/junior=用你。")
    sibling: bool | None = Field(default=None, description="对象是兄弟姐妹（含堂表）：不用「尊敬的」。")
    scene: str | None = None
    compat: dict[str, dict[str, bool | str]] = Field(default_factory=dict)
    question: str | None = Field(default=None, description="check_text 时的输入，用于检查复读。")
    kind: Kind = "answer"
    allow_english: bool = False
    english_ratio: float = Field(default=0.3, description="长于 3 个字母的英文单词占非空白字符的比例上限。")
    repeat_threshold: float = Field(default=0.8, description="两轮字符 3-gram Jaccard 超过即算重复。")
    enabled: frozenset[str] | None = Field(default=None, description="只运行这些规则；None = 全部。")
    disabled: frozenset[str] = frozenset()
    # What produced the output, for the leak rules (agents.rules.leaks): all optional.
    prompt: str | None = Field(default=None, description="生成这条输出的提示词全文（系统提示 + 用户提示），查提示词泄漏。")
    few_shots: tuple[str, ...] = Field(default=(), description="给模型看的示例输出，查照抄示例。")
    feedback: str | None = Field(default=None, description="这一轮发给模型的全部修改意见（每条一行），查修改意见泄漏。")
    knowledge_files: frozenset[str] = Field(default=frozenset(), description="知识库里的文件名，查回答里提到文件名。")
    finish_reason: str | None = Field(default=None, description="模型的 finish_reason；length = 被截断。")

    _active: tuple[list[tuple[str, RuleSpec]], list[tuple[str, RuleSpec]]] | None = PrivateAttr(default=None)
    _cache: dict[str, object] = PrivateAttr(default_factory=dict)

    @field_validator("enabled", "disabled")
    @classmethod
    def _known_rules(cls, names: frozenset[str] | None) -> frozenset[str] | None:
        unknown = sorted(set(names or ()) - RULES.keys())
        if unknown:
            raise ConfigError(f"未知的规则名 {unknown}；可用的规则：{', '.join(RULES)}")
        return names

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_alias(cls, value: object) -> object:
        """The graph and sample names work too: dialogue → dialogue_turn, qa → answer, persona → greeting."""
        return {"dialogue": "dialogue_turn", "qa": "answer", "persona": "greeting"}.get(value, value)  # type: ignore[arg-type]

    @field_validator("scene", "role")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value else value  # the Tianji seed has '工作升职 ' with a space

    @field_validator("length_limits")
    @classmethod
    def _merge_lengths(cls, value: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        return {**DEFAULT_LENGTH_LIMITS, **value}  # a recipe overrides one style, the rest keep defaults

    @field_validator("emoji_range")
    @classmethod
    def _merge_emoji(cls, value: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        return {**DEFAULT_EMOJI_RANGE, **value}

    @field_validator("compat")
    @classmethod
    def _strip_compat(cls, compat: dict[str, dict[str, bool | str]]) -> dict[str, dict[str, bool | str]]:
        return {role.strip(): {scene.strip(): ok for scene, ok in row.items()} for role, row in compat.items()}

    @model_validator(mode="after")
    def _derive_from_role(self) -> RuleContext:
        if self.role:
            if self.relation is None:
                self.relation = relation_of(self.role)
            if self.sibling is None:
                self.sibling = is_sibling(self.role)
        return self

    def cached(self, key: str, build: Callable[[], object]) -> object:
        """`build()` once per context (n-gram sets of the prompt, the few-shots, the feedback …)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def limits(self) -> tuple[int, int]:
        """(min, max) characters for this context's style."""
        return self.length_limits.get(self.style or "", self.default_length)

    def emoji_limits(self) -> tuple[int, int] | None:
        """(min, max) emoji for this style, or None when the style does not constrain emoji."""
        return self.emoji_range.get(self.style or "")

    def active_rules(self) -> tuple[list[tuple[str, RuleSpec]], list[tuple[str, RuleSpec]]]:
        """(text rules, sample rules) this context runs; computed once per context."""
        if self._active is None:
            names = [n for n in RULES if (self.enabled is None or n in self.enabled) and n not in self.disabled]
            text = [(n, RULES[n]) for n in names if RULES[n].scope == "text"]
            sample = [(n, RULES[n]) for n in names if RULES[n].scope == "sample"]
            self._active = (text, sample)
        return self._active


# ---- small text helpers shared by several rules --------------------------------------------

CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_NORMALIZE_DROP = re.compile(r"[\W_]+")  # after NFKC: anything not a letter, digit or CJK character


def normalize(text: str) -> str:
    """NFKC, lower case, without punctuation, symbols or whitespace — for echo / repeat checks and dedup.

    >>> normalize("祝你，生日 快乐！Happy")
    '祝你生日快乐happy'
    >>> normalize("Ｈｅｌｌｏ，世界！ 2024")
    'hello世界2024'
    """
    return _NORMALIZE_DROP.sub("", unicodedata.normalize("NFKC", text).lower())


def char_ngrams(text: str, n: int = 3) -> set[str]:
    """Character n-grams of `text` (the whole text when it is shorter than n).

    >>> sorted(char_ngrams("生日快乐"))
    ['日快乐', '生日快']
    """
    if len(text) <= n:
        return {text} if text else set()
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """|a ∩ b| / |a ∪ b| (0.0 for two empty sets)."""
    if not a and not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def gram_index(text: str, n: int) -> dict[str, list[int]]:
    """Where each character n-gram of `text` starts (for `shared_runs`).

    >>> gram_index("生日快乐生日", 2)["生日"]
    [0, 4]
    """
    index: dict[str, list[int]] = {}
    for i in range(len(text) - n + 1):
        index.setdefault(text[i : i + n], []).append(i)
    return index


def shared_runs(text: str, index: dict[str, list[int]], n: int) -> list[int]:
    """Lengths of the maximal substrings (≥ n characters) that `text` shares with the text `index`
    was built from, each contiguous in both (normalize both first).

    >>> shared_runs("祝您生日快乐身体健康", gram_index("今天生日快乐身体棒", 3), 3)
    [6]
    >>> shared_runs("生日快乐身体健康", gram_index("身体健康，生日快乐", 3), 3)   # two pieces, not one run of 8
    [4, 4]
    """
    runs: list[int] = []
    chains: dict[int, int] = {}  # end position in the source of a chain ending here -> its length in n-grams
    for i in range(len(text) - n + 1):
        starts = index.get(text[i : i + n])
        new = {p: chains.get(p - 1, 0) + 1 for p in starts} if starts else {}
        for p, length in chains.items():
            if p + 1 not in new:
                runs.append(length + n - 1)
        chains = new
    runs.extend(length + n - 1 for length in chains.values())
    return runs


def snippet(text: str, span: tuple[int, int], pad: int = 0) -> str:
    """The text under `span`, cut to at most 12 characters for a message."""
    s = text[max(0, span[0] - pad) : span[1] + pad]
    return s if len(s) <= 12 else s[:12] + "…"
