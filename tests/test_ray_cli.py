"""`--ray` flags that are refused before Ray starts: a malformed or unreachable `--ray-address` (Ray
itself retries an unreachable cluster for minutes) and the local-only `--trace` / `--interactive`,
each one line and exit 1. No Ray cluster is started here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
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


def run(tmp_path: Path, *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_", "RAY_"))}
    started = time.monotonic()
    result = subprocess.run([sys.executable, *args], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=timeout)
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


@pytest.mark.parametrize("silent", [False, True])
def test_a_port_that_is_not_a_ray_cluster_stops_the_recipe_in_one_line(tmp_path, silent):
    """The dashboard's port (8265) or any other open port that is not the GCS: Ray tried it for ~13
    minutes, in a run folder already made. A web server answers, but not as gRPC does; a silent one
    does not answer within the probe's 5 s."""
    pytest.importorskip("ray")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = "127.0.0.1:%d" % listener.getsockname()[1]
        serve = threading.Thread(target=_answer_like_a_web_server, args=(listener, silent), daemon=True)
        serve.start()
        yaml_path = tianji_yaml(tmp_path, llm={"base_url": "http://127.0.0.1:9/v1", "model": "fake-model"})
        result, seconds = run(tmp_path, "-m", "recipes.tianji", "--config", str(yaml_path), "--out", "run", "--ray",
                              "--ray-address", address, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    why = "no answer within 5 s" if silent else "it answers, but not as a Ray cluster's gRPC port does"
    assert result.stderr.strip().splitlines() == [
        f"error: {address} is not a Ray cluster: {why} (the head's GCS port is 6379 by default, Ray Client's "
        "10001; the dashboard's 8265 is neither)"]
    assert seconds < 30 and not (tmp_path / "run").exists()


def _answer_like_a_web_server(listener: socket.socket, silent: bool) -> None:
    """Accept connections; answer each with an HTTP/1.1 error (as aiohttp does to HTTP/2's preface), or
    say nothing and hold it open."""
    held = []
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # the test closed the listener
            return
        held.append(conn)
        if not silent:
            conn.recv(64)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


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


@pytest.mark.parametrize("flags, line", [
    (["--workers", "2"], "--workers, --gpus and --ray-address need --ray"),
    (["--gpus", "1"], "--workers, --gpus and --ray-address need --ray"),
    (["--ray-address", "auto"], "--workers, --gpus and --ray-address need --ray"),
    (["--ray", "--workers", "0"], "Invalid value for '--workers'"),
    (["--ray", "--gpus", "-1"], "Invalid value for '--gpus'")])
def test_kb_builds_ray_flags_are_refused_where_they_do_nothing(tmp_path, flags, line):
    """`kb build --gpus 1` without --ray built on the CPU here, silently; --workers 0 meant every CPU and
    --workers -1 one worker. The recipe command refuses the same flags: so does kb build, and builds nothing."""
    docs = tmp_path / "docs"
    docs.mkdir()
    docs.joinpath("a.txt").write_text("孙悟空拜须菩提祖师学艺。" * 20, encoding="utf-8")
    result, _ = run(tmp_path, "-m", "zaoshu_cli", "kb", "build", "docs", "--index", "idx", "--embedder", "hash", *flags)
    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert line in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize("flag", ["--trace", "--interactive"])
def test_trace_and_interactive_say_why_they_need_a_local_run(tmp_path, flag):
    result, _ = run(tmp_path, "-m", "recipes.tianji", "--config", str(tianji_yaml(tmp_path)), "--out", "run",
                    "--ray", flag)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --interactive, --trace and --trace-file show the agent steps in this process, but with --ray "
        "they run in the Ray workers: drop --ray (or use --shard i/n for a local part)"]
