"""`--shard i/n` through the recipe command: shards merge into one run for every reader, resume per
shard, a changed n is refused; and a local run never imports Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from graphs.shards import read_ledger, shard_of
from tests.fake_openai import FakeOpenAI
from tests.recipe_replies import reply
from tests.test_recipe_cli import tianji_yaml

REPO = Path(__file__).resolve().parents[1]


def sh(tmp_path: Path, *args: str, module: str = "recipes.tianji", flags=()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_", "SERPER_"))}
    return subprocess.run([sys.executable, *flags, "-m", module, *args], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=180)


def zaoshu(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return sh(tmp_path, *args, module="zaoshu_cli")


def ids(run_dir: Path, name: str = "accepted.jsonl") -> list[str]:
    return [r["id"] for r in read_ledger(run_dir, name)]


def test_two_shards_read_as_one_run_by_runs_show_and_export(tmp_path):
    with FakeOpenAI(reply=reply) as server:
        config = tianji_yaml(tmp_path, llm={"base_url": server.base_url, "model": "fake-model"})
        single = sh(tmp_path, "--config", str(config), "--out", "single")
        first = sh(tmp_path, "--config", str(config), "--out", "sharded", "--shard", "1/2")
        again = sh(tmp_path, "--config", str(config), "--out", "sharded", "--shard", "1/2")  # resumes: nothing left
        second = sh(tmp_path, "--config", str(config), "--out", "sharded", "--shard", "2/2")
    for result in (single, first, again, second):
        assert result.returncode == 0, result.stderr
    n1 = len(ids(tmp_path / "sharded" / "shards" / "1-of-2")) + len(ids(tmp_path / "sharded/shards/1-of-2", "rejected.jsonl"))
    assert f"(0 of {n1} items to run)" in again.stdout
    assert sorted(ids(tmp_path / "sharded")) == sorted(ids(tmp_path / "single"))
    assert all(shard_of(i, 2) == 1 for i in ids(tmp_path / "sharded/shards/1-of-2"))
    assert not (tmp_path / "sharded" / "accepted.jsonl").exists()  # each shard writes only its own folder

    shows = [json.loads(zaoshu(tmp_path, "runs", "show", run, "--json").stdout) for run in ("sharded", "single")]
    assert shows[0]["by"] == shows[1]["by"] and shows[0]["stats"]["accepted"] == shows[1]["stats"]["accepted"]
    assert set(shows[0]["stats"]["shards"]) == {"1-of-2", "2-of-2"}
    for run in ("sharded", "single"):
        assert zaoshu(tmp_path, "export", run, "--format", "openai").returncode == 0
    review_page = zaoshu(tmp_path, "review", "sharded", "--no-browser")
    assert review_page.returncode == 1 and review_page.stderr.strip() == (
        "error: sharded is sharded: review one shard at a time, e.g. zaoshu review sharded/shards/1-of-2 "
        "(export reads every shard's decisions)")
    shard_one = ids(tmp_path / "sharded/shards/1-of-2")
    review = {"id": shard_one[0], "action": "reject", "reason": "FORMAT", "rev": 1, "base_rev": 0}
    (tmp_path / "sharded/shards/1-of-2/review.jsonl").write_text(json.dumps(review) + "\n", encoding="utf-8")
    reviewed = zaoshu(tmp_path, "export", "sharded", "--format", "alpaca")  # a shard reviewed on its own
    assert reviewed.returncode == 0, reviewed.stderr
    assert len(json.loads("[" + ",".join((tmp_path / "sharded/exports/alpaca/all.jsonl").read_text(
        encoding="utf-8").splitlines()) + "]")) == len(ids(tmp_path / "single")) - 1
    exported = [sorted(json.loads(line)["messages"][1]["content"]  # the request of each sample (replies vary)
                       for line in (tmp_path / run / "exports/openai/all.jsonl").read_text(encoding="utf-8").splitlines())
                for run in ("sharded", "single")]
    assert exported[0] == exported[1] and len(exported[0]) == len(ids(tmp_path / "single"))


def test_exports_warning_names_the_shards_ledger_that_holds_the_torn_line(tmp_path):
    """A torn last line in a shard's accepted.jsonl was said to be in the run's own accepted.jsonl, a file
    a sharded run does not have."""
    with FakeOpenAI(reply=reply) as server:
        config = tianji_yaml(tmp_path, llm={"base_url": server.base_url, "model": "fake-model"})
        for shard in ("1/2", "2/2"):
            assert sh(tmp_path, "--config", str(config), "--out", "run", "--shard", shard).returncode == 0
    ledger = tmp_path / "run/shards/2-of-2/accepted.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.write_bytes(b"".join(lines[:-1]) + lines[-1][:20])
    for fmt in ("openai", "kto"):  # a sample export and a preference export
        exported = zaoshu(tmp_path, "export", "run", "--format", fmt)
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.splitlines()[0].startswith(
            f"warning: run/shards/2-of-2/accepted.jsonl: line {len(lines)}: invalid JSON ("), exported.stdout


def test_changing_the_shard_count_or_mixing_unsharded_is_refused_in_one_line(tmp_path):
    with FakeOpenAI(reply=reply) as server:
        config = tianji_yaml(tmp_path, llm={"base_url": server.base_url, "model": "fake-model"})
        assert sh(tmp_path, "--config", str(config), "--out", "run", "--shard", "1/2").returncode == 0
        before = (tmp_path / "run/shards/1-of-2/accepted.jsonl").read_bytes()
        three = sh(tmp_path, "--config", str(config), "--out", "run", "--shard", "1/3")
        flat = sh(tmp_path, "--config", str(config), "--out", "run")
        bad = sh(tmp_path, "--config", str(config), "--out", "other", "--shard", "3/2")
        workers = sh(tmp_path, "--config", str(config), "--out", "other", "--workers", "2")
    assert three.returncode == flat.returncode == bad.returncode == workers.returncode == 1
    assert workers.stderr.strip() == "error: --workers and --ray-address need --ray"
    assert three.stderr.strip() == "error: run is sharded 2 ways, not 3: pass --shard i/2, or choose another --out"
    assert flat.stderr.strip() == "error: run is sharded 2 ways: pass --shard i/2"
    assert bad.stderr.strip() == "error: --shard 3/2: i must be between 1 and n (got 3 of 2)"
    assert (tmp_path / "run/shards/1-of-2/accepted.jsonl").read_bytes() == before  # nothing lost
    assert not (tmp_path / "run/shards/1-of-3").exists()


def test_a_local_run_never_imports_ray(tmp_path):
    with FakeOpenAI(reply=reply) as server:
        config = tianji_yaml(tmp_path, llm={"base_url": server.base_url, "model": "fake-model"})
        result = sh(tmp_path, "--config", str(config), "--out", "run", "--limit", "2", flags=("-X", "importtime"))
    assert result.returncode == 0, result.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert "graphs.execute" in imported  # the import log is there
    assert [m for m in imported if m == "ray" or m.startswith("ray.")] == []


def test_a_sharded_runs_stats_carry_the_usage_per_role_summed_over_its_shards(tmp_path):
    with FakeOpenAI(reply=reply, cache_usage="openai") as server:
        config = tianji_yaml(tmp_path, llm={"base_url": server.base_url, "model": "fake-model"})
        for shard in ("1/2", "2/2"):
            result = sh(tmp_path, "--config", str(config), "--out", "run", "--limit", "6", "--shard", shard)
            assert result.returncode == 0, result.stderr
    parts = [json.loads((tmp_path / f"run/shards/{i}-of-2/stats.json").read_text(encoding="utf-8")) for i in (1, 2)]
    stats = json.loads((tmp_path / "run/stats.json").read_text(encoding="utf-8"))
    assert set(parts[0]) - {"message"} <= set(stats)  # every field a single run's stats.json has
    roles = stats["usage_by_role"]
    assert set(roles) == set(parts[0]["usage_by_role"]) | set(parts[1]["usage_by_role"])
    for role, usage in roles.items():
        for key in ("calls", "input_tokens", "output_tokens", "cached_tokens"):
            assert usage[key] == sum(p["usage_by_role"].get(role, {}).get(key, 0) for p in parts)
    cached, accepted = stats["cached_tokens"], stats["accepted"]
    assert cached == parts[0]["cached_tokens"] + parts[1]["cached_tokens"] > 0
    assert stats["cache_hit_share"] == round(cached / stats["input_tokens"], 4)  # from the sums, not averaged
    calls = sum(u["calls"] for u in roles.values())
    assert accepted == 6 and stats["per_accepted"]["all"]["calls"] == round(calls / accepted, 3)
    card = (tmp_path / "run/DATASET_CARD.md").read_text(encoding="utf-8")
    assert "没有记录各角色的用量" not in card and f"| critic | {roles['critic']['calls']} |" in card


def test_runs_show_and_list_count_a_shard_that_is_running_or_was_killed(tmp_path):
    """The run's own stats.json is the shards' sum as of the last shard that ended: with shard 2 killed
    mid-run, `runs show` said 'status completed  accepted 4' over ledgers holding 7 samples. Readers now sum
    the shards' stats.json (each kept current as its items finish) when they read. The items that finished
    in the last stats interval before the kill were written only when the next item finished: with four in
    flight, stats.json said 5 accepted over ledgers holding 8."""
    with FakeOpenAI(reply=reply, latency=0.3) as server:
        config = tianji_yaml(tmp_path, roles=[{"name": n, "relation": r} for n, r in
                                              [("奶奶", "elder"), ("同事", "peer"), ("爷爷", "elder"), ("朋友", "peer")]],
                             llm={"base_url": server.base_url, "model": "fake-model"})
        (tmp_path / "runs/tianji").mkdir(parents=True)
        out = "runs/tianji/big"
        assert sh(tmp_path, "--config", str(config), "--out", out, "--shard", "1/2").returncode == 0
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_", "SERPER_"))}
        proc = subprocess.Popen([sys.executable, "-m", "recipes.tianji", "--config", str(config), "--out", out,
                                 "--shard", "2/2", "--concurrency", "4"], cwd=tmp_path,
                                env={**env, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ledger = tmp_path / out / "shards/2-of-2/accepted.jsonl"
        deadline = time.monotonic() + 60
        while not (ledger.exists() and ledger.read_text(encoding="utf-8").count("\n") >= 2):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        server.latency = 8  # no item finishes from the next call on: what did is in stats.json one interval later
        time.sleep(1.5)  # the call in flight (0.3 s) and one stats interval (graphs.execute.CHECKPOINT_S)
        proc.kill()
        proc.wait(timeout=30)
    accepted = len(ids(tmp_path / out))
    shown = json.loads(zaoshu(tmp_path, "runs", "show", out, "--json").stdout)
    assert shown["stats"]["accepted"] == shown["lines"]["accepted"] == accepted
    assert shown["stats"]["shards"] == {"1-of-2": "completed", "2-of-2": "stopped"}
    text = zaoshu(tmp_path, "runs", "show", out).stdout.splitlines()[0]
    assert text.startswith(f"{out}  status mixed (1-of-2 completed, 2-of-2 stopped)  accepted {accepted}  ")
    listed = json.loads(zaoshu(tmp_path, "runs", "list", "--json").stdout)
    assert [(r["run"], r["accepted"]) for r in listed] == [("big", accepted)]
    assert zaoshu(tmp_path, "card", out).returncode == 0  # its usage table counted shard 1 alone
    card = (tmp_path / out / "DATASET_CARD.md").read_text(encoding="utf-8")
    assert f"| critic | {shown['stats']['usage_by_role']['critic']['calls']} |" in card


def test_a_run_whose_other_shards_have_not_run_is_not_shown_completed(tmp_path):
    """Shard 1/2 alone made the run 'status completed' in runs show and runs list: half its items had not run."""
    with FakeOpenAI(reply=reply) as server:
        config = tianji_yaml(tmp_path, llm={"base_url": server.base_url, "model": "fake-model"})
        assert sh(tmp_path, "--config", str(config), "--out", "run", "--limit", "4", "--shard", "1/2").returncode == 0
    shown = json.loads(zaoshu(tmp_path, "runs", "show", "run", "--json").stdout)
    assert shown["stats"]["shards"] == {"1-of-2": "completed", "2-of-2": "not started"}
    assert zaoshu(tmp_path, "runs", "show", "run").stdout.startswith(
        "run  status mixed (1-of-2 completed, 2-of-2 not started)  accepted ")


def test_fresh_shards_without_out_are_refused_before_they_split_a_run_in_two(tmp_path):
    """`--shard 1/2 --fresh` then `--shard 2/2 --fresh` made two run folders, each 'completed' with half the items."""
    result = sh(tmp_path, "--config", str(tianji_yaml(tmp_path)), "--shard", "1/2", "--fresh")
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: --fresh with --shard starts a new run folder for this shard alone: "
                                     "name the run's folder with --out, the same for every shard")
    assert not (tmp_path / "runs").exists()


def test_a_shards_budget_stop_says_it_counts_the_shard(tmp_path):
    """A shard's --budget counts what that shard spent; its stop message said 'this run has spent', a figure
    far below what runs show says the run spent."""
    with FakeOpenAI(reply=reply) as server:
        config = tianji_yaml(tmp_path, llm={"base_url": server.base_url, "model": "fake-model"})
        assert sh(tmp_path, "--config", str(config), "--out", "run", "--shard", "1/2").returncode == 0
        capped = sh(tmp_path, "--config", str(config), "--out", "run", "--shard", "2/2", "--budget", "1 tokens")
    assert capped.returncode == 0, capped.stderr
    part = json.loads((tmp_path / "run/shards/2-of-2/stats.json").read_text(encoding="utf-8"))
    spent = part["input_tokens"] + part["output_tokens"]
    assert (f"budget 1 tokens reached: shard 2/2 has spent {spent:,} tokens, its earlier sessions included "
            "(each shard counts its own)") in capped.stdout


def test_a_shard_dedups_against_what_the_runs_other_shards_accepted(tmp_path):
    """Six variants of one cell and a model that writes the same greeting each time: one process accepts the
    first and rejects five DUPLICATE. Shard 2/2, run after 1/2, knew only its own samples and accepted the
    same greeting again, so the run exported it twice."""
    from tests.fake_openai import ChatRequest

    def same_greeting(req: ChatRequest):
        if "- text" in req.system and "祝福语" in req.text:
            return {"text": "奶奶，在生日这个特别的日子里，我想认真地对您说一声祝福，愿您身体健康、精神饱满，"
                            "每一天都过得踏实又舒心；有空我们一起吃顿饭，好好聊聊天。"}
        return reply(req)

    with FakeOpenAI(reply=same_greeting) as server:
        config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"],
                             variants_per_cell=6, llm={"base_url": server.base_url, "model": "fake-model"})
        for shard in ("1/2", "2/2"):
            result = sh(tmp_path, "--config", str(config), "--out", "run", "--shard", shard, "--concurrency", "1")
            assert result.returncode == 0, result.stderr
    assert len(ids(tmp_path / "run")) == 1
    rejected = list(read_ledger(tmp_path / "run", "rejected.jsonl"))
    assert len(rejected) == 5 and {tuple(r["codes"]) for r in rejected} == {("DUPLICATE",)}


GREETING = ("奶奶，在生日这个特别的日子里，我想认真地对您说一声祝福，愿您身体健康、精神饱满，"
            "每一天都过得踏实又舒心；有空我们一起吃顿饭，好好聊聊天。")


def one_greeting_one_shard_later(held: int = 1, hold_s: float = 1.5):
    """A script: the model writes the same greeting every time. Each shard sends one request at a time, so
    the first two greeting requests come from the two shards, both past reading the run's samples; when
    both have come, one is answered at once and the other (`held`: the first to come, 0, or the second, 1)
    `hold_s` later, after the other shard has accepted its copy."""
    import asyncio

    from tests.fake_openai import ChatRequest

    arrived: list[int] = []
    both = asyncio.Event()

    async def script(req: ChatRequest):
        if "- text" not in req.system or "祝福语" not in req.text:
            return reply(req)
        if len(arrived) < 2:
            mine = len(arrived)
            arrived.append(mine)
            if mine == 1:
                both.set()
            try:
                await asyncio.wait_for(both.wait(), 60)
            except TimeoutError:  # the other shard never asked: answer anyway, the test says why
                pass
            if mine == held:
                await asyncio.sleep(hold_s)
        return {"text": GREETING}

    return script


def test_shards_running_at_once_reject_each_others_duplicates(tmp_path):
    """Two shards run at the same time and the model writes one greeting for every item. In one run the
    first copy is accepted and the rest are DUPLICATE; each shard accepted its own first copy, because a
    shard knew only the samples the run held when it started, and the dataset had the greeting twice."""
    with FakeOpenAI(reply=one_greeting_one_shard_later()) as server:
        config = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"],
                             variants_per_cell=6, llm={"base_url": server.base_url, "model": "fake-model"})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_", "SERPER_"))}
        procs = [subprocess.Popen([sys.executable, "-m", "recipes.tianji", "--config", str(config), "--out", "run",
                                   "--shard", shard, "--concurrency", "1"], cwd=tmp_path,
                                  env={**env, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for shard in ("1/2", "2/2")]
        outputs = [proc.communicate(timeout=180) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err[-2000:]
    shards = [tmp_path / f"run/shards/{i}-of-2" for i in (1, 2)]
    assert all(ids(shard) + ids(shard, "rejected.jsonl") for shard in shards)  # each shard had items to run
    accepted = list(read_ledger(tmp_path / "run", "accepted.jsonl"))
    rejected = list(read_ledger(tmp_path / "run", "rejected.jsonl"))
    assert len(accepted) == 1 and len(rejected) == 5
    assert {tuple(r["codes"]) for r in rejected} == {("DUPLICATE",)}
    assert {r["sample"]["meta"]["duplicate_of"] for r in rejected} == {accepted[0]["id"]}


def test_other_shards_give_each_new_whole_line_once_and_a_late_shards_lines_from_its_start(tmp_path):
    from graphs.shards import OtherShards

    mine, other, late = (tmp_path / f"run/shards/{i}-of-3" for i in (1, 2, 3))
    for folder in (mine, other):
        folder.mkdir(parents=True)
    (other / "accepted.jsonl").write_text('{"id": "before"}\n', encoding="utf-8")  # read with the run's samples
    others = OtherShards(tmp_path / "run", (1, 3))
    assert others.new_samples() == []
    with open(other / "accepted.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "a"}\n{"id": "b"}\n{"id": "hal')  # the last line is still being written
        f.flush()
        assert [r["id"] for r in others.new_samples()] == ["a", "b"]
        f.write('f"}\nnot json\n')
    (mine / "accepted.jsonl").write_text('{"id": "mine"}\n', encoding="utf-8")  # this shard's own: never
    late.mkdir()
    (late / "accepted.jsonl").write_text('{"id": "late"}\n', encoding="utf-8")  # a shard that started since
    assert sorted(r["id"] for r in others.new_samples()) == ["half", "late"]
    assert others.new_samples() == []
