"""The three-calls-per-item workload in bespokelabs' curator (run inside benchmarks/.peers/curator).

    python curator_workload.py --base-url http://127.0.0.1:PORT/v1 --items 256 --concurrency 64

curator runs one LLM over a whole dataset at a time, so the workload is three `curator.LLM`
passes (ask → answer → judge); the judge's reply is parsed as JSON in `parse`, as our critic does.
Concurrency: `backend_params["max_concurrent_requests"]`; rate limits are set far above what the
server can serve, so only the concurrency cap binds. Cache and telemetry are off.
"""

import json
import os
import sys
import tempfile
import time

from workload_common import cpu_seconds, parse_args, report


def main() -> None:
    args = parse_args()
    os.environ.update(CURATOR_DISABLE_CACHE="1", CURATOR_DISABLE_RICH_DISPLAY="1", TELEMETRY_ENABLED="false",
                      HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", OPENAI_API_KEY="sk-fake",
                      LITELLM_LOCAL_MODEL_COST_MAP="True")
    os.environ.setdefault("CURATOR_CACHE_DIR", tempfile.mkdtemp(prefix="curator-"))
    # curator counts tokens with tiktoken's cl100k_base, which tiktoken downloads on first use; offline,
    # point tiktoken at the copy that litellm (a curator dependency) ships.
    import importlib.util

    litellm_dir = os.path.dirname(importlib.util.find_spec("litellm").origin)
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", os.path.join(litellm_dir, "litellm_core_utils", "tokenizers"))
    from bespokelabs import curator

    params = {"base_url": args.base_url, "api_key": "sk-fake", "max_concurrent_requests": args.concurrency,
              "max_requests_per_minute": 10_000_000, "max_tokens_per_minute": 10_000_000_000, "max_retries": 3,
              "request_timeout": 60, "require_all_responses": False}

    class Asker(curator.LLM):
        def prompt(self, row):
            return f"ASK 关于{row['topic']}提一个问题"

        def parse(self, row, response):
            return {**row, "question": response}

    class Answerer(curator.LLM):
        def prompt(self, row):
            return f"ANSWER {row['question']}"

        def parse(self, row, response):
            return {**row, "answer": response}

    class Judge(curator.LLM):
        def prompt(self, row):
            return f"CRITIC {row['answer']}"

        def parse(self, row, response):
            try:
                verdict = json.loads(response)
                decision = verdict.get("decision")
            except ValueError:
                decision = None
            return {**row, "decision": decision}

    rows = [{"topic": f"t{i}"} for i in range(args.items)]
    llms = [cls(model_name="fake-model", backend="openai", backend_params=dict(params))
            for cls in (Asker, Answerer, Judge)]
    started, cpu0 = time.perf_counter(), cpu_seconds()
    data = rows
    for llm in llms:
        data = llm(data).dataset
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu0
    accepted = sum(1 for row in data if row.get("decision") == "accept")
    report(items=args.items, accepted=accepted, wall_s=wall, cpu_s=cpu)


if __name__ == "__main__":
    sys.exit(main())
