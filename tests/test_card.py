"""The dataset card for real runs against the local server: the Hub's YAML header, the numbers, and
PNG plots that exist, are not blank, and draw their Chinese labels with a CJK font (no missing glyph)."""

import json
import logging
import os
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from finetune import card_plots
from finetune.card import write_card
from tests.test_reasoning import REPO, accepted, run_wulewule, zaoshu

PLOTS = {"card_samples_by_field", "card_lengths", "card_rejections", "card_quality", "card_usage"}


def header(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def assert_not_blank(png: Path) -> None:
    from matplotlib.image import imread

    pixels = imread(png)[..., :3]
    assert pixels.shape[0] > 150 and pixels.shape[1] > 300
    assert pixels.std() > 0.05, f"{png.name} looks blank"
    assert (pixels.mean(axis=2) < 0.5).mean() > 0.005, f"{png.name} has almost no dark pixels (no text, no bars)"


@pytest.fixture
def tianji_run(tmp_path, monkeypatch):
    from graphs.execute import execute
    from graphs.session import RunRequest
    from recipes.tianji.recipe import Tianji
    from tests.fake_openai import FakeOpenAI
    from tests.recipe_replies import reply

    config = yaml.safe_load((REPO / "recipes/tianji/tianji.yaml").read_text(encoding="utf-8"))
    config.update(roles=[{"name": "奶奶", "relation": "elder"}, {"name": "哥哥", "relation": "peer", "sibling": True}],
                  scenes=["生日", "工作升职"])
    path = tmp_path / "tianji.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with FakeOpenAI(reply=reply) as server:
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-model")
        monkeypatch.setenv("ZAOSHU_API_KEY", "sk-test-not-a-real-key-0000")
        console = Console(record=True, width=200, file=open(os.devnull, "w"))
        assert execute(Tianji(), RunRequest(config=path, out=tmp_path / "run", concurrency=2), console) == 0
    return tmp_path / "run", console.export_text()


def test_every_recipe_run_ends_with_a_card(tianji_run, caplog):
    run, text = tianji_run
    assert f"dataset card → {run / 'DATASET_CARD.md'}" in text
    card = (run / "DATASET_CARD.md").read_text(encoding="utf-8")
    meta = header(card)
    assert meta["language"] == ["zh"] and meta["size_categories"] == ["n<1K"]
    assert meta["task_categories"] == ["text-generation"] and meta["license"] == "other"
    # 2 roles × 2 scenes × 3 styles; the YAML's matrix excludes 奶奶 × 工作升职 (3 rejections)
    assert "**9** 条样本" in card and "被拒绝 3 条" in card
    assert "- 对象（role）：2 个取值" in card and "- 风格（style）：3 个取值" in card
    assert "| ROLE_SCENE_MISMATCH | 3 | 0 |" in card
    assert "知识覆盖率：未知（the run's config names no knowledge index (index_dir)）" in card
    assert "| responder | fake-model | 9 |" in card and "| critic | fake-model | 9 |" in card
    # no draft was sent back: the card points to no preference export (`--format dpo` would refuse this run)
    assert "退回后改好的草稿：0 份：没有可导出的偏好数据" in card and "--format dpo" not in card
    for name in PLOTS:
        assert f"]({name}.png)" in card
        assert_not_blank(run / f"{name}.png")


def test_card_command_for_a_run_with_revisions_and_an_index(tmp_path, monkeypatch, caplog):
    run = run_wulewule(tmp_path, monkeypatch)
    out = tmp_path / "card"
    with caplog.at_level(logging.WARNING):
        assert zaoshu("card", run, "--out", out, "--license", "apache-2.0") == 0
    assert "missing from the font" not in caplog.text and "no CJK font" not in caplog.text
    card = (out / "DATASET_CARD.md").read_text(encoding="utf-8")
    meta = header(card)
    assert meta["license"] == "apache-2.0" and "question-answering" in meta["task_categories"]
    assert {"dpo", "kto", "reasoning"} <= set(meta["tags"])
    assert "可导出为偏好数据（`zaoshu export RUN --format dpo|kto|xtuner-dpo`）" in card and "# 偏好数据对" in card
    assert "（12 轮带推理过程）" in card or "轮带推理过程" in card
    assert "| PREAMBLE | 0 |" in card and "| UNGROUNDED | 0 |" in card
    ledger = run / "rejected.jsonl"
    rejected = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()] if ledger.exists() else []
    duplicates = sum("DUPLICATE" in r["codes"] for r in rejected) / (len(rejected) + len(accepted(run)))
    assert "个片段中的" in card and f"近似重复率（因 DUPLICATE 被拒绝的占已完成条目的比例）：{duplicates:.1%}" in card
    assert "## 注意" not in card  # no missing glyph, no bad line, a CJK font found
    assert sorted(p.stem for p in out.glob("card_*.png")) == sorted(PLOTS)
    for png in out.glob("card_*.png"):
        assert_not_blank(png)


