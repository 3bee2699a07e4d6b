"""Preference data from what the critic already decided: DPO pairs and KTO examples.

Every output the critic judged is kept in the sample's `meta["drafts"]` (agents.critic.draft_record):
its turn, text, verdict and `context` (a hash of the conversation before it). When a draft was sent
back and a later revision of the same turn was accepted, that is a pair — the accepted turn is
`chosen`, the draft `rejected`, and the prompt is the same (checked through `context`).

    zaoshu export runs/wulewule/r1 --format dpo          # LLaMA-Factory pairwise (ranking: true)
    zaoshu export runs/wulewule/r1 --format kto          # LLaMA-Factory KTO (kto_tag)
    zaoshu export runs/wulewule/r1 --format xtuner-dpo   # XTuner's preference dataset (prompt/chosen/rejected)

`--skip-artifacts` leaves out drafts whose only faults were artifacts (markup, a preamble,
punctuation, leaked text): such a pair teaches formatting, not quality.

>>> from agents.schemas import Sample, Turn, draft_context
>>> s = Sample(id="a", recipe="r", kind="qa", system="S", turns=[Turn(input="问", output="好答案。")],
...            meta={"drafts": [{"turn": 0, "text": "以下是回答：坏答案", "decision": "revise", "codes": ["PREAMBLE"],
...                              "by": "rules", "context": draft_context([], "问")}]})
>>> [(p.chosen, p.rejected) for p in preference_pairs([s])]
[('好答案。', '以下是回答：坏答案')]
>>> preference_pairs([s], skip_artifacts=True)
[]
>>> to_dpo(preference_pairs([s])[0])["chosen"]
{'from': 'gpt', 'value': '好答案。'}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.errors import InputError
from agents.schemas import ReasonCode, Sample, Turn, draft_context
from finetune.export import ExportReport
from graphs.ledger import BadLine

log = logging.getLogger(__name__)

PREFERENCE_FORMATS = ("dpo", "kto", "xtuner-dpo")
"""Preference formats `zaoshu export --format` accepts (built from `meta["drafts"]`)."""

ARTIFACT_CODES = frozenset({
    ReasonCode.MARKDOWN, ReasonCode.PREAMBLE, ReasonCode.LEADING_PUNCTUATION, ReasonCode.MIXED_PUNCTUATION,
    ReasonCode.REPEATED_PUNCTUATION, ReasonCode.BAD_PUNCTUATION, ReasonCode.ENGLISH_LEAK, ReasonCode.PLACEHOLDER,
    ReasonCode.FORMAT,
})  # fmt: skip
"""Reason codes about the surface of a draft, not its content: `--skip-artifacts` drops drafts with only these."""


def with_thinking(text: str, reasoning: str | None) -> str:
    """The answer with its reasoning in front, as the Qwen3 / DeepSeek-R1 chat templates expect.

    >>> with_thinking("答案。", "先想想。")
    '<think>\\n先想想。\\n</think>\\n\\n答案。'
    >>> with_thinking("答案。", None)
    '答案。'
    """
    return f"<think>\n{reasoning.strip()}\n</think>\n\n{text}" if reasoning and reasoning.strip() else text


@dataclass(frozen=True)
class Pair:
    """One preference pair: the accepted `chosen` and a sent-back draft `rejected` for turn `turn`."""

    sample: Sample
    turn: int
    chosen: str
    rejected: str
    codes: tuple[str, ...]
    chosen_reasoning: str | None = None
    rejected_reasoning: str | None = None

    @property
    def earlier(self) -> list[Turn]:
        return self.sample.turns[:self.turn]

    @property
    def question(self) -> str:
        return self.sample.turns[self.turn].input


def is_artifact_only(codes: Iterable[str]) -> bool:
    """True when every code is an artifact code (and there is at least one).

    >>> is_artifact_only(["PREAMBLE", "MARKDOWN"]), is_artifact_only(["PREAMBLE", "UNGROUNDED"]), is_artifact_only([])
    (True, False, False)
    """
    codes = list(codes)
    return bool(codes) and all(c in {a.value for a in ARTIFACT_CODES} for c in codes)


def rejected_drafts(sample: Sample, *, skip_artifacts: bool = False, accepted: bool = True) -> list[dict[str, Any]]:
    """The drafts of `sample` the critic did not accept and that answer one of its turns' very prompt.

    A draft whose context no longer matches (the dialogue was cut back and went on differently) is
    left out, and so is a repeat; for an `accepted` sample also a draft equal to the accepted turn.
    """
    found, seen = [], set()
    for draft in sample.meta.get("drafts") or []:
        if not isinstance(draft, dict) or draft.get("decision") == "accept":
            continue
        turn, text = draft.get("turn"), draft.get("text")
        if not isinstance(turn, int) or not 0 <= turn < len(sample.turns) or not isinstance(text, str) or not text.strip():
            continue
        final = sample.turns[turn]
        if draft.get("context") != draft_context(sample.turns[:turn], final.input):
            continue
        if (turn, text.strip()) in seen or (accepted and final.output.strip() == text.strip()):
            continue
        if skip_artifacts and is_artifact_only(draft.get("codes") or []):
            continue
        seen.add((turn, text.strip()))
        found.append(draft)
    return found


def preference_pairs(samples: Iterable[Sample], *, skip_artifacts: bool = False) -> list[Pair]:
    """Pairs from accepted samples: each rejected draft of a turn against the turn as accepted."""
    pairs = []
    for sample in samples:
        for draft in rejected_drafts(sample, skip_artifacts=skip_artifacts):
            turn = sample.turns[draft["turn"]]
            pairs.append(Pair(sample=sample, turn=draft["turn"], chosen=turn.output, rejected=draft["text"],
                              codes=tuple(draft.get("codes") or ()), chosen_reasoning=turn.reasoning,
                              rejected_reasoning=draft.get("reasoning")))
    return pairs


# ---------------------------------------------------------------- record formats


def _sharegpt_history(turns: list[Turn], with_reasoning: bool) -> list[dict[str, str]]:
    messages = []
    for t in turns:
        messages += [{"from": "human", "value": t.input},
                     {"from": "gpt", "value": with_thinking(t.output, t.reasoning) if with_reasoning else t.output}]
    return messages


def to_dpo(pair: Pair, *, with_reasoning: bool = False, keep_meta: bool = False) -> dict[str, Any]:
    """LLaMA-Factory's pairwise ShareGPT record: `conversations` ends with the human turn; `chosen` and
    `rejected` are single gpt messages."""
    conversations = _sharegpt_history(pair.earlier, with_reasoning) + [{"from": "human", "value": pair.question}]
    chosen = with_thinking(pair.chosen, pair.chosen_reasoning) if with_reasoning else pair.chosen
    rejected = with_thinking(pair.rejected, pair.rejected_reasoning) if with_reasoning else pair.rejected
    record = {"conversations": conversations, "chosen": {"from": "gpt", "value": chosen},
              "rejected": {"from": "gpt", "value": rejected}, "system": pair.sample.system}
    return _finish(record, pair, keep_meta)


def to_xtuner_dpo(pair: Pair, *, with_reasoning: bool = False, keep_meta: bool = False) -> dict[str, Any]:
    """XTuner's preference record (`xtuner/dataset/preference_dataset.py`): `prompt`, `chosen` and
    `rejected` are OpenAI message lists; the prompt ends with the user's message."""
    prompt = [{"role": "system", "content": pair.sample.system}] if pair.sample.system else []
    for t in pair.earlier:
        prompt += [{"role": "user", "content": t.input},
                   {"role": "assistant", "content": with_thinking(t.output, t.reasoning) if with_reasoning else t.output}]
    prompt.append({"role": "user", "content": pair.question})
    chosen = with_thinking(pair.chosen, pair.chosen_reasoning) if with_reasoning else pair.chosen
    rejected = with_thinking(pair.rejected, pair.rejected_reasoning) if with_reasoning else pair.rejected
    record = {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
              "rejected": [{"role": "assistant", "content": rejected}]}
    return _finish(record, pair, keep_meta)


