"""COIG-CQIA rows (the ruozhiba subset) → Samples → OpenAI/XTuner records, a seeded train/test split, an optional LLM critic.

>>> sample = row_to_sample({"instruction": "咖啡是豆浆吗？", "input": "", "output": "不是。"}, line=1)
>>> sample.turns[0].input, sample.kind, sample.meta["source_line"]
('咖啡是豆浆吗？', 'qa', 1)

Bad rows — invalid JSON, not an object, a missing or empty `instruction`/`output`, a field of the
wrong type — are reported with their line number and skipped; a conversion never stops on them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.errors import InputError, ZaoshuError
from agents.schemas import Sample, Turn, Verdict
from finetune.export import BadLine, read_records, seeded_split, write_records
from finetune.formats import to_format
from graphs.ledger import cut_torn_tail

log = logging.getLogger(__name__)

RECIPE = "ruozhiba"
FORMATS = ("openai", "xtuner", "alpaca", "sharegpt")
META_FIELDS = ("task_type", "domain", "metadata", "answer_from", "human_verified", "copyright")
"""COIG-CQIA metadata kept in `Sample.meta` (exports drop it unless `--keep-meta`)."""


def row_to_sample(row: Any, *, line: int, system: str = "") -> Sample:
    """One COIG-CQIA row as a `qa` Sample; raises `InputError` saying what is wrong with the row.

    A non-empty `input` is appended to `instruction` after a newline (the Alpaca convention).
    The id hashes instruction + input, so the same question gets the same id in every run.
    """
    if not isinstance(row, dict):
        raise InputError(f"a row must be a JSON object, got {type(row).__name__}")
    for name in ("instruction", "output"):
        if name not in row:
            raise InputError(f"missing field `{name}`")
    for name in ("instruction", "input", "output"):
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            raise InputError(f"`{name}` must be a string, got {type(value).__name__}")
    instruction, extra, output = row["instruction"] or "", row.get("input") or "", row["output"] or ""
    if not instruction.strip():
        raise InputError("empty `instruction`")
    if not output.strip():
        raise InputError("empty `output`")
    question = f"{instruction}\n{extra}" if extra.strip() else instruction
    meta = {name: row[name] for name in META_FIELDS if name in row}
    meta["source_line"] = line
    return Sample.new(recipe=RECIPE, kind="qa", key={"instruction": instruction, "input": extra},
                      system=system, turns=[Turn(input=question, output=output)], meta=meta)


def read_cqia(path: Path, *, system: str = "") -> tuple[list[Sample], list[BadLine]]:
    """Read a COIG-CQIA JSONL file: the usable rows as Samples, every other row as a `BadLine` (sorted by line).

    A row asking what an earlier row asks (same instruction and input, so the same id) is a `BadLine`: kept,
    it could land in train and in test, and the test set would grade the model on a question it trained on.
    """
    records, bad = read_records(path)
    samples: list[Sample] = []
    first: dict[str, int] = {}
    for number, row in records:
        try:
            sample = row_to_sample(row, line=number, system=system)
        except InputError as exc:
            bad.append(BadLine(number, str(exc)))
            continue
        if sample.id in first:
            bad.append(BadLine(number, f"the same instruction and input as line {first[sample.id]}"))
            continue
        first[sample.id] = number
        samples.append(sample)
    return samples, sorted(bad, key=lambda b: b.line)


# ---------------------------------------------------------------- critic

JUDGE_SYSTEM = """你是严谨的中文问答数据审核员。数据来自“弱智吧”：问题常含双关、文字游戏、逻辑陷阱或违背常识的前提。
请判断回答是否：1. 识破了问题中的陷阱或幽默，没有被错误前提带偏；2. 事实与逻辑正确；3. 切题、完整、语言通顺。
先写出理由，再给出结论：accept 表示回答可以直接用于训练；revise 表示回答有错误或没识破陷阱，需要修改；reject 表示答非所问或内容有害。"""

JUDGE_PROMPT = """<question>{question}</question>
<answer>{answer}</answer>"""

Judge = Callable[[Sample], Awaitable[Verdict]]
"""An async callable that judges one sample; raises `JudgeError` (or an `LLMError`) when it cannot."""


class JudgeError(ZaoshuError):
    """The judge gave no usable verdict for one sample (e.g. its reply never matched the schema)."""


@dataclass
class CriticReport:
    """Outcome of `critic_pass`: how many samples were judged, which the judge disputes, which failed."""

    judged: int = 0
    flagged: list[tuple[Sample, Verdict]] = field(default_factory=list)
    errors: list[tuple[Sample, str]] = field(default_factory=list)


class LLMJudge:
    """A `Judge` that asks an `agents.llm` chat client for a `Verdict` in JSON mode (bounded re-asks).

    `await LLMJudge(client)(sample)` → Verdict; `await judge.aclose()` closes the client's connections.
    """

    def __init__(self, client: Any, *, attempts: int = 3):
        self.client = client
        self.attempts = attempts

    async def __call__(self, sample: Sample) -> Verdict:
        from agents.structured import ask_structured

        turn = sample.turns[-1]
        messages = [{"role": "system", "content": JUDGE_SYSTEM},
                    {"role": "user", "content": JUDGE_PROMPT.format(question=turn.input, answer=turn.output)}]
        result = await ask_structured(self.client, messages, Verdict, attempts=self.attempts, temperature=0.0)
        if not result.ok:
            raise JudgeError(f"no valid verdict after {result.attempts} attempts: {result.error}")
        return result.value

    async def aclose(self) -> None:
        await _aclose(self.client)


VERDICTS = "verdicts.jsonl"
"""Each verdict the judge gave, a JSON line as it arrives, in the output folder: what an interrupted
conversion paid for, reused by the next one into the same folder (`RememberedJudge`)."""


class RememberedJudge:
    """A `Judge` that first looks in `path` for this row's verdict by this `model` on this very answer — an
    earlier conversion into the same folder, finished or interrupted, paid for it — and appends every new
    verdict there as soon as it arrives (`written` counts them). A torn last line (a kill mid-write) is cut,
    so the next verdict starts a line of its own.
    """

    def __init__(self, judge: Judge, path: Path, model: str):
        self.judge, self.path, self.model = judge, Path(path), model
        self.known: dict[str, Verdict] = {}
        self.written = 0
        cut_torn_tail(self.path)
        if self.path.is_file():
            records, _torn = read_records(self.path)
            for _, record in records:
                try:
                    if record["model"] == model:
                        self.known[record["key"]] = Verdict.model_validate(record["verdict"])
                except (TypeError, KeyError, ValueError):
                    continue

    @staticmethod
    def key(sample: Sample) -> str:
        """The row's id and its answer: a verdict on an answer the user has since edited is not reused."""
        turn = sample.turns[-1]
        return f"{sample.id}:{hashlib.sha256(turn.output.encode('utf-8')).hexdigest()[:16]}"

    async def __call__(self, sample: Sample) -> Verdict:
        key = self.key(sample)
        if key in self.known:
            return self.known[key]
        verdict = await self.judge(sample)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = {"key": key, "line": sample.meta.get("source_line"), "model": self.model,
                "verdict": verdict.model_dump(mode="json")}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.written += 1
        return verdict

    async def aclose(self) -> None:
        await _aclose(self.judge)


