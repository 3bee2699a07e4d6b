"""`export_run`, `merge_runs`, `file_stats` and the `zaoshu export / merge / stats` commands."""

import json
import os
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agents.errors import InputError
from agents.schemas import Sample, Turn
from finetune.export import export_run, file_stats, read_samples, seeded_split
from finetune.merge import merge_runs
from finetune.export_cli import register
from tests.fake_openai import FakeOpenAI
from tests.recipe_replies import reply
from tests.revise_replies import REVISE
from tests.test_reasoning import zaoshu
from tests.test_recipe_cli import run as run_recipe
from tests.test_recipe_cli import tianji_yaml

REFERENCE = Path(__file__).parents[2] / "shared" / "reference"


def make_samples(n: int = 10) -> list[Sample]:
    return [
        Sample.new(recipe="demo", kind="qa" if i % 2 else "dialogue", key={"n": i}, system="你是助手" if i % 2 else "",
                   turns=[Turn(input=f"问题{i}", output="答" * (i + 1))] * (1 if i % 2 else 2),
                   meta={"aspect": "角色" if i < 4 else "剧情", "critic": {"reason_codes": ["TOO_SHORT"] * (i % 3)}})
        for i in range(n)
    ]


def write_run(run_dir: Path, samples: list[Sample], extra_lines: tuple[str, ...] = ()) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = [s.model_dump_json() for s in samples] + list(extra_lines)
    (run_dir / "accepted.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return run_dir


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def run(tmp_path) -> Path:
    return write_run(tmp_path / "runs" / "demo" / "r1", make_samples())


# ---------------------------------------------------------------- export


def test_split_counts_and_files(run):
    report = export_run(run, "xtuner", split=0.7, seed=42)
    assert report.counts == {"train": 7, "test": 3}
    assert report.files == {"train": run / "exports/xtuner/train.jsonl", "test": run / "exports/xtuner/test.jsonl"}
    train, test = read_jsonl(report.files["train"]), read_jsonl(report.files["test"])
    assert len(train) == 7 and len(test) == 3
    inputs = sorted(r["conversation"][-1]["input"] for r in train + test)
    assert inputs == sorted(f"问题{i}" for i in range(10))
    assert report.dataset_info is None and not (run / "exports/xtuner/dataset_info.json").exists()


def test_split_is_seeded_and_independent_of_file_order(run, tmp_path):
    first = export_run(run, "openai", split=0.7, seed=42).files["train"].read_text(encoding="utf-8")
    assert export_run(run, "openai", split=0.7, seed=42).files["train"].read_text(encoding="utf-8") == first
    shuffled = write_run(tmp_path / "r2", list(reversed(make_samples())))
    assert export_run(shuffled, "openai", split=0.7, seed=42).files["train"].read_text(encoding="utf-8") == first
    assert export_run(run, "openai", split=0.7, seed=7).files["train"].read_text(encoding="utf-8") != first


def test_seeded_split_rounds_half_up_and_checks_the_fraction():
    assert [len(part) for part in seeded_split(range(240), 0.7)] == [168, 72]
    assert [len(part) for part in seeded_split(range(5), 0.5)] == [3, 2]
    with pytest.raises(InputError, match="between 0 and 1"):
        seeded_split(range(5), 1.5)


def test_docstring_examples():
    import doctest

    import finetune.export
    import finetune.merge

    results = [doctest.testmod(module) for module in (finetune.export, finetune.merge)]
    assert [r.failed for r in results] == [0, 0] and all(r.attempted >= 1 for r in results)
    assert sum(r.attempted for r in results) >= 5


def test_no_split_writes_all_and_replaces_an_earlier_split(run):
    export_run(run, "alpaca", split=0.7)
    report = export_run(run, "alpaca")
    assert report.counts == {"all": 10}
    assert sorted(p.name for p in (run / "exports/alpaca").iterdir()) == ["all.jsonl", "dataset_info.json"]
    info = json.loads((run / "exports/alpaca/dataset_info.json").read_text(encoding="utf-8"))
    assert info == {"r1_all": {"file_name": "all.jsonl", "formatting": "alpaca", "columns": {
        "prompt": "instruction", "query": "input", "response": "output", "system": "system", "history": "history"}}}


def test_json_arrays_and_kept_meta(run):
    report = export_run(run, "sharegpt", split=0.5, as_json=True, keep_meta=True)
    train = json.loads(report.files["train"].read_text(encoding="utf-8"))
    assert report.files["train"].name == "train.json" and isinstance(train, list) and len(train) == 5
    assert {"conversations", "system", "id", "meta"} <= set(train[0])
    info = json.loads(report.dataset_info.read_text(encoding="utf-8"))
    assert sorted(info) == ["r1_test", "r1_train"] and info["r1_train"]["file_name"] == "train.json"


def test_meta_is_stripped_by_default(run):
    record = read_jsonl(export_run(run, "openai").files["all"])[0]
    assert set(record) == {"messages"}


def test_pretrain_export_matches_xtuner_incremental_format(tmp_path):
    chunks = [Sample.new(recipe="wulewule", kind="pretrain", key=str(i), turns=[Turn(input="", output=f"第{i}段")])
              for i in range(3)]
    report = export_run(write_run(tmp_path / "r", chunks), "pretrain")
    assert sorted(read_jsonl(report.files["all"]), key=str) == [
        {"conversation": [{"input": "", "output": f"第{i}段"}]} for i in range(3)]


def test_bad_lines_are_reported_and_skipped(tmp_path):
    run = write_run(tmp_path / "r", make_samples(3), extra_lines=("{oops", '{"kind": "qa"}'))
    report = export_run(run, "xtuner")
    assert report.counts == {"all": 3}
    assert [(b.line, b.reason.split(" ")[0]) for b in report.bad_lines] == [(4, "invalid"), (5, "unrecognised")]


def test_export_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="run directory not found"):
        export_run(tmp_path / "nope", "xtuner")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no accepted.jsonl"):
        export_run(tmp_path / "empty", "xtuner")
    with pytest.raises(InputError, match="unknown format 'csv'"):
        export_run(tmp_path / "empty", "csv")
    run = write_run(tmp_path / "r", make_samples(3))
    with pytest.raises(InputError, match="between 0 and 1"):
        export_run(run, "xtuner", split=0)


