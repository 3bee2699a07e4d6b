"""The `zaoshu` command as a user runs it: help, config show (keys masked), llm ping, clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from tests.fakes import closed_port

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-verysecretkey-abcdef123456"


def zaoshu(*args, env=None, cwd=None):
    """Output captured, as in a pipe or a CI log: not a terminal, no COLUMNS unless `env` sets it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_")) and k != "COLUMNS"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "zaoshu_cli", *args], capture_output=True, text=True,
                          env={**full_env, "PYTHONPATH": str(REPO)}, cwd=cwd, timeout=120)


def test_help_lists_every_command_group():
    result = zaoshu("--help")
    assert result.returncode == 0
    for group in ("config", "llm", "kb", "graph", "runs", "export", "merge", "stats", "finetune"):
        assert group in result.stdout


def test_config_show_masks_the_key_everywhere(tmp_path):
    env = {"ZAOSHU_PRESET": "zhipu", "ZAOSHU_API_KEY": SECRET, "ZAOSHU_CRITIC__MODEL": "glm-4-plus"}
    result = zaoshu("config", "show", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert '"api_key": "***"' in result.stdout
    assert '"model": "glm-4-plus"' in result.stdout and "open.bigmodel.cn" in result.stdout
    table = zaoshu("config", "show", env=env, cwd=tmp_path)
    assert SECRET not in table.stdout and "***" in table.stdout
    assert not any(SECRET in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def test_llm_ping_reports_each_role(tmp_path):
    with FakeOpenAI(reply=lambda req: '{"ok": true}' if req.system else "在") as server:  # JSON when asked for it
        env = {"ZAOSHU_BASE_URL": server.base_url, "ZAOSHU_MODEL": "fake-model", "ZAOSHU_API_KEY": SECRET}
        result = zaoshu("llm", "ping", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for role in ("asker", "answerer", "responder", "critic"):
        assert role in result.stdout
    assert result.stdout.count("ok: 在") == 4 and SECRET not in result.stdout
    assert len(server.requests) == 4 + 3  # one per role, then one per JSON mode for the one endpoint


def test_llm_ping_without_endpoint_is_one_clear_line(tmp_path):
    result = zaoshu("llm", "ping", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no LLM endpoint configured")


def test_llm_ping_with_a_wrong_key_says_authentication(tmp_path):
    with FakeOpenAI(api_key="sk-the-right-one") as server:
        env = {"ZAOSHU_BASE_URL": server.base_url, "ZAOSHU_MODEL": "m", "ZAOSHU_API_KEY": "sk-wrong"}
        result = zaoshu("llm", "ping", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "authentication failed (401)" in result.stdout
    assert len(server.requests) == 4  # one per role, no retries on 401


def test_graph_show_prints_each_graph_as_mermaid():
    for name, node in (("qa", "retrieve"), ("persona", "respond"), ("dialogue", "counsel")):
        result = zaoshu("graph", "show", name)
        assert result.returncode == 0 and "graph TD" in result.stdout and node in result.stdout, result.stdout
    result = zaoshu("graph", "show", "nope")
    assert result.returncode == 1 and result.stderr.startswith("error: unknown graph 'nope'")


def test_llm_ping_probes_the_json_modes_and_says_which_it_will_use(tmp_path):
    with FakeOpenAI(reply=lambda req: '{"ok": true}' if req.system or "JSON" in req.text else "在",
                    reject_formats={"json_object", "json_schema"}) as server:
        env = {"ZAOSHU_BASE_URL": server.base_url, "ZAOSHU_MODEL": "fake-model", "ZAOSHU_API_KEY": SECRET,
               "ZAOSHU_CRITIC__JSON_MODE": "prompt"}
        result = zaoshu("llm", "ping", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("JSON modes"))
    assert line == (f"JSON modes at {server.base_url} (fake-model): json_schema refused · json_object refused · "
                    "prompt ok → asker uses prompt (falls back from json_object); answerer uses prompt (falls back "
                    "from json_object); responder uses prompt (falls back from json_object); critic uses prompt")


@pytest.mark.parametrize("args, says", [
    (["kb", "serch", "x"], "No such command 'serch'. Did you mean 'search'?"),
    (["export"], "Missing argument 'run_dir'"),
    (["runs", "show", "--bogus"], "No such option: --bogus"),
])
def test_a_usage_error_is_the_usage_and_one_line_never_a_traceback(tmp_path, args, says):
    result = zaoshu(*args, cwd=tmp_path)
    assert result.returncode == 2 and says in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 4


@pytest.mark.parametrize("env, says", [
    ({"ZAOSHU_CONCURRENCY": "abc"}, "error: ZAOSHU_CONCURRENCY='abc': Input should be a valid integer"),
    ({"ZAOSHU_CRITIC__TEMPERATURE": "hot"}, "error: ZAOSHU_CRITIC__TEMPERATURE='hot': Input should be a valid number"),
    ({"ZAOSHU_RPM": "-5"}, "error: ZAOSHU_RPM='-5': Input should be greater than or equal to 0"),
])
def test_a_bad_value_in_the_environment_is_one_line_naming_the_variable(tmp_path, env, says):
    result = zaoshu("config", "show", env=env, cwd=tmp_path)
    (line,) = result.stderr.strip().splitlines()
    assert result.returncode == 1 and line.startswith(says) and line.endswith("(in the environment or .env)")


def test_llm_ping_against_a_model_that_never_writes_json_says_structured_output_will_fail(tmp_path):
    with FakeOpenAI(reply=lambda req: "在") as server:  # plain text, whatever the JSON mode
        env = {"ZAOSHU_BASE_URL": server.base_url, "ZAOSHU_MODEL": "fake-model", "ZAOSHU_CRITIC__JSON_MODE": "prompt"}
        result = zaoshu("llm", "ping", env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("ok: 在") == 4  # every endpoint answers
    assert result.stderr == ("error: no JSON mode gave valid JSON for asker, answerer, responder, critic at "
                             f"{server.base_url} (fake-model): their structured output will fail (a run pauses "
                             "with FORMAT); try another model, or check that the endpoint serves this model\n")


def test_llm_ping_names_the_json_mode_that_works_when_a_roles_mode_does_not(tmp_path):
    with FakeOpenAI(reply=lambda req: '{"ok": true}' if req.system and not req.json_mode else "在") as server:
        env = {"ZAOSHU_BASE_URL": server.base_url, "ZAOSHU_MODEL": "fake-model", "ZAOSHU_CRITIC__JSON_MODE": "prompt"}
        result = zaoshu("llm", "ping", env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == ("error: json_object gave no valid JSON for asker, answerer, responder at "
                             f"{server.base_url} (fake-model): their structured output will fail (a run pauses "
                             "with FORMAT); prompt gave valid JSON: set their json_mode to prompt (ZAOSHU_JSON_MODE, or "
                             "ZAOSHU_<ROLE>__JSON_MODE for one role)\n")


def test_llm_ping_piped_shows_each_failing_url_and_its_error_whole(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = zaoshu("llm", "ping", env={"ZAOSHU_BASE_URL": url, "ZAOSHU_MODEL": "m"}, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 9  # title, three header lines, one row per role, bottom border
    for role, row in zip(("asker", "answerer", "responder", "critic"), lines[4:8]):
        assert f"│ {role} " in row and f"│ {url} │" in row
        assert f"endpoint unreachable — {role} → {url}: cannot connect:" in row
        assert row.rstrip(" │").endswith("is the server running and the base URL right?")


def test_runs_list_piped_shows_every_value_whole_and_respects_columns(tmp_path):
    run = tmp_path / "runs" / "tianji" / "20261121-000000-the-long-name-of-a-run"
    run.mkdir(parents=True)
    (run / "stats.json").write_text(json.dumps({
        "status": "completed", "accepted": 1234, "rejected": 56, "failed": 0, "input_tokens": 5_912_345,
        "output_tokens": 1_234_567, "cost": 12.3456, "currency": "¥", "duration_s": 4242}), encoding="utf-8")
    result = zaoshu("runs", "list", "--root", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "tianji" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == [
        "tianji", run.name, "completed", "1234", "56", "0", "5,912,345/1,234,567", "¥12.3456", "4242s"]
    narrow = zaoshu("runs", "list", "--root", str(tmp_path / "runs"), env={"COLUMNS": "60"})
    assert [len(line) for line in narrow.stdout.splitlines() if line.startswith(("┏", "└"))] == [60, 60]


def test_runs_show_counts_a_sample_whose_source_file_cannot_be_read_as_changed(tmp_path, unreadable, capsys):
    from knowledge.sync import file_sha256
    from tests.test_reasoning import zaoshu as zaoshu_here  # in-process: `unreadable` patches open

    ok, secret = tmp_path / "ok.md", tmp_path / "secret.md"
    for path in (ok, secret):
        path.write_text("孙悟空", encoding="utf-8")
    run = tmp_path / "run"
    run.mkdir()
    samples = [{"id": name, "meta": {"source_files": {str(path): file_sha256(path)}}}
               for name, path in (("a", ok), ("b", secret))]
    (run / "accepted.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    unreadable.add(secret)
    capsys.readouterr()
    assert zaoshu_here("runs", "show", run, "--json") == 0
    assert json.loads(capsys.readouterr().out)["stale"] == {"deleted": 0, "changed": 1, "current": 1}


@pytest.mark.parametrize("text", ["", '{"status": "compl', "[]", '{"status": "completed", "failed": "2"}',
                                  '{"status": "completed", "usage_by_role": {"critic": 5}}'])
def test_runs_list_and_show_with_an_unreadable_stats_json_name_it_and_go_on(tmp_path, text):
    """One empty or half-written stats.json (a crash, a full disk) made `runs list` a JSONDecodeError
    traceback that hid every other run, and `runs show` of that run another; one of the wrong shape (edited
    by hand, another tool's) an AttributeError or TypeError traceback."""
    good = tmp_path / "runs" / "tianji" / "20261121-000000"
    broken = tmp_path / "runs" / "tianji" / "20261122-000000"
    for run in (good, broken):
        run.mkdir(parents=True)
    (good / "stats.json").write_text(json.dumps({"status": "completed", "accepted": 7}), encoding="utf-8")
    (broken / "stats.json").write_text(text, encoding="utf-8")
    (broken / "accepted.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n', encoding="utf-8")
    listed = zaoshu("runs", "list", "--root", str(tmp_path / "runs"))
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("│")[2].strip(): line.split("│")[3].strip() for line in listed.stdout.splitlines()
            if "tianji" in line}
    assert rows == {good.name: "completed", broken.name: "unreadable"}
    assert listed.stderr.startswith(str(broken / "stats.json")) and "Traceback" not in listed.stderr
    shown = zaoshu("runs", "show", str(broken))
    assert shown.returncode == 0, shown.stderr
    assert "accepted 2  rejected 0  (ledger lines; an unreadable stats.json" in shown.stdout


def test_a_new_run_is_not_stopped_by_an_old_runs_unreadable_stats_json(tmp_path):
    """Without --out a run looks through runs/<recipe>/ for one to resume: an old run's empty stats.json
    ended every later command of the recipe, --dry-run included, in a JSONDecodeError traceback."""
    old = tmp_path / "runs" / "tianji" / "20261121-000000"
    old.mkdir(parents=True)
    (old / "stats.json").write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_"))}
    result = subprocess.run([sys.executable, "-m", "recipes.tianji", "--limit", "2", "--dry-run"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env={**env, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "dry run: 2 work items" in result.stdout
