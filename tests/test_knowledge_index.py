"""The hybrid index: retrieval, incremental updates, model mismatch, interruption, calibration."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from agents.errors import InputError
from knowledge.bm25 import query_terms
from knowledge.embeddings import HashEmbedder
from knowledge.index import DB_FILE, FAISS_FILE, LEXICAL_FILE, KnowledgeBase

CORPUS = {
    "huaguoshan.txt": "花果山顶上有一块仙石，石头迸裂，生出一只石猴。石猴发现水帘洞，众猴拜他为美猴王。",
    "fangcun.md": "# 拜师学艺\n美猴王漂洋过海，在灵台方寸山斜月三星洞拜菩提祖师为师。祖师给他取名孙悟空，传他七十二般变化和筋斗云。",
    "tiangong.txt": "孙悟空被玉帝封为弼马温，嫌官小反下天宫。后来偷吃蟠桃和太上老君的金丹，大闹天宫，十万天兵也拿他不住。",
    "sub/wuxingshan.txt": "如来佛祖与孙悟空打赌，悟空翻不出如来的手掌心，被压在五行山下五百年。",
    "sub/huoyanshan.txt": "师徒行至火焰山，八百里火焰阻路。孙悟空三调芭蕉扇，向铁扇公主借扇，终于扇灭火焰。",
    "nverguo.txt": "唐僧师徒来到西梁女国，女王愿以一国之富招唐僧为夫，唐僧不为所动。",
}


class CountingEmbedder(HashEmbedder):
    """HashEmbedder that records every text it embeds (and can fail after N calls)."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__(256)
        self.texts: list[str] = []
        self.fail_after = fail_after
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated Ctrl-C")
        self.texts.extend(texts)
        return super().embed(texts)


def write_corpus(folder: Path, corpus: dict[str, str] = CORPUS) -> Path:
    for rel, text in corpus.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def kb_folder(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "xiyou")


def top_source(kb: KnowledgeBase, query: str) -> str:
    return kb.retrieve(query, k=3)[0].source


@pytest.mark.parametrize("weights", [{"dense": 0.0, "bm25": 1.0}, {"dense": 1.0, "bm25": 1.0}])
def test_bm25_and_fusion_find_the_right_passage(kb_folder: Path, tmp_path: Path, weights) -> None:
    KnowledgeBase.build(kb_folder, tmp_path / "idx", "hash").close()
    with KnowledgeBase.open(tmp_path / "idx", weights=weights) as kb:
        assert top_source(kb, "孙悟空在哪里拜师，学会了七十二般变化？") == "xiyou/fangcun.md"
        assert top_source(kb, "铁扇公主的芭蕉扇") == "xiyou/sub/huoyanshan.txt"
        assert top_source(kb, "谁被压在五行山下五百年？") == "xiyou/sub/wuxingshan.txt"
        assert top_source(kb, "女儿国国王想招谁为夫") == "xiyou/nverguo.txt"


def test_passages_carry_ids_titles_offsets_and_each_score(kb_folder: Path, tmp_path: Path) -> None:
    with KnowledgeBase.build(kb_folder, tmp_path / "idx", "hash") as kb:
        passages = kb.retrieve("菩提祖师给美猴王取名孙悟空", k=2)
    best = passages[0]
    assert best.chunk_id == "xiyou/fangcun.md#0"
    assert best.title == "拜师学艺"
    assert (best.start, best.end) == (0, len(CORPUS["fangcun.md"]))
    assert set(best.scores) == {"dense", "bm25", "bigram", "char", "section", "fused"}
    # rank 1 for dense, words, bigrams and characters (weight 0.5); its file (one section) ranks first by
    # words and by bigrams, and sections weigh 2: 1/61 × (1 + 1 + 1 + 0.5 + 2 × 2)
    assert best.score == best.scores["fused"] == pytest.approx(7.5 / 61, abs=1e-6)
    assert best.scores["bm25"] > passages[1].scores["bm25"]
    assert 0 < best.scores["dense"] <= 1