# ---------------------------------------------------------------- merge


def test_merge_drops_normalized_duplicates_and_feeds_export(tmp_path):
    a = write_run(tmp_path / "a", make_samples(4))
    twin = Sample.new(recipe="other", kind="qa", key="x", system="你是助手",
                      turns=[Turn(input=" 问题1 ", output="答答")])  # = sample 1 up to spaces
    fullwidth = Sample.new(recipe="other", kind="qa", key="y", turns=[Turn(input="ＡＢＣ", output="ok")])
    ascii_twin = Sample.new(recipe="other", kind="qa", key="z", turns=[Turn(input="abc", output="OK")])
    b = write_run(tmp_path / "b", [twin, fullwidth, ascii_twin])
    report = merge_runs([a, b], tmp_path / "merged")
    assert report.read == {str(a): 4, str(b): 3}
    assert (report.duplicates, report.written) == (2, 5)
    assert report.out == tmp_path / "merged" / "accepted.jsonl"
    assert export_run(tmp_path / "merged", "openai", split=0.6).counts == {"train": 3, "test": 2}
    assert merge_runs([a, b], tmp_path / "all.jsonl", dedup=False).written == 7


def test_merge_reads_export_files_too(tmp_path, run):
    exported = export_run(run, "sharegpt").files["all"]
    report = merge_runs([run, exported], tmp_path / "m.jsonl")
    assert (report.written, report.duplicates) == (10, 10)
    samples, bad = read_samples(tmp_path / "m.jsonl")
    assert len(samples) == 10 and not bad


