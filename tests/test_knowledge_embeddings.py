"""Embedder specs; the one test that loads the real bundled MiniLM (about 15 s: sentence-transformers import)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from agents.errors import ConfigError
from knowledge.embeddings import BUNDLED_NAME, HashEmbedder, bundled_model_path, load_embedder


def test_hash_specs_and_determinism() -> None:
    assert load_embedder("hash").name == "hash-256"
    assert load_embedder("hash:64").dim == 64 and load_embedder("hash-64").name == "hash-64"
    a, b = HashEmbedder(64).embed(["取经"]), HashEmbedder(64).embed(["取经"])
    assert np.array_equal(a, b) and a.dtype == np.float32


def test_unknown_model_and_openai_without_settings_are_config_errors(monkeypatch) -> None:
    for var in ("ZAOSHU_EMBED_BASE_URL", "ZAOSHU_BASE_URL", "ZAOSHU_EMBED_API_KEY", "ZAOSHU_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="neither a local folder nor downloaded"):
        load_embedder("nobody/no-such-model-xyz")
    with pytest.raises(ConfigError, match="ZAOSHU_EMBED_BASE_URL"):
        load_embedder("openai:bge-m3")
    monkeypatch.setenv("ZAOSHU_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="ZAOSHU_EMBED_API_KEY"):
        load_embedder("openai:bge-m3")


def test_auto_falls_back_to_the_bundled_minilm_with_a_warning(caplog, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-zaoshu-hf-home")  # no downloaded bge model
    warnings: list[str] = []
    with caplog.at_level(logging.WARNING, logger="knowledge.embeddings"):
        emb = load_embedder("auto", warn=warnings.append)
    assert (emb.name, emb.weak_for_chinese) == (BUNDLED_NAME, True)
    assert "Dense retrieval on Chinese is weak" in caplog.text and warnings and "weak" in warnings[0]
    assert (bundled_model_path() / "model.safetensors").exists()
    vectors = emb.embed(["The monkey king.", "The monkey king!", "量子计算"])  # the real model
    assert vectors.shape == (3, 384) and emb.dim == 384
    assert float(vectors[0] @ vectors[1]) > 0.9 > float(vectors[0] @ vectors[2])
