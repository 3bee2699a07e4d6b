"""Lexical retrieval for Chinese: BM25 over jieba words and over character bigrams, each scored on chunks
and on whole sections (the text under one heading, one chapter file, one JSON/CSV record).

Why four rankings. Words match what jieba segments the same way in question and text; bigrams survive
segmentation differences and paraphrase (「大闹天宫」 and 「闹天宫」 share 闹天 and 天宫). A question that
names two things found in the same chapter but not in the same 500-character chunk is matched by the
section scores. The knowledge base fuses the rankings by weighted reciprocal rank.

BM25 itself is `bm25s` (sparse matrices; scoring a query over 35,000 chunks takes milliseconds), with
Lucene's idf, which stays positive for words found in most documents.

>>> bm = Bm25Index([1, 2], [tokenize("孙悟空大闹天宫"), tokenize("唐僧在长安讲经")])
>>> [(i, round(s, 3) > 0) for i, s in bm.top(tokenize("谁大闹天宫"), 2)]
[(1, True)]
>>> bigrams("大闹天宫，Monkey King!")
['大闹', '闹天', '天宫', 'monkey', 'king']
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from functools import cache

import numpy as np

_WORDY = re.compile(r"\w", re.UNICODE)
_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\W_]+", re.UNICODE)
_CJK_START = "\u3400"
RRF_K = 60


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
    return [t.lower() for t in _jieba().lcut_for_search(text, HMM=False) if _WORDY.search(t)]


def bigrams(text: str) -> list[str]:
    """Overlapping character bigrams of each run of Chinese characters (a lone character stays a
    unigram), plus whole words of other scripts; NFKC-normalised and lower-cased."""
    out: list[str] = []
    for run in _RUNS.findall(unicodedata.normalize("NFKC", text).lower()):
        if run[0] < _CJK_START or len(run) == 1:
            out.append(run)
        else:
            out.extend(run[i:i + 2] for i in range(len(run) - 1))
    return out


class Bm25Index:
    """BM25 over documents given as token lists; `scores` covers every document, `top` the best ones."""

    def __init__(self, ids: Sequence[int], corpus: Sequence[list[str]]) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self._bm25 = None
        if len(ids):
            import bm25s

            self._bm25 = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
            self._bm25.index(list(corpus), show_progress=False)

    def scores(self, tokens: list[str]) -> np.ndarray:
        if self._bm25 is None or not tokens:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)

    def top(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        scores = self.scores(tokens)
        if not len(scores):
            return []
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in best if scores[i] > 0]


def reciprocal_ranks(scores: np.ndarray, k: int = RRF_K) -> np.ndarray:
    """1 / (k + rank) for every positive score (rank 1 = best), 0 where the score is 0.

    >>> [round(float(x) * 61, 3) for x in reciprocal_ranks(np.array([0.0, 2.0, 1.0]))]
    [0.0, 1.0, 0.984]
    """
    out = np.zeros(len(scores), dtype=np.float32)
    positive = np.flatnonzero(scores > 0)
    if len(positive):
        order = positive[np.argsort(-scores[positive], kind="stable")]
        out[order] = 1.0 / (k + np.arange(1, len(order) + 1, dtype=np.float32))
    return out


def diversify(order: Sequence[int], groups: np.ndarray, k: int) -> list[int]:
    """The first k of `order`, taking at most one per group until every group had its turn, then the rest.

    >>> diversify([0, 1, 2, 3], np.array([7, 7, 8, 9]), 3)
    [0, 2, 3]
    >>> diversify([0, 1, 2], np.array([7, 7, 7]), 2)
    [0, 1]
    """
    first, rest, seen = [], [], set()
    for i in order:
        group = int(groups[i])
        (rest if group in seen else first).append(i)
        seen.add(group)
        if len(first) >= k:
            break
    return (first + rest)[:k]


class LexicalIndex:
    """The four lexical rankings over a set of chunks, built in memory from the store.

    `sections[i]` is the section key of chunk i (any integer that is equal for chunks of one section).
    """

    def __init__(self, ids: Sequence[int], sections: Sequence[int], words: list[list[str]], texts: Sequence[str]) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        keys, self.section_of = np.unique(np.asarray(sections, dtype=np.int64), return_inverse=True)
        chunk_bigrams = [bigrams(t) for t in texts]
        section_words: list[list[str]] = [[] for _ in keys]
        section_bigrams: list[list[str]] = [[] for _ in keys]
        for i, s in enumerate(self.section_of):
            section_words[s].extend(words[i])
            section_bigrams[s].extend(chunk_bigrams[i])
        self.words = Bm25Index(ids, words)
        self.bigrams = Bm25Index(ids, chunk_bigrams)
        self.n_sections = len(keys)
        self.section_words = Bm25Index(range(len(keys)), section_words)
        self.section_bigrams = Bm25Index(range(len(keys)), section_bigrams)

    def __len__(self) -> int:
        return len(self.ids)

    def rankings(self, query: str) -> dict[str, np.ndarray]:
        """Per chunk: BM25 scores `bm25` (words) and `bigram`, and `section`, the reciprocal-rank score of
        the chunk's section among all sections (words + bigrams); all arrays align with `self.ids`."""
        words, grams = tokenize(query), bigrams(query)
        section = reciprocal_ranks(self.section_words.scores(words)) + reciprocal_ranks(self.section_bigrams.scores(grams))
        return {"bm25": self.words.scores(words), "bigram": self.bigrams.scores(grams),
                "section": section[self.section_of] if self.n_sections > 1 else np.zeros(len(self.ids), np.float32)}
