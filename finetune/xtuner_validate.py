"""Strict dataset check that runs INSIDE the XTuner environment, with XTuner's own code.

    XTUNER_PY finetune/xtuner_validate.py CFG.py DATA.jsonl REPORT.json

For every line: parse the JSON, apply the config's `dataset_map_fn` (None or openai_map_fn), check
the conversation's shape, then run XTuner's `template_map_fn` and `encode_fn` with the config's
tokenizer, template and max_length. A record fails with a reason when any step fails, when it has
an empty output (XTuner would silently train it on the end token only), or when no token is left to
train on. A record longer than max_length is a warning (it trains truncated). This file imports only
the standard library at module level so the main environment can ship it; it is never imported there.

Report: {"records": N, "errors": [{"line": 3, "reason": "…"}], "warnings": [...], "template": {...}}
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path


def check_shape(example: dict) -> str:
    """'' when `example` is a well-formed XTuner conversation, else the reason."""
    conv = example.get("conversation")
    if not isinstance(conv, list) or not conv:
        return "no 'conversation' list (or it is empty)"
    for i, turn in enumerate(conv, start=1):
        if not isinstance(turn, dict):
            return f"turn {i} is not an object"
        for key in ("input", "output"):
            if key not in turn or turn[key] is None:
                return f"turn {i} has no '{key}'"
            if not isinstance(turn[key], str):
                return f"turn {i} '{key}' is {type(turn[key]).__name__}, not a string"
        if not turn["output"].strip():
            return f"turn {i} has an empty 'output' (it would train on the end token only)"
        if i > 1 and turn.get("system"):
            return f"turn {i} carries a 'system' (only the first turn may)"
    return ""


def validate(config_path: str, data_path: str) -> dict:
    from mmengine.config import Config
    from xtuner.dataset.map_fns import openai_map_fn, template_map_fn
    from xtuner.dataset.utils import encode_fn
    from xtuner.registry import BUILDER

    cfg = Config.fromfile(config_path)
    template = cfg.prompt_template
    max_length = int(cfg.max_length)
    map_fn = cfg.train_dataset.get("dataset_map_fn")
    expects = "xtuner" if map_fn is None else "openai"
    tokenizer = BUILDER.build(cfg.tokenizer)
    errors: list[dict] = []
    warnings: list[dict] = []
    records = 0
    with open(data_path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            records += 1

            def bad(reason: str, _line: int = lineno) -> None:
                errors.append({"line": _line, "reason": reason})

            try:
                example = json.loads(line)
            except json.JSONDecodeError as exc:
                bad(f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(example, dict):
                bad(f"expected a JSON object, got {type(example).__name__}")
                continue
            has = "xtuner" if "conversation" in example else "openai" if "messages" in example else None
            if has != expects:
                bad(f"record is {has or 'neither format'} but the config expects {expects} "
                    f"(dataset_map_fn={'None' if map_fn is None else 'openai_map_fn'}): regenerate the config")
                continue
            if map_fn is not None:
                try:
                    example = openai_map_fn(copy.deepcopy(example))
                except Exception as exc:  # noqa: BLE001 - XTuner's error becomes the record's reason
                    bad(f"openai_map_fn failed: {type(exc).__name__}: {exc}")
                    continue
            if reason := check_shape(example):
                bad(reason)
                continue
            try:
                mapped = template_map_fn(copy.deepcopy(example), template)
                full = encode_fn(copy.deepcopy(mapped), tokenizer, 10**9)
                encoded = encode_fn(mapped, tokenizer, max_length)
            except Exception as exc:  # noqa: BLE001 - XTuner's error becomes the record's reason
                bad(f"XTuner encode failed: {type(exc).__name__}: {exc}")
                continue
            if not any(label != -100 for label in encoded["labels"]):
                bad(f"no output token left to train on within max_length={max_length}")
                continue
            if len(full["input_ids"]) > max_length:
                warnings.append({"line": lineno, "reason": f"{len(full['input_ids'])} tokens > max_length={max_length}: "
                                                           f"trained truncated"})
    return {"records": records, "errors": errors, "warnings": warnings, "template": dict(template),
            "max_length": max_length, "expects": expects}


if __name__ == "__main__":
    cfg_arg, data_arg, out_arg = sys.argv[1:4]
    Path(out_arg).write_text(json.dumps(validate(cfg_arg, data_arg), ensure_ascii=False), encoding="utf-8")
