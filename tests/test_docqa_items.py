"""docqa's work items without a model: proportions, caps, stable ids, incremental reruns, the chunk
account, and the one-line errors of the command."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from recipes.docqa.corpus import Corpus, DocChunk, chunk_hash
from recipes.docqa.items import chunk_accounting, keep_incremental, known_tags, plan_items, remember_items
from recipes.docqa.recipe import DocQAConfig
from recipes.docqa.tags import derive_tree

REPO = Path(__file__).resolve().parents[1]


def corpus(files: dict[str, list[str]]) -> Corpus:
    chunks = []
    for name, texts in files.items():
        for i, text in enumerate(texts):
            source = f"docs/{name}"
            chunks.append(DocChunk(chunk_hash(source, text), f"{source}#{i}", source, f"/d/{name}", "sha", i, text,
                                   f"第{i // 2 + 1}节", name.split(".")[0]))
    return Corpus(chunks=chunks)


def config(**changes) -> DocQAConfig:
    return DocQAConfig.model_validate({"recipe": "docqa", "name": "t", **changes})


LONG = "这是一段足够长的说明文字，讲的是设备的使用方法和注意事项。" * 9  # 270 characters → 1 question


def test_every_chunk_question_is_asked_and_the_kinds_follow_the_mix():
    c = corpus({"a.md": [LONG + str(i) for i in range(10)], "b.md": ["太短。"]})
    tree = derive_tree(c.chunks)
    plan = plan_items(c, config(mix={"chunk": 0.5, "cross_chunk": 0.25, "tag": 0.25}), tree, {}, 3)
    assert plan.by_kind() == {"chunk": 10, "cross_chunk": 5, "tag": 5}
    assert [i.payload["item_kind"] for i in plan.items[:3]] == ["chunk", "cross_chunk", "tag"]  # interleaved
    assert {i.payload["ga_slot"] for i in plan.items} <= {0, 1, 2}
    account = chunk_accounting(plan, {}, {i.id: [s["hash"] for s in i.payload["sources"]] for i in plan.items})
    assert account["skipped"] == {"too_short": 1}
    assert account["pending"] == 10 and account["total"] == 11


def test_max_items_caps_and_the_capped_chunks_are_counted():
    c = corpus({"a.md": [LONG + str(i) for i in range(10)]})
    plan = plan_items(c, config(max_items=4, mix={"chunk": 1, "cross_chunk": 0, "tag": 0}), {}, {}, 1)
    assert plan.by_kind() == {"chunk": 4}
    assert plan.skipped == {"proportion_cap": 6}
    finished = {plan.items[0].id: "accepted", plan.items[1].id: "rejected"}
    account = chunk_accounting(plan, finished, {i.id: [s["hash"] for s in i.payload["sources"]] for i in plan.items})
    assert (account["used"], account["failed"], account["pending"]) == (1, 1, 2)
    assert account["total"] == 10 == 1 + 1 + 2 + 6


def test_long_chunks_get_more_questions_and_duplicates_are_skipped():
    c = corpus({"a.md": [LONG * 3, LONG * 3], "b.md": [LONG * 3]})  # b repeats a's text
    plan = plan_items(c, config(mix={"chunk": 1, "cross_chunk": 0, "tag": 0}), {}, {}, 1)
    assert plan.by_kind() == {"chunk": 3} and plan.skipped == {"duplicate": 2}
    assert sorted(i.payload["n"] for i in plan.items) == [0, 1, 2]


def test_ids_are_stable_and_a_rerun_adds_only_new_material(tmp_path):
    first = corpus({"a.md": [LONG + str(i) for i in range(6)]})
    plan = plan_items(first, config(), derive_tree(first.chunks), {}, 4)
    remember_items(plan, tmp_path / "items.json")
    grown = corpus({"a.md": [LONG + str(i) for i in range(6)], "z.md": [LONG + "新" + str(i) for i in range(6)]})
    again = plan_items(grown, config(), derive_tree(grown.chunks), {}, 4)
    keep_incremental(again, tmp_path / "items.json")
    old_ids = {i.id for i in plan.items}
    new = [i for i in again.items if i.id not in old_ids]
    assert {i.id for i in again.items} >= {i.id for i in plan.items if i.payload["item_kind"] == "chunk"}
    assert new and all(any(s["source"] == "docs/z.md" for s in i.payload["sources"]) or
                       i.payload["tag"].startswith("z") for i in new)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("args, message", [
    ([], "error: docqa needs your documents: --knowledge DIR (or knowledge_folder in the YAML)"),
    (["--knowledge", "nowhere"], "error: Knowledge folder not found: "),
    (["--knowledge", "notes.md"], "error: Not a folder: "),  # the messages of zaoshu kb build
])
def test_docqa_command_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "notes.md").write_text("孙悟空", encoding="utf-8")
    result = run("recipes.docqa", "--dry-run", *args, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1


def test_a_folder_of_empty_and_blank_files_is_one_line_before_any_llm_call(tmp_path):
    from tests.fake_openai import FakeOpenAI
    from tests.recipe_replies import reply
    from tests.test_recipe_cli import run as run_recipe

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "empty.md").write_text("", encoding="utf-8")
    (docs / "blank.txt").write_text("  \n\n\t \n", encoding="utf-8")
    with FakeOpenAI(reply=reply) as server:
        result = run_recipe(tmp_path, server, "--knowledge", "docs", "--out", "run", recipe="docqa")
    assert result.returncode == 1 and len(server.requests) == 0
    assert result.stderr.strip() == f"error: no text in any file of {docs} (1 empty: no text, 1 empty file): " \
                                    f"give documents with text"


def test_name_and_knowledge_flags_belong_to_their_recipes(tmp_path):
    result = run("recipes.tianji", "--name", "x", "--dry-run", cwd=tmp_path)
    assert result.returncode != 0 and "--name" in result.stderr


def test_a_tag_the_user_adds_is_asked_about_on_the_next_run(tmp_path):
    c = corpus({"a.md": [LONG + str(i) for i in range(6)]})
    tree = derive_tree(c.chunks)
    plan = plan_items(c, config(), tree, {}, 4)
    remember_items(plan, tmp_path / "items.json")
    tree["a"].append("我加的标签")
    again = plan_items(c, config(), tree, {}, 4, known_tags(tmp_path / "items.json"))
    keep_incremental(again, tmp_path / "items.json")
    new = [i for i in again.items if i.id not in {j.id for j in plan.items}]
    assert {i.payload["tag"] for i in new} == {"a/我加的标签"}


def test_a_kind_with_a_share_but_nothing_to_ask_says_why():
    c = corpus({"a.md": [LONG + "甲"], "b.md": [LONG + "乙"]})  # one chunk per file: no pair to ask across
    plan = plan_items(c, config(), derive_tree(c.chunks), {}, 1)
    assert "cross_chunk" not in plan.by_kind() and plan.by_kind()["chunk"] == 2
    assert plan.none_because == {"cross_chunk": "no file gave two chunks"}


def test_sibling_chapters_are_tags_under_the_document_not_under_the_first_chapter(tmp_path):
    """A text file 「售后服务条例」 with 第一章 … 第三章, or a Markdown file whose sections are all `#`: the tag
    tree filed 第二章 and 第三章 under 第一章, the first heading taken for the document's title."""
    import yaml

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "条例.txt").write_bytes(
        "售后服务条例\n\n第一章 总则\n本条例适用于所有在本店购买净水器的用户，购买凭证请妥善保管，维修时需要出示。\n\n"
        "第二章 保修\n整机保修一年，主要部件保修三年，人为损坏和自行拆机不在保修范围之内，请知悉并妥善使用。\n\n"
        "第三章 退换\n七天内无理由退货，十五天内有质量问题可以换货，运费由商家承担，退货时请带齐配件。\n".encode("gb18030"))
    (docs / "guide.md").write_text(
        "# 安装\n主机应固定在橱柜内侧，距离地面不少于十厘米，并远离热源和阳光直射，进水管要用专用接头。\n\n"
        "# 使用\n每天第一次使用前请先放水三十秒，长时间不用时请关闭进水阀并拔掉电源插头，避免滤芯滋生细菌。\n",
        encoding="utf-8")
    (docs / "manual.md").write_text(  # one `#` title over `##` sections: the title stays the top tag
        "# 净水器手册\n\n## 滤芯\n" + "PP 棉滤芯每三个月更换一次，活性炭滤芯每六个月更换一次。" * 2 +
        "\n\n## 故障\n" + "出水量变小通常是前置滤芯堵塞，应优先更换 PP 棉滤芯。" * 2 + "\n", encoding="utf-8")
    made = run("zaoshu_cli", "new", "净水器", "--knowledge", "docs", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    tree = yaml.safe_load((tmp_path / "净水器.yaml").read_text(encoding="utf-8"))["tags"]
    assert tree == {"售后服务条例": ["第一章 总则", "第二章 保修", "第三章 退换"], "guide": ["安装", "使用"],
                    "净水器手册": ["滤芯", "故障"]}, tree
    plan = run("recipes.docqa", "--knowledge", "docs", "--name", "净水器", "--dry-run", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    tags = plan.stdout.split("<tags>\n", 1)[1].split("\n</tags>", 1)[0].splitlines()
    assert sorted(tags) == sorted(["售后服务条例", "售后服务条例/第一章 总则", "售后服务条例/第二章 保修",
                                   "售后服务条例/第三章 退换", "guide", "guide/安装", "guide/使用", "净水器手册",
                                   "净水器手册/滤芯", "净水器手册/故障"]), plan.stdout


def test_the_tag_tree_lists_a_documents_headings_in_its_order(tmp_path):
    """Short sections share a chunk, whose tag is the last of them: 「## 开机」 and 「## 关机」 came out as
    关机, 开机 in `zaoshu new`'s tags and in tags.yaml."""
    import yaml

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "说明书.md").write_text("# 使用说明\n\n## 开机\n按电源键。\n\n## 关机\n" +
                                     "长按电源键三秒，等指示灯熄灭后再拔掉插头，避免损坏主板和保存的设置。" * 2 + "\n",
                                     encoding="utf-8")
    made = run("zaoshu_cli", "new", "说明书", "--knowledge", "docs", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert yaml.safe_load((tmp_path / "说明书.yaml").read_text(encoding="utf-8"))["tags"] == {"使用说明": ["开机", "关机"]}


@pytest.mark.parametrize("edited, message", [
    ("净水器使用手册: [滤芯更换, 我的标签]\n",  # the tree written without `tree:`: it was ignored, then overwritten
     "unknown key '净水器使用手册': expected 'tree' (level-1 tag → list of level-2 tags) and 'chunks' (id → tag); "
     "put level-1 tags under 'tree:'"),
    ("- 净水器使用手册\n- 安全须知\n",  # a list: it was a traceback (AttributeError)
     "expected 'tree' (level-1 tag → list of level-2 tags) and 'chunks' (id → tag)"),
])
def test_a_tags_yaml_edited_into_another_shape_is_one_line_and_kept(tmp_path, edited, message):
    from tests.docqa_corpus import make_corpus
    from tests.docqa_replies import reply
    from tests.fake_openai import FakeOpenAI
    from tests.test_recipe_cli import run as run_recipe

    make_corpus(tmp_path / "docs")
    with FakeOpenAI(reply=reply) as server:
        first = run_recipe(tmp_path, server, "--knowledge", "docs", "--out", "run", "--limit", "1", recipe="docqa")
        assert first.returncode == 0, first.stderr
        tags = tmp_path / "run" / "tags.yaml"
        tags.write_text(edited, encoding="utf-8")
        calls = len(server.requests)
        again = run_recipe(tmp_path, server, "--knowledge", "docs", "--out", "run", recipe="docqa")
        assert len(server.requests) == calls  # refused before any LLM call
    assert again.returncode == 1 and again.stderr.strip() == f"error: {Path('run/tags.yaml')}: {message}", again.stderr
    assert tags.read_text(encoding="utf-8") == edited


def test_more_questions_per_chunk_than_angles_is_one_line(tmp_path):
    """max_questions_per_chunk: 8 planned questions 6–8 from angles already used (the n-th question asks from
    angle n mod 5): paid-for duplicates. The YAML's own comment says each comes from another angle."""
    from tests.docqa_corpus import make_corpus

    make_corpus(tmp_path / "docs")
    (tmp_path / "q.yaml").write_text("recipe: docqa\nname: 净水器\nknowledge_folder: docs\n"
                                      "chars_per_question: 20\nmax_questions_per_chunk: 8\n", encoding="utf-8")
    result = run("recipes.docqa", "--config", "q.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip() == ("error: q.yaml: key 'max_questions_per_chunk': at most 5: each "
                                     "question of a chunk asks from another angle (关键事实与细节、原因、目的或原理、"
                                     "具体做法或步骤、条件、限制与例外、比较与区别)")


def test_a_long_document_and_its_copy_are_asked_about_once(tmp_path):
    """手册.md and its copy 手册(1).md, 60 sections each: only a chunk equal to one of the 50 before it was a
    duplicate, so the copy's 60 chunks were asked about again (120 chunk questions, all paid twice)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    sections = [f"## 第{i}节\n" + f"这是第{i}节的说明文字，讲的是设备的第{i}项功能如何使用，以及使用时需要注意的事项。" * 2
                for i in range(60)]
    (docs / "手册.md").write_text("# 手册\n\n" + "\n\n".join(sections), encoding="utf-8")
    (docs / "手册(1).md").write_text((docs / "手册.md").read_text(encoding="utf-8"), encoding="utf-8")
    plan = run("recipes.docqa", "--knowledge", "docs", "--name", "手册", "--dry-run", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines()[1].startswith("items by kind: chunk 60 · "), plan.stdout[:300]


def test_a_run_from_inside_the_documents_folder_does_not_read_its_own_output(tmp_path):
    """`cd docs && python -m recipes.docqa --knowledge .`: the index and the run folders land in docs/runs/, and
    the next run read them as documents — accepted.jsonl, the dataset card, the index's vocabulary — and asked
    questions about its own samples (8 chunks became 28)."""
    from tests.docqa_corpus import make_corpus
    from tests.docqa_replies import reply
    from tests.fake_openai import FakeOpenAI
    from tests.test_recipe_cli import run as run_recipe

    make_corpus(tmp_path)  # the working directory is the documents folder
    with FakeOpenAI(reply=reply) as server:
        first = run_recipe(tmp_path, server, "--knowledge", ".", "--name", "净水器", recipe="docqa")
        assert first.returncode == 0, first.stderr
        again = run_recipe(tmp_path, server, "--knowledge", ".", "--name", "净水器", "--fresh", recipe="docqa")
    assert again.returncode == 0, again.stderr
    corpus = [line for line in again.stdout.splitlines() if line.startswith("corpus: ")]
    assert corpus and corpus[0].startswith("corpus: 8 chunks from 5 files, 1 skipped (zaoshu's own output: a run "
                                           "folder), 1 skipped (zaoshu's own output: a knowledge index) in 1 folders"), \
        again.stdout
    index = re.search(r"index \S+: (\d+) chunks from (\d+) files", again.stdout)
    assert index and index.groups() == ("8", "5"), again.stdout


def test_a_damaged_items_json_is_one_line_and_kept(tmp_path):
    """items.json (the run's record of what it planned) cut short was a JSONDecodeError traceback."""
    from tests.docqa_corpus import make_corpus
    from tests.docqa_replies import reply
    from tests.fake_openai import FakeOpenAI
    from tests.test_recipe_cli import run as run_recipe

    make_corpus(tmp_path / "docs")
    with FakeOpenAI(reply=reply) as server:
        first = run_recipe(tmp_path, server, "--knowledge", "docs", "--out", "run", "--limit", "1", recipe="docqa")
        assert first.returncode == 0, first.stderr
        record = tmp_path / "run" / "items.json"
        record.write_text('{"items": [', encoding="utf-8")
        again = run_recipe(tmp_path, server, "--knowledge", "docs", "--out", "run", recipe="docqa")
    assert again.returncode == 1 and again.stderr.strip() == (
        f"error: {Path('run/items.json')}: not the record docqa writes (Expecting value at line 1, column 12); "
        "delete it and run again (finished items are skipped all the same)"), again.stderr
    assert record.read_text(encoding="utf-8") == '{"items": ['


def test_a_word_title_over_heading_1_sections_is_the_documents_top_tag(tmp_path):
    """Word writes the Title style and Heading 1 both as `#`: read as sibling headings, the title and its
    sections became tags under the file name (safety: [净水器安全手册, 用电安全, 儿童与宠物])."""
    import docx
    import yaml

    docs = tmp_path / "docs"
    docs.mkdir()
    document = docx.Document()
    document.add_heading("净水器安全手册", level=0)  # the Title style
    for heading in ("用电安全", "儿童与宠物"):
        document.add_heading(heading, level=1)
        document.add_paragraph("机器必须使用带有接地线的三孔插座，插座额定电流不低于十安培。请勿用湿手插拔电源插头，"
                               "也不要在电源线上放置重物。")
    document.save(str(docs / "safety.docx"))
    made = run("zaoshu_cli", "new", "安全", "--knowledge", "docs", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    tags = yaml.safe_load((tmp_path / "安全.yaml").read_text(encoding="utf-8"))["tags"]
    assert tags == {"净水器安全手册": ["用电安全", "儿童与宠物"]}, tags


def test_a_renamed_documents_folder_is_said_to_be_dropped_from_the_index(tmp_path):
    """`mv docs 资料`, then docqa on 资料: the index forgot docs/ without a word (it had kept its chunks,
    found twice, before `kb build` learned to drop a folder that is gone)."""
    from tests.docqa_corpus import make_corpus
    from tests.docqa_replies import reply
    from tests.fake_openai import FakeOpenAI
    from tests.test_recipe_cli import run as run_recipe

    make_corpus(tmp_path / "docs")
    with FakeOpenAI(reply=reply) as server:
        first = run_recipe(tmp_path, server, "--knowledge", "docs", "--name", "净水器", "--limit", "1", recipe="docqa")
        assert first.returncode == 0, first.stderr
        (tmp_path / "docs").rename(tmp_path / "资料")
        again = run_recipe(tmp_path, server, "--knowledge", "资料", "--name", "净水器", "--limit", "1", recipe="docqa")
    assert again.returncode == 0, again.stderr
    index = (tmp_path / "runs/docqa/index-净水器").resolve()
    assert (f"index {index}: dropped {(tmp_path / 'docs').resolve()}: the folder is gone: its 5 files (8 chunks) "
            "are dropped from the index") in again.stdout, again.stdout
    assert re.search(r"index \S+: 8 chunks from 5 files", again.stdout), again.stdout


def test_a_markdown_files_yaml_header_gives_its_title_not_a_dashes_tag(tmp_path):
    """A Hugo/Jekyll page (`---` / `title: 安装指南` / `---`, then `# 安装`, `# 使用`) had the tag '---'."""
    import yaml

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text(
        "---\ntitle: 安装指南\ndate: 2024-01-01\n---\n\n# 安装\n"
        "主机应固定在橱柜内侧，距离地面不少于十厘米，并远离热源和阳光直射，进水管要用专用接头。\n\n# 使用\n"
        "每天第一次使用前请先放水三十秒，长时间不用时请关闭进水阀并拔掉电源插头，避免滤芯滋生细菌。\n", encoding="utf-8")
    made = run("zaoshu_cli", "new", "指南", "--knowledge", "docs", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    tags = yaml.safe_load((tmp_path / "指南.yaml").read_text(encoding="utf-8"))["tags"]
    assert tags == {"安装指南": ["安装", "使用"]}, tags


def test_a_folder_that_gives_nothing_to_ask_is_one_line_before_any_call(tmp_path):
    """A folder of one-line notes (every chunk under min_chunk_chars): the dry run said '0 work items' with no
    reason, and a run asked the model for genre × audience pairs and then did nothing."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("问：滤芯多久换？答：半年。\n", encoding="utf-8")
    (docs / "b.txt").write_text("问：保修多久？答：一年。\n", encoding="utf-8")
    result = run("recipes.docqa", "--knowledge", "docs", "--name", "笔记", "--dry-run", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip() == (
        "error: nothing to ask: chunk 0 (no chunk long enough); cross_chunk 0 (no file gave two chunks); tag 0 "
        "(no tags); chunks skipped: too_short 2 (shorter than min_chunk_chars, 40 characters)")
