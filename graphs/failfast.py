"""Fail fast on systematic failure: when the first K items of a run are all rejected for the same
reason, more items will not fare better — pause, name the likely cause and what to try.

>>> watch = FailFast(3)
>>> [watch.observe(i, "rejected", ["FORMAT"]) for i in ("a", "b", "c")]
[None, None, 'FORMAT']
>>> FailFast(2).observe("a", "accepted", [])  # anything accepted: the watch is over
"""

from __future__ import annotations

import json
from pathlib import Path

#: What each systematic rejection most likely means, and what to try.
HINTS: dict[str, str] = {
    "FORMAT": "the model does not follow JSON mode: try another model, or ZAOSHU_JSON_MODE=prompt "
              "(schema in the prompt only, tolerant parsing; per role ZAOSHU_<ROLE>__JSON_MODE)",
    "TRUNCATED": "every reply was cut at max_tokens: raise it, e.g. ZAOSHU_MAX_TOKENS=2048 "
                 "(per role ZAOSHU_<ROLE>__MAX_TOKENS, YAML llm.max_tokens)",
    "UNANSWERABLE": "the knowledge base does not cover the aspects: add documents to the knowledge folder, "
                    "check that it is the right folder, or ask about other aspects",
    "DUPLICATE": "the model keeps writing the same text: raise the temperature (ZAOSHU_TEMPERATURE) or use another model",
    "NOT_A_QUESTION": "the asker copies its passages or writes statements instead of questions: give the asker a "
                      "larger model (ZAOSHU_ASKER__MODEL)",
}
#: When the first items share several codes, the one named is the likeliest root cause.
PRIORITY = ("FORMAT", "TRUNCATED", "UNANSWERABLE", "NOT_A_QUESTION", "DUPLICATE")


class FailFast:
    """Watches the first `k` finished items of a run; `observe` returns the code they all share once
    the k-th is in, else None. Off with k = 0 (`--keep-going`)."""

    def __init__(self, k: int):
        self.k = k
        self.active = k > 0
        self.seen: list[tuple[str, set[str]]] = []

    def observe(self, item_id: str, status: str, codes: list[str]) -> str | None:
        if not self.active:
            return None
        if status == "accepted":
            self.active = False
            return None
        self.seen.append((item_id, set(codes)))
        if len(self.seen) < self.k:
            return None
        self.active = False
        shared = set.intersection(*(c for _, c in self.seen))
        if not shared:
            return None
        return next((c for c in PRIORITY if c in shared), sorted(shared)[0])

    @property
    def first_id(self) -> str | None:
        return self.seen[0][0] if self.seen else None


def line_of(path: Path, item_id: str) -> int | None:
    """The 1-based line of `item_id`'s record in a JSONL ledger (None when absent)."""
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                if json.loads(line).get("id") == item_id:
                    return number
            except ValueError:
                continue
    return None


def pause_message(k: int, code: str, rejected_path: Path, line: int | None) -> str:
    """The one message a paused run prints. The k items are in rejected.jsonl, so a rerun (settings come from
    the environment and leave the run's fingerprint alone) skips them; only a new run folder tries them again."""
    hint = HINTS.get(code, "look at the rejected examples before spending more")
    where = f"{rejected_path} line {line}" if line else str(rejected_path)
    return (f"the first {k} items were all rejected with {code}: {hint}. One raw example: {where}. "
            f"Rerunning the same command goes on with the next items and leaves these {k} rejected, also with "
            f"ZAOSHU_JSON_MODE or any other ZAOSHU_ variable changed; to try every item again, start over with "
            f"--fresh (with --out: a new folder). Add --keep-going to run the rest without pausing.")
