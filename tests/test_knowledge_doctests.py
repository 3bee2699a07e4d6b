"""The docstring examples in knowledge/ are real and stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["encoding", "readers", "loaders", "splitter", "embeddings", "store", "vectors", "bm25", "calibrate",
           "index", "huixiangdou", "websearch", "rerank", "fetch", "progress", "ray_cluster", "sync"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(f"knowledge.{name}"))
    assert result.failed == 0 and result.attempted > 0
