"""Fit the answerability threshold from answerable ("good") and unanswerable ("bad") questions.

As HuixiangDou fits its reject threshold from good/bad question lists: for each retrieval signal the
threshold with the best F1 (answerable = positive class) wins; ties go to the higher accuracy.

>>> best = fit_threshold([0.9, 0.8, 0.7], [0.3, 0.75])
>>> (best.threshold, best.precision, best.recall)
(0.5, 0.75, 1.0)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from agents.errors import InputError, json_problem


@dataclass(frozen=True)
class Calibration:
    signal: str
    threshold: float
    precision: float
    recall: float
    f1: float
    accuracy: float
    n_good: int
    n_bad: int

    def to_dict(self) -> dict:
        return asdict(self)


def fit_threshold(good: Sequence[float], bad: Sequence[float], signal: str = "dense") -> Calibration:
    """Best threshold t (answerable iff score >= t) among cuts between the observed scores."""
    if not good or not bad:
        raise InputError("Calibration needs at least one answerable and one unanswerable question")
    best: tuple[float, float, Calibration] | None = None
    values = sorted(set(good) | set(bad))
    # Cut halfway between neighbouring scores, so a perfect split leaves a margin on both sides.
    cuts = [values[0]] + [(a + b) / 2 for a, b in zip(values, values[1:])]
    for t in cuts:
        tp = sum(s >= t for s in good)
        fp = sum(s >= t for s in bad)
        tn = len(bad) - fp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / len(good)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        accuracy = (tp + tn) / (len(good) + len(bad))
        cal = Calibration(signal, round(float(t), 6), round(precision, 4), round(recall, 4), round(f1, 4),
                          round(accuracy, 4), len(good), len(bad))
        if best is None or (f1, accuracy) > best[:2]:
            best = (f1, accuracy, cal)
    return best[2]


def read_questions(path: str | Path) -> list[str]:
    """Questions from a JSON list (HuixiangDou's good_questions.json), JSONL, or one per line.

    In JSON/JSONL an item may be a string or an object with "question", "text", "input" or "query".
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"Question file not found: {p}")
    raw = p.read_text(encoding="utf-8-sig").strip()
    if not raw:
        raise InputError(f"Question file is empty: {p}")
    items: list
    if raw.startswith("["):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}: invalid JSON ({json_problem(exc, line=True)})") from exc
    elif raw.startswith("{"):
        try:
            items = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}: invalid JSONL ({exc.msg})") from exc
    else:
        items = [line.strip() for line in raw.splitlines() if line.strip()]
    out = []
    for item in items:
        if isinstance(item, dict):
            item = next((item[k] for k in ("question", "text", "input", "query") if isinstance(item.get(k), str)), None)
        if isinstance(item, str) and item.strip():
            out.append(item.strip())
    if not out:
        raise InputError(f"No questions found in {p}")
    return out
