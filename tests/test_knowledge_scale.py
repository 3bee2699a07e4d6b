"""Lexical fusion (bigrams, sections), the size guard, build progress off a terminal, streamed big files,
partly bad JSONL/CSV files and the cross-encoder reranker (with a stand-in CrossEncoder)."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.errors import ConfigError, InputError
from knowledge import readers, sync
from knowledge.bm25 import LexicalIndex, bigrams, tokenize
from knowledge.cli import app
from knowledge.index import KnowledgeBase
from knowledge.rerank import CrossEncoderReranker, load_reranker
from tests.test_knowledge_index import CORPUS, write_corpus

runner = CliRunner(env={"COLUMNS": "200"})
LINE = re.compile(r"kb build: (\d+)/(\d+) files, ([\d.]+)/([\d.]+) MB \(\d+%\), ([\d,]+) chunks, \d+ chunks/s, ETA \S+")


def test_bigrams_find_what_word_segmentation_misses(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "f", {"a.txt": "孙悟空大闹天宫，十万天兵也拿他不住。", "b.txt": "唐僧在长安讲经说法。"})
    query = "那猴子大闹过哪里"
    assert not set(tokenize(query)) & set(tokenize("孙悟空大闹天宫"))  # jieba: 大|闹 vs 大闹天宫
    assert "大闹" in set(bigrams(query)) & set(bigrams("孙悟空大闹天宫"))
    with KnowledgeBase.build(folder, tmp_path / "idx", "minilm") as kb:  # weak model: lexical only
        best = kb.retrieve(query, k=1)[0]
        assert best.source == "f/a.txt" and best.scores["bm25"] == 0 and best.scores["bigram"] > 0
        kb.weights.update(bigram=0.0, char=0.0, section=0.0)
        assert kb.retrieve(query, k=1) == []  # words alone find nothing


def test_sections_and_fusion_weights() -> None:
    # Two sections; the question names 芭蕉扇 (chunk 1) and 火焰山 (chunk 2): only section A has both.
    texts = ("铁扇公主有芭蕉扇。", "火焰山八百里。", "芭蕉树下乘凉。", "花果山上。")
    lexical = LexicalIndex((10 + i, i // 2, tokenize(t), t) for i, t in enumerate(texts))
    ranks = lexical.rankings("火焰山的芭蕉扇")
    assert ranks["section"][0] == ranks["section"][1] > ranks["section"][2] == ranks["section"][3]
    assert ranks["section"][0] == pytest.approx(2 / 61)  # first by words and by bigrams


def test_chunks_keep_chapter_boundaries_and_retrieval_diversifies(tmp_path: Path) -> None:
    book = "".join(f"第{n}回 第{n}个故事\n" + f"师徒来到第{n}座山，遇见妖怪。" * 40 + "\n" for n in "一二三")
    folder = write_corpus(tmp_path / "book", {"book.txt": book})
    with KnowledgeBase.build(folder, tmp_path / "idx", "minilm") as kb:
        rows = kb.store.db.execute("SELECT section, title, text FROM chunks ORDER BY id").fetchall()
        assert [r[0] for r in rows] == sorted(r[0] for r in rows) and {r[0] for r in rows} == {0, 1, 2}
        for section, title, text in rows:
            assert title == f"第{'一二三'[section]}回 第{'一二三'[section]}个故事"
            assert all(f"第{n}座山" not in text for n in "一二三" if n != "一二三"[section])  # no chunk crosses a chapter
        titles = [p.title for p in kb.retrieve("师徒遇见妖怪", k=3)]
        assert sorted(titles) == sorted({r[1] for r in rows})  # one passage per chapter first
        assert len(rows) > 3 and len(kb.retrieve("师徒遇见妖怪", k=len(rows))) == len(rows)  # then the rest


def test_the_size_guard_skips_a_big_file_and_says_so(tmp_path: Path) -> None:
    """The file left out is said by the build and, later, by `kb stats` (it was not listed there at all)."""
    folder = write_corpus(tmp_path / "f", {"small.txt": "花果山水帘洞。"})
    (folder / "big.txt").write_text("取经路上。" * 80_000, encoding="utf-8")  # 1.2 MB
    index = tmp_path / "idx"
    guard = "big.txt: 1.1 MB is over the size guard (1 MB; raise it with --max-file-mb)"
    result = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash",
                                 "--max-file-mb", "1"])
    assert result.exit_code == 0, result.output
    assert "1 added" in result.stdout and f"skipped {guard}" in result.stderr
    stats = runner.invoke(app, ["stats", "--index", str(index)])
    assert f"not indexed {guard}" in stats.stderr, stats.output
    assert "2 (1 with text)" in stats.stdout
    same = runner.invoke(app, ["build", str(folder), "--index", str(index), "--max-file-mb", "1"])
    assert "0 added, 0 changed, 0 deleted, 1 unchanged" in same.stdout and f"skipped {guard}" in same.stderr
    again = runner.invoke(app, ["build", str(folder), "--index", str(index), "--max-file-mb", "2"])
    assert again.exit_code == 0 and "1 added, 0 changed, 0 deleted, 1 unchanged" in again.stdout
    after = json.loads(runner.invoke(app, ["stats", "--index", str(index), "--json"]).stdout)
    assert after["files_not_indexed"] == [] and after["files_with_text"] == 2


def test_search_after_a_build_that_only_dropped_chunks(tmp_path: Path) -> None:
    """A build whose only change was dropping a file's chunks (now over the size guard) left the BM25 cache
    as it was: the next `kb search` was a KeyError traceback on a chunk no longer in the store."""
    folder = write_corpus(tmp_path / "f", {"small.txt": "花果山水帘洞，美猴王在此称王。"})
    (folder / "big.txt").write_text("取经路上。" * 80_000, encoding="utf-8")  # 1.2 MB
    index = tmp_path / "idx"
    assert runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"]).exit_code == 0
    guarded = runner.invoke(app, ["build", str(folder), "--index", str(index), "--max-file-mb", "1"])
    assert "0 added, 0 changed, 0 deleted, 1 unchanged; 0 chunks indexed" in guarded.stdout, guarded.output
    found = runner.invoke(app, ["search", "取经路上 水帘洞", "--index", str(index), "-k", "3", "--json"])
    assert found.exit_code == 0, found.output
    assert [p["chunk_id"] for p in json.loads(found.stdout)["passages"]] == ["f/small.txt#0"]


def test_build_progress_lines_off_a_terminal(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "xiyou")
    result = runner.invoke(app, ["build", str(folder), "--index", str(tmp_path / "idx"), "--embedder", "hash",
                                 "--progress-every", "0"])
    assert result.exit_code == 0, result.output
    lines = [LINE.search(line) for line in result.stderr.splitlines() if line.startswith("kb build:")]
    assert len(lines) == len(CORPUS) and all(lines)
    assert [int(m.group(1)) for m in lines] == list(range(1, len(CORPUS) + 1))
    assert lines[-1].group(2) == str(len(CORPUS)) and lines[-1].group(5) == str(len(CORPUS))
    quiet = runner.invoke(app, ["build", str(folder), "--index", str(tmp_path / "idx2"), "--embedder", "hash"])
    finals = [line for line in quiet.stderr.splitlines() if line.startswith("kb build:")]
    assert finals and finals[-1].startswith(f"kb build: {len(CORPUS)}/{len(CORPUS)} files")  # the last one always


def test_progress_lines_give_no_eta_from_a_first_tiny_file(tmp_path: Path) -> None:
    """Piped, `kb build` extrapolated its first file to the whole folder: an 8-byte file first said
    'ETA 1h49m' for a build of two seconds. Until 1% of the bytes are read it says 'ETA ?'."""
    folder = write_corpus(tmp_path / "f", {"a.txt": "花果山。"})  # 12 bytes, read first
    (folder / "b.txt").write_text("取经路上遇到妖怪。" * 20_000, encoding="utf-8")  # 540 kB
    result = runner.invoke(app, ["build", str(folder), "--index", str(tmp_path / "idx"), "--embedder", "hash",
                                 "--progress-every", "0"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("kb build:")]
    assert lines[0].startswith("kb build: 1/2 files") and lines[0].endswith("ETA ?"), lines
    assert lines[-1].startswith("kb build: 2/2 files") and lines[-1].endswith("ETA 0s"), lines


def test_a_streamed_big_file_reports_progress_inside_the_file_and_is_searchable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sync, "STREAM_THRESHOLD", 64 * 1024)  # stream above 64 KB instead of 4 MB
    monkeypatch.setattr(readers, "STREAM_THRESHOLD", 64 * 1024)
    monkeypatch.setattr(readers, "BLOCK_CHARS", 20_000)
    text = "".join(f"第{i}段：师徒四人走到第{i}座山前，山上有妖怪。\n" for i in range(8000))
    folder = write_corpus(tmp_path / "big", {"book.txt": text + "最后一段：唐僧取得真经，回到长安。\n"})
    updates = []
    with KnowledgeBase.build(folder, tmp_path / "idx", "minilm", progress=updates.append) as kb:
        assert kb.last_report.chunks_added > 100
        inside = [u for u in updates if u.files_done == 0]
        assert len(inside) >= 5 and inside[-1].bytes_done > inside[0].bytes_done > 0
        assert inside[-1].eta_seconds is not None and updates[-1].bytes_done == updates[-1].bytes_total
        assert "取得真经" in kb.retrieve("唐僧最后取得真经了吗", k=1)[0].text


def test_partial_jsonl_and_csv_keep_their_good_lines(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "qa.jsonl").write_text(
        '{"text": "花果山在东胜神洲。"}\n{"text": "水帘洞\n{"text": "五行山在两界山。"}\nnot json at all\n', encoding="utf-8")
    (folder / "rows.csv").write_text('title,text\n第一条,唐僧骑白马。\n第二条,八戒,多了一列\n第三条,沙僧挑担。\n',
                                     encoding="utf-8")
    (folder / "all_bad.jsonl").write_text("{oops\n[1,\n", encoding="utf-8")
    result = runner.invoke(app, ["build", str(folder), "--index", str(tmp_path / "idx"), "--embedder", "hash"])
    assert result.exit_code == 0, result.output
    err = " ".join(result.stderr.split())
    assert "bad line qa.jsonl: line 2: invalid JSON" in err and "bad line qa.jsonl: line 4: invalid JSON" in err
    assert "bad line rows.csv: line 3: 3 fields, the header has 2" in err
    assert "skipped all_bad.jsonl: no valid JSON line (2 bad; line 1: invalid JSON" in err
    with KnowledgeBase.open(tmp_path / "idx") as kb:
        texts = sorted(t for (t,) in kb.store.db.execute("SELECT text FROM chunks"))
    assert texts == sorted(["花果山在东胜神洲。", "五行山在两界山。", "唐僧骑白马。", "沙僧挑担。"])


def test_a_cross_encoder_reranks_the_fused_candidates(tmp_path: Path, monkeypatch) -> None:
    calls = []

    class StandInCrossEncoder:  # sentence_transformers.CrossEncoder's interface: predict(pairs) -> scores
        def __init__(self, path: str, device: str, local_files_only: bool) -> None:
            calls.append(("load", path, local_files_only))

        def predict(self, pairs, batch_size: int = 32):
            calls.append(("predict", len(pairs)))
            return [1.0 if "女" in text else 0.0 for _, text in pairs]

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(CrossEncoder=StandInCrossEncoder))
    model = tmp_path / "bge-reranker-base"
    model.mkdir()
    reranker = load_reranker(str(model))
    assert isinstance(reranker, CrossEncoderReranker) and calls == []  # loads on first use
    folder = write_corpus(tmp_path / "xiyou")
    KnowledgeBase.build(folder, tmp_path / "idx", "hash").close()
    with KnowledgeBase.open(tmp_path / "idx", reranker=reranker) as kb:
        passages = kb.retrieve("孙悟空", k=2)
    assert passages[0].source == "xiyou/nverguo.txt" and passages[0].scores["rerank"] == 1.0
    assert calls[0] == ("load", str(model), True) and calls[1][0] == "predict" and calls[1][1] >= 2
    assert load_reranker("auto", cache_dir=tmp_path / "empty") is None and load_reranker("none") is None
    with pytest.raises(ConfigError, match="neither a local folder nor in the model cache"):
        load_reranker("nobody/no-reranker", cache_dir=tmp_path / "empty")


def test_search_json_shows_each_signal(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "xiyou")
    runner.invoke(app, ["build", str(folder), "--index", str(tmp_path / "idx"), "--embedder", "minilm"])
    result = runner.invoke(app, ["search", "铁扇公主的芭蕉扇", "--index", str(tmp_path / "idx"), "--json",
                                 "--reranker", "none"])
    assert result.exit_code == 0, result.output
    passage = json.loads(result.stdout)["passages"][0]
    assert passage["source"] == "xiyou/sub/huoyanshan.txt" and set(passage["scores"]) == {"bm25", "bigram", "char", "section", "fused"}
    stats = runner.invoke(app, ["stats", "--index", str(tmp_path / "idx")])
    assert "none: BM25 only" in stats.stdout and "no faiss index" in stats.stdout


def test_search_says_what_is_wrong_instead_of_an_empty_table(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "xiyou")
    index = str(tmp_path / "idx")
    runner.invoke(app, ["build", str(folder), "--index", index, "--embedder", "minilm"])
    blank = runner.invoke(app, ["search", "  ", "--index", index])
    assert isinstance(blank.exception, InputError) and "the query is empty" in str(blank.exception)
    zero = runner.invoke(app, ["search", "芭蕉扇", "--index", index, "-k", "0"])
    assert zero.exit_code == 2 and "-k" in zero.output
    nothing = runner.invoke(app, ["search", "qwxz", "--index", index])
    assert nothing.exit_code == 0 and "no passage in" in nothing.stderr and "┃" not in nothing.stdout


def test_a_wrong_folder_is_refused_before_any_model_is_loaded(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "xiyou")
    a_file = next(folder.rglob("*.txt"))
    built = runner.invoke(app, ["build", str(a_file), "--index", str(tmp_path / "idx"), "--embedder", "nobody/no-model"])
    assert isinstance(built.exception, InputError) and "Not a folder" in str(built.exception)
    runner.invoke(app, ["build", str(folder), "--index", str(tmp_path / "idx"), "--embedder", "hash"])
    added = runner.invoke(app, ["add", str(tmp_path / "missing"), "--index", str(tmp_path / "idx")])
    assert isinstance(added.exception, InputError) and "Knowledge folder not found" in str(added.exception)