def test_incremental_add_change_delete_and_noop(kb_folder: Path, tmp_path: Path) -> None:
    emb = CountingEmbedder()
    kb = KnowledgeBase.build(kb_folder, tmp_path / "idx", emb)
    assert (kb.last_report.added, kb.last_report.chunks_added) == (6, 6)
    assert kb.stats()["chunks"] == 6

    emb.texts.clear()
    kb = KnowledgeBase.build(kb_folder, tmp_path / "idx", emb)  # unchanged: nothing embedded
    assert (kb.last_report.unchanged, emb.texts) == (6, [])

    os.utime(kb_folder / "nverguo.txt", ns=(1, 1))  # touched, same content: still nothing to embed
    kb = KnowledgeBase.build(kb_folder, tmp_path / "idx", emb)
    assert (kb.last_report.unchanged, emb.texts) == (6, [])

    (kb_folder / "new.txt").write_text("猪八戒在高老庄做女婿，后来拜唐僧为师。", encoding="utf-8")
    (kb_folder / "tiangong.txt").write_text("孙悟空大闹天宫，打到通明殿外。", encoding="utf-8")
    (kb_folder / "sub" / "wuxingshan.txt").unlink()
    kb = KnowledgeBase.build(kb_folder, tmp_path / "idx", emb)
    r = kb.last_report
    assert (r.added, r.changed, r.deleted, r.unchanged) == (1, 1, 1, 4)
    assert sorted(emb.texts) == sorted(["猪八戒在高老庄做女婿，后来拜唐僧为师。", "孙悟空大闹天宫，打到通明殿外。"])
    assert kb.stats()["chunks"] == 6
    assert top_source(kb, "猪八戒在高老庄") == "xiyou/new.txt"
    assert all(p.source != "xiyou/sub/wuxingshan.txt" for p in kb.retrieve("五行山下五百年", k=6))
    assert all("弼马温" not in p.text for p in kb.retrieve("弼马温", k=6))
    kb.close()


def test_add_another_folder_and_add_needs_an_index(kb_folder: Path, tmp_path: Path) -> None:
    other = write_corpus(tmp_path / "other", {"shahe.txt": "沙和尚本是卷帘大将，在流沙河为妖。"})
    with KnowledgeBase.build(kb_folder, tmp_path / "idx", "hash") as kb:
        report = kb.add(other)
        assert (report.added, kb.stats()["chunks"]) == (1, 7)
        assert top_source(kb, "卷帘大将流沙河") == "other/shahe.txt"
        assert kb.stats()["roots"] == [str(kb_folder.resolve()), str(other.resolve())]
    with pytest.raises(InputError, match="No knowledge index at .*: create one with zaoshu kb build"):
        KnowledgeBase.open(tmp_path / "missing")


def test_a_different_model_or_chunk_size_needs_a_rebuild(kb_folder: Path, tmp_path: Path) -> None:
    KnowledgeBase.build(kb_folder, tmp_path / "idx", "hash").close()
    message = (r"was built with embedding model hash-256; you asked for hash-128: rebuild needed: "
               r"zaoshu kb build <folder> --index .*idx --rebuild --embedder hash-128")
    with pytest.raises(InputError, match=message):
        KnowledgeBase.open(tmp_path / "idx", "hash:128")
    with pytest.raises(InputError, match=message):
        KnowledgeBase.build(kb_folder, tmp_path / "idx", "hash:128")
    with pytest.raises(InputError, match=r"chunk size 500/50.*chunk size 300/50.*--rebuild"):
        KnowledgeBase.build(kb_folder, tmp_path / "idx", chunk_size=300)
    with KnowledgeBase.build(kb_folder, tmp_path / "idx", "hash:128", rebuild=True) as kb:
        assert kb.stats()["embedder"]["name"] == "hash-128" and kb.stats()["embedder"]["dim"] == 128
    with KnowledgeBase.open(tmp_path / "idx") as kb:  # no embedder given: the recorded one
        assert kb.embedder.name == "hash-128"


