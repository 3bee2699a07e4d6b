"""`zaoshu card RUN_DIR [--out DIR]`: a dataset card in the Hugging Face layout, with PNG plots.

    zaoshu card runs/wulewule/r1            → runs/wulewule/r1/DATASET_CARD.md + card_*.png

The card has the YAML header the Hub reads (language, license, size_categories, task_categories,
tags), then what a person wants to see before training on the data: how many samples of which
aspect / role / scene / style / emotion / area / tag, turns and lengths, why drafts were sent back
and samples rejected, the near-duplicate rate, how much of the knowledge base the answers drew on,
tokens and cost per role, and the models and prompt versions that made it. Every recipe run writes
one at the end (`recipes.base.execute`).

>>> size_category(999), size_category(1000), size_category(2_500_000)
('n<1K', '1K<n<10K', '1M<n<10M')
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.errors import output_folder
from agents.schemas import Sample
from graphs.ledger import BadLine

log = logging.getLogger(__name__)

CARD_FILE = "DATASET_CARD.md"
FIELDS = {"aspect": "方面", "role": "对象", "scene": "场景", "style": "风格", "emotion": "情绪", "area": "领域",
          "tag": "标签", "tags": "标签"}
_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]


def size_category(n: int) -> str:
    """The Hub's size_categories value for n records."""
    return next((label for limit, label in _SIZES if n < limit), "n>1T")


@dataclass
class RunFacts:
    """Everything the card reports, read from a run folder (no plotting here)."""

    name: str
    recipe: str
    accepted: list[Sample]
    rejected_codes: Counter = field(default_factory=Counter)
    revised_codes: Counter = field(default_factory=Counter)
    review: dict[str, int] = field(default_factory=dict)  # review.jsonl: samples edited / dropped / added
    pairs: int = 0  # the dpo pairs `zaoshu export --format dpo` writes: a sent-back draft against its accepted turn
    rejected: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    chunks_total: int | None = None
    chunks_used: int = 0
    coverage_note: str = ""
    bad_lines: list[str] = field(default_factory=list)

    def by_field(self) -> dict[str, list[tuple[str, int]]]:
        counts: dict[str, Counter] = {}
        for s in self.accepted:
            for name in FIELDS:
                value = s.meta.get(name)
                for v in value if isinstance(value, list) else [value]:
                    if v is not None and v != "":
                        counts.setdefault("tag" if name == "tags" else name, Counter())[str(v)] += 1
        return {name: c.most_common() for name, c in counts.items()}

    @property
    def duplicate_rate(self) -> float | None:
        done = len(self.accepted) + self.rejected
        return self.rejected_codes.get("DUPLICATE", 0) / done if done else None

    @property
    def coverage(self) -> float | None:
        return self.chunks_used / self.chunks_total if self.chunks_total else None


def _index_chunks(config: dict[str, Any], run_dir: Path) -> tuple[set[str] | None, str]:
    """Every chunk id of the run's knowledge index, or None with the reason it is unknown."""
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else config
    recipe = recipe if isinstance(recipe, dict) else {}
    if index_dir := recipe.get("index_dir"):
        db = Path(index_dir)
        db = db if db.is_absolute() else run_dir / db
    elif recipe.get("knowledge_folder"):  # the recipe's own index, beside its runs (graphs.session.build_knowledge)
        db = run_dir.parent / "index"
    else:
        return None, "the run's config names no knowledge index (index_dir)"
    db = db / "kb.sqlite"
    if not db.is_file():
        return None, f"the knowledge index {db.parent} is not there any more"
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return {f"{src}#{i}" for src, i in conn.execute("SELECT source, chunk_index FROM chunks")}, ""
    except sqlite3.Error as exc:
        return None, f"the knowledge index {db} could not be read ({exc})"


