"""The recipe YAML's schema: every key is declared, so a typo is an error instead of a silent default.

>>> load_recipe_config({"recipe": "x", "max_revison": 3}, RecipeConfig, "x.yaml")
Traceback (most recent call last):
...
agents.errors.InputError: x.yaml: unknown key 'max_revison' — did you mean 'max_revisions'?

Each recipe extends `RecipeConfig` with its own keys (`recipes/<name>/recipe.py`); the parts every
recipe shares — `llm`, `prompts`, `critic`, `answerer`, `rules` — are declared here, and the
composition root (graphs/session.py) reads them.
"""

from __future__ import annotations

import difflib
import logging
import math
import types
import typing
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from agents.errors import InputError, pydantic_problem
from agents.context import placeholders
from agents.settings import LLMFields

log = logging.getLogger(__name__)


#: The most work items one run holds. A run lists every item in memory before its first call (graphs/execute.py),
#: ~1.5 KB and ~55 µs each (tianji, measured): 1,000,000 items ≈ 1.5 GB and a minute of listing before the
#: first call, then at least 2,000,000 model calls. A config that makes more is a mistake (a typo of a count).
MAX_RUN_ITEMS = 1_000_000


def too_many_items(key: str, value: int, cells: int, what: str) -> str | None:
    """Why `value` items for each of `cells` (`what` they are) is more than a run holds, or None.

    >>> too_many_items("variants_per_cell", 10**8, 6, "cells (2 roles × 3 scenes × 1 style)")
    'variants_per_cell 100,000,000 × 6 cells (2 roles × 3 scenes × 1 style) = 600,000,000 work items; a run holds at most 1,000,000: set variants_per_cell to 166,666 or less'
    >>> too_many_items("variants_per_cell", 915, 1092, "cells") is None
    True
    """
    if value * cells <= MAX_RUN_ITEMS:
        return None
    return (f"{key} {value:,} × {cells:,} {what} = {value * cells:,} work items; a run holds at most "
            f"{MAX_RUN_ITEMS:,}: set {key} to {MAX_RUN_ITEMS // cells:,} or less")


def fits_a_run(key: str, value: int, data: dict[str, Any], **sizes: Callable[[Any], int]) -> int:
    """A recipe config's field validator for a per-cell count: `value`, or ValueError when `value` × the cells
    (the product of each named field's size, e.g. `roles=len`) is more than a run holds. Refused before any
    item is listed: 10**8 kept even --dry-run busy for hours. A named field that failed validation is left
    to its own error.

    >>> fits_a_run("questions_per_aspect", 5, {"aspects": ["剧情", "战斗"]}, aspects=len)
    5
    >>> fits_a_run("n", 10**6, {"areas": [1, 2], "emotions": [1, 1, 2]}, areas=len, emotions=lambda e: len(set(e)))
    Traceback (most recent call last):
    ...
    ValueError: n 1,000,000 × 4 cells (2 areas × 2 emotions) = 4,000,000 work items; a run holds at most 1,000,000: set n to 250,000 or less
    """
    if not all(name in data for name in sizes):
        return value
    counts = {name: size(data[name]) for name, size in sizes.items()}
    cells = math.prod(counts.values())
    what = next(iter(counts)) if len(counts) == 1 else \
        "cells (" + " × ".join(f"{n} {name}" for name, n in counts.items()) + ")"
    if problem := too_many_items(key, value, max(cells, 1), what):
        raise ValueError(problem)
    return value


def _turn_range(value: tuple[int, int]) -> tuple[int, int]:
    low, high = value
    if not 1 <= low <= high:
        raise PydanticCustomError("turn_range",
                                  "Input should be a range [low, high] with 1 ≤ low ≤ high, e.g. [2, 4]")
    return value


#: A recipe's [low, high] turns per dialogue: [4, 2] crashed the item listing (randint), [0, 0] made no turn at all.
TurnRange = Annotated[tuple[int, int], AfterValidator(_turn_range)]


