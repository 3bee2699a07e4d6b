"""The ruozhiba recipe on the real 240 COIG-CQIA rows, on bad rows, and its optional critic pass."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.llm_errors import LLMAuthError, LLMServerError
from agents.schemas import Sample, Turn, Verdict
from finetune.formats import from_record
from recipes.ruozhiba.__main__ import app
from recipes.ruozhiba.convert import JudgeError, convert, critic_pass, read_cqia
from tests.fake_openai import Fault, FakeOpenAI

REPO = Path(__file__).parents[1]
RAW = Path(__file__).parents[2] / "shared" / "reference" / "ruozhiba" / "ruozhiba_raw.jsonl"
needs_raw = pytest.mark.skipif(not RAW.is_file(), reason=f"reference data absent: {RAW}")

# The seed-42 split of the real file (sort by id, random.Random(42).shuffle, first 168 → train).
FIRST_TRAIN = ("2b4554c614924801", 45, "当我看到脚下先辈们铺好的路，才发觉人生的意义是为后人铺路。")
FIRST_TEST = ("47dca62ba45b99f0", 213, "都说适者生存那为什么猛犸没有活到现在呢？是太弱了还是太强了？")

BAD_ROWS = "\n".join([
    json.dumps({"instruction": "咖啡严格来说是不是也可以叫豆浆？", "input": "", "output": "不是。", "domain": ["通用"]},
               ensure_ascii=False),
    '{"instruction": "坏行", ',
    "",
    json.dumps({"instruction": "没有回答"}, ensure_ascii=False),
    json.dumps({"instruction": "回答不是字符串", "output": 42}, ensure_ascii=False),
    '["不是", "对象"]',
    json.dumps({"instruction": "为什么猛犸没有活到现在？", "input": "", "output": "因为环境变化和人类狩猎。"}, ensure_ascii=False),
    json.dumps({"instruction": "  ", "output": "空问题"}, ensure_ascii=False),
    json.dumps({"instruction": "输入类型错", "input": 1, "output": "x"}, ensure_ascii=False),
    json.dumps({"instruction": "翻译", "input": "你好", "output": "Hello"}, ensure_ascii=False),
]) + "\n"


@pytest.fixture(autouse=True)
def no_llm_env(monkeypatch, tmp_path):
    """No key or endpoint from the machine running the tests; no .env from the repo."""
    import os

    for name in list(os.environ):
        if name.startswith(("ZAOSHU_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def bad_file(tmp_path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text(BAD_ROWS, encoding="utf-8")
    return path


def first(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8").splitlines()[0])


@needs_raw
def test_real_file_default_split(tmp_path):
    report = convert(RAW, tmp_path / "out")
    assert (report.rows, report.bad, report.counts) == (240, [], {"train": 168, "test": 72})
    accepted = {s["id"]: s for s in map(json.loads, (tmp_path / "out/accepted.jsonl").read_text("utf-8").splitlines())}
    assert len(accepted) == 240
    train = first(tmp_path / "out/train.jsonl")
    assert train == {"messages": [{"role": "user", "content": FIRST_TRAIN[2]},
                                  {"role": "assistant", "content": accepted[FIRST_TRAIN[0]]["turns"][0]["output"]}]}
    assert accepted[FIRST_TRAIN[0]]["meta"]["source_line"] == FIRST_TRAIN[1]
    assert first(tmp_path / "out/test.jsonl")["messages"][0]["content"] == FIRST_TEST[2]
    assert accepted[FIRST_TEST[0]]["meta"]["source_line"] == FIRST_TEST[1]
    stats = json.loads((tmp_path / "out/stats.json").read_text(encoding="utf-8"))
    assert (stats["rows"], stats["train"], stats["test"], stats["bad_rows"]) == (240, 168, 72, [])


@needs_raw
def test_real_file_split_is_reproducible_and_seeded(tmp_path):
    convert(RAW, tmp_path / "a")
    convert(RAW, tmp_path / "b")
    assert (tmp_path / "a/train.jsonl").read_bytes() == (tmp_path / "b/train.jsonl").read_bytes()
    other = convert(RAW, tmp_path / "c", seed=7)
    assert other.counts == {"train": 168, "test": 72}
    assert first(tmp_path / "c/train.jsonl") != first(tmp_path / "a/train.jsonl")
    train = {json.dumps(r, ensure_ascii=False) for r in map(json.loads, (tmp_path / "a/train.jsonl").read_text("utf-8").splitlines())}
    test = {json.dumps(r, ensure_ascii=False) for r in map(json.loads, (tmp_path / "a/test.jsonl").read_text("utf-8").splitlines())}
    assert len(train) == 168 and len(test) == 72 and not train & test


@needs_raw
def test_real_file_xtuner_format_with_system(tmp_path):
    convert(RAW, tmp_path / "x", fmt="xtuner", system="你是一个逻辑清晰的助手。")
    record = first(tmp_path / "x/train.jsonl")
    assert record == {"conversation": [{"system": "你是一个逻辑清晰的助手。", "input": FIRST_TRAIN[2],
                                        "output": record["conversation"][0]["output"]}]}
    assert from_record(record).turns[0].input == FIRST_TRAIN[2]


def test_bad_rows_are_reported_by_line_and_skipped(bad_file):
    samples, bad = read_cqia(bad_file)
    assert [s.meta["source_line"] for s in samples] == [1, 7, 10]
    assert [(b.line, b.reason) for b in bad] == [
        (2, "invalid JSON (Expecting property name enclosed in double quotes at column 1)"),
        (4, "missing field `output`"),
        (5, "`output` must be a string, got int"),
        (6, "a row must be a JSON object, got list"),
        (8, "empty `instruction`"),
        (9, "`input` must be a string, got int"),
    ]
    assert samples[0].meta == {"domain": ["通用"], "source_line": 1}
    assert samples[2].turns == [Turn(input="翻译\n你好", output="Hello")]


def test_bad_rows_file_converts(bad_file, tmp_path):
    report = convert(bad_file, tmp_path / "out")
    assert report.rows == 9 and report.counts == {"train": 2, "test": 1}
    stats = json.loads((tmp_path / "out/stats.json").read_text(encoding="utf-8"))
    assert [b["line"] for b in stats["bad_rows"]] == [2, 4, 5, 6, 8, 9]


# ---------------------------------------------------------------- CLI


@needs_raw
def test_cli_real_file(tmp_path):
    result = CliRunner().invoke(app, ["--input", str(RAW), "--out", str(tmp_path / "o"), "--format", "xtuner"])
    assert result.exit_code == 0, result.output
    assert "read 240 rows" in result.output and "0 bad rows skipped" in result.output
    assert f"train: 168 → {tmp_path / 'o' / 'train.jsonl'}" in result.output
    assert f"test: 72 → {tmp_path / 'o' / 'test.jsonl'}" in result.output
    assert "conversation" in first(tmp_path / "o/train.jsonl")
    assert "format: xtuner" in (tmp_path / "o/config.resolved.yaml").read_text(encoding="utf-8")


def test_cli_reports_bad_rows_and_uses_the_default_out(bad_file, tmp_path):
    result = CliRunner().invoke(app, ["--input", str(bad_file), "--run-name", "t1"])
    assert result.exit_code == 0, result.output
    assert f"{bad_file} line 4: missing field `output` — skipped" in result.output
    assert "6 bad rows skipped (lines 2, 4, 5, 6, 8, 9)" in result.output
    assert (tmp_path / "runs/ruozhiba/t1/train.jsonl").is_file()


def test_cli_user_mistakes_are_one_red_line(tmp_path, bad_file):
    result = CliRunner().invoke(app, ["--input", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 1 and result.output.strip() == f"error: input file not found: {tmp_path / 'missing.jsonl'}"
    result = CliRunner().invoke(app, ["--input", str(bad_file), "--format", "csv"])
    assert result.exit_code == 1 and "unknown format 'csv'" in result.output
    result = CliRunner().invoke(app, ["--input", str(bad_file), "--split", "1"])
    assert result.exit_code == 1 and "between 0 and 1" in result.output
    result = CliRunner().invoke(app, ["--input", "[bold]rows.jsonl"])  # the name as typed, not rich markup
    assert result.exit_code == 1 and result.output.strip() == "error: input file not found: [bold]rows.jsonl"


@pytest.mark.parametrize("text, why", [
    ("", "the file has no rows"),
    ('{"question": "a", "answer": "b"}\n{"question": "c", "answer": "d"}\n',
     "2 bad rows (line 1: missing field `instruction`; line 2: missing field `instruction`)"),
])
def test_cli_a_file_with_no_usable_row_says_why(tmp_path, text, why):
    """A file of rows with other field names said only 'no usable rows (2 bad rows)': the reasons were
    printed for the rows skipped beside good ones, never for a file where every row is bad."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["--input", str(rows), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: no usable rows in {rows}: {why}"


