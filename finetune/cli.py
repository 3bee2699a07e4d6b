"""`zaoshu finetune …`: set up XTuner, write its config, validate data, train, convert, merge, chat, evaluate.

    zaoshu finetune setup
    zaoshu finetune config --preset internlm2-chat-7b --model ./internlm2-chat-7b --data train.jsonl --test test.jsonl --out cfg.py
    zaoshu finetune validate train.jsonl --config cfg.py
    zaoshu finetune validate-dpo exports/xtuner-dpo/all.jsonl --tokenizer ./internlm2-chat-7b
    zaoshu finetune train cfg.py --work-dir work
    zaoshu finetune convert work --out work/adapter
    zaoshu finetune merge ./internlm2-chat-7b work/adapter --out merged
    zaoshu finetune chat merged
    zaoshu finetune eval --model ./internlm2-chat-7b --adapter work/adapter --test test.jsonl --out eval/
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from agents.console import make_console
from agents.errors import InputError, output_file, output_folder

app = typer.Typer(help="Fine-tune with XTuner: setup, config, validate, train, convert, merge, chat, eval.",
                  no_args_is_help=True)
console = make_console()

VENV = typer.Option(Path(".venv-xtuner"), "--venv", envvar="ZAOSHU_XTUNER_VENV",
                    help="The XTuner environment (XTUNER_PYTHON, when set, wins).")


def _one_of(flag: str, value: str, choices: tuple[str, ...]) -> None:
    """InputError for a value XTuner's tool would refuse, said before the tool starts: XTuner's own usage error
    came after seconds of imports, in argparse's words, naming its own flag."""
    if value not in choices:
        raise InputError(f"{flag} {value!r}: choose one of {', '.join(choices)}")


def _python(venv: Path) -> Path:
    from finetune.env import find_xtuner_python

    return find_xtuner_python(venv)


def _echo(line: str) -> None:
    console.print(escape(line), highlight=False, soft_wrap=True)


def _exit_on_failure(code: int, what: str) -> None:
    if code != 0:
        console.print(f"[red]{what} failed with exit code {code} (see the log above)[/red]")
        raise typer.Exit(code)


@app.command()
def setup(venv: Path = VENV) -> None:
    """Create the XTuner 0.2.0 environment with the pinned versions (a second run is a no-op)."""
    from finetune.env import setup_env

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    changed = setup_env(venv)
    console.print(f"XTuner environment {'ready' if changed else 'already up to date'}: {venv}/bin/python")


@app.command()
def config(
    preset: str = typer.Option(..., help="internlm2-chat-7b | internlm2-chat-1.8b | internlm2.5-chat-7b | qwen2.5-7b-instruct | tiny"),
    model: Path = typer.Option(..., help="Base model folder (Hugging Face format)."),
    data: Path = typer.Option(..., help="Training JSONL (XTuner conversation or OpenAI messages)."),
    out: Path = typer.Option(..., help="Where to write the XTuner config (.py)."),
    test: Optional[Path] = typer.Option(None, help="Test split: evaluation_inputs are sampled from it."),
    cpu_smoke: bool = typer.Option(False, "--cpu-smoke", help="LoRA in fp32 on CPU (a smoke test; no 4-bit)."),
    system: Optional[str] = typer.Option(None, help="SYSTEM for evaluation chats (default: the data's system prompt)."),
    max_length: Optional[int] = typer.Option(None),
    pack: Optional[bool] = typer.Option(None, "--pack/--no-pack", help="Pack samples to max_length."),
    batch_size: Optional[int] = typer.Option(None),
    accumulative_counts: Optional[int] = typer.Option(None, "--accumulation"),
    epochs: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    warmup_ratio: Optional[float] = typer.Option(None),
    lora_r: Optional[int] = typer.Option(None),
    lora_alpha: Optional[int] = typer.Option(None),
    lora_dropout: Optional[float] = typer.Option(None),
    save_steps: Optional[int] = typer.Option(None),
    evaluation_freq: Optional[int] = typer.Option(None),
) -> None:
    """Write an XTuner config; the model's family fixes the prompt template."""
    from finetune.config_gen import render_config, tokens_comment
    from finetune.spec import build_spec

    spec = build_spec(
        preset=preset, model=model, data=data, test=test, cpu_smoke=cpu_smoke, system=system,
        max_length=max_length, pack_to_max_length=pack, batch_size=batch_size,
        accumulative_counts=accumulative_counts, max_epochs=epochs, lr=lr, warmup_ratio=warmup_ratio,
        lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, save_steps=save_steps,
        evaluation_freq=evaluation_freq,
    )
    output_file(out, example="config.py").write_text(render_config(spec), encoding="utf-8")
    console.print(f"wrote {out}: {spec.family} → template {spec.prompt_template}, "
                  f"{'LoRA fp32 (CPU smoke)' if spec.cpu_smoke else 'QLoRA 4-bit'}, {tokens_comment(spec)}")