def test_an_interrupted_build_resumes_without_duplicates(tmp_path: Path) -> None:
    corpus = {f"doc{i:03d}.txt": f"第{i}篇文档，讲述取经路上第{i}难的故事。" for i in range(600)}
    folder = write_corpus(tmp_path / "many", corpus)
    # Batches of 64 chunks, a commit every 512: the 9th batch dies after the first commit.
    failing = CountingEmbedder(fail_after=8)
    with pytest.raises(KeyboardInterrupt):
        KnowledgeBase.build(folder, tmp_path / "idx", failing)
    with KnowledgeBase.open(tmp_path / "idx", "hash") as kb:  # consistent: only whole, committed files
        db = kb.store.db
        files, chunks = db.execute("SELECT COUNT(*), COALESCE(SUM(n_chunks), 0) FROM files").fetchone()
        assert (files, chunks) == (512, kb.stats()["chunks"]) == (512, 512)
        assert len(kb.retrieve("第5难", k=3)) == 3  # the stale faiss file is rebuilt on demand
    resumed = CountingEmbedder()
    with KnowledgeBase.build(folder, tmp_path / "idx", resumed) as kb:
        assert (kb.last_report.added, kb.last_report.unchanged) == (88, 512)
        assert len(resumed.texts) == 88
        assert kb.stats()["chunks"] == 600
        assert kb.store.db.execute("SELECT COUNT(DISTINCT source) FROM chunks").fetchone()[0] == 600


def test_index_files_are_sqlite_faiss_and_npz_only_and_no_pickle(kb_folder: Path, tmp_path: Path) -> None:
    KnowledgeBase.build(kb_folder, tmp_path / "idx", "hash").close()
    names = {p.name for p in (tmp_path / "idx").iterdir()}
    own = {DB_FILE, FAISS_FILE, LEXICAL_FILE, f"{LEXICAL_FILE}.vocab.json"}
    assert own <= names <= own | {f"{DB_FILE}-wal", f"{DB_FILE}-shm"}
    (tmp_path / "idx" / LEXICAL_FILE).unlink()  # a lost BM25 cache is rebuilt from the store too
    source = "\n".join(p.read_text(encoding="utf-8") for p in Path("knowledge").glob("*.py"))
    assert not re.search(r"^\s*(import|from)\s+(pickle|dill|joblib)", source, re.MULTILINE)
    (tmp_path / "idx" / FAISS_FILE).unlink()  # a lost faiss file is rebuilt from the store
    with KnowledgeBase.open(tmp_path / "idx") as kb:
        assert top_source(kb, "铁扇公主的芭蕉扇") == "xiyou/sub/huoyanshan.txt"
    assert (tmp_path / "idx" / FAISS_FILE).exists() and (tmp_path / "idx" / LEXICAL_FILE).exists()
    with KnowledgeBase.open(tmp_path / "idx") as kb:  # from the saved matrices: the same ranking
        assert top_source(kb, "铁扇公主的芭蕉扇") == "xiyou/sub/huoyanshan.txt"
        assert kb._lexical().n_sections == len(CORPUS)


def test_hnsw_above_the_threshold_still_retrieves(kb_folder: Path, tmp_path: Path) -> None:
    with KnowledgeBase.build(kb_folder, tmp_path / "idx", "hash", hnsw_threshold=3) as kb:
        assert kb.stats()["vector_index"] == "hnsw"
        from knowledge import vectors
        assert vectors.kind(kb._dense()) == "hnsw"
        assert top_source(kb, "铁扇公主的芭蕉扇") == "xiyou/sub/huoyanshan.txt"


def test_calibrate_stores_a_threshold_that_separates_questions(kb_folder: Path, tmp_path: Path) -> None:
    good = ["孙悟空在哪里学会七十二般变化", "铁扇公主的芭蕉扇", "谁被压在五行山下", "女儿国女王想招谁为夫"]
    bad = ["量子计算机的原理", "今天股市行情怎么样", "如何做红烧肉", "Python 怎么读取文件"]
    with KnowledgeBase.build(kb_folder, tmp_path / "idx", "hash") as kb:
        assert kb.is_answerable(kb.retrieve("如何做红烧肉"))  # before calibration: anything retrieved
        result = kb.calibrate(good, bad)
        assert (result.precision, result.recall, result.n_good, result.n_bad) == (1.0, 1.0, 4, 4)
        assert kb.is_answerable(kb.retrieve("芭蕉扇是谁的"))
        assert not kb.is_answerable(kb.retrieve("红烧肉怎么做才好吃"))
        assert not kb.is_answerable([])
    with KnowledgeBase.open(tmp_path / "idx") as kb:
        assert kb.stats()["answerability"]["threshold"] == result.threshold


