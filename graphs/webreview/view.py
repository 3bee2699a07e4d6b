"""What one card on the review page shows, built from a ledger line and its review state.

Rule hits are highlighted where the critic recorded a span (offsets into the stripped output) or the
text under it:

>>> segments("  以下是答案：天命人", [{"code": "PREAMBLE", "message": "删掉套话", "span": [0, 6], "text": "以下是答案："}])
[('  ', None), ('以下是答案：', 'PREAMBLE: 删掉套话'), ('天命人', None)]
"""

from __future__ import annotations

from typing import Any

from graphs.review_ledger import SampleReview
from graphs.webreview.index import LABELS, codes_of, sample_of


def _locate(text: str, hit: dict[str, Any]) -> tuple[int, int] | None:
    """Where a hit lies in `text`: its span (checked against its text when both exist), else its text."""
    lead = len(text) - len(text.lstrip())
    span, snippet = hit.get("span"), hit.get("text")
    if isinstance(span, list | tuple) and len(span) == 2:
        start, end = lead + int(span[0]), lead + int(span[1])
        if 0 <= start < end <= len(text) and (not snippet or text[start:end] == snippet):
            return start, end
    if isinstance(snippet, str) and snippet and (at := text.find(snippet)) >= 0:
        return at, at + len(snippet)
    return None


def segments(text: str, hits: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """`text` cut into (piece, hit label or None); overlapping hits keep the first one found."""
    marks = sorted((loc, f"{h.get('code', '')}: {h.get('message', '')}") for h in hits if (loc := _locate(text, h)))
    out, pos = [], 0
    for (start, end), label in marks:
        if start < pos:
            continue
        if start > pos:
            out.append((text[pos:start], None))
        out.append((text[start:end], label))
        pos = end
    if pos < len(text) or not out:
        out.append((text[pos:], None))
    return out


def card(sid: int, file: str, record: dict[str, Any], review: SampleReview) -> dict[str, Any]:
    """Everything the card template needs; no HTML here (the template escapes every value)."""
    sample = sample_of(file, record)
    meta = (sample or {}).get("meta") or {}
    turns = [t for t in (sample or {}).get("turns") or [] if isinstance(t, dict)]
    hits = [h for h in meta.get("rule_hits") or [] if isinstance(h, dict)]
    sources = [s for s in meta.get("sources") or [] if isinstance(s, dict)]
    shown = review.edited_turns(turns)
    last = len(turns) - 1
    view_turns = []
    for i, turn in enumerate(shown):
        edited = i in review.edits
        turn_hits = [h for h in hits if h.get("turn", last) == i]
        view_turns.append({
            "index": i, "input": turn.get("input", ""), "output": turn.get("output", ""), "edited": edited,
            "original": turns[i] if edited else None,
            "segments": segments(turn.get("output", ""), [] if edited else turn_hits),
            "sources": sorted((s for s in sources if s.get("turn", last) == i),
                              key=lambda s: -(s.get("score") or 0)),
        })
    verdict = meta.get("verdict") or record.get("verdict") or {}
    key = record.get("key") if isinstance(record.get("key"), dict) else {}
    labels = {name: meta.get(name, key.get(name)) for name in LABELS if meta.get(name, key.get(name))}
    tags = meta.get("tags", meta.get("tag"))
    return {
        "sid": sid, "file": file, "id": record.get("id", ""), "kind": (sample or {}).get("kind", ""),
        "system": (sample or {}).get("system", ""), "turns": view_turns, "labels": labels,
        "tags": [tags] if isinstance(tags, str) else list(tags or []),
        "codes": codes_of(file, record), "verdict": verdict if isinstance(verdict, dict) else {},
        "hits": hits, "raw": record.get("raw"), "error": record.get("error"),
        "has_sample": sample is not None and bool(turns), "review": review,
        "retrieval": meta.get("retrieval"),
    }
