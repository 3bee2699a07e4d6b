"""The document recipe: the user's own folders → questions from chunks, pairs of chunks and tags, each
for one genre × audience pair, answered from the whole knowledge base and checked by the critic.

Run folder extras: `tags.yaml` (the editable tag tree and chunk labels), `ga_pairs.yaml` (the pairs
the model proposed, when the YAML lists none), and `stats.json` → `chunks` (where every chunk ended).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator, model_validator
from rich.console import Console

from agents.docqa import ANGLES
from agents.errors import ConfigError, InputError, not_valid_yaml
from agents.schemas import WorkItem
from graphs.config import KnowledgeRecipeConfig, Strict, TurnRange
from knowledge.loaders import check_folder
from recipes.base import Recipe
from recipes.docqa.corpus import Corpus, index_roots, scan_corpus
from recipes.docqa.items import (ItemPlan, chunk_accounting, keep_incremental, known_tags, plan_items,
                                 remember_items)
from recipes.docqa.tags import TAGS_FILE, merge_labels, read_tags, tree_for_run, write_tags

log = logging.getLogger(__name__)

GA_FILE = "ga_pairs.yaml"
ITEMS_FILE = "items.json"


class Mix(Strict):
    """Shares of the three item kinds (any scale: 3/1/1 is 0.6/0.2/0.2)."""

    chunk: float = Field(default=0.6, ge=0)
    cross_chunk: float = Field(default=0.25, ge=0)
    tag: float = Field(default=0.15, ge=0)


class GAPairConfig(Strict):
    genre: str
    audience: str


class MultiTurn(Strict):
    every: int = Field(default=0, ge=0, description="Every n-th item grows follow-ups (0: none).")
    turns: TurnRange = (2, 3)


class DocQAConfig(KnowledgeRecipeConfig):
    name: str = Field(default="docqa", description="The dataset's name: the system prompt and the index folder.")
    topic: str | None = None
    mix: Mix = Field(default_factory=Mix)
    max_items: int | None = Field(default=None, ge=0, description="Total items; default: every chunk question.")
    chars_per_question: int = Field(default=250, gt=0)
    max_questions_per_chunk: int = Field(default=3, ge=1, description="Each from another angle: at most one per angle.")
    min_chunk_chars: int = Field(default=40, ge=0)
    questions_per_tag: int = Field(default=2, ge=0, description="At most; the mix says how many.")
    ga_pairs: list[GAPairConfig] = Field(default_factory=list, description="Empty: the model proposes ga_count.")
    ga_count: int = Field(default=4, ge=1)
    tags: dict[str, list[str]] = Field(default_factory=dict, description="A starting tag tree (level 1 → level 2).")
    multi_turn: MultiTurn = Field(default_factory=MultiTurn)

    @field_validator("max_questions_per_chunk")
    @classmethod
    def one_per_angle(cls, value: int) -> int:
        if value > len(ANGLES):  # a sixth question would ask from an angle already used: a duplicate, paid for
            raise ValueError(f"at most {len(ANGLES)}: each question of a chunk asks from another angle "
                             f"({'、'.join(ANGLES)})")
        return value

    @model_validator(mode="before")
    @classmethod
    def defaults_from_name(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name = str(data.get("name") or "docqa")
        data = dict(data)
        data.setdefault("topic", name)
        data.setdefault("system_prompt", f"你是「{name}」的问答助手。回答时以资料为依据，资料里没有的内容就如实说明"
                                         f"不确定，不要编造；条理清楚，语气亲切。")
        if not data.get("index_dir"):  # one index per dataset name, under the runs folder of the working directory
            data["index_dir"] = str(Path("runs", "docqa", f"index-{name}").resolve())
        return data


class DocQA(Recipe):
    name = "docqa"
    graph = "docqa"
    config_file = Path(__file__).with_name("docqa.yaml")
    config_model = DocQAConfig

    def __init__(self) -> None:
        self._plan: ItemPlan | None = None
        self._corpus: Corpus | None = None
        self._tags: tuple[dict[str, list[str]], dict[str, str]] = ({}, {})

    # -- items ------------------------------------------------------------------------------------
    def items(self, config: DocQAConfig) -> Iterator[WorkItem]:
        return self.work_items(config, None)

    def work_items(self, config: DocQAConfig, run_dir: Path | None) -> Iterator[WorkItem]:
        """Chunks of the recipe's folders and of every folder the index holds (`zaoshu kb add`)."""
        folders = [config.path(f) for f in config.folders]
        if not folders:
            raise ConfigError("docqa needs your documents: --knowledge DIR (or knowledge_folder in the YAML)")
        for folder in folders:
            check_folder(folder)  # the messages of zaoshu kb build: not found, or not a folder
        where = _fields_from(config) if config.text_fields else "--text-field"
        roots, cut = index_roots(config.path(config.index_dir), config.text_fields, where, folders[0])
        corpus = scan_corpus(folders + [r for r in roots if r.is_dir()], **cut)
        if not corpus.chunks:  # before any LLM call, as for an empty folder
            raise no_text_error(corpus)
        saved = read_tags(run_dir / TAGS_FILE) if run_dir is not None else None
        usable = [c for c in corpus.chunks if len(c.text.strip()) >= config.min_chunk_chars]
        tree, labels = tree_for_run(saved, config.tags, usable)
        ga_count = len(config.ga_pairs) or len(_saved_ga(run_dir) or []) or config.ga_count
        self._corpus, self._tags = corpus, (tree, labels)
        known = known_tags(run_dir / ITEMS_FILE) if run_dir is not None else None
        self._plan = plan_items(corpus, config, tree, labels, ga_count, known)
        if not self._plan.items:  # before any LLM call, and said in the dry run too
            raise nothing_to_ask(self._plan, config)
        if run_dir is not None:
            keep_incremental(self._plan, run_dir / ITEMS_FILE)
        return iter(self._plan.items)

    # -- before and after the run -----------------------------------------------------------------
    def prepare(self, config: DocQAConfig, run_dir: Path, console: Console) -> None:
        """Save the tag tree (editable) and say what the corpus gave."""
        plan, corpus = self._plan, self._corpus
        tree, labels = self._tags
        write_tags(run_dir / TAGS_FILE, tree, labels)
        remember_items(plan, run_dir / ITEMS_FILE)
        kinds = " · ".join([f"{k} {n}" for k, n in plan.by_kind().items()]
                           + [f"{k} 0 ({why})" for k, why in plan.none_because.items()])
        skipped = ", ".join(f"{r} {n}" for r, n in plan.skipped.most_common()) or "none"
        files = sum(1 for _ in {c.path for c in corpus.chunks})
        not_read = "".join(f", {len(paths)} skipped ({r})" for r, paths in corpus.skipped_by_count())
        console.print(f"corpus: {plan.total_chunks} chunks from {files} files{not_read} in {len(corpus.folders)} "
                      f"folders; items: {kinds}; chunks skipped: {skipped}; tags: {len(tree)} top-level "
                      f"→ {run_dir / TAGS_FILE}", highlight=False)
        for line in skip_report(corpus):
            console.print(line, highlight=False, soft_wrap=True)

    def before_run(self, config: DocQAConfig, run_dir: Path, ctx: Any, console: Console) -> None:
        """The GA pairs: the YAML's, else the run's ga_pairs.yaml, else proposed by the model once."""
        pairs = [p.model_dump() for p in config.ga_pairs] or _saved_ga(run_dir)
        if pairs is None:
            pairs = asyncio.run(_propose(ctx, self._corpus, config))
            origin = "proposed by the model"
            if pairs is None:
                origin = "the defaults: the model proposed no usable list"
                from agents.docqa import DEFAULT_GA_PAIRS

                pairs = DEFAULT_GA_PAIRS
                console.print("[yellow]warning:[/] the model proposed no usable genre × audience pairs; "
                              f"using the defaults (edit {run_dir / GA_FILE})", highlight=False)
            (run_dir / GA_FILE).write_text(
                f"# genre × audience pairs of this run ({origin}); edit them: items not run yet use them\n"
                + yaml.safe_dump(pairs, allow_unicode=True, sort_keys=False), encoding="utf-8")
        ctx.recipe["ga_pairs"] = pairs
        console.print("GA pairs: " + "; ".join(f"{p['genre']} × {p['audience']}" for p in pairs), highlight=False)

    def finish(self, config: DocQAConfig, run_dir: Path, console: Console) -> None:
        """Account for every chunk, merge the model's labels into tags.yaml, extend stats.json."""
        from graphs.ledger import read_jsonl

        plan = self._plan
        if plan is None:
            return
        finished: dict[str, str] = {}
        for status, ledger in (("failed", "failed.jsonl"), ("rejected", "rejected.jsonl"),
                               ("accepted", "accepted.jsonl")):
            for record in read_jsonl(run_dir / ledger):
                finished[record["id"]] = status
        accepted = list(read_jsonl(run_dir / "accepted.jsonl"))
        sources_of = {item.id: [s["hash"] for s in item.payload["sources"]] for item in plan.items}
        chunks = chunk_accounting(plan, finished, sources_of)
        tree, labels = self._tags
        saved = read_tags(run_dir / TAGS_FILE)  # the user may have edited it while the run was going
        if saved is not None:
            tree, labels = saved
        merge_labels(tree, labels, accepted)
        write_tags(run_dir / TAGS_FILE, tree, labels)
        tag_sources: dict[str, int] = {}
        for record in accepted:
            origin = (record.get("meta") or {}).get("tag_source") or "none"
            tag_sources[origin] = tag_sources.get(origin, 0) + 1
        stats_path = run_dir / "stats.json"
        stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.exists() else {}
        stats.update(chunks=chunks, items_by_kind=plan.by_kind(), tags=tag_sources)
        tmp = stats_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(stats, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(stats_path)
        skipped = ", ".join(f"{r} {n}" for r, n in chunks["skipped"].items()) or "none"
        console.print(f"chunks: {chunks['total']} total · {chunks['used']} used · {chunks['failed']} failed · "
                      f"{chunks['pending']} not run yet · skipped: {skipped}", highlight=False)
        if tag_sources.get("heading (labelling failed)"):
            console.print(f"tags: {tag_sources['heading (labelling failed)']} samples kept the heading tag "
                          "(the model's label did not parse)", highlight=False)


def nothing_to_ask(plan: ItemPlan, config: DocQAConfig) -> InputError:
    """The one line for a corpus and a config that make no work item: why each kind has none."""
    why = [f"{kind} 0 ({reason})" for kind, reason in plan.none_because.items()]
    if config.max_items == 0:
        why.append("max_items is 0")
    if not any(config.mix.model_dump().values()):
        why.append("every share of mix is 0")
    short = f" (shorter than min_chunk_chars, {config.min_chunk_chars} characters)"
    skipped = ", ".join(f"{reason} {n}{short if reason == 'too_short' else ''}"
                        for reason, n in plan.skipped.most_common())
    return InputError(f"nothing to ask: {'; '.join(why)}" + (f"; chunks skipped: {skipped}" if skipped else ""))


def no_text_error(corpus: Corpus) -> InputError:
    """The one line for folders that gave no chunk: what was skipped, and what to do about it."""
    why = ", ".join(f"{len(files)} {reason}" for reason, files in corpus.skipped_by_count())
    fields = any(reason.startswith("empty: no text in fields") for reason in corpus.files_skipped)
    return InputError(f"no text in any file of {', '.join(map(str, corpus.folders))} ({why}): "
                      + ("name the fields that hold text with --text-field" if fields else "give documents with text"))


def skip_report(corpus: Corpus, most: int = 5) -> list[str]:
    """One line per reason a file was skipped (its files, or the first `most` and a count), then the
    bad lines of JSONL/CSV files, as `zaoshu kb build` reports them."""
    lines = []
    for reason, paths in corpus.skipped_by_count():
        shown = ", ".join(paths[:most]) + (f" and {len(paths) - most} more" if len(paths) > most else "")
        hint = " — name the fields that hold text with --text-field" \
            if reason.startswith("empty: no text in fields") else ""
        noun = "folder" if reason == "hidden folder" or reason.startswith(("cannot list folder", "zaoshu's own")) \
            else "file"
        lines.append(f"[yellow]skipped[/] {len(paths)} {noun}{'s' if len(paths) > 1 else ''} ({reason}{hint}): {shown}")
    skipped = {path for paths in corpus.files_skipped.values() for path in paths}
    for path, problem in corpus.bad_lines[:30]:
        kept = "as is its file" if path in skipped else "the good lines are used"
        lines.append(f"[yellow]bad line[/] {path}: {problem} (skipped, {kept})")
    if len(corpus.bad_lines) > 30:
        lines.append(f"… and {len(corpus.bad_lines) - 30} more bad lines")
    return lines


def _fields_from(config: DocQAConfig) -> str:
    """Where the config's text fields were asked for: the YAML, or --text-field (which overrides it)."""
    from graphs.session import read_yaml

    in_yaml = config.source.is_file() and read_yaml(config.source).get("text_fields") == config.text_fields
    return f"text_fields in {config.source}" if in_yaml else "--text-field"


def _saved_ga(run_dir: Path | None) -> list[dict[str, str]] | None:
    if run_dir is None or not (run_dir / GA_FILE).is_file():
        return None
    try:
        pairs = yaml.safe_load((run_dir / GA_FILE).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise not_valid_yaml(run_dir / GA_FILE, exc) from None
    if not isinstance(pairs, list) or not all(isinstance(p, dict) and p.get("genre") and p.get("audience")
                                              for p in pairs):
        raise InputError(f"{run_dir / GA_FILE}: expected a list of {{genre, audience}}")
    return pairs or None


def corpus_digest(corpus: Corpus | None, limit: int = 2400) -> str:
    """Titles, headings and openings of the documents, for the GA-pair prompt."""
    if corpus is None:
        return ""
    lines, seen = [], set()
    for chunk in corpus.chunks:
        if chunk.source not in seen:
            seen.add(chunk.source)
            lines.append(f"《{chunk.doc_title}》（{chunk.source}）：{chunk.text[:120].replace(chr(10), ' ')}")
        elif chunk.heading and f"  - {chunk.heading}" not in lines:
            lines.append(f"  - {chunk.heading}")
    return "\n".join(lines)[:limit]


async def _propose(ctx: Any, corpus: Corpus | None, config: DocQAConfig) -> list[dict[str, str]] | None:
    from agents.docqa import propose_ga_pairs
    from agents.llm_errors import LLMError, LLMFatalError

    chat = ctx.clients["asker"]
    try:
        return await propose_ga_pairs(chat, corpus_digest(corpus), config.ga_count,
                                      attempts=ctx.structured_attempts, prompts=config.prompts)
    except LLMFatalError:
        raise
    except LLMError as exc:
        log.warning("GA pairs: %s", exc)
        return None
    finally:
        await chat.aclose()
