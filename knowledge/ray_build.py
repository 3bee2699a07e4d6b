"""`zaoshu kb build DIR --index IDX --ray`: embed the chunks with Ray Data across a cluster (optionally
on GPUs), then write the same index as the local build, so queries do not change.

    chunks (here: scan + split, as the local build does)
      └─ ray.data.from_items(texts).map_batches(EmbedBatch, concurrency=N[, num_gpus=1]) ─► vectors
           └─ KnowledgeBase.build(folder, index, PrecomputedEmbedder(...)): the ordinary local build,
              whose embedder looks the vectors up (and embeds locally any text it was not given)

Only files the index does not hold yet (or holds with another size/mtime) are embedded on the
cluster. The vectors are collected on this machine (1M chunks × 512 dims × 4 bytes ≈ 2 GB).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.embeddings import Embedder, load_embedder
from knowledge.loaders import iter_entry, scan_folder
from knowledge.readers import Unreadable
from knowledge.splitter import check_chunking, index_chunks

log = logging.getLogger(__name__)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class EmbedBatch:
    """A Ray Data `map_batches` callable: loads the model once per worker, embeds a batch of texts."""

    def __init__(self, spec: str | None):
        self.embedder = load_embedder(spec)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        vectors = self.embedder.embed([str(t) for t in batch["text"]])
        return {"text": batch["text"], "vector": list(np.asarray(vectors, dtype=np.float32))}


class PrecomputedEmbedder:
    """An Embedder that answers from vectors computed elsewhere; a text it was not given is embedded
    by `inner` (the same model), so the index is the same whatever was precomputed."""

    def __init__(self, inner: Embedder, vectors: dict[bytes, np.ndarray]):
        self.inner = inner
        self.name = inner.name
        self.weak_for_chinese = inner.weak_for_chinese
        self.vectors = vectors
        self.misses = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        found = [self.vectors.get(_digest(t)) for t in texts]
        missing = [i for i, v in enumerate(found) if v is None]
        if missing:
            self.misses += len(missing)
            extra = self.inner.embed([texts[i] for i in missing])
            for i, row in zip(missing, extra):
                found[i] = row
        return np.stack(found).astype(np.float32) if found else np.zeros((0, 0), np.float32)


def pending_texts(folder: Path, index: Path | None, *, chunk_size: int, overlap: int,
                  text_fields: Sequence[str]) -> list[str]:
    """The chunk texts a build of `folder` into `index` will embed (files new or changed since the index;
    every file when `index` is None, a rebuild)."""
    from knowledge.index import DB_FILE
    from knowledge.store import Store

    known: dict[str, Any] = {}
    if index is not None and (index / DB_FILE).exists():
        store = Store(index / DB_FILE)
        try:
            known = store.files(store.root_id(str(Path(folder).expanduser().resolve())))
        finally:
            store.close()
    entries, _ = scan_folder(folder)
    texts: dict[bytes, str] = {}
    for entry in entries:
        row = known.get(entry.rel)
        if entry.size == 0 or (row and row.size == entry.size and row.mtime_ns == entry.mtime_ns):
            continue
        try:
            for chunk in index_chunks(iter_entry(entry, text_fields), chunk_size=chunk_size, overlap=overlap):
                texts.setdefault(_digest(chunk.text), chunk.text)
        except (Unreadable, OSError):
            continue  # the local build records why
    return list(texts.values())


def embed_on_ray(texts: list[str], spec: str | None, *, workers: int | None, gpus: float = 0.0,
                 batch_size: int = 256) -> dict[bytes, np.ndarray]:
    """{digest(text): vector} for every text, embedded by `workers` Ray Data actors."""
    import ray

    if not texts:
        return {}
    n = max(1, workers or int(ray.cluster_resources().get("CPU", 1)))
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI shows its own
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its progress notices; errors still show
    dataset = ray.data.from_items([{"text": t} for t in texts])
    options: dict[str, Any] = {"concurrency": n, "batch_size": batch_size, "fn_constructor_args": (spec,)}
    if gpus:
        options["num_gpus"] = gpus
    out: dict[bytes, np.ndarray] = {}
    for row in dataset.map_batches(EmbedBatch, **options).iter_rows():
        out[_digest(row["text"])] = np.asarray(row["vector"], dtype=np.float32)
    return out


def build_on_ray(folder: Path, index: Path, spec: str | None, *, address: str | None, workers: int | None,
                 gpus: float, chunk_size: int, overlap: int, text_fields: Sequence[str], rebuild: bool,
                 progress=None):
    """The local `KnowledgeBase.build`, with the embedding done on a Ray cluster first. With `rebuild`
    the index is replaced only once the cluster has embedded: a cluster that fails leaves it as it was."""
    from knowledge.index import DB_FILE, KnowledgeBase, remove_index
    from knowledge.ray_cluster import check_address, join_cluster

    check_address(address)  # before any work: a wrong address is one line, at once
    check_chunking(chunk_size, overlap)

    if spec is None and not rebuild and (index / DB_FILE).exists():
        from knowledge.store import Store

        store = Store(index / DB_FILE)
        try:
            spec = store.get_meta("embedder")["name"]  # an existing index keeps its model
        finally:
            store.close()
    inner = load_embedder(spec)
    spec = spec or inner.name
    texts = pending_texts(folder, None if rebuild else index, chunk_size=chunk_size, overlap=overlap,
                          text_fields=text_fields)
    ray, started_here = join_cluster(address)
    try:
        vectors = embed_on_ray(texts, spec, workers=workers, gpus=gpus)
    finally:
        if started_here:
            ray.shutdown()
    if rebuild:
        remove_index(index)
    embedder = PrecomputedEmbedder(inner, vectors)
    kb = KnowledgeBase.build(folder, index, embedder, progress=progress, chunk_size=chunk_size, overlap=overlap,
                             text_fields=text_fields)
    log.info("ray build: %d texts embedded on the cluster, %d here", len(vectors), embedder.misses)
    return kb, len(vectors), embedder.misses