def test_the_cjk_font_is_found_and_a_missing_one_is_reported(tmp_path, monkeypatch):
    font = card_plots.cjk_font()
    assert font is not None and font.is_file()
    from matplotlib.font_manager import FontProperties
    from matplotlib.ft2font import FT2Font

    ft = FT2Font(str(font))
    assert all(ft.get_char_index(ord(c)) for c in "按方面统计的样本数近似重复率与知识覆盖率")
    assert "CJK" in FontProperties(fname=str(font)).get_name()

    plots = card_plots.Plots()
    card_plots.plot_rejections(plots, tmp_path, [("DUPLICATE", 2)])
    assert plots.missing_glyphs == {}
    monkeypatch.setattr(card_plots, "font_family", lambda: ["DejaVu Sans"])  # what a machine without the font gets
    card_plots.plot_rejections(plots, tmp_path, [("DUPLICATE", 2)])
    assert "Glyph" in plots.missing_glyphs["card_rejections"][0]


def test_card_of_a_folder_that_is_not_a_run_is_a_one_line_error(tmp_path, capsys):
    assert zaoshu("card", tmp_path) == 1
    err = capsys.readouterr().err
    assert "has no accepted.jsonl" in err and "Traceback" not in err


def test_card_with_no_stats_and_no_index_still_writes(tmp_path):
    from agents.schemas import Sample, Turn

    (tmp_path / "accepted.jsonl").write_text(
        Sample(id="x", recipe="demo", kind="qa", turns=[Turn(input="问", output="答。")], meta={"aspect": "测试"})
        .model_dump_json() + "\n{broken\n", encoding="utf-8")
    card = write_card(tmp_path).path.read_text(encoding="utf-8")
    assert "**1** 条样本" in card and "stats.json 没有记录各角色的用量。" in card
    assert "无法读取的行：accepted.jsonl: line 2: invalid JSON" in card