def test_merge_refuses_to_overwrite_an_input(run):
    with pytest.raises(InputError, match="also an input"):
        merge_runs([run], run)


# ---------------------------------------------------------------- stats


def test_stats_exact_values(run):
    stats = file_stats(run / "accepted.jsonl", by=["aspect", "critic.reason_codes", "kind", "nothing"])
    assert stats["records"] == 10 and stats["bad_lines"] == []
    assert stats["formats"] == {"sample": 10} and stats["kinds"] == {"dialogue": 5, "qa": 5}
    assert stats["turns"] == {"total": 15, "min": 1, "mean": 1.5, "max": 2}
    assert stats["input_chars"] == {"min": 3, "mean": 3.0, "p50": 3, "p95": 3, "max": 3}
    # outputs: i+1 chars, dialogues (even i) twice: 1,1,2,3,3,4,5,5,6,7,7,8,9,9,10
    assert stats["output_chars"] == {"min": 1, "mean": 5.3, "p50": 5, "p95": 10, "max": 10}
    assert stats["by"]["aspect"] == {"剧情": 6, "角色": 4}
    assert stats["by"]["critic.reason_codes"] == {"TOO_SHORT": 9}
    assert stats["by"]["kind"] == {"dialogue": 5, "qa": 5}
    assert stats["by"]["nothing"] == {"(missing)": 10}
    assert stats["with_system"] == 5


@pytest.mark.parametrize("fmt", ["xtuner", "openai", "alpaca", "sharegpt"])
def test_stats_agree_across_formats(run, fmt):
    expected = file_stats(run / "accepted.jsonl")
    got = file_stats(export_run(run, fmt).files["all"])
    assert got["formats"] == {fmt: 10}
    for key in ("records", "turns", "input_chars", "output_chars", "kinds", "with_system"):
        assert got[key] == expected[key], key


def test_stats_on_the_real_ruozhiba_file():
    path = REFERENCE / "ruozhiba" / "ruozhiba_raw.jsonl"
    if not path.is_file():
        pytest.skip(f"reference data absent: {path}")
    stats = file_stats(path, by=["answer_from", "task_type.minor"])
    assert stats["records"] == 240 and stats["formats"] == {"alpaca": 240}
    assert (stats["input_chars"]["min"], stats["input_chars"]["max"], stats["input_chars"]["mean"]) == (9, 215, 27.4)
    assert (stats["output_chars"]["min"], stats["output_chars"]["max"], stats["output_chars"]["mean"]) == (7, 600, 257.8)
    assert stats["by"]["answer_from"] == {"llm": 240}
    assert stats["by"]["task_type.minor"] == {"逻辑问答": 240, "隐喻理解": 240}


def test_stats_reads_a_json_array():
    path = REFERENCE / "emollm" / "data_json_first20.json"
    if not path.is_file():
        pytest.skip(f"reference data absent: {path}")
    stats = file_stats(path)
    assert stats["records"] == 20 and stats["formats"] == {"xtuner": 20} and stats["with_system"] == 20


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_export(cli, run):
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "alpaca", "--split", "0.7", "--seed", "42"])
    assert result.exit_code == 0, result.output
    assert f"train: 7 records → {run / 'exports/alpaca/train.jsonl'}" in result.output
    assert "test: 3 records" in result.output and "dataset_info" in result.output
    result = CliRunner().invoke(cli, ["export", str(run), "-f", "xtuner", "--json", "--keep-meta"])
    assert result.exit_code == 0, result.output
    assert "meta" in json.loads((run / "exports/xtuner/all.json").read_text(encoding="utf-8"))[0]


