"""Exact and near-duplicate detection across a run, for questions and for answers.

Exact: a 64-bit hash of the normalized text (NFKC, lower case, punctuation and whitespace removed).
Near: MinHash over character n-grams, indexed with datasketch's MinHashLSH; a candidate counts when
its estimated Jaccard similarity reaches `threshold`. Namespaces ("question", "answer", …) are
separate indexes, so a question never collides with an answer.

>>> d = Deduper()
>>> d.check_and_add("a1", "祝姐姐生日快乐，愿你永远十八岁，天天开心！", namespace="answer") is None
True
>>> d.check_and_add("a2", "祝姐姐生日快乐!愿你永远十八岁 天天开心", namespace="answer")
DupHit(earlier_id='a1', kind='exact', similarity=1.0)
>>> d.check_and_add("q1", "祝姐姐生日快乐，愿你永远十八岁，天天开心！", namespace="question") is None
True

Memory per kept text: its id, one 8-byte hash entry, `num_perm` uint32 values (256 bytes at 64) and
the LSH's band keys. No MinHash object is kept.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Literal

from agents.rules.base import normalize

if TYPE_CHECKING:
    import numpy as np

    from agents.schemas import Sample

#: (false positive, false negative) weights for choosing the LSH bands. Every candidate is re-checked
#: against its stored signature, so a false candidate only costs a comparison while a missed one lets
#: a duplicate through: weigh recall. At threshold 0.85 and 64 permutations this gives 8 bands × 8 rows,
#: P(candidate) = 1-(1-J^8)^8 = 0.92 at J=0.85, 0.99 at J=0.9, 0.03 at J=0.5 (equal weights: 4 × 15, 0.31 at 0.85).
RECALL_WEIGHTS = (0.05, 0.95)

@dataclass(frozen=True, slots=True)
class DupHit:
    """The text duplicates the one kept under `earlier_id` (similarity 1.0 for an exact duplicate)."""

    earlier_id: str
    kind: Literal["exact", "near"]
    similarity: float


class _Index:
    """One namespace: ids, exact hashes, MinHash signatures and the LSH over them."""

    __slots__ = ("ids", "exact", "sigs", "lsh")

    def __init__(self, lsh: object, num_perm: int) -> None:
        import numpy as np

        self.ids: list[str] = []
        self.exact: dict[int, int] = {}
        self.sigs: np.ndarray = np.empty((1024, num_perm), dtype=np.uint32)
        self.lsh = lsh

    def append_sig(self, sig: np.ndarray) -> int:
        import numpy as np

        row = len(self.ids)
        if row == len(self.sigs):
            grown = np.empty((len(self.sigs) * 2, self.sigs.shape[1]), dtype=np.uint32)
            grown[:row] = self.sigs
            self.sigs = grown
        self.sigs[row] = sig
        return row


class Deduper:
    """Remembers accepted texts per namespace and says whether a new one duplicates any of them.

    `check_and_add` is atomic (a lock guards it), so concurrent graph branches on one asyncio loop
    or in threads cannot both accept the same text. Re-adding an id that is already kept is a no-op.
    """

    def __init__(
        self, threshold: float = 0.85, num_perm: int = 64, ngram: int = 3, bands: tuple[int, int] | None = None
    ) -> None:
        from datasketch import MinHash

        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.num_perm = num_perm
        self.ngram = ngram
        self.bands = bands
        self._permutations = MinHash(num_perm=num_perm, seed=1).permutations  # shared by every sketch
        self._indexes: dict[str, _Index] = {}
        self._known: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # ---- public API ------------------------------------------------------------------------

    def check(self, text: str, namespace: str = "default", key_id: str | None = None) -> DupHit | None:
        """The earlier text that `text` duplicates, or None. Adds nothing."""
        norm = normalize(text)
        if not norm:
            return None
        with self._lock:
            return self._find(self._index(namespace), norm, self._signature(norm), key_id)

    def add(self, key_id: str, text: str, namespace: str = "default") -> None:
        """Keep `text` under `key_id` (even if it duplicates an earlier one)."""
        norm = normalize(text)
        if not norm:
            return
        sig = self._signature(norm)
        with self._lock:
            self._add(self._index(namespace), key_id, norm, sig, namespace)

    def check_and_add(self, key_id: str, text: str, namespace: str = "default") -> DupHit | None:
        """Return the duplicate hit, or keep `text` under `key_id` and return None.

        A text with nothing left after normalization (only punctuation) is neither a duplicate nor kept.
        """
        norm = normalize(text)
        if not norm:
            return None
        sig = self._signature(norm)
        with self._lock:
            index = self._index(namespace)
            found = self._find(index, norm, sig, key_id)
            if found is None:
                self._add(index, key_id, norm, sig, namespace)
            return found

    def load(self, existing: Iterable[tuple[str, str]], namespace: str = "default") -> int:
        """Warm the index from an earlier run's accepted texts (id, text); returns how many were kept."""
        before = len(self._known.get(namespace, ()))
        for key_id, text in existing:
            self.add(key_id, text, namespace)
        return len(self._known.get(namespace, ())) - before

    def __len__(self) -> int:
        return sum(len(ix.ids) for ix in self._indexes.values())

    def size(self, namespace: str = "default") -> int:
        """How many texts `namespace` keeps."""
        index = self._indexes.get(namespace)
        return len(index.ids) if index else 0

    # ---- internals -------------------------------------------------------------------------

    def _index(self, namespace: str) -> _Index:
        index = self._indexes.get(namespace)
        if index is None:
            from datasketch import MinHashLSH

            lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm, weights=RECALL_WEIGHTS,
                             params=self.bands, hashfunc=_band_key)  # fmt: skip
            index = self._indexes[namespace] = _Index(lsh, self.num_perm)
            self._known[namespace] = set()
        return index

    def _signature(self, norm: str):
        from datasketch import MinHash

        n = self.ngram
        grams = {norm} if len(norm) <= n else {norm[i : i + n] for i in range(len(norm) - n + 1)}
        sketch = MinHash(self.num_perm, hashfunc=zlib.crc32, permutations=self._permutations, scheme="affine32")
        sketch.update_batch([g.encode() for g in grams])
        return sketch

    def _find(self, index: _Index, norm: str, sketch, key_id: str | None) -> DupHit | None:
        row = index.exact.get(_exact_key(norm))
        if row is not None:
            earlier = index.ids[row]
            return None if earlier == key_id else DupHit(earlier, "exact", 1.0)
        if not index.ids:
            return None
        best_row, best_sim = -1, 0.0
        for row in index.lsh.query(sketch):
            sim = float((index.sigs[row] == sketch.hashvalues).mean())
            if sim > best_sim:
                best_row, best_sim = row, sim
        if best_row < 0 or best_sim < self.threshold:
            return None
        earlier = index.ids[best_row]
        return None if earlier == key_id else DupHit(earlier, "near", round(best_sim, 4))

    def _add(self, index: _Index, key_id: str, norm: str, sketch, namespace: str) -> None:
        known = self._known[namespace]
        if key_id in known:
            return  # resume: the same sample again
        known.add(key_id)
        row = index.append_sig(sketch.hashvalues)
        index.ids.append(key_id)
        index.exact.setdefault(_exact_key(norm), row)
        index.lsh.insert(row, sketch, check_duplication=False)


def _exact_key(norm: str) -> int:
    return int.from_bytes(hashlib.blake2b(norm.encode(), digest_size=8).digest(), "little")


def _band_key(band: bytes) -> bytes:
    """Shorten an LSH band (r × 4 bytes) to 8 bytes: a smaller dict key, same buckets in practice."""
    return hashlib.blake2b(band, digest_size=8).digest()


def sample_texts(sample: Sample) -> dict[str, str]:
    """What a run dedups for a sample: its first question and all its answers joined.

    >>> from agents.schemas import Sample, Turn
    >>> sample_texts(Sample(id="x", recipe="r", kind="qa", turns=[Turn(input="问", output="答")]))
    {'question': '问', 'answer': '答'}
    """
    question = sample.turns[0].input if sample.turns else ""
    return {"question": question, "answer": "\n".join(t.output for t in sample.turns)}