async def critic_pass(samples: Sequence[Sample], judge: Judge, *, concurrency: int = 4) -> CriticReport:
    """Judge every sample (at most `concurrency` at once); record the verdict in `sample.meta["critic"]`.

    A sample whose decision is not `accept` is flagged — kept, not dropped — for a person to review.
    A judge failure on one sample is recorded in its meta and the report; an auth or unreachable
    endpoint (`LLMFatalError`) stops the pass.
    """
    from agents.llm_errors import LLMError, LLMFatalError

    gate = asyncio.Semaphore(concurrency)
    report = CriticReport()

    async def one(sample: Sample) -> None:
        async with gate:
            try:
                verdict = await judge(sample)
            except LLMFatalError:
                raise
            except (LLMError, JudgeError) as exc:
                log.warning("critic could not judge %s (line %s): %s", sample.id, sample.meta.get("source_line"), exc)
                sample.meta["critic"] = {"error": str(exc)}
                report.errors.append((sample, str(exc)))
                return
        report.judged += 1
        sample.meta["critic"] = verdict.model_dump(mode="json")
        if verdict.decision != "accept":
            report.flagged.append((sample, verdict))

    await asyncio.gather(*(one(s) for s in samples))
    order = {s.id: i for i, s in enumerate(samples)}
    report.flagged.sort(key=lambda pair: order[pair[0].id])
    report.errors.sort(key=lambda pair: order[pair[0].id])
    return report


# ---------------------------------------------------------------- the whole conversion


