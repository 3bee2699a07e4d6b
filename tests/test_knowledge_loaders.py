"""Loaders: every format, every encoding, every bad input the issue lists."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from agents.errors import InputError
from knowledge.encoding import detect_encoding
from knowledge.loaders import load_folder, scan_folder
from knowledge.readers import read_file

TEXT = "孙悟空大闹天宫，被如来佛祖压在五行山下。"
TRAD = "孫悟空大鬧天宮，被如來佛祖壓在五行山下。"


def _texts(report) -> dict[str, str]:
    return {d.source: d.text for d in report.documents}


@pytest.mark.parametrize("encoding, text", [
    ("utf-8", TEXT), ("utf-8-sig", TEXT), ("gb18030", TEXT), ("gbk", TEXT),
    ("utf-16", TEXT), ("big5", TRAD),
    ("utf-16-le", TEXT), ("utf-16-be", TEXT), ("utf-16-le", "Sun Wukong, 孙悟空 (Monkey King)."),  # no BOM: was "binary"
])
def test_each_text_encoding_is_decoded(tmp_path: Path, encoding: str, text: str) -> None:
    (tmp_path / "a.txt").write_bytes(f"{text}\n第二行。".encode(encoding))
    report = load_folder(tmp_path)
    assert _texts(report) == {"a.txt": f"{text}\n第二行。"}
    assert report.skipped == [] and report.empty == []


def test_a_whole_gbk_chapter_is_detected_as_gb18030(tmp_path: Path) -> None:
    chapter = Path("/work/shared/reference/xiyouji/chapters/001.txt").read_text(encoding="utf-8")
    assert detect_encoding(chapter.encode("gbk")[:20000]) == "gb18030"


def test_markdown_html_docx_pdf(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# 花果山\n石猴出世。\n", encoding="utf-8")
    (tmp_path / "b.markdown").write_text("## 水帘洞\n洞天福地。", encoding="utf-8")
    (tmp_path / "c.html").write_text(
        "<html><head><meta charset='utf-8'><style>p{color:red}</style><script>var x=1;</script></head>"
        "<body><h1>灵台方寸山</h1><p>祖师传道。</p><h2>七十二变</h2><p>悟空学会了变化。</p></body></html>",
        encoding="utf-8")
    (tmp_path / "d.htm").write_bytes("<p>繁體網頁。</p>".encode("big5"))

    import docx
    document = docx.Document()
    document.add_heading("第一章 总则", level=1)
    document.add_paragraph("本规定适用于所有弟子。")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "师父", "菩提祖师"
    document.save(tmp_path / "e.docx")

    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdf = canvas.Canvas(str(tmp_path / "f.pdf"))
    pdf.setFont("STSong-Light", 14)
    pdf.drawString(72, 720, "孙悟空大闹天宫。")
    pdf.showPage()
    pdf.setFont("STSong-Light", 14)
    pdf.drawString(72, 720, "第二页内容。")
    pdf.save()

    texts = _texts(load_folder(tmp_path))
    assert texts["a.md"] == "# 花果山\n石猴出世。\n"
    assert texts["b.markdown"].startswith("## 水帘洞")
    assert texts["c.html"] == "# 灵台方寸山\n\n祖师传道。\n\n## 七十二变\n\n悟空学会了变化。"
    assert texts["d.htm"] == "繁體網頁。"
    assert texts["e.docx"] == "# 第一章 总则\n本规定适用于所有弟子。\n师父\t菩提祖师"
    assert texts["f.pdf"] == "孙悟空大闹天宫。\n\n第二页内容。"


def test_html_code_keeps_its_lines_and_its_comments_are_no_headings(tmp_path: Path) -> None:
    """A saved documentation page: its <pre> code comes out fenced, with its indentation, so a `# comment`
    in it is no heading (no section is cut there, no docqa tag is made of it)."""
    from knowledge.splitter import headings

    (tmp_path / "deploy.html").write_text(
        "<html><body><h1>部署指南</h1><p>先装好依赖。</p>"
        "<pre><code># 安装依赖\npip install zaoshu\nif True:\n    print('ok')\n</code></pre>"
        "<h2>启动</h2><p>运行命令即可。</p></body></html>", encoding="utf-8")
    text = _texts(load_folder(tmp_path))["deploy.html"]
    assert "```\n# 安装依赖\npip install zaoshu\nif True:\n    print('ok')\n```" in text, text
    assert [t for _, t in headings(text)] == ["部署指南", "启动"]


def test_json_jsonl_csv_records_with_configurable_fields(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"conversation": [{"system": "你是悟了悟了", "input": "天命人是谁？", "output": "玩家操控的角色。"}]},
                   ensure_ascii=False) + "\n\n" + json.dumps({"text": "第二条记录。", "title": "标题二"}, ensure_ascii=False),
        encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps([{"content": "甲"}, {"other": "无"}, "乙"], ensure_ascii=False),
                                     encoding="utf-8")
    (tmp_path / "c.csv").write_text("question,answer\n天宫在哪,在天上\n龙宫在哪,在海底\n", encoding="gb18030")

    report = load_folder(tmp_path, text_fields=("text", "content", "output", "answer"))
    got = [(d.source, d.record, d.text, d.title) for d in report.documents]
    assert got == [
        ("a.jsonl", 0, "玩家操控的角色。", None), ("a.jsonl", 1, "第二条记录。", "标题二"),
        ("b.json", 0, "甲", None), ("b.json", 2, "乙", None),
        ("c.csv", 0, "在天上", None), ("c.csv", 1, "在海底", None),
    ]
    # With the default fields the CSV has no text: it is reported as empty, with the fields named.
    default = load_folder(tmp_path)
    assert [(e.path, e.reason) for e in default.empty] == [("c.csv", "empty: no text in fields text, content, output")]


def test_bad_files_are_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("好文件。", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "garbage.txt").write_bytes(bytes([0x81, 0x20, 0xFF, 0xFE, 0x20, 0x80]) * 50)
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("  \n\n ", encoding="utf-8")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    (tmp_path / "broken.json").write_text("{不是 JSON", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.txt").write_text("隐藏。", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.txt").write_text("不读。", encoding="utf-8")

    report = load_folder(tmp_path)
    assert _texts(report) == {"good.txt": "好文件。"}
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons["binary.txt"] == "binary file (contains NUL bytes)"
    assert reasons["garbage.txt"].startswith("undecodable")
    assert reasons["broken.pdf"].startswith("corrupt PDF")
    assert reasons["broken.docx"].startswith("corrupt Word file")
    assert reasons["broken.json"].startswith("invalid JSON")
    assert reasons["image.png"] == "unsupported file type .png"
    assert reasons[".hidden.txt"] == "hidden file"
    assert reasons[".git"] == "hidden folder"
    assert "x.txt" not in str(reasons)
    assert {e.path: e.reason for e in report.empty} == {"empty.md": "empty file", "blank.txt": "empty: no text"}


def test_missing_and_empty_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Knowledge folder not found: .*nope"):
        load_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "sub").mkdir()
    with pytest.raises(InputError, match="Knowledge folder is empty"):
        load_folder(tmp_path / "empty")
    (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="Not a folder"):
        load_folder(tmp_path / "file.txt")


def test_recursive_and_symlinks_stay_inside(tmp_path: Path) -> None:
    root, outside = tmp_path / "kb", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    (root / "a" / "b" / "deep.txt").write_text("深层文件。", encoding="utf-8")
    (outside / "secret.txt").write_text("外部机密。", encoding="utf-8")
    os.symlink(outside / "secret.txt", root / "link_out.txt")
    os.symlink(outside, root / "dir_out")
    os.symlink(root / "a" / "b" / "deep.txt", root / "link_in.txt")
    os.symlink(root, root / "a" / "loop")  # a cycle must not loop forever

    report = load_folder(root)
    assert _texts(report) == {"a/b/deep.txt": "深层文件。", "link_in.txt": "深层文件。"}
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons["link_out.txt"] == reasons["dir_out"] == "symlink outside the folder (not followed)"


def test_scan_lists_sizes_and_sorted_paths(tmp_path: Path) -> None:
    for name in ("b.txt", "a.txt"):
        (tmp_path / name).write_text("一二三", encoding="utf-8")
    entries, skipped = scan_folder(tmp_path)
    assert [(e.rel, e.size) for e in entries] == [("a.txt", 9), ("b.txt", 9)]
    assert skipped == []


def test_a_50_mb_text_file_streams_with_bounded_memory(tmp_path: Path) -> None:
    line = ("唐僧师徒四人西天取经，历经九九八十一难。" * 5 + "\r\n").encode("utf-8")
    path = tmp_path / "big.txt"
    with path.open("wb") as fh:
        for _ in range((50 * 1024 * 1024) // len(line) + 1):
            fh.write(line)
    tracemalloc.start()
    parts, chars, last_end = 0, 0, 0
    for doc in read_file(path, "big.txt"):
        assert doc.start == last_end  # parts are contiguous, offsets exact
        last_end = doc.start + len(doc.text)
        parts += 1
        chars += len(doc.text)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    expected_chars = (path.stat().st_size // len(line)) * (len(line.decode("utf-8")) - 1)  # \r\n → \n
    assert chars == expected_chars
    assert parts > 10
    assert peak < 30 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a 50 MB file"