def _label(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_label", "Input should name something, not be blank")
    return value.strip()


#: A name in a recipe's lists (an area, an emotion, a scene, a role), without the spaces around it: the seed's
#: '工作升职 ' reached the prompts and inputs with its space, and a blank entry made items about nothing.
Label = Annotated[str, AfterValidator(_label)]


def unique_labels(values: list[str], what: str) -> list[str]:
    """The labels of a list once each, in order; a repeat is logged (the seed's emotions list 同情 twice and
    wrote every 同情 dialogue twice).

    >>> unique_labels(["开心", "同情", "难过", "同情"], "emotions")
    ['开心', '同情', '难过']
    """
    repeats = [e for e, n in Counter(values).items() if n > 1]
    if repeats:
        log.warning("%s listed more than once, de-duplicated: %s (%d entries → %d %s)",
                    what, "、".join(repeats), len(values), len(set(values)), what)
    return list(dict.fromkeys(values))


def prompt_inputs() -> dict[str, frozenset[str]]:
    """Every prompt a recipe's `prompts:` block may override, with the placeholders it may use."""
    from agents import answerer, asker, critic, docqa, responder

    return {name: inputs for module in (asker, answerer, critic, docqa, responder)
            for name, inputs in module.PROMPT_INPUTS.items()}


def _length_range(value: tuple[int, int]) -> tuple[int, int]:
    low, high = value
    if not 0 <= low <= high or high < 1:
        raise PydanticCustomError("length_range", "Input should be a range [min, max] of characters with "
                                  "0 ≤ min ≤ max and max ≥ 1, e.g. [20, 300], not {value}",
                                  {"value": list(value)})
    return value


#: [min, max] characters of an answer or a dialogue turn: [200, 10] or [0, 0] rejected every sample of the run
#: (TOO_SHORT / TOO_LONG) after it was paid for.
LengthRange = Annotated[tuple[int, int], AfterValidator(_length_range)]


class Strict(BaseModel):
    """A YAML block: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class StrictLLM(LLMFields):
    model_config = ConfigDict(extra="forbid")


class LLMBlock(StrictLLM):
    """The recipe's `llm:` block: endpoint fields for every role, and per-role overrides."""

    asker: StrictLLM | None = None
    answerer: StrictLLM | None = None
    responder: StrictLLM | None = None
    critic: StrictLLM | None = None
    concurrency: int | None = Field(default=None, ge=1, description="Work items in flight at once.")
    structured_attempts: int | None = Field(default=None, ge=1, description="Attempts to get valid JSON.")


class AnswererConfig(Strict):
    """Where answers come from (QA recipes): our index, or a running HuixiangDou server; and the web
    fallback when the knowledge base cannot answer."""

    backend: Literal["rag", "huixiangdou"] = "rag"
    huixiangdou_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:23333")
    web_fallback: Literal["off", "serper", "ddgs"] = "off"

    @field_validator("huixiangdou_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """An http(s) URL with a host (`localhost:1` or `ftp://x` used to fail every item, one by one)."""
        if value is None or not value.strip():
            return None  # the huixiangdou answerer then says it needs one
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PydanticCustomError("http_url",
                                      "Input should be an http:// or https:// URL, e.g. http://127.0.0.1:23333")
        return value.strip()


class CriticConfig(Strict):
    judge: Literal["off", "on", "strict"] = Field(
        default="on", description="off: rules only; on: rules, then the LLM judge; strict: the judge's scores must all pass.")
    min_score: float = Field(default=0.6, ge=0, le=1, description="A judge score under this is a revise.")


class RulesConfig(Strict):
    enabled: list[str] | None = None
    disabled: list[str] = Field(default_factory=list)
    allow_english: bool = False


def fillable(template: str, names: tuple[str, ...]) -> str:
    """`template` when `str.format` can fill it with `names`; else a ValueError saying why, for the YAML's reader.

    >>> fillable("祝{role}{scene}", ("role", "scene"))
    '祝{role}{scene}'
    >>> fillable("祝{rol}", ("role", "scene"))
    Traceback (most recent call last):
    ...
    ValueError: unknown placeholder {rol} in '祝{rol}': the placeholders are {role} and {scene} (write a brace itself as {{ or }})
    """
    try:
        template.format(**dict.fromkeys(names, ""))
    except (KeyError, IndexError, ValueError) as exc:
        problem = f"unknown placeholder {{{exc.args[0]}}}" if isinstance(exc, KeyError) else \
            "a positional placeholder {}" if isinstance(exc, IndexError) else str(exc)
        allowed = " and ".join(f"{{{n}}}" for n in names)
        raise ValueError(f"{problem} in {template!r}: the placeholders are {allowed} "
                         f"(write a brace itself as {{{{ or }}}})") from None
    return template


class SelfCognition(Strict):
    name: str = ""
    author: str = ""
    questions: list[str] = Field(default_factory=list)
    answers: list[str] = Field(default_factory=list, description="Templates with {name} and {author}.")

    @field_validator("answers")
    @classmethod
    def _placeholders(cls, answers: list[str]) -> list[str]:
        """An answer `str.format` cannot fill ({nam}, {0}, a lone brace) ended the run in a KeyError
        traceback as it wrote the records, after the run folder was made."""
        for answer in answers:
            fillable(answer, ("name", "author"))
        return answers

    @model_validator(mode="after")
    def _answers_for_questions(self) -> SelfCognition:
        if self.questions and not self.answers:
            raise ValueError("self_cognition has questions but no answers")
        return self


class RecipeConfig(Strict):
    """Keys every recipe YAML may have."""

    recipe: str
    system_prompt: str | None = None
    llm: LLMBlock = Field(default_factory=LLMBlock)
    prompts: dict[str, str] = Field(default_factory=dict, description="Overrides of the agents' prompts by name.")
    max_revisions: int = Field(default=2, ge=0)
    fail_fast: int = Field(default=10, ge=0, description="Pause when the first K items are all rejected for one "
                                                          "reason (0 = never; --keep-going).")
    seed: int = Field(default=0, description="Seed for the random choices (few-shot picks, constraints).")
    expected_output_tokens: dict[str, int] = Field(default_factory=dict, description="For the dry-run estimate.")
    critic: CriticConfig = Field(default_factory=CriticConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    self_cognition: SelfCognition | None = None

    _source: Path = PrivateAttr(default=Path("recipe.yaml"))

    @field_validator("prompts")
    @classmethod
    def _known_prompts(cls, prompts: dict[str, str]) -> dict[str, str]:
        """A misspelt prompt name was silently ignored (the built-in prompt ran), and an unknown placeholder was
        found only at the first item, as a fatal error after the run folder was made."""
        inputs = prompt_inputs()
        for name, text in prompts.items():
            if name not in inputs:
                near = difflib.get_close_matches(name, inputs, n=1, cutoff=0.6)
                raise ValueError(f"unknown prompt {name!r}" + (f" — did you mean {near[0]!r}?" if near else
                                 f" (prompts: {', '.join(sorted(inputs))})"))
            try:
                unknown = placeholders(text) - inputs[name]
            except ValueError as exc:  # a lone brace
                raise ValueError(f"{name}: {exc} (write a brace itself as {{{{ or }}}})") from None
            if unknown:
                raise ValueError(f"{name} uses unknown placeholders {sorted(unknown)}; available: "
                                 f"{', '.join(sorted(inputs[name]))}")
        return prompts

    def set_source(self, path: Path) -> None:
        self._source = Path(path)

    @property
    def source(self) -> Path:
        """The YAML file this config was read from."""
        return self._source

    def path(self, value: str | Path) -> Path:
        """A path from the YAML: absolute; else relative to the working directory if it exists there;
        else relative to the repository the recipe's YAML sits in (recipes/<name>/<name>.yaml), or
        to the YAML's own folder for a YAML elsewhere."""
        path = Path(value).expanduser()
        if path.is_absolute() or path.exists():
            return path
        folder = self._source.resolve().parent
        repo = folder.parents[1] if folder.parent.name == "recipes" else folder
        return repo / path


class KnowledgeRecipeConfig(RecipeConfig):
    """A recipe that answers from knowledge folders (QA): the index and the answerer backend."""

    knowledge_folder: str | None = None
    extra_knowledge_folders: list[str] = Field(default_factory=list)
    index_dir: str | None = Field(default=None, description="Default: runs/<recipe>/index.")
    embedder: str | None = Field(default=None, description="auto, hash, a model name or path, openai:<model>.")
    text_fields: list[str] | None = Field(
        default=None, min_length=1, description="JSON/JSONL/CSV fields that hold text (--text-field); "
                                                "default: the index's own, else text, content, output.")
    top_k: int = Field(default=4, ge=1)
    answer_length: LengthRange | None = None
    answerer: AnswererConfig = Field(default_factory=AnswererConfig)

    @property
    def folders(self) -> list[str]:
        return [f for f in [self.knowledge_folder, *self.extra_knowledge_folders] if f]


def load_recipe_config(data: Any, model: type[RecipeConfig], source: str | Path,
                       flags: dict[str, str] | None = None) -> RecipeConfig:
    """Validate a YAML mapping against `model`; errors are one line naming the file and the key, or the
    flag that set the key (`flags`: key → flag, e.g. {"critic.judge": "--judge"})."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: a recipe config must be a mapping of keys, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe(exc, model, source, flags or {})) from None


def describe(exc: ValidationError, model: type[BaseModel], source: str | Path,
             flags: dict[str, str] | None = None) -> str:
    """The first error as one line; an unknown key names the nearest valid one, a key a flag set names the flag."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    where = ".".join(loc)
    if where in (flags or {}):
        return f"Invalid value for '{flags[where]}': {error['input']!r}. {pydantic_problem(error)}"
    if error["type"] == "extra_forbidden":
        valid = keys_at(model, error["loc"][:-1])
        near = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        hint = f" — did you mean '{'.'.join([*loc[:-1], near[0]])}'?" if near else \
            f" (valid keys: {', '.join(sorted(valid))})"
        return f"{source}: unknown key '{where}'{hint}"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: key '{where}': {pydantic_problem(error)}{more}"


def keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the block at `loc` (list indexes and dict keys are stepped over)."""
    current: Any = model
    for part in loc:
        current = _model_in(current.model_fields[part].annotation) if _is_model(current) and \
            part in current.model_fields else _model_in(current)
        if current is None:
            return []
    current = _model_in(current) if not _is_model(current) else current
    return list(current.model_fields) if _is_model(current) else []


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _model_in(tp: Any) -> Any:
    """The BaseModel inside an annotation such as `X | None`, `list[X]`, `dict[str, X]`."""
    if _is_model(tp):
        return tp
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        for arg in typing.get_args(tp):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