def read_facts(run_dir: Path) -> RunFacts:
    """Read accepted.jsonl, rejected.jsonl, stats.json and config.resolved.yaml of a run folder; the reviewer's
    decisions in review.jsonl apply, as `zaoshu export` applies them."""
    from finetune.export import read_records, read_run_samples
    from finetune.preference import preference_pairs
    from graphs.review_ledger import apply_review
    from graphs.rundir import read_run_stats
    from graphs.shards import run_ledgers

    run_dir = Path(run_dir)
    samples, bad = read_run_samples(run_dir, "card")  # every shard; a folder that is not a run is refused
    samples, review = apply_review(run_dir, samples, bad)
    stats = read_run_stats(run_dir)  # a sharded run's: its shards' summed now, one still running (or killed) included
    config = _read_yaml(run_dir / "config.resolved.yaml")
    facts = RunFacts(name=run_dir.resolve().name, recipe=stats.get("recipe") or (samples[0].recipe if samples else "?"),
                     accepted=samples, stats=stats, config=config, bad_lines=[_in_run(b, run_dir) for b in bad],
                     review=review)
    in_dataset = {s.id for s in samples}  # a rejected sample the reviewer took back is counted as a sample only
    for path in run_ledgers(run_dir, "rejected.jsonl"):
        records, bad_json = read_records(path)
        facts.bad_lines += [_in_run(b, run_dir) for b in bad_json]
        for _, record in records:
            if record.get("id") in in_dataset:
                continue
            facts.rejected += 1
            facts.rejected_codes.update(str(c) for c in (record.get("codes") or ["(none)"]))
    for s in samples:
        for draft in s.meta.get("drafts") or []:
            if isinstance(draft, dict) and draft.get("decision") != "accept":
                facts.revised_codes.update(str(c) for c in draft.get("codes") or [])
    facts.pairs = len(preference_pairs(samples))
    chunks, why = _index_chunks(config, run_dir)
    used = {src.get("chunk_id") for s in samples for src in s.meta.get("sources") or [] if isinstance(src, dict)}
    if chunks is None:
        facts.coverage_note = why
    else:
        facts.chunks_total, facts.chunks_used = len(chunks), len(used & chunks)
    return facts