def _finish(record: dict[str, Any], pair: Pair, keep_meta: bool) -> dict[str, Any]:
    if keep_meta:
        record["id"] = pair.sample.id
        record["meta"] = {"turn": pair.turn, "rejected_codes": list(pair.codes), **pair.sample.meta}
    return record


def kto_records(accepted: Iterable[Sample], rejected: Iterable[Sample], *, with_reasoning: bool = False,
                skip_artifacts: bool = False, keep_meta: bool = False) -> list[dict[str, Any]]:
    """LLaMA-Factory's KTO ShareGPT records: every accepted sample whole with `kto_tag: true`; every
    draft the critic sent back or rejected (from accepted and rejected samples) with `kto_tag: false`,
    after the conversation it answered."""
    return [record for _, record in _kto_rows(accepted, rejected, with_reasoning=with_reasoning,
                                              skip_artifacts=skip_artifacts, keep_meta=keep_meta)]


def _kto_rows(accepted: Iterable[Sample], rejected: Iterable[Sample], *, with_reasoning: bool, skip_artifacts: bool,
              keep_meta: bool) -> list[tuple[str, dict[str, Any]]]:
    """`kto_records`, each with the id of the sample it comes from."""
    records: list[tuple[str, dict[str, Any]]] = []

    def add(sample: Sample, turns: list[Turn], tag: bool, extra: dict[str, Any]) -> None:
        record = {"conversations": _sharegpt_history(turns, with_reasoning), "kto_tag": tag, "system": sample.system}
        if keep_meta:
            record["id"] = sample.id
            record["meta"] = {**extra, **sample.meta}
        records.append((sample.id, record))

    for sample in accepted:
        add(sample, sample.turns, True, {})
        for draft in rejected_drafts(sample, skip_artifacts=skip_artifacts):
            bad = Turn(input=sample.turns[draft["turn"]].input, output=draft["text"], reasoning=draft.get("reasoning"))
            add(sample, [*sample.turns[:draft["turn"]], bad], False, {"turn": draft["turn"], "codes": draft.get("codes")})
    for sample in rejected:
        for draft in rejected_drafts(sample, skip_artifacts=skip_artifacts, accepted=False):
            bad = Turn(input=sample.turns[draft["turn"]].input, output=draft["text"], reasoning=draft.get("reasoning"))
            add(sample, [*sample.turns[:draft["turn"]], bad], False, {"turn": draft["turn"], "codes": draft.get("codes")})
    return records


