"""Dedup across Ray workers: the driver, the run's one ledger writer, has the last word.

Each worker dedups against its own dedupers (warmed from the run's accepted samples, then fed what
the other workers accepted with every batch it receives). Two workers can still accept near-copies
at the same moment; the driver checks every accepted sample against the run-wide dedupers before it
is written, and a duplicate becomes a rejection with `DUPLICATE`, as it would have in one process.

    dedup = RunDedup(ctx.deduper_questions, ctx.deduper_answers)
    state = dedup.review(item, state)      # state as a worker returned it (plain data)
    news = dedup.news()                    # [(id, question | None, answer)] accepted since the last call

>>> from agents.dedup import Deduper
>>> from agents.schemas import WorkItem
>>> dedup = RunDedup(Deduper(), Deduper())
>>> first, second = (WorkItem(id=i, recipe="r", graph="qa", key={"n": i}) for i in ("a", "b"))
>>> state = {"status": "accepted", "sample": {"turns": [{"input": "天命人是谁？", "output": "是玩家扮演的猴子。"}]}}
>>> dedup.review(first, state)["status"]
'accepted'
>>> again = dedup.review(second, state)
>>> again["status"], again["reject_codes"], again["sample"]["meta"]["duplicate_of"]
('rejected', ['DUPLICATE'], 'a')
>>> dedup.news()
[('a', '天命人是谁？', '是玩家扮演的猴子。')]
>>> worker_copy = {"status": "rejected", "reject_codes": ["DUPLICATE"],
...                "sample": {**state["sample"], "meta": {"duplicate_of": "b", "duplicate_field": "answer"}}}
>>> dedup.review(WorkItem(id="c", recipe="r", graph="qa", key={}), worker_copy)["sample"]["meta"]["duplicate_of"]
'a'

"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents.dedup import sample_texts
from agents.schemas import ReasonCode, Sample, Turn, WorkItem


def texts_of(graph: str, sample: dict[str, Any]) -> dict[str, str]:
    """agents.dedup.sample_texts of a plain sample; a persona greeting's request is a template, so only
    its answer counts (as agents.critic.dedup)."""
    turns = [Turn.model_validate(t) for t in sample.get("turns") or []]
    texts = sample_texts(Sample(id=sample.get("id", ""), recipe=sample.get("recipe", ""), kind="qa", turns=turns))
    return {**texts, "question": ""} if graph == "persona" else texts


def learn_accepted(ctx: Any, accepted: list[tuple[str, str | None, str]]) -> None:
    """Add what the run accepted elsewhere to this Context's dedupers (a worker's; a shard's: graphs.session.learn_samples)."""
    questions, answers = getattr(ctx, "deduper_questions", None), getattr(ctx, "deduper_answers", None)
    for sample_id, question, answer in accepted:
        if questions is not None and question:
            questions.add(sample_id, question)
        if answers is not None and answer:
            answers.add(sample_id, answer)


class RunDedup:
    """The driver's run-wide dedupers (None: no dedup, e.g. a benchmark graph); `catch_up` (a shard's
    `Context.dedup_catch_up`) adds to them what the other shards accepted, before each review."""

    def __init__(self, questions: Any, answers: Any, catch_up: Callable[[], None] | None = None):
        self.questions, self.answers, self.catch_up = questions, answers, catch_up
        self._news: list[tuple[str, str | None, str]] = []

    def review(self, item: WorkItem, state: dict[str, Any]) -> dict[str, Any]:
        """`state`, or the same state rejected as DUPLICATE when an accepted sample repeats one the run
        already holds (from another worker)."""
        sample = state.get("sample")
        if not sample or (self.questions is None and self.answers is None):
            return state
        if self.catch_up is not None:
            self.catch_up()
        texts = texts_of(item.graph, sample)
        checks = [(d, field, texts[field]) for d, field in ((self.questions, "question"), (self.answers, "answer"))
                  if d is not None and texts[field]]
        if state.get("status") != "accepted":
            return self._point_to_accepted(state, checks)
        for deduper, field, text in checks:
            hit = deduper.check(text, key_id=item.id)
            if hit is not None:
                meta = {**(sample.get("meta") or {}), "duplicate_of": hit.earlier_id, "duplicate_kind": hit.kind,
                        "duplicate_field": field, "similarity": round(hit.similarity, 4),
                        "reject_codes": [ReasonCode.DUPLICATE.value]}
                return {**state, "status": "rejected", "reject_codes": [ReasonCode.DUPLICATE.value],
                        "sample": {**sample, "meta": meta}}
        for deduper, _, text in checks:
            deduper.add(item.id, text)
        self._news.append((item.id, texts["question"] or None, texts["answer"]))
        return state

    def _point_to_accepted(self, state: dict[str, Any], checks: list) -> dict[str, Any]:
        """A worker's DUPLICATE names the copy that worker kept, which the driver may have rejected as
        another worker's duplicate: name the run's accepted original instead, when there is one."""
        sample = state["sample"]
        meta = sample.get("meta") or {}
        if ReasonCode.DUPLICATE.value not in (state.get("reject_codes") or []) or "duplicate_of" not in meta:
            return state
        for deduper, field, text in checks:
            if meta.get("duplicate_field", field) != field:
                continue
            hit = deduper.check(text)
            if hit is not None:
                meta = {**meta, "duplicate_of": hit.earlier_id, "duplicate_kind": hit.kind,
                        "similarity": round(hit.similarity, 4)}
                return {**state, "sample": {**sample, "meta": meta}}
        return state

    def news(self) -> list[tuple[str, str | None, str]]:
        """The accepted texts since the last call (for the workers' dedupers)."""
        news, self._news = self._news, []
        return news
