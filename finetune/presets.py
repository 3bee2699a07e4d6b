"""Training presets and the one place where a model family picks its prompt template.

The template is never a free choice: it follows from the model's own `config.json` (`model_type`),
so training, `finetune chat` and `finetune eval` cannot use different templates (the ruozhiba
tutorial trained with the base template and chatted with `internlm2_chat`).

>>> PRESETS["qwen2.5-7b-instruct"].family, FAMILIES["qwen2"].template
('qwen2', 'qwen_chat')
>>> FAMILIES["internlm2"].template
'internlm2_chat'
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from agents.errors import InputError, json_problem


@dataclass(frozen=True)
class Family:
    """A model family: which `model_type` values belong to it and which XTuner template it uses."""

    name: str
    model_types: tuple[str, ...]
    template: str  # a key of xtuner.utils.PROMPT_TEMPLATE
    stop_words: tuple[str, ...]


FAMILIES: dict[str, Family] = {
    "internlm2": Family("internlm2", ("internlm2",), "internlm2_chat", ("<|im_end|>",)),
    "qwen2": Family("qwen2", ("qwen2",), "qwen_chat", ("<|im_end|>", "<|endoftext|>")),
}


@dataclass(frozen=True)
class Preset:
    """Defaults for one base model; every field can be overridden on the command line.

    The real presets follow the seed projects' XTuner QLoRA configs (r 64, alpha 16, dropout 0.1,
    batch 1 × 16 accumulation × 2048 tokens, lr 2e-4, 3 epochs); `tiny` is for tests on CPU.
    """

    name: str
    family: str | None  # None: take the family from the model (the `tiny` test preset)
    hub_id: str  # where a user downloads the base model from
    max_length: int = 2048
    pack_to_max_length: bool = True
    batch_size: int = 1
    accumulative_counts: int = 16
    max_epochs: int = 3
    lr: float = 2e-4
    warmup_ratio: float = 0.03
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    save_steps: int = 500
    save_total_limit: int = 2
    evaluation_freq: int = 500


PRESETS: dict[str, Preset] = {
    "internlm2-chat-7b": Preset("internlm2-chat-7b", "internlm2", "internlm/internlm2-chat-7b"),
    "internlm2-chat-1.8b": Preset("internlm2-chat-1.8b", "internlm2", "internlm/internlm2-chat-1_8b"),
    "internlm2.5-chat-7b": Preset("internlm2.5-chat-7b", "internlm2", "internlm/internlm2_5-7b-chat"),
    "qwen2.5-7b-instruct": Preset("qwen2.5-7b-instruct", "qwen2", "Qwen/Qwen2.5-7B-Instruct"),
    "tiny": Preset(
        "tiny", None, "(built by tests/tiny_models.py)", max_length=256, pack_to_max_length=False,
        accumulative_counts=1, max_epochs=2, lr=2e-3, warmup_ratio=0.0, lora_r=8, lora_alpha=16,
        lora_dropout=0.0, save_steps=10, save_total_limit=2, evaluation_freq=1000,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called `name`, or an InputError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}") from None


def detect_family(model: Path, hub_id: str = "Qwen/Qwen2.5-7B-Instruct") -> Family:
    """Read `model/config.json` and return its family; one clear InputError when that is impossible.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text('{"model_type": "qwen2"}')
    >>> detect_family(d).template
    'qwen_chat'
    """
    config = model / "config.json"
    if not model.exists():
        raise InputError(
            f"model path {model} does not exist: download the base model first, e.g. "
            f"`huggingface-cli download {hub_id} --local-dir {shlex.quote(str(model))}`"
        )
    if not config.is_file():
        raise InputError(f"{model} has no config.json: point --model at a Hugging Face model folder")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
    except json.JSONDecodeError as exc:
        raise InputError(f"{config} is not valid JSON ({json_problem(exc, line=True)})") from None
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    known = ", ".join(t for f in FAMILIES.values() for t in f.model_types)
    raise InputError(
        f"unknown model family '{model_type}' in {config}: zaoshu knows {known}; "
        f"use one of the presets' models ({', '.join(p.hub_id for p in PRESETS.values() if p.family)})"
    )


def resolve_family(preset: Preset, model: Path) -> Family:
    """The model's family, checked against the preset's (a Qwen preset on an InternLM model is an error)."""
    family = detect_family(model, preset.hub_id) if preset.family else detect_family(model)
    if preset.family is not None and preset.family != family.name:
        raise InputError(
            f"preset '{preset.name}' is for {preset.family} models but {model} is a {family.name} model: "
            f"use a {family.name} preset ({', '.join(p.name for p in PRESETS.values() if p.family == family.name)})"
        )
    return family
