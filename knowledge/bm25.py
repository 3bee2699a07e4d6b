"""BM25 over jieba tokens (rank-bm25), rebuilt in memory from the tokens stored in SQLite.

>>> bm = Bm25Index([1, 2], [tokenize("孙悟空大闹天宫"), tokenize("唐僧在长安讲经")])
>>> [(i, round(s, 3) > 0) for i, s in bm.top(tokenize("谁大闹天宫"), 2)]
[(1, True)]
"""

from __future__ import annotations

import logging
import re
from functools import cache

import numpy as np

_WORDY = re.compile(r"\w", re.UNICODE)


@cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str) -> list[str]:
    """jieba search-mode words (long words also give their parts), lower-cased, punctuation dropped.

    >>> tokenize("孙悟空，芭蕉扇！")
    ['悟空', '孙悟空', '芭蕉', '蕉扇', '芭蕉扇']
    """
    return [t.lower() for t in _jieba().lcut_for_search(text) if _WORDY.search(t)]


def _okapi_with_lucene_idf(corpus: list[list[str]]):
    """rank-bm25's BM25Okapi, but with Lucene's idf log(1 + (N - n + 0.5) / (n + 0.5)).

    The classic idf is 0 for a word in half the documents and negative above that, so on a small
    knowledge base a perfectly matching passage can score 0; Lucene's form stays positive.
    """
    from rank_bm25 import BM25Okapi

    class _Okapi(BM25Okapi):
        def _calc_idf(self, nd):
            self.idf = {w: float(np.log(1 + (self.corpus_size - f + 0.5) / (f + 0.5))) for w, f in nd.items()}

    return _Okapi(corpus)


class Bm25Index:
    """BM25Okapi over chunk ids; `top` returns (chunk id, score) with score > 0, best first."""

    def __init__(self, ids: list[int], corpus: list[list[str]]) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self._bm25 = None
        if ids:
            self._bm25 = _okapi_with_lucene_idf(corpus)

    def scores(self, tokens: list[str]) -> np.ndarray:
        if self._bm25 is None or not tokens:
            return np.zeros(len(self.ids), dtype=np.float64)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float64)

    def top(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        scores = self.scores(tokens)
        if not len(scores):
            return []
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in best if scores[i] > 0]
