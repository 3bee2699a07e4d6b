"""The emollm recipe: 16 areas × 27 emotions → seeker / counsellor dialogues ending with the
counsellor; outputs merged and as `{area}/{emotion}.jsonl`, plus self-cognition records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from pydantic import Field, ValidationInfo, field_validator

from graphs.config import Label, LengthRange, RecipeConfig, Strict, TurnRange, fits_a_run, unique_labels
from graphs.state import WorkItem
from recipes.base import Recipe, self_cognition, write_jsonl


def file_name(label: str) -> str:
    """An area or emotion as one file or folder name: path separators become `_`, and a name that would
    mean this folder or its parent (`.`, `..`) or nothing is `_`.

    >>> [file_name(x) for x in ["学业/考试", "焦虑\\紧张", "..", "", "开心"]]
    ['学业_考试', '焦虑_紧张', '_', '_', '开心']
    """
    name = "".join("_" if ch in "/\\\0" else ch for ch in label)
    return "_" if name.strip(". ") == "" else name


class Exchange(Strict):
    seeker: str
    counsellor: str


class EmoLLMConfig(RecipeConfig):
    areas: list[Label] = Field(min_length=1)
    emotions: list[Label] = Field(min_length=1)
    counsellor_system_prompt: str | None = None
    seeker_instruction: str | None = None
    turns: TurnRange = (3, 6)
    counsellor_few_shot: list[Exchange] = Field(default_factory=list)
    few_shot_k: int = Field(default=3, ge=0)
    dialogues_per_scene: int = Field(default=1, ge=1, description="Dialogues per area × emotion cell.")
    turn_length: LengthRange | None = None

    @field_validator("dialogues_per_scene")
    @classmethod
    def _fits_a_run(cls, value: int, info: ValidationInfo) -> int:  # distinct emotions, as `items` lists them
        return fits_a_run("dialogues_per_scene", value, info.data, areas=lambda a: len(set(a)),
                         emotions=lambda e: len(set(e)))


class EmoLLM(Recipe):
    name = "emollm"
    graph = "dialogue"
    config_file = Path(__file__).with_name("emollm.yaml")
    config_model = EmoLLMConfig

    def items(self, config: EmoLLMConfig) -> Iterator[WorkItem]:
        emotions = unique_labels(config.emotions, "emotions")
        areas = unique_labels(config.areas, "areas")
        turns = list(config.turns)
        for n in range(config.dialogues_per_scene):
            for emotion in emotions:
                for area in areas:
                    key = {"area": area, "emotion": emotion, "n": n}
                    yield WorkItem.for_recipe(self.name, "dialogue", key=key, payload={**key, "turns": turns})

    def prepare(self, config: EmoLLMConfig, run_dir: Path, console: Console) -> None:
        exports = run_dir / "exports"
        exports.mkdir(parents=True, exist_ok=True)
        records = self_cognition(config.self_cognition, config.counsellor_system_prompt or "")
        write_jsonl(exports / "self_cognition.jsonl", records)
        console.print(f"wrote {len(records)} self-cognition records → {exports / 'self_cognition.jsonl'}",
                      highlight=False)

    def finish(self, config: EmoLLMConfig, run_dir: Path, console: Console) -> None:
        """Accepted dialogues again as `exports/by_scene/{area}/{emotion}.jsonl` (XTuner format)."""
        from agents.schemas import Sample
        from finetune.formats import to_xtuner
        from graphs.shards import read_ledger

        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in read_ledger(run_dir, "accepted.jsonl"):
            sample = Sample.model_validate(record)
            scene = (file_name(sample.meta.get("area", "其他")), file_name(sample.meta.get("emotion", "其他")))
            groups.setdefault(scene, []).append(to_xtuner(sample))
        for (area, emotion), records in groups.items():
            folder = run_dir / "exports" / "by_scene" / area
            folder.mkdir(parents=True, exist_ok=True)
            write_jsonl(folder / f"{emotion}.jsonl", records)
        if groups:
            console.print(f"wrote {sum(map(len, groups.values()))} dialogues into {len(groups)} "
                          f"files under {run_dir / 'exports' / 'by_scene'}", highlight=False)
