"""The whole CPU pipeline through our wrappers: setup → export a run → config → validate → train → convert
→ merge → generate → eval, on tiny random Qwen2 and InternLM2 models; plus every real preset's QLoRA config.

Slow (~2–3 min on 2 cores, most of it the first `finetune setup`): `pytest -m slow tests/test_finetune_pipeline.py`.
It uses the repository's `.venv-xtuner` (created through `zaoshu finetune setup` when missing) and
skips only when that environment cannot be created because the package index is unreachable.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner

from agents.errors import ConfigError, InputError
from agents.schemas import Sample, Turn
from finetune.cli import app
from finetune.evaluate import LocalAnswerer, load_items, run_eval, write_report
from finetune.export import export_run
from finetune.runner import parse_losses

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv-xtuner"
SYSTEM = "你是悟了悟了，专注于回答《黑神话：悟空》相关的问题。"
QA = [
    ("天命人是谁？", "天命人是《黑神话：悟空》中玩家操控的角色。"),
    ("孙悟空被压在哪里？", "孙悟空被如来佛祖压在五行山下五百年。"),
    ("主宾坐在哪里？", "主宾通常坐在面对门口的位置。"),
    ("睡不着怎么办？", "可以试着规律作息，睡前少看手机。"),
    ("只剩一个心脏了还能活吗？", "能，人本来就只有一个心脏。"),
    ("祝姐姐生日快乐", "祝姐姐生日快乐，愿你每天都开开心心！"),
    ("大圣留下了什么？", "大圣留下了六件根器。"),
    ("为什么我爸妈结婚没邀请我？", "因为那时你还没有出生。"),
]


def _index_reachable() -> bool:
    try:
        out = subprocess.run(["pip", "config", "get", "global.index-url"], capture_output=True, text=True).stdout.strip()
    except OSError:
        out = ""
    host = urlparse(out or "https://pypi.org/simple").hostname or "pypi.org"
    try:
        socket.create_connection((host, 443), timeout=5).close()
        return True
    except OSError:
        return False


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--venv", str(VENV)] if args[0] != "config" else list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def xpy(code: str, *args: str) -> dict:
    """Run `code` with the XTuner environment's python; it prints one JSON line last."""
    proc = subprocess.run([str(VENV / "bin" / "python"), "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def xtuner_env() -> Path:
    result = CliRunner().invoke(app, ["setup", "--venv", str(VENV)])
    if isinstance(result.exception, ConfigError) and not _index_reachable():
        pytest.skip(f"no XTuner environment and the package index is unreachable: {result.exception}")
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(app, ["setup", "--venv", str(VENV)])
    assert "already up to date" in again.output  # idempotent
    return VENV / "bin" / "python"


def tiny_model(xtuner_env: Path, root: Path, family: str = "qwen2") -> Path:
    """A tiny random model of `family` (tests/tiny_models.py), made with the XTuner environment's transformers."""
    model = root / f"tiny-{family}"
    subprocess.run([str(xtuner_env), str(REPO / "tests" / "tiny_models.py"), family, str(model)], check=True,
                   capture_output=True, timeout=300)
    return model


def config_and_validate(train: Path, cfg: Path, model: Path, n: int) -> None:
    """`finetune config --cpu-smoke` for `train`, then `finetune validate` of it against that config: all n encode."""
    code, out = run_cli("config", "--preset", "tiny", "--model", str(model), "--data", str(train), "--out", str(cfg),
                        "--cpu-smoke")
    assert code == 0, out
    code, out = run_cli("validate", str(train), "--config", str(cfg))
    assert code == 0 and f"{train}: all {n} records encode" in " ".join(out.split()), out


def make_run(root: Path, n: int = 16) -> Path:
    run = root / "runs" / "wulewule" / "r1"
    run.mkdir(parents=True)
    lines = []
    for i in range(n):
        q, a = QA[i % len(QA)]
        sample = Sample.new(recipe="wulewule", kind="qa", key={"i": i}, system=SYSTEM, turns=[Turn(input=q, output=a)],
                            meta={"aspect": "主要角色"})
        lines.append(sample.model_dump_json() + "\n")
    (run / "accepted.jsonl").write_text("".join(lines), encoding="utf-8")
    return run


def test_validate_reads_the_files_that_config_and_xtuner_accept(xtuner_env, tmp_path):
    """`zaoshu export --json` writes train.json (one array), `finetune config` takes it and XTuner's
    load_dataset("json") reads it; validate read it line by line: "74 of 74 records are bad" for 8 records.
    A file saved with a UTF-8 BOM (Windows Notepad's "UTF-8"), JSONL or JSON, is read by config and by
    XTuner too; validate called its first record bad ("Unexpected UTF-8 BOM")."""
    model = tiny_model(xtuner_env, tmp_path)
    train = export_run(make_run(tmp_path, n=8), "xtuner", as_json=True).files["all"]
    assert train.suffix == ".json"
    cfg = tmp_path / "cfg.py"
    config_and_validate(train, cfg, model, 8)

    records = json.loads(train.read_text(encoding="utf-8"))
    records[1]["conversation"][0]["output"] = ""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records[:3], ensure_ascii=False, indent=2), encoding="utf-8")
    with pytest.raises(InputError, match="1 of 3 records are bad"):
        run_cli("validate", str(bad), "--config", str(cfg))
    result = CliRunner().invoke(app, ["validate", str(bad), "--config", str(cfg), "--venv", str(VENV)])
    assert "record 2: turn 1 has an empty 'output'" in " ".join(result.output.split()), result.output

    bom = b"\xef\xbb\xbf"
    (tmp_path / "bom.jsonl").write_bytes(bom + "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                       for r in json.loads(train.read_text("utf-8"))).encode("utf-8"))
    (tmp_path / "bom.json").write_bytes(bom + train.read_bytes())
    for data in (tmp_path / "bom.jsonl", tmp_path / "bom.json"):
        code, out = run_cli("validate", str(data), "--config", str(cfg))
        assert code == 0 and f"{data}: all 8 records encode" in " ".join(out.split()), out


COMPARE = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
base, adapter, merged = sys.argv[1:4]
tok = AutoTokenizer.from_pretrained(merged, trust_remote_code=True)
ids = tok("<|im_start|>user\n天命人是谁？<|im_end|>\n<|im_start|>assistant\n", return_tensors="pt").input_ids
m = AutoModelForCausalLM.from_pretrained(merged, trust_remote_code=True, torch_dtype=torch.float32).eval()
p = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, trust_remote_code=True,
                              torch_dtype=torch.float32), adapter).eval()
