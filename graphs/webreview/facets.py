"""Counts of each field's values over any subset of samples, as one numpy bincount.

Every (sample, value) pair of a field is kept as two int arrays (sample row, value number), so the
overview of 46,000 matching samples out of 100,000 costs milliseconds, not one SQL GROUP BY per field.

>>> f = FacetCounts()
>>> for sid, code in [(1, "TOO_SHORT"), (1, "PREAMBLE"), (2, "TOO_SHORT"), (3, "REFUSAL")]:
...     f.add("code", sid, code)
>>> f.counts("code")
[('TOO_SHORT', 2), ('PREAMBLE', 1), ('REFUSAL', 1)]
>>> f.counts("code", rows=[2, 3])
[('REFUSAL', 1), ('TOO_SHORT', 1)]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class FacetCounts:
    """Per field: value names, and the (row, value number) pairs added so far (arrays, plus a pending tail)."""

    def __init__(self) -> None:
        self._numbers: dict[str, dict[str, int]] = {}
        self._names: dict[str, list[str]] = {}
        self._pending: dict[str, tuple[list[int], list[int]]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._max_row = 0

    def add(self, field: str, row: int, value: str) -> None:
        numbers = self._numbers.setdefault(field, {})
        number = numbers.get(value)
        if number is None:
            number = numbers[value] = len(numbers)
            self._names.setdefault(field, []).append(value)
        rows, values = self._pending.setdefault(field, ([], []))
        rows.append(row)
        values.append(number)
        if row > self._max_row:
            self._max_row = row

    def _array(self, field: str) -> tuple[np.ndarray, np.ndarray]:
        """The field's pairs as arrays; pairs added since the last call are appended, not rebuilt."""
        empty = np.zeros(0, dtype=np.int64)
        rows, values = self._arrays.get(field, (empty, empty))
        new_rows, new_values = self._pending.pop(field, ([], []))
        if new_rows:
            rows = np.concatenate([rows, np.asarray(new_rows, dtype=np.int64)])
            values = np.concatenate([values, np.asarray(new_values, dtype=np.int64)])
        self._arrays[field] = (rows, values)
        return rows, values

    def mask(self, rows: Iterable[int] | np.ndarray) -> np.ndarray:
        """A boolean row mask for `counts`, built once per subset."""
        mask = np.zeros(self._max_row + 1, dtype=bool)
        picked = rows if isinstance(rows, np.ndarray) else np.fromiter(rows, dtype=np.int64)
        mask[picked[picked <= self._max_row]] = True
        return mask

    def counts(self, field: str, rows: Iterable[int] | None = None, *, mask: np.ndarray | None = None,
               limit: int = 300) -> list[tuple[str, int]]:
        """(value, count), most common first then by value; over `rows` (or `mask`) when given."""
        names = self._names.get(field, [])
        if not names:
            return []
        row_of, value_of = self._array(field)
        if rows is not None:
            mask = self.mask(rows)
        if mask is not None:
            value_of = value_of[mask[row_of]]
        totals = np.bincount(value_of, minlength=len(names))
        ranked = sorted(((names[i], int(n)) for i, n in enumerate(totals) if n), key=lambda kv: (-kv[1], kv[0]))
        return ranked[:limit]
