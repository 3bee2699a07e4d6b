"""Knowledge bases: load a folder → split (Chinese-aware) → embed → faiss + BM25, fused; plus the
HuixiangDou client and web-search fallbacks.

    from knowledge.index import KnowledgeBase
    kb = KnowledgeBase.build("knowledge/bases/xiyouji", ".kb/xiyouji")   # incremental on re-runs
    passages = kb.retrieve("孙悟空在哪里学的七十二变？", k=5)            # Passage.scores: dense, bm25, fused
    kb.is_answerable(passages)

Modules: loaders/readers/encoding (files → Documents), splitter (→ Chunks), embeddings, store (SQLite),
vectors (faiss), bm25, sync (incremental builds), index (KnowledgeBase), calibrate, huixiangdou,
websearch, rerank, cli (`zaoshu kb …`). Nothing heavy is imported at package import.
"""