def test_a_run_that_accepted_nothing_exports_kto_and_says_why_other_formats_have_nothing(tmp_path, capsys):
    with FakeOpenAI(reply=lambda req: REVISE if "- decision" in req.system else reply(req)) as server:  # never accepts
        made = run_recipe(tmp_path, server, "--config", str(tianji_yaml(tmp_path)), "--out", "run", "--limit", "2")
    run = tmp_path / "run"
    assert made.returncode == 0 and "accepted 0 · rejected 2" in made.stdout, made.stderr
    assert not (run / "accepted.jsonl").exists()
    assert zaoshu("export", run, "--format", "kto") == 0
    records = read_jsonl(run / "exports/kto/all.jsonl")
    assert len(records) == 6 and {r["kto_tag"] for r in records} == {False}  # 3 judged drafts of each rejected item
    capsys.readouterr()
    dpo = "a dpo pair needs an accepted turn as `chosen` (--format kto writes the rejected drafts)"
    for fmt, why in (("openai", "nothing to export as openai"), ("dpo", dpo)):
        assert zaoshu("export", run, "--format", fmt) == 1
        assert capsys.readouterr().err == f"error: {run} has no accepted samples: {why}\n"
    (tmp_path / "notes").mkdir()
    assert zaoshu("export", tmp_path / "notes", "--format", "kto") == 1
    assert "is it a run directory" in capsys.readouterr().err


def test_a_split_near_0_or_1_keeps_a_sample_on_each_side(tmp_path, capsys):
    run = write_run(tmp_path / "r", make_samples(14))
    for split, train, test in (("0.99", 13, 1), ("0.01", 1, 13)):
        assert zaoshu("export", run, "--split", split) == 0
        out = capsys.readouterr().out
        assert f"train: {train} records → {run / 'exports/xtuner/train.jsonl'}" in out
        assert f"test: {test} records → {run / 'exports/xtuner/test.jsonl'}" in out
        assert [len(read_jsonl(run / f"exports/xtuner/{name}.jsonl")) for name in ("train", "test")] == [train, test]
    assert [len(part) for part in seeded_split(range(2), 0.9)] == [1, 1]


def test_a_split_of_one_sample_is_a_one_line_error_that_says_why(tmp_path, capsys):
    run = write_run(tmp_path / "r", make_samples(1))
    assert zaoshu("export", run, "--split", "0.7") == 1
    assert capsys.readouterr().err == "error: --split 0.7 needs at least 2 samples, one for train and one for test; there is 1\n"
    assert not (run / "exports/xtuner/train.jsonl").exists()
    assert zaoshu("export", run) == 0 and len(read_jsonl(run / "exports/xtuner/all.jsonl")) == 1


def test_cli_export_user_mistake_is_an_input_error(cli, run):
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "csv"])
    assert result.exit_code == 1 and isinstance(result.exception, InputError)
    assert str(result.exception) == ("unknown format 'csv'; choose one of: "
                                     "xtuner, openai, alpaca, sharegpt, pretrain, dpo, kto, xtuner-dpo")


def test_merge_into_a_recipe_run_is_refused_and_keeps_its_samples(run, tmp_path, capsys):
    """`zaoshu merge runs/a --out runs/b`, b a recipe's run: b's 12 accepted samples were replaced by a's 10
    ("wrote 10 samples to runs/b/accepted.jsonl"), leaving b's stats.json and ledgers describing samples gone."""
    other = write_run(tmp_path / "runs" / "demo" / "r2", make_samples(12)[::-1])
    (other / "stats.json").write_text('{"accepted": 12}', encoding="utf-8")
    (other / "rejected.jsonl").write_text("", encoding="utf-8")
    before = (other / "accepted.jsonl").read_bytes()
    for out in (other, other / "accepted.jsonl"):
        assert zaoshu("merge", run, "--out", out) == 1
        err = capsys.readouterr().err
        assert err.strip() == (f"error: {other} is a recipe's run (it has stats.json, rejected.jsonl): merging into "
                               f"it would replace its 12 accepted samples; choose a new --out, or name {other} "
                               f"as an input")
        assert (other / "accepted.jsonl").read_bytes() == before
    assert zaoshu("merge", run, other, "--out", tmp_path / "m") == 0
    assert zaoshu("merge", run, other, "--out", tmp_path / "m") == 0  # a merge's own folder: the rerun rewrites it
    assert len(read_jsonl(tmp_path / "m" / "accepted.jsonl")) == 12


