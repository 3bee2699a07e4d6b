"""Config generation per preset: family → template, QLoRA fields, tokens per step, CPU smoke, bad inputs."""

from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.errors import InputError
from finetune.cli import app
from finetune.config_gen import render_config
from finetune.presets import PRESETS
from finetune.spec import build_spec

SYSTEM = "你是悟了悟了，专注于回答《黑神话：悟空》相关的问题。"


def fake_model(root: Path, model_type: str) -> Path:
    model = root / f"model-{model_type}"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": model_type}), encoding="utf-8")
    return model


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def xtuner_records(n: int, system: str = SYSTEM) -> list[dict]:
    return [{"conversation": [{"system": system, "input": f"问题{i}？", "output": f"回答{i}。"}]} for i in range(n)]


def assignments(text: str) -> dict[str, ast.expr]:
    """Top-level `name = value` nodes of a config."""
    tree = ast.parse(text)
    return {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def keyword(call: ast.Call, name: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == name)


@pytest.mark.parametrize(("preset", "model_type", "template"), [
    ("internlm2-chat-7b", "internlm2", "internlm2_chat"),
    ("internlm2-chat-1.8b", "internlm2", "internlm2_chat"),
    ("internlm2.5-chat-7b", "internlm2", "internlm2_chat"),
    ("qwen2.5-7b-instruct", "qwen2", "qwen_chat"),
])
def test_real_preset_writes_qlora_config_with_the_family_template(tmp_path, preset, model_type, template):
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(5))
    test = write_jsonl(tmp_path / "test.jsonl", xtuner_records(4, system=SYSTEM)[1:])
    spec = build_spec(preset=preset, model=fake_model(tmp_path, model_type), data=data, test=test)
    text = render_config(spec)
    compile(text, "cfg.py", "exec")
    values = assignments(text)
    assert ast.unparse(values["prompt_template"]) == f"PROMPT_TEMPLATE.{template}"
    assert ast.literal_eval(values["SYSTEM"]) == SYSTEM
    assert sorted(ast.literal_eval(values["evaluation_inputs"])) == ["问题1？", "问题2？", "问题3？"]
    assert (ast.literal_eval(values["max_length"]), ast.literal_eval(values["batch_size"]),
            ast.literal_eval(values["accumulative_counts"])) == (2048, 1, 16)
    assert "# 1 batch × 16 accumulation × 2048 tokens = 32,768 tokens/step\n" in text
    llm = keyword(values["model"], "llm")
    assert ast.unparse(keyword(llm, "torch_dtype")) == "torch.float16"
    bnb = keyword(llm, "quantization_config")
    assert ast.literal_eval(keyword(bnb, "load_in_4bit")) is True
    assert ast.literal_eval(keyword(bnb, "bnb_4bit_quant_type")) == "nf4"
    assert ast.literal_eval(keyword(bnb, "bnb_4bit_use_double_quant")) is True
    lora = keyword(values["model"], "lora")
    assert [ast.literal_eval(keyword(lora, k)) for k in ("r", "lora_alpha", "lora_dropout")] == [64, 16, 0.1]
    dataset = keyword(values["train_dataset"], "dataset_map_fn")
    assert ast.unparse(dataset) == "None"
    assert ast.unparse(keyword(values["optim_wrapper"], "type")) == "AmpOptimWrapper"
    assert "is_bf16_supported" not in text
    assert ast.literal_eval(values["warmup_ratio"]) == 0.03 and "type=LinearLR" in text


def test_openai_messages_data_uses_openai_map_fn(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [
        {"messages": [{"role": "system", "content": "你是天机"}, {"role": "user", "content": "祝姐姐生日快乐"},
                      {"role": "assistant", "content": "祝姐姐生日快乐，万事如意！"}]}])
    spec = build_spec(preset="qwen2.5-7b-instruct", model=fake_model(tmp_path, "qwen2"), data=data)
    values = assignments(render_config(spec))
    assert spec.data_format == "openai"
    assert ast.unparse(keyword(values["train_dataset"], "dataset_map_fn")) == "openai_map_fn"
    assert ast.literal_eval(values["SYSTEM"]) == "你是天机"
    assert ast.literal_eval(values["evaluation_inputs"]) == ["祝姐姐生日快乐"]