@pytest.mark.parametrize("yaml_text, message", [
    ("spilt: 0.5\n", "unknown key 'spilt' — did you mean 'split'?"),
    ("split: abc\n", "key 'split': Input should be a valid number"),
    ("critic: {concurrency: 0}\n", "key 'critic.concurrency': Input should be greater than or equal to 1"),
    ("format: csv\n", "key 'format'"),
    ("- a list\n", "must be a mapping"),
])
def test_cli_a_wrong_recipe_yaml_is_one_red_line(tmp_path, bad_file, yaml_text, message):
    """A misspelt key is not silently ignored, a wrong type is no traceback, a concurrency of 0 never
    hangs the critic: the YAML is checked, like every recipe's, before anything is read or written."""
    config = tmp_path / "my.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    result = CliRunner().invoke(app, ["--input", str(bad_file), "--out", str(tmp_path / "out"),
                                      "--config", str(config), "--critic"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"error: {config}") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_critic_without_endpoint_is_a_config_error(bad_file):
    result = CliRunner().invoke(app, ["--input", str(bad_file), "--critic"])
    assert result.exit_code == 1
    assert result.output.startswith("error: no LLM endpoint configured for role 'critic'")


def test_help_and_docstring():
    import recipes.ruozhiba.__main__ as main

    assert main.__doc__.startswith("python -m recipes.ruozhiba --input FILE --out DIR")
    done = subprocess.run([sys.executable, "-m", "recipes.ruozhiba", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--input" in done.stdout and "--critic" in done.stdout


# ---------------------------------------------------------------- critic


def sample(question: str, answer: str = "答") -> Sample:
    return Sample.new(recipe="ruozhiba", kind="qa", key=question, turns=[Turn(input=question, output=answer)])


async def fake_judge(s: Sample) -> Verdict:
    if "坏" in s.turns[0].input:
        return Verdict(reasons=["没识破陷阱"], decision="revise", reason_codes=["CONTRADICTION"], feedback="重写")
    if "超时" in s.turns[0].input:
        raise LLMServerError("server error (500)")
    if "乱码" in s.turns[0].input:
        raise JudgeError("no valid verdict after 3 attempts")
    return Verdict(reasons=["正确"], decision="accept")


async def test_critic_pass_flags_disputed_answers_and_records_failures():
    samples = [sample("好问题"), sample("坏问题"), sample("超时问题"), sample("乱码问题"), sample("坏问题二")]
    report = await critic_pass(samples, fake_judge, concurrency=2)
    assert report.judged == 3
    assert [s.turns[0].input for s, _ in report.flagged] == ["坏问题", "坏问题二"]
    assert [s.turns[0].input for s, _ in report.errors] == ["超时问题", "乱码问题"]
    assert samples[0].meta["critic"]["decision"] == "accept"
    assert samples[1].meta["critic"]["reason_codes"] == ["CONTRADICTION"]
    assert samples[2].meta["critic"] == {"error": "server error (500)"}


async def test_critic_pass_stops_on_a_fatal_endpoint_error():
    async def judge(s: Sample) -> Verdict:
        raise LLMAuthError("authentication failed (401)")

    with pytest.raises(LLMAuthError):
        await critic_pass([sample("问")], judge)


def test_cli_critic_against_a_local_openai_compatible_server(bad_file, tmp_path, monkeypatch):
    revise = {"reasons": ["猛犸灭绝的主因尚有争议"], "decision": "revise", "reason_codes": ["UNGROUNDED"],
              "scores": {"grounding": 0.3}, "feedback": "补充气候变化的证据"}
    accept = {"reasons": ["回答正确"], "decision": "accept", "reason_codes": [], "scores": {}, "feedback": None}
    with FakeOpenAI(reply=lambda req: json.dumps(accept, ensure_ascii=False)) as server:
        server.add_rule("猛犸", json.dumps(revise, ensure_ascii=False))
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-judge")
        result = CliRunner().invoke(app, ["--input", str(bad_file), "--out", str(tmp_path / "c"), "--critic"])
        requests = list(server.requests)
    assert result.exit_code == 0, result.output
    assert "critic: 3 judged, 1 flagged" in result.output and "0 could not be judged" in result.output
    assert len(requests) == 3 and all(r.json_mode for r in requests)
    assert all("<question>" in r.last_user and "弱智吧" in r.system for r in requests)
    flagged = [json.loads(line) for line in (tmp_path / "c/flagged.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(f["line"], f["decision"], f["reason_codes"]) for f in flagged] == [(7, "revise", ["UNGROUNDED"])]
    accepted = [json.loads(line) for line in (tmp_path / "c/accepted.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [a["meta"]["critic"]["decision"] for a in accepted] == ["accept", "revise", "accept"]
    assert "fake-judge" in (tmp_path / "c/config.resolved.yaml").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "c/stats.json").read_text(encoding="utf-8"))["critic"] == {
        "judged": 3, "flagged": 1, "errors": 0}


def test_an_error_goes_to_stderr_so_a_redirected_stdout_does_not_hide_it(tmp_path):
    result = subprocess.run([sys.executable, "-m", "recipes.ruozhiba", "--input", str(tmp_path / "missing.jsonl"),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.returncode == 1 and result.stdout == ""  # it was on stdout
    assert result.stderr.strip() == f"error: input file not found: {tmp_path / 'missing.jsonl'}"


@pytest.mark.parametrize("out", ["taken.jsonl", "taken.jsonl/sub"])
def test_cli_an_out_that_is_a_file_is_one_line_before_the_critic_is_paid(bad_file, tmp_path, monkeypatch, out):
    """`--out` naming a file (or a folder under one) ended in a FileExistsError traceback after the
    critic had judged every row: the paid verdicts were lost. Now it is one line, and no call is made."""
    taken = tmp_path / "taken.jsonl"
    taken.write_text("mine\n", encoding="utf-8")
    with FakeOpenAI(reply=lambda req: "{}") as server:
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-judge")
        result = CliRunner().invoke(app, ["--input", str(bad_file), "--out", str(tmp_path / out), "--critic"])
        requests = list(server.requests)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == f"error: --out {tmp_path / out}: {taken} is a file, not a folder"
    assert requests == [] and taken.read_text(encoding="utf-8") == "mine\n"


def test_cli_a_question_asked_twice_is_kept_once_never_in_train_and_test(tmp_path):
    """Rows with the same instruction and input became samples of one id: the split put copies in train
    and in test, so the test set graded the model on questions it trained on."""
    rows = [{"instruction": "同一个问题？", "input": "", "output": "同一个回答。"}] * 10
    rows += [{"instruction": f"问题{i}？", "input": "", "output": f"回答{i}。"} for i in range(10)]
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["--input", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert f"{path} line 2: the same instruction and input as line 1 — skipped" in result.output
    assert "read 20 rows" in result.output and "11 converted, 9 bad rows skipped" in result.output
    texts = {name: (tmp_path / "o" / f"{name}.jsonl").read_text(encoding="utf-8") for name in ("train", "test")}
    assert texts["train"].count("同一个问题") + texts["test"].count("同一个问题") == 1


def test_cli_critic_names_the_lines_it_could_not_judge(bad_file, tmp_path, monkeypatch):
    """'1 could not be judged' named no row: the warning naming it was logged below the CLI's ERROR level."""
    accept = {"reasons": ["回答正确"], "decision": "accept", "reason_codes": [], "scores": {}, "feedback": None}
    with FakeOpenAI(reply=lambda req: json.dumps(accept, ensure_ascii=False)) as server:
        server.add_rule("猛犸", "我觉得这个回答还行。")  # never the JSON verdict, however often it is asked
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-judge")
        result = CliRunner().invoke(app, ["--input", str(bad_file), "--out", str(tmp_path / "c"), "--critic"])
    assert result.exit_code == 0, result.output
    assert "critic: 2 judged, 0 flagged" in result.output and "1 could not be judged (lines 7)" in result.output


def test_cli_a_conversion_without_critic_leaves_no_earlier_flagged_file(bad_file, tmp_path, monkeypatch):
    """Rerun without --critic into the same folder, the earlier run's flagged.jsonl stayed beside train/test
    it never judged, while stats.json and config.resolved.yaml said no critic ran."""
    revise = {"reasons": ["有争议"], "decision": "revise", "reason_codes": ["UNGROUNDED"], "scores": {},
              "feedback": "改"}
    with FakeOpenAI(reply=lambda req: json.dumps(revise, ensure_ascii=False)) as server:
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-judge")
        judged = CliRunner().invoke(app, ["--input", str(bad_file), "--out", str(tmp_path / "c"), "--critic"])
    assert judged.exit_code == 0 and len((tmp_path / "c/flagged.jsonl").read_text().splitlines()) == 3
    again = CliRunner().invoke(app, ["--input", str(bad_file), "--out", str(tmp_path / "c")])
    assert again.exit_code == 0, again.output
    assert not (tmp_path / "c/flagged.jsonl").exists()
    assert f"removed {tmp_path / 'c/flagged.jsonl'}: an earlier --critic conversion's" in again.output


@pytest.mark.parametrize("name", ["train.jsonl", "test.jsonl", "accepted.jsonl"])
def test_cli_an_out_that_holds_the_input_under_an_output_name_is_refused(bad_file, tmp_path, name):
    """`-i data/train.jsonl -o data` wrote the converted split over the user's input file: the rows were gone."""
    data = tmp_path / "data"
    data.mkdir()
    rows = data / name
    rows.write_text(BAD_ROWS, encoding="utf-8")
    result = CliRunner().invoke(app, ["--input", str(rows), "--out", str(data)])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: --out {data} would write {name} over the input {rows}: choose another --out"
    assert rows.read_text(encoding="utf-8") == BAD_ROWS and sorted(p.name for p in data.iterdir()) == [name]


def test_cli_json_lines_under_a_json_name_convert(tmp_path):
    """COIG-CQIA rows saved as ruozhiba.json (JSON Lines, one row a line) stopped at 'not valid UTF-8 JSON:
    Extra data: line 2 column 1': the reader took a .json file for one JSON array only."""
    rows = tmp_path / "ruozhiba.json"
    rows.write_text(BAD_ROWS, encoding="utf-8")
    result = CliRunner().invoke(app, ["--input", str(rows), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert f"read 9 rows from {rows}: 3 converted, 6 bad rows skipped (lines 2, 4, 5, 6, 8, 9)" in result.output


def test_a_ctrl_c_during_the_critic_says_what_happened(bad_file, tmp_path):
    """Ctrl-C while the critic judged ended the command at 130 without a word: nothing said that nothing was
    written, nor that the verdicts so far were gone."""
    import signal
    import time

    accept = {"reasons": ["对"], "decision": "accept", "reason_codes": [], "scores": {}, "feedback": None}
    with FakeOpenAI(reply=lambda req: json.dumps(accept, ensure_ascii=False), latency=30) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_"))}
        env.update(PYTHONPATH=str(REPO), ZAOSHU_BASE_URL=server.base_url, ZAOSHU_MODEL="fake-judge")
        proc = subprocess.Popen([sys.executable, "-m", "recipes.ruozhiba", "--input", str(bad_file), "--out",
                                 str(tmp_path / "o"), "--critic"], cwd=tmp_path, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip() == "interrupted: the conversion did not finish; rerun the same command to write it"
    assert not (tmp_path / "o").exists()


ACCEPT = json.dumps({"reasons": ["对"], "decision": "accept", "reason_codes": [], "scores": {}, "feedback": None},
                    ensure_ascii=False)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_stopped_critic_keeps_its_verdicts_and_the_rerun_asks_only_the_rest(bad_file, tmp_path, sig):
    """Ctrl-C (or a kill) while the critic judged lost every verdict paid for so far: the rerun asked the judge
    about every row again. Now each verdict is kept as it arrives, and the rerun into that folder asks only the
    rows it has no verdict for. A SIGTERM ended it without a word."""
    import signal
    import time

    out = tmp_path / "o"
    with FakeOpenAI(reply=lambda req: ACCEPT) as server:
        server.add_rule("猛犸", Fault("slow", delay=60))  # one row's verdict never comes before the stop
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_"))}
        env.update(PYTHONPATH=str(REPO), ZAOSHU_BASE_URL=server.base_url, ZAOSHU_MODEL="fake-judge")
        proc = subprocess.Popen([sys.executable, "-m", "recipes.ruozhiba", "--input", str(bad_file), "--out", str(out),
                                 "--critic"], cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_lines(out / "verdicts.jsonl")) < 2:
            time.sleep(0.1)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    how = "interrupted" if sig == "SIGINT" else "stopped by SIGTERM (a kill, or the machine shutting down)"
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip() == (f"{how}: the conversion did not finish; 2 verdicts are kept in {out / 'verdicts.jsonl'}: "
                           "rerun the same command to judge only the other rows and write the split")
    assert sorted(p.name for p in out.iterdir()) == ["verdicts.jsonl"]

    with FakeOpenAI(reply=lambda req: ACCEPT) as server:
        again = _critic(server, bad_file, out, "fake-judge")
        asked = [r.last_user for r in server.requests]
    assert again.exit_code == 0, again.output
    assert f"critic: 2 verdicts of fake-judge in {out / 'verdicts.jsonl'} from an earlier conversion" in again.output
    assert len(asked) == 1 and "猛犸" in asked[0]
    assert "critic: 3 judged, 0 flagged" in again.output
    accepted = [json.loads(line) for line in _lines(out / "accepted.jsonl")]
    assert [a["meta"]["critic"]["decision"] for a in accepted] == ["accept"] * 3


def test_a_verdict_is_reused_only_for_the_same_answer_and_the_same_judge(bad_file, tmp_path):
    out = tmp_path / "o"
    with FakeOpenAI(reply=lambda req: ACCEPT) as server:
        assert _critic(server, bad_file, out, "fake-judge").exit_code == 0
        assert _critic(server, bad_file, out, "fake-judge").exit_code == 0  # a second split, say: nothing paid
        assert len(server.requests) == 3
        bad_file.write_text(BAD_ROWS.replace("不是。", "当然不是，豆浆是黄豆做的。"), encoding="utf-8")
        edited = _critic(server, bad_file, out, "fake-judge")
        assert edited.exit_code == 0 and len(server.requests) == 4 and "豆浆是黄豆" in server.requests[-1].last_user
        with open(out / "verdicts.jsonl", "a", encoding="utf-8") as torn:  # a kill in the middle of a write
            torn.write('{"key": "2b45')
        other = _critic(server, bad_file, out, "other-judge")
        assert other.exit_code == 0 and len(server.requests) == 7
        assert _critic(server, bad_file, out, "other-judge").exit_code == 0 and len(server.requests) == 7
    assert "critic: 3 judged" in other.output and "verdicts of other-judge" not in other.output


def _critic(server: FakeOpenAI, rows: Path, out: Path, model: str):
    env = {"ZAOSHU_BASE_URL": server.base_url, "ZAOSHU_MODEL": model}
    return CliRunner().invoke(app, ["--input", str(rows), "--out", str(out), "--critic"], env=env)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


def test_runs_list_and_show_give_a_conversion_its_status(bad_file, tmp_path):
    """A conversion under runs/ruozhiba/ listed and showed as 'status ?': its stats.json had no status."""
    from tests.test_cli import zaoshu

    result = CliRunner().invoke(app, ["--input", str(bad_file), "--run-name", "t1"])
    assert result.exit_code == 0, result.output
    listed = zaoshu("runs", "list", cwd=tmp_path)
    row = next(line for line in listed.stdout.splitlines() if "ruozhiba" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")][:4] == ["ruozhiba", "t1", "completed", "3"]
    shown = zaoshu("runs", "show", "runs/ruozhiba/t1", cwd=tmp_path)
    assert shown.stdout.startswith("runs/ruozhiba/t1  status completed  accepted 3  rejected 0"), shown.stderr
