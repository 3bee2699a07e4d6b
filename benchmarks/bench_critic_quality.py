"""How well the rule layer catches what a text check can decide: `python -m benchmarks.bench_critic_quality`.

Runs every rule over the labelled corpus benchmarks/critic_corpus.jsonl (written by
`python -m benchmarks.critic_corpus_cases`: greetings, QA answers and counselling dialogues from how
small chat models fail, plus clean controls, many of them near-misses) with the context a recipe
would give the critic (the tianji styles' length and emoji limits, the prompt, the few-shots, the
feedback just sent, the knowledge base's file names, finish_reason). Reports recall per class
(a defect case counts as caught when its class is among the codes found) and false rejects
(clean controls with any code). Prints a markdown section and writes benchmarks/results/critic_quality.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

from agents.rules import RuleContext, check_sample
from agents.schemas import Sample, Turn

HERE = Path(__file__).parent
CORPUS = HERE / "critic_corpus.jsonl"
RESULTS = HERE / "results" / "critic_quality.json"
TIANJI = HERE.parent / "recipes" / "tianji" / "tianji.yaml"
GOAL_RECALL, GOAL_FALSE_REJECTS = 0.95, 0.03
KIND = {"greeting": "greeting", "answer": "answer", "dialogue": "dialogue_turn"}


def style_limits() -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """The tianji recipe's per-style (min, max) characters and emoji ranges, as the critic uses them."""
    styles = yaml.safe_load(TIANJI.read_text(encoding="utf-8"))["styles"]
    lengths = {name: (int(cfg["min_chars"]), int(cfg["max_chars"])) for name, cfg in styles.items()}
    emoji = {name: tuple(cfg["emoji"]) for name, cfg in styles.items() if cfg.get("emoji")}
    return lengths, emoji  # type: ignore[return-value]


def case_sample(case: dict, lengths: dict, emoji: dict) -> tuple[Sample, RuleContext]:
    c = case["context"]
    kind = KIND[case["kind"]]
    ctx = RuleContext(
        kind=kind, role=c.get("role"), scene=c.get("scene"), style=c.get("style") if kind == "greeting" else None,
        length_limits=lengths, emoji_range=emoji, prompt=c.get("prompt"), few_shots=c.get("few_shots") or (),
        feedback=c.get("feedback"), knowledge_files=frozenset(c.get("knowledge_files") or ()),
        finish_reason=c.get("finish_reason"),
    )  # fmt: skip
    if case["kind"] == "dialogue":
        turns = [Turn(**t) for t in case["turns"]]
    elif case["kind"] == "answer":
        turns = [Turn(input=c["question"], output=case["output"])]
    else:
        suffix = "" if c.get("style") in (None, "正常") else f"，{c['style']}风格"
        turns = [Turn(input=f"帮我写一段给{c['role']}的{c['scene']}祝福{suffix}", output=case["output"])]
    return Sample(id=case["id"], recipe="corpus", kind="qa", turns=turns), ctx


def evaluate(cases: list[dict]) -> dict:
    lengths, emoji = style_limits()
    per_class: dict[str, dict] = defaultdict(lambda: {"cases": 0, "caught": 0, "missed": []})
    clean = {"cases": 0, "false_rejects": []}
    extra: Counter[str] = Counter()
    start = time.perf_counter()
    for case in cases:
        sample, ctx = case_sample(case, lengths, emoji)
        found = {h.code.value for h in check_sample(sample, ctx)}
        if not case["expected"]:
            clean["cases"] += 1
            if found:
                clean["false_rejects"].append({"id": case["id"], "codes": sorted(found)})
            continue
        for code in case["expected"]:
            row = per_class[code]
            row["cases"] += 1
            if code in found:
                row["caught"] += 1
            else:
                row["missed"].append({"id": case["id"], "found": sorted(found)})
        extra.update(found - set(case["expected"]))
    seconds = time.perf_counter() - start
    for row in per_class.values():
        row["recall"] = round(row["caught"] / row["cases"], 3)
    defects = sum(r["cases"] for r in per_class.values())
    caught = sum(r["caught"] for r in per_class.values())
    clean["rate"] = round(len(clean["false_rejects"]) / max(1, clean["cases"]), 3)
    return {"cases": len(cases), "defect_labels": defects, "caught": caught, "recall": round(caught / max(1, defects), 3),
            "min_class_recall": min(r["recall"] for r in per_class.values()), "classes": dict(sorted(per_class.items())),
            "clean": clean, "extra_codes_on_defects": dict(extra.most_common()), "seconds": round(seconds, 3)}


def report(result: dict) -> str:
    lines = ["## Critic quality: the rule layer on a labelled corpus", "",
             f"`python -m benchmarks.bench_critic_quality` over `benchmarks/critic_corpus.jsonl`: {result['cases']} cases "
             f"({result['defect_labels']} defect labels over {len(result['classes'])} classes, {result['clean']['cases']} "
             "clean controls, many near-misses: 您 to a neighbour, loanwords such as offer/KPI/Boss/PS5/Steam, balanced "
             "quotes, 月亮 in a 中秋 greeting, counsellors who reflect the help-seeker's words briefly), written from how "
             "small chat models fail (`benchmarks/critic_corpus_cases.py`). The first 406 cases were written before the "
             "rules were tuned; round 2 (130 cases, new phrasings) after that, where the rules first caught 67 % of the "
             "defects, so the lexicons were widened; round 3 (62 longer, more natural cases) then caught 81 % and round 4 "
             "(41 cases) 82 %, both with no false reject, before their misses were fixed. Every case here has been seen "
             "while tuning: the independent held-out "
             f"set, kept apart, is the real test. Goal: recall ≥ {GOAL_RECALL} per class, false rejects ≤ {GOAL_FALSE_REJECTS}.",
             "",
             "| class | cases | caught | recall |", "|---|---|---|---|"]
    for code, row in result["classes"].items():
        lines.append(f"| {code} | {row['cases']} | {row['caught']} | {row['recall']:.2f} |")
    clean = result["clean"]
    lines += [f"| **all defect labels** | {result['defect_labels']} | {result['caught']} | **{result['recall']:.3f}** |", "",
              f"False rejects on clean controls: **{len(clean['false_rejects'])} / {clean['cases']} = {clean['rate']:.3f}**; "
              f"lowest class recall {result['min_class_recall']:.2f}; the whole corpus took {result['seconds']} s."]
    goal = result["min_class_recall"] >= GOAL_RECALL and clean["rate"] <= GOAL_FALSE_REJECTS
    lines.append(f"Goal {'met' if goal else 'NOT met'}.")
    missed = [(code, m) for code, row in result["classes"].items() for m in row["missed"]]
    if missed:
        lines += ["", "Missed: " + "; ".join(f"{m['id']} ({code})" for code, m in missed) + "."]
    if clean["false_rejects"]:
        lines += ["", "False rejects: " + "; ".join(f"{f['id']} ({', '.join(f['codes'])})" for f in clean["false_rejects"]) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="a JSONL corpus in the same format")
    parser.add_argument("--quick", action="store_true", help="the same run (it takes about a second)")
    args = parser.parse_args()
    cases = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    result = evaluate(cases)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(report(result))
    print(f"\nwritten: {RESULTS}")


if __name__ == "__main__":
    main()
