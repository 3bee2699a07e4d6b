"""The tianji recipe: roles × scenes × styles × variants → persona graph.

Cells the compatibility matrix excludes are still enumerated: the persona graph rejects them with
ROLE_SCENE_MISMATCH before any model call, so the ledger says why nothing was made for them.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from graphs.config import Label, RecipeConfig, Strict, fillable, fits_a_run, unique_labels
from graphs.state import WorkItem
from recipes.base import Recipe

log = logging.getLogger(__name__)


class Example(Strict):
    input: str
    output: str


class Style(Strict):
    suffix: str = ""
    min_chars: int | None = None
    max_chars: int | None = None
    emoji: tuple[int, int] | None = Field(default=None, description="[min, max] emoji, or null for none at all.")
    instruction: str | None = None
    few_shot: list[Example] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ranges(self) -> Style:
        """A length or emoji range no wish can meet would reject every sample of the style."""
        if self.min_chars is not None and self.max_chars is not None and self.min_chars > self.max_chars:
            raise ValueError(f"min_chars {self.min_chars} is above max_chars {self.max_chars}")
        if self.emoji is not None and not 0 <= self.emoji[0] <= self.emoji[1]:
            raise ValueError(f"emoji {list(self.emoji)} must be [min, max] with 0 ≤ min ≤ max")
        return self


class Role(Strict):
    name: Label
    relation: Literal["elder", "peer", "junior"] | None = None
    sibling: bool | None = None


class Exclusion(Strict):
    role: str
    scene: str
    reason: str | None = None


class TianjiConfig(RecipeConfig):
    roles: list[Role | Label] = Field(min_length=1)
    scenes: list[Label] = Field(min_length=1)
    styles: dict[str, Style] = Field(min_length=1)
    input_templates: list[str] = Field(default_factory=list)
    random_constraints: list[str] = Field(default_factory=list)
    compat_exclusions: list[Exclusion] = Field(default_factory=list)
    variants_per_cell: int = Field(default=1, ge=1, description="Items per role × scene × style cell.")
    humanize_inputs: bool = False
    few_shot_k: int = Field(default=3, ge=0)

    @property
    def role_names(self) -> list[str]:
        """The roles' names, as listed (a role is a name, or a name with its relation)."""
        return [r.name if isinstance(r, Role) else r for r in self.roles]

    @field_validator("styles")
    @classmethod
    def _lengths(cls, styles: dict[str, Style]) -> dict[str, Style]:
        """The range the rules apply, a style's own bound or else its default (小红书 15-300): `max_chars: 10`
        alone on 小红书 made [15, 10], and every wish of the style was rejected after it was paid for."""
        from agents.rules.base import style_length

        for name, style in styles.items():
            low, high = style_length(name, style.min_chars, style.max_chars)
            if low > high:
                default = "min_chars" if style.min_chars is None else "max_chars"
                raise ValueError(f"style {name}: min_chars {low} is above max_chars {high} ({default} is the "
                                 f"style's default where the YAML sets none): no wish can meet it")
        return styles

    @field_validator("input_templates")
    @classmethod
    def _fillable(cls, templates: list[str]) -> list[str]:  # a typo ({rol}) failed every item it fell to
        return [fillable(t, ("role", "scene")) for t in templates]

    @model_validator(mode="after")
    def _exclusions_name_cells(self) -> TianjiConfig:
        """An exclusion whose role or scene is a typo of a listed one (生曰 for 生日) excluded nothing, silently.
        One naming nothing like a listed name is left alone: the lists were cut down, the exclusion kept."""
        names = {"role": self.role_names, "scene": self.scenes}
        for n, ex in enumerate(self.compat_exclusions):
            for what in ("role", "scene"):
                value = getattr(ex, what).strip()
                near = difflib.get_close_matches(value, names[what], n=1, cutoff=0.5)
                if value not in names[what] and near:
                    log.warning("compat_exclusions %d (%s × %s): %s %r is not in %ss, so it excludes nothing — "
                                "did you mean %r?", n + 1, ex.role, ex.scene, what, value, what, near[0])
        return self

    @field_validator("variants_per_cell")
    @classmethod
    def _fits_a_run(cls, value: int, info: ValidationInfo) -> int:
        return fits_a_run("variants_per_cell", value, info.data, roles=len, scenes=len, styles=len)


class Tianji(Recipe):
    name = "tianji"
    graph = "persona"
    config_file = Path(__file__).with_name("tianji.yaml")
    config_model = TianjiConfig

    def items(self, config: TianjiConfig) -> Iterator[WorkItem]:
        roles = unique_labels(config.role_names, "roles")
        scenes = unique_labels(config.scenes, "scenes")
        styles = list(config.styles)
        humanize = config.humanize_inputs
        for variant in range(config.variants_per_cell):
            for style in styles:
                for scene in scenes:
                    for role in roles:
                        key = {"role": role, "scene": scene, "style": style, "variant": variant}
                        yield WorkItem.for_recipe(self.name, "persona", key=key,
                                                  payload={**key, "humanize": humanize})
