"""`python -m recipes.<name> --ray --workers 2` on a local Ray cluster started here, against the local
test server: every item once, the global RPM across workers, a killed worker's items redone, shards.

One cluster for the module (starting one takes seconds); each run is the real recipe command, a
second Ray driver that joins it with `--ray-address`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")

from graphs.shards import read_ledger  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402
from tests.recipe_replies import reply  # noqa: E402
from tests.test_recipe_cli import tianji_yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU local cluster whose workers import this checkout; its address for `--ray-address`."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(REPO)  # the workers inherit it: they import this checkout
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    info = ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False,
                    namespace="zaoshu")
    try:
        yield info.address_info["gcs_address"]
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


TOKEN = "0123456789abcdef" * 4
TOKEN_CLUSTER = """
import sys, ray
info = ray.init(num_cpus=1, include_dashboard=False, _temp_dir=sys.argv[1])
print(info.address_info["gcs_address"], flush=True)
sys.stdin.read()  # until the test closes it
ray.shutdown()
"""


@pytest.fixture(scope="module")
def token_cluster():
    """A second local cluster, with token authentication (TOKEN): its GCS address."""
    temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")
    proc = subprocess.Popen([sys.executable, "-c", TOKEN_CLUSTER, temp], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            env={**env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN})
    try:
        address = proc.stdout.readline().strip()
        assert address, "the token cluster did not start"
        yield address
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def without_token(**extra: str) -> dict[str, str]:
    """This test's environment with no auth token sent (Ray sends one to a named address only with
    RAY_AUTH_MODE=token), plus `extra`."""
    return {k: v for k, v in env().items() if not k.startswith("RAY_AUTH_")} | extra


def recipe(tmp_path: Path, config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "recipes.tianji", "--config", str(config), *args]


def env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_", "SERPER_"))}
    return {**base, "PYTHONPATH": str(REPO)}


def run(tmp_path: Path, cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=240)


def finished_ids(run_dir: Path) -> list[str]:
    return [r["id"] for name in ("accepted.jsonl", "rejected.jsonl") for r in read_ledger(run_dir, name)]


def config(tmp_path: Path, server: FakeOpenAI, roles: int = 2, **llm) -> Path:
    names = [("奶奶", "elder"), ("同事", "peer"), ("爷爷", "elder"), ("朋友", "peer")][:roles]
    return tianji_yaml(tmp_path, roles=[{"name": n, "relation": r} for n, r in names],
                       llm={"base_url": server.base_url, "model": "fake-model", **llm})


def test_auto_with_no_cluster_running_stops_the_recipe_before_its_run_folder(tmp_path):
    """`--ray-address auto` with no cluster on this machine failed after the run folder was made: it stayed
    'preparing' for ever (runs list), and Ray's message named its own `--address` flag. First in this file,
    before its clusters start: `auto` joins any Ray cluster running on the machine (test_ray_cli starts none)."""
    from ray._private.services import find_gcs_addresses

    if find_gcs_addresses():
        pytest.skip("a Ray cluster is running on this machine: --ray-address auto would join it")
    yaml_path = tianji_yaml(tmp_path, llm={"base_url": "http://127.0.0.1:9/v1", "model": "fake-model"})
    result = subprocess.run(recipe(tmp_path, yaml_path, "--out", "run", "--ray", "--ray-address", "auto"),
                            cwd=tmp_path, env=without_token(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --ray-address auto: no Ray cluster is running on this machine: start one with `ray start --head`, "
        "or leave out --ray-address for a local cluster"]
    assert not (tmp_path / "run").exists()


def test_two_workers_run_every_item_once_under_one_rpm(tmp_path, cluster):
    rpm = 120  # one request start every 0.5 s, across both workers
    with FakeOpenAI(reply=reply, latency=0.05) as server:
        yaml_path = config(tmp_path, server, rpm=rpm)
        result = run(tmp_path, recipe(tmp_path, yaml_path, "--out", "run", "--ray", "--ray-address", cluster,
                                      "--workers", "2", "--concurrency", "4"))
        starts = sorted(r.at for r in server.requests)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ray: 2 workers × 2 items in flight" in result.stdout
    ids = finished_ids(tmp_path / "run")
    assert len(ids) == len(set(ids)) == 6  # 2 roles × 3 scenes × 1 style, each exactly once
    assert len(starts) >= 12  # at least the responder and the judge per item
    interval = 60 / rpm
    # Starts are spaced by the pacing actor; a grant reaches the server after an RPC and an HTTP hop,
    # so single gaps jitter (a loaded 2-core box: up to ~0.3 s), but no run of starts comes faster
    # than the budget. Two workers pacing alone would run at twice the rate.
    for k in (5, 10):
        spans = [b - a for a, b in zip(starts, starts[k - 1:])]
        assert min(spans) >= (k - 1) * interval - 0.35, spans
    assert (starts[-1] - starts[0]) / (len(starts) - 1) >= interval * 0.95


def ray_run_until_two_accepted(tmp_path, cluster, yaml_path, out: str, concurrency: int) -> subprocess.Popen:
    """A `--ray --workers 2` run of `yaml_path` into `out`, returned once its ledger holds 2 accepted samples."""
    proc = subprocess.Popen(recipe(tmp_path, yaml_path, "--out", out, "--ray", "--ray-address", cluster,
                                   "--workers", "2", "--concurrency", str(concurrency)),
                            cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ledger = tmp_path / out / "accepted.jsonl"
    deadline = time.monotonic() + 120
    while not (ledger.exists() and ledger.read_text(encoding="utf-8").count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    return proc


def test_a_ray_run_with_nothing_left_to_run_starts_no_worker(tmp_path, cluster):
    """Resuming a finished run with --ray started the workers and the pacing actor (10-20 s) to run 0 items."""
    with FakeOpenAI(reply=reply) as server:
        yaml_path = config(tmp_path, server)
        assert run(tmp_path, recipe(tmp_path, yaml_path, "--out", "run", "--limit", "2")).returncode == 0
        again = run(tmp_path, recipe(tmp_path, yaml_path, "--out", "run", "--limit", "2", "--ray",
                                     "--ray-address", cluster, "--workers", "2"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(0 of 2 items to run)" in again.stdout and "ray: nothing to run, no worker started" in again.stdout
    assert "workers ×" not in again.stdout and len(finished_ids(tmp_path / "run")) == 2


def test_no_more_workers_start_than_items_or_items_in_flight(tmp_path, cluster):
    """`--workers 8` for 2 items started 8 workers, each building its clients, 6 of them for nothing."""
    with FakeOpenAI(reply=reply) as server:
        result = run(tmp_path, recipe(tmp_path, config(tmp_path, server), "--out", "run", "--limit", "2", "--ray",
                                      "--ray-address", cluster, "--workers", "8"))
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("ray: "))
    assert line.startswith("ray: 2 workers × 4 items in flight on 2 CPUs (")
    assert line.endswith(") (--workers 8: no more workers than items to run or in flight)")
    assert len(finished_ids(tmp_path / "run")) == 2


def test_the_workers_of_a_ray_shard_read_the_runs_index_wherever_they_start(tmp_path, cluster):
    """A knowledge recipe's index is <runs root>/index by default. The workers took the shard folder's
    parent (RUN/shards) for that root, as a path relative to the driver's folder but resolved in theirs
    (the cluster's): each built a second index in <cluster's folder>/RUN/shards/index, and read the run's
    accepted samples for dedup from a file that was not there."""
    from tests.test_answerer_backends import recipe_yaml as wulewule_yaml, small_folder

    worker_cwd = Path(ray.get(ray.remote(lambda: os.getcwd()).remote()))
    out = f"sub-{uuid.uuid4().hex[:8]}/big"  # relative, as a user types it
    with FakeOpenAI(reply=reply) as server:
        yaml_path = wulewule_yaml(tmp_path, small_folder(tmp_path), llm={"base_url": server.base_url,
                                                                        "model": "fake-model"})
        data = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
        del data["index_dir"]  # the default: <runs root>/index, beside the run folders
        yaml_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        result = run(tmp_path, [sys.executable, "-m", "recipes.wulewule", "--config", str(yaml_path), "--out", out,
                                "--shard", "1/1", "--ray", "--ray-address", cluster, "--workers", "1"])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    root = out.split("/")[0]
    assert (tmp_path / root / "index").is_dir() and not (tmp_path / out / "shards/index").exists()
    assert worker_cwd == tmp_path or not (worker_cwd / root).exists()


def test_a_killed_worker_loses_nothing_and_duplicates_nothing(tmp_path, cluster):
    with FakeOpenAI(reply=reply, latency=0.4) as server:
        yaml_path = config(tmp_path, server, roles=4)
        proc = ray_run_until_two_accepted(tmp_path, cluster, yaml_path, "run", concurrency=4)
        victim = ray.get_actor("zaoshu-worker-run-0", namespace="zaoshu")
        ray.kill(victim, no_restart=False)  # as a crashed machine would: Ray restarts it
        out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert "worker died under item" in err  # items in flight on it were sent again
    ids = finished_ids(tmp_path / "run")
    assert len(ids) == len(set(ids)) == 12  # 4 roles × 3 scenes: all there, none twice


def test_a_killed_ray_run_leaves_its_spending_in_stats_for_the_next_budget(tmp_path, cluster):
    """kill -9 gives a --ray driver no chance to write stats.json at the end: it is kept current as items
    finish, as in a local run, so the killed session's counts show and the next --budget counts what it spent."""
    with FakeOpenAI(reply=reply, latency=0.4) as server:
        yaml_path = config(tmp_path, server, roles=4)
        proc = ray_run_until_two_accepted(tmp_path, cluster, yaml_path, "killed", concurrency=2)
        ledger = tmp_path / "killed" / "accepted.jsonl"
        time.sleep(0.6)  # one stats interval (graphs.execute.CHECKPOINT_S)
        proc.kill()
        proc.communicate(timeout=60)
        stats = json.loads((tmp_path / "killed" / "stats.json").read_text(encoding="utf-8"))
        accepted = ledger.read_text(encoding="utf-8").count("\n")
        spent = stats["input_tokens"] + stats["output_tokens"]
        assert stats["status"] == "running" and 1 <= stats["accepted"] <= accepted < 12  # killed mid-run
        assert spent > 0 and stats["usage_by_role"]["responder"]["calls"] >= stats["accepted"]
        again = run(tmp_path, recipe(tmp_path, yaml_path, "--out", "killed", "--budget", f"{spent} tokens"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"budget {spent} tokens reached: this run has spent {spent:,} tokens" in again.stdout


def test_a_ray_run_stopped_by_its_budget_says_what_stats_json_says_it_spent(tmp_path, cluster):
    """The workers' last usage comes back as the pool closes: the stop message counts it, as stats.json does."""
    with FakeOpenAI(reply=reply, latency=0.2) as server:
        result = run(tmp_path, recipe(tmp_path, config(tmp_path, server, roles=4), "--out", "run", "--ray",
                                      "--ray-address", cluster, "--workers", "2", "--budget", "1k tokens"))
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((tmp_path / "run" / "stats.json").read_text(encoding="utf-8"))
    spent = stats["input_tokens"] + stats["output_tokens"]
    assert stats["status"] == "budget" and spent >= 1000
    assert f"budget 1000 tokens reached: this run has spent {spent:,} tokens" in result.stdout


def test_a_ray_run_stopped_by_its_budget_counts_every_call_the_server_answered(tmp_path, cluster):
    """Starts spread by the RPM, so the budget is reached while other items are half done. The workers
    kept calling until they were killed, and the calls in flight then were answered (and billed) but
    counted nowhere: 6,247 tokens served, 4,508 in stats.json. Now, as in a local run, the workers
    start no call once the run's spending reaches the cap, and the calls in flight finish and count."""
    with FakeOpenAI(reply=reply, latency=0.6) as server:
        result = run(tmp_path, recipe(tmp_path, config(tmp_path, server, roles=4, rpm=240), "--out", "run", "--ray",
                                      "--ray-address", cluster, "--workers", "2", "--budget", "1k tokens"))
        served = sum(r.tokens for r in server.requests)
        answered = sum(1 for r in server.requests if r.tokens)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((tmp_path / "run" / "stats.json").read_text(encoding="utf-8"))
    assert stats["status"] == "budget"
    assert stats["input_tokens"] + stats["output_tokens"] == served
    assert sum(u["calls"] for u in stats["usage_by_role"].values()) == answered < 24  # 12 items × 2 calls
    assert f"this run has spent {served:,} tokens" in result.stdout


def test_a_budget_reached_by_one_wave_of_replies_stops_the_next_calls_on_every_worker(tmp_path, cluster):
    """All 8 calls in flight come back together (a fixed latency) and pass the budget between them. One process
    counts them all before its next call and makes none: 8 requests. On Ray each worker saw its own 4 replies,
    under the cap, and started its 4 next calls before the driver heard from the other: 16 requests, 10,624
    tokens against 3,000. Each worker now asks the pacing actor, which adds up what every worker had spent at
    its last call: a worker that asks before the other has reported still goes on (12 requests), none after."""
    with FakeOpenAI(reply=reply, latency=0.2) as server:
        result = run(tmp_path, recipe(tmp_path, config(tmp_path, server, roles=4), "--out", "run", "--ray",
                                      "--ray-address", cluster, "--workers", "2", "--concurrency", "8",
                                      "--budget", "3k tokens"))
        served, requests = sum(r.tokens for r in server.requests), len(server.requests)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((tmp_path / "run" / "stats.json").read_text(encoding="utf-8"))
    assert stats["status"] == "budget" and stats["input_tokens"] + stats["output_tokens"] == served
    assert 8 < requests <= 12  # the first wave, and the next calls of at most one worker's 4 items


def test_shards_one_on_ray_one_local_make_the_same_run_as_one_process(tmp_path, cluster):
    from graphs.cli import summarize_run

    with FakeOpenAI(reply=reply) as server:
        yaml_path = config(tmp_path, server, roles=4)
        one = run(tmp_path, recipe(tmp_path, yaml_path, "--out", "single"))
        first = run(tmp_path, recipe(tmp_path, yaml_path, "--out", "sharded", "--shard", "1/2", "--ray",
                                     "--ray-address", cluster, "--workers", "2"))
        second = run(tmp_path, recipe(tmp_path, yaml_path, "--out", "sharded", "--shard", "2/2"))
    for result in (one, first, second):
        assert result.returncode == 0, result.stderr[-3000:]
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    assert sorted(finished_ids(sharded)) == sorted(finished_ids(single))
    assert len(finished_ids(sharded)) == 12
    parts = [len(finished_ids(sharded / "shards" / f"{i}-of-2")) for i in (1, 2)]
    assert sum(parts) == 12 and min(parts) > 0
    assert summarize_run(sharded)["stats"]["accepted"] == summarize_run(single)["stats"]["accepted"]


def test_kb_build_on_ray_writes_the_index_a_local_build_writes(tmp_path, cluster):
    import sqlite3

    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(1, 4):
        docs.joinpath(f"第{n}回.txt").write_text(
            "\n\n".join(f"第{n}回 第{p}段：孙悟空拜须菩提祖师学艺，习得七十二般变化与筋斗云，一去十万八千里。"
                        f"唐僧师徒西行取经，路遇妖魔{n * p}处。" * 3 for p in range(40)), encoding="utf-8")
    cli = [sys.executable, "-m", "zaoshu_cli", "kb"]
    local = run(tmp_path, [*cli, "build", "docs", "--index", "local", "--embedder", "hash"])
    remote = run(tmp_path, [*cli, "build", "docs", "--index", "remote", "--embedder", "hash", "--ray",
                            "--ray-address", cluster, "--workers", "2"])
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr[-3000:]
    chunks = int(remote.stdout.split("ray: ")[1].split()[0])
    assert chunks > 40 and f"ray: {chunks} chunks embedded on the cluster, 0 here" in remote.stdout

    def rows(index: str) -> list[tuple]:
        with sqlite3.connect(tmp_path / index / "kb.sqlite") as db:
            table = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            name = "chunks" if "chunks" in table else table[0]
            return sorted(db.execute(f"SELECT * FROM {name}").fetchall())

    assert rows("remote") == rows("local")  # same chunks, same vectors, byte for byte
    query = [*cli, "search", "孙悟空学了什么本事？", "-k", "3", "--json"]
    answers = [json.loads(run(tmp_path, [*query, "--index", index]).stdout) for index in ("local", "remote")]
    assert answers[0] == answers[1] and len(answers[0]["passages"]) == 3


def test_kb_build_rebuild_on_ray_keeps_the_index_when_the_cluster_refuses(tmp_path, token_cluster):
    """`--rebuild` deleted the index before joining the cluster: a cluster that refused (here: it wants its
    auth token) left the user with no index at all. It is replaced only once the cluster has embedded."""
    docs = tmp_path / "docs"
    docs.mkdir()
    docs.joinpath("第1回.txt").write_text("孙悟空拜须菩提祖师学艺，习得七十二般变化与筋斗云。" * 20, encoding="utf-8")
    cli = [sys.executable, "-m", "zaoshu_cli", "kb"]
    assert run(tmp_path, [*cli, "build", "docs", "--index", "idx", "--embedder", "hash"]).returncode == 0
    before = sorted(p.name for p in (tmp_path / "idx").iterdir())
    result = subprocess.run([*cli, "build", "docs", "--index", "idx", "--embedder", "hash", "--rebuild", "--ray",
                             "--ray-address", token_cluster], cwd=tmp_path, env=without_token(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert "asks for its auth token" in result.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == before
    found = run(tmp_path, [*cli, "search", "孙悟空学了什么本事？", "-k", "1", "--json", "--index", "idx"])
    assert found.returncode == 0 and len(json.loads(found.stdout)["passages"]) == 1


def test_a_429_seen_by_one_worker_halves_every_workers_share(cluster):
    """Two workers' gates over one budget of 32 requests in flight: 16 each, held locally; a 429 at one
    reaches the other through the pacing actor within its sync interval."""
    import asyncio

    from graphs.ray_pacing import PacingActor, RayGate

    actor = PacingActor.options(max_concurrency=100).remote()

    async def scenario() -> tuple[float, float, float]:
        a, b = RayGate(actor, "k", 32, workers=2), RayGate(actor, "k", 32, workers=2)
        before = b.local.limit
        a.on_rate_limited()  # worker A got a 429
        deadline = time.monotonic() + 10
        while b.local.limit == before and time.monotonic() < deadline:
            async with b:  # worker B keeps calling; it learns at its next sync
                await asyncio.sleep(0.05)
        return before, a.local.limit, b.local.limit

    try:
        before, a_limit, b_limit = asyncio.run(scenario())
    finally:
        ray.kill(actor)
    assert (before, a_limit, b_limit) == (16, 8, 8)


def test_a_small_budget_is_counted_in_the_actor_call_by_call(cluster):
    """3 requests in flight for 2 workers cannot be split: every call asks the actor, and the 4th waits."""
    import asyncio

    from graphs.ray_pacing import PacingActor, RayGate

    actor = PacingActor.options(max_concurrency=100).remote()

    async def scenario() -> tuple[int, bool]:
        gates = [RayGate(actor, "k", 3, workers=2) for _ in range(2)]
        assert all(g.local is None for g in gates)
        held = [gates[i % 2] for i in range(3)]
        for gate in held:
            await gate.__aenter__()
        fourth = asyncio.ensure_future(gates[1].__aenter__())
        await asyncio.sleep(0.5)
        waited = not fourth.done()
        await held[0].__aexit__(None, None, None)
        await asyncio.wait_for(fourth, 5)
        state = await actor.state.remote()
        return state["gates"]["k"]["in_flight"], waited

    try:
        in_flight, waited = asyncio.run(scenario())
    finally:
        ray.kill(actor)
    assert waited and in_flight == 3


def test_a_worker_without_an_endpoint_is_one_line_and_exit_1(tmp_path, cluster):
    yaml_path = tianji_yaml(tmp_path)  # no endpoint in the YAML, none in the environment
    result = run(tmp_path, recipe(tmp_path, yaml_path, "--out", "run", "--ray", "--ray-address", cluster,
                                  "--workers", "1"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: no LLM endpoint configured for role")
    assert "Traceback" not in result.stderr


def test_a_cluster_that_asks_for_its_token_says_so_in_one_line(tmp_path, token_cluster):
    """A new Ray cluster wants a token (~/.ray/auth_token), and Ray sends it to an address named outright
    only with RAY_AUTH_MODE=token: the run said 'Failed to connect to Ray cluster at …', no reason given;
    then it said why, after ray.init had asked 20 times, a second apart, with a warning line each time.
    A wrong token got the same advice to set RAY_AUTH_MODE=token, which was set."""
    config = tianji_yaml(tmp_path, llm={"base_url": "http://127.0.0.1:9/v1", "model": "fake-model"})
    command = recipe(tmp_path, config, "--out", "run", "--ray", "--ray-address", token_cluster)
    no_token, wrong_token = (subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True,
                                            timeout=120)
                             for environ in (without_token(), without_token(RAY_AUTH_MODE="token",
                                                                            RAY_AUTH_TOKEN="f" * 64)))
    assert no_token.returncode == wrong_token.returncode == 1
    assert no_token.stderr.strip() == (
        f"error: the Ray cluster at {token_cluster} asks for its auth token: set RAY_AUTH_MODE=token, with the "
        "cluster's token in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")
    assert wrong_token.stderr.strip() == (
        f"error: the Ray cluster at {token_cluster} refused the auth token this machine sent: put the cluster's "
        "own (its head's ~/.ray/auth_token) in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")
    assert not (tmp_path / "run").exists()


def test_the_clusters_own_token_joins_it(tmp_path, token_cluster):
    with FakeOpenAI(reply=reply) as server:
        result = subprocess.run(recipe(tmp_path, config(tmp_path, server), "--out", "run", "--limit", "2", "--ray",
                                       "--ray-address", token_cluster, "--workers", "1"),
                                cwd=tmp_path, env=without_token(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN),
                                capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(finished_ids(tmp_path / "run")) == 2


def test_an_error_in_a_worker_stops_the_run_as_it_would_locally(tmp_path, cluster):
    """A 401 inside a worker comes back as the same fatal error: the run stops, exit 1, nothing recorded."""
    with FakeOpenAI(reply=reply, api_key="sk-the-only-good-key") as server:
        result = run(tmp_path, recipe(tmp_path, config(tmp_path, server), "--out", "run", "--ray",
                                      "--ray-address", cluster, "--workers", "2"))
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    assert "fatal" in result.stdout and "Incorrect API key" in result.stdout
    assert finished_ids(tmp_path / "run") == []


def test_a_duplicate_made_on_another_worker_is_rejected_as_in_one_process(tmp_path, cluster):
    """Six variants of one cell, and the model writes the same greeting every time. In one process the
    first is accepted and the rest are DUPLICATE; two workers each accept their first copy at the same
    moment, so the driver, the one ledger writer, rejects the second copy before it is written."""
    from tests.fake_openai import ChatRequest

    def same_greeting(req: ChatRequest):
        if "- text" in req.system and "祝福语" in req.text:
            return {"text": "奶奶，在生日这个特别的日子里，我想认真地对您说一声祝福，愿您身体健康、精神饱满，"
                            "每一天都过得踏实又舒心；有空我们一起吃顿饭，好好聊聊天。"}
        return reply(req)

    with FakeOpenAI(reply=same_greeting, latency=0.2) as server:
        yaml_path = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"],
                                variants_per_cell=6, llm={"base_url": server.base_url, "model": "fake-model"})
        result = run(tmp_path, recipe(tmp_path, yaml_path, "--out", "run", "--ray", "--ray-address", cluster,
                                      "--workers", "2", "--concurrency", "4"))
    assert result.returncode == 0, result.stderr[-3000:]
    accepted = list(read_ledger(tmp_path / "run", "accepted.jsonl"))
    rejected = list(read_ledger(tmp_path / "run", "rejected.jsonl"))
    assert len(accepted) == 1 and len(rejected) == 5
    assert {tuple(r["codes"]) for r in rejected} == {("DUPLICATE",)}
    assert {r["sample"]["meta"]["duplicate_of"] for r in rejected} == {accepted[0]["id"]}


def test_a_worker_restarted_after_the_budget_is_reached_starts_no_call():
    """The cap reached, every worker was told to start no call; a worker that died and came back after
    that had not heard it, and the items sent again to it ran their calls past the budget."""
    from agents.usage import Usage
    from graphs.ray_runner import ItemWorker, WorkerPool
    from graphs.state import WorkItem

    class Handle:
        def __init__(self):
            self.sent = []
            self.submit = type("M", (), {"remote": lambda _, *args: self.sent.append(("submit", args))})()
            self.stop_calls = type("M", (), {"remote": lambda _: self.sent.append(("stop_calls", ()))})()

    usage = Usage()
    usage.cap = lambda u: u.input_tokens + u.output_tokens >= 1000
    first, restarted = Handle(), Handle()
    pool = WorkerPool(ray, [first, restarted], usage)
    pool._count("w0", {"responder": {"calls": 3, "input_tokens": 900, "output_tokens": 150}})
    assert ("stop_calls", ()) in first.sent and ("stop_calls", ()) in restarted.sent

    restarted.sent.clear()  # Ray brought it back: a new ItemWorker, without the cap
    item = WorkItem.for_recipe("tianji", "persona", key={"role": "奶奶"})
    pool.slots[1].outbox.append(item)
    pool._flush()
    assert restarted.sent == [("submit", ([item], [], True))]

    worker = ItemWorker.__new__(ItemWorker)  # its side: a capped batch caps its calls before it starts them
    worker.ctx, worker.usage, worker.tasks, worker.graph = None, Usage(), set(), None
    asyncio.run(worker.submit([], [], True))
    assert worker.usage.cap is not None and worker.usage.cap(worker.usage)


def test_a_ray_shard_rejects_what_a_shard_running_at_once_accepted(tmp_path, cluster):
    """A shard on Ray and one run locally at the same time, the same greeting every time. The Ray shard asks
    first, is answered last: its worker accepts its copy after the local shard has written its own, and the
    driver, before writing, learns the other shard's new samples: DUPLICATE, as in one run."""
    from tests.test_shards import one_greeting_one_shard_later

    with FakeOpenAI(reply=one_greeting_one_shard_later(held=0)) as server:
        yaml_path = tianji_yaml(tmp_path, roles=[{"name": "奶奶", "relation": "elder"}], scenes=["生日"],
                                variants_per_cell=6, llm={"base_url": server.base_url, "model": "fake-model"})
        on_ray = subprocess.Popen(recipe(tmp_path, yaml_path, "--out", "run", "--shard", "1/2", "--ray", "--ray-address",
                                         cluster, "--workers", "1", "--concurrency", "1"),
                                  cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not any("祝福语" in r.text for r in server.requests):  # the Ray shard's first greeting is held
            assert on_ray.poll() is None and time.monotonic() < deadline, on_ray.communicate()
            time.sleep(0.05)
        local = run(tmp_path, recipe(tmp_path, yaml_path, "--out", "run", "--shard", "2/2", "--concurrency", "1"))
        out, err = on_ray.communicate(timeout=240)
    assert on_ray.returncode == 0 and local.returncode == 0, out + err[-2000:] + local.stderr[-2000:]
    accepted = list(read_ledger(tmp_path / "run", "accepted.jsonl"))
    rejected = list(read_ledger(tmp_path / "run", "rejected.jsonl"))
    assert [r["id"] for r in accepted] == [r["id"] for r in read_ledger(tmp_path / "run/shards/2-of-2", "accepted.jsonl")]
    assert len(accepted) == 1 and len(rejected) == 5
    assert {r["sample"]["meta"]["duplicate_of"] for r in rejected} == {accepted[0]["id"]}
