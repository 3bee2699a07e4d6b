"""An optional cross-encoder reranker (sentence-transformers `CrossEncoder`, e.g. BAAI/bge-reranker-base),
applied to the fused candidates when it is available, as HuixiangDou reranks its retrieval.

`load_reranker("auto")` uses the default model only when it is already in the local model cache (a
reranker is an extra: it is never downloaded behind the user's back); a named model or folder is loaded
as asked. The model itself loads on first use.

>>> CrossEncoderReranker("/path/to/bge-reranker").path
'/path/to/bge-reranker'
>>> load_reranker(None) is None and load_reranker("none") is None
True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from agents.errors import ConfigError
from knowledge import fetch

log = logging.getLogger(__name__)

DEFAULT_RERANKER = "BAAI/bge-reranker-base"
AUTO_CANDIDATES = (DEFAULT_RERANKER, "BAAI/bge-reranker-v2-m3", "BAAI/bge-reranker-large")


class CrossEncoderReranker:
    """`score(query, texts)` → one relevance score per text; the model loads on first use."""

    def __init__(self, path: str, batch_size: int = 16, name: str | None = None) -> None:
        self.path = path
        self.name = name or path
        self.batch_size = batch_size
        self._model = None

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if self._model is None:
            from sentence_transformers import CrossEncoder  # ~13 s import: only when really used

            self._model = CrossEncoder(self.path, device="cpu", local_files_only=True)
        return [float(s) for s in self._model.predict([(query, t) for t in texts], batch_size=self.batch_size)]


def load_reranker(spec: str | None, *, cache_dir: str | Path | None = None) -> CrossEncoderReranker | None:
    """None for no reranker (`None`, "", "none", "off"; or "auto" with no reranker in the local cache),
    else a CrossEncoderReranker for a local folder or a cached Hugging Face name."""
    spec = (spec or "").strip()
    if spec.lower() in {"", "none", "off", "no"}:
        return None
    if spec.lower() == "auto":
        for name in AUTO_CANDIDATES:
            if path := fetch.cached_hub_path(name, cache_dir):
                log.info("reranker: %s (%s)", name, path)
                return CrossEncoderReranker(path, name=name)
        log.info("no reranker in the local cache (%s): ranking by fusion only", DEFAULT_RERANKER)
        return None
    if Path(spec).expanduser().is_dir():
        return CrossEncoderReranker(str(Path(spec).expanduser()), name=spec)
    if path := fetch.cached_hub_path(spec, cache_dir):
        return CrossEncoderReranker(path, name=spec)
    raise ConfigError(f"Reranker {spec!r} is neither a local folder nor in the model cache; download it first "
                      f"(huggingface-cli download {spec}) or use --reranker auto / none")
