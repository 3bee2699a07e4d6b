"""`zaoshu kb …` through typer's CliRunner (the root CLI turns ZaoshuError into one red line)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.errors import InputError
from knowledge.cli import app
from tests.test_knowledge_index import CORPUS, write_corpus

runner = CliRunner(env={"COLUMNS": "200"})  # no wrapping of rich output


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    folder = write_corpus(tmp_path / "xiyou")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    index = tmp_path / "idx"
    result = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"])
    assert result.exit_code == 0, result.output
    assert "7 added, 0 changed, 0 deleted, 0 unchanged; 6 chunks indexed" in result.stdout
    assert "6 embedded with hash-256" in result.stdout
    assert "skipped broken.pdf: corrupt PDF" in result.stderr
    return folder, index


def test_search_json_and_table(built: tuple[Path, Path]) -> None:
    _, index = built
    result = runner.invoke(app, ["search", "铁扇公主的芭蕉扇", "--index", str(index), "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["query"] == "铁扇公主的芭蕉扇" and data["answerable"] is True
    assert [p["chunk_id"] for p in data["passages"]][0] == "xiyou/sub/huoyanshan.txt#0"
    assert set(data["passages"][0]["scores"]) == {"dense", "bm25", "bigram", "char", "section", "fused"}

    table = runner.invoke(app, ["search", "拜师学艺", "--index", str(index), "-k", "1"])
    assert table.exit_code == 0
    assert "xiyou/fangcun.md#0" in table.stdout and "拜师学艺" in table.stdout and "fused" in table.stdout


def test_a_copied_file_takes_one_place_in_the_results_not_two(tmp_path: Path) -> None:
    """手册.pdf next to 手册(1).pdf: every passage of the copy came right after its original, so `kb search`
    (and the answerer's top k) showed each text twice and half as many different passages."""
    folder = write_corpus(tmp_path / "xiyou")
    (folder / "huoyanshan(1).txt").write_text(CORPUS["sub/huoyanshan.txt"], encoding="utf-8")
    index = tmp_path / "idx"
    assert runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"]).exit_code == 0
    result = runner.invoke(app, ["search", "孙悟空借芭蕉扇", "--index", str(index), "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    passages = json.loads(result.stdout)["passages"]
    assert len(passages) == 3 and len({p["text"] for p in passages}) == 3
    assert passages[0]["text"] == CORPUS["sub/huoyanshan.txt"]  # the best text still comes first, once


def test_rebuild_noop_add_stats_calibrate(built: tuple[Path, Path], tmp_path: Path) -> None:
    folder, index = built
    again = runner.invoke(app, ["build", str(folder), "--index", str(index)])
    assert "0 added, 0 changed, 0 deleted, 7 unchanged; 0 chunks indexed" in again.stdout
    assert "skipped broken.pdf: corrupt PDF" in again.stderr  # still reported, from the manifest

    other = write_corpus(tmp_path / "other", {"shahe.txt": "沙和尚本是卷帘大将。"})
    added = runner.invoke(app, ["add", str(other), "--index", str(index)])
    assert added.exit_code == 0 and "1 added" in added.stdout

    stats = json.loads(runner.invoke(app, ["stats", "--index", str(index), "--json"]).stdout)
    assert (stats["files"], stats["files_with_text"], stats["chunks"]) == (8, 7, 7)
    assert stats["files_not_indexed"][0]["path"] == "broken.pdf"
    assert stats["embedder"]["name"] == "hash-256"

    good, bad = tmp_path / "good.json", tmp_path / "bad.txt"
    good.write_text(json.dumps(["铁扇公主的芭蕉扇", "谁被压在五行山下", "女儿国女王想招谁为夫"], ensure_ascii=False),
                    encoding="utf-8")
    bad.write_text("量子计算机的原理\n如何做红烧肉\n今天股市行情\n", encoding="utf-8")
    cal = runner.invoke(app, ["calibrate", "--index", str(index), "--good", str(good), "--bad", str(bad), "--json"])
    assert cal.exit_code == 0, cal.output
    assert json.loads(cal.stdout)["recall"] == 1.0
    table = runner.invoke(app, ["stats", "--index", str(index)])
    assert "hash-256 (dim 256)" in table.stdout and "not calibrated" not in table.stdout


def test_user_mistakes_raise_input_errors(tmp_path: Path, built: tuple[Path, Path]) -> None:
    folder, index = built
    missing = runner.invoke(app, ["build", str(tmp_path / "nope"), "--index", str(tmp_path / "i2"), "--embedder", "hash"])
    assert isinstance(missing.exception, InputError) and "Knowledge folder not found" in str(missing.exception)
    assert not (tmp_path / "i2").exists()  # no empty index for search and stats to take as valid
    no_index = runner.invoke(app, ["search", "问题", "--index", str(tmp_path / "none")])
    assert isinstance(no_index.exception, InputError)
    other_model = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash:64"])
    assert isinstance(other_model.exception, InputError) and "rebuild needed" in str(other_model.exception)
    assert len(CORPUS) == 6


def test_a_bad_line_of_a_file_that_gives_no_text_does_not_say_its_good_lines_are_indexed(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "xiyou")
    (folder / "faq.jsonl").write_text('{"question": "芭蕉扇在哪？"}\n{oops\n', encoding="utf-8")
    (folder / "rows.jsonl").write_text('{"text": "铁扇公主住在翠云山芭蕉洞。"}\n{oops\n', encoding="utf-8")
    result = runner.invoke(app, ["build", str(folder), "--index", str(tmp_path / "idx"), "--embedder", "hash"])
    assert result.exit_code == 0, result.output
    assert "bad line faq.jsonl: line 2: invalid JSON" in result.stderr
    assert "bad line rows.jsonl: line 2: invalid JSON" in result.stderr
    lines = {line.split(":")[0].strip(): line for line in result.stderr.splitlines() if "bad line" in line}
    assert lines["bad line faq.jsonl"].endswith("(skipped, as is its file)"), result.stderr
    assert lines["bad line rows.jsonl"].endswith("(skipped, the good lines are indexed)"), result.stderr


def test_bad_lines_stay_listed_by_stats_and_by_a_build_that_does_not_read_their_file_again(tmp_path: Path) -> None:
    """`kb build` reported a JSONL's bad lines once: `kb stats` and the next build did not list them, so a
    user later could not see which lines were dropped."""
    folder = write_corpus(tmp_path / "xiyou")
    (folder / "faq.jsonl").write_text('{"text": "铁扇公主住在翠云山芭蕉洞。"}\n{oops\n{"title": "无正文"}\n',
                                      encoding="utf-8")
    (folder / "rows.csv").write_text("text,note\n牛魔王是铁扇公主的丈夫。,甲\n红孩儿,乙,多余\n", encoding="utf-8")
    index = tmp_path / "idx"
    bad = ["bad line faq.jsonl: line 2: invalid JSON (Expecting property name enclosed in double quotes at column 2) "
           "(skipped, the good lines are indexed)",
           "bad line faq.jsonl: line 3: no text in fields text, content, output (skipped, the good lines are indexed)",
           "bad line rows.csv: line 3: 3 fields, the header has 2 (skipped, the good lines are indexed)"]
    first = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"])
    assert first.exit_code == 0, first.output
    assert all(line in first.stderr for line in bad), first.stderr

    again = runner.invoke(app, ["build", str(folder), "--index", str(index)])
    assert "0 added, 0 changed, 0 deleted, 8 unchanged" in again.stdout
    assert all(line in again.stderr for line in bad), again.stderr
    table = runner.invoke(app, ["stats", "--index", str(index)])
    assert all(line in table.stderr for line in bad), table.stderr
    listed = json.loads(runner.invoke(app, ["stats", "--index", str(index), "--json"]).stdout)["bad_lines"]
    assert [(item["path"], item["reason"]) for item in listed] == [
        ("faq.jsonl", "line 2: invalid JSON (Expecting property name enclosed in double quotes at column 2)"),
        ("faq.jsonl", "line 3: no text in fields text, content, output"),
        ("rows.csv", "line 3: 3 fields, the header has 2")]

    (folder / "faq.jsonl").write_text('{"text": "铁扇公主住在翠云山芭蕉洞。"}\n', encoding="utf-8")  # fixed
    (folder / "rows.csv").unlink()
    fixed = runner.invoke(app, ["build", str(folder), "--index", str(index)])
    assert "0 added, 1 changed, 1 deleted" in fixed.stdout and "bad line" not in fixed.stderr, fixed.output
    assert json.loads(runner.invoke(app, ["stats", "--index", str(index), "--json"]).stdout)["bad_lines"] == []


@pytest.mark.parametrize("nested", ["inside", "around"])
def test_a_folder_nested_with_one_the_index_holds_is_refused_not_indexed_twice(tmp_path: Path, nested: str) -> None:
    outer = write_corpus(tmp_path / "docs")
    inner = write_corpus(outer / "more", {"shahe.txt": "沙和尚本是卷帘大将，因打碎琉璃盏被贬流沙河。"})
    first, second = (outer, inner) if nested == "inside" else (inner, outer)
    index = tmp_path / "idx"
    assert runner.invoke(app, ["build", str(first), "--index", str(index), "--embedder", "hash"]).exit_code == 0
    before = json.loads(runner.invoke(app, ["stats", "--index", str(index), "--json"]).stdout)["chunks"]
    result = runner.invoke(app, ["add", str(second), "--index", str(index)])
    assert isinstance(result.exception, InputError), result.output
    assert str(first.resolve()) in str(result.exception) and "twice" in str(result.exception)
    assert json.loads(runner.invoke(app, ["stats", "--index", str(index), "--json"]).stdout)["chunks"] == before


def test_a_csv_cell_longer_than_pythons_default_field_limit_is_indexed(tmp_path: Path) -> None:
    """Python's csv module refuses a field over 131,072 characters unless told otherwise: an article
    body in a CSV cell was a 'bad line' and its text lost."""
    folder = tmp_path / "docs"
    folder.mkdir()
    article = "天命人手持如意金箍棒，一路西行，在黑风山与灵虚子交手。" * 6000  # 162,000 characters
    (folder / "articles.csv").write_text(f"title,text\n黑风山,{article}\n", encoding="utf-8")
    result = runner.invoke(app, ["build", str(folder), "--index", str(tmp_path / "idx"), "--embedder", "hash"])
    assert result.exit_code == 0, result.output
    assert "bad line" not in result.stderr and "field larger" not in result.stderr, result.stderr
    stats = json.loads(runner.invoke(app, ["stats", "--index", str(tmp_path / "idx"), "--json"]).stdout)
    assert stats["files_with_text"] == 1 and stats["chunks"] > 100


def test_an_index_path_that_is_a_file_is_one_line(tmp_path: Path, built: tuple[Path, Path]) -> None:
    folder, _ = built
    taken = tmp_path / "notes.md"
    taken.write_text("我的笔记", encoding="utf-8")
    result = runner.invoke(app, ["build", str(folder), "--index", str(taken), "--embedder", "hash"])
    assert isinstance(result.exception, InputError), result.exception
    assert "not a folder" in str(result.exception) and str(taken) in str(result.exception)
    assert taken.read_text(encoding="utf-8") == "我的笔记"


@pytest.mark.parametrize("fails_at", ["hashing", "reading"])
def test_an_unreadable_file_is_skipped_with_its_reason_and_built_once_readable(
        tmp_path: Path, unreadable, monkeypatch, fails_at) -> None:
    import knowledge.sync

    folder = write_corpus(tmp_path / "kb")
    secret = folder / "秘密.md"
    secret.write_text("# 机密\n通关文牒藏在唐僧的袈裟里，只有悟空知道。", encoding="utf-8")
    blocked = unreadable if fails_at == "hashing" else set()
    if fails_at == "reading":  # readable when hashed, made unreadable before it is read
        real_iter_entry = knowledge.sync.iter_entry

        def iter_entry(entry, *args):
            if entry.path in blocked:
                raise PermissionError(13, "Permission denied", str(entry.path))
            return real_iter_entry(entry, *args)

        monkeypatch.setattr(knowledge.sync, "iter_entry", iter_entry)
    blocked.add(secret)  # as after `chmod 000 秘密.md`
    index = tmp_path / "idx"
    result = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"])
    assert result.exit_code == 0, result.output
    assert "0 deleted, 0 unchanged; 6 chunks indexed" in result.stdout
    assert "skipped 秘密.md: cannot read: Permission denied" in result.stderr

    blocked.clear()  # `chmod 644`: its mtime is unchanged, yet the next build reads it
    again = runner.invoke(app, ["build", str(folder), "--index", str(index)])
    assert again.exit_code == 0, again.output
    assert "1 added, 0 changed, 0 deleted, 6 unchanged; 1 chunks indexed" in again.stdout
    assert "秘密.md" not in again.stderr
    found = runner.invoke(app, ["search", "通关文牒藏在哪里", "--index", str(index), "-k", "1", "--json"])
    assert json.loads(found.stdout)["passages"][0]["chunk_id"] == "kb/秘密.md#0"


def test_a_file_gone_between_listing_and_reading_is_skipped(tmp_path: Path, monkeypatch) -> None:
    import knowledge.loaders

    folder = write_corpus(tmp_path / "kb")
    real_scandir = os.scandir

    def scandir_then_delete(directory):
        children = list(real_scandir(directory))
        (folder / "nverguo.txt").unlink(missing_ok=True)  # deleted by someone else, after the listing
        return children

    monkeypatch.setattr(knowledge.loaders.os, "scandir", scandir_then_delete)
    result = runner.invoke(app, ["build", str(folder), "--index", str(tmp_path / "idx"), "--embedder", "hash"])
    assert result.exit_code == 0, result.output
    assert "5 added" in result.stdout and "skipped nverguo.txt: cannot read: No such file or directory" in result.stderr


def test_a_word_table_stays_under_its_heading(tmp_path: Path) -> None:
    """python-docx lists a document's tables apart from its paragraphs: a price table under 「安装」 was
    indexed after the last paragraph, under the last heading (保修), where search showed it."""
    import docx

    from tests.docqa_corpus import write_docx

    folder = tmp_path / "docs"
    folder.mkdir()
    install = "安装前请关闭进水阀门，并确认自来水压力在零点一到零点四兆帕之间，主机固定在橱柜内侧。"
    write_docx(folder / "manual.docx", [("净水器手册", 1), ("安装", 2), (install, 0)])
    document = docx.Document(str(folder / "manual.docx"))
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {(0, 0): "型号", (0, 1): "安装费", (1, 0): "RO-400", (1, 1): "免费上门"}.items():
        table.cell(row, col).text = text
    document.add_heading("保修", level=2)
    document.add_paragraph("整机保修一年，增压泵和电路板等主要部件保修三年，滤芯属于消耗品，不提供保修服务。")
    document.save(str(folder / "manual.docx"))
    index = tmp_path / "idx"
    assert runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"]).exit_code == 0
    found = json.loads(runner.invoke(app, ["search", "RO-400 安装费", "--index", str(index), "-k", "1",
                                           "--json"]).stdout)["passages"][0]
    assert found["title"] == "安装", found
    assert found["text"].endswith(f"## 安装\n{install}\n型号\t安装费\nRO-400\t免费上门"), found


def test_ctrl_c_during_a_build_says_what_is_kept_and_the_same_command_goes_on(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C ended `kb build` with exit 130 and not a word (typer turns KeyboardInterrupt into a silent exit)."""
    import knowledge.sync

    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(4):  # 4 files of 260 chunks: the first two are committed (every 512 chunks), the third is not
        (folder / f"{n}.txt").write_text(f"第{n}卷。" + "取经路上遇到妖怪，悟空打跑了它们。" * 7000, encoding="utf-8")
    real_iter_entry = knowledge.sync.iter_entry

    def interrupted_at_3(entry, *args):
        if entry.rel == "3.txt":
            raise KeyboardInterrupt
        return real_iter_entry(entry, *args)

    monkeypatch.setattr(knowledge.sync, "iter_entry", interrupted_at_3)
    index = tmp_path / "idx"
    result = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"])
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines()[-1] == \
        "interrupted: the files indexed so far are kept; run the same command to index the rest"
    monkeypatch.setattr(knowledge.sync, "iter_entry", real_iter_entry)
    again = runner.invoke(app, ["build", str(folder), "--index", str(index)])
    assert again.exit_code == 0 and "2 added, 0 changed, 0 deleted, 2 unchanged" in again.stdout, again.output


def test_word_97_2003_files_say_what_to_do(tmp_path: Path) -> None:
    """A .doc was 'unsupported file type .doc', and the same file renamed .docx 'corrupt Word file: Package not
    found at /…/旧通知.docx': neither said to save it as .docx."""
    folder = write_corpus(tmp_path / "docs")
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504  # how every Word 97-2003 file begins
    (folder / "通知.doc").write_bytes(ole)
    (folder / "旧通知.docx").write_bytes(ole)
    (folder / "坏.docx").write_bytes(b"not a zip")
    result = runner.invoke(app, ["build", str(folder), "--index", str(tmp_path / "idx"), "--embedder", "hash"])
    assert result.exit_code == 0, result.output
    assert "skipped 通知.doc: unsupported file type .doc: save it as .docx (Word or LibreOffice)" in result.stderr
    assert "skipped 旧通知.docx: a Word 97–2003 file named .docx: save it as .docx (Word or LibreOffice)" \
        in result.stderr
    assert "skipped 坏.docx: corrupt Word file: not a zip package" in result.stderr


@pytest.mark.parametrize("sep", ["\t", ";"])
def test_a_csv_separated_by_tabs_or_semicolons_is_read(tmp_path: Path, sep: str) -> None:
    """A tab-separated export (or a European Excel file) saved as .csv was one column named 'text\\tnote':
    'empty: no text in fields text, content, output', its rows lost."""
    folder = tmp_path / "docs"
    folder.mkdir()
    rows = ["text,备注", "铁扇公主住在翠云山芭蕉洞，她的芭蕉扇能扇灭火焰山的火。,甲", "牛魔王是铁扇公主的丈夫。,乙"]
    (folder / "faq.csv").write_text("\n".join(r.replace(",", sep) for r in rows) + "\n", encoding="utf-8")
    index = tmp_path / "idx"
    result = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"])
    assert result.exit_code == 0 and "1 added" in result.stdout and "empty" not in result.stderr, result.output
    found = json.loads(runner.invoke(app, ["search", "芭蕉扇", "--index", str(index), "-k", "1", "--json"]).stdout)
    assert found["passages"][0]["text"] == "铁扇公主住在翠云山芭蕉洞，她的芭蕉扇能扇灭火焰山的火。"
    assert json.loads(runner.invoke(app, ["stats", "--index", str(index), "--json"]).stdout)["chunks"] == 2


def test_stats_of_an_index_of_several_folders_names_each_files_folder(tmp_path: Path) -> None:
    """Two folders with an empty README.md and a faq.jsonl with a bad line: `kb stats` said 'not indexed
    README.md' twice and gave no way to tell which folder's file each line was about."""
    index = tmp_path / "idx"
    for name, command in (("manual", "build"), ("faq", "add")):
        folder = write_corpus(tmp_path / name, {"a.txt": f"{name}：铁扇公主住在翠云山芭蕉洞。"})
        (folder / "README.md").write_text("", encoding="utf-8")
        (folder / "faq.jsonl").write_text('{"text": "牛魔王是铁扇公主的丈夫。"}\n{oops\n', encoding="utf-8")
        extra = ["--embedder", "hash"] if command == "build" else []
        assert runner.invoke(app, [command, str(folder), "--index", str(index), *extra]).exit_code == 0
    table = runner.invoke(app, ["stats", "--index", str(index)])
    assert [line.strip() for line in table.stderr.splitlines()] == [
        "not indexed manual/README.md: empty file", "not indexed faq/README.md: empty file",
        "bad line manual/faq.jsonl: line 2: invalid JSON (Expecting property name enclosed in double quotes at column "
        "2) (skipped, the good lines are indexed)",
        "bad line faq/faq.jsonl: line 2: invalid JSON (Expecting property name enclosed in double quotes at column 2) "
        "(skipped, the good lines are indexed)"], table.stderr
    listed = json.loads(runner.invoke(app, ["stats", "--index", str(index), "--json"]).stdout)
    assert [(item["folder"], item["path"]) for item in listed["files_not_indexed"]] == [
        (str((tmp_path / "manual").resolve()), "README.md"), (str((tmp_path / "faq").resolve()), "README.md")]


def test_a_folder_moved_or_deleted_is_dropped_from_the_index_not_searched_twice(tmp_path: Path) -> None:
    """After `mv docs 资料` and `kb build 资料`, the index kept the old folder too: every passage was found
    twice, once from a folder that no longer exists, and nothing but --rebuild (which forgets every
    folder) removed it."""
    index = tmp_path / "idx"
    docs = write_corpus(tmp_path / "docs", {"fire.txt": "铁扇公主住在翠云山芭蕉洞，芭蕉扇能扇灭火焰山的火。"})
    more = write_corpus(tmp_path / "more", {"sha.txt": "沙和尚本是卷帘大将，因打碎琉璃盏被贬流沙河。"})
    assert runner.invoke(app, ["build", str(docs), "--index", str(index), "--embedder", "hash"]).exit_code == 0
    assert runner.invoke(app, ["add", str(more), "--index", str(index)]).exit_code == 0
    moved = docs.rename(tmp_path / "资料")
    result = runner.invoke(app, ["build", str(moved), "--index", str(index)])
    assert result.exit_code == 0, result.output
    assert "1 added, 0 changed, 0 deleted, 0 unchanged; 1 chunks indexed" in result.stdout
    assert (f"dropped {docs.resolve()}: the folder is gone: its 1 files (1 chunks) are dropped from the index "
            "(zaoshu kb add it again if it comes back)") in result.stderr
    stats = json.loads(runner.invoke(app, ["stats", "--index", str(index), "--json"]).stdout)
    assert stats["roots"] == [str(more.resolve()), str(moved.resolve())] and stats["chunks"] == 2
    found = json.loads(runner.invoke(app, ["search", "芭蕉扇", "--index", str(index), "-k", "2", "--json"]).stdout)
    assert [p["chunk_id"] for p in found["passages"]] == ["资料/fire.txt#0", "more/sha.txt#0"]


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_a_file_cut_off_inside_its_last_character_is_indexed(tmp_path: Path, encoding: str) -> None:
    """A text file whose last character was cut in half (a truncated download, `head -c`) was skipped whole:
    'undecodable as utf-8 at byte 78'. Only the cut character is left out now."""
    folder = tmp_path / "docs"
    folder.mkdir()
    text = "铁扇公主住在翠云山芭蕉洞，她的芭蕉扇能扇灭火焰山的火。"
    (folder / "fire.txt").write_bytes(text.encode(encoding)[:-1])
    index = tmp_path / "idx"
    result = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"])
    assert result.exit_code == 0 and "1 added" in result.stdout and "skipped" not in result.stderr, result.output
    found = json.loads(runner.invoke(app, ["search", "芭蕉扇", "--index", str(index), "-k", "1", "--json"]).stdout)
    assert found["passages"][0]["text"] == text[:-1]


@pytest.mark.parametrize("flags, message", [
    (["--overlap", "600"], "--overlap 600 must be at least 0 and less than --chunk-size 500"),
    (["--chunk-size", "40", "--overlap", "40"], "--overlap 40 must be at least 0 and less than --chunk-size 40"),
])
def test_chunk_sizes_the_splitter_cannot_cut_with_are_one_line_and_leave_no_index(tmp_path: Path, flags, message):
    """`--overlap 600` was a ValueError traceback, and it left an index recorded with 500/600 behind: the next
    plain `kb build` said 'rebuild needed'."""
    folder = write_corpus(tmp_path / "docs")
    index = tmp_path / "idx"
    result = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash", *flags])
    assert isinstance(result.exception, InputError) and str(result.exception) == message, result.output
    assert not index.exists()
    plain = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"])
    assert plain.exit_code == 0 and "6 chunks indexed" in plain.stdout, plain.output


@pytest.mark.parametrize("flag", ["--chunk-size=0", "--overlap=-1", "--max-file-mb=-1"])
def test_a_negative_or_zero_size_is_a_usage_error(tmp_path: Path, flag: str) -> None:
    result = runner.invoke(app, ["build", str(write_corpus(tmp_path / "docs")), "--index", str(tmp_path / "idx"),
                                 "--embedder", "hash", flag])
    assert result.exit_code == 2 and f"Invalid value for '{flag.split('=')[0]}'" in result.output, result.output
    assert not (tmp_path / "idx").exists()


def test_calibrate_with_no_passage_per_question_is_a_usage_error(built: tuple[Path, Path], tmp_path: Path) -> None:
    """`kb calibrate -k 0` retrieved nothing, fitted 'answerable when the best score ≥ 0.0000' and stored it
    with the index, where the answerers' gate used it."""
    _, index = built
    (tmp_path / "good.txt").write_text("铁扇公主的芭蕉扇\n", encoding="utf-8")
    (tmp_path / "bad.txt").write_text("量子计算机的原理\n", encoding="utf-8")
    result = runner.invoke(app, ["calibrate", "--index", str(index), "--good", str(tmp_path / "good.txt"),
                                 "--bad", str(tmp_path / "bad.txt"), "-k", "0"])
    assert result.exit_code == 2 and "Invalid value for '-k'" in result.output, result.output
    assert json.loads(runner.invoke(app, ["stats", "--index", str(index), "--json"]).stdout)["answerability"] is None


def test_an_index_made_by_an_older_reader_is_read_again_without_rebuild(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An index from before a reader fix kept what the old reader made of a file (a ';' CSV read as one
    column, so 'empty'), and `kb build` said '… unchanged' until the user thought of --rebuild."""
    from knowledge import readers
    from knowledge.store import Store
    folder = write_corpus(tmp_path / "xiyou")
    (folder / "places.csv").write_text("text;note\n火焰山在西牛贺洲，八百里火焰;地理\n", encoding="utf-8")
    index = tmp_path / "idx"
    with monkeypatch.context() as old:  # the zaoshu before READER_VERSIONS: ',' only, no versions recorded
        old.setattr(readers, "_delimiter", lambda line: ",")
        first = runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"])
        assert first.exit_code == 0 and "empty   places.csv" in first.stderr, first.output
        store = Store(index / "kb.sqlite")
        store.db.execute("DELETE FROM meta WHERE key = 'readers'")
        store.commit()
        store.close()

    again = runner.invoke(app, ["build", str(folder), "--index", str(index)])
    assert again.exit_code == 0, again.output
    assert "0 added, 0 changed, 0 deleted, 0 unchanged; 7 chunks indexed" in again.stdout
    assert "re-read 7 unchanged files (.csv 1, .md 1, .txt 5): this zaoshu reads them better" in again.stderr
    assert "places.csv" not in again.stderr  # not empty any more
    found = runner.invoke(app, ["search", "八百里火焰", "--index", str(index), "-k", "1", "--json"])
    assert json.loads(found.stdout)["passages"][0]["chunk_id"] == "xiyou/places.csv#0"

    third = runner.invoke(app, ["build", str(folder), "--index", str(index)])
    assert "0 added, 0 changed, 0 deleted, 7 unchanged; 0 chunks indexed" in third.stdout
    assert "re-read" not in third.stderr


def test_an_index_cut_at_a_code_comment_is_cut_again_by_the_next_build(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An index from before headings were found outside code: its Markdown chunks were cut at a shell
    `# comment` and titled with `**` marks. The next `kb build` reads .md files again, so an existing
    index gets the new sections and titles without --rebuild."""
    from knowledge import readers, splitter, sync
    from tests.docqa_corpus import GUIDE_MD

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.md").write_text(GUIDE_MD, encoding="utf-8")
    index = tmp_path / "idx"
    old_headings = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)  # as zaoshu found them before
    with monkeypatch.context() as old:
        old.setattr(sync, "READER_VERSIONS", {**readers.READER_VERSIONS, ".md": 2})
        old.setattr(splitter, "outline", lambda text: [(m.start(), len(m.group(0)) - len(m.group(0).lstrip("#")),
                                                        m.group(1)) for m in old_headings.finditer(text)])
        assert runner.invoke(app, ["build", str(folder), "--index", str(index), "--embedder", "hash"]).exit_code == 0

    def titles():
        found = runner.invoke(app, ["search", "curl 测试 接口", "--index", str(index), "-k", "3", "--json"])
        return [p["title"] for p in json.loads(found.stdout)["passages"]]

    assert "cURL 测试同步接口" in titles()
    again = runner.invoke(app, ["build", str(folder), "--index", str(index)])
    assert "re-read 1 unchanged file (.md 1): this zaoshu reads them better" in again.stderr, again.output
    assert titles()[0] == "2. 开启huixiangdou服务" and "cURL 测试同步接口" not in titles()
