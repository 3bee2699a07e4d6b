"""The composition root: resolve the settings and the recipe's validated config once, build every
service a node may use into one `Context`, and run the recipe's items through its graph.

    python -m recipes.wulewule --answerer huixiangdou --huixiangdou-url http://127.0.0.1:23333
        └─ RunRequest (the flags, None = not given)
             └─ load_config: YAML + flags → WulewuleConfig (unknown keys refused)
             └─ resolve_settings: flag > environment / .env > YAML `llm:` > default
             └─ build_services: knowledge base, web search, HuixiangDou (before any LLM client, so a
                run with no endpoint still leaves the recipe's own outputs)
             └─ build_context: per-role clients (one Pacing per endpoint and key), dedupers, judge mode

A flag goes from the command line into `RunRequest`, then straight to the one place that uses it.
A recipe (recipes/base.py) is only its config model, its items, `prepare` and `finish`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Protocol

import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from agents.context import Context
from agents.errors import ConfigError, InputError, not_valid_yaml
from agents.schemas import WorkItem
from agents.settings import Settings, load_settings
from graphs.config import KnowledgeRecipeConfig, RecipeConfig, load_recipe_config

log = logging.getLogger(__name__)


class RecipeLike(Protocol):
    """What the session needs of a recipe (recipes.base.Recipe is one)."""

    name: str
    graph: str
    config_file: Path
    config_model: type[RecipeConfig]

    def items(self, config: Any) -> Iterator[WorkItem]: ...
    def work_items(self, config: Any, run_dir: Path | None) -> Iterator[WorkItem]: ...
    def shared_context(self, item: WorkItem) -> str | None: ...
    def prepare(self, config: Any, run_dir: Path, console: Console) -> None: ...
    def before_run(self, config: Any, run_dir: Path, ctx: Any, console: Console) -> None: ...
    def after_run(self, config: Any, run_dir: Path, console: Console) -> None: ...


@dataclass
class RunRequest:
    """The recipe command's flags. `None` means "not given": it overrides nothing."""

    limit: Optional[int] = None
    target: Optional[int] = None
    concurrency: Optional[int] = None
    trace: bool = False
    trace_file: Optional[Path] = None
    dry_run: bool = False
    out: Optional[Path] = None
    fresh: bool = False
    budget: Optional[str] = None
    interactive: bool = False
    config: Optional[Path] = None
    fsync_every: int = 20
    answerer: Optional[str] = None
    huixiangdou_url: Optional[str] = None
    web_fallback: Optional[str] = None
    judge: Optional[str] = None
    fail_fast_k: Optional[int] = None
    keep_going: bool = False
    shard: Optional[str] = None  # "i/n": this process runs shard i of n (graphs.shards.parse_shard)
    ray: bool = False  # run the items on a Ray cluster (graphs.ray_runner)
    ray_address: Optional[str] = None  # "auto", "ray://host:10001"; None starts a local cluster
    workers: Optional[int] = None  # Ray worker actors (default: the cluster's CPUs, at most 8)

    def shard_spec(self) -> Optional[tuple[int, int]]:
        from graphs.shards import parse_shard

        return parse_shard(self.shard) if self.shard else None
    knowledge: Optional[list[Path]] = None  # --knowledge DIR … (QA recipes)
    text_field: Optional[list[str]] = None  # --text-field FIELD … (QA recipes)
    name: Optional[str] = None  # --name (recipes whose YAML has `name`)

    def config_overrides(self) -> dict[str, Any]:
        """The flags that stand for recipe YAML keys, as YAML, only those given."""
        answerer = {k: v for k, v in (("backend", self.answerer), ("huixiangdou_url", self.huixiangdou_url),
                                      ("web_fallback", self.web_fallback)) if v is not None}
        overrides: dict[str, Any] = {"answerer": answerer} if answerer else {}
        if self.judge is not None:
            overrides["critic"] = {"judge": self.judge}
        if self.knowledge:
            folders = [str(Path(f).expanduser().resolve()) for f in self.knowledge]
            overrides.update(knowledge_folder=folders[0], extra_knowledge_folders=folders[1:])
        if self.name is not None:
            overrides["name"] = self.name
        if self.text_field:
            overrides["text_fields"] = list(self.text_field)
        return overrides

    def flag_keys(self) -> dict[str, str]:
        """The YAML key each given flag sets → the flag, so that a bad value is blamed on the flag."""
        flags = {"critic.judge": ("--judge", self.judge), "answerer.backend": ("--answerer", self.answerer),
                 "answerer.huixiangdou_url": ("--huixiangdou-url", self.huixiangdou_url),
                 "answerer.web_fallback": ("--web-fallback", self.web_fallback), "name": ("--name", self.name)}
        return {key: flag for key, (flag, value) in flags.items() if value is not None}

    def fail_fast(self, config: RecipeConfig) -> int:
        """K for the fail-fast watch: 0 with --keep-going, else --fail-fast, else the YAML's `fail_fast`.
        (A run-control flag, not part of the config: it does not change the run folder's fingerprint.)"""
        if self.keep_going:
            return 0
        return self.fail_fast_k if self.fail_fast_k is not None else config.fail_fast

    def dump(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            return str(v) if isinstance(v, Path) else [plain(x) for x in v] if isinstance(v, list) else v
        return {k: plain(v) for k, v in asdict(self).items()}


# ---- resolving ------------------------------------------------------------------------------------

def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"recipe config not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise not_valid_yaml(path, exc) from None


def load_config(recipe: RecipeLike, request: RunRequest) -> RecipeConfig:
    """The recipe's YAML (or `--config`) with the flags that override YAML keys, validated."""
    path = request.config or recipe.config_file
    data = read_yaml(path)
    named = data.get("recipe") if isinstance(data, dict) else None
    if named is not None and str(named) != recipe.name:  # before its keys: they are the other recipe's
        raise InputError(f"{path} is a config for the {named} recipe (recipe: {named}), not for {recipe.name}: "
                         f"use a config for {recipe.name}, or run the {named} recipe with it")
    overrides = request.config_overrides()
    if ("answerer" in overrides or "knowledge_folder" in overrides or "text_fields" in overrides) and \
            "answerer" not in recipe.config_model.model_fields:
        raise InputError(f"--answerer, --huixiangdou-url, --web-fallback, --knowledge and --text-field apply to QA "
                         f"recipes; {recipe.name} answers from no knowledge base")
    if "name" in overrides and "name" not in recipe.config_model.model_fields:
        raise InputError(f"--name applies to recipes with a `name` key; {recipe.name} has none")
    for key, value in overrides.items():
        data[key] = {**(data.get(key) or {}), **value} if isinstance(value, dict) else value
    config = load_recipe_config(data, recipe.config_model, path, request.flag_keys())
    if request.huixiangdou_url is not None and config.answerer.backend != "huixiangdou":  # it went unused
        raise InputError(f"--huixiangdou-url is the server of --answerer huixiangdou, but the answerer is "
                         f"{config.answerer.backend}: add --answerer huixiangdou")
    config.set_source(path)
    return config


def resolve_settings(config: RecipeConfig, request: RunRequest) -> Settings:
    """Flag > environment / .env > the YAML's `llm:` block > default; flags left unset override nothing."""
    cli = {"concurrency": request.concurrency} if request.concurrency is not None else {}
    return load_settings(config.llm.model_dump(exclude_none=True), cli=cli)


def fingerprint(config: RecipeConfig) -> str:
    """Same recipe config → same fingerprint → a rerun resumes the same run folder."""
    text = json.dumps(config.model_dump(mode="json", exclude_unset=True), ensure_ascii=False, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


# ---- services -------------------------------------------------------------------------------------

class SerialKnowledgeBase:
    """A knowledge base that nodes may query from worker threads (`asyncio.to_thread`), one query at a
    time: retrieval leaves the event loop, so a slow query no longer stalls every item in flight."""

    def __init__(self, kb: Any):
        self.kb = kb
        self._lock = threading.Lock()

    def retrieve(self, query: str, k: int = 5) -> list[Any]:
        with self._lock:
            return self.kb.retrieve(query, k)

    def is_answerable(self, passages: list[Any]) -> bool:
        with self._lock:
            return self.kb.is_answerable(passages)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kb, name)


def embed_config(settings: Settings) -> Any:
    """The embedder's `auto` order from the typed settings (so `.env` works); the model hub's own
    variables (HF_ENDPOINT, HF_HUB_OFFLINE, caches) come from the environment, where the hub reads them."""
    from knowledge.embeddings import EmbedConfig

    hub = EmbedConfig.from_env(os.environ)
    key = settings.embed_api_key or settings.api_key
    return hub.model_copy(update={
        "model": settings.embed_model or hub.model, "use_provider": (settings.embed or "").lower() == "provider",
        "provider": settings.preset, "base_url": settings.embed_base_url or settings.base_url or hub.base_url,
        "api_key": key or hub.api_key, "model_source": settings.model_source or hub.model_source})


def build_knowledge(config: KnowledgeRecipeConfig, settings: Settings, run_root: Path, console: Console) -> Any:
    """Build (or update incrementally) the index over the recipe's knowledge folders; a cross-encoder
    reranker joins when one is in the local model cache."""
    from knowledge.index import KnowledgeBase
    from knowledge.rerank import load_reranker

    folders = [config.path(f) for f in config.folders]
    if not folders:
        raise ConfigError(f"{config.source}: the rag answerer needs knowledge_folder (or --answerer huixiangdou)")
    index_dir = config.path(config.index_dir) if config.index_dir else run_root / "index"
    embedding = embed_config(settings)
    named = config.embedder if config.embedder not in (None, "auto") else None
    # the recipe's own index (no index_dir given) holds its knowledge folders and no others: a folder taken
    # out of the YAML is dropped from it, where it went on answering
    kb = KnowledgeBase.build(folders[0], index_dir, named, embed_config=embedding, text_fields=config.text_fields,
                             reranker=load_reranker("auto", cache_dir=embedding.cache_dir),
                             keep=None if config.index_dir else folders)
    reports = [kb.last_report, *(kb.add(folder) for folder in folders[1:])]
    for gone in (item for report in reports for item in report.folders_dropped):  # gone, or out of the YAML
        console.print(f"index {index_dir}: dropped {gone.path}: {gone.reason}", highlight=False)
    for reread in filter(None, (report.reread_line() for report in reports)):
        console.print(f"index {index_dir}: {reread}", highlight=False)
    stats = kb.stats()
    without_text = len(stats.get("files_not_indexed", []))  # empty or unreadable: no chunk comes from them
    console.print(f"index {index_dir}: {stats.get('chunks', '?')} chunks from {stats.get('files_with_text', '?')} files"
                  f"{f', {without_text} not indexed' if without_text else ''} "
                  f"({stats.get('embedder', {}).get('name', kb.embedder.name)})", highlight=False)
    ours = {str(Path(f).expanduser().resolve()) for f in folders}
    if others := [root for root in stats.get("roots", []) if root not in ours]:  # an earlier run's, `zaoshu kb add`
        console.print(f"[yellow]warning:[/] the index {escape(str(index_dir))} also holds the documents of "
                      f"{escape(', '.join(others))}, not among this run's knowledge folders: they answer too. To "
                      f"answer from {escape(', '.join(sorted(ours)))} alone, give the recipe YAML an index_dir of "
                      f"its own", highlight=False, soft_wrap=True)
    return SerialKnowledgeBase(kb)


def build_services(config: RecipeConfig, settings: Settings, run_root: Path, console: Console) -> dict[str, Any]:
    """The knowledge base, web search and HuixiangDou client the recipe's answerer uses (none for
    recipes that answer from no knowledge)."""
    if not isinstance(config, KnowledgeRecipeConfig):
        return {}
    from knowledge.websearch import make_search

    answerer = config.answerer
    services: dict[str, Any] = {}
    if answerer.backend == "huixiangdou":
        from knowledge.huixiangdou import HuixiangDouClient

        if not answerer.huixiangdou_url:
            raise ConfigError("the huixiangdou answerer needs its server: --huixiangdou-url URL "
                              "(or answerer.huixiangdou_url in the recipe YAML)")
        services["huixiangdou"] = HuixiangDouClient(answerer.huixiangdou_url, timeout=settings.huixiangdou_timeout)
        console.print(f"answerer: HuixiangDou at {answerer.huixiangdou_url}", highlight=False)
    else:
        services["kb"] = build_knowledge(config, settings, run_root, console)
    if answerer.web_fallback != "off":
        key = settings.serper_api_key.get_secret_value() if settings.serper_api_key else None
        services["search"] = make_search(answerer.web_fallback, base_url=settings.serper_base_url, api_key=key)
        console.print(f"web fallback: {answerer.web_fallback}", highlight=False)
    return services


def build_context(config: RecipeConfig, settings: Settings, services: dict[str, Any], *, usage: Any,
                  accepted: Iterable[dict[str, Any]] = (), others: Any = None, pacing_for: Any = None) -> Context:
    """Every client and service a node may use. `accepted` warms the dedupers with earlier samples;
    `others` (graphs.shards.OtherShards) feeds them, before each dedup check, what the run's other shards
    accept while this one runs; `pacing_for` (agents.llm.make_clients) shares one rate budget beyond this
    process (graphs.ray_pacing)."""
    from agents.dedup import Deduper
    from agents.llm import make_clients

    clients = make_clients(settings, usage=usage, pacing_for=pacing_for)
    ctx = Context(clients=clients, deduper_questions=Deduper(), deduper_answers=Deduper(),
                  **context_fields(config, settings), **services)
    learn_samples(ctx, accepted)
    if others is not None:
        ctx.dedup_catch_up = lambda: learn_samples(ctx, others.new_samples())
    return ctx


def learn_samples(ctx: Context, records: Iterable[dict[str, Any]]) -> None:
    """Add accepted samples (ledger records) to the Context's dedupers (graphs.ray_dedup.learn_accepted); a
    record that is not a Sample (a hand-edited line) is passed over: the readers of its ledger report it."""
    from agents.dedup import sample_texts
    from agents.schemas import Sample
    from graphs.ray_dedup import learn_accepted

    accepted = []
    for record in records:
        try:
            texts = sample_texts(Sample.model_validate(record))
        except ValidationError:
            continue
        accepted.append((record["id"], texts.get("question"), texts.get("answer")))
    learn_accepted(ctx, accepted)


def context_fields(config: RecipeConfig, settings: Settings) -> dict[str, Any]:
    """The Context fields that come from the config and settings (no clients, no services)."""
    fields = {"recipe": config.model_dump(mode="json", exclude_unset=True), "max_revisions": config.max_revisions,
              "structured_attempts": settings.structured_attempts, "rng_seed": config.seed,
              "judge": config.critic.judge, "judge_min_score": config.critic.min_score}
    if isinstance(config, KnowledgeRecipeConfig):
        fields["top_k"] = config.top_k
    return fields

