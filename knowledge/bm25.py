"""Lexical retrieval for Chinese: BM25 over jieba words and over character bigrams, each scored on chunks
and on whole sections (the text under one heading, one chapter file, one JSON/CSV record), plus BM25
over single content characters on chunks.

Why these rankings. Words match what jieba segments the same way in question and text (a question's word
the text never uses backs off to its characters the text uses as words: 鬼魂 → 鬼, 魂); bigrams survive
segmentation differences and paraphrase (「大闹天宫」 and 「闹天宫」 share 闹天 and 天宫); single
characters (function characters dropped) still match when a paraphrase keeps only the key characters
(「燃着火的山」 and 火焰山 share 火 and 山). A question that names two things found in the same chapter
but not in the same 500-character chunk is matched by the section scores. The knowledge base fuses the
rankings by weighted reciprocal rank.

BM25 is a scipy sparse matrix of per-term weights (Lucene's idf, which stays positive for words found in
most documents), built incrementally so a 50 MB file never holds all its tokens in memory at once;
scoring a query over 35,000 chunks takes a few milliseconds.

>>> bm = Bm25Index([1, 2], [tokenize("孙悟空大闹天宫"), tokenize("唐僧在长安讲经")])
>>> [(i, round(s, 3) > 0) for i, s in bm.top(tokenize("谁大闹天宫"), 2)]
[(1, True)]
>>> bigrams("大闹天宫，Monkey King!")
['大闹', '闹天', '天宫', 'monkey', 'king']
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

import numpy as np

_WORDY = re.compile(r"\w", re.UNICODE)
_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\W_]+", re.UNICODE)
_CJK_START = "\u3400"
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
RRF_K = 60


class _Segmenter:
    """jieba's dictionary segmentation (HMM off): search mode for words and spans of the default mode.

    rjieba (jieba-rs, the same dictionary and algorithm, about 13× faster on 西游记 with identical words)
    when it is installed, else the pure-Python jieba.
    """

    def __init__(self) -> None:
        try:
            import rjieba
        except ImportError:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            self.name = "jieba"
            self.search = lambda text: jieba.lcut_for_search(text, HMM=False)
            self.spans = lambda text: jieba.tokenize(text, HMM=False)
        else:
            self.name = "rjieba"
            self.search = lambda text: rjieba.cut_for_search(text, False)
            self.spans = lambda text: rjieba.tokenize(text, hmm=False)


@cache
def _segmenter() -> _Segmenter:
    return _Segmenter()


def tokenize(text: str) -> list[str]:
    """jieba search-mode words (long words also give their parts), lower-cased, punctuation dropped.

    >>> tokenize("孙悟空，芭蕉扇！")
    ['悟空', '孙悟空', '芭蕉', '蕉扇', '芭蕉扇']
    """
    return [t.lower() for t in _segmenter().search(text) if _WORDY.search(t)]


# Function characters, pronouns and question words: they say nothing about a passage's topic.
STOP_CHARS = frozenset("的了是在他她它那这个又后被吗呢啊么什怎为何哪谁些把给与和及就都也还之而其我你们有一不")


def characters(text: str) -> list[str]:
    """The Chinese characters of `text` that are not in STOP_CHARS.

    >>> characters("谁在火焰山借了芭蕉扇？")
    ['火', '焰', '山', '借', '芭', '蕉', '扇']
    """
    return [c for c in _CJK.findall(text) if c not in STOP_CHARS]


# Words that make a question a question (interrogatives, and framing such as 结果/到底/怎么回事): in a
# query they say what is asked, not what the passage is about. Several are rare in the text and would get a
# large idf: a classical novel writes 甚么/那里/怎的 where a modern question says 什么/哪里/怎么.
QUESTION_WORDS = frozenset(
    "什么 甚么 为什么 为何 怎么 怎样 怎么样 怎的 怎么回事 回事 如何 哪 哪里 哪儿 哪个 哪些 哪位 哪条 哪座 哪种 哪家 "
    "哪一 哪天 哪年 谁 多少 几 是否 吗 呢 吧 么 结果 最后 后来 原来 东西 到底 究竟 时候".split())


def query_terms(query: str) -> tuple[list[str], str]:
    """A question's words for BM25 without QUESTION_WORDS, and its text with those words blanked out
    (for bigrams and characters). jieba decides what is a word, so a name such as 哪吒 keeps its 哪.

    >>> query_terms("哪吒为什么去了哪里？")
    (['哪吒', '去', '了'], '哪吒   去了  ？')
    """
    words = [t for t in tokenize(query) if t not in QUESTION_WORDS]
    text = list(query)
    for word, start, end in _segmenter().spans(query):
        if word in QUESTION_WORDS:
            text[start:end] = " " * (end - start)
    return words, "".join(text)


def back_off(words: list[str], vocab: dict[str, int]) -> list[str]:
    """Words the index never saw replaced by their characters that it holds as words (STOP_CHARS left out):
    a modern question's 鬼魂 or 诉冤 where the classical text writes 鬼, 魂 and 冤 on their own.

    >>> back_off(["国王", "鬼魂", "诉冤"], {"国王": 0, "鬼": 1, "魂": 2, "冤": 3})
    ['国王', '鬼', '魂', '冤']
    """
    out: list[str] = []
    for word in words:
        out.extend([word] if word in vocab else [c for c in word if c in vocab and c not in STOP_CHARS])
    return out


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


class Bm25Builder:
    """Collects documents one at a time (`add`) as term counts; `counts()` is the documents × terms matrix."""

    def __init__(self, vocab: dict[str, int] | None = None) -> None:
        self.vocab: dict[str, int] = {} if vocab is None else vocab
        self.rows, self.cols, self.values = array("i"), array("i"), array("f")
        self.n_docs = 0

    def add(self, tokens: Iterable[str] | Counter) -> None:
        counts = tokens if isinstance(tokens, Counter) else Counter(tokens)
        vocab = self.vocab
        self.cols.extend([vocab.setdefault(term, len(vocab)) for term in counts])  # a new term gets the next column
        self.values.extend(counts.values())
        self.rows.extend([self.n_docs] * len(counts))
        self.n_docs += 1

    def counts(self):
        from scipy import sparse

        return sparse.csr_matrix((np.frombuffer(self.values, dtype=np.float32),
                                  (np.frombuffer(self.rows, dtype=np.int32), np.frombuffer(self.cols, dtype=np.int32))),
                                 shape=(self.n_docs, len(self.vocab)), dtype=np.float32)

    def build(self, ids: Sequence[int] | None = None, *, k1: float = 1.5, b: float = 0.75) -> Bm25Index:
        return Bm25Index.from_counts(self.counts(), self.vocab, range(self.n_docs) if ids is None else ids, k1=k1, b=b)


class Bm25Index:
    """BM25 over documents given as token lists; `scores` covers every document, `top` the best ones."""

    def __init__(self, ids: Sequence[int], corpus: Iterable[list[str]] = (), *, k1: float = 1.5, b: float = 0.75) -> None:
        builder = Bm25Builder()
        for tokens in corpus:
            builder.add(tokens)
        self._init(builder.counts(), builder.vocab, ids, k1, b)

    @classmethod
    def from_counts(cls, counts, vocab: dict[str, int], ids: Sequence[int], *, k1: float = 1.5,
                    b: float = 0.75) -> Bm25Index:
        """From a (documents × terms) sparse matrix of term counts and the term → column map."""
        index = cls.__new__(cls)
        index._init(counts, vocab, ids, k1, b)
        return index

    def _init(self, counts, vocab: dict[str, int], ids: Sequence[int], k1: float, b: float) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.vocab = vocab
        coo = counts.tocoo()
        n_docs = counts.shape[0]
        lengths = np.asarray(counts.sum(axis=1), dtype=np.float32).ravel()
        df = np.bincount(coo.col, minlength=counts.shape[1]).astype(np.float32)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = k1 * (1 - b + b * lengths / max(float(lengths.mean()) if n_docs else 1.0, 1e-9))
        tf = coo.data
        weights = idf[coo.col] * tf * (k1 + 1) / (tf + norm[coo.row])
        from scipy import sparse

        self._matrix = sparse.csc_matrix((weights, (coo.row, coo.col)), shape=counts.shape, dtype=np.float32)

    @classmethod
    def from_matrix(cls, matrix, vocab: dict[str, int], ids: Sequence[int]) -> Bm25Index:
        """From an already weighted (documents × terms) CSC matrix, as saved by LexicalIndex.save."""
        index = cls.__new__(cls)
        index.ids, index.vocab, index._matrix = np.asarray(ids, dtype=np.int64), vocab, matrix
        return index

    def scores(self, tokens: list[str]) -> np.ndarray:
        query = Counter(t for t in tokens if t in self.vocab)
        if not query or not len(self.ids):
            return np.zeros(len(self.ids), dtype=np.float32)
        cols = [self.vocab[t] for t in query]
        return np.asarray(self._matrix[:, cols] @ np.fromiter(query.values(), np.float32, len(cols)),
                          dtype=np.float32).ravel()

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

    Rows are (chunk id, section key, word tokens, text); a section key is any integer shared by the
    chunks of one section. Tokens are counted row by row, so memory stays near the size of the index.
    """

    def __init__(self, rows: Iterable[tuple[int, int, list[str], str]]) -> None:
        from scipy import sparse

        words, grams, chars = Bm25Builder(), Bm25Builder(), Bm25Builder()
        ids, keys = array("q"), array("q")
        for chunk_id, key, tokens, text in rows:
            ids.append(chunk_id)
            keys.append(key)
            words.add(tokens)
            grams.add(bigrams(text))
            chars.add(characters(text))
        self.ids = np.frombuffer(ids, dtype=np.int64) if len(ids) else np.zeros(0, np.int64)
        _, first, self.section_of = np.unique(np.frombuffer(keys, dtype=np.int64) if len(keys) else np.zeros(0, np.int64),
                                              return_index=True, return_inverse=True)
        self.n_sections = len(first)
        word_counts, gram_counts = words.counts(), grams.counts()
        self.words = Bm25Index.from_counts(word_counts, words.vocab, self.ids)
        self.bigrams = Bm25Index.from_counts(gram_counts, grams.vocab, self.ids)
        self.chars = chars.build(self.ids)
        # A section's counts are the sum of its chunks' counts: (sections × chunks) @ (chunks × terms).
        member = sparse.csr_matrix((np.ones(len(self.ids), np.float32), (self.section_of, np.arange(len(self.ids)))),
                                   shape=(self.n_sections, len(self.ids)))
        sections = range(self.n_sections)
        self.section_words = Bm25Index.from_counts(member @ word_counts, words.vocab, sections)
        self.section_bigrams = Bm25Index.from_counts(member @ gram_counts, grams.vocab, sections)

    def __len__(self) -> int:
        return len(self.ids)

    _PARTS = ("words", "bigrams", "chars", "section_words", "section_bigrams")

    def save(self, path: Path) -> None:
        """Write the weighted matrices (numpy .npz, no pickle) and vocabularies (JSON) to `path` and
        `path`.vocab.json, each through a temporary name and an atomic rename."""
        arrays: dict[str, np.ndarray] = {"ids": self.ids, "section_of": self.section_of}
        for name in self._PARTS:
            m = getattr(self, name)._matrix
            arrays.update({f"{name}.data": m.data, f"{name}.indices": m.indices, f"{name}.indptr": m.indptr,
                           f"{name}.shape": np.asarray(m.shape, dtype=np.int64)})
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        vocab_tmp = path.with_name(path.name + ".vocab.tmp")
        vocab_tmp.write_text(json.dumps({"words": self.words.vocab, "bigrams": self.bigrams.vocab,
                                         "chars": self.chars.vocab}, ensure_ascii=False), encoding="utf-8")
        os.replace(vocab_tmp, path.with_name(path.name + ".vocab.json"))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LexicalIndex:
        from scipy import sparse

        vocabs = json.loads(path.with_name(path.name + ".vocab.json").read_text(encoding="utf-8"))
        index = cls.__new__(cls)
        with np.load(path, allow_pickle=False) as data:
            index.ids, index.section_of = data["ids"], data["section_of"]
            index.n_sections = int(index.section_of.max()) + 1 if len(index.section_of) else 0
            for name in cls._PARTS:
                matrix = sparse.csc_matrix((data[f"{name}.data"], data[f"{name}.indices"], data[f"{name}.indptr"]),
                                           shape=tuple(data[f"{name}.shape"]))
                vocab = vocabs[name.removeprefix("section_")]
                ids = index.ids if not name.startswith("section") else range(matrix.shape[0])
                setattr(index, name, Bm25Index.from_matrix(matrix, vocab, ids))
        return index

    def rankings(self, query: str) -> dict[str, np.ndarray]:
        """Per chunk: BM25 scores `bm25` (words), `bigram` and `char`, and `section`, the reciprocal-rank
        score of the chunk's section among all sections (words + bigrams); arrays align with `self.ids`."""
        words, text = query_terms(query)
        words = back_off(words, self.words.vocab)
        grams = bigrams(text)
        if self.n_sections < 2:
            section = np.zeros(len(self.ids), np.float32)
        else:
            by_section = (reciprocal_ranks(self.section_words.scores(words))
                          + reciprocal_ranks(self.section_bigrams.scores(grams)))
            section = by_section[self.section_of]
        return {"bm25": self.words.scores(words), "bigram": self.bigrams.scores(grams),
                "char": self.chars.scores(characters(text)), "section": section}
