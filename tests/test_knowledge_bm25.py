"""The word segmenter behind BM25: rjieba (jieba-rs) when installed, the pure-Python jieba otherwise,
giving the same words, so an index built with one is searched correctly with the other."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from knowledge import bm25
from knowledge.index import KnowledgeBase
from tests.test_knowledge_index import write_corpus

TEXT = ("却说那孙大圣，自从花果山水帘洞出世，拜菩提祖师学了七十二般变化、筋斗云。"
        "他在Version 2.0的章节里说：「我老孙一万三千五百斤的如意金箍棒，谁人拿得动？」"
        "唐三藏与猪八戒、沙和尚往西天取经，路过火焰山、女儿国，共八十一难。")


@pytest.fixture
def pure_python_jieba(monkeypatch):
    """The segmenter as it is where rjieba cannot be imported."""
    monkeypatch.setitem(sys.modules, "rjieba", None)  # `import rjieba` now raises ImportError
    bm25._segmenter.cache_clear()
    yield
    bm25._segmenter.cache_clear()


def test_rjieba_is_used_when_installed() -> None:
    pytest.importorskip("rjieba")
    assert bm25._segmenter().name == "rjieba"


def test_the_fallback_gives_the_same_words_and_spans(pure_python_jieba) -> None:
    words_py, spans_py = bm25.tokenize(TEXT), bm25.query_terms("哪吒为什么去了哪里？")
    assert bm25._segmenter().name == "jieba"
    bm25._segmenter.cache_clear()
    sys.modules.pop("rjieba")
    pytest.importorskip("rjieba")
    assert bm25._segmenter().name == "rjieba"
    assert bm25.tokenize(TEXT) == words_py
    assert bm25.query_terms("哪吒为什么去了哪里？") == spans_py
    assert {"孙大圣", "金箍棒", "version", "火焰山"} <= set(words_py)


def test_an_index_built_without_rjieba_is_searched_with_it(tmp_path: Path, monkeypatch) -> None:
    folder = write_corpus(tmp_path / "f", {"a.txt": TEXT, "b.txt": "唐僧在长安讲经说法，太宗皇帝亲来听讲。"})
    monkeypatch.setitem(sys.modules, "rjieba", None)
    bm25._segmenter.cache_clear()
    KnowledgeBase.build(folder, tmp_path / "idx", "minilm").close()
    monkeypatch.delitem(sys.modules, "rjieba")
    bm25._segmenter.cache_clear()
    with KnowledgeBase.open(tmp_path / "idx") as kb:
        best = kb.retrieve("如意金箍棒有多重？", k=1)[0]
    assert best.source == "f/a.txt" and best.scores["bm25"] > 0
