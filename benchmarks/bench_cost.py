"""Cost and time per accepted sample, before and after the cache-friendly prompt layout:
`python -m benchmarks.bench_cost [--quick] [--real]`.

Each recipe's graph (wulewule qa, tianji persona, emollm dialogue) runs through `python -m recipes.<name>`
against the local test server (tests.fake_openai + tests.recipe_replies), once with the prompt layout
before this change (the tree at BEFORE, extracted with `git archive`) and once with the current one,
in the same invocation. From the requests the server records it reports, per role:

- calls and tokens per accepted sample;
- the share of prompt tokens in a prefix shared with the role's previous call (what a single-slot
  server such as llama.cpp reuses) and with any earlier call of the role (what a provider's prefix
  cache holding many prefixes can serve: DeepSeek, DashScope, OpenAI, vLLM APC);
- money per 1,000 accepted samples at each priced preset, without and with cache hits.

Tokens are estimated one way throughout: the chat rendered as ChatML, ~1 token per CJK character and
per 4 other characters (agents.llm.estimate_tokens's rule).

`--real` / `--real-only` (benchmarks/cost_real.py): tianji (`--real-recipe wulewule`: wulewule) on the
local llama.cpp model (`--real-items` items, the older layout then HEAD's, same run) on a server
started here on a free port, so no other client shares its slot (`--real-cache`:
with `--cache true`, llama-cpp-python's RAM cache of many prefixes). The "after" tree is HEAD,
extracted, so edits during a run do not leak in. The server's log gives the prompt tokens it reused
("N prefix-match hit, remaining M prompt tokens to eval") and its own timings. Run it under the
machine lock: `flock -x /tmp/zaoshu-bench.lock python -m benchmarks.bench_cost --real-only`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BEFORE = "0c63266"  # the last commit with the old prompt layout (same LLM layer, same fake server)
WAVE2 = "5b37278"  # the first cache-friendly layout (wave 2), before items of one aspect ran back to back
WAVE4 = "61cd6f0"  # wave 4: one aspect's items back to back; follow-ups and answers not yet from its passages
RECIPES = ("wulewule", "tianji", "emollm")
PRICED = ("deepseek", "dashscope", "openai")
# Cache granularity (min tokens, step): DeepSeek caches 64-token blocks; OpenAI from 1,024 tokens in
# 128-token steps; DashScope's implicit cache from 256 tokens (assumed 1-token steps).
BLOCKS = {"deepseek": (64, 64), "openai": (1024, 128), "dashscope": (256, 1)}


def tokens(text: str) -> int:
    non_ascii = (len(text.encode("utf-8")) - len(text)) // 2
    return non_ascii + (len(text) - non_ascii) // 4


def chatml(messages: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m.get('content', '')}<|im_end|>\n" for m in messages)


def role_of(system: str) -> str:
    for marker, role in (("- decision", "critic"), ("- answer (", "answerer"), ("- text (", "responder"),
                         ("- question (", "asker"), ("- message (", "asker")):
        if marker in system:
            return role
    return "other"


def common(a: str, b: str) -> int:
    from tests.fake_openai import common_prefix

    return common_prefix(a, b)


def prefix_shares(requests: list) -> dict[str, dict]:
    """Per role: calls, prompt tokens, and tokens in a prefix shared with the previous / any earlier call."""
    out: dict[str, dict] = {}
    seen: dict[str, list[str]] = {}
    for req in requests:
        role = role_of(req.system)
        text = chatml(req.messages)
        earlier = seen.setdefault(role, [])
        row = out.setdefault(role, {"calls": 0, "prompt_tokens": 0, "shared_prev": 0, "shared_any": 0,
                                    "any_per_call": []})
        prev = tokens(text[:common(earlier[-1], text)]) if earlier else 0
        best = max((common(e, text) for e in earlier), default=0)
        row["calls"] += 1
        row["prompt_tokens"] += tokens(text)
        row["shared_prev"] += prev
        row["shared_any"] += tokens(text[:best])
        row["any_per_call"].append((tokens(text), tokens(text[:best])))
        earlier.append(text)
    for row in out.values():
        row["share_prev"] = round(row["shared_prev"] / row["prompt_tokens"], 3) if row["prompt_tokens"] else 0.0
        row["share_any"] = round(row["shared_any"] / row["prompt_tokens"], 3) if row["prompt_tokens"] else 0.0
    return out


def cached_for(preset: str, per_call: list[tuple[int, int]]) -> int:
    """Prompt tokens a provider would bill as cached, given its cache granularity."""
    low, step = BLOCKS[preset]
    return sum(0 if shared < low else low + (shared - low) // step * step for _, shared in per_call)


# ---- running a recipe -------------------------------------------------------------------------

def extract_before(root: Path, commit: str = BEFORE, name: str = "before") -> Path:
    tree = root / name
    tree.mkdir()
    data = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def config_for(name: str, root: Path, quick: bool, real: bool = False, tag: str = "") -> tuple[Path, list[str]]:
    """The recipe's YAML cut down for the benchmark; `tag` keeps one layout's files (its index) apart."""
    config = yaml.safe_load((REPO / f"recipes/{name}/{name}.yaml").read_text(encoding="utf-8"))
    args: list[str] = []
    if name == "wulewule":
        config.update(knowledge_folder=str(REPO / "knowledge/bases/wulewule"), embedder="hash",
                      aspects=config["aspects"][: 2 if quick else 4], questions_per_aspect=2 if quick else 3,
                      index_dir=str(root / f"index{tag}"))
        if real:  # 2 aspects × 2 questions, the second with one follow-up: 6 questions in all
            config.update(aspects=config["aspects"][:2], questions_per_aspect=2, multi_turn={"every": 2, "turns": [2, 2]})
    elif name == "tianji":
        config.update(roles=config["roles"][:3 if real else 2], scenes=config["scenes"][:4 if real else 3])
        if real:
            config["styles"] = {k: v for k, v in config["styles"].items() if k == "正常"}
        args = ["--limit", "3" if real else ("6" if quick else "18")]
    else:  # emollm: 12 items, so the critic's first call (nothing before it to share) weighs 1/12, not 1/6
        args = ["--limit", "3" if quick else "12"]
    path = root / f"{name}{tag}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path, args


def run_recipe(tree: Path, name: str, config: Path, args: list[str], out: Path, env: dict, timeout: float) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ZAOSHU_", "OPENAI_", "SERPER_"))}
    base.update(PYTHONPATH=str(tree), HF_HUB_OFFLINE="1", **env)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", f"recipes.{name}", "--config", str(config), "--out", str(out),
                           "--concurrency", "1", *args], cwd=tree, env=base, capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{name} in {tree.name}: exit {proc.returncode}: {proc.stderr[-800:]}{proc.stdout[-400:]}")
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    return {"wall_s": round(wall, 1), "accepted": stats["accepted"], "rejected": stats["rejected"],
            "rejected_by_code": stats.get("rejected_by_code", {}),
            "usage_by_role": stats["usage_by_role"], "input_tokens": stats["input_tokens"],
            "output_tokens": stats["output_tokens"]}


def fake_runs(root: Path, quick: bool) -> dict:
    from tests.fake_openai import FakeOpenAI
    from tests.recipe_replies import reply, reset

    import importlib.util

    if importlib.util.find_spec("rank_bm25") is None:  # the older trees' BM25; not a dependency any more
        sys.exit("the older layouts need rank-bm25: pip install -c constraints.txt rank-bm25")
    trees = {"before": extract_before(root), "wave 2": extract_before(root, WAVE2, "wave2"),
             "wave 4": extract_before(root, WAVE4, "wave4"), "after": REPO}
    results: dict = {}
    for name in RECIPES:
        for layout, tree in trees.items():
            config, args = config_for(name, root, quick, tag=tree.name)  # an index per layout: formats differ
            reset()  # every layout gets the same scripted replies
            with FakeOpenAI(reply=reply) as server:
                env = {"ZAOSHU_BASE_URL": server.base_url, "ZAOSHU_MODEL": "fake-model"}
                run = run_recipe(tree, name, config, args, root / f"{name}-{tree.name}", env, 600)
                requests = list(server.requests)
            run["roles"] = prefix_shares(requests)
            results.setdefault(name, {})[layout] = run
            print(f"{name} {layout}: {run['accepted']} accepted, {len(requests)} calls", file=sys.stderr)
    return results


def money(run: dict) -> dict:
    """Per 1,000 accepted samples at each priced preset: without and with cache hits."""
    from agents.settings import PRESETS

    accepted = max(run["accepted"], 1)
    per_call = [pc for row in run["roles"].values() for pc in row["any_per_call"]]
    prompt = sum(p for p, _ in per_call)
    out_tokens = run["output_tokens"]
    scale = run["input_tokens"] / prompt if prompt else 1.0  # the server's token count / our estimate
    table = {}
    for preset in PRICED:
        p = PRESETS[preset]
        cached = cached_for(preset, per_call) * scale
        plain = (run["input_tokens"] * p.price_input_per_1k + out_tokens * p.price_output_per_1k) / 1000
        hit = plain - cached * (p.price_input_per_1k - (p.price_input_cached_per_1k or p.price_input_per_1k)) / 1000
        table[preset] = {"currency": p.currency, "no_cache": round(plain / accepted * 1000, 4),
                         "with_cache": round(hit / accepted * 1000, 4)}
    return table


# ---- report -----------------------------------------------------------------------------------

def section(fake: dict, reals: list[dict] | None) -> str:
    lines = ["## Cost per accepted sample and the prompt prefix cache", "",
             "`python -m benchmarks.bench_cost`: each recipe through "
             "`python -m recipes.<name> --concurrency 1` against the local test server, with the prompt layout "
             f"before the cache-friendly reordering (commit {BEFORE}), with the first reordering (wave 2, commit "
             f"{WAVE2}), wave 4's (commit {WAVE4}) and now, same invocation. Shared prefix: "
             "share of each role's prompt tokens (ChatML-rendered, estimated) that repeat the start of the role's "
             "previous call (a single-slot server) / of any earlier call of the role (a provider cache).", "",
             "| recipe | layout | accepted | calls / accepted | tokens in / accepted | tokens out / accepted | "
             "shared prefix per role: previous call · any earlier call |", "|---|---|---|---|---|---|---|"]
    for name, layouts in fake.items():
        for layout, run in layouts.items():
            acc = max(run["accepted"], 1)
            calls = sum(r["calls"] for r in run["usage_by_role"].values())
            shares = "; ".join(f"{role} {row['share_prev']:.0%} · {row['share_any']:.0%}"
                               for role, row in sorted(run["roles"].items()))
            lines.append(f"| {name} | {layout} | {run['accepted']} | {calls / acc:.2f} | "
                         f"{run['input_tokens'] / acc:,.0f} | {run['output_tokens'] / acc:,.0f} | {shares} |")
    lines += ["", "Money per 1,000 accepted samples at each priced preset's list price (see agents/settings.py; "
              "assumed prices), with cache hits counted on the any-earlier-call prefix at the provider's cache "
              "granularity (DeepSeek 64-token blocks, OpenAI ≥ 1,024 tokens in 128-token steps, DashScope ≥ 256):", "",
              "| recipe | layout | " + " | ".join(f"{p}: no cache → with cache" for p in PRICED) + " |",
              "|---|---|" + "---|" * len(PRICED)]
    for name, layouts in fake.items():
        for layout, run in layouts.items():
            m = run["money"]
            lines.append(f"| {name} | {layout} | " + " | ".join(
                f"{m[p]['currency']}{m[p]['no_cache']:.3f} → {m[p]['currency']}{m[p]['with_cache']:.3f}"
                for p in PRICED) + " |")
    from benchmarks.cost_real import real_table

    for real in reals or []:
        lines += ["", *real_table(real)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items per recipe")
    parser.add_argument("--real", action="store_true", help="also tianji on the local llama.cpp model")
    parser.add_argument("--real-cache", action="store_true", help="the real model's server with --cache true")
    parser.add_argument("--real-items", type=int, default=3, help="items per layout on the real model")
    parser.add_argument("--real-recipe", choices=("tianji", "wulewule"), default="tianji",
                        help="the recipe on the real model (wulewule: wave 4's layout against HEAD's)")
    parser.add_argument("--report-only", action="store_true", help="print the section from the saved results")
    parser.add_argument("--real-only", action="store_true", help="rerun only the real-model part, keep the rest")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from benchmarks.common import load, save
    from benchmarks.cost_real import REAL_KEYS, real_runs

    key = "real" + ("_wulewule" if args.real_recipe == "wulewule" else "") + ("_cache" if args.real_cache else "")
    if args.report_only or args.real_only:
        data = load("cost") or {}
        if args.real_only:
            with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
                data[key] = real_runs(Path(tmp), args.real_cache, args.real_items, args.real_recipe)
            save("cost", data)
        print(section(data.get("fake", {}), [data[k] for k in REAL_KEYS if data.get(k)]))
        return

    with tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp:
        root = Path(tmp)
        fake = fake_runs(root, args.quick)
        for layouts in fake.values():
            for run in layouts.values():
                run["money"] = money(run)
        real = real_runs(root, args.real_cache, args.real_items, args.real_recipe) if args.real else None
    for layouts in fake.values():
        for run in layouts.values():
            for row in run["roles"].values():
                row.pop("any_per_call", None)
    old = load("cost") or {}
    data = {"fake": fake, **{k: old[k] for k in REAL_KEYS if old.get(k)}}
    if real:
        data[key] = real
    path = save("cost", data)
    print(section(fake, [data[k] for k in REAL_KEYS if data.get(k)]))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
