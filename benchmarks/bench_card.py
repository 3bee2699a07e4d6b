"""Dataset card and preference export on a large run: `python -m benchmarks.bench_card [--samples 1000 10000]`.

A real small wulewule run against the local server (a reasoning model whose first answers the critic
sends back: tests.revise_replies) gives 6 samples with reasoning and judged drafts; they are repeated
under new ids up to N samples, then the card, the dpo / kto exports and an xtuner --with-reasoning
export are timed. Prints one RESULT line per size. Not registered in `python -m benchmarks`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]


def small_run(root: Path) -> Path:
    from recipes.base import RunFlags, execute
    from recipes.wulewule.recipe import Wulewule
    from tests import revise_replies
    from tests.fake_openai import FakeOpenAI

    config = yaml.safe_load((REPO / "recipes/wulewule/wulewule.yaml").read_text(encoding="utf-8"))
    config.update(knowledge_folder=str(REPO / "knowledge/bases/wulewule"), embedder="hash",
                  aspects=config["aspects"][:3], questions_per_aspect=2, index_dir=str(root / "index"))
    path = root / "wulewule.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with FakeOpenAI(reply=revise_replies.reply) as server:
        os.environ.update(ZAOSHU_BASE_URL=server.base_url, ZAOSHU_MODEL="fake-r1", ZAOSHU_API_KEY="sk-bench")
        console = Console(file=open(os.devnull, "w"))
        assert execute(Wulewule(), RunFlags(config=path, out=root / "run", concurrency=1), console) == 0
    return root / "run"


def scaled(src: Path, dst: Path, n: int) -> Path:
    dst.mkdir(parents=True)
    for name in ("stats.json", "config.resolved.yaml"):
        shutil.copy(src / name, dst / name)
    rows = [json.loads(line) for line in (src / "accepted.jsonl").read_text(encoding="utf-8").splitlines()]
    with open(dst / "accepted.jsonl", "w", encoding="utf-8") as out:
        for i in range(n):
            out.write(json.dumps({**rows[i % len(rows)], "id": f"{i:016x}"}, ensure_ascii=False) + "\n")
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    from finetune.card import write_card
    from finetune.export import export_run

    with tempfile.TemporaryDirectory(prefix="zaoshu-bench-card-") as tmp:
        base = small_run(Path(tmp))
        for n in args.samples:
            run = scaled(base, Path(tmp) / f"n{n}", n)
            times = {}
            for name, step in (("card_s", lambda: write_card(run)), ("dpo_s", lambda: export_run(run, "dpo")),
                               ("kto_s", lambda: export_run(run, "kto")),
                               ("xtuner_reasoning_s", lambda: export_run(run, "xtuner", with_reasoning=True))):
                start = time.perf_counter()
                result = step()
                times[name] = round(time.perf_counter() - start, 2)
                if name in ("dpo_s", "kto_s"):
                    times[name.replace("_s", "_records")] = result.counts["all"]
            print("RESULT " + " ".join(f"{k}={v}" for k, v in {"samples": n, **times}.items()), flush=True)


if __name__ == "__main__":
    main()