@app.command()
def validate(
    data: Path = typer.Argument(..., help="The JSONL (or `--json` export's .json array) to check."),
    config_path: Path = typer.Option(..., "--config", help="The XTuner config it will be trained with."),
    venv: Path = VENV,
) -> None:
    """Run XTuner's template + encode over every record; list each bad record by line; exit 1 if any."""
    from finetune.validate import validate_file

    report = validate_file(data, config_path, _python(venv))
    for warning in report.warning_lines():
        console.print(f"[yellow]{escape(warning)}[/yellow]")
    for line in report.lines():
        console.print(f"[red]{escape(line)}[/red]")
    if not report.ok:
        raise InputError(f"{data}: {len(report.errors)} of {report.records} records are bad: fix them "
                         f"(or re-export) and run `{shlex.join(['zaoshu', 'finetune', 'validate', str(data), '--config', str(config_path)])}` again")
    console.print(f"[green]{data}: all {report.records} records encode with {config_path}[/green]")


@app.command("validate-dpo")
def validate_dpo(
    data: Path = typer.Argument(..., help="An `zaoshu export --format xtuner-dpo` JSONL."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="The model (or tokenizer) folder; it needs a chat template."),
    max_length: int = typer.Option(2048, help="The DPO config's max_length."),
    venv: Path = VENV,
) -> None:
    """Run XTuner's preference loader + tokenize over every pair; list each bad pair by line; exit 1 if any."""
    from finetune.validate import validate_preference_file

    report = validate_preference_file(data, tokenizer, _python(venv), max_length=max_length)
    for warning in report.warnings:
        console.print(f"[yellow]line {warning['line']}: {escape(warning['reason'])}[/yellow]")
    for line in report.lines():
        console.print(f"[red]{escape(line)}[/red]")
    if not report.ok:
        raise InputError(f"{data}: {len(report.errors)} of {report.records} pairs are bad")
    console.print(f"[green]{data}: all {report.records} pairs tokenize with XTuner's preference pipeline[/green]")


@app.command()
def train(
    config_path: Path = typer.Argument(..., metavar="CONFIG", help="XTuner config from `finetune config`."),
    work_dir: Path = typer.Option(Path("work_dirs/run"), help="Logs and checkpoints go here."),
    deepspeed: Optional[str] = typer.Option(None, help="deepspeed_zero2 | deepspeed_zero3 | a JSON file (passed through)."),
    resume: Optional[Path] = typer.Option(None, help="Checkpoint to resume from."),
    seed: Optional[int] = typer.Option(None),
    venv: Path = VENV,
) -> None:
    """`python -m xtuner.tools.train` with the XTuner environment; its logs stream, its exit code is ours."""
    from finetune.runner import stream, train_command
    from finetune.validate import require_config

    require_config(config_path)
    code = stream(train_command(_python(venv), config_path, work_dir, deepspeed=deepspeed, resume=resume, seed=seed), _echo)
    _exit_on_failure(code, "training")


@app.command()
def convert(
    work_dir: Path = typer.Argument(..., help="The training work dir."),
    out: Path = typer.Option(..., help="Adapter folder to write (Hugging Face / peft format)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Default: the latest checkpoint in WORK_DIR."),
    config_path: Optional[Path] = typer.Option(None, "--config", help="Default: the config copied into WORK_DIR."),
    fp32: bool = typer.Option(False, help="Keep the adapter in fp32."),
    venv: Path = VENV,
) -> None:
    """Checkpoint → adapter (`xtuner.tools.model_converters.pth_to_hf`)."""
    from finetune.runner import convert_command, find_config, latest_checkpoint, stream

    pth = checkpoint or latest_checkpoint(work_dir)
    cfg = config_path or find_config(work_dir)
    console.print(f"converting {pth} with {cfg}")
    _exit_on_failure(stream(convert_command(_python(venv), cfg, pth, out, fp32=fp32), _echo), "pth_to_hf")