def test_runs_show_of_a_merged_folder_counts_its_ledger_lines(run, tmp_path, capsys):
    """`zaoshu merge --out` writes accepted.jsonl only: `runs show` said "accepted 0" (stats.json's count,
    absent) above tables that counted 12 samples."""
    other = write_run(tmp_path / "other", make_samples(12))
    assert zaoshu("merge", run, other, "--out", tmp_path / "m") == 0
    capsys.readouterr()
    assert zaoshu("runs", "show", tmp_path / "m") == 0
    shown = capsys.readouterr().out
    assert f"{tmp_path / 'm'}  accepted 12  rejected 0  (ledger lines; no stats.json, so no status, failures, " \
           "tokens or cost)" in " ".join(shown.split("\n"))
    assert "by aspect" in shown and "剧情 (accepted) │     8" in shown
    assert zaoshu("runs", "show", tmp_path / "m", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stats"] == {} and summary["lines"] == {"accepted": 12, "rejected": 0}


def test_cli_merge_and_stats(cli, run, tmp_path):
    other = write_run(tmp_path / "other", make_samples(12))
    result = CliRunner().invoke(cli, ["merge", str(run), str(other), "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "wrote 12 samples" in result.output and "(10 duplicates dropped)" in result.output
    result = CliRunner().invoke(cli, ["stats", str(tmp_path / "m" / "accepted.jsonl"), "--by", "aspect", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["records"] == 12 and stats["by"]["aspect"] == {"剧情": 8, "角色": 4}
    result = CliRunner().invoke(cli, ["stats", str(run / "accepted.jsonl"), "--by", "aspect"])
    assert result.exit_code == 0, result.output
    assert "output chars per turn" in result.output and "剧情" in result.output


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_exported_files_are_readable_as_the_umask_allows(cli, run, umask):
    """User tryout: `zaoshu export` wrote train/test/all.jsonl as 0600 (a temp file's mode) whatever the umask,
    beside a 0644 dataset_info.json, so a training job under another user could not read them."""
    before = os.umask(umask)
    try:
        result = CliRunner().invoke(cli, ["export", str(run), "--format", "alpaca", "--split", "0.7"])
    finally:
        os.umask(before)
    assert result.exit_code == 0, result.output
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (run / "exports/alpaca").iterdir()}
    assert modes == dict.fromkeys(["train.jsonl", "test.jsonl", "dataset_info.json"], 0o666 & ~umask)


def test_what_is_not_a_sample_is_named_and_left_out_of_a_merge(tmp_path, capsys):
    """A kto export's undesirable drafts had become accepted samples, and an empty answer a training record."""
    data = tmp_path / "brought.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"conversations": [{"from": "human", "value": "问一"}, {"from": "gpt", "value": "好的回答。"}], "kto_tag": True},
        {"conversations": [{"from": "human", "value": "问二"}, {"from": "gpt", "value": "被退回的草稿"}], "kto_tag": False},
        {"instruction": "问三", "input": "", "output": " "},
    ]) + "\n", encoding="utf-8")
    assert zaoshu("merge", data, "--out", tmp_path / "m") == 0
    out = capsys.readouterr().out
    assert "line 2: a KTO record marked undesirable (kto_tag: false)" in out and "line 3: turn 1 has an empty answer" in out
    assert [s["turns"][0]["input"] for s in read_jsonl(tmp_path / "m" / "accepted.jsonl")] == ["问一"]
    assert zaoshu("export", tmp_path / "m" / "accepted.jsonl") == 1
    assert "is a file, and export reads a run folder" in capsys.readouterr().err


def test_with_reasoning_for_pretraining_is_a_one_line_error(run, capsys):
    """It was ignored without a word: the user thought the thinking was in the pretraining text."""
    assert zaoshu("export", run, "--format", "pretrain", "--with-reasoning") == 1
    assert "--with-reasoning does nothing for --format pretrain" in capsys.readouterr().err
    assert not (run / "exports" / "pretrain").exists()


@pytest.mark.parametrize("command", ["card", "merge"])
def test_an_out_that_is_a_file_is_one_line_and_leaves_the_file(run, tmp_path, command, capsys):
    """`--out notes.txt` (a file) or a folder under it was a FileExistsError traceback."""
    notes = tmp_path / "notes.txt"
    notes.write_text("我的笔记\n", encoding="utf-8")
    assert zaoshu(command, run, "--out", notes) == 1
    err = capsys.readouterr().err
    assert f"error: --out {notes} is a file, not a folder" in " ".join(err.split()) and "Traceback" not in err
    assert zaoshu(command, run, "--out", notes / "sub") == 1
    assert f"error: --out {notes / 'sub'}: {notes} is a file, not a folder" in " ".join(capsys.readouterr().err.split())
    assert notes.read_text(encoding="utf-8") == "我的笔记\n"


def test_merge_into_a_folder_named_like_a_jsonl_file_is_one_line(run, tmp_path, capsys):
    folder = tmp_path / "merged.jsonl"
    folder.mkdir()
    assert zaoshu("merge", run, "--out", folder) == 1
    assert f"error: --out {folder} is a folder; give a file path" in " ".join(capsys.readouterr().err.split())
    assert list(folder.parent.glob(".merged.jsonl.*")) == []  # no temporary file left beside it


@pytest.mark.parametrize("args,said", [
    (["--format", "dpo", "--balance", "aspect"], "--balance does nothing for --format dpo"),
    (["--format", "xtuner", "--skip-artifacts"], "--skip-artifacts does nothing for --format xtuner"),
    (["--per-tag", "3"], "--per-tag 3 does nothing without --balance FIELD (e.g. --balance tag)"),
])
def test_an_export_flag_the_format_ignores_is_one_line(run, args, said, capsys):
    """`--format dpo --balance aspect` wrote every pair, unbalanced, and said nothing (so did --skip-artifacts
    for a sample format, and --per-tag without --balance)."""
    assert zaoshu("export", run, *args) == 1
    assert capsys.readouterr().err.startswith(f"error: {said}")
    assert not (run / "exports").exists()


def test_per_tag_with_balance_still_draws_and_defaults_to_50(run, capsys):
    assert zaoshu("export", run, "--balance", "aspect", "--per-tag", "2") == 0
    assert "all: 4 records" in capsys.readouterr().out
    assert zaoshu("export", run, "--balance", "aspect") == 0
    assert "at most 50 for each of 2 values" in capsys.readouterr().out


def test_a_merge_that_reads_nothing_leaves_the_earlier_merge(run, tmp_path, capsys):
    """`zaoshu merge notes_gbk.jsonl --out merged` (a GBK file, or a run that accepted nothing) said
    'wrote 0 samples to merged/accepted.jsonl': the 10 samples merged there before were gone."""
    merged = tmp_path / "merged"
    assert zaoshu("merge", run, "--out", merged) == 0
    before = (merged / "accepted.jsonl").read_bytes()
    gbk = tmp_path / "notes.jsonl"
    gbk.write_bytes((json.dumps({"instruction": "问", "output": "答。"}, ensure_ascii=False) + "\n").encode("gbk"))
    empty = write_run(tmp_path / "runs" / "demo" / "r0", [])
    capsys.readouterr()
    assert zaoshu("merge", gbk, "--out", merged) == 1
    assert capsys.readouterr().err.strip() == (f"error: {gbk}: line 1 is not UTF-8 text; convert the file, e.g. "
                                               f"`iconv -f gbk -t utf-8 {gbk} > {tmp_path / 'notes.utf8.jsonl'}`")
    assert zaoshu("merge", empty, "--out", merged) == 1
    assert " ".join(capsys.readouterr().err.split()) == (
        f"error: no usable sample in {empty}: nothing to merge; {merged / 'accepted.jsonl'} is left as it was")
    assert (merged / "accepted.jsonl").read_bytes() == before


def test_a_run_with_no_usable_line_says_why(tmp_path, capsys):
    """accepted.jsonl saved as GBK: the error said only 'no line of accepted.jsonl is usable', not why."""
    run = tmp_path / "run"
    run.mkdir()
    lines = "".join(s.model_dump_json() + "\n" for s in make_samples(2))
    (run / "accepted.jsonl").write_bytes(lines.replace("问题", "問題").encode("gbk"))
    assert zaoshu("export", run) == 1
    assert capsys.readouterr().err.strip() == (f"error: {run} has no accepted samples (no line of accepted.jsonl "
                                               f"is usable: line 1: not UTF-8 text; …): nothing to export as xtuner")


def test_a_preference_split_puts_pairs_on_both_sides(tmp_path, capsys):
    """2 of 10 samples have a sent-back draft: `--format dpo --split 0.9` split all 10 samples, and the
    one test sample had no pair: 'test: 0 records' (an empty test file)."""
    from agents.schemas import draft_context

    samples = make_samples(10)
    for s in (samples[2], samples[3]):  # samples[1] is the test side of an all-sample split (seed 42)
        turn = s.turns[0]
        s.meta["drafts"] = [{"turn": 0, "text": "以下是回答：" + turn.output, "decision": "revise",
                             "codes": ["PREAMBLE"], "by": "rules", "context": draft_context([], turn.input)}]
    run = write_run(tmp_path / "run", samples)
    for fmt in ("dpo", "xtuner-dpo"):
        assert zaoshu("export", run, "--format", fmt, "--split", "0.9") == 0
        assert [len(read_jsonl(run / "exports" / fmt / f"{side}.jsonl")) for side in ("train", "test")] == [1, 1]
    assert zaoshu("export", run, "--format", "kto", "--split", "0.9") == 0
    kto = [read_jsonl(run / "exports" / "kto" / f"{side}.jsonl") for side in ("train", "test")]
    assert len(kto[0]) + len(kto[1]) == 12 and all(kto)


@pytest.mark.parametrize("command", [["export", "RUN", "--format", "xtuner"], ["export", "RUN", "--format", "kto"],
                                     ["card", "RUN"], ["merge", "RUN", "--out", "merged"]])
def test_a_torn_line_is_said_once_in_the_commands_own_words(tmp_path, command):
    """A torn last line (a kill mid-write) was said twice: as the command's warning and as an unstyled logging
    line ('accepted.jsonl: 1 unusable lines skipped (lines 2)'); the card said it only that way."""
    import subprocess
    import sys

    draft = {"turn": 0, "text": "嗯。", "decision": "revise", "codes": ["TOO_SHORT"], "by": "rules"}  # for kto
    sample = Sample(id="a1", recipe="demo", kind="qa", turns=[Turn(input="问", output="答。")], meta={"drafts": [draft]})
    run = tmp_path / "run"
    run.mkdir()
    (run / "accepted.jsonl").write_text(sample.model_dump_json() + "\n" + sample.model_dump_json()[:30],
                                        encoding="utf-8")
    args = [str(run) if a == "RUN" else str(tmp_path / a) if a == "merged" else a for a in command]
    done = subprocess.run([sys.executable, "-m", "zaoshu_cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    said = [line for line in (done.stdout + done.stderr).splitlines() if "line 2" in line or "lines 2" in line]
    assert len(said) == 1 and said[0].startswith("warning: ") and said[0].endswith("(skipped)"), said
    assert "accepted.jsonl: line 2: invalid JSON" in said[0]
