"""The document recipe through the commands a user types, against the local OpenAI-compatible server:
`python -m recipes.docqa --knowledge DIR --name NAME` (no YAML), `zaoshu new`, `zaoshu kb add`,
`zaoshu export --balance tag`, `zaoshu runs show`, on a folder of md, pdf, docx and GB18030 txt."""

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from graphs.ledger import read_jsonl
from knowledge.index import DB_FILE
from recipes.docqa.corpus import chunk_hash
from tests.docqa_corpus import GUIDE_MD, make_corpus, make_second
from tests.docqa_replies import GA, reply
from tests.fake_openai import FakeOpenAI

REPO = Path(__file__).resolve().parents[1]
NAME = "净水器"
INDEX = f"runs/docqa/index-{NAME}"
PAIRS = {(p["genre"], p["audience"]) for p in GA["pairs"]}


def sh(tmp_path: Path, server: FakeOpenAI | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_", "SERPER_"))}
    env.update(PYTHONPATH=str(REPO), COLUMNS="200")
    if server is not None:
        env.update(ZAOSHU_BASE_URL=server.base_url, ZAOSHU_MODEL="fake-model")
    cmd = [sys.executable, "-m", *args] if args[0].startswith("recipes.") else \
        [sys.executable, "-c", "import zaoshu_cli; zaoshu_cli.main()", *args]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def docqa(tmp_path, server, *flags):
    return sh(tmp_path, server, "recipes.docqa", "--knowledge", "docs", "--name", NAME, "--concurrency", "2", *flags)


def test_own_folder_to_dataset_with_no_yaml(tmp_path):
    make_corpus(tmp_path / "docs")
    sh(tmp_path, None, "kb", "build", "docs", "--index", INDEX, "--embedder", "hash")

    # the plan: items per kind, calls and cost; nothing is written
    plan = docqa(tmp_path, None, "--dry-run").stdout
    kinds = dict((k, int(n)) for k, n in re.findall(r"(chunk|cross_chunk|tag) (\d+)", plan.split("\n")[1]))
    assert set(kinds) == {"chunk", "cross_chunk", "tag"} and all(kinds.values()), plan
    assert re.search(r"│ total\s+│\s+\d+", plan) and "DOC_CHUNK_QUESTION_PROMPT" in plan
    assert not (tmp_path / "runs/docqa/run").exists()

    with FakeOpenAI(reply=reply) as server:
        out = docqa(tmp_path, server, "--out", "runs/docqa/run").stdout
    run = tmp_path / "runs/docqa/run"
    accepted = list(read_jsonl(run / "accepted.jsonl"))
    rejected = list(read_jsonl(run / "rejected.jsonl"))
    assert len(accepted) + len(rejected) == sum(kinds.values())
    metas = [s["meta"] for s in accepted]
    assert {m["item_kind"] for m in metas} == {"chunk", "cross_chunk", "tag"}
    # each question and answer was written for one pair, recorded in meta; the pairs came from the model
    assert {(m["ga"]["genre"], m["ga"]["audience"]) for m in metas} <= PAIRS
    assert len({m["ga"]["genre"] for m in metas}) > 1
    assert yaml.safe_load((run / "ga_pairs.yaml").read_text(encoding="utf-8")) == GA["pairs"]
    # answers come from the whole KB; the source chunk is kept and is among the passages the critic saw
    for m in metas:
        assert m["retrieval"] == "kb" and {s["origin"] for s in m["sources"]} <= {"kb", "source_chunk"}
        if m["item_kind"] != "tag":
            assert re.fullmatch(r"docs/[\w.]+#\d+", m["source_chunk"])
            assert m["source_chunk"] in {s["chunk_id"] for s in m["sources"]}
            assert len(m["source_files"]) >= 1
    assert any(len({s["source"] for s in m["sources"]}) > 1 for m in metas)  # beyond the source chunk
    cross = [m for m in metas if m["item_kind"] == "cross_chunk"]
    assert all(len(m["source_chunks"]) == 2 for m in cross)
    # every file type was read: md, GB18030 txt, docx, pdf
    used = {c.split("#")[0] for m in metas for c in m["source_chunks"]}
    assert {"docs/manual.md", "docs/warranty.txt", "docs/safety.docx", "docs/report.pdf"} <= used
    # the tag tree: derived from headings, saved editable; labels by the model or the heading fallback
    tags = yaml.safe_load((run / "tags.yaml").read_text(encoding="utf-8"))
    assert {"安装步骤", "滤芯更换", "故障排除"} <= set(tags["tree"]["净水器使用手册"])
    assert {"用电安全", "儿童与宠物"} <= set(tags["tree"]["安全须知"])
    assert all(m.get("tag") for m in metas)
    # (the fallback's sample may be rejected: the fake answerer answers its question as another one's)
    fallback = [r["sample"]["meta"] for r in rejected if r.get("sample")] + metas
    fallback = [m for m in fallback if m.get("tag_fallback")]
    assert fallback and all(m["tag"].startswith("安全须知") for m in fallback)
    stats = json.loads((run / "stats.json").read_text(encoding="utf-8"))
    assert stats["tags"].get("heading (labelling failed)", 0) == sum(1 for m in metas if m.get("tag_fallback"))
    # nothing silently missing: every chunk accounted for
    chunks = stats["chunks"]
    assert chunks["skipped"]["too_short"] == 1  # note.md
    assert chunks["total"] == chunks["used"] + chunks["failed"] + chunks["pending"] + sum(chunks["skipped"].values())
    assert chunks["pending"] == 0 and chunks["used"] + chunks["failed"] == chunks["total"] - 1 >= 5
    assert f"chunks: {chunks['total']} total · {chunks['used']} used" in out

    # a rerun has nothing to do
    assert "(0 of" in docqa(tmp_path, server_stub(), "--out", "runs/docqa/run").stdout

    # balanced export by tag
    export = sh(tmp_path, None, "export", str(run), "--format", "openai", "--balance", "tag", "--per-tag", "1",
                "--keep-meta").stdout
    records = [json.loads(line) for line in (run / "exports/openai/all.jsonl").read_text(encoding="utf-8").splitlines()]
    tags_in = [r["meta"]["tag"] for r in records]
    assert len(tags_in) == len(set(tags_in)) == len({m["tag"] for m in metas}) and "all: " in export
    assert (f"--balance tag: {len(tags_in)} of {len(metas)} samples kept, at most 1 for each of {len(tags_in)} "
            "values") in export  # what the draw left out is said

    # incremental: a second folder added to the index → only its chunks get chunk questions
    make_second(tmp_path / "more")
    sh(tmp_path, None, "kb", "add", "more", "--index", INDEX)
    with FakeOpenAI(reply=reply) as server:
        out = docqa(tmp_path, server, "--out", "runs/docqa/run").stdout
    after = list(read_jsonl(run / "accepted.jsonl"))
    assert after[:len(accepted)] == accepted  # nothing accepted before was touched
    new = [s["meta"] for s in after[len(accepted):]]
    assert any(c.startswith("more/") for m in new for c in m["source_chunks"])
    # every new item asks about a new chunk or a new tag (the new document's headings)
    assert all(any(c.startswith("more/") for c in m["source_chunks"]) if m["item_kind"] != "tag"
               else m["tag"].startswith("商用机型补充说明") for m in new)
    assert len({s["id"] for s in after}) == len(after)

    # stale: one source file changed, one deleted
    with open(tmp_path / "docs/manual.md", "a", encoding="utf-8") as f:
        f.write("\n新增：滤芯指示灯支持手机提醒。\n")
    (tmp_path / "docs/warranty.txt").unlink()
    shown = sh(tmp_path, None, "runs", "show", str(run), "--json").stdout
    stale = json.loads(shown)["stale"]
    by_file = [m["source_files"] for m in (s["meta"] for s in after)]
    assert stale["deleted"] == sum(any(p.endswith("warranty.txt") for p in f) for f in by_file)
    assert stale["changed"] == sum(any(p.endswith("manual.md") for p in f) and not any(
        p.endswith("warranty.txt") for p in f) for f in by_file)
    assert stale["deleted"] and stale["changed"]
    text = sh(tmp_path, None, "runs", "show", str(run)).stdout
    assert f"stale: {stale['deleted'] + stale['changed']} samples" in text


TRAVEL_MD = """# 差旅制度

## 出差申请

出差前要在办公系统里提交出差申请，写明目的地、天数和预算，部门负责人审批通过后才能订票。临时出差可以先电话报备，回来后三个工作日内补办申请。

## 交通标准

高铁和动车一律乘坐二等座，单程超过八小时可以改乘飞机经济舱。市内交通优先乘坐地铁和公交，打车费用凭行程单报销，每天不超过一百元。

## 报销流程

回来后十个工作日内在系统里提交报销单，附上发票原件和行程单。财务审核通过后，报销款在每月十五号统一打到工资卡上，逾期提交的需要部门负责人签字说明原因。
"""

TRAVEL_TXT = """第一章 总则
为规范公司员工出差管理，合理控制差旅费用，结合公司实际情况制定本制度。本制度适用于公司全体正式员工和试用期员工，实习生出差参照执行。

第二章 住宿标准
一线城市住宿每晚不超过五百元，二线城市每晚不超过三百五十元，其他城市每晚不超过二百五十元。两名同性别员工同行时原则上合住一间标准间，超出标准的部分由个人承担。

第三章 出差补助
出差期间每天发放伙食补助八十元，按实际出差天数计算，往返当天各按半天计算。由客户或会议主办方提供餐食的，当天不再发放伙食补助。
"""


def test_docqa_cuts_chunks_as_the_index_does_and_names_the_chunk_it_asked_about(tmp_path):
    docs = tmp_path / "kb"
    docs.mkdir()
    (docs / "差旅制度.md").write_text(TRAVEL_MD, encoding="utf-8")
    (docs / "差旅制度_GBK.txt").write_bytes(TRAVEL_TXT.encode("gbk"))
    sh(tmp_path, None, "kb", "build", "kb", "--index", INDEX, "--embedder", "hash")
    with FakeOpenAI(reply=reply) as server:
        out = sh(tmp_path, server, "recipes.docqa", "--knowledge", "kb", "--name", NAME, "--out", "run").stdout
    index_line = re.search(r"index .*: (\d+) chunks from (\d+) files", out)
    assert index_line and index_line.groups() == ("6", "2"), out  # 3 sections in each file
    assert re.search(r"corpus: 6 chunks from 2 files in 1 folders; items: chunk 6 · cross_chunk [1-9]", out), out
    db = sqlite3.connect(tmp_path / INDEX / DB_FILE)
    rows = db.execute("SELECT source, chunk_index, text FROM chunks")
    index_text = {f"{source}#{n}": text for source, n, text in rows}
    db.close()
    samples = [*read_jsonl(tmp_path / "run/accepted.jsonl"),
               *(r["sample"] for r in read_jsonl(tmp_path / "run/rejected.jsonl") if r.get("sample"))]
    assert {s["meta"]["item_kind"] for s in samples} == {"chunk", "cross_chunk", "tag"}
    asked = {s["meta"]["source_chunk"] for s in samples if s["meta"]["item_kind"] == "chunk"}
    assert asked == set(index_text)  # every section was asked about, 第二章 and 第三章 too
    for sample in (s for s in samples if s["meta"]["item_kind"] != "tag"):
        meta = sample["meta"]
        # each id names the index chunk whose text the item was made from …
        assert [chunk_hash(c.split("#")[0], index_text[c]) for c in meta["source_chunks"]] == meta["chunk_hashes"]
        if meta["item_kind"] == "chunk":  # … and the question quotes it (the fake asker copies a sentence of it)
            quoted = re.search(r"想问：(.+?)，这是为什么", sample["turns"][0]["input"]).group(1)
            assert quoted in re.sub(r"[，。！？、：；\s]", "", index_text[meta["source_chunk"]])


def server_stub():
    """A rerun with nothing to do makes no call; the endpoint only has to be configured."""
    class Stub:
        base_url = "http://127.0.0.1:9/v1"
    return Stub()


def test_zaoshu_new_writes_an_editable_recipe_and_edits_are_respected(tmp_path):
    make_corpus(tmp_path / "docs")
    with FakeOpenAI(reply=reply) as server:
        made = sh(tmp_path, server, "new", NAME, "--knowledge", "docs").stdout
        assert f"python -m recipes.docqa --config {NAME}.yaml" in made
        config = yaml.safe_load((tmp_path / f"{NAME}.yaml").read_text(encoding="utf-8"))
        assert config["ga_pairs"] == GA["pairs"] and "安装步骤" in config["tags"]["净水器使用手册"]
        config.update(embedder="hash", mix={"chunk": 1, "cross_chunk": 1, "tag": 1},
                      multi_turn={"every": 3, "turns": [2, 2]})
        config["tags"]["净水器使用手册"].append("水质检测")  # the user adds a tag
        (tmp_path / f"{NAME}.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        first = sh(tmp_path, server, "recipes.docqa", "--config", f"{NAME}.yaml", "--out", "run", "--limit", "1")
        assert "GA pairs: 售后客服 × 刚买机器的用户" in first.stdout
        # the user relabels a chunk not yet used, in the run's tags.yaml
        tags = yaml.safe_load((tmp_path / "run/tags.yaml").read_text(encoding="utf-8"))
        done = {c for s in read_jsonl(tmp_path / "run/accepted.jsonl") for c in s["meta"]["chunk_hashes"]}
        manual_chunk = next(h for h, src in _chunk_sources(tmp_path).items()
                            if src.startswith(("docs/manual.md", "docs/warranty.txt")) and h not in done)
        tags["chunks"][manual_chunk] = "净水器使用手册/我的标签"
        (tmp_path / "run/tags.yaml").write_text(yaml.safe_dump(tags, allow_unicode=True), encoding="utf-8")
        sh(tmp_path, server, "recipes.docqa", "--config", f"{NAME}.yaml", "--out", "run")
    metas = [s["meta"] for s in read_jsonl(tmp_path / "run/accepted.jsonl")]
    assert any(m["item_kind"] == "tag" and m["tag"] == "净水器使用手册/水质检测" for m in metas)
    relabelled = [m for m in metas if m["item_kind"] == "chunk" and m["chunk_hashes"] == [manual_chunk]]
    assert relabelled and all(m["tag"] == "净水器使用手册/我的标签" and m["tag_source"] == "tags.yaml"
                              for m in relabelled)
    # optional follow-ups, as in wulewule: every third item is a two-turn conversation
    turns = [len(s["turns"]) for s in read_jsonl(tmp_path / "run/accepted.jsonl")]
    assert 2 in turns and 1 in turns
    saved = yaml.safe_load((tmp_path / "run/tags.yaml").read_text(encoding="utf-8"))
    assert saved["chunks"][manual_chunk] == "净水器使用手册/我的标签"


def _chunk_sources(tmp_path: Path) -> dict[str, str]:
    sys.path.insert(0, str(REPO))
    from recipes.docqa.corpus import scan_corpus

    return {c.hash: c.chunk_id for c in scan_corpus([tmp_path / "docs"]).chunks}


def test_an_unreadable_file_is_skipped_and_said_in_the_corpus_line(tmp_path, unreadable, monkeypatch):
    """In-process, so the file can be made unreadable even for root (`chmod 000` does not stop root)."""
    from typer.testing import CliRunner

    from knowledge.cli import app as kb_app
    from recipes.docqa.__main__ import app as docqa_app

    make_corpus(tmp_path / "docs")
    secret = tmp_path / "docs/秘密.md"
    secret.write_text("# 机密\n" + "出差前要先在系统里提交申请，审批通过后才能订票。" * 4, encoding="utf-8")
    unreadable.add(secret)  # as after `chmod 000 秘密.md`
    runner = CliRunner(env={"COLUMNS": "200"})
    built = runner.invoke(kb_app, ["build", "docs", "--index", INDEX, "--embedder", "hash"])
    assert built.exit_code == 0 and "skipped 秘密.md: cannot read: Permission denied" in built.stderr
    with FakeOpenAI(reply=reply) as server:
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-model")
        result = runner.invoke(docqa_app, ["--knowledge", "docs", "--name", NAME, "--out", "run", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert re.search(r"corpus: \d+ chunks from 5 files, 1 skipped \(cannot read: Permission denied\) in 1 folders",
                     result.stdout), result.stdout
    assert sum(1 for ledger in ("accepted", "rejected") for _ in read_jsonl(tmp_path / f"run/{ledger}.jsonl")) == 2
    stats = json.loads((tmp_path / "run/stats.json").read_text(encoding="utf-8"))
    assert stats["chunks"]["files_skipped"] == {"cannot read: Permission denied": 1}


def test_a_tutorial_with_code_gets_its_own_title_and_clean_tags(tmp_path):
    """A Markdown tutorial quoting shell code: the document keeps its `#` title (a `# comment` in the
    code is no heading above it), and the tags the model chooses from carry no Markdown markup."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/guide.md").write_text(GUIDE_MD, encoding="utf-8")
    plan = docqa(tmp_path, None, "--dry-run").stdout
    tags = plan.split("<tags>\n", 1)[1].split("\n</tags>", 1)[0].splitlines()
    assert tags == ["数据制作教程", "数据制作教程/一、前言", "数据制作教程/2. 开启huixiangdou服务",
                    "数据制作教程/三、最终数据格式"], plan


MODELS_MD = """# 用大模型造数据

## 模型选择

我们用文心一言和通义千问两个中文大模型来生成多轮对话数据。文心一言生成的对话语气更加温和，通义千问生成的对话内容更加具体。两个模型的输出合并以后再统一清洗和去重。

## 生成步骤

先为每个场景写好提示词，再分别调用文心一言和通义千问的接口批量生成。每个场景生成二十条对话，生成失败的场景会在第二天自动重试。
"""


def test_an_answer_about_documents_that_name_llms_is_no_ai_self_reference(tmp_path):
    """A tutorial about making data with 文心一言 and 通义千问: an answer that names them from the passages
    is content, not the model speaking of itself (every such answer was rejected AI_SELF_REFERENCE)."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/models.md").write_text(MODELS_MD, encoding="utf-8")
    with FakeOpenAI(reply=reply) as server:
        docqa(tmp_path, server, "--out", "run")
    accepted = list(read_jsonl(tmp_path / "run/accepted.jsonl"))
    rejected = list(read_jsonl(tmp_path / "run/rejected.jsonl"))
    assert not [r for r in rejected if "AI_SELF_REFERENCE" in r["codes"]], rejected
    assert any(name in s["turns"][0]["output"] for s in accepted for name in ("文心一言", "通义千问")), accepted


def test_an_answer_that_speaks_to_its_audience_is_no_prompt_leak(tmp_path):
    """The GA pair is data in the answerer's prompt: 「对于准备考核的学生来说，…」 repeats the audience, not an
    instruction (12 characters shared with the prompt were rejected PROMPT_LEAK)."""
    def to_the_audience(req):
        if "- pairs" in req.system:
            return {"pairs": [{"genre": "考前复习", "audience": "第一次接触这些内容的新手"},
                              {"genre": "上岗培训", "audience": "需要照着一步步做的安装师傅"}]}
        answer = reply(req)
        if "- answer" in req.system:
            audience = re.search(r"提问者是\W*(\w+)", req.system).group(1)
            answer = {**answer, "answer": f"对于{audience}来说，{answer['answer']}"}
        return answer

    make_corpus(tmp_path / "docs")
    with FakeOpenAI(reply=to_the_audience) as server:
        docqa(tmp_path, server, "--out", "run", "--limit", "4")
    accepted = list(read_jsonl(tmp_path / "run/accepted.jsonl"))
    rejected = list(read_jsonl(tmp_path / "run/rejected.jsonl"))
    assert not [r for r in rejected if "PROMPT_LEAK" in r["codes"]], rejected
    assert any(s["turns"][0]["output"].startswith("对于") for s in accepted)


def test_a_question_with_no_word_of_its_passage_is_asked_again_then_rejected(tmp_path):
    """A 0.5B asker wrote 「请问，您在处理这种问题时如何理解关键事实与细节？」 for a passage about making data:
    it asks nothing of the passage (its answer, 「请提供具体的资料内容」, was accepted by the same model).
    Such a question is asked again, and the item rejected NOT_A_QUESTION if it stays so."""
    def off_the_passage(req):
        if "- question" in req.system and "<passage>" in req.text:
            return {"question": "请问，您在处理这种问题时如何理解关键事实与细节？"}
        return reply(req)

    make_corpus(tmp_path / "docs")
    with FakeOpenAI(reply=off_the_passage) as server:
        docqa(tmp_path, server, "--out", "run", "--limit", "6")
    accepted = list(read_jsonl(tmp_path / "run/accepted.jsonl"))
    rejected = list(read_jsonl(tmp_path / "run/rejected.jsonl"))
    chunk_items = [r for r in rejected if r["key"]["kind"] == "chunk"]
    assert chunk_items and all(r["codes"] == ["NOT_A_QUESTION"] for r in chunk_items), rejected
    assert all("资料中的词" in r["sample"]["meta"]["question_problem"] for r in chunk_items if r.get("sample"))
    assert not [s for s in accepted if s["meta"]["item_kind"] == "chunk"]


def test_a_question_that_says_who_asks_or_what_for_is_asked_again(tmp_path):
    """The prompt gives the genre, the audience and the angle to shape the question and says not to write
    them into it; a 0.5B asker wrote 「请问在学习复习中，…」. Such a question is asked again."""
    asked: list[str] = []

    def leaky_first(req):
        if "- question" in req.system and "<passage>" in req.text:
            genre = re.search(r"问题会用于「(.+?)」", req.text).group(1)
            good = reply(req)["question"]
            asked.append(f"请问在{genre}中，{good}" if not asked else good)
            return {"question": asked[-1]}
        return reply(req)

    make_corpus(tmp_path / "docs")
    with FakeOpenAI(reply=leaky_first) as server:
        docqa(tmp_path, server, "--out", "run", "--limit", "1")
    samples = [*read_jsonl(tmp_path / "run/accepted.jsonl"),
               *(r["sample"] for r in read_jsonl(tmp_path / "run/rejected.jsonl") if r.get("sample"))]
    assert len(asked) == 2 and [s["turns"][0]["input"] for s in samples] == [asked[1]], (asked, samples)


def test_a_run_over_an_index_a_newer_reader_reads_again_says_so(tmp_path, monkeypatch):
    """The run re-reads files an older zaoshu indexed (a reader fix, as headings inside code) and says so,
    as `zaoshu kb build` does: a user comparing the index with the last run sees why chunks moved."""
    from knowledge.store import Store

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/guide.md").write_text(GUIDE_MD, encoding="utf-8")
    sh(tmp_path, None, "kb", "build", "docs", "--index", INDEX, "--embedder", "hash")
    store = Store(tmp_path / INDEX / DB_FILE)
    readers = store.get_meta("readers")
    store.set_meta("readers", {root: {**versions, ".md": 2} for root, versions in readers.items()})
    store.commit()
    store.close()
    with FakeOpenAI(reply=reply) as server:
        out = docqa(tmp_path, server, "--out", "run", "--limit", "1").stdout
        again = docqa(tmp_path, server, "--out", "run", "--limit", "2").stdout
    assert (f"index {tmp_path / INDEX}: re-read 1 unchanged file (.md 1): this zaoshu reads them better than the one "
            "that indexed them") in out, out
    assert "re-read" not in again  # once
