"""Work items from a corpus, mixed by proportion, with an account of every chunk.

Three kinds, recorded in `meta.item_kind`:
- `chunk`: N questions per chunk, N = its length / `chars_per_question` (1 … `max_questions_per_chunk`);
- `cross_chunk`: one question that needs two related chunks (neighbours in a file, or chunks under the
  same heading);
- `tag`: up to `questions_per_tag` questions about each tag of the tag tree, from what retrieval finds for it.

The proportions (`mix`) split the total: `max_items`, or — with none — as many as it takes to ask every
chunk question (the chunk kind's pool divided by its share). Items are interleaved by kind so `--limit`
samples every kind. Every chunk ends in exactly one bucket: planned (→ used / failed / pending after
the run) or skipped with a reason (too short, duplicate, proportion cap).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from agents.errors import ConfigError, InputError, json_problem
from agents.schemas import WorkItem
from graphs.config import MAX_RUN_ITEMS, too_many_items
from recipes.docqa.corpus import Corpus, DocChunk, chunk_questions
from recipes.docqa.tags import heading_tag, leaves, paths

KINDS = ("chunk", "cross_chunk", "tag")
NOTHING_TO_ASK = {"chunk": "no chunk long enough", "cross_chunk": "no file gave two chunks", "tag": "no tags"}


@dataclass
class ItemPlan:
    items: list[WorkItem] = field(default_factory=list)
    planned_chunks: set[str] = field(default_factory=set)   # chunk hashes some item uses
    skipped: Counter = field(default_factory=Counter)        # reason → chunks
    total_chunks: int = 0
    files_skipped: dict[str, int] = field(default_factory=dict)
    seen_chunks: set[str] = field(default_factory=set)       # every usable chunk
    seen_tags: set[str] = field(default_factory=set)         # every tag of the tree
    left_out: int = 0                                        # items over old material (keep_incremental)
    none_because: dict[str, str] = field(default_factory=dict)  # kind with a share but no item → why

    def by_kind(self) -> dict[str, int]:
        return dict(Counter(item.payload["item_kind"] for item in self.items))


def _spread(pool: list[Any], want: int) -> list[Any]:
    """`want` elements spread evenly over `pool` (all of it when it is no bigger), in pool order.

    >>> _spread(list(range(10)), 3)
    [0, 3, 6]
    """
    if want >= len(pool):
        return list(pool)
    return [pool[i * len(pool) // want] for i in range(want)]


def _round_robin(groups: list[list[Any]], want: int) -> list[Any]:
    """The first of every group, then the second of every group, … — at most `want`."""
    out = [x for layer in zip_longest(*groups) for x in layer if x is not None]
    return out[:want]


# Item keys never use the names "chunk" or "aspect": `WorkItem.get` falls back to the key, and the QA
# nodes read `chunk` as the passage text to answer from.
def plan_items(corpus: Corpus, config: Any, tree: dict[str, list[str]], labels: dict[str, str],
               ga_count: int, known_tags: set[str] | None = None) -> ItemPlan:
    """The run's items. `known_tags`: the tags of the run's earlier plans; a tag not among them (one
    the user added to tags.yaml, or a new document's) is asked about first."""
    plan = ItemPlan(total_chunks=len(corpus.chunks), files_skipped={r: len(files) for r, files in corpus.files_skipped.items()})
    usable: list[DocChunk] = []
    seen: set[str] = set()  # chunk texts: a file and its copy (手册.pdf, 手册(1).pdf) are asked about once
    for chunk in corpus.chunks:
        if chunk.text in seen:
            plan.skipped["duplicate"] += 1
            continue
        seen.add(chunk.text)
        if len(chunk.text.strip()) < config.min_chunk_chars:
            plan.skipped["too_short"] += 1
            continue
        usable.append(chunk)
        plan.seen_chunks.add(chunk.hash)

    tag_paths = paths(tree)
    common = {"tags": tag_paths}

    def chunk_payload(chunks: list[DocChunk], kind: str, **extra: Any) -> dict[str, Any]:
        first = chunks[0]
        payload = {"item_kind": kind, "sources": [c.ref() for c in chunks], "heading_tag": heading_tag(first),
                   "files": {c.path: c.file_sha for c in chunks}, **common, **extra}
        if labels.get(first.hash):
            payload["tag"] = labels[first.hash]
        return payload

    per_chunk = [[(c, n) for n in range(chunk_questions(len(c.text), config.chars_per_question,
                                                        config.max_questions_per_chunk))] for c in usable]
    cross: list[tuple[DocChunk, DocChunk]] = []
    for a, b in zip(usable, usable[1:]):
        if a.source == b.source:
            cross.append((a, b))
    by_heading: dict[tuple[str, str], list[DocChunk]] = {}
    for c in usable:
        if c.heading:
            by_heading.setdefault((c.source, c.heading), []).append(c)
    for group in by_heading.values():
        for a, b in zip(group, group[2:]):  # same heading, not neighbours (those are in already)
            cross.append((a, b))
    ordered = sorted(leaves(tree), key=lambda t: known_tags is not None and t in known_tags)  # stable: new first
    plan.seen_tags = set(leaves(tree))

    pools = {"chunk": sum(len(g) for g in per_chunk), "cross_chunk": len(cross),
             "tag": len(ordered) * config.questions_per_tag}
    shares = config.mix.model_dump()
    plan.none_because = {k: NOTHING_TO_ASK[k] for k in KINDS if shares[k] > 0 and not pools[k]}
    total_share = sum(shares.values()) or 1.0
    if config.max_items is not None:
        total = config.max_items
    elif shares["chunk"] > 0:
        total = round(pools["chunk"] * total_share / shares["chunk"])
    else:
        total = sum(pools[k] for k in KINDS if shares[k] > 0)
    # every kind with a share and something to ask gets at least one item
    want = {k: min(pools[k], max(int(total > 0 and shares[k] > 0), round(total * shares[k] / total_share)))
            for k in KINDS}
    # questions_per_tag is a cap unless the mix or max_items asks for that many: 10**8 then kept even --dry-run busy
    if want["tag"] > MAX_RUN_ITEMS:
        problem = too_many_items("questions_per_tag", config.questions_per_tag, len(ordered), "tags")
        raise ConfigError(f"{config.source}: key 'questions_per_tag': {problem}")
    layers = -(-want["tag"] // len(ordered)) if ordered else 0  # the round robin takes no more
    tag_pool = [[(t, n) for n in range(min(config.questions_per_tag, layers))] for t in ordered]

    made: dict[str, list[WorkItem]] = {k: [] for k in KINDS}
    for i, (chunk, n) in enumerate(_round_robin(per_chunk, want["chunk"])):
        made["chunk"].append(WorkItem.for_recipe(
            "docqa", "docqa", key={"kind": "chunk", "chunk_hash": chunk.hash, "n": n},
            payload=chunk_payload([chunk], "chunk", n=n)))
    for a, b in _spread(cross, want["cross_chunk"]):
        made["cross_chunk"].append(WorkItem.for_recipe(
            "docqa", "docqa", key={"kind": "cross_chunk", "chunks": [a.hash, b.hash]},
            payload=chunk_payload([a, b], "cross_chunk")))
    for tag, n in _round_robin(tag_pool, want["tag"]):
        made["tag"].append(WorkItem.for_recipe(
            "docqa", "docqa", key={"kind": "tag", "tag": tag, "n": n},
            payload={"item_kind": "tag", "tag": tag, "n": n, "sources": [], "files": {}, **common}))

    every, (low, high) = config.multi_turn.every, config.multi_turn.turns
    for number, item in enumerate(x for layer in zip_longest(*made.values()) for x in layer if x is not None):
        item.payload["ga_slot"] = int(item.id[:8], 16) % max(1, ga_count) if ga_count else 0
        if every and number % every == every - 1:
            item.payload["followups"] = low - 1 + int(item.id[8:12], 16) % (high - low + 1)
        plan.items.append(item)
        plan.planned_chunks.update(s["hash"] for s in item.payload["sources"])
    for chunk in usable:
        if chunk.hash not in plan.planned_chunks:
            plan.skipped["proportion_cap"] += 1
    return plan


def chunk_accounting(plan: ItemPlan, finished: dict[str, str], sources_of: dict[str, list[str]]) -> dict[str, Any]:
    """Where every chunk ended: used (some accepted sample came from it), failed (all its items ended
    without an accepted sample), pending (items not run yet) or skipped (with the reason).

    `finished`: item id → "accepted" | "rejected" | "failed"; `sources_of`: item id → chunk hashes.
    """
    status: dict[str, str] = {}
    for item_id, chunks in sources_of.items():
        outcome = finished.get(item_id, "pending")
        for chunk in chunks:
            old = status.get(chunk)
            if outcome == "accepted" or old == "accepted":
                status[chunk] = "accepted"
            elif outcome == "pending" or old == "pending":
                status[chunk] = "pending"
            else:
                status[chunk] = "failed"
    counts = Counter(status.get(c, "pending") for c in plan.planned_chunks)
    return {"total": plan.total_chunks, "used": counts["accepted"], "failed": counts["failed"],
            "pending": counts["pending"], "skipped": dict(plan.skipped.most_common()),
            "files_skipped": plan.files_skipped}


def read_items(path: Path) -> dict[str, list[str]] | None:
    """An earlier plan's record (items.json: items, chunks, tags), None on a first run; a damaged one is a
    one-line InputError."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        problem = None if isinstance(data, dict) else "not a JSON object"
    except json.JSONDecodeError as exc:
        problem = json_problem(exc, line=True)
    except UnicodeDecodeError as exc:
        problem = str(exc)
    if problem is not None:
        raise InputError(f"{path}: not the record docqa writes ({problem}); delete it and run again "
                         f"(finished items are skipped all the same)")
    return data


def remember_items(plan: ItemPlan, path: Path) -> None:
    """Record the run's items, chunks and tags (items.json), so the next run knows what is new."""
    old = read_items(path) or {}
    data = {"items": sorted(set(old.get("items", [])) | {i.id for i in plan.items}),
            "chunks": sorted(set(old.get("chunks", [])) | plan.planned_chunks | plan.seen_chunks),
            "tags": sorted(set(old.get("tags", [])) | plan.seen_tags)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def known_tags(path: Path) -> set[str] | None:
    """The tags an earlier plan of this run had (items.json), None on a first run."""
    old = read_items(path)
    return set(old.get("tags", [])) if old is not None else None


def keep_incremental(plan: ItemPlan, path: Path) -> None:
    """On a rerun, new items only for new or changed chunks (and new tags): an item over chunks and
    tags the run already had, that the earlier plan did not hold, is left out — growing the corpus
    shifts the proportions, and that must not make old chunks ask new questions."""
    old = read_items(path)
    if old is None:
        return
    items, chunks, tags = set(old.get("items", [])), set(old.get("chunks", [])), set(old.get("tags", []))

    def old_material(item: WorkItem) -> bool:
        if item.payload["item_kind"] == "tag":
            return item.payload["tag"] in tags
        return all(s["hash"] in chunks for s in item.payload["sources"])

    kept = [item for item in plan.items if item.id in items or not old_material(item)]
    plan.left_out = len(plan.items) - len(kept)
    plan.items = kept
    planned = {s["hash"] for item in kept for s in item.payload["sources"]}
    if plan.planned_chunks - planned:
        plan.skipped["proportion_cap"] += len(plan.planned_chunks - planned)
    plan.planned_chunks = planned
