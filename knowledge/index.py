"""The hybrid knowledge base: faiss (dense) + BM25 (jieba words and character bigrams, on chunks and on
sections) fused by weighted reciprocal rank, then an optional cross-encoder reranker.

A weak dense model (the English MiniLM fallback on Chinese) gets weight 0, and then the build embeds
nothing and no faiss index exists; building again later with a real model embeds every chunk then.

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp()); _ = (folder / "a.txt").write_text("孙悟空大闹天宫。", encoding="utf-8")
>>> _ = (folder / "b.txt").write_text("唐僧在长安讲经。", encoding="utf-8")
>>> kb = KnowledgeBase.build(folder, pathlib.Path(tempfile.mkdtemp()) / "idx", embedder="hash")
>>> [p.source.split("/")[-1] for p in kb.retrieve("谁大闹天宫", k=1)]
['a.txt']
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.errors import InputError
from knowledge import vectors
from knowledge.bm25 import RRF_K, LexicalIndex, diversify, reciprocal_ranks
from knowledge.calibrate import Calibration, fit_threshold
from knowledge.embeddings import EmbedConfig, Embedder, load_embedder
from knowledge.loaders import Skipped, check_folder, nested
from knowledge.passage import Passage
from knowledge.readers import DEFAULT_TEXT_FIELDS, field_flags
from knowledge.splitter import RETRIEVAL_SIZE, check_chunking
from knowledge.store import Store
from knowledge.sync import DEFAULT_MAX_FILE_MB, BuildProgress, BuildReport, Progress, record_dim, sync_folder

log = logging.getLogger(__name__)

DB_FILE = "kb.sqlite"  # also what marks an index folder, never read as knowledge (loaders.OWN_OUTPUT)
FAISS_FILE = "vectors.faiss"
LEXICAL_FILE = "lexical.npz"  # the BM25 matrices: a derived cache of the store, like the faiss file
FORMAT_VERSION = 2  # 2: sections, character bigrams, vectors only with a dense model
# Reciprocal-rank fusion weights. Sections count double: on the 西游记 questions the chapter-level match
# lifted recall@1 more than any chunk-level signal; single characters, the coarsest signal, count half
# (benchmarks/REPORT.md, knowledge section).
DEFAULT_WEIGHTS = {"dense": 1.0, "bm25": 1.0, "bigram": 1.0, "char": 0.5, "section": 2.0}


class KnowledgeBase:
    """Open with `KnowledgeBase.open(dir)`, create or update with `KnowledgeBase.build(folder, dir)`."""

    def __init__(self, index_dir: Path, store: Store, embedder: Embedder, *, weights: dict[str, float] | None = None,
                 reranker: Any = None, hnsw_threshold: int = vectors.HNSW_THRESHOLD) -> None:
        self.index_dir = index_dir
        self.store = store
        self.embedder = embedder
        # A weak dense model (the English MiniLM fallback on Chinese) only adds noise to the fusion:
        # on the 西游记 benchmark it cut BM25's recall@1 from 0.65 to 0.10. So it gets no weight, and an
        # index built with it holds no vectors at all.
        dense_default = 0.0 if getattr(embedder, "weak_for_chinese", False) else 1.0
        self.weights = {**DEFAULT_WEIGHTS, "dense": dense_default, **(weights or {})}
        self.reranker = reranker
        self.hnsw_threshold = hnsw_threshold
        self.last_report: BuildReport | None = None
        self._faiss = None
        self._lexical_index: LexicalIndex | None = None

    # -- creating and opening ---------------------------------------------------------------
    @classmethod
    def build(cls, folder: str | Path, index_dir: str | Path, embedder: Embedder | str | None = None, *,
              progress: Progress | None = None, chunk_size: int = RETRIEVAL_SIZE[0], overlap: int = RETRIEVAL_SIZE[1],
              text_fields: Iterable[str] | None = None, rebuild: bool = False,
              hnsw_threshold: int = vectors.HNSW_THRESHOLD, max_file_mb: float | None = DEFAULT_MAX_FILE_MB,
              embed_config: EmbedConfig | None = None, keep: Iterable[str | Path] | None = None,
              **options: Any) -> KnowledgeBase:
        """Create the index (or update it incrementally) from `folder`; `kb.last_report` says what changed.
        `keep`: the folders this index is for (`folder` among them); the index's other folders are dropped.

        An existing index keeps its embedding model and chunk sizes; asking for others needs `rebuild=True`,
        except that an index without vectors (built with the weak fallback) takes a real model: every
        chunk is embedded then. `text_fields=None`: the index's own (text, content, output for a new one).
        Files over `max_file_mb` are skipped (reported).
        """
        check_folder(folder)  # before the index is created or removed: a wrong folder leaves nothing behind
        check_chunking(chunk_size, overlap)  # before the index is created with them
        index_dir = Path(index_dir).expanduser()
        if index_dir.exists() and not index_dir.is_dir():
            raise InputError(f"--index {index_dir} is a file, not a folder: give a new or an index folder")
        settings = {"chunk_size": chunk_size, "overlap": overlap,
                    "text_fields": list(text_fields) if text_fields is not None else None}
        if rebuild:
            remove_index(index_dir)
        if (index_dir / DB_FILE).exists():
            kb = cls.open(index_dir, embedder, hnsw_threshold=hnsw_threshold, embed_config=embed_config,
                          upgrade=True, **options)
            stored = kb.store.get_meta("settings")
            settings["text_fields"] = settings["text_fields"] or (stored or {}).get("text_fields")
            if stored != settings:
                kb.close()
                raise InputError(f"Index {index_dir} was built with {_fmt(stored)}; you asked for {_fmt(settings)}: "
                                 f"rebuild needed: zaoshu kb build {folder} --index {index_dir} --rebuild"
                                 f"{field_flags(settings['text_fields'])}")
        else:
            settings["text_fields"] = settings["text_fields"] or list(DEFAULT_TEXT_FIELDS)
            index_dir.mkdir(parents=True, exist_ok=True)
            emb = embedder if not isinstance(embedder, (str, type(None))) else load_embedder(embedder, config=embed_config)
            store = Store(index_dir / DB_FILE)
            store.set_meta("format", FORMAT_VERSION)
            store.set_meta("generation", 0)
            store.set_meta("settings", settings)
            kb = cls(index_dir, store, emb, hnsw_threshold=hnsw_threshold, **options)
            store.set_meta("embedder", {"name": emb.name, "dim": None, "weak_for_chinese": emb.weak_for_chinese,
                                        "dense": kb.weights["dense"] > 0})
            store.commit()
        filled = kb.fill_vectors(progress)
        kb.last_report = kb._sync(folder, progress, max_file_mb, keep)
        kb.last_report.chunks_embedded += filled
        return kb

    def add(self, folder: str | Path, *, progress: Progress | None = None,
            max_file_mb: float | None = DEFAULT_MAX_FILE_MB) -> BuildReport:
        """Add (or re-sync) another folder into this index; only new or changed files are indexed."""
        self.last_report = self._sync(folder, progress, max_file_mb)
        return self.last_report

    @classmethod
    def open(cls, index_dir: str | Path, embedder: Embedder | str | None = None, *,
             embed_config: EmbedConfig | None = None, upgrade: bool = False, **options: Any) -> KnowledgeBase:
        """Open an existing index. With no embedder, the one recorded in the index is used.

        `upgrade=True` (what `build` does) lets a real model replace the weak one of an index without vectors.
        """
        index_dir = Path(index_dir).expanduser()
        if not (index_dir / DB_FILE).exists():
            raise InputError(f"No knowledge index at {index_dir}: create one with "
                             f"zaoshu kb build <folder> --index {index_dir}")
        store = Store(index_dir / DB_FILE)
        if store.get_meta("format") != FORMAT_VERSION:
            found = store.get_meta("format")
            store.close()
            raise InputError(f"Index {index_dir} has format {found!r}, this zaoshu reads "
                             f"{FORMAT_VERSION}: rebuild needed: zaoshu kb build <folder> --index {index_dir} --rebuild")
        recorded = store.get_meta("embedder")
        if embedder is None:
            emb = load_embedder(recorded["name"], config=embed_config)
        else:
            emb = load_embedder(embedder, config=embed_config) if isinstance(embedder, str) else embedder
        if emb.name != recorded["name"]:
            upgrading = not recorded.get("dense") and not emb.weak_for_chinese
            if upgrading and upgrade:
                store.set_meta("embedder", {"name": emb.name, "dim": None, "weak_for_chinese": False, "dense": True})
                store.commit()
            elif upgrading:
                store.close()
                raise InputError(f"Index {index_dir} has no dense vectors yet (built with {recorded['name']}); add them "
                                 f"with: zaoshu kb build <folder> --index {index_dir} --embedder {emb.name}")
            elif recorded.get("dense") or not emb.weak_for_chinese:
                store.close()
                raise InputError(
                    f"Index {index_dir} was built with embedding model {recorded['name']}; you asked for {emb.name}: "
                    f"rebuild needed: zaoshu kb build <folder> --index {index_dir} --rebuild --embedder {emb.name}")
        kb = cls(index_dir, store, emb, **options)
        if not store.get_meta("embedder").get("dense"):
            kb.weights["dense"] = 0.0  # no vectors to search, whatever was asked
        return kb

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def has_vectors(self) -> bool:
        """True when the index keeps dense vectors (a real model); False for a lexical-only index."""
        return bool(self.store.get_meta("embedder").get("dense"))

    def _sync(self, folder: str | Path, progress: Progress | None, max_file_mb: float | None,
              keep: Iterable[str | Path] | None = None) -> BuildReport:
        """Sync `folder`, and drop the folders of the index that are gone (moved, renamed, deleted): their
        chunks would be searched, and a moved folder's files found twice. With `keep`, drop the folders not
        in it too."""
        root = Path(folder).expanduser().resolve()
        kept = None if keep is None else {str(Path(f).expanduser().resolve()) for f in keep}
        why = {path: "the folder is gone" if not Path(path).is_dir() else "not among the knowledge folders now"
               for path in self.store.roots() if not Path(path).is_dir() or (kept is not None and path not in kept)}
        dropped = {path: (reason, self.store.drop_root(path)) for path, reason in why.items()}
        if dropped:
            self.store.bump_generation()
            self.store.commit()
        if hit := nested(root, map(Path, self.store.roots())):
            inner, outer = hit
            inside = f"is inside {outer}" if inner == root else f"holds {inner}"
            raise InputError(f"{root} {inside}, which the index {self.index_dir} already has: its files would "
                             f"be indexed twice; give folders that do not nest")
        settings = self.store.get_meta("settings")
        report = sync_folder(self.store, self.embedder if self.has_vectors else None, folder,
                             chunk_size=settings["chunk_size"], overlap=settings["overlap"],
                             text_fields=tuple(settings["text_fields"]), progress=progress, max_file_mb=max_file_mb)
        for path, (reason, (files, chunks)) in dropped.items():
            report.folders_dropped.append(Skipped(path, f"{reason}: its {files} files ({chunks} chunks) are dropped "
                                                        f"from the index"))
            report.chunks_deleted += chunks
        if report.touched or (self.has_vectors and self._faiss_stale()):
            self._faiss, self._lexical_index = None, None
            if self.has_vectors:
                self._save_faiss()
        if self._lexical_stale():
            self._lexical_index = None
            self._lexical()  # built and saved now, so the first search does not pay for it
        return report

    def fill_vectors(self, progress: Progress | None = None, batch_size: int = 64) -> int:
        """Embed the chunks that have no vector yet (all of them when a real model replaces the weak
        fallback; the rest after an interrupted run); return how many. Batched, committed per batch."""
        if not self.has_vectors:
            return 0
        missing = self.store.count_missing_vectors()
        if not missing:
            return 0
        log.info("embedding %d chunks with %s", missing, self.embedder.name)
        started, done = time.perf_counter(), 0
        for page in self.store.iter_texts(missing_vectors=True, page=batch_size):
            matrix = self.embedder.embed([text for _, text in page])
            record_dim(self.store, matrix.shape[1])
            self.store.set_vectors([chunk_id for chunk_id, _ in page], matrix)
            self.store.bump_generation()
            self.store.commit()
            done += len(page)
            if progress:
                progress(BuildProgress(0, 0, done, missing, done, time.perf_counter() - started, "embedding"))
        self._faiss = None
        self._save_faiss()
        return done

    # -- the two indexes ---------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        return self.store.get_meta("embedder")["dim"]

    def _faiss_stale(self) -> bool:
        return (self.store.get_meta("faiss_generation") != self.store.get_meta("generation")
                or not (self.index_dir / FAISS_FILE).exists())

    def _build_faiss(self):
        total = self.store.count_chunks()
        dim = self.dim or 1
        return vectors.build_from_pages(self.store.iter_vectors(dim) if total and self.dim else [], dim=dim,
                                        total=total, hnsw_threshold=self.hnsw_threshold)

    def _save_faiss(self) -> None:
        self._faiss = self._build_faiss()
        vectors.save(self._faiss, self.index_dir / FAISS_FILE)
        self.store.set_meta("faiss_generation", self.store.get_meta("generation"))
        self.store.commit()

    def _dense(self):
        if self._faiss is None:
            if self._faiss_stale():
                log.info("faiss index is older than the store (interrupted build?): rebuilding it")
                self._save_faiss()
            else:
                self._faiss = vectors.load(self.index_dir / FAISS_FILE)
        return self._faiss

    def _lexical_stale(self) -> bool:
        return (self.store.get_meta("lexical_generation") != self.store.get_meta("generation")
                or not (self.index_dir / LEXICAL_FILE).exists())

    def _lexical(self) -> LexicalIndex:
        if self._lexical_index is not None:
            return self._lexical_index
        path = self.index_dir / LEXICAL_FILE
        if not self._lexical_stale():
            try:
                self._lexical_index = LexicalIndex.load(path)
                return self._lexical_index
            except (OSError, ValueError, KeyError) as exc:
                log.warning("BM25 cache %s unreadable (%s): rebuilding it", path, exc)
        keys: dict[tuple[int, str, int], int] = {}
        self._lexical_index = LexicalIndex(
            (chunk_id, keys.setdefault((root_id, rel, section), len(keys)), tokens.split(" ") if tokens else [], text)
            for chunk_id, root_id, rel, section, text, tokens in self.store.iter_lexical())
        try:
            self._lexical_index.save(path)
            self.store.set_meta("lexical_generation", self.store.get_meta("generation"))
            self.store.commit()
        except OSError as exc:  # a read-only index folder still searches, from memory
            log.warning("could not save the BM25 cache %s: %s", path, exc)
        return self._lexical_index

    # -- retrieval ---------------------------------------------------------------------------
    def retrieve(self, query: str, k: int = 5, *, candidates: int | None = None) -> list[Passage]:
        """The k best passages by weighted reciprocal-rank fusion, at most one per section until every
        section among the best had its turn (then the rest), no two with the same text, reranked when a
        reranker is configured.

        Each passage carries `scores`: "bm25" (words), "bigram", "char", "section" (its section's fused rank
        score), "dense" (cosine, when the index has vectors), "fused", and "rerank" with a reranker.
        """
        if not query.strip() or k <= 0:
            return []
        lexical = self._lexical()
        if not len(lexical):
            return []
        pool = candidates or max(4 * k, 20)
        ranks = lexical.rankings(query)
        w = self.weights
        fused = w.get("section", 2.0) * ranks["section"]
        for name in ("bm25", "bigram", "char"):
            if w.get(name, 0.0) > 0:
                fused += w[name] * reciprocal_ranks(ranks[name])
        query_vec = None
        if self.has_vectors and w.get("dense", 0.0) > 0:
            query_vec = self.embedder.embed([query])
            dense_scores, dense_ids = vectors.search(self._dense(), query_vec, pool)
            found = dense_ids[0][dense_ids[0] >= 0]
            at = np.minimum(np.searchsorted(lexical.ids, found), len(lexical.ids) - 1)  # ids are ascending
            for rank, (chunk_id, i) in enumerate(zip(found, at), 1):
                if lexical.ids[i] == chunk_id:
                    fused[i] += w["dense"] / (RRF_K + rank)
        order = np.argsort(-fused, kind="stable")[: pool * 4]
        order = [i for i in order if fused[i] > 0]
        want = pool if self.reranker else k
        # twice as many: a chunk whose text a better one has (a copied file, 手册.pdf and 手册(1).pdf) is left
        # out, and the next one takes its place; the first `want` are those diversify(…, want) would give
        chosen = diversify(order, lexical.section_of, 2 * want)
        rows = self.store.chunks_by_id([int(lexical.ids[i]) for i in chosen], self.dim)
        passages: list[Passage] = []
        texts: set[str] = set()
        for i in chosen:
            row = rows[int(lexical.ids[i])]
            if len(passages) == want:
                break
            if row.text in texts:
                continue
            texts.add(row.text)
            scores = {name: round(float(ranks[name][i]), 6) for name in ("bm25", "bigram", "char", "section")}
            scores["fused"] = round(float(fused[i]), 6)
            if row.vector is not None:
                query_vec = query_vec if query_vec is not None else self.embedder.embed([query])
                scores["dense"] = round(float(row.vector @ query_vec[0]), 6)
            passages.append(Passage(text=row.text, source=row.source, chunk_id=f"{row.source}#{row.chunk_index}",
                                    title=row.title, score=scores["fused"], scores=scores, start=row.start, end=row.end))
        if self.reranker is not None and passages:
            for passage, score in zip(passages, self.reranker.score(query, [p.text for p in passages])):
                passage.scores["rerank"] = round(float(score), 6)
                passage.score = passage.scores["rerank"]
            passages.sort(key=lambda p: -p.score)
        return passages[:k]

    # -- answerability -----------------------------------------------------------------------
    def is_answerable(self, passages: Sequence[Passage]) -> bool:
        """True when the best passage's calibrated signal reaches the threshold stored with the index.

        Before `calibrate`, any retrieved passage counts as answerable.
        """
        if not passages:
            return False
        cal = self.store.get_meta("answerability")
        if not cal:
            return True
        return max(p.scores.get(cal["signal"], 0.0) for p in passages) >= cal["threshold"]

    def calibrate(self, good: Sequence[str], bad: Sequence[str], *, k: int = 5,
                  signals: Sequence[str] | None = None) -> Calibration:
        """Fit and store the threshold from answerable (`good`) and unanswerable (`bad`) questions;
        the signal (dense, bm25 or bigram score of the best passage) that separates them best wins."""
        signals = signals or (("dense", "bm25", "bigram") if self.has_vectors else ("bm25", "bigram"))
        def best(questions: Sequence[str]) -> dict[str, list[float]]:
            out: dict[str, list[float]] = {s: [] for s in signals}
            for question in questions:
                passages = self.retrieve(question, k)
                for s in signals:
                    out[s].append(max((p.scores.get(s, 0.0) for p in passages), default=0.0))
            return out

        good_scores, bad_scores = best(good), best(bad)
        fits = [fit_threshold(good_scores[s], bad_scores[s], s) for s in signals]
        chosen = max(fits, key=lambda c: (c.f1, c.accuracy))
        self.store.set_meta("answerability", chosen.to_dict())
        self.store.commit()
        return chosen

    # -- stats -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        db = self.store.db
        files = db.execute("SELECT COUNT(*), SUM(status = 'ok') FROM files").fetchone()
        problems = db.execute("SELECT r.path, f.rel, f.status FROM files f JOIN roots r ON r.id = f.root_id "
                              "WHERE f.status != 'ok' ORDER BY r.id, f.rel").fetchall()
        bad_lines = db.execute("SELECT r.path, b.rel, b.reason FROM bad_lines b JOIN roots r ON r.id = b.root_id "
                               "ORDER BY r.id, b.rel, b.rowid").fetchall()
        chars = db.execute("SELECT COALESCE(SUM(LENGTH(text)), 0) FROM chunks").fetchone()[0]
        n_chunks = self.store.count_chunks()
        size = sum(p.stat().st_size for p in self.index_dir.iterdir() if p.is_file())
        return {
            "index": str(self.index_dir),
            "embedder": self.store.get_meta("embedder"),
            "settings": self.store.get_meta("settings"),
            "roots": self.store.roots(),
            "files": files[0],
            "files_with_text": files[1] or 0,
            "files_not_indexed": [{"folder": root, "path": rel, "reason": status} for root, rel, status in problems],
            "bad_lines": [{"folder": root, "path": rel, "reason": reason} for root, rel, reason in bad_lines],
            "chunks": n_chunks,
            "characters": chars,
            "vector_index": ("hnsw" if n_chunks > self.hnsw_threshold else "flat") if self.has_vectors else "none",
            "answerability": self.store.get_meta("answerability"),
            "bytes_on_disk": size,
        }


def has_vectors(index_dir: str | Path) -> bool:
    """Whether the index at `index_dir` keeps dense vectors (False for a BM25-only index or none at all)."""
    path = Path(index_dir).expanduser() / DB_FILE
    if not path.exists():
        return False
    store = Store(path)
    try:
        return bool((store.get_meta("embedder") or {}).get("dense"))
    finally:
        store.close()


def remove_index(index_dir: Path) -> None:
    """Delete an index's own files (never anything else in the folder)."""
    for name in (DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm", FAISS_FILE, f"{FAISS_FILE}.tmp", LEXICAL_FILE,
                 f"{LEXICAL_FILE}.vocab.json", f"{LEXICAL_FILE}.tmp.npz", f"{LEXICAL_FILE}.vocab.tmp"):
        path = index_dir / name
        if path.exists():
            path.unlink()


def _fmt(settings: dict | None) -> str:
    if not settings:
        return "unknown settings"
    return f"chunk size {settings['chunk_size']}/{settings['overlap']}, fields {','.join(settings['text_fields'])}"