@app.command()
def merge(
    base: Path = typer.Argument(..., help="Base model folder."),
    adapter: Path = typer.Argument(..., help="Adapter folder from `finetune convert`."),
    out: Path = typer.Option(..., help="Merged model folder (fp16)."),
    device: Optional[str] = typer.Option(None, help="cpu | cuda | npu | auto (default: XTuner's choice)."),
    max_shard_size: str = typer.Option("2GB"),
    venv: Path = VENV,
) -> None:
    """Base + adapter → one model (`xtuner.tools.model_converters.merge`)."""
    from finetune.presets import detect_family
    from finetune.runner import MERGE_DEVICES, merge_command, stream

    if device is not None:
        _one_of("--device", device, MERGE_DEVICES)
    detect_family(base)
    if not (adapter / "adapter_config.json").is_file():
        raise InputError(f"{adapter} is not an adapter folder: create it with `zaoshu finetune convert WORK_DIR --out {adapter}`")
    cmd = merge_command(_python(venv), base, adapter, out, device=device, max_shard_size=max_shard_size)
    _exit_on_failure(stream(cmd, _echo), "merge")


@app.command()
def chat(
    model: Path = typer.Argument(..., help="Merged model, or the base model with --adapter."),
    adapter: Optional[Path] = typer.Option(None),
    system: Optional[str] = typer.Option(None),
    torch_dtype: str = typer.Option("fp16", help="fp16 | bf16 | fp32 (fp32 on CPU) | auto (the model's own)."),
    venv: Path = VENV,
) -> None:
    """Interactive chat (`xtuner.tools.chat`) with the template the model was trained with."""
    import subprocess

    from finetune.presets import detect_family
    from finetune.runner import CHAT_DTYPES, chat_command

    _one_of("--torch-dtype", torch_dtype, CHAT_DTYPES)
    family = detect_family(model)
    cmd = chat_command(_python(venv), model, family.template, adapter=adapter, system=system, torch_dtype=torch_dtype)
    raise typer.Exit(subprocess.call(cmd))


@app.command("eval")
def evaluate(
    test: Path = typer.Option(..., help="Test split JSONL (its first turns are the questions and references)."),
    out: Path = typer.Option(Path("eval"), help="Folder for eval.md and eval.json."),
    model: Optional[Path] = typer.Option(None, help="Local base model folder."),
    adapter: Optional[Path] = typer.Option(None, help="Local adapter (fine-tuned = base + adapter)."),
    tuned: Optional[Path] = typer.Option(None, help="Local merged fine-tuned model (instead of --adapter)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server serving both models."),
    base_name: Optional[str] = typer.Option(None, help="Served name of the base model (with --base-url)."),
    tuned_name: Optional[str] = typer.Option(None, help="Served name of the fine-tuned model (with --base-url)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate the first N questions only."),
    max_new_tokens: int = typer.Option(256),
    venv: Path = VENV,
) -> None:
    """Answer the test split with the base and the fine-tuned model, judge both, write the before/after table."""
    from agents.llm import close_clients, make_client
    from agents.settings import load_settings
    from finetune.evaluate import EndpointAnswerer, LocalAnswerer, load_items, run_eval, write_report
    from finetune.judge import make_llm_judge

    output_folder(out)  # before the answering and judging: a file in the way lost them all at the end
    items = load_items(test, limit)
    settings = load_settings()
    clients = {"judge": make_client(settings.for_role("critic").require_endpoint())}
    judge = make_llm_judge(clients["judge"])
    if base_url:
        if not (base_name and tuned_name):
            raise InputError("with --base-url, name both served models: --base-name BASE --tuned-name TUNED")
        role = settings.for_role("answerer")
        endpoint = {"base_url": base_url, "api_key": role.api_key, "preset": None}
        clients["base"] = make_client(role.model_copy(update={**endpoint, "model": base_name}))
        clients["tuned"] = make_client(role.model_copy(update={**endpoint, "model": tuned_name}))
        base, after = EndpointAnswerer(clients["base"], max_new_tokens), EndpointAnswerer(clients["tuned"], max_new_tokens)
    else:
        if model is None or (adapter is None and tuned is None):
            raise InputError("name the models: --model BASE with --adapter ADAPTER or --tuned MERGED (or use --base-url)")
        from finetune.presets import detect_family

        template = detect_family(model).template
        python = _python(venv)
        base = LocalAnswerer(python, model, template, max_new_tokens=max_new_tokens)
        after = LocalAnswerer(python, tuned or model, template, adapter=None if tuned else adapter,
                              max_new_tokens=max_new_tokens)

    async def evaluate_and_close():  # closed: aiohttp printed "Unclosed connector" for each client at exit
        try:
            return await run_eval(items, base, after, judge)
        finally:
            await close_clients(clients)

    report = asyncio.run(evaluate_and_close())
    md, js = write_report(report, out)
    console.print(report.markdown())
    console.print(f"wrote {md} and {js}")

