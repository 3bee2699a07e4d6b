"""The typed description of one fine-tuning job, from which the XTuner config is written.

>>> TrainSpec(preset="x", model="/m", family="qwen2", prompt_template="qwen_chat", data="/d.jsonl",
...           data_format="xtuner", batch_size=1, accumulative_counts=16, max_length=2048).tokens_per_step
32768
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.errors import InputError
from graphs.config import describe
from finetune import data as data_io
from finetune.presets import get_preset, resolve_family


class TrainSpec(BaseModel):
    """Everything the generated config says, each field one line of it."""

    # `lr = inf` is a NameError when XTuner loads the config (and nan trains nothing): finite numbers only
    model_config = ConfigDict(allow_inf_nan=False)

    preset: str
    model: Path = Field(description="Base model folder (Hugging Face format).")
    family: str
    prompt_template: str = Field(description="Key of xtuner.utils.PROMPT_TEMPLATE; follows from the family.")
    data: Path
    data_format: data_io.DataFormat
    pretraining: bool = Field(default=False, description="Incremental pretraining: the text with no chat template.")
    test: Path | None = None
    system: str = Field(default="", description="SYSTEM for evaluation chats: the recipe's system prompt.")
    evaluation_inputs: list[str] = Field(default_factory=list)
    quantization: Literal["qlora", "lora"] = "qlora"
    cpu_smoke: bool = False
    lora_r: int = Field(default=64, gt=0)
    lora_alpha: int = Field(default=16, gt=0)
    lora_dropout: float = Field(default=0.1, ge=0, lt=1)
    max_length: int = Field(default=2048, gt=0)
    pack_to_max_length: bool = True
    batch_size: int = Field(default=1, gt=0)
    accumulative_counts: int = Field(default=16, gt=0)
    max_epochs: int = Field(default=3, gt=0)
    lr: float = Field(default=2e-4, gt=0)
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    save_steps: int = Field(default=500, gt=0)
    save_total_limit: int = 2
    evaluation_freq: int = Field(default=500, gt=0)
    map_num_proc: int = Field(default=4, gt=0)
    seed: int = 42

    @model_validator(mode="after")
    def _cpu_smoke_is_lora(self) -> TrainSpec:
        if self.cpu_smoke and self.quantization == "qlora":
            raise ValueError("--cpu-smoke trains LoRA in fp32: 4-bit QLoRA needs CUDA")
        return self

    @property
    def tokens_per_step(self) -> int:
        """Tokens one optimizer step sees at most (exactly, when packing fills every sequence)."""
        return self.batch_size * self.accumulative_counts * self.max_length


# The TrainSpec fields `zaoshu finetune config` sets whose flag is not the field's name with dashes.
FLAGS = {"accumulative_counts": "--accumulation", "max_epochs": "--epochs", "pack_to_max_length": "--pack"}


def build_spec(
    *,
    preset: str,
    model: Path,
    data: Path,
    test: Path | None = None,
    cpu_smoke: bool = False,
    system: str | None = None,
    n_eval_inputs: int = 3,
    **overrides: object,
) -> TrainSpec:
    """Resolve a preset, the model's family, the data format, SYSTEM and evaluation inputs into a spec.

    SYSTEM is the system prompt most training records carry (the recipe's) unless `system` is given;
    evaluation inputs are sampled (fixed seed) from the test split, or from the training data without one.
    `overrides` are TrainSpec fields set on the command line (None means "keep the preset's").
    """
    chosen = get_preset(preset)
    family = resolve_family(chosen, model)
    train = data_io.read_chat(data)
    data_format, records = train.format, train.records
    eval_records = data_io.read_chat(test).records if test is not None else records  # any mix: inputs only
    fields: dict[str, object] = {
        k: getattr(chosen, k)
        for k in ("max_length", "pack_to_max_length", "batch_size", "accumulative_counts", "max_epochs", "lr",
                  "warmup_ratio", "lora_r", "lora_alpha", "lora_dropout", "save_steps", "save_total_limit",
                  "evaluation_freq")
    }
    if cpu_smoke:
        # FINDINGS: warmup_ratio rounds to zero iterations on tiny data; 32 map processes for 20 rows is waste.
        fields.update(warmup_ratio=0.0, map_num_proc=1)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainSpec(
            preset=chosen.name, model=model.resolve(), family=family.name, prompt_template=family.template,
            data=data.resolve(), data_format=data_format, pretraining=data_io.is_pretraining(records),
            test=test.resolve() if test else None,
            system=data_io.common_system(records) if system is None else system,
            evaluation_inputs=data_io.sample_inputs(eval_records, n_eval_inputs),
            quantization="lora" if cpu_smoke else "qlora", cpu_smoke=cpu_smoke, **fields,
        )
    except ValidationError as exc:  # a flag's value: one line naming the flag, not pydantic's four
        flags = {name: FLAGS.get(name, "--" + name.replace("_", "-")) for name in overrides}
        raise InputError(describe(exc, TrainSpec, "training settings", flags)) from None
