"""Embedder specs; the one test that loads the real bundled MiniLM (about 15 s: sentence-transformers import)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from agents.errors import ConfigError
from knowledge.embeddings import BUNDLED_NAME, EmbedConfig, HashEmbedder, bundled_model_path, load_embedder


def test_hash_specs_and_determinism() -> None:
    assert load_embedder("hash").name == "hash-256"
    assert load_embedder("hash:64").dim == 64 and load_embedder("hash-64").name == "hash-64"
    a, b = HashEmbedder(64).embed(["取经"]), HashEmbedder(64).embed(["取经"])
    assert np.array_equal(a, b) and a.dtype == np.float32


def test_unknown_model_and_openai_without_settings_are_config_errors(tmp_path) -> None:
    offline = EmbedConfig(offline=True, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="neither a local folder nor downloaded, and downloads are off"):
        load_embedder("nobody/no-such-model-xyz", config=offline)
    with pytest.raises(ConfigError, match="ZAOSHU_EMBED_BASE_URL"):
        load_embedder("openai:bge-m3")
    with pytest.raises(ConfigError, match="ZAOSHU_EMBED_API_KEY"):
        load_embedder("openai:bge-m3", config=EmbedConfig(base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(ConfigError, match="offers no embeddings"):
        load_embedder("provider", config=EmbedConfig(provider="deepseek", api_key="k"))


def test_auto_offline_falls_back_to_the_bundled_minilm_with_one_warning(caplog, tmp_path) -> None:
    warnings: list[str] = []
    with caplog.at_level(logging.WARNING, logger="knowledge.embeddings"):
        emb = load_embedder("auto", config=EmbedConfig(offline=True, cache_dir=tmp_path), warn=warnings.append)
    assert (emb.name, emb.weak_for_chinese) == (BUNDLED_NAME, True)
    assert len(warnings) == 1 and "weak on Chinese" in warnings[0] and "HF_ENDPOINT" in warnings[0]
    assert "weak on Chinese" not in caplog.text  # shown once: through warn, not the log as well
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="knowledge.embeddings"):
        load_embedder("auto", config=EmbedConfig(offline=True, cache_dir=tmp_path))  # no warn callback: logged
    assert caplog.text.count("weak on Chinese") == 1
    assert (bundled_model_path() / "model.safetensors").exists()
    vectors = emb.embed(["The monkey king.", "The monkey king!", "量子计算"])  # the real model
    assert vectors.shape == (3, 384) and emb.dim == 384
    assert float(vectors[0] @ vectors[1]) > 0.9 > float(vectors[0] @ vectors[2])
