"""Strict dataset check that runs INSIDE the XTuner environment, with XTuner's own code.

    XTUNER_PY finetune/xtuner_validate.py CFG.py DATA.jsonl REPORT.json

For every line (every record of a `.json` array): parse the JSON, apply the config's `dataset_map_fn` (None or openai_map_fn), check
the conversation's shape, then run XTuner's `template_map_fn` and `encode_fn` with the config's
tokenizer, template and max_length. A record fails with a reason when any step fails, when it has
an empty output (XTuner would silently train it on the end token only), or when no token is left to
train on. A record longer than max_length is a warning (it trains truncated). This file imports only
the standard library at module level so the main environment can ship it; it is never imported there.

Report: {"records": N, "errors": [{"line": 3, "reason": "…"}], "warnings": [...], "template": {...},
"unit": "line"} — "record" for a `.json` array, whose "line" is then the record's number.

Preference data (`zaoshu export --format xtuner-dpo`) has no config template: XTuner's DPO pipeline
renders it with the tokenizer's chat template. `--preference` loads the file with XTuner's
`load_jsonl_dataset` and runs XTuner's `preference_dataset.tokenize` on every pair:

    XTUNER_PY finetune/xtuner_validate.py --preference TOKENIZER_DIR DATA.jsonl REPORT.json [MAX_LENGTH]
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


def read_examples(data_path: str) -> list[tuple[int, object]]:
    """(number, parsed record or its JSONDecodeError) for every record: a `.json` file is one JSON array
    (`zaoshu export --json`, which XTuner's `load_dataset("json", …)` reads too), numbered by record;
    any other file is JSONL, numbered by line (blank lines skipped). A UTF-8 BOM is read past, as
    `load_dataset("json", …)` and `zaoshu finetune config` do."""
    with open(data_path, encoding="utf-8-sig") as fh:
        if data_path.endswith(".json"):
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                return [(1, exc)]
            return list(enumerate(data if isinstance(data, list) else [data], start=1))
        examples: list[tuple[int, object]] = []
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                examples.append((lineno, json.loads(line)))
            except json.JSONDecodeError as exc:
                examples.append((lineno, exc))
        return examples


def is_pretraining(example: dict) -> bool:
    """An incremental-pretraining record (`zaoshu export --format pretrain`): one turn, empty input, no system."""
    conv = example.get("conversation")
    return (isinstance(conv, list) and len(conv) == 1 and isinstance(conv[0], dict)
            and not conv[0].get("input") and not conv[0].get("system"))


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
    # `finetune config` on pretraining data writes template_map_fn=None: the text is learnt with no chat template
    pretraining = cfg.train_dataset.get("template_map_fn") is None
    tokenizer = BUILDER.build(cfg.tokenizer)
    errors: list[dict] = []
    warnings: list[dict] = []
    records = 0
    unit = "record" if data_path.endswith(".json") else "line"
    for lineno, example in read_examples(data_path):
        records += 1

        def bad(reason: str, _line: int = lineno) -> None:
            errors.append({"line": _line, "reason": reason})

        if isinstance(example, json.JSONDecodeError):
            where = f"line {example.lineno}, column {example.colno}" if unit == "record" else f"column {example.colno}"
            bad(f"invalid JSON: {example.msg} ({where})")
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
        if pretraining and not is_pretraining(example):
            bad("a chat record (an input or a system prompt), but the config is incremental pretraining "
                "(template_map_fn=None): its system prompt would be dropped and no chat template applied; "
                "regenerate the config for this file with `zaoshu finetune config`")
            continue
        try:
            mapped = copy.deepcopy(example) if pretraining else template_map_fn(copy.deepcopy(example), template)
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
            "max_length": max_length, "expects": expects, "unit": unit}


def check_pair(pair: dict) -> str:
    """'' when `pair` is a well-formed XTuner preference record, else the reason."""
    for key in ("prompt", "chosen", "rejected"):
        messages = pair.get(key)
        if not isinstance(messages, list) or not messages:
            return f"no '{key}' message list (or it is empty)"
        for i, m in enumerate(messages, start=1):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in (
                    "system", "user", "assistant"):
                return f"{key}[{i}] is not a {{role, content}} message"
    if pair["prompt"][-1]["role"] != "user":
        return "the prompt does not end with the user's message"
    for key in ("chosen", "rejected"):
        if any(m["role"] != "assistant" or not m["content"].strip() for m in pair[key]):
            return f"'{key}' must be non-empty assistant messages"
    if pair["chosen"] == pair["rejected"]:
        return "'chosen' and 'rejected' are the same"
    return ""


def validate_preference(tokenizer_dir: str, data_path: str, max_length: int = 2048) -> dict:
    from transformers import AutoTokenizer
    from xtuner.dataset.preference_dataset import load_jsonl_dataset, tokenize

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=True)
    if not tokenizer.chat_template:
        raise SystemExit(f"{tokenizer_dir}: the tokenizer has no chat template; XTuner's DPO pipeline needs one")
    dataset = load_jsonl_dataset(data_files=data_path)  # XTuner's own loader: one HF dataset from every line
    errors: list[dict] = []
    warnings: list[dict] = []
    for lineno, pair in enumerate(dataset, start=1):
        if reason := check_pair(pair):
            errors.append({"line": lineno, "reason": reason})
            continue
        try:
            out = tokenize(pair, tokenizer, max_length)
        except Exception as exc:  # noqa: BLE001 - XTuner's error becomes the record's reason
            errors.append({"line": lineno, "reason": f"XTuner tokenize failed: {type(exc).__name__}: {exc}"})
            continue
        prompt_ids = tokenizer.encode(tokenizer.apply_chat_template(pair["prompt"], tokenize=False,
                                                                    add_generation_prompt=True), add_special_tokens=False)
        for side in ("chosen", "rejected"):
            ids, labels = out[f"{side}_ids"], out[f"{side}_labels"]
            if ids[:len(prompt_ids)] != prompt_ids:
                errors.append({"line": lineno, "reason": f"the {side} sequence does not start with the prompt: "
                                                         f"its labels would train on the prompt"})
                break
            if not any(label != -100 for label in labels):
                errors.append({"line": lineno, "reason": f"no {side} token left to train on within max_length={max_length}"})
                break
        if max(len(out["chosen_ids"]), len(out["rejected_ids"])) >= max_length:
            warnings.append({"line": lineno, "reason": f"truncated to max_length={max_length}"})
    return {"records": len(dataset), "errors": errors, "warnings": warnings, "max_length": max_length,
            "expects": "xtuner-dpo", "template": {"chat_template": tokenizer.chat_template[:200]}}


if __name__ == "__main__":
    if sys.argv[1] == "--preference":
        tok_arg, data_arg, out_arg, *rest = sys.argv[2:]
        report = validate_preference(tok_arg, data_arg, int(rest[0]) if rest else 2048)
    else:
        cfg_arg, data_arg, out_arg = sys.argv[1:4]
        report = validate(cfg_arg, data_arg)
    Path(out_arg).write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
