"""The tianji recipe: roles × scenes × styles × variants → persona graph.

Cells the compatibility matrix excludes are still enumerated: the persona graph rejects them with
ROLE_SCENE_MISMATCH before any model call, so the ledger says why nothing was made for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agents.errors import InputError
from graphs.state import WorkItem
from recipes.base import Recipe


class Tianji(Recipe):
    name = "tianji"
    graph = "persona"
    config_file = Path(__file__).with_name("tianji.yaml")

    def items(self, config: dict[str, Any]) -> Iterator[WorkItem]:
        roles = [r["name"] if isinstance(r, dict) else r for r in config.get("roles") or []]
        scenes = [s.strip() for s in config.get("scenes") or []]
        styles = list(config.get("styles") or {})
        if not (roles and scenes and styles):
            raise InputError("tianji.yaml needs roles, scenes and styles")
        variants = int(config.get("variants_per_cell") or 1)
        humanize = bool(config.get("humanize_inputs"))
        for variant in range(variants):
            for style in styles:
                for scene in scenes:
                    for role in roles:
                        key = {"role": role, "scene": scene, "style": style, "variant": variant}
                        yield WorkItem.for_recipe(self.name, "persona", key=key,
                                                  payload={**key, "humanize": humanize})