# ---------------------------------------------------------------- LLaMA-Factory dataset_info


_SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                  "system_tag": "system"}


def preference_dataset_info(name: str, file: str, fmt: str) -> dict[str, Any]:
    """The `dataset_info.json` entry LLaMA-Factory needs for a `dpo` (ranking) or `kto` file.

    >>> preference_dataset_info("demo", "all.jsonl", "dpo")["demo"]["ranking"]
    True
    >>> preference_dataset_info("demo", "all.jsonl", "kto")["demo"]["columns"]["kto_tag"]
    'kto_tag'
    """
    columns: dict[str, str] = {"messages": "conversations", "system": "system"}
    entry: dict[str, Any] = {"file_name": file, "formatting": "sharegpt"}
    if fmt == "dpo":
        entry["ranking"] = True
        columns.update(chosen="chosen", rejected="rejected")
    elif fmt == "kto":
        columns["kto_tag"] = "kto_tag"
    else:
        raise InputError(f"LLaMA-Factory has no dataset_info entry for {fmt!r}")
    return {name: {**entry, "columns": columns, "tags": dict(_SHAREGPT_TAGS)}}


# ---------------------------------------------------------------- reading a run


def read_run(run_dir: Path) -> tuple[list[Sample], list[Sample], list[BadLine]]:
    """Accepted samples, the samples kept in rejected.jsonl (records with a `sample`), and the lines skipped."""
    from finetune.export import read_records, read_run_samples
    from graphs.shards import run_ledgers

    accepted, bad = read_run_samples(run_dir)
    rejected: list[Sample] = []
    for path in run_ledgers(run_dir, "rejected.jsonl"):  # every shard
        records, bad_json = read_records(path)
        bad += bad_json
        for number, record in records:
            sample = record.get("sample") if isinstance(record, dict) else None
            if not sample:
                continue
            try:
                rejected.append(Sample.model_validate(sample))
            except ValueError as exc:
                bad.append(BadLine(number, f"invalid sample: {str(exc).splitlines()[0]}", path))
    return accepted, rejected, bad