def _in_run(bad: BadLine, run_dir: Path) -> str:
    """A line that could not be read, named by its file within the run, as `zaoshu export` names it:
    "shards/1-of-2/rejected.jsonl: line 3: invalid JSON (…)" (a card is published: no absolute path)."""
    path = bad.path
    if path is not None and path.is_relative_to(run_dir):
        path = path.relative_to(run_dir)
    return f"{path}: {bad}" if path is not None else str(bad)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (yaml.YAMLError, OSError) as exc:
        log.warning("%s unreadable: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------- the card


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


HUB_LICENSES = (
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1",
    "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "lppl-1.3c", "ms-pl",
    "mpl-2.0", "odc-by", "odbl", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl",
    "lgpl-lr", "deepfloyd-if-license", "llama2", "gemma", "unknown", "other")
"""The license ids of the Hub's docs (hub-docs, docs/hub/repositories-licenses.md): the Hub shows any other
id in a card's header as no license it knows. The Hub adds ids now and then, so another id is warned of,
not refused."""


def license_warning(license: str) -> str | None:
    """One line when `license` is not one of the Hub's ids, else None; it names the id the user likely meant
    when only case or punctuation is off, or the end is left out (Apache2 → apache-2.0), and the only one.

    >>> license_warning("apache-2.0") is None
    True
    >>> license_warning("Apache2")
    '--license Apache2 is not a license id the Hub knows: did you mean apache-2.0? (the card says Apache2; for a license of your own, say other and add a LICENSE file)'
    >>> license_warning("llama3")  # newer than this list, maybe: no guess at llama2
    '--license llama3 is not a license id the Hub knows (the card says llama3; for a license of your own, say other and add a LICENSE file)'
    """
    if license in HUB_LICENSES:
        return None

    def bare(text: str) -> str:
        return re.sub(r"[^a-z0-9+]", "", text.lower())

    near = [known for known in HUB_LICENSES if bare(known).startswith(bare(license))] if bare(license) else []
    return (f"--license {license} is not a license id the Hub knows"
            + (f": did you mean {near[0]}?" if len(near) == 1 else "")
            + f" (the card says {license}; for a license of your own, say other and add a LICENSE file)")


def _header(facts: RunFacts, license: str) -> str:
    kinds = {s.kind for s in facts.accepted}
    qa = any(s.meta.get("graph", s.kind) == "qa" for s in facts.accepted)  # a greeting is a qa-kind sample too
    tasks = ["text-generation"] + (["question-answering"] if qa else [])
    tags = ["zaoshu", "synthetic", "sft"] + (["dialogue"] if "dialogue" in kinds else [])
    if facts.pairs:  # drafts the critic sent back, and their accepted revisions: preference data
        tags += ["dpo", "kto"]
    if any(t.reasoning for s in facts.accepted for t in s.turns):
        tags.append("reasoning")
    meta = {"language": ["zh"], "license": license, "size_categories": [size_category(len(facts.accepted))],
            "task_categories": tasks, "tags": tags, "pretty_name": f"{facts.recipe} · {facts.name}"}
    return "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n"


def _provenance(facts: RunFacts) -> tuple[list[list[Any]], list[list[Any]]]:
    models: Counter = Counter()
    prompts: Counter = Counter()
    for s in facts.accepted:
        models.update(f"{role}|{name}" for role, name in (s.meta.get("models") or {}).items() if name)
        prompts.update(f"{step}|{version}" for step, version in (s.meta.get("prompts") or {}).items())
    return ([[*k.split("|", 1), n] for k, n in sorted(models.items())],
            [[*k.split("|", 1), n] for k, n in sorted(prompts.items())])


def render_card(facts: RunFacts, plots: Any, license: str = "other") -> str:
    """The Markdown text of the card (plots: `card_plots.Plots`, their files beside the card)."""
    n = len(facts.accepted)
    turns = sum(len(s.turns) for s in facts.accepted)
    with_reasoning = sum(1 for s in facts.accepted for t in s.turns if t.reasoning)
    img = {name: path.name for name, path in plots.files.items()}
    out = [_header(facts, license), f"# {facts.recipe} · {facts.name}\n",
           f"由 zaoshu（造数）生成并经过质检的中文微调数据：**{n}** 条样本、**{turns}** 轮对话"
           f"（{with_reasoning} 轮带推理过程）。运行状态：{facts.stats.get('status', '未知')}；"
           f"被拒绝 {facts.rejected} 条，全部记录在 `rejected.jsonl`。\n"]
    if any(facts.review.values()):
        out.append("人工审阅（`review.jsonl`，已计入上面的样本数）：修改 {edited} 条，审阅者拒绝 {dropped} 条，"
                   "从被拒绝的样本中收回 {added} 条。\n".format(**facts.review))
    out.append("## 组成\n")
    if "card_samples_by_field" in img:
        out.append(f"![按字段统计的样本数]({img['card_samples_by_field']})\n")
    for name, counts in facts.by_field().items():
        out.append(f"- {FIELDS.get(name, name)}（{name}）：{len(counts)} 个取值，" +
                   "、".join(f"{v} {c}" for v, c in counts[:8]) + ("…" if len(counts) > 8 else ""))
    if "card_lengths" in img:
        out.append(f"\n![轮数与长度]({img['card_lengths']})\n")
    out.append("## 质量\n")
    codes = (facts.rejected_codes + facts.revised_codes).most_common()
    if "card_rejections" in img:
        out.append(f"![按原因代码统计]({img['card_rejections']})\n")
    out.append(_table(["原因代码", "被拒绝的样本", "被退回的草稿"],
                      [[c, facts.rejected_codes.get(c, 0), facts.revised_codes.get(c, 0)] for c, _ in codes])
               if codes else "没有样本被拒绝，也没有草稿被退回。")
    dup = facts.duplicate_rate
    out.append(f"\n- 近似重复率（因 DUPLICATE 被拒绝的占已完成条目的比例）：{'未知' if dup is None else f'{dup:.1%}'}")
    if facts.coverage is None:
        out.append(f"- 知识覆盖率：未知（{facts.coverage_note}）")
    else:
        out.append(f"- 知识覆盖率：样本引用了知识库 {facts.chunks_total} 个片段中的 {facts.chunks_used} 个"
                   f"（{facts.coverage:.1%}）")
    out.append(f"- 退回后改好的草稿：{facts.pairs} 份" + ("，可导出为偏好数据（`zaoshu export RUN --format dpo|kto|xtuner-dpo`）"
                                                    if facts.pairs else "：没有可导出的偏好数据"))
    if "card_quality" in img:
        out.append(f"\n![近似重复率与知识覆盖率]({img['card_quality']})\n")
    out.append("## 成本\n")
    roles = facts.stats.get("usage_by_role") or {}
    currency = facts.stats.get("currency", "")
    if "card_usage" in img:
        out.append(f"![各角色的 token 与费用]({img['card_usage']})\n")
    out.append(_table(["角色", "调用", "输入 token", "输出 token", "费用"],
                      [[r, u.get("calls", 0), u.get("input_tokens", 0), u.get("output_tokens", 0),
                        f"{currency}{u.get('cost', 0):.4f}"] for r, u in roles.items()])
               if roles else "stats.json 没有记录各角色的用量。")
    models, prompts = _provenance(facts)
    out.append("\n## 模型与提示词版本\n")
    out.append(_table(["角色", "模型", "样本数"], models) if models else "样本没有记录模型。")
    out.append("")
    out.append(_table(["步骤", "提示词版本", "样本数"], prompts) if prompts else "样本没有记录提示词版本。")
    out.append("\n## 使用\n")
    out.append("```bash\nzaoshu export RUN --format xtuner --split 0.9      # XTuner 对话格式\n"
               "zaoshu export RUN --format sharegpt --with-reasoning  # LLaMA-Factory，带 <think> 推理\n"
               + ("zaoshu export RUN --format dpo --skip-artifacts     # 偏好数据对\n" if facts.pairs else "")
               + "```\n")
    problems = [f"{name}: {m}" for name, ms in plots.missing_glyphs.items() for m in ms[:3]]
    if problems or facts.bad_lines or not plots.font:
        out.append("## 注意\n")
        if not plots.font:
            out.append("- 没有找到中文字体：图中的中文可能显示为方框（安装 mplfonts 或 fonts-noto-cjk）。")
        out += [f"- 缺字：{p}" for p in problems]
        out += [f"- 无法读取的行：{b}" for b in facts.bad_lines[:10]]
    return "\n".join(out) + "\n"


@dataclass
class WrittenCard:
    """What `write_card` wrote, and the lines of the run it could not read (the card lists them too)."""

    path: Path
    plots: list[Path]
    bad_lines: list[str]


def write_card(run_dir: Path, out: Path | None = None, license: str = "other") -> WrittenCard:
    """Write `DATASET_CARD.md` and its `card_*.png` plots into `out` (default: the run folder)."""
    from finetune import card_plots

    facts = read_facts(Path(run_dir))
    out_dir = output_folder(Path(out)) if out is not None else Path(run_dir)
    plots = card_plots.Plots(font=str(card_plots.cjk_font() or ""))
    turns = [len(s.turns) for s in facts.accepted]
    inputs = [len(t.input) for s in facts.accepted for t in s.turns]
    outputs = [len(t.output) for s in facts.accepted for t in s.turns]
    card_plots.plot_counts(plots, out_dir, facts.by_field(), FIELDS)
    card_plots.plot_histograms(plots, out_dir, turns, inputs, outputs)
    card_plots.plot_rejections(plots, out_dir, (facts.rejected_codes + facts.revised_codes).most_common())
    card_plots.plot_quality(plots, out_dir, [("近似重复率", facts.duplicate_rate), ("知识覆盖率", facts.coverage)])
    card_plots.plot_usage(plots, out_dir, facts.stats.get("usage_by_role") or {}, facts.stats.get("currency", ""))
    for name in set(card_plots.PLOT_NAMES) - set(plots.files):  # an earlier card's, in this folder
        (out_dir / f"{name}.png").unlink(missing_ok=True)
    path = out_dir / CARD_FILE
    path.write_text(render_card(facts, plots, license), encoding="utf-8")
    log.info("dataset card: %s (%d plots)", path, len(plots.files))
    return WrittenCard(path, sorted(plots.files.values()), facts.bad_lines)
