"""A real runner process for kill -9 and Ctrl-C tests:

    python -m tests.run_worker --base-url URL --run DIR --items 60 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from agents.llm import Usage, make_clients
from agents.settings import load_settings
from graphs.rundir import RunDir
from graphs.runner import Runner, RunOptions, install_signal_handlers
from tests.three_call_graph import Ctx, build_graph, items


async def main(args) -> int:
    settings = load_settings(cli={"base_url": args.base_url, "model": "fake", "max_requests": args.concurrency,
                                  "max_retries": 2, "timeout": 5}, env_file=None)
    usage = Usage()
    ctx = Ctx(clients=make_clients(settings, usage=usage))
    runner = Runner(build_graph().compile(), ctx, RunDir(Path(args.run), fsync_every=args.fsync_every), usage,
                    RunOptions(concurrency=args.concurrency))
    install_signal_handlers(runner)
    print("STARTED", flush=True)
    outcome = await runner.run(items(args.items))
    print(f"RESULT reason={outcome.reason} accepted={outcome.accepted} rejected={outcome.rejected}", flush=True)
    if outcome.reason == "interrupted":
        print(f"resume with: python -m tests.run_worker --base-url {args.base_url} --run {args.run}", flush=True)
        return 130
    return 0 if outcome.reason == "completed" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--fsync-every", type=int, default=1)
    sys.exit(asyncio.run(main(parser.parse_args())))