b = AutoModelForCausalLM.from_pretrained(base, trust_remote_code=True, torch_dtype=torch.float32).eval()
with torch.no_grad():
    lm, lp, lb = m(ids).logits, p(ids).logits, b(ids).logits
    gen = m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                     pad_token_id=tok.pad_token_id)
print(json.dumps({"merged_vs_adapter": (lm - lp).abs().max().item(), "adapter_vs_base": (lp - lb).abs().max().item(),
                  "new_tokens": gen.shape[1] - ids.shape[1],
                  "same_argmax": bool((lm.argmax(-1) == lp.argmax(-1)).float().mean() > 0.9)}))
"""


@pytest.mark.parametrize("family", ["qwen2", "internlm2"])
def test_cpu_pipeline(xtuner_env, tmp_path, family):
    model = tiny_model(xtuner_env, tmp_path, family)

    exported = export_run(make_run(tmp_path), "xtuner", split=0.75, seed=42)
    train, test = exported.files["train"], exported.files["test"]
    assert exported.counts == {"train": 12, "test": 4}

    cfg = tmp_path / "cfg.py"
    code, out = run_cli("config", "--preset", "tiny", "--model", str(model), "--data", str(train), "--test", str(test),
                        "--out", str(cfg), "--cpu-smoke", "--epochs", "3")
    assert code == 0, out
    template = {"qwen2": "qwen_chat", "internlm2": "internlm2_chat"}[family]
    assert f"template {template}, LoRA fp32 (CPU smoke)" in out

    code, out = run_cli("validate", str(train), "--config", str(cfg))
    assert code == 0 and "all 12 records encode" in out, out

    bad = tmp_path / "bad.jsonl"
    bad.write_text(train.read_text(encoding="utf-8").splitlines()[0] + "\n"
                   + '{"conversation": [{"input": "缺输出"}]}\n{"messages": []}\n', encoding="utf-8")
    with pytest.raises(InputError, match="2 of 3 records are bad"):
        run_cli("validate", str(bad), "--config", str(cfg))

    work = tmp_path / "work"
    code, out = run_cli("train", str(cfg), "--work-dir", str(work))
    assert code == 0, out[-3000:]
    losses = [loss for _, loss in parse_losses(out.splitlines())]
    assert len(losses) == 36  # 12 records × 3 epochs, batch 1
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6 - 0.05, losses

    adapter = tmp_path / "adapter"
    code, out = run_cli("convert", str(work), "--out", str(adapter), "--fp32")
    assert code == 0 and (adapter / "adapter_config.json").is_file(), out[-3000:]

    merged = tmp_path / "merged"
    code, out = run_cli("merge", str(model), str(adapter), "--out", str(merged), "--device", "cpu")
    assert code == 0 and (merged / "config.json").is_file(), out[-3000:]

    check = xpy(COMPARE, str(model), str(adapter), str(merged))
    assert check["new_tokens"] > 0
    assert check["adapter_vs_base"] > 1e-3  # training changed the model …
    assert check["merged_vs_adapter"] < 0.05 and check["same_argmax"], check  # … and merging kept the change (fp16)

    items = load_items(test)

    async def judge(question, reference, answer):
        return 1.0 if answer else 0.0

    import asyncio

    report = asyncio.run(run_eval(items, LocalAnswerer(xtuner_env, model, template, max_new_tokens=8),
                                  LocalAnswerer(xtuner_env, model, template, adapter=adapter, max_new_tokens=8), judge))
    md, _ = write_report(report, tmp_path / "eval")
    assert report.summary["n"] == 4 and len(report.rows) == 4
    assert md.read_text(encoding="utf-8").startswith("| # | 问题 | base | 得分 | fine-tuned | 得分 |")


QLORA = r"""
import json, sys
from mmengine.config import Config
from xtuner.registry import BUILDER
out = {}
for path in sys.argv[1:]:
    cfg = Config.fromfile(path)
    q = BUILDER.build(cfg.model.llm.quantization_config)
    out[path] = [type(q).__name__, q.load_in_4bit, q.bnb_4bit_quant_type, q.bnb_4bit_use_double_quant, str(q.bnb_4bit_compute_dtype),
                 cfg.prompt_template["INSTRUCTION"]]