def test_cpu_smoke_is_fp32_lora_with_cpu_workarounds(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(3))
    spec = build_spec(preset="tiny", model=fake_model(tmp_path, "qwen2"), data=data, cpu_smoke=True)
    text = render_config(spec)
    values = assignments(text)
    llm = keyword(values["model"], "llm")
    assert ast.unparse(keyword(llm, "torch_dtype")) == "torch.float32"
    assert "quantization_config" not in ast.unparse(llm)
    assert 'setattr(__import__("torch").cpu, "is_bf16_supported", lambda: False)' in text
    assert ast.unparse(keyword(values["optim_wrapper"], "type")) == "OptimWrapper"
    assert ast.literal_eval(keyword(values["train_dataset"], "map_num_proc")) == 1
    assert ast.literal_eval(values["warmup_ratio"]) == 0.0 and "type=LinearLR" not in text
    assert "# 1 batch × 1 accumulation × 256 tokens = at most 256 tokens/step (no packing)\n" in text


def test_overrides_change_the_tokens_comment(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(3))
    spec = build_spec(preset="internlm2-chat-7b", model=fake_model(tmp_path, "internlm2"), data=data,
                      batch_size=2, accumulative_counts=8, max_length=1024, lr=None)
    assert spec.lr == 2e-4 and spec.tokens_per_step == 16384
    assert "# 2 batch × 8 accumulation × 1024 tokens = 16,384 tokens/step\n" in render_config(spec)


def test_system_with_quotes_stays_valid_python(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(2, system='他说："别\'走\'"\n换行'))
    spec = build_spec(preset="tiny", model=fake_model(tmp_path, "qwen2"), data=data, cpu_smoke=True)
    assert ast.literal_eval(assignments(render_config(spec))["SYSTEM"]) == '他说："别\'走\'"\n换行'


@pytest.mark.parametrize(("kind", "expected"), [
    ("missing_model", "does not exist: download the base model first"),
    ("unknown_family", "unknown model family 'llama'"),
    ("family_mismatch", "preset 'qwen2.5-7b-instruct' is for qwen2 models but"),
    ("unknown_preset", "unknown preset 'gpt-5'"),
    ("missing_data", "does not exist: export a run first"),
    ("not_chat_data", "holds no XTuner ('conversation') or OpenAI ('messages') records"),
])
def test_bad_input_gives_one_clear_message(tmp_path, kind, expected):
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(2))
    args = {"preset": "qwen2.5-7b-instruct", "model": fake_model(tmp_path, "qwen2"), "data": data}
    if kind == "missing_model":
        args["model"] = tmp_path / "nope"
    elif kind == "unknown_family":
        args["model"] = fake_model(tmp_path, "llama")
    elif kind == "family_mismatch":
        args["model"] = fake_model(tmp_path, "internlm2")
    elif kind == "unknown_preset":
        args["preset"] = "gpt-5"
    elif kind == "missing_data":
        args["data"] = tmp_path / "missing.jsonl"
    else:
        args["data"] = write_jsonl(tmp_path / "alpaca.jsonl", [{"instruction": "a", "output": "b"}])
    with pytest.raises(InputError) as err:
        build_spec(**args)
    assert expected in str(err.value)


def test_the_download_command_for_a_missing_model_runs_as_printed(tmp_path):
    """A model folder with a space or a quote in its path: the printed `--local-dir my models/奇怪'名` split into
    three words in a shell (and an unclosed quote), so the command the error gave did not work."""
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(2))
    model = tmp_path / "my models" / "奇怪'名"
    result = CliRunner().invoke(app, ["config", "--preset", "internlm2-chat-1.8b", "--model", str(model),
                                      "--data", str(data), "--out", str(tmp_path / "a.py")])
    assert isinstance(result.exception, InputError)
    printed = str(result.exception).split("`")[1]
    assert shlex.split(printed) == ["huggingface-cli", "download", "internlm/internlm2-chat-1_8b", "--local-dir",
                                    str(model)]


def test_a_missing_model_names_the_presets_own_model_to_download(tmp_path):
    """An internlm2 preset with no model folder suggested downloading Qwen/Qwen2.5-7B-Instruct, the wrong family."""
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(2))
    result = CliRunner().invoke(app, ["config", "--preset", "internlm2-chat-1.8b", "--model", str(tmp_path / "m"),
                                      "--data", str(data), "--out", str(tmp_path / "a.py")])
    assert isinstance(result.exception, InputError)  # `zaoshu` prints it as one line (recipes.base.run_app)
    message = str(result.exception)
    assert f"huggingface-cli download internlm/internlm2-chat-1_8b --local-dir {tmp_path / 'm'}" in message
    assert "Qwen" not in message and not (tmp_path / "a.py").exists()


