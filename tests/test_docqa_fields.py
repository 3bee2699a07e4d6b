"""docqa on JSON/JSONL/CSV files whose text is not in the default fields (user tryout): the files it
skips are said in the run's output, `--text-field` names the fields, an index built with
`zaoshu kb build --text-field …` is used as built, and `--dry-run` refuses what the run would refuse.
In-process through typer's CliRunner, against the local OpenAI-compatible server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from graphs.ledger import read_jsonl
from knowledge.cli import app as kb_app
from recipes.docqa.__main__ import app as docqa_app
from tests.docqa_corpus import make_corpus
from tests.docqa_replies import reply
from tests.fake_openai import FakeOpenAI

NAME = "净水器"
INDEX = f"runs/docqa/index-{NAME}"
runner = CliRunner(env={"COLUMNS": "200"})

FAQ = [{"question": "滤芯多久换一次？", "answer": "PP 棉滤芯每三个月更换一次，活性炭滤芯每六个月更换一次，反渗透膜两年一换。"},
       {"question": "机器报警红灯常亮怎么办？", "answer": "说明检测到漏水，擦干机箱底部积水后重新通电即可，反复报警请联系售后。"}]
PRICES = ("产品,规格,价格,说明\n"
          "家用净水器,400G,2999元,厨下式反渗透净水器，适合三到五口之家，出水快，无需压力桶，安装在橱柜内侧，每年更换一次前置滤芯即可保持出水量。\n"
          "前置过滤器,40微米,399元,装在总进水管上，拦截泥沙和铁锈，保护后面的净水器和热水器，每月拧开底部阀门反冲洗一次即可。\n")


def _folder(tmp_path: Path) -> Path:
    docs = make_corpus(tmp_path / "docs")
    (docs / "faq.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in FAQ) + "\n{oops\n",
                                    encoding="utf-8")
    (docs / "价格表.csv").write_text(PRICES, encoding="utf-8")
    return docs


def _docqa(monkeypatch, *flags: str):
    with FakeOpenAI(reply=reply) as server:
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-model")
        return runner.invoke(docqa_app, ["--knowledge", "docs", "--name", NAME, "--concurrency", "2", *flags])


def _sources(run: Path) -> set[str]:
    return {c.split("#")[0] for ledger in ("accepted", "rejected") for s in read_jsonl(run / f"{ledger}.jsonl")
            for c in ((s.get("sample") or s).get("meta") or {}).get("source_chunks", [])}


def test_files_docqa_skips_and_their_bad_lines_are_said_in_its_output(tmp_path, monkeypatch):
    _folder(tmp_path)
    result = _docqa(monkeypatch, "--out", "run", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert ("skipped 2 files (empty: no text in fields text, content, output — name the fields that hold text "
            "with --text-field): docs/faq.jsonl, docs/价格表.csv") in result.stdout, result.stdout
    assert "bad line docs/faq.jsonl: line 3: invalid JSON" in result.stdout
    # the index and the corpus count the same files with text; the two the index holds without text are said
    index_files = re.search(r"^index .*: \d+ chunks from (\d+) files, 2 not indexed \(", result.stdout, re.M)
    corpus_files = re.search(r"^corpus: \d+ chunks from (\d+) files", result.stdout, re.M)
    assert index_files and corpus_files and index_files.group(1) == corpus_files.group(1), result.stdout
    bad = next(line for line in result.stdout.splitlines() if line.startswith("bad line docs/faq.jsonl"))
    assert "the good lines are used" not in bad and bad.endswith("(skipped, as is its file)"), bad
    stats = json.loads((tmp_path / "run/stats.json").read_text(encoding="utf-8"))
    assert stats["chunks"]["files_skipped"] == {"empty: no text in fields text, content, output": 2}


def test_text_field_makes_records_readable_chunks_that_docqa_asks_about(tmp_path, monkeypatch):
    _folder(tmp_path)
    flags = ["--text-field", "question", "--text-field", "answer", "--text-field", "产品", "--text-field", "说明"]
    result = _docqa(monkeypatch, *flags, "--out", "run")
    assert result.exit_code == 0, result.output
    assert not re.search(r"^skipped \d+ file", result.stdout, re.M), result.stdout
    assert {"docs/faq.jsonl", "docs/价格表.csv"} <= _sources(tmp_path / "run")
    # the index was built with the fields asked for: a record is its fields, one per line
    from knowledge.index import DB_FILE
    from knowledge.store import Store
    from recipes.docqa.corpus import scan_corpus

    store = Store(tmp_path / INDEX / DB_FILE)
    assert store.get_meta("settings")["text_fields"] == ["question", "answer", "产品", "说明"]
    store.close()

    chunks = {c.chunk_id: c.text for c in scan_corpus([tmp_path / "docs"], text_fields=("question", "answer")).chunks}
    assert chunks["docs/faq.jsonl#0"] == "滤芯多久换一次？\n" + FAQ[0]["answer"]


def test_an_index_built_with_other_fields_is_used_as_built(tmp_path, monkeypatch):
    _folder(tmp_path)
    built = runner.invoke(kb_app, ["build", "docs", "--index", INDEX, "--embedder", "hash",
                                   "--text-field", "question", "--text-field", "answer", "--text-field", "说明"])
    assert built.exit_code == 0, built.output
    plan = _docqa(monkeypatch, "--dry-run")
    assert plan.exit_code == 0, plan.output
    result = _docqa(monkeypatch, "--out", "run")
    assert result.exit_code == 0, result.output
    assert {"docs/faq.jsonl", "docs/价格表.csv"} <= _sources(tmp_path / "run")


@pytest.mark.parametrize("dry_run", [True, False])
def test_fields_other_than_the_index_are_one_line_saying_where_and_how(tmp_path, monkeypatch, dry_run):
    _folder(tmp_path)
    built = runner.invoke(kb_app, ["build", "docs", "--index", INDEX, "--embedder", "hash",
                                   "--text-field", "question", "--text-field", "answer"])
    assert built.exit_code == 0, built.output
    result = _docqa(monkeypatch, "--text-field", "说明", *(["--dry-run"] if dry_run else ["--out", "run"]))
    assert result.exit_code == 1
    index = (tmp_path / INDEX).resolve()
    assert str(result.exception) == (
        f"Index {index} was built with fields question,answer; you asked for fields 说明 (--text-field): leave "
        f"them out to use the index's fields, or rebuild the index with all of them: zaoshu kb build "
        f"{(tmp_path / 'docs').resolve()} --index {index} --rebuild --text-field question --text-field answer "
        f"--text-field 说明")
    assert not (tmp_path / "run").exists()  # refused before a run folder is made


def test_text_fields_in_the_yaml_are_named_in_the_refusal(tmp_path, monkeypatch):
    _folder(tmp_path)
    assert runner.invoke(kb_app, ["build", "docs", "--index", INDEX, "--embedder", "hash"]).exit_code == 0
    (tmp_path / "mine.yaml").write_text(f"recipe: docqa\nname: {NAME}\nknowledge_folder: docs\n"
                                        "text_fields: [question, answer]\n", encoding="utf-8")
    result = runner.invoke(docqa_app, ["--config", "mine.yaml", "--dry-run"])
    assert result.exit_code == 1
    assert "you asked for fields question,answer (text_fields in mine.yaml)" in str(result.exception)
    assert str(result.exception).endswith("--rebuild --text-field text --text-field content --text-field output "
                                          "--text-field question --text-field answer")


@pytest.mark.parametrize("dry_run", [True, False])
def test_nested_knowledge_folders_are_one_line_before_a_run_folder_is_made(tmp_path, monkeypatch, dry_run):
    docs = _folder(tmp_path)
    (docs / "more").mkdir()
    (docs / "more/说明.md").write_text("# 说明\n\n滤芯更换后请先放水五分钟，再接水饮用，以冲走新滤芯里的碳粉。\n",
                                       encoding="utf-8")
    result = _docqa(monkeypatch, "--knowledge", "docs/more", *(["--dry-run"] if dry_run else ["--out", "run"]))
    assert result.exit_code == 1, result.output
    assert str(result.exception) == (f"knowledge folder {(docs / 'more').resolve()} is inside knowledge folder "
                                     f"{docs.resolve()}: its files would be read twice; give folders that do not nest")
    assert not (tmp_path / "run").exists()


def test_zaoshu_new_takes_text_fields_and_says_them_when_no_file_has_text(tmp_path):
    """A folder of question/answer records: `zaoshu new` said only "no readable text" and had no --text-field."""
    from tests.test_cli import zaoshu

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in FAQ) + "\n", encoding="utf-8")
    refused = zaoshu("new", NAME, "--knowledge", "docs", cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (f"error: no text in any file of {docs.resolve()} (1 empty: no text in fields "
                                      f"text, content, output): name the fields that hold text with --text-field")
    made = zaoshu("new", NAME, "--knowledge", "docs", "--text-field", "question", "--text-field", "answer",
                  cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert f"wrote {NAME}.yaml: 2 chunks from 1 files" in made.stdout
    config = yaml.safe_load((tmp_path / f"{NAME}.yaml").read_text(encoding="utf-8"))
    assert config["text_fields"] == ["question", "answer"]


def test_zaoshu_new_says_the_files_and_lines_it_did_not_read(tmp_path):
    """User tryout: `zaoshu new` said "28 chunks from 6 files" for a folder of 9 and named none it left out;
    the skipped files and the bad JSONL line appeared only later, in the run's output."""
    from tests.test_cli import zaoshu

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "手册.md").write_text("# 手册\n\n" + "滤网每周清洁一次，用软毛刷轻轻刷去灰尘，不要用水冲洗。" * 3, encoding="utf-8")
    (docs / "空白.md").write_text("   \n\n\t \n", encoding="utf-8")
    (docs / ".hidden.md").write_text("# 隐藏\n隐藏文件里的内容。\n", encoding="utf-8")
    (docs / ".cache").mkdir()
    (docs / ".cache" / "x.md").write_text("# 缓存\n", encoding="utf-8")
    (docs / "sub" / "faq.jsonl").write_text(
        json.dumps({"text": FAQ[0]["answer"]}, ensure_ascii=False) + "\n{oops\n", encoding="utf-8")
    made = zaoshu("new", NAME, "--knowledge", "docs", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert lines[0].startswith(f"wrote {NAME}.yaml: 2 chunks from 2 files;"), made.stdout
    assert "skipped 1 file (empty: no text): docs/空白.md" in lines, made.stdout
    assert "skipped 1 file (hidden file): docs/.hidden.md" in lines, made.stdout
    assert "skipped 1 folder (hidden folder): docs/.cache" in lines, made.stdout  # was "1 file (hidden folder)"
    assert ("bad line docs/sub/faq.jsonl: line 2: invalid JSON (Expecting property name enclosed in double quotes at column 2) "
            "(skipped, the good lines are used)") in lines, made.stdout
    assert lines[-1].startswith(f"run it:  python -m recipes.docqa --config {NAME}.yaml"), made.stdout


def test_a_record_with_no_text_is_said_not_dropped_silently(tmp_path):
    """User tryout: a CSV row whose `text` cell was empty (边刷,,19) and a JSONL record without a text field
    were left out of the index with no word, while their files' other records were read."""
    from tests.test_cli import zaoshu

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "配件.csv").write_text("name,text,price\n滤网,高效滤网可过滤细小灰尘，每三个月更换一次。,39\n边刷,,19\n"
                                   "主刷,主刷采用胶毛混合设计，不易缠绕头发，建议每年更换。,59\n", encoding="utf-8")
    (docs / "faq.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (
        {"text": FAQ[0]["answer"]}, {"title": "只有标题"}, {"text": FAQ[1]["answer"]})) + "\n", encoding="utf-8")
    made = zaoshu("new", NAME, "--knowledge", "docs", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert lines[0].startswith(f"wrote {NAME}.yaml: 4 chunks from 2 files;"), made.stdout
    assert ("bad line docs/配件.csv: line 3: no text in fields text, content, output (skipped, the good lines "
            "are used)") in lines, made.stdout
    assert ("bad line docs/faq.jsonl: line 2: no text in fields text, content, output (skipped, the good lines "
            "are used)") in lines, made.stdout


@pytest.mark.parametrize("args, says", [
    (["", "--knowledge", "docs"], "NAME is blank"),
    (["a/b", "--knowledge", "docs"], "NAME 'a/b' holds a path separator"),
    (["hr.yaml", "--knowledge", "docs"], "NAME 'hr.yaml' is a file name"),
    (["hr", "--knowledge", "docs", "--out", "docs", "--force"], "--out docs is a folder: give the YAML file, "
                                                                 "e.g. --out docs/hr.yaml"),
])
def test_zaoshu_new_refuses_a_name_or_out_it_cannot_write_in_one_line(tmp_path, args, says):
    """`zaoshu new hr.yaml` wrote hr.yaml.yaml, `""` a hidden .yaml, `a/b` a/b.yaml with its index in
    runs/docqa/index-a/b/; `--out` a folder ended in an IsADirectoryError traceback after the model call."""
    from tests.test_cli import zaoshu

    _folder(tmp_path)
    result = zaoshu("new", *args, cwd=tmp_path, env={"ZAOSHU_BASE_URL": "http://127.0.0.1:9/v1",
                                                     "ZAOSHU_MODEL": "m"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(f"error: {says}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]
