"""Rule-critic throughput and dedup at scale: `python -m benchmarks.bench_critic [--quick]`.

Generates realistic Tianji-style greetings (28 roles × 13 scenes × 3 styles, ~25 % with a seeded
defect) and EmoLLM-style dialogues, runs the rule layer over them, then pushes 100k answers
(with 5 % re-punctuated exact copies and 5 % lightly edited near copies) through the Deduper.
Prints a markdown section and writes benchmarks/results/critic.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import resource
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from agents.dedup import Deduper
from agents.rules import RULES, RuleContext, TIANJI_ROLES, check_sample
from agents.schemas import Sample, Turn

RESULTS = Path(__file__).parent / "results" / "critic.json"

SCENES = ["生日", "春节", "元宵节", "端午节", "中秋节", "重阳节", "除夕", "腊八节", "乔迁新居", "家庭和睦", "发财赚钱",
          "工作升职", "康复"]  # fmt: skip
STYLES = ["正常", "严肃", "小红书"]
OPENERS = ["{role}，{scene}快乐！", "值此{scene}之际，", "亲爱的{role}，", "{scene}到啦，", "在这个{scene}里，"]
CLAUSES = [
    "祝{you}身体健康，万事如意", "愿{you}平安喜乐，岁岁无忧", "祝{you}工作顺利，步步高升", "愿{you}笑口常开，好运连连",
    "感谢{you}一直以来的关心和照顾", "愿{you}的每一天都充满阳光", "祝{you}阖家幸福，团团圆圆", "愿所有的美好都如期而至",
    "希望新的一年{you}被温柔以待", "祝{you}心想事成，前程似锦", "愿{you}所求皆如愿，所行皆坦途", "祝{you}福如东海，寿比南山",
    "愿{you}眼里有光，心中有爱", "祝{you}财源广进，生意兴隆", "愿{you}早日康复，重新出发", "祝{you}新居温馨，生活美满",
]  # fmt: skip
EMOJI = ["🎉", "🎂", "✨", "🌕", "🧧", "💪", "🏠", "❤️"]
DEFECTS = [
    lambda t: "！啦~" + t, lambda t: "以下是为您准备的祝福：" + t, lambda t: t.replace("，", ",", 1),
    lambda t: t + "！！！", lambda t: "亲爱的{name}，" + t, lambda t: "作为一个AI，" + t, lambda t: "# 祝福\n" + t,
    lambda t: t + " Happy new year!", lambda t: "生日快乐",
]  # fmt: skip
TURN_OUT = [
    "我能理解你现在的感受，这种焦虑其实很常见，我们可以一起慢慢梳理。", "你愿意具体说说最近发生了什么吗？",
    "先试着做几次深呼吸，让身体放松下来，再看看脑子里在想什么。", "给自己设定小一点的目标，每完成一个就肯定一下自己。",
    "如果这种情况持续影响睡眠，也可以考虑找学校的心理老师聊一聊。", "你已经做得很好了，愿意面对它本身就需要勇气。",
]  # fmt: skip
TURN_IN = ["我最近总是很焦虑，晚上睡不着。", "主要是学习上的压力，总觉得比不上别人。", "我试过，但是没什么用。",
           "那我应该怎么做呢？", "谢谢你，我会试试的。"]  # fmt: skip


def greeting(rng: random.Random, role: str, scene: str, style: str) -> str:
    you = "您" if RuleContext(role=role).relation == "elder" else "你"
    parts = [rng.choice(OPENERS)] + [c + "。" for c in rng.sample(CLAUSES, rng.randint(2, 4 if style == "严肃" else 3))]
    text = "".join(parts).format(role=role, scene=scene, you=you).replace("，。", "。")
    if style == "小红书":
        text = text[:-1] + rng.choice(EMOJI) + "～"
    if rng.random() < 0.25:
        text = rng.choice(DEFECTS)(text)
    return text


def make_samples(n: int, seed: int = 7) -> list[tuple[Sample, RuleContext]]:
    """n samples, 80 % greetings and 20 % 4-turn dialogues, each with the context a recipe would build."""
    rng = random.Random(seed)
    contexts: dict[tuple, RuleContext] = {}
    out = []
    roles = list(TIANJI_ROLES)
    for i in range(n):
        if i % 5:
            role, scene, style = rng.choice(roles), rng.choice(SCENES), rng.choice(STYLES)
            key = (role, scene, style)
            if key not in contexts:
                contexts[key] = RuleContext(kind="greeting", role=role, scene=scene, style=style)
            q = f"祝{role}{scene},{style}风格"
            s = Sample(id=str(i), recipe="tianji", kind="qa", turns=[Turn(input=q, output=greeting(rng, *key))])
            out.append((s, contexts[key]))
        else:
            outputs = rng.sample(TURN_OUT, 4)
            if rng.random() < 0.1:
                outputs[3] = outputs[1]  # a looping dialogue
            turns = [Turn(input=TURN_IN[t], output=outputs[t]) for t in range(4)]
            ctx = contexts.setdefault(("dialogue",), RuleContext(kind="dialogue_turn"))
            out.append((Sample(id=str(i), recipe="emollm", kind="dialogue", turns=turns), ctx))
    return out


def bench_rules(n: int) -> dict:
    samples = make_samples(n)
    turns = sum(len(s.turns) for s, _ in samples)
    codes: Counter[str] = Counter()
    check_sample(*samples[0])  # warm up
    start = time.perf_counter()
    for s, ctx in samples:
        for h in check_sample(s, ctx):
            codes[h.code.value] += 1
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(2000):
        RuleContext(kind="greeting", role="爷爷", scene="重阳节", style="正常")
    ctx_us = (time.perf_counter() - start) / 2000 * 1e6
    flagged = sum(1 for s, ctx in samples[:5000] if check_sample(s, ctx))
    return {
        "samples": n, "turns": turns, "rules": len(RULES), "seconds": round(elapsed, 3),
        "samples_per_s": round(n / elapsed), "turns_per_s": round(turns / elapsed),
        "us_per_sample": round(elapsed / n * 1e6, 1), "context_build_us": round(ctx_us, 1),
        "flagged_share_first_5000": round(flagged / min(n, 5000), 3), "hits_by_code": dict(codes.most_common()),
    }  # fmt: skip


def make_answers(n: int, seed: int = 11) -> tuple[list[str], int, int]:
    """n texts: mostly distinct, 5 % exact copies (re-punctuated), 5 % near copies (one edit)."""
    rng = random.Random(seed)
    roles = list(TIANJI_ROLES)
    texts: list[str] = []
    n_exact = n_near = 0
    for i in range(n):
        r = rng.random()
        if texts and r < 0.05:
            texts.append(rng.choice(texts).replace("，", ",").replace("。", "！") + " ")
            n_exact += 1
        elif texts and r < 0.10:
            src = rng.choice(texts)
            k = rng.randrange(len(src))
            texts.append(src[:k] + rng.choice("真很也都还") + src[k:])
            n_near += 1
        else:
            role, scene = rng.choice(roles), rng.choice(SCENES)
            body = "，".join(c.format(you="你") for c in rng.sample(CLAUSES, 4))
            texts.append(f"{role}，{scene}快乐！{body}。第{i}号。")
    return texts, n_exact, n_near


def _run_dedup(texts: list[str]) -> tuple[Counter, Deduper]:
    d = Deduper()
    kinds: Counter[str] = Counter()
    for i, t in enumerate(texts):
        found = d.check_and_add(f"s{i:07d}", t, namespace="answer")
        kinds[found.kind if found else "kept"] += 1
    return kinds, d


def bench_dedup(n: int, trace: bool) -> dict:
    texts, n_exact, n_near = make_answers(n)
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    kinds, d = _run_dedup(texts)
    elapsed = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "texts": n, "avg_chars": round(sum(map(len, texts)) / n, 1), "injected_exact": n_exact,
        "injected_near": n_near, "found": dict(kinds), "seconds": round(elapsed, 2),
        "texts_per_s": round(n / elapsed), "maxrss_growth_mb": round((rss_after - rss_before) / 1024, 1),
        "lsh_bands_rows": [d._indexes["answer"].lsh.b, d._indexes["answer"].lsh.r],
    }  # fmt: skip
    del d
    gc.collect()
    if trace:
        tracemalloc.start()
        _, d = _run_dedup(texts)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result |= {
            "traced_retained_mb": round(current / 1e6, 1), "traced_peak_mb": round(peak / 1e6, 1),
            "bytes_per_kept_text": round(current / d.size("answer")),
        }  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000, help="samples for the rule critic")
    parser.add_argument("--texts", type=int, default=100_000, help="texts for dedup")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc pass (it is ~8x slower)")
    parser.add_argument("--quick", action="store_true", help="2k samples, 10k texts")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.texts = 2_000, 10_000
    rules = bench_rules(args.samples)
    dedup = bench_dedup(args.texts, trace=not args.no_trace)
    env = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"env": env, "rules": rules, "dedup": dedup}, ensure_ascii=False, indent=2) + "\n")
    print("## Critic rule layer and dedup\n")
    print(f"Rule critic: {rules['samples']:,} samples ({rules['turns']:,} turns, {rules['rules']} rules) in "
          f"{rules['seconds']} s = **{rules['samples_per_s']:,} samples/s** ({rules['us_per_sample']} µs/sample, "
          f"one core); building a RuleContext costs {rules['context_build_us']} µs.")  # fmt: skip
    print(f"Flagged share (first 5,000): {rules['flagged_share_first_5000']:.1%}; "
          f"hits by code: {rules['hits_by_code']}\n")  # fmt: skip
    print("| dedup | value |\n|---|---|")
    rows = {
        "texts (avg chars)": f"{dedup['texts']:,} ({dedup['avg_chars']})",
        "injected exact / near": f"{dedup['injected_exact']:,} / {dedup['injected_near']:,}",
        "found exact / near / kept": f"{dedup['found'].get('exact', 0):,} / {dedup['found'].get('near', 0):,} / "
        f"{dedup['found'].get('kept', 0):,}",
        "time": f"{dedup['seconds']} s ({dedup['texts_per_s']:,} texts/s)",
        "max RSS growth": f"{dedup['maxrss_growth_mb']} MB",
        "LSH bands × rows": "{} × {}".format(*dedup["lsh_bands_rows"]),
    }
    if "traced_retained_mb" in dedup:
        rows["retained / peak (tracemalloc)"] = f"{dedup['traced_retained_mb']} / {dedup['traced_peak_mb']} MB"
        rows["bytes per kept text"] = f"{dedup['bytes_per_kept_text']:,}"
    for k, v in rows.items():
        print(f"| {k} | {v} |")
    print(f"\nwritten: {RESULTS}")


if __name__ == "__main__":
    main()