def test_cli_config_writes_the_file_and_reports_the_template(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(3))
    model = fake_model(tmp_path, "internlm2")
    result = CliRunner().invoke(app, ["config", "--preset", "internlm2-chat-1.8b", "--model", str(model),
                                      "--data", str(data), "--out", str(tmp_path / "cfg" / "a.py")])
    assert result.exit_code == 0, result.output
    assert "internlm2 → template internlm2_chat, QLoRA 4-bit" in result.output
    assert "PROMPT_TEMPLATE.internlm2_chat" in (tmp_path / "cfg" / "a.py").read_text(encoding="utf-8")


def test_cli_bad_input_raises_the_user_error(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(3))
    result = CliRunner().invoke(app, ["config", "--preset", "tiny", "--model", str(tmp_path / "missing"),
                                      "--data", str(data), "--out", str(tmp_path / "a.py")])
    assert isinstance(result.exception, InputError)  # the root CLI prints it as one red line
    assert not (tmp_path / "a.py").exists()


def test_every_real_preset_names_a_known_family():
    assert {p.family for p in PRESETS.values()} == {"internlm2", "qwen2", None}


def test_a_pretraining_export_gets_no_chat_template(tmp_path):
    """XTuner's incremental pretraining learns the text as it is (template_map_fn=None); a chat template
    had wrapped every chunk as the answer to an empty user turn."""
    chunks = write_jsonl(tmp_path / "pretrain.jsonl", [{"conversation": [{"input": "", "output": f"第{i}回 正文。"}]}
                                                       for i in range(3)])
    chat = write_jsonl(tmp_path / "train.jsonl", xtuner_records(3))
    model = fake_model(tmp_path, "qwen2")
    for data, out in ((chunks, "p.py"), (chat, "c.py")):
        result = CliRunner().invoke(app, ["config", "--preset", "qwen2.5-7b-instruct", "--model", str(model),
                                          "--data", str(data), "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    pretrain, sft = (assignments((tmp_path / name).read_text(encoding="utf-8"))["train_dataset"] for name in ("p.py", "c.py"))
    assert ast.unparse(keyword(pretrain, "template_map_fn")) == "None"
    assert ast.unparse(keyword(sft, "template_map_fn")) == "dict(type=template_map_fn_factory, template=prompt_template)"


def test_the_commands_a_missing_file_message_suggests_run_as_printed(tmp_path):
    """A path with a space was printed bare, so the suggested command split it in two."""
    folder = tmp_path / "my runs"
    checks = [(["train", str(folder / "c.py")], "--out"),
              (["convert", str(folder / "work"), "--out", str(tmp_path / "adapter")], "--work-dir")]
    for args, option in checks:
        result = CliRunner().invoke(app, args)
        assert isinstance(result.exception, InputError), result.output
        command = str(result.exception).split("`")[1]
        assert shlex.split(command)[shlex.split(command).index(option) + 1].startswith(str(folder)), command


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--lr", "-1", "Invalid value for '--lr': -1.0. Input should be greater than 0"),
    ("--warmup-ratio", "1", "Invalid value for '--warmup-ratio': 1.0. Input should be less than 1"),
    ("--epochs", "0", "Invalid value for '--epochs': 0. Input should be greater than 0"),
])
def test_a_bad_flag_value_is_one_line_naming_the_flag(tmp_path, flag, value, expected):
    """`--lr -1` printed pydantic's four lines: 'invalid training settings: 1 validation error for TrainSpec',
    the field, the message with its [type=…], and a link."""
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(3))
    model = fake_model(tmp_path, "internlm2")
    result = CliRunner().invoke(app, ["config", "--preset", "internlm2-chat-1.8b", "--model", str(model),
                                      "--data", str(data), "--out", str(tmp_path / "a.py"), flag, value])
    assert isinstance(result.exception, InputError)  # the root CLI prints it as one red line
    assert str(result.exception) == expected
    assert not (tmp_path / "a.py").exists()


@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_cli_config_out_that_cannot_be_a_file_is_one_line(tmp_path, where, capsys):
    """`--out` naming a folder (IsADirectoryError) or a path under a file (FileExistsError) was a traceback."""
    from tests.test_reasoning import zaoshu

    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(3))
    out = tmp_path if where == "folder" else data / "cfg.py"
    code = zaoshu("finetune", "config", "--preset", "tiny", "--model", fake_model(tmp_path, "qwen2"),
                  "--data", data, "--out", out)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "Traceback" not in err
    assert (f"error: --out {out} is a folder; give a file path, e.g. {out / 'config.py'}" if where == "folder"
            else f"error: --out {out}: {data} is a file, not a folder") in err
    assert len(data.read_text(encoding="utf-8").splitlines()) == 3


