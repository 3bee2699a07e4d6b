"""Shared fixtures: no API key and no user config leak into a test; a fake OpenAI server on demand."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI

_LEAKY_PREFIXES = ("ZAOSHU_", "OPENAI_", "LANGSMITH_", "LANGCHAIN_", "SERPER_", "XTUNER_PYTHON")

# The width of the commands' rich output is the tests' own (CliRunner's env, or rich's default off a terminal):
# pytest-xdist's workers get COLUMNS=80 and LINES=24, and a console made at import would keep them.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Remove keys and endpoint settings from the environment; run each test in its own tmp dir."""
    for name in list(os.environ):
        if name.startswith(_LEAKY_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake_llm(monkeypatch):
    """A running FakeOpenAI; the environment points every role at it (script it per test)."""
    with FakeOpenAI() as server:
        monkeypatch.setenv("ZAOSHU_BASE_URL", server.base_url)
        monkeypatch.setenv("ZAOSHU_MODEL", "fake-model")
        monkeypatch.setenv("ZAOSHU_API_KEY", "sk-test-not-a-real-key-0000")
        monkeypatch.setenv("ZAOSHU_MAX_RETRIES", "3")
        monkeypatch.setenv("ZAOSHU_TIMEOUT", "5")
        yield server


@pytest.fixture
def unreadable(monkeypatch):
    """A set of paths whose opening fails as after `chmod 000` (tests may run as root, whom chmod does
    not stop): add a file to it to make it unreadable, remove it to make it readable again."""
    blocked: set[Path] = set()
    real_open = io.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file).resolve() in {b.resolve() for b in blocked}:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(builtins, "open", guarded_open)
    return blocked
