"""Checkpoint discovery, XTuner command lines, log parsing, the environment lookup and setup's idempotence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agents.errors import ConfigError, InputError
from finetune import env as xenv
from finetune.runner import (
    chat_command,
    convert_command,
    find_config,
    latest_checkpoint,
    merge_command,
    parse_losses,
    stream,
    train_command,
)


def test_latest_checkpoint_reads_mmengines_marker(tmp_path):
    for n in (10, 20, 5):
        (tmp_path / f"iter_{n}.pth").write_bytes(b"x")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "iter_20.pth"))
    assert latest_checkpoint(tmp_path) == tmp_path / "iter_20.pth"


def test_latest_checkpoint_without_marker_takes_the_highest_iteration(tmp_path):
    for n in (9, 100, 20):
        (tmp_path / f"iter_{n}.pth").write_bytes(b"x")
    (tmp_path / "iter_50.pth").mkdir()  # a DeepSpeed checkpoint is a folder
    assert latest_checkpoint(tmp_path) == tmp_path / "iter_100.pth"


def test_latest_checkpoint_survives_a_moved_work_dir(tmp_path):
    (tmp_path / "iter_7.pth").write_bytes(b"x")
    (tmp_path / "last_checkpoint").write_text("/old/place/iter_7.pth")
    assert latest_checkpoint(tmp_path) == tmp_path / "iter_7.pth"


def test_no_checkpoint_says_to_train_first(tmp_path):
    with pytest.raises(InputError, match="no checkpoint .* train first with `zaoshu finetune train"):
        latest_checkpoint(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        latest_checkpoint(tmp_path / "missing")


def test_find_config_needs_exactly_one(tmp_path):
    (tmp_path / "cfg.py").write_text("x = 1")
    assert find_config(tmp_path) == tmp_path / "cfg.py"
    (tmp_path / "other.py").write_text("x = 2")
    with pytest.raises(InputError, match="pass --config"):
        find_config(tmp_path)


def test_commands_use_python_dash_m_and_pass_deepspeed_through():
    py = Path("/env/bin/python")
    assert train_command(py, Path("c.py"), Path("w"), deepspeed="deepspeed_zero3", seed=1) == [
        "/env/bin/python", "-m", "xtuner.tools.train", "c.py", "--work-dir", "w", "--deepspeed", "deepspeed_zero3",
        "--seed", "1"]
    assert convert_command(py, Path("c.py"), Path("w/iter_2.pth"), Path("a"))[1:4] == [
        "-m", "xtuner.tools.model_converters.pth_to_hf", "c.py"]
    assert "--device" in merge_command(py, Path("b"), Path("a"), Path("m"), device="cpu")
    assert chat_command(py, Path("m"), "qwen_chat", system="你好")[3:6] == ["m", "--prompt-template", "qwen_chat"]


def test_parse_losses_from_mmengine_lines():
    lines = ["11/21 05:24:53 - mmengine - INFO - Iter(train) [ 1/24]  lr: 2.0000e-03  eta: 0:00:00  "
             "time: 0.0099  data_time: 0.0023  grad_norm: 0.8459  loss: 6.4587",
             "11/21 05:24:53 - mmengine - INFO - Iter(train) [24/24]  lr: 8.5551e-06  loss: 6.1945", "noise"]
    assert parse_losses(lines) == [(1, 6.4587), (24, 6.1945)]


def test_stream_returns_the_real_exit_code_and_every_line():
    seen: list[str] = []
    code = stream([sys.executable, "-c", "import sys; print('a'); print('错', file=sys.stderr); sys.exit(3)"], seen.append)
    assert code == 3 and sorted(seen) == ["a", "错"]


def test_no_xtuner_environment_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="run `zaoshu finetune setup`"):
        xenv.find_xtuner_python(tmp_path / "venv", environ={})
    with pytest.raises(ConfigError, match="XTUNER_PYTHON=/nope/python does not exist"):
        xenv.find_xtuner_python(tmp_path / "venv", environ={"XTUNER_PYTHON": "/nope/python"})
    assert xenv.find_xtuner_python(tmp_path, environ={"XTUNER_PYTHON": sys.executable}) == Path(sys.executable)


def test_setup_is_idempotent_and_applies_the_cpu_fix_only_without_cuda(tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    calls: list[list[str]] = []

    def fake_run(cmd: list[str]) -> int:
        calls.append(cmd)
        if cmd[1:3] == ["-m", "venv"]:
            (venv / "bin").mkdir(parents=True)
            (venv / "bin" / "python").write_text("")
        return 0

    fixed: list[Path] = []
    monkeypatch.setattr(xenv, "cuda_available", lambda python: False)
    monkeypatch.setattr(xenv, "install_cpu_fix", lambda python: fixed.append(python) or tmp_path)
    assert xenv.setup_env(venv, run=fake_run) is True
    assert [c[1:3] for c in calls] == [["-m", "venv"], ["-m", "pip"], ["-c", "import xtuner.dataset, xtuner.model"]]
    assert calls[1][3:5] == ["install", "-c"] and "xtuner==0.2.0" in calls[1]
    assert fixed == [venv / "bin" / "python"]
    calls.clear()
    assert xenv.setup_env(venv, run=fake_run) is False and calls == []  # second call: no-op
    assert xenv.find_xtuner_python(venv, environ={}) == (venv / "bin" / "python").absolute()


def test_setup_on_a_cuda_box_removes_the_fix_and_changed_pins_reinstall(tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    removed: list[Path] = []
    monkeypatch.setattr(xenv, "cuda_available", lambda python: True)
    monkeypatch.setattr(xenv, "remove_cpu_fix", removed.append)
    monkeypatch.setattr(xenv, "install_cpu_fix", lambda python: pytest.fail("no fix where CUDA is present"))
    assert xenv.setup_env(venv, run=lambda cmd: 0) is True and removed
    constraints = tmp_path / "c.txt"
    constraints.write_text("torch==2.13.0\n")
    assert xenv.setup_env(venv, run=lambda cmd: 0, constraints=constraints) is True  # other pins: reinstall


def test_failed_pip_install_is_a_config_error(tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    with pytest.raises(ConfigError, match="pip could not install .* run `zaoshu finetune setup` again"):
        xenv.setup_env(venv, run=lambda cmd: 1)
    assert not (venv / xenv.STAMP_NAME).exists()


def test_two_setups_at_once_build_the_environment_once(tmp_path):
    """Two `zaoshu finetune setup` at once (two terminals; two test workers on a fresh clone): the second ran
    pip in the venv the first was still creating and failed with 'No module named pip'. It waits now."""
    import os
    import subprocess
    import time

    script = f"""