@pytest.mark.parametrize("flag", ["--lr", "--warmup-ratio", "--lora-dropout"])
@pytest.mark.parametrize("value", ["inf", "nan"])
def test_cli_config_refuses_a_number_that_is_not_finite(tmp_path, flag, value, capsys):
    """`--lr inf` wrote `lr = inf`, a NameError when XTuner loaded the config at `finetune train`."""
    from tests.test_reasoning import zaoshu

    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(3))
    out = tmp_path / "cfg.py"
    code = zaoshu("finetune", "config", "--preset", "tiny", "--model", fake_model(tmp_path, "qwen2"),
                  "--data", data, "--out", out, flag, value)
    assert code == 1
    assert capsys.readouterr().err.strip() == f"error: Invalid value for '{flag}': {value}. Input should be a finite number"
    assert not out.exists()


@pytest.mark.parametrize("command,content,said", [
    ("validate", "\n\n", "records"), ("validate", "[]", "records"), ("validate-dpo", "", "pairs")])
def test_validate_an_empty_file_says_it_is_empty(tmp_path, monkeypatch, capsys, command, content, said):
    """An empty export said 'error: train.jsonl: 0 of 0 records are bad: fix them (or re-export)'."""
    import sys

    from tests.test_reasoning import zaoshu

    monkeypatch.setenv("XTUNER_PYTHON", sys.executable)
    data = tmp_path / ("train.json" if content == "[]" else "train.jsonl")
    data.write_text(content, encoding="utf-8")
    cfg = tmp_path / "cfg.py"
    cfg.write_text("", encoding="utf-8")
    args = ["--config", cfg] if command == "validate" else ["--tokenizer", tmp_path]
    assert zaoshu("finetune", command, data, *args) == 1
    fmt = "xtuner" if command == "validate" else "xtuner-dpo"
    assert " ".join(capsys.readouterr().err.split()) == (
        f"error: {data} holds no {said}: nothing to validate; export a run first (`zaoshu export RUN --format {fmt}`)")


def test_a_file_that_mixes_both_formats_gets_no_config(tmp_path, capsys):
    """Two exports joined with `cat`, one XTuner and one OpenAI: config wrote the first record's format's config
    (no map function), and training failed on the first OpenAI record it met."""
    from tests.test_reasoning import zaoshu

    openai = [{"messages": [{"role": "user", "content": f"问{i}"}, {"role": "assistant", "content": f"答{i}"}]}
              for i in range(2)]
    data = write_jsonl(tmp_path / "train.jsonl", xtuner_records(3) + openai)
    cfg = tmp_path / "cfg.py"
    args = ["config", "--preset", "tiny", "--model", fake_model(tmp_path, "qwen2"), "--data", data, "--out", cfg]
    assert zaoshu("finetune", *args) == 1
    assert " ".join(capsys.readouterr().err.split()) == (
        f"error: {data} mixes XTuner ('conversation') records (the first on line 1) and OpenAI ('messages') records "
        f"(the first on line 4): XTuner reads one format a file; join them with `zaoshu merge {data} --out merged` "
        "and export that with one --format")
    assert not cfg.exists()


@pytest.mark.parametrize("command", ["config", "validate"])
def test_a_gbk_file_is_named_not_utf8(tmp_path, monkeypatch, capsys, command):
    """A training file saved as GBK: config said it 'holds no XTuner or OpenAI records: export it with …',
    validate said 'the validator could not run with cfg.py: UnicodeDecodeError …', blaming the config."""
    import sys

    from tests.test_reasoning import zaoshu

    monkeypatch.setenv("XTUNER_PYTHON", sys.executable)
    data = tmp_path / "train.jsonl"
    data.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in xtuner_records(3)).encode("gbk"))
    cfg = tmp_path / "cfg.py"
    if command == "config":
        args = ["config", "--preset", "tiny", "--model", fake_model(tmp_path, "qwen2"), "--data", data, "--out", cfg]
    else:
        cfg.write_text("", encoding="utf-8")
        args = ["validate", data, "--config", cfg]
    assert zaoshu("finetune", *args) == 1
    assert " ".join(capsys.readouterr().err.split()) == (
        f"error: {data}: lines 1, 2, 3 are not UTF-8 text; convert the file, e.g. "
        f"`iconv -f gbk -t utf-8 {data} > {tmp_path / 'train.utf8.jsonl'}`")
    assert command == "validate" or not cfg.exists()