def test_docstring_examples_of_the_new_modules():
    import doctest

    import finetune.card
    import finetune.preference

    for module in (finetune.card, card_plots, finetune.preference):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_card_names_the_file_of_each_unreadable_line_of_a_sharded_run(tmp_path):
    """The card listed "line 3: invalid JSON" (which accepted.jsonl?) and "rejected.jsonl line 2: …" (which
    shard's?); it names the file within the run, as `zaoshu export` does."""
    from tests.fake_openai import FakeOpenAI
    from tests.recipe_replies import ACCEPT, reply
    from tests.test_recipe_cli import run, tianji_yaml

    def picky(req):  # the critic rejects both 春节 greetings
        if "- decision" in req.system and "春节" in req.text:
            return {**ACCEPT, "decision": "reject", "reason_codes": ["STYLE_MISMATCH"], "reasons": ["太随意"]}
        return reply(req)

    config = tianji_yaml(tmp_path)  # 2 roles × 3 scenes
    with FakeOpenAI(reply=picky) as server:
        for shard in ("1/2", "2/2"):
            made = run(tmp_path, server, "--config", str(config), "--out", "run", "--shard", shard, "--judge", "on")
            assert made.returncode == 0, made.stderr
    torn = []
    for ledger in sorted((tmp_path / "run/shards").glob("*/*ed.jsonl")):  # accepted.jsonl, rejected.jsonl
        lines = ledger.read_bytes().splitlines(keepends=True)
        if lines:
            ledger.write_bytes(b"".join(lines[:-1]) + lines[-1][:len(lines[-1]) // 2])
            torn.append(f"{ledger.relative_to(tmp_path / 'run')}: line {len(lines)}: invalid JSON")
    assert {t.split(":")[0].split("/")[-1] for t in torn} == {"accepted.jsonl", "rejected.jsonl"}

    assert zaoshu("card", tmp_path / "run") == 0
    card = (tmp_path / "run/DATASET_CARD.md").read_text(encoding="utf-8")
    listed = [line.removeprefix("- 无法读取的行：") for line in card.splitlines() if line.startswith("- 无法读取的行：")]
    assert sorted(line.split(" (")[0] for line in listed) == torn


def test_the_card_of_a_run_on_the_recipes_own_index_counts_its_coverage(tmp_path, monkeypatch):
    """A recipe run with no index_dir builds its index beside the run (runs/<recipe>/index); its card said
    the knowledge coverage was unknown, "the run's config names no knowledge index (index_dir)"."""
    from knowledge.index import KnowledgeBase

    run = run_wulewule(tmp_path, monkeypatch, index_dir=False)
    assert zaoshu("card", run) == 0
    with KnowledgeBase.open(tmp_path / "index") as kb:
        total = kb.stats()["chunks"]
    used = {src["chunk_id"] for s in accepted(run) for src in s["meta"].get("sources") or []}
    card = (run / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert f"- 知识覆盖率：样本引用了知识库 {total} 个片段中的 {len(used)} 个（{len(used) / total:.1%}）" in card


def test_the_cards_count_of_fixed_drafts_is_the_dpo_export_s(tmp_path, monkeypatch, capsys):
    """The card counted the reason codes of sent-back drafts (a draft later accepted word for word counted,
    a draft with two codes twice) and said they export as preference data: 8, where `--format dpo` wrote 6."""
    run = run_wulewule(tmp_path, monkeypatch)
    assert zaoshu("export", run, "--format", "dpo") == 0
    written = len((run / "exports" / "dpo" / "all.jsonl").read_text(encoding="utf-8").splitlines())
    sent_back = sum(d["decision"] != "accept" for s in accepted(run) for d in s["meta"]["drafts"])
    assert 0 < written < sent_back  # this run has drafts that are no pair
    assert zaoshu("card", run) == 0
    card = (run / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert f"- 退回后改好的草稿：{written} 份，可导出为偏好数据" in card


def test_the_card_counts_the_samples_export_writes_after_review(tmp_path, capsys):
    """With review.jsonl rejecting 2 of 12 samples, `zaoshu export` wrote 10 records and the card said 12."""
    from agents.schemas import Sample, Turn
    from graphs.review_ledger import ReviewEntry

    samples = [Sample(id=f"s{i:02d}", recipe="demo", kind="qa", turns=[Turn(input=f"问{i}", output=f"答{i}。")],
                      meta={"aspect": "甲" if i < 6 else "乙"}) for i in range(12)]
    (tmp_path / "accepted.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in samples), encoding="utf-8")
    review = [ReviewEntry(id="s00", action="reject", reason="UNGROUNDED", rev=1, base_rev=0),
              ReviewEntry(id="s01", action="reject", reason="UNGROUNDED", rev=1, base_rev=0),
              ReviewEntry(id="s07", action="edit", turn=0, output="改过的答案。", rev=1, base_rev=0)]
    (tmp_path / "review.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in review), encoding="utf-8")
    assert zaoshu("export", tmp_path) == 0
    assert "all: 10 records" in capsys.readouterr().out
    assert zaoshu("card", tmp_path) == 0
    card = (tmp_path / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert "**10** 条样本" in card and "- 方面（aspect）：2 个取值，乙 6、甲 4" in card
    assert "人工审阅（`review.jsonl`，已计入上面的样本数）：修改 1 条，审阅者拒绝 2 条，从被拒绝的样本中收回 0 条。" in card


def test_a_rejected_sample_the_reviewer_took_back_is_counted_once_as_accepted(tmp_path, capsys):
    """The card counted a sample the reviewer took back from rejected.jsonl among the samples and among the
    rejected ones too (5 samples, 3 rejected of 7 items), and its rejection code in the rejections table."""
    from agents.schemas import Sample, Turn
    from graphs.review_ledger import ReviewEntry

    def sample(i: int) -> Sample:
        return Sample(id=f"s{i}", recipe="demo", kind="qa", turns=[Turn(input=f"问{i}", output=f"答{i}。")])

    (tmp_path / "accepted.jsonl").write_text("".join(sample(i).model_dump_json() + "\n" for i in range(4)),
                                             encoding="utf-8")
    rejected = [{"id": f"s{i}", "key": {}, "codes": [code], "sample": sample(i).model_dump(mode="json")}
                for i, code in ((4, "TOO_SHORT"), (5, "UNGROUNDED"), (6, "UNGROUNDED"))]
    (tmp_path / "rejected.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected),
                                             encoding="utf-8")
    taken_back = ReviewEntry(id="s4", action="accept", rev=1, base_rev=0)
    (tmp_path / "review.jsonl").write_text(taken_back.model_dump_json() + "\n", encoding="utf-8")
    assert zaoshu("export", tmp_path) == 0
    assert "all: 5 records" in capsys.readouterr().out
    assert zaoshu("card", tmp_path) == 0
    card = (tmp_path / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert "**5** 条样本" in card and "被拒绝 2 条" in card
    assert "从被拒绝的样本中收回 1 条" in card
    assert "| TOO_SHORT |" not in card and "| UNGROUNDED | 2 | 0 |" in card


def test_a_stats_json_of_the_wrong_shape_is_named_and_the_card_is_written(tmp_path):
    """usage_by_role.critic a number, not an object: the card was an AttributeError traceback."""
    import subprocess
    import sys

    from agents.schemas import Sample, Turn

    sample = Sample(id="s0", recipe="demo", kind="qa", turns=[Turn(input="问", output="答。")])
    (tmp_path / "accepted.jsonl").write_text(sample.model_dump_json() + "\n", encoding="utf-8")
    (tmp_path / "stats.json").write_text('{"status": "completed", "usage_by_role": {"critic": 5}}', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "zaoshu_cli", "card", str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == (f"{tmp_path / 'stats.json'}: key 'usage_by_role.critic': Input should be a valid "
                                   "dictionary: its run's status, tokens and cost are unknown")
    card = (tmp_path / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert "运行状态：未知" in card and "stats.json 没有记录各角色的用量。" in card


@pytest.mark.parametrize("license,said", [
    ("Apache2", "warning: --license Apache2 is not a license id the Hub knows: did you mean apache-2.0? (the card "
                "says Apache2; for a license of your own, say other and add a LICENSE file)"),
    ("cc-by-nc-4.0", None),
])
def test_a_license_id_the_hub_does_not_know_is_warned_of(tmp_path, capsys, license, said):
    """`--license Apache2` went into the card's header as it was, and the Hub showed the dataset with no license."""
    from agents.schemas import Sample, Turn

    sample = Sample(id="s0", recipe="demo", kind="qa", turns=[Turn(input="问", output="答。")])
    (tmp_path / "accepted.jsonl").write_text(sample.model_dump_json() + "\n", encoding="utf-8")
    assert zaoshu("card", tmp_path, "--license", license) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert warnings == ([" ".join(said.split())] if said else [])
    assert header((tmp_path / "DATASET_CARD.md").read_text(encoding="utf-8"))["license"] == license


def test_a_second_card_in_the_same_folder_lists_only_its_own_plots(tmp_path, capsys):
    """`zaoshu card a --out docs` then `zaoshu card b --out docs`: b has no rejection, yet its line listed
    a's card_rejections.png, left in docs/ beside a card that does not show it."""
    from agents.schemas import Sample, Turn

    def make_run(name: str, rejected: str) -> Path:
        run = tmp_path / name
        run.mkdir()
        sample = Sample(id=name, recipe="demo", kind="qa", turns=[Turn(input="问", output="答。")], meta={"aspect": "甲"})
        (run / "accepted.jsonl").write_text(sample.model_dump_json() + "\n", encoding="utf-8")
        (run / "rejected.jsonl").write_text(rejected, encoding="utf-8")
        return run

    docs = tmp_path / "docs"
    assert zaoshu("card", make_run("a", '{"id": "r1", "codes": ["UNGROUNDED"]}\n'), "--out", docs) == 0
    assert "card_rejections.png" in capsys.readouterr().out
    assert zaoshu("card", make_run("b", ""), "--out", docs) == 0
    listed = " ".join(capsys.readouterr().out.split())
    assert "card_rejections" not in listed and "card_rejections" not in (docs / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert not (docs / "card_rejections.png").exists()
    assert f"(plots: {', '.join(sorted(p.name for p in docs.glob('card_*.png')))})" in listed


def test_card_of_a_file_names_the_card_command(tmp_path, capsys):
    """`zaoshu card runs/x/accepted.jsonl` said "export reads a run folder … then export FOLDER"."""
    data = tmp_path / "accepted.jsonl"
    data.write_text("", encoding="utf-8")
    assert zaoshu("card", data) == 1
    assert " ".join(capsys.readouterr().err.split()) == (
        f"error: {data} is a file, and card reads a run folder (runs/<recipe>/<run-name>/): "
        f"zaoshu merge {data} --out FOLDER, then zaoshu card FOLDER")
