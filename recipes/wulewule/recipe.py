"""The wulewule recipe: aspects × questions → grounded QA, plus pretraining chunks and
self-cognition records that need no model."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from graphs.state import WorkItem
from recipes.base import Recipe, resolve_path, self_cognition, write_jsonl


class Wulewule(Recipe):
    name = "wulewule"
    graph = "qa"
    config_file = Path(__file__).with_name("wulewule.yaml")

    def items(self, config: dict[str, Any]) -> Iterator[WorkItem]:
        """Aspect-major: every aspect's 1st question, then every aspect's 2nd, … so `--limit`
        still covers all aspects. Every `multi_turn.every`-th question grows follow-ups."""
        multi = config.get("multi_turn") or {}
        every = int(multi.get("every") or 0)
        low, high = multi.get("turns") or (2, 4)
        topic = config.get("topic") or "黑神话：悟空"
        for n in range(int(config.get("questions_per_aspect") or 5)):
            for aspect in config["aspects"]:
                turns = 1
                if every and n % every == every - 1:
                    turns = random.Random(f"{aspect}:{n}").randint(int(low), int(high))
                yield WorkItem.for_recipe(self.name, "qa", key={"aspect": aspect, "n": n},
                                          payload={"aspect": aspect, "topic": topic, "followups": turns - 1})

    def prepare(self, config: dict[str, Any], run_dir: Path, console: Console) -> dict[str, Any]:
        """Build (or update) the index, then write pretraining chunks and self-cognition records."""
        from knowledge.index import KnowledgeBase
        from knowledge.loaders import load_folder
        from knowledge.splitter import split_documents

        folders = [resolve_path(config, f) for f in [config["knowledge_folder"],
                                                     *(config.get("extra_knowledge_folders") or [])]]
        exports = run_dir / "exports"
        exports.mkdir(parents=True, exist_ok=True)
        index_dir = resolve_path(config, config["index_dir"]) if config.get("index_dir") else run_dir.parent / "index"
        kb = KnowledgeBase.build(folders[0], index_dir, config.get("embedder"))
        for folder in folders[1:]:
            kb.add(folder)
        stats = kb.stats()
        console.print(f"index {index_dir}: {stats.get('chunks', '?')} chunks from {stats.get('files', '?')} files "
                      f"({stats.get('embedder', {}).get('name', kb.embedder.name)})", highlight=False)
        pretrain = config.get("pretrain") or {}
        size, overlap = pretrain.get("chunk_size", 1024), pretrain.get("overlap", 50)
        chunks = []
        for folder in folders:
            chunks += split_documents(load_folder(folder).documents, chunk_size=size, overlap=overlap)
        write_jsonl(exports / "pretrain.jsonl",
                     ({"conversation": [{"input": "", "output": c.text}]} for c in chunks))
        records = self_cognition(config)
        write_jsonl(exports / "self_cognition.jsonl", records)
        console.print(f"wrote {len(chunks)} pretraining chunks → {exports / 'pretrain.jsonl'}; "
                      f"{len(records)} self-cognition records → {exports / 'self_cognition.jsonl'}", highlight=False)
        return {"kb": kb}
