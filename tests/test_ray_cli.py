"""`--ray` flags that are refused before Ray starts: a malformed or unreachable `--ray-address` (Ray
itself retries an unreachable cluster for minutes) and the local-only `--trace` / `--interactive`,
each one line and exit 1. No Ray cluster is started here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.errors import InputError
from knowledge.ray_cluster import check_address, parse_address
from tests.test_recipe_cli import tianji_yaml

REPO = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_", "RAY_"))}
    started = time.monotonic()
    result = subprocess.run([sys.executable, *args], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120)
    return result, time.monotonic() - started


@pytest.mark.parametrize("address", ["head.example", "ray://head.example", "http://head:8265", "ray://h:99999", ""])
def test_a_malformed_address_names_the_forms_it_takes(address):
    with pytest.raises(InputError, match=r"write auto, local, ray://HOST:PORT .* or HOST:PORT"):
        check_address(address)


@pytest.mark.parametrize("address", [None, "auto", "local"])
def test_auto_local_and_none_are_left_to_ray(address):
    check_address(address)  # nothing to probe: Ray finds or starts the cluster


def test_addresses_are_read_as_scheme_host_port():
    assert parse_address("ray://10.0.0.5:10001") == ("ray://", "10.0.0.5", 10001)
    assert parse_address(" 10.0.0.5:6379 ") == ("", "10.0.0.5", 6379)


@pytest.mark.parametrize("scheme", ["ray://", ""])
def test_an_unreachable_cluster_stops_the_recipe_in_one_line(tmp_path, scheme):
    address = f"{scheme}127.0.0.1:{closed_port()}"
    yaml_path = tianji_yaml(tmp_path)
    result, seconds = run(tmp_path, "-m", "recipes.tianji", "--config", str(yaml_path), "--out", "run",
                          "--ray", "--ray-address", address)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach the Ray cluster at {address}: Connection refused "
        "(is `ray start --head` running there, and the port open?)"]
    assert seconds < 30  # not Ray's minutes of retries
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_an_unreachable_cluster_stops_kb_build_in_one_line(tmp_path):
    pytest.importorskip("ray")
    docs = tmp_path / "docs"
    docs.mkdir()
    docs.joinpath("a.txt").write_text("孙悟空拜须菩提祖师学艺。" * 20, encoding="utf-8")
    address = f"127.0.0.1:{closed_port()}"
    result, seconds = run(tmp_path, "-m", "zaoshu_cli", "kb", "build", "docs", "--index", "idx", "--embedder",
                          "hash", "--ray", "--ray-address", address)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot reach the Ray cluster at {address}")
    assert "Traceback" not in result.stderr and seconds < 60


@pytest.mark.parametrize("flag", ["--trace", "--interactive"])
def test_trace_and_interactive_say_why_they_need_a_local_run(tmp_path, flag):
    result, _ = run(tmp_path, "-m", "recipes.tianji", "--config", str(tianji_yaml(tmp_path)), "--out", "run",
                    "--ray", flag)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --interactive, --trace and --trace-file show the agent steps in this process, but with --ray "
        "they run in the Ray workers: drop --ray (or use --shard i/n for a local part)"]