def count_drafts(samples: Iterable[Sample]) -> int:
    """How many judged drafts the samples keep (0 for a run made before drafts were kept)."""
    return sum(len(s.meta.get("drafts") or []) for s in samples)


@dataclass
class PreferenceReport(ExportReport):
    """What `export_preferences` wrote: an export report, and how many judged drafts it drew from."""

    drafts: int = 0


def _rows(fmt: str, accepted: list[Sample], rejected: list[Sample], *, with_reasoning: bool, skip_artifacts: bool,
          keep_meta: bool) -> list[tuple[str, dict[str, Any]]]:
    """Every record of `fmt`, in file order, with the id of the sample it comes from (kto: every accepted
    sample, and the drafts of accepted and rejected ones; dpo, xtuner-dpo: a sample's pairs)."""
    if fmt == "kto":
        return _kto_rows(accepted, rejected, with_reasoning=with_reasoning, skip_artifacts=skip_artifacts,
                         keep_meta=keep_meta)
    to_record = to_dpo if fmt == "dpo" else to_xtuner_dpo
    return [(pair.sample.id, to_record(pair, with_reasoning=with_reasoning, keep_meta=keep_meta))
            for pair in preference_pairs(accepted, skip_artifacts=skip_artifacts)]


def export_preferences(run_dir: Path, fmt: str, *, split: float | None = None, seed: int = 42,
                       keep_meta: bool = False, as_json: bool = False, with_reasoning: bool = False,
                       skip_artifacts: bool = False, ignore_review: bool = False) -> PreferenceReport:
    """Write `<run_dir>/exports/<fmt>/` (train/test by sample id, or all.*) for dpo, kto or xtuner-dpo.

    A sample's pairs stay on one side of the split. An export with no record at all is an error that
    says why (a run made before drafts were kept, or a critic that accepted every first draft).
    """
    from finetune.export import accepted_paths, seeded_split, write_export

    if fmt not in PREFERENCE_FORMATS:
        raise InputError(f"unknown preference format {fmt!r}; choose one of: {', '.join(PREFERENCE_FORMATS)}")
    run_dir = Path(run_dir)
    accepted_paths(run_dir)
    accepted, rejected, problems = read_run(run_dir)
    review: dict[str, int] = {}
    if not ignore_review:  # a sample the reviewer rejected gives no `chosen`
        from graphs.review_ledger import apply_review

        accepted, review = apply_review(run_dir, accepted, problems)
    if not accepted and fmt != "kto":
        raise InputError(f"{run_dir} has no accepted samples: a {fmt} pair needs an accepted turn as `chosen` "
                         f"(--format kto writes the rejected drafts)")
    drafts = count_drafts(accepted) + count_drafts(rejected)
    if not drafts:
        raise InputError(f"{run_dir} keeps no critic drafts (meta.drafts): it was made before zaoshu kept them, "
                         f"so it has no preference data")
    rows = _rows(fmt, accepted, rejected, with_reasoning=with_reasoning, skip_artifacts=skip_artifacts,
                 keep_meta=keep_meta)
    # the split is over the samples that give records (a sample's records stay on one side): over every sample,
    # a test side of samples without a pair was an empty test file
    ids = sorted({sample_id for sample_id, _ in rows})
    if not ids:
        raise InputError(f"{run_dir}: the critic sent no draft back that a later revision fixed"
                         f"{' (artifact-only drafts skipped)' if skip_artifacts else ''}: no {fmt} records")
    parts = {"all": set(ids)} if split is None else dict(zip(("train", "test"), map(set, seeded_split(ids, split, seed))))
    built = {name: [record for sample_id, record in rows if sample_id in keep] for name, keep in parts.items()}
    report = PreferenceReport(fmt=fmt, out_dir=run_dir / "exports" / fmt, bad_lines=problems, drafts=drafts,
                              review=review)
    write_export(report, built, as_json=as_json, info_entry=(
        lambda name, file: preference_dataset_info(f"{run_dir.resolve().name}_{name}_{fmt}", file, fmt))
        if fmt in ("dpo", "kto") else None)
    log.info("exported %s preference data to %s: %s", run_dir, report.out_dir, report.counts)
    return report
