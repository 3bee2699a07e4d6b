"""Knowledge-base benchmark on the public-domain 西游记 (101 chapter files, ~730k characters).

    python -m benchmarks.bench_knowledge                 # embedder "auto" (offline: bundled MiniLM)
    python -m benchmarks.bench_knowledge --embedder hash # no model, seconds

Reports recall@1/@5 of dense, BM25 and fused retrieval on benchmarks/xiyouji_questions.jsonl (a hit is
a passage from one of the question's gold chapters), build throughput (chunks/s), the time of a no-op
`kb build` on 1,000 files (goal < 1 s) and query latency p50/p95. Prints a markdown section and writes
benchmarks/results/knowledge.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

from knowledge.embeddings import load_embedder
from knowledge.index import KnowledgeBase

HERE = Path(__file__).resolve().parent
CHAPTERS = Path("/work/shared/reference/xiyouji/chapters")
MODES = {"dense": {"dense": 1.0, "bm25": 0.0}, "bm25": {"dense": 0.0, "bm25": 1.0}, "fused": {"dense": 1.0, "bm25": 1.0}}


def recall(kb: KnowledgeBase, questions: list[dict], weights: dict[str, float]) -> dict:
    kb.weights = dict(weights)
    at1 = at5 = 0
    misses = []
    for q in questions:
        files = [p.source.rsplit("/", 1)[-1] for p in kb.retrieve(q["question"], k=5)]
        hit1 = bool(files) and files[0] in q["gold"]
        hit5 = any(f in q["gold"] for f in files)
        at1 += hit1
        at5 += hit5
        if not hit5:
            misses.append(q["question"])
    n = len(questions)
    return {"recall@1": round(at1 / n, 3), "recall@5": round(at5 / n, 3), "missed@5": misses}


def noop_rebuild_seconds(workdir: Path, n_files: int = 1000) -> float:
    folder = workdir / "thousand"
    for i in range(n_files):
        path = folder / f"d{i // 100:02d}" / f"f{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"第{i}号文档：师徒四人行至第{i}处，遇妖降妖。", encoding="utf-8")
    KnowledgeBase.build(folder, workdir / "idx1000", "hash").close()
    started = time.perf_counter()
    with KnowledgeBase.build(folder, workdir / "idx1000") as kb:
        assert kb.last_report.unchanged == n_files and kb.last_report.chunks_added == 0
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="auto")
    parser.add_argument("--folder", type=Path, default=CHAPTERS)
    parser.add_argument("--questions", type=Path, default=HERE / "xiyouji_questions.jsonl")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "knowledge.json")
    parser.add_argument("--index", type=Path, default=None,
                        help="Keep the index here (an existing one is reused: build time is then not measured).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    questions = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        index = args.index or work / "idx"
        embedder = load_embedder(args.embedder)
        started = time.perf_counter()
        kb = KnowledgeBase.build(args.folder, index, embedder)
        build_s = time.perf_counter() - started
        report = kb.last_report
        started = time.perf_counter()
        KnowledgeBase.build(args.folder, index, embedder).close()
        noop_chapters_s = time.perf_counter() - started

        default_weights = dict(kb.weights)
        modes = {**MODES, "fused": default_weights}
        results = {mode: recall(kb, questions, weights) for mode, weights in modes.items()}
        sweep = {str(w): recall(kb, questions, {"dense": w, "bm25": 1.0}) for w in (0.0, 0.1, 0.25, 0.5, 1.0)}
        kb.weights = default_weights
        latencies = []
        for q in questions * 3:
            t = time.perf_counter()
            kb.retrieve(q["question"], k=5)
            latencies.append((time.perf_counter() - t) * 1000)
        latencies.sort()
        stats = kb.stats()
        kb.close()
        noop_1000_s = noop_rebuild_seconds(work)

    out = {
        "embedder": embedder.name, "weak_for_chinese": embedder.weak_for_chinese,
        "corpus": {"folder": str(args.folder), "files": stats["files"], "chunks": stats["chunks"],
                   "characters": stats["characters"], "chunking": stats["settings"]},
        "questions": len(questions),
        "retrieval": results,
        "fused_weights": default_weights,
        "dense_weight_sweep": {w: {k: v for k, v in r.items() if k != "missed@5"} for w, r in sweep.items()},
        "build": {"seconds": round(build_s, 2), "chunks_added": report.chunks_added,
                  "chunks_per_second": round(report.chunks_added / build_s, 1) if report.chunks_added else None},
        "noop_rebuild_seconds": {"xiyouji_101_files": round(noop_chapters_s, 3), "1000_files": round(noop_1000_s, 3)},
        "query_latency_ms": {"p50": round(statistics.median(latencies), 1),
                             "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 1), "n": len(latencies)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    lines = [
        "## Knowledge base benchmark (西游记)",
        "",
        f"Embedding model: `{out['embedder']}`" + (" (English MiniLM fallback: weak on Chinese)" if out["weak_for_chinese"] else "")
        + f"; {stats['files']} files, {stats['chunks']} chunks of ≤{stats['settings']['chunk_size']} characters; "
          f"{len(questions)} questions with gold chapters.",
        "",
        "| retriever | recall@1 | recall@5 |",
        "|---|---|---|",
        *[f"| {mode} | {r['recall@1']:.3f} | {r['recall@5']:.3f} |" for mode, r in results.items()],
        "",
        f"Fused uses weights {default_weights}. Dense-weight sweep (BM25 weight 1): "
        + ", ".join(f"{w}: {r['recall@1']:.3f}/{r['recall@5']:.3f}" for w, r in sweep.items()) + " (recall@1/@5).",
        "",
        f"- build: {out['build']['seconds']} s, {out['build']['chunks_per_second']} chunks/s",
        f"- no-op `kb build`: {out['noop_rebuild_seconds']['xiyouji_101_files']} s on 101 files, "
        f"{out['noop_rebuild_seconds']['1000_files']} s on 1,000 files (goal < 1 s)",
        f"- query latency (fused, k=5): p50 {out['query_latency_ms']['p50']} ms, p95 {out['query_latency_ms']['p95']} ms",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