def test_a_reranker_reorders_the_fused_candidates(kb_folder: Path, tmp_path: Path) -> None:
    class PreferWomen:
        def score(self, query: str, texts: list[str]) -> list[float]:
            return [1.0 if "女" in t else 0.0 for t in texts]

    KnowledgeBase.build(kb_folder, tmp_path / "idx", "hash").close()
    with KnowledgeBase.open(tmp_path / "idx", reranker=PreferWomen()) as kb:
        best = kb.retrieve("孙悟空", k=2)[0]
    assert best.source == "xiyou/nverguo.txt" and best.scores["rerank"] == 1.0


def test_a_noop_rebuild_of_1000_files_is_fast(tmp_path: Path) -> None:
    corpus = {f"d{i // 100}/f{i:04d}.txt": f"文档{i}：沙僧挑担，八戒牵马。" for i in range(1000)}
    folder = write_corpus(tmp_path / "thousand", corpus)
    KnowledgeBase.build(folder, tmp_path / "idx", "hash").close()
    started = time.perf_counter()
    with KnowledgeBase.build(folder, tmp_path / "idx") as kb:
        elapsed = time.perf_counter() - started
        assert (kb.last_report.unchanged, kb.last_report.chunks_added) == (1000, 0)
    assert elapsed < 2.0, f"no-op rebuild took {elapsed:.2f} s (goal < 1 s)"


def test_openai_embedder_against_a_fake_endpoint(kb_folder: Path, tmp_path: Path, monkeypatch) -> None:
    from knowledge.embeddings import load_embedder
    from tests.fake_openai import FakeOpenAI

    from knowledge.embeddings import EmbedConfig

    with FakeOpenAI(embedding_dim=8) as server:
        monkeypatch.setenv("ZAOSHU_EMBED_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_EMBED_API_KEY", "k")
        emb = load_embedder("openai:BAAI/bge-m3", config=EmbedConfig.from_env(os.environ))
        vectors = emb.embed(["甲", "乙", "甲"])
        assert (emb.name, emb.dim, vectors.shape) == ("openai:BAAI/bge-m3", 8, (3, 8))
        assert np.allclose(vectors[0], vectors[2]) and np.allclose(np.linalg.norm(vectors, axis=1), 1)
        with KnowledgeBase.build(kb_folder, tmp_path / "idx", emb) as kb:
            assert kb.stats()["embedder"]["dim"] == 8
        assert server.embedding_requests[0]["model"] == "BAAI/bge-m3"


def test_a_weak_model_embeds_nothing_and_a_real_model_later_embeds_everything(kb_folder: Path, tmp_path: Path) -> None:
    class WeakEmbedder(CountingEmbedder):
        weak_for_chinese = True
        name = "weak-minilm"

        def __init__(self) -> None:
            super().__init__()
            self.name = "weak-minilm"

    weak = WeakEmbedder()
    with KnowledgeBase.build(kb_folder, tmp_path / "idx", weak) as kb:
        assert weak.texts == [] and weak.calls == 0  # dense weight 0: not one chunk embedded
        assert kb.weights["dense"] == 0.0 and not kb.has_vectors and kb.stats()["vector_index"] == "none"
        assert not (tmp_path / "idx" / FAISS_FILE).exists()
        best = kb.retrieve("铁扇公主的芭蕉扇", k=1)[0]
        assert best.source == "xiyou/sub/huoyanshan.txt" and "dense" not in best.scores
        assert weak.calls == 0  # nor the query
    with KnowledgeBase.open(tmp_path / "idx", WeakEmbedder(), weights={"dense": 0.5}) as kb:
        assert kb.weights["dense"] == 0.0  # nothing to search, whatever was asked
    with pytest.raises(InputError, match="no dense vectors yet.*--embedder hash-256"):
        KnowledgeBase.open(tmp_path / "idx", "hash")

    real = CountingEmbedder()
    with KnowledgeBase.build(kb_folder, tmp_path / "idx", real) as kb:  # a real model later: embed them all now
        assert len(real.texts) == len(CORPUS) and kb.has_vectors and kb.dim == 256
        assert kb.last_report.chunks_added == 0  # the files themselves were unchanged
        assert (tmp_path / "idx" / FAISS_FILE).exists() and kb.weights["dense"] == 1.0
        best = kb.retrieve("铁扇公主的芭蕉扇", k=1)[0]
        assert best.source == "xiyou/sub/huoyanshan.txt" and 0 < best.scores["dense"] <= 1
    (kb_folder / "new.txt").write_text("八戒贪吃，在高老庄招亲。", encoding="utf-8")
    again = CountingEmbedder()
    with KnowledgeBase.build(kb_folder, tmp_path / "idx", again) as kb:  # incremental from now on
        assert again.texts == ["八戒贪吃，在高老庄招亲。"] and kb.stats()["embedder"]["name"] == "hash-256"


