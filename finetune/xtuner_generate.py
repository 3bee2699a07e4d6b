"""Answer questions with a local model, INSIDE the XTuner environment (transformers 4.48 + peft).

    XTUNER_PY finetune/xtuner_generate.py MODEL TEMPLATE IN.json OUT.json [--adapter DIR] [--max-new-tokens N]

IN.json is a list of {"system": "…", "input": "…"}; OUT.json the list of answers in the same order.
The prompt is built from XTuner's PROMPT_TEMPLATE[TEMPLATE] exactly as training built it (SYSTEM +
INSTRUCTION), decoding is greedy and stops at the template's stop words. Only the standard library is
imported at module level; the main environment ships this file but never imports it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def build_prompt(template: dict, system: str, question: str) -> str:
    prompt = template["INSTRUCTION"].format(input=question, round=1)
    if system:
        prompt = template["SYSTEM"].format(system=system) + prompt
    return prompt


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("template")
    parser.add_argument("inp")
    parser.add_argument("out")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from xtuner.utils import PROMPT_TEMPLATE

    template = PROMPT_TEMPLATE[args.template]
    dtype = torch.float16 if torch.cuda.is_available() else torch.float32
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(args.model, trust_remote_code=True, torch_dtype=dtype).to(device)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    model.eval()
    stop_ids = [tokenizer.convert_tokens_to_ids(w) for w in template.get("STOP_WORDS", [])]
    stop_ids = [i for i in stop_ids if isinstance(i, int) and i != tokenizer.unk_token_id] or None
    answers = []
    for item in json.loads(Path(args.inp).read_text(encoding="utf-8")):
        prompt = build_prompt(template, item.get("system", ""), item["input"])
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
        if tokenizer.bos_token_id is not None and tokenizer.__class__.__name__ not in ("Qwen2TokenizerFast", "Qwen2Tokenizer"):
            ids = torch.cat([torch.tensor([[tokenizer.bos_token_id]], device=device), ids], dim=1)  # as encode_fn does
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_new_tokens,
                                 do_sample=False, eos_token_id=stop_ids,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        for word in template.get("STOP_WORDS", []):
            text = text.split(word)[0]
        answers.append(text.strip())
    Path(args.out).write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
