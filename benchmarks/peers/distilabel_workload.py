"""The three-calls-per-item workload in distilabel (run inside benchmarks/.peers/distilabel).

    python distilabel_workload.py --base-url http://127.0.0.1:PORT/v1 --items 256 --concurrency 64

A Pipeline: LoadDataFromDicts → TextGeneration (ask) → TextGeneration (answer) → TextGeneration
(judge) → a step that parses the judge's JSON, each LLM an `OpenAILLM(base_url=..., api_key=...)`.
Concurrency: distilabel sends one task's input batch concurrently (`asyncio.gather` in
`AsyncLLM.generate`), so `input_batch_size` = N; its steps run in separate processes over
successive batches, so more than N requests can be in flight at once (the report shows the
server's count). Cache off (`use_cache=False`).
"""

import json
import os
import sys
import tempfile
import time

from workload_common import cpu_seconds, parse_args, report

os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", DISTILABEL_LOG_LEVEL="WARNING")
os.environ.setdefault("DISTILABEL_CACHE_DIR", tempfile.mkdtemp(prefix="distilabel-"))

from distilabel.models import OpenAILLM  # noqa: E402  (after the environment above)
from distilabel.pipeline import Pipeline  # noqa: E402
from distilabel.steps import LoadDataFromDicts, StepInput, step  # noqa: E402
from distilabel.steps.tasks import TextGeneration  # noqa: E402


@step(inputs=["verdict_raw"], outputs=["decision"])
def ParseVerdict(inputs: StepInput):  # module level: distilabel pickles steps into its worker processes
    for row in inputs:
        try:
            row["decision"] = json.loads(row["verdict_raw"] or "").get("decision")
        except (ValueError, AttributeError):
            row["decision"] = None
    yield inputs


def main() -> None:
    args = parse_args()
    n = args.concurrency

    def llm():
        return OpenAILLM(model="fake-model", base_url=args.base_url, api_key="sk-fake", max_retries=3, timeout=60)

    with Pipeline(name="three-calls") as pipeline:
        load = LoadDataFromDicts(data=[{"topic": f"t{i}"} for i in range(args.items)], batch_size=n)
        ask = TextGeneration(llm=llm(), template="ASK 关于{{ topic }}提一个问题", columns=["topic"],
                             input_batch_size=n, output_mappings={"generation": "question"})
        answer = TextGeneration(llm=llm(), template="ANSWER {{ question }}", columns=["question"],
                                input_batch_size=n, output_mappings={"generation": "answer"})
        judge = TextGeneration(llm=llm(), template="CRITIC {{ answer }}", columns=["answer"],
                               input_batch_size=n, output_mappings={"generation": "verdict_raw"})
        parse = ParseVerdict(input_batch_size=n)
        load >> ask >> answer >> judge >> parse

    started, cpu0 = time.perf_counter(), cpu_seconds()
    distiset = pipeline.run(use_cache=False)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu0
    rows = distiset["default"]["train"]
    accepted = sum(1 for d in rows["decision"] if d == "accept")
    report(items=args.items, accepted=accepted, rows=len(rows), wall_s=wall, cpu_s=cpu)


if __name__ == "__main__":
    sys.exit(main())