UNRELATED = {  # two chapters about neither question, so a term's idf means something
    "road.txt": "师徒四众行到一座高山，山中有一洞，洞里住着一个妖怪，专要吃唐僧肉。",
    "river.txt": "流沙河八百里宽，河中妖怪原是卷帘大将，后来拜唐僧为师，取名沙悟净。",
}


def lexical_kb(tmp_path: Path, corpus: dict[str, str], weights: dict[str, float] | None = None) -> KnowledgeBase:
    """`corpus` built into tmp_path/idx and opened with the lexical rankings alone (and `weights`)."""
    KnowledgeBase.build(write_corpus(tmp_path / "kb", corpus), tmp_path / "idx", "hash").close()
    return KnowledgeBase.open(tmp_path / "idx", weights={"dense": 0.0, **(weights or {})})


def test_question_words_do_not_pull_in_passages_that_merely_contain_them(tmp_path: Path) -> None:
    # A classical text writes 甚么/那里 where a modern question says 什么/哪里: the question words are rare
    # in it, and a passage that happens to hold them must not win on them.
    corpus = {
        "weapon.txt": "行者道：你有甚么兵器？龙王取出一块神铁，乃是如意金箍棒，重一万三千五百斤。行者拿了兵器便走。",
        "chatter.txt": "八戒嚷道：什么？哪里有斋饭？呆子说罢，径往村里化斋去了，师父只得在路旁等他。",
        **UNRELATED,
    }
    with lexical_kb(tmp_path, corpus) as kb:
        assert [p.source for p in kb.retrieve("孙悟空的兵器是什么？从哪里得来的？", k=1)] == ["kb/weapon.txt"]
        assert [p.source for p in kb.retrieve("什么哪里", k=3)] == []  # nothing left to search for
    assert query_terms("哪吒是谁？") == (["哪吒", "是"], "哪吒是 ？")  # a name that starts like 哪 is kept whole


def test_a_question_word_the_text_never_uses_backs_off_to_its_characters(tmp_path: Path) -> None:
    # The question's modern 鬼魂 is not a word of the classical text, which writes 鬼 and 魂 on their own:
    # without the back-off the words ranking has only 乌鸡/国王/半夜 and the banquet wins.
    corpus = {
        "ghost.txt": "三更时分，门外立着一个鬼，浑身水湿，说他的魂被井龙王收着，原是乌鸡国王。",
        "feast.txt": "乌鸡国王设宴，请师徒四众吃斋，满朝文武相陪，直到半夜方散。",
        **UNRELATED,
    }
    with lexical_kb(tmp_path, corpus, {"bm25": 1.0, "bigram": 0.0, "char": 0.0, "section": 0.0}) as kb:  # words alone
        assert [p.source for p in kb.retrieve("乌鸡国王化作鬼魂，半夜去找谁？", k=2)] == ["kb/ghost.txt", "kb/feast.txt"]


def test_the_ray_build_embeds_exactly_the_chunks_the_local_build_stores(tmp_path: Path) -> None:
    from knowledge.ray_build import pending_texts

    chapters = "第一回 灵根育孕\n" + "石猴出世，众猴拜他为王。" * 8 + "\n第二回 悟彻菩提\n" + "拜师学艺，学会七十二变。" * 8
    folder = write_corpus(tmp_path / "xiyou", {"chapters.txt": chapters, **CORPUS})
    texts = pending_texts(folder, tmp_path / "idx", chunk_size=500, overlap=50, text_fields=("text",))
    emb = CountingEmbedder()
    KnowledgeBase.build(folder, tmp_path / "idx", emb)
    assert sorted(texts) == sorted(emb.texts)  # what the cluster embeds is what the index asks for: no miss
    assert [t.split("\n")[0] for t in texts if t.startswith("第")] == ["第一回 灵根育孕", "第二回 悟彻菩提"]
