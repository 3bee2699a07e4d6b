"""An optional cross-encoder reranker (sentence-transformers CrossEncoder), used only when configured.

>>> CrossEncoderReranker("/path/to/bge-reranker").path
'/path/to/bge-reranker'
"""

from __future__ import annotations

from collections.abc import Sequence


class CrossEncoderReranker:
    """`score(query, texts)` → one relevance score per text; the model loads on first use."""

    def __init__(self, path: str, batch_size: int = 16) -> None:
        self.path = path
        self.batch_size = batch_size
        self._model = None

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if self._model is None:
            from sentence_transformers import CrossEncoder

            self._model = CrossEncoder(self.path, device="cpu", local_files_only=True)
        return [float(s) for s in self._model.predict([(query, t) for t in texts], batch_size=self.batch_size)]
