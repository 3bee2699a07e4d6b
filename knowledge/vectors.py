"""The faiss side of a knowledge index: normalised inner product, flat up to a size, HNSW above it.

The index file is a derived cache of the vectors kept in SQLite: it is written to a temporary name and
renamed atomically, and rebuilt when its generation does not match the store's.

>>> import numpy as np
>>> index = build_index(np.eye(3, dtype=np.float32), np.array([7, 8, 9]), dim=3)
>>> scores, ids = search(index, np.array([[0, 1, 0]], dtype=np.float32), 2); int(ids[0][0]), float(scores[0][0])
(8, 1.0)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

HNSW_THRESHOLD = 50_000  # a flat search over 50k × 384 floats stays in single-digit milliseconds
HNSW_M = 32
HNSW_EF_SEARCH = 128


def _faiss():
    import faiss

    faiss.omp_set_num_threads(1)  # one thread: 18 ms vs 45 ms per single query here (FINDINGS)
    return faiss


def new_index(dim: int, expected: int, hnsw_threshold: int = HNSW_THRESHOLD):
    faiss = _faiss()
    if expected > hnsw_threshold:
        base = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = 80
        base.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        base = faiss.IndexFlatIP(dim)
    return faiss.IndexIDMap2(base)


def build_index(vectors: np.ndarray, ids: np.ndarray, *, dim: int, hnsw_threshold: int = HNSW_THRESHOLD):
    """An index over one matrix (tests, small corpora)."""
    return build_from_pages([(ids, vectors)], dim=dim, total=len(ids), hnsw_threshold=hnsw_threshold)


def build_from_pages(pages: Iterable[tuple[np.ndarray, np.ndarray]], *, dim: int, total: int,
                     hnsw_threshold: int = HNSW_THRESHOLD):
    index = new_index(dim, total, hnsw_threshold)
    for ids, vectors in pages:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def kind(index) -> str:
    faiss = _faiss()
    base = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    return "hnsw" if isinstance(base, faiss.IndexHNSW) else "flat"


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each (n_queries, k); missing neighbours have id -1."""
    if index.ntotal == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, index.ntotal))


def save(index, path: Path) -> None:
    """Write to `path.tmp`, fsync, then rename over `path`: a reader never sees half a file."""
    faiss = _faiss()
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load(path: Path):
    index = _faiss().read_index(str(path))
    base = _faiss().downcast_index(index.index)
    if hasattr(base, "hnsw"):
        base.hnsw.efSearch = HNSW_EF_SEARCH
    return index