@dataclass
class ConvertReport:
    """What `convert` read and wrote."""

    rows: int
    bad: list[BadLine]
    counts: dict[str, int]
    files: dict[str, Path]
    critic: CriticReport | None = None
    removed: list[Path] = field(default_factory=list)


def convert(input_path: Path, out_dir: Path, *, fmt: str = "openai", split: float = 0.7, seed: int = 42,
            system: str = "", judge: Judge | None = None, concurrency: int = 4) -> ConvertReport:
    """Convert a COIG-CQIA file and write `out_dir/{train,test}.jsonl` in `fmt`, plus the run files.

    The split is `finetune.export.seeded_split` (sort by id, `random.Random(seed).shuffle`, cut at
    `floor(n × split + 0.5)`): the real 240 rows with 0.7 give 168 train / 72 test.
    Also written: `accepted.jsonl` (the Samples, so `zaoshu export` works on this folder),
    `stats.json` (counts and bad rows) and, with a judge, `flagged.jsonl` (the disputed answers).
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    samples, bad = read_cqia(Path(input_path), system=system)
    if bad:
        log.warning("%s: %d bad rows skipped (lines %s)", input_path, len(bad), ", ".join(str(b.line) for b in bad))
    if not samples:
        raise InputError(f"no usable rows in {input_path}: {_why_none(bad)}")
    train, test = seeded_split(samples, split, seed, key=lambda s: s.id)

    critic = asyncio.run(_judge_all(samples, judge, concurrency)) if judge else None

    out_dir = Path(out_dir)
    files = {"train": out_dir / "train.jsonl", "test": out_dir / "test.jsonl"}
    counts = {name: write_records(files[name], (to_format(s, fmt) for s in part))
              for name, part in (("train", train), ("test", test))}
    write_records(out_dir / "accepted.jsonl", (s.model_dump(mode="json") for s in samples))
    removed = []
    if critic is not None:
        files["flagged"] = out_dir / "flagged.jsonl"
        write_records(files["flagged"], (_flag_record(s, v) for s, v in critic.flagged))
    elif (out_dir / "flagged.jsonl").exists():  # an earlier --critic conversion's: these samples were not judged
        (out_dir / "flagged.jsonl").unlink()
        removed.append(out_dir / "flagged.jsonl")
    stats = {  # recipe and status as a generated run's, for `zaoshu runs list / show` (they said 'status ?')
        "recipe": RECIPE, "status": "completed", "input": str(input_path), "format": fmt, "split": split, "seed": seed,
        "rows": len(samples) + len(bad), "accepted": len(samples), **counts,
        "bad_rows": [{"line": b.line, "reason": b.reason} for b in bad],
    }
    if critic is not None:
        stats["critic"] = {"judged": critic.judged, "flagged": len(critic.flagged), "errors": len(critic.errors)}
    (out_dir / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return ConvertReport(rows=len(samples) + len(bad), bad=bad, counts=counts, files=files, critic=critic,
                         removed=removed)


def _why_none(bad: Sequence[BadLine], shown: int = 3) -> str:
    """Why a file gave no sample: it is empty, or its first bad rows with their reasons.

    >>> _why_none([])
    'the file has no rows'
    >>> _why_none([BadLine(n, "missing field `instruction`") for n in (1, 2, 3, 4)])
    '4 bad rows (line 1: missing field `instruction`; line 2: missing field `instruction`; line 3: missing field `instruction`; 1 more)'
    """
    if not bad:
        return "the file has no rows"
    more = f"; {len(bad) - shown} more" if len(bad) > shown else ""
    return f"{len(bad)} bad row{'s' if len(bad) > 1 else ''} ({'; '.join(map(str, bad[:shown]))}{more})"


async def _judge_all(samples: Sequence[Sample], judge: Judge, concurrency: int) -> CriticReport:
    try:
        return await critic_pass(samples, judge, concurrency=concurrency)
    finally:
        await _aclose(judge)


async def _aclose(thing: Any) -> None:
    """Close a judge or a client that holds connections (a plain callable holds none)."""
    close = getattr(thing, "aclose", None)
    if close is not None:
        await close()


def _flag_record(sample: Sample, verdict: Verdict) -> dict[str, Any]:
    turn = sample.turns[-1]
    return {"id": sample.id, "line": sample.meta.get("source_line"), "instruction": turn.input,
            "output": turn.output, **verdict.model_dump(mode="json")}
