"""Knowledge bases: load a folder → split (Chinese-aware, by section) → BM25 (words, bigrams, characters;
chunks and sections) + faiss when a real embedding model is available, fused; an optional reranker;
plus the HuixiangDou client and web-search fallbacks.

    from knowledge.embeddings import EmbedConfig
    from knowledge.index import KnowledgeBase
    from knowledge.rerank import load_reranker
    config = EmbedConfig.from_env(os.environ)                             # or built from the typed settings
    kb = KnowledgeBase.build("knowledge/bases/xiyouji", ".kb/xiyouji", embed_config=config)  # incremental
    kb = KnowledgeBase.open(".kb/xiyouji", embed_config=config, reranker=load_reranker("auto"))
    passages = kb.retrieve("孙悟空在哪里学的七十二变？", k=5)  # Passage.scores: bm25, bigram, char, section, fused[, dense]
    kb.is_answerable(passages)

Modules: loaders/readers/encoding (files → Documents), splitter (→ Chunks), embeddings (the `auto`
order) and fetch (model downloads), store (SQLite), vectors (faiss), bm25 (lexical rankings), sync
(incremental builds), progress, index (KnowledgeBase), calibrate, huixiangdou, websearch, rerank,
cli (`zaoshu kb …`). Nothing heavy is imported at package import.
"""
