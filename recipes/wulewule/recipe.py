"""The wulewule recipe: aspects × questions → grounded QA, plus pretraining chunks and
self-cognition records that need no model."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from pydantic import Field, ValidationInfo, field_validator

from graphs.config import KnowledgeRecipeConfig, Strict, TurnRange, fits_a_run
from graphs.state import WorkItem
from recipes.base import Recipe, self_cognition, write_jsonl


class MultiTurn(Strict):
    every: int = Field(default=0, ge=0, description="Every n-th question of an aspect grows follow-ups (0: none).")
    turns: TurnRange = (2, 4)


class Pretrain(Strict):
    chunk_size: int = Field(default=1024, gt=0)
    overlap: int = Field(default=50, ge=0)


class WulewuleConfig(KnowledgeRecipeConfig):
    aspects: list[str]
    questions_per_aspect: int = Field(default=5, ge=1, description="Questions about each aspect.")
    topic: str = "黑神话：悟空"
    multi_turn: MultiTurn = Field(default_factory=MultiTurn)
    pretrain: Pretrain = Field(default_factory=Pretrain)

    @field_validator("questions_per_aspect")
    @classmethod
    def _fits_a_run(cls, value: int, info: ValidationInfo) -> int:
        return fits_a_run("questions_per_aspect", value, info.data, aspects=len)


class Wulewule(Recipe):
    name = "wulewule"
    graph = "qa"
    config_file = Path(__file__).with_name("wulewule.yaml")
    config_model = WulewuleConfig

    def items(self, config: WulewuleConfig) -> Iterator[WorkItem]:
        """Aspect-major: every aspect's 1st question, then every aspect's 2nd, … so `--limit`
        still covers all aspects. Every `multi_turn.every`-th question grows follow-ups.
        (At `--concurrency 1` the run then takes each aspect's questions back to back: `shared_context`.)"""
        every = config.multi_turn.every
        low, high = config.multi_turn.turns
        for n in range(config.questions_per_aspect):
            for aspect in config.aspects:
                turns = 1
                if every and n % every == every - 1:
                    turns = random.Random(f"{aspect}:{n}").randint(int(low), int(high))
                yield WorkItem.for_recipe(self.name, "qa", key={"aspect": aspect, "n": n},
                                          payload={"aspect": aspect, "topic": config.topic, "followups": turns - 1})

    def shared_context(self, item: WorkItem) -> str | None:
        """The aspect: its questions share the aspect's retrieved context (asker, answerer, critic)."""
        return item.get("aspect")

    def prepare(self, config: WulewuleConfig, run_dir: Path, console: Console) -> None:
        """Write pretraining chunks and self-cognition records (the session builds the index)."""
        from knowledge.loaders import load_folder
        from knowledge.splitter import split_documents

        exports = run_dir / "exports"
        exports.mkdir(parents=True, exist_ok=True)
        chunks = []
        for folder in self.paths(config, config.folders):
            chunks += split_documents(load_folder(folder).documents, chunk_size=config.pretrain.chunk_size,
                                      overlap=config.pretrain.overlap)
        write_jsonl(exports / "pretrain.jsonl",
                     ({"conversation": [{"input": "", "output": c.text}]} for c in chunks))
        records = self_cognition(config.self_cognition, config.system_prompt or "")
        write_jsonl(exports / "self_cognition.jsonl", records)
        console.print(f"wrote {len(chunks)} pretraining chunks → {exports / 'pretrain.jsonl'}; "
                      f"{len(records)} self-cognition records → {exports / 'self_cognition.jsonl'}", highlight=False)