import logging, sys, time
from pathlib import Path
import finetune.env as xenv
logging.basicConfig(level=logging.INFO, format="%(message)s")
venv, steps = Path(sys.argv[1]), Path(sys.argv[2])
def run(cmd):
    with open(steps, "a") as f:
        f.write(" ".join(cmd[1:3]) + "\\n")
    if cmd[1:3] == ["-m", "venv"]:
        time.sleep(2)  # a real venv takes seconds: the other setup starts meanwhile
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text("")
    return 0
xenv.cuda_available = lambda python: True
xenv.remove_cpu_fix = lambda python: None
print(xenv.setup_env(venv, run=run))
"""
    venv, steps = tmp_path / "venv", tmp_path / "steps.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    first = subprocess.Popen([sys.executable, "-c", script, venv, steps], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not steps.exists() and time.monotonic() < deadline:  # the first is creating the venv
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-c", script, venv, steps], env=env, text=True, capture_output=True,
                            timeout=60)
    out, err = first.communicate(timeout=60)
    assert (out.strip(), second.stdout.strip()) == ("True", "False"), (err, second.stderr)
    assert f"another `zaoshu finetune setup` is building {venv}: waiting for it to finish" in second.stderr
    assert steps.read_text().splitlines() == ["-m venv", "-m pip", "-c import xtuner.dataset, xtuner.model"]