@pytest.mark.parametrize("fmt,said", [
    ("xtuner-dpo", "holds preference pairs (xtuner-dpo), not SFT records: check them with "
                   "`zaoshu finetune validate-dpo {data} --tokenizer MODEL_DIR`"),
    ("dpo", "holds LLaMA-Factory preference pairs (dpo), which XTuner does not read: export the run with "
            "--format xtuner-dpo for XTuner's DPO, or --format xtuner for SFT")])
def test_validate_a_preference_file_points_to_the_right_check(tmp_path, monkeypatch, capsys, fmt, said):
    """`finetune validate exports/xtuner-dpo/all.jsonl --config cfg.py`: every pair was 'record is neither
    format but the config expects xtuner: regenerate the config' — the config was not the problem."""
    import sys

    from tests.test_reasoning import zaoshu

    monkeypatch.setenv("XTUNER_PYTHON", sys.executable)
    pair = ({"prompt": [{"role": "user", "content": "问"}], "chosen": [{"role": "assistant", "content": "好。"}],
             "rejected": [{"role": "assistant", "content": "坏。"}]} if fmt == "xtuner-dpo" else
            {"conversations": [{"from": "human", "value": "问"}], "chosen": {"from": "gpt", "value": "好。"},
             "rejected": {"from": "gpt", "value": "坏。"}})
    data = write_jsonl(tmp_path / "all.jsonl", [pair, pair])
    cfg = tmp_path / "cfg.py"
    cfg.write_text("", encoding="utf-8")
    assert zaoshu("finetune", "validate", data, "--config", cfg) == 1
    assert " ".join(capsys.readouterr().err.split()) == f"error: {data} " + said.format(data=data)


def test_train_given_a_folder_says_it_is_a_folder(tmp_path, capsys):
    """`zaoshu finetune train work_dirs/run` (a folder) said 'config work_dirs/run does not exist'."""
    from tests.test_reasoning import zaoshu

    assert zaoshu("finetune", "train", tmp_path) == 1
    assert " ".join(capsys.readouterr().err.split()) == (
        f"error: config {tmp_path} is a folder: give the .py file `zaoshu finetune config … --out` wrote "
        f"(e.g. {tmp_path / 'config.py'})")


@pytest.mark.parametrize("args,said", [
    (["chat", "{model}", "--torch-dtype", "fp64"], "--torch-dtype 'fp64': choose one of fp16, bf16, fp32, auto"),
    (["merge", "{model}", "{adapter}", "--out", "{out}", "--device", "gpu"],
     "--device 'gpu': choose one of cuda, cpu, npu, auto"),
])
def test_a_value_xtuners_tool_refuses_is_one_line_before_it_starts(tmp_path, monkeypatch, capsys, args, said):
    """`finetune chat --torch-dtype fp64` started XTuner, which printed its argparse usage and `chat.py: error:
    argument --torch-dtype: invalid choice` after seconds of imports; merge's --device the same."""
    import subprocess
    import sys

    from tests.test_reasoning import zaoshu

    started = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, *a, **k: started.append(cmd) or 0)
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, *a, **k: started.append(cmd) or 1 / 0)
    monkeypatch.setenv("XTUNER_PYTHON", sys.executable)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    paths = {"model": fake_model(tmp_path, "qwen2"), "adapter": adapter, "out": tmp_path / "merged"}
    assert zaoshu("finetune", *(a.format(**paths) for a in args)) == 1
    assert " ".join(capsys.readouterr().err.split()) == f"error: {said}"
    assert started == []


def test_chat_passes_a_dtype_xtuner_takes(tmp_path, monkeypatch):
    import subprocess
    import sys

    from tests.test_reasoning import zaoshu

    started = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, *a, **k: started.append(cmd) or 0)
    monkeypatch.setenv("XTUNER_PYTHON", sys.executable)
    assert zaoshu("finetune", "chat", fake_model(tmp_path, "qwen2"), "--torch-dtype", "auto") == 0
    assert started[0][:3] == [sys.executable, "-m", "xtuner.tools.chat"]
    assert started[0][started[0].index("--torch-dtype") + 1] == "auto"
