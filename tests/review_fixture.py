"""Run folders for the review page: a small hand-written one (tests) and a synthetic one of any size
(benchmarks/bench_review.py). Records have the shapes graphs/runner.py writes."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

ASPECTS = ["主要角色", "战斗系统", "剧情", "地图探索", "装备与法宝", "妖怪与BOSS"]
SOURCES = ["wulewule/角色.md", "wulewule/剧情.md", "wulewule/战斗.md", "xiyouji/第001回.txt", "xiyouji/第014回.txt"]
CODES = ["TOO_SHORT", "PREAMBLE", "UNGROUNDED", "REFUSAL", "MIXED_PUNCTUATION", "DUPLICATE"]


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")


def _qa(i: int, question: str, answer: str, aspect: str, sources: list[tuple[str, float]], **meta: Any) -> dict:
    return {
        "id": f"qa{i:04d}", "recipe": "wulewule", "kind": "qa", "system": "你是悟了悟了，黑神话悟空的游戏助手。",
        "turns": [{"input": question, "output": answer}],
        "meta": {"graph": "qa", "aspect": aspect, "retrieval": "kb",
                 "sources": [{"turn": 0, "source": s, "chunk_id": f"{s}#{k}", "score": sc,
                              "scores": {"bm25": round(sc * 0.8, 3), "dense": round(sc * 0.6, 3)}}
                             for k, (s, sc) in enumerate(sources)],
                 "verdict": {"reasons": ["答案有依据，和检索到的片段一致。"], "decision": "accept", "reason_codes": [],
                             "scores": {"grounding": 0.9, "relevance": 0.95}},
                 "attempts": 1, **meta},
    }


def small_run(path: Path) -> Path:
    """A run folder a person can check by eye: 24 accepted (one a 3-turn dialogue), 4 rejected, 1 failed."""
    path.mkdir(parents=True, exist_ok=True)
    accepted = [_qa(i, f"第{i}个问题：天命人在{ASPECTS[i % 6]}里要注意什么？",
                    f"天命人在{ASPECTS[i % 6]}中要留意体力与法力的分配，这是第{i}条回答。", ASPECTS[i % 6],
                    [(SOURCES[i % 5], 0.91), (SOURCES[(i + 1) % 5], 0.42)], tags=["游戏"] if i % 2 else ["剧情", "游戏"])
                for i in range(1, 24)]
    accepted.insert(0, _qa(0, "黑熊精在哪一回出场？", "黑熊精出现在第二回「黑风山」，守着观音禅院后山。", "妖怪与BOSS",
                           [("xiyouji/第016回.txt", 0.88), ("wulewule/角色.md", 0.51)], tags=["剧情"]))
    accepted.append({
        "id": "dlg0001", "recipe": "emollm", "kind": "dialogue", "system": "你是一位温和的心理咨询师。",
        "turns": [{"input": "最近总是睡不着，很焦虑。", "output": "听起来这段时间你很辛苦。能说说是什么让你焦虑吗？"},
                  {"input": "工作上的项目总是出问题。", "output": "项目反复出问题，会让人觉得失控。你最担心的是哪一部分？"},
                  {"input": "担心被领导批评。", "output": "害怕被批评是很常见的感受。我们可以一起想想怎样和领导沟通。"}],
        "meta": {"graph": "dialogue", "emotion": "焦虑", "area": "工作", "attempts": 3,
                 "verdict": {"reasons": ["共情充分，没有说教。"], "decision": "accept", "reason_codes": [], "scores": {}}},
    })
    preamble = "以下是为您准备的回答：第三回在黑风山。"
    rejected = [
        {"id": "rej0001", "key": {"aspect": "剧情", "n": 1}, "codes": ["PREAMBLE"], "attempts": 3, "raw": None,
         "verdict": {"reasons": ["开头是套话"], "decision": "reject", "reason_codes": ["PREAMBLE"], "scores": {}},
         "sample": {"id": "rej0001", "recipe": "wulewule", "kind": "qa", "system": "",
                    "turns": [{"input": "黑风山在第几回？", "output": preamble}],
                    "meta": {"aspect": "剧情", "reject_codes": ["PREAMBLE"],
                             "rule_hits": [{"rule": "preamble", "code": "PREAMBLE", "message": "删掉套话",
                                            "turn": 0, "span": [0, 10], "text": preamble[:10]}],
                             "sources": [{"turn": 0, "source": "xiyouji/第016回.txt", "chunk_id": "c16#2",
                                          "score": 0.77, "scores": {"bm25": 0.7}}]}}},
        {"id": "rej0002", "key": {"aspect": "战斗系统", "n": 2}, "codes": ["UNGROUNDED"], "attempts": 2, "raw": None,
         "verdict": {"reasons": ["知识库里没有「定风珠」的数值"], "decision": "reject", "reason_codes": ["UNGROUNDED"],
                     "scores": {"grounding": 0.1}},
         "sample": {"id": "rej0002", "recipe": "wulewule", "kind": "qa", "system": "",
                    "turns": [{"input": "定风珠加多少攻击？", "output": "定风珠可以增加三百点攻击力。"}],
                    "meta": {"aspect": "战斗系统", "reject_codes": ["UNGROUNDED"]}}},
        {"id": "rej0003", "key": {"aspect": "主要角色", "n": 3}, "codes": ["TOO_SHORT"], "attempts": 3, "raw": None,
         "verdict": None, "sample": {"id": "rej0003", "recipe": "wulewule", "kind": "qa", "system": "",
                                     "turns": [{"input": "猪八戒是谁？", "output": "八戒。"}],
                                     "meta": {"aspect": "主要角色", "reject_codes": ["TOO_SHORT"]}}},
        {"id": "rej0004", "key": {"aspect": "地图探索", "n": 4}, "codes": ["FORMAT"], "attempts": 3,
         "raw": "这不是 JSON", "verdict": None, "sample": None},
    ]
    failed = [{"id": "fail0001", "key": {"aspect": "剧情", "n": 9}, "error": "LLMError: 429 rate limited", "at": 0}]
    _write(path / "accepted.jsonl", accepted)
    _write(path / "rejected.jsonl", rejected)
    _write(path / "failed.jsonl", failed)
    (path / "stats.json").write_text(json.dumps({"accepted": len(accepted), "rejected": len(rejected)}), "utf-8")
    return path


def synthetic_run(path: Path, n: int, seed: int = 7) -> Path:
    """`n` lines: 80 % accepted QA, 15 % rejected (with codes, rule hits), 5 % failed; Chinese text of varied length."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    chars = "天命人黑风山观音禅院金箍棒筋斗云妖怪师父徒弟取经路上法宝葫芦定风珠火焰山芭蕉扇体力法力技能装备"
    files = {"accepted": open(path / "accepted.jsonl", "w", encoding="utf-8"),
             "rejected": open(path / "rejected.jsonl", "w", encoding="utf-8"),
             "failed": open(path / "failed.jsonl", "w", encoding="utf-8")}
    try:
        for i in range(n):
            aspect = rng.choice(ASPECTS)
            answer = "".join(rng.choices(chars, k=rng.randint(20, 400))) + "。"
            sample = _qa(i, f"{aspect}：{''.join(rng.choices(chars, k=12))}？", answer, aspect,
                         [(rng.choice(SOURCES), round(rng.random(), 3)) for _ in range(3)],
                         tags=rng.sample(["游戏", "剧情", "新手", "进阶"], 2))
            roll = rng.random()
            if roll < 0.80:
                record, file = sample, "accepted"
            elif roll < 0.95:
                code = rng.choice(CODES)
                sample["meta"]["rule_hits"] = [{"rule": code.lower(), "code": code, "message": "规则命中", "turn": 0,
                                                "span": [0, 4], "text": answer[:4]}]
                record = {"id": sample["id"], "key": {"aspect": aspect, "n": i}, "codes": [code], "attempts": 3,
                          "raw": None, "verdict": None, "sample": sample}
                file = "rejected"
            else:
                record = {"id": sample["id"], "key": {"aspect": aspect, "n": i}, "error": "LLMError: timeout", "at": 0}
                file = "failed"
            files[file].write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    finally:
        for f in files.values():
            f.close()
    return path
