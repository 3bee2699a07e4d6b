"""Splitting: Chinese separators, sizes, offsets, titles."""

from __future__ import annotations

from pathlib import Path

from knowledge.readers import Document
from knowledge.splitter import headings, iter_chunks, split_documents, split_for_pretraining
from tests.docqa_corpus import GUIDE_MD

CHAPTER = Path("/work/shared/reference/xiyouji/chapters/002.txt").read_text(encoding="utf-8")


def test_offsets_point_at_the_chunk_text_and_sizes_hold() -> None:
    chunks = split_documents([Document(CHAPTER, "002.txt")])
    assert len(chunks) > 10
    for i, c in enumerate(chunks):
        assert c.chunk_index == i and c.source == "002.txt"
        assert CHAPTER[c.start:c.end] == c.text
        assert len(c.text) <= 500 + 50  # a lone short line may be joined to the next piece
    assert chunks[0].text.startswith("第二回　悟彻菩提真妙理")
    assert {c.title for c in chunks} == {"第二回　悟彻菩提真妙理　断魔归本合元神"}


def test_chunks_end_at_chinese_sentence_boundaries() -> None:
    text = "".join(f"第{i}句话说的是取经路上的第{i}件事情，情节曲折。" for i in range(60))
    chunks = split_documents([Document(text, "s.txt")], chunk_size=100, overlap=10)
    assert all(c.text.endswith("。") for c in chunks[:-1])
    assert all(len(c.text) <= 100 for c in chunks)


def test_pretraining_preset_is_1024_with_overlap() -> None:
    chunks = split_for_pretraining([Document(CHAPTER, "002.txt")])
    assert max(len(c.text) for c in chunks) <= 1024
    assert max(len(c.text) for c in chunks) > 800
    assert len(chunks) < len(split_documents([Document(CHAPTER, "002.txt")])) / 1.8
    # neighbours overlap (50 characters at most)
    assert any(a.end > b.start for a, b in zip(chunks, chunks[1:]))
    assert all(a.end - b.start <= 50 for a, b in zip(chunks, chunks[1:]))


def test_markdown_headings_are_titles_and_carry_over_parts() -> None:
    doc = "# 总则\n" + "总则内容。" * 40 + "\n## 细则\n" + "细则内容。" * 40
    chunks = split_documents([Document(doc, "rules.md")], chunk_size=100, overlap=0)
    titles = [c.title for c in chunks]
    assert titles[0] == "总则" and titles[-1] == "细则"
    assert titles == sorted(titles, key=lambda t: t != "总则")
    # a big file's second part starts under the heading the first part ended in
    parts = [Document("# 第一部分\n内容。\n", "big.txt", start=0), Document("更多内容。\n", "big.txt", start=11)]
    more = list(iter_chunks(parts, chunk_size=100, overlap=0))
    assert [(c.chunk_index, c.start, c.title) for c in more] == [(0, 0, "第一部分"), (1, 11, "第一部分")]


def test_heading_patterns() -> None:
    text = "第十回　二将军宫门镇鬼\n正文。\n附录　陈光蕊赴任逢灾\n### 三级标题 ##\n第三章\n第三章节的内容很长不是标题吗。"
    assert [t for _, t in headings(text)] == ["第十回　二将军宫门镇鬼", "附录　陈光蕊赴任逢灾", "三级标题", "第三章"]


def test_records_keep_their_index_and_title() -> None:
    docs = [Document("问：甲？答：乙。", "qa.jsonl", record=0, title="一"), Document("丙。", "qa.jsonl", record=3)]
    chunks = split_documents(docs)
    assert [(c.chunk_index, c.record, c.title, c.start, c.end) for c in chunks] == [
        (0, 0, "一", 0, 8), (1, 3, None, 0, 2)]


def test_a_comment_in_a_code_block_is_no_heading_and_titles_lose_their_markup() -> None:
    """Tutorials and manuals quote shell and Python code: its `# comment` lines are not headings, so
    no section is cut there and no title is made of them; `**bold**`, `code` and links in a heading
    are its words only."""
    assert [t for _, t in headings(GUIDE_MD)] == ["数据制作教程", "一、前言", "2. 开启huixiangdou服务", "三、最终数据格式"]
    chunks = split_documents([Document(GUIDE_MD, "guide.md")], by_section=True)
    code = next(c for c in chunks if "curl" in c.text)
    assert "# cURL 测试状态回调接口" in code.text and "huixiangdou_stream" in code.text  # one section, not cut
    assert code.title == "2. 开启huixiangdou服务"
    assert [t for c in chunks for _, _, t in c.marks] == [t for _, t in headings(GUIDE_MD)]