print(json.dumps(out))
"""


def test_real_presets_build_their_qlora_config(xtuner_env, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"conversation": [{"system": SYSTEM, "input": "你好", "output": "你好！"}]},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    configs = []
    for preset, model_type in [("internlm2-chat-7b", "internlm2"), ("internlm2-chat-1.8b", "internlm2"),
                               ("internlm2.5-chat-7b", "internlm2"), ("qwen2.5-7b-instruct", "qwen2")]:
        model = tmp_path / preset
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"model_type": model_type}))
        cfg = tmp_path / f"{preset}.py"
        code, out = run_cli("config", "--preset", preset, "--model", str(model), "--data", str(data), "--out", str(cfg))
        assert code == 0, out
        configs.append(str(cfg))
    built = xpy(QLORA, *configs)
    for path in configs:
        assert built[path][:5] == ["BitsAndBytesConfig", True, "nf4", True, "torch.float16"]
        assert built[path][5] == "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"


def test_validate_against_a_pretraining_config_refuses_chat_records(xtuner_env, tmp_path):
    """`finetune config` on a pretrain export writes template_map_fn=None; validating the chat export against
    that config said "all 8 records encode" (with the chat template it never applies), while training would
    learn each answer without its system prompt or template."""
    model = tiny_model(xtuner_env, tmp_path)
    run = make_run(tmp_path, n=8)
    pretrain = export_run(run, "pretrain").files["all"]
    chat = export_run(run, "xtuner").files["all"]
    cfg = tmp_path / "pretrain_cfg.py"
    config_and_validate(pretrain, cfg, model, 8)
    result = CliRunner().invoke(app, ["validate", str(chat), "--config", str(cfg), "--venv", str(VENV)])
    assert isinstance(result.exception, InputError) and "8 of 8 records are bad" in str(result.exception)
    assert ("line 1: a chat record (an input or a system prompt), but the config is incremental pretraining "
            "(template_map_fn=None)") in " ".join(result.output.split())
