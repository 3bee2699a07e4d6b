"""Before/after evaluation: answer the test split with the base and the fine-tuned model, judge both, tabulate.

Answers come from a local model (`LocalAnswerer`: transformers in the XTuner environment, same prompt
template as training) or from any OpenAI-compatible server serving the model (`EndpointAnswerer`).
Scores come from an injected `judge(question, reference, answer) -> float in [0, 1]`; the CLI's default
is `llm_judge`, the critic's LLM through `agents.llm`.

>>> import asyncio
>>> items = [EvalItem(question="1+1?", reference="2")]
>>> async def judge(q, ref, ans): return 1.0 if ans == ref else 0.0
>>> report = asyncio.run(score(items, ["3"], ["2"], judge))
>>> report.summary["base_mean"], report.summary["tuned_mean"], report.summary["tuned_wins"]
(0.0, 1.0, 1)
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agents.errors import InputError
from finetune import data as data_io

Judge = Callable[[str, str, str], Awaitable[float]]
SCRIPT = Path(__file__).resolve().parent / "xtuner_generate.py"


class EvalItem(BaseModel):
    question: str
    reference: str = ""
    system: str = ""


class EvalRow(EvalItem):
    base_answer: str
    tuned_answer: str
    base_score: float
    tuned_score: float


class EvalReport(BaseModel):
    rows: list[EvalRow]
    summary: dict[str, Any] = Field(default_factory=dict)

    def markdown(self, base_name: str = "base", tuned_name: str = "fine-tuned") -> str:
        """The ruozhiba tutorial's before/after table, with scores and a summary line."""
        s = self.summary
        lines = [
            f"| # | 问题 | {base_name} | 得分 | {tuned_name} | 得分 |",
            "|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(self.rows, start=1):
            lines.append(f"| {i} | {_cell(r.question)} | {_cell(r.base_answer)} | {r.base_score:.2f} | "
                         f"{_cell(r.tuned_answer)} | {r.tuned_score:.2f} |")
        lines += ["", f"**平均分** {base_name} {s['base_mean']:.3f} → {tuned_name} {s['tuned_mean']:.3f} "
                      f"(Δ {s['delta']:+.3f}); 胜/平/负 {s['tuned_wins']}/{s['ties']}/{s['base_wins']}，共 {s['n']} 题", ""]
        return "\n".join(lines)


def _cell(text: str, limit: int = 200) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_items(test: Path, limit: int | None = None) -> list[EvalItem]:
    """First turn of each test record: question, reference answer, system prompt."""
    items = [
        EvalItem(question=q, reference=data_io.first(r, "output"), system=data_io.first(r, "system"))
        for r in data_io.read_chat(test).records
        if (q := data_io.first(r, "input").strip())
    ]
    return items[:limit] if limit else items


class Answerer(Protocol):
    async def answer(self, items: list[EvalItem]) -> list[str]: ...


class LocalAnswerer:
    """Greedy answers from a local model (optionally base + adapter) through the XTuner environment."""

    def __init__(self, python: Path, model: Path, template: str, *, adapter: Path | None = None,
                 max_new_tokens: int = 256, timeout: float = 3600):
        self.python, self.model, self.template, self.adapter = python, model, template, adapter
        self.max_new_tokens, self.timeout = max_new_tokens, timeout

    async def answer(self, items: list[EvalItem]) -> list[str]:
        return await asyncio.to_thread(self._answer, items)

    def _answer(self, items: list[EvalItem]) -> list[str]:
        with tempfile.TemporaryDirectory(prefix="zaoshu-eval-") as tmp:
            inp, out = Path(tmp) / "in.json", Path(tmp) / "out.json"
            inp.write_text(json.dumps([{"system": i.system, "input": i.question} for i in items], ensure_ascii=False),
                           encoding="utf-8")
            cmd = [str(self.python), str(SCRIPT), str(self.model), self.template, str(inp), str(out),
                   "--max-new-tokens", str(self.max_new_tokens)]
            if self.adapter:
                cmd += ["--adapter", str(self.adapter)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout, check=False)
            if proc.returncode != 0 or not out.is_file():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise InputError(f"could not generate with {self.model}: {tail[0]}")
            return json.loads(out.read_text(encoding="utf-8"))


class EndpointAnswerer:
    """Answers from a model served by an OpenAI-compatible server (vLLM, LMDeploy, Ollama, …)."""

    def __init__(self, client: Any, max_new_tokens: int = 256):
        self.client, self.max_new_tokens = client, max_new_tokens

    async def answer(self, items: list[EvalItem]) -> list[str]:
        async def one(item: EvalItem) -> str:
            messages = ([{"role": "system", "content": item.system}] if item.system else [])
            messages.append({"role": "user", "content": item.question})
            reply = await self.client.chat(messages, temperature=0.0, max_tokens=self.max_new_tokens)
            return reply.text.strip()

        return list(await asyncio.gather(*(one(i) for i in items)))


async def score(items: list[EvalItem], base_answers: list[str], tuned_answers: list[str], judge: Judge,
                concurrency: int = 8) -> EvalReport:
    """Judge every answer; summary has both means, their difference and win/tie/loss counts."""
    if not (len(items) == len(base_answers) == len(tuned_answers)):
        raise ValueError("one base and one tuned answer per item")
    gate = asyncio.Semaphore(concurrency)

    async def judged(item: EvalItem, answer: str) -> float:
        async with gate:
            return min(1.0, max(0.0, float(await judge(item.question, item.reference, answer))))

    scores = await asyncio.gather(*(judged(i, a) for i, a in zip(items, base_answers)),
                                  *(judged(i, a) for i, a in zip(items, tuned_answers)))
    n = len(items)
    rows = [EvalRow(**item.model_dump(), base_answer=b, tuned_answer=t, base_score=scores[k], tuned_score=scores[n + k])
            for k, (item, b, t) in enumerate(zip(items, base_answers, tuned_answers))]
    base_mean = sum(r.base_score for r in rows) / n if n else 0.0
    tuned_mean = sum(r.tuned_score for r in rows) / n if n else 0.0
    summary = {
        "n": n, "base_mean": round(base_mean, 4), "tuned_mean": round(tuned_mean, 4),
        "delta": round(tuned_mean - base_mean, 4),
        "tuned_wins": sum(r.tuned_score > r.base_score for r in rows),
        "base_wins": sum(r.base_score > r.tuned_score for r in rows),
        "ties": sum(r.base_score == r.tuned_score for r in rows),
    }
    return EvalReport(rows=rows, summary=summary)


async def run_eval(items: list[EvalItem], base: Answerer, tuned: Answerer, judge: Judge) -> EvalReport:
    """Answer with both models (one after the other: two local models need not fit at once), then score."""
    if not items:
        raise InputError("the test split has no questions to evaluate")
    base_answers = await base.answer(items)
    tuned_answers = await tuned.answer(items)
    return await score(items, base_answers, tuned_answers, judge)


def write_report(report: EvalReport, out_dir: Path, **names: str) -> tuple[Path, Path]:
    """Write `eval.md` and `eval.json` into `out_dir`; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "eval.md", out_dir / "eval.json"
    md.write_text(report.markdown(**names), encoding="utf-8")
    js.write_text(json.dumps(report.model_dump(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return md, js
