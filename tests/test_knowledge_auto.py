"""The embedder `auto` order, each step against a local stand-in: a named model; the provider's embeddings
(tests.fake_openai); BAAI/bge-small-zh-v1.5 downloaded from a Hugging Face mirror on 127.0.0.1 (serving
the bundled MiniLM's files under that name) or through a fake `modelscope` package; and the offline
fallback when a hub is unreachable or silent (fast, one warning)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from agents.settings import PRESETS
from knowledge.embeddings import (BUNDLED_NAME, DEFAULT_CHINESE, EmbedConfig, OpenAIEmbedder,
                                  SentenceTransformerEmbedder, bundled_model_path, load_embedder)
from tests.fake_openai import FakeOpenAI
from tests.fakes import closed_port

COMMIT = "a" * 40


class FakeHub:
    """Serves local folders as Hugging Face model repos, the way huggingface_hub's snapshot_download reads
    them: /api/models/<repo>/revision/<rev>, /api/models/<repo>/tree/<rev>, /<repo>/resolve/<rev>/<file>."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos, self.requests = repos, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _serve(self, body: bool) -> None:
                path = self.path.split("?")[0]
                hub.requests.append((self.command, path))
                for repo, folder in hub.repos.items():
                    files = sorted(p for p in folder.rglob("*") if p.is_file())
                    if path == f"/api/models/{repo}/revision/main":
                        info = {"id": repo, "sha": COMMIT,
                                "siblings": [{"rfilename": p.relative_to(folder).as_posix()} for p in files]}
                        return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
                    if path.startswith(f"/api/models/{repo}/tree/"):
                        tree = [{"type": "file", "path": p.relative_to(folder).as_posix(), "size": p.stat().st_size,
                                 "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for p in files]
                        return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body)
                    prefix = f"/{repo}/resolve/"
                    if path.startswith(prefix) and (folder / path[len(prefix):].split("/", 1)[1]).is_file():
                        data = (folder / path[len(prefix):].split("/", 1)[1]).read_bytes()
                        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
                        return self._send(200, data, {"X-Repo-Commit": COMMIT, "ETag": etag}, body)
                self._send(404, b"", {"X-Error-Code": "RepoNotFound"}, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers (a hub behind a firewall that drops replies)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def offline_config(tmp_path: Path, **fields) -> EmbedConfig:
    return EmbedConfig(cache_dir=tmp_path / "models", timeout=1.0, **fields)


# 1. a model the user named ------------------------------------------------------------------------
def test_a_named_model_wins_over_everything(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    config = offline_config(tmp_path, model=str(folder), use_provider=True, provider="siliconflow", api_key="k")
    emb = load_embedder("auto", config=config)
    assert isinstance(emb, SentenceTransformerEmbedder) and emb.path == str(folder) and not emb.weak_for_chinese
    assert load_embedder("hash:32", config=config).name == "hash-32"  # an explicit spec beats config.model


# 2. the provider's embeddings (opt-in) ------------------------------------------------------------
@pytest.mark.parametrize(("preset", "model", "batch"), [("siliconflow", "BAAI/bge-m3", 32),
                                                         ("dashscope", "text-embedding-v3", 10),
                                                         ("zhipu", "embedding-3", 64)])
def test_the_provider_embeddings_when_opted_in(tmp_path: Path, preset: str, model: str, batch: int) -> None:
    with FakeOpenAI(embedding_dim=64) as server:
        config = offline_config(tmp_path, use_provider=True, provider=preset, base_url=server.base_url, api_key="k")
        emb = load_embedder("auto", config=config)
        assert isinstance(emb, OpenAIEmbedder) and emb.name == f"openai:{model}" and emb.batch_size == batch
        vectors = emb.embed([f"第{i}句" for i in range(25)])
        assert vectors.shape == (25, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1)
        assert [r["model"] for r in server.embedding_requests] == [model] * -(-25 // batch)


def test_the_provider_is_found_from_its_base_url_and_needs_the_opt_in(tmp_path: Path) -> None:
    config = offline_config(tmp_path, use_provider=True, base_url=PRESETS["zhipu"].base_url, api_key="k")
    assert load_embedder("auto", config=config).name == "openai:embedding-3"
    not_opted = offline_config(tmp_path, offline=True, provider="siliconflow", api_key="k")
    assert load_embedder("auto", config=not_opted).name == BUNDLED_NAME


def test_a_provider_without_embeddings_or_key_warns_and_moves_on(tmp_path: Path) -> None:
    for fields, why in (({"provider": "deepseek", "api_key": "k"}, "offers no embeddings"),
                        ({"provider": "siliconflow"}, "no API key")):
        warnings: list[str] = []
        emb = load_embedder("auto", config=offline_config(tmp_path, offline=True, use_provider=True, **fields),
                            warn=warnings.append)
        assert emb.name == BUNDLED_NAME and why in warnings[0] and len(warnings) == 2


# 3. BAAI/bge-small-zh-v1.5, downloaded on first use -------------------------------------------------
def test_bge_small_zh_downloads_from_the_hf_mirror_then_loads_from_the_cache(tmp_path: Path, monkeypatch, capfd) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # conftest sets HF_HUB_OFFLINE=1
    with FakeHub({DEFAULT_CHINESE: bundled_model_path()}) as hub:
        config = offline_config(tmp_path, hf_endpoint=hub.url)
        emb = load_embedder("auto", config=config)
        assert isinstance(emb, SentenceTransformerEmbedder) and emb.name == DEFAULT_CHINESE
        assert not emb.weak_for_chinese and Path(emb.path).is_relative_to(tmp_path / "models")
        assert (Path(emb.path) / "model.safetensors").stat().st_size == (bundled_model_path() / "model.safetensors").stat().st_size
        assert ("GET", f"/api/models/{DEFAULT_CHINESE}/revision/main") in hub.requests
        assert "Fetching" in capfd.readouterr().err  # huggingface_hub's progress bar
        served = len(hub.requests)
        cached = load_embedder("auto", config=config.model_copy(update={"offline": True}))
        assert cached.path == emb.path and len(hub.requests) == served  # second time: no network at all
    vectors = cached.embed(["美猴王", "美猴王"])  # it is a real model (the MiniLM's weights under that name)
    assert vectors.shape == (2, 384) and float(vectors[0] @ vectors[1]) > 0.99


def test_an_unreachable_or_silent_hub_falls_back_fast_with_one_warning(tmp_path: Path, silent_port: int) -> None:
    for endpoint in (f"http://127.0.0.1:{closed_port()}", f"http://127.0.0.1:{silent_port}"):
        warnings: list[str] = []
        started = time.perf_counter()
        emb = load_embedder("auto", config=offline_config(tmp_path, hf_endpoint=endpoint), warn=warnings.append)
        assert time.perf_counter() - started < 5.0
        assert (emb.name, emb.weak_for_chinese) == (BUNDLED_NAME, True)
        assert len(warnings) == 1 and f"{endpoint} is unreachable" in warnings[0] and "weak on Chinese" in warnings[0]


def test_a_named_model_that_cannot_be_downloaded_is_a_clear_error(tmp_path: Path) -> None:
    from agents.errors import ConfigError

    config = offline_config(tmp_path, hf_endpoint=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ConfigError, match="neither a local folder nor downloaded, and .* is unreachable"):
        load_embedder("BAAI/bge-base-zh-v1.5", config=config)


def fake_modelscope(monkeypatch, result):
    calls: list[tuple[str, str | None]] = []

    def snapshot_download(model_id: str, cache_dir: str | None = None, **kwargs):
        calls.append((model_id, cache_dir))
        if isinstance(result, Exception):
            raise result
        return str(result)

    monkeypatch.setitem(sys.modules, "modelscope", types.SimpleNamespace(snapshot_download=snapshot_download))
    return calls


def test_bge_small_zh_from_modelscope(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "ms" / "BAAI" / "bge-small-zh-v1___5"
    shutil.copytree(bundled_model_path(), target)
    calls = fake_modelscope(monkeypatch, target)
    with FakeHub({}) as site:  # stands in for www.modelscope.cn (only probed)
        config = offline_config(tmp_path, model_source="modelscope", modelscope_endpoint=site.url)
        emb = load_embedder("auto", config=config)
    assert (emb.name, emb.path, emb.weak_for_chinese) == (DEFAULT_CHINESE, str(target), False)
    assert calls == [(DEFAULT_CHINESE, str(tmp_path / "models"))]


def test_modelscope_missing_or_failing_falls_back(tmp_path: Path, monkeypatch) -> None:
    with FakeHub({}) as site:
        config = offline_config(tmp_path, model_source="modelscope", modelscope_endpoint=site.url)
        monkeypatch.setitem(sys.modules, "modelscope", None)  # not installed
        warnings: list[str] = []
        assert load_embedder("auto", config=config, warn=warnings.append).name == BUNDLED_NAME
        assert "pip install 'zaoshu[modelscope]'" in warnings[0]
        fake_modelscope(monkeypatch, RuntimeError("ConnectionError: modelscope.cn timed out\nmore"))
        warnings.clear()
        assert load_embedder("auto", config=config, warn=warnings.append).name == BUNDLED_NAME
        assert "downloading BAAI/bge-small-zh-v1.5 from ModelScope failed: ConnectionError" in warnings[0]


# 4. offline, and where the settings come from -----------------------------------------------------------
def test_embed_config_from_env() -> None:
    config = EmbedConfig.from_env({
        "ZAOSHU_EMBED": "provider", "ZAOSHU_PRESET": "dashscope", "ZAOSHU_API_KEY": "sk-1",
        "ZAOSHU_MODEL_SOURCE": "modelscope", "HF_ENDPOINT": "https://hf-mirror.com", "HF_HUB_OFFLINE": "1",
        "MODELSCOPE_DOMAIN": "www.modelscope.cn", "ZAOSHU_DOWNLOAD_TIMEOUT": "2"})
    assert (config.use_provider, config.provider, config.api_key.get_secret_value()) == (True, "dashscope", "sk-1")
    assert (config.model_source, config.hf_endpoint, config.offline, config.timeout) == (
        "modelscope", "https://hf-mirror.com", True, 2.0)
    assert config.modelscope_endpoint == "https://www.modelscope.cn" and config.model is None
    assert EmbedConfig.from_env({}).use_provider is False and EmbedConfig.from_env({}).offline is False
    from agents.errors import ConfigError

    with pytest.raises(ConfigError, match="ZAOSHU_MODEL_SOURCE must be"):
        EmbedConfig.from_env({"ZAOSHU_MODEL_SOURCE": "ftp"})


def test_kb_build_again_once_a_model_is_reachable_adds_the_dense_index(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants
    from typer.testing import CliRunner

    from knowledge.cli import app
    from knowledge.index import KnowledgeBase
    from tests.test_knowledge_index import CORPUS, write_corpus

    runner = CliRunner(env={"COLUMNS": "200"})
    folder, index = write_corpus(tmp_path / "xiyou"), tmp_path / "idx"
    monkeypatch.setenv("ZAOSHU_MODEL_CACHE", str(tmp_path / "models"))
    offline = runner.invoke(app, ["build", str(folder), "--index", str(index)])  # conftest: HF_HUB_OFFLINE=1
    assert offline.exit_code == 0 and "no dense index (BM25 only)" in offline.stdout
    assert offline.stderr.count("weak on Chinese") == 1
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with FakeHub({DEFAULT_CHINESE: bundled_model_path()}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        online = runner.invoke(app, ["build", str(folder), "--index", str(index)])  # the same command, later
    assert online.exit_code == 0, online.output
    assert "0 chunks indexed" in online.stdout and f"{len(CORPUS)} embedded with {DEFAULT_CHINESE}" in online.stdout
    with KnowledgeBase.open(index, embed_config=EmbedConfig.from_env(os.environ)) as kb:  # from the model cache
        assert kb.has_vectors and kb.embedder.name == DEFAULT_CHINESE and kb.store.count_missing_vectors() == 0
        assert kb.stats()["embedder"]["dim"] == 384 and kb.store.count_chunks() == len(CORPUS)
