"""Run XTuner's tools with the XTuner environment's python: real exit codes, logs streamed line by line.

The `xtuner` console command always exits 0 and runs whatever `python` is first on PATH, so every
wrapper calls `python -m xtuner.tools.…` with the XTuner environment's interpreter instead.

>>> train_command(Path("/x/python"), Path("cfg.py"), Path("work"), deepspeed="deepspeed_zero2")[-4:]
['--work-dir', 'work', '--deepspeed', 'deepspeed_zero2']
>>> latest_checkpoint.__name__
'latest_checkpoint'
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

from agents.errors import InputError

log = logging.getLogger(__name__)

LineSink = Callable[[str], None]
_ITER = re.compile(r"^(iter|epoch)_(\d+)\.pth$")
LOSS = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/\s*(\d+)\].*?\bloss: ([0-9.]+(?:e[-+]?\d+)?)")


def stream(cmd: list[str], on_line: LineSink | None = None, env: dict[str, str] | None = None) -> int:
    """Run `cmd`, hand every output line (stdout and stderr merged) to `on_line`, return the exit code."""
    log.info("$ %s", " ".join(cmd))
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
        bufsize=1, env=env,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if on_line is not None:
                on_line(line.rstrip("\n"))
        return proc.wait()


def parse_losses(lines: list[str]) -> list[tuple[int, float]]:
    """`(iteration, loss)` pairs from mmengine's training log lines.

    >>> parse_losses(["Iter(train) [ 3/24]  lr: 2e-03  grad_norm: 0.9  loss: 6.3618", "other"])
    [(3, 6.3618)]
    """
    return [(int(m.group(1)), float(m.group(3))) for line in lines if (m := LOSS.search(line))]


def latest_checkpoint(work_dir: Path) -> Path:
    """The newest checkpoint of a training run: mmengine's `last_checkpoint` file, else the highest `iter_N.pth`.

    DeepSpeed checkpoints are folders named `iter_N.pth`; both kinds count.
    """
    if not work_dir.is_dir():
        raise InputError(f"work dir {work_dir} does not exist: train first with `zaoshu finetune train CFG.py --work-dir {shlex.quote(str(work_dir))}`")
    marker = work_dir / "last_checkpoint"
    if marker.is_file():
        recorded = Path(marker.read_text(encoding="utf-8").strip())
        candidate = recorded if recorded.is_absolute() else work_dir / recorded
        if candidate.exists():
            return candidate
        candidate = work_dir / recorded.name  # the work dir was moved after training
        if candidate.exists():
            return candidate
    found = [(m.group(1) == "iter", int(m.group(2)), p) for p in work_dir.iterdir() if (m := _ITER.match(p.name))]
    if not found:
        raise InputError(
            f"no checkpoint (iter_N.pth) in {work_dir}: train first with `zaoshu finetune train CFG.py --work-dir {shlex.quote(str(work_dir))}`"
        )
    return max(found)[2]


def find_config(work_dir: Path) -> Path:
    """The config XTuner copied into the work dir (the one the checkpoint was trained with)."""
    configs = sorted(p for p in work_dir.glob("*.py"))
    if len(configs) != 1:
        raise InputError(f"expected one config .py in {work_dir}, found {len(configs)}: pass --config CFG.py")
    return configs[0]


def train_command(python: Path, config: Path, work_dir: Path, *, deepspeed: str | None = None,
                  resume: Path | None = None, seed: int | None = None) -> list[str]:
    """`python -m xtuner.tools.train` with our options; deepspeed is passed through (e.g. deepspeed_zero2)."""
    cmd = [str(python), "-m", "xtuner.tools.train", str(config), "--work-dir", str(work_dir)]
    if deepspeed:
        cmd += ["--deepspeed", deepspeed]
    if resume:
        cmd += ["--resume", str(resume)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    return cmd


def convert_command(python: Path, config: Path, checkpoint: Path, save_dir: Path, *, fp32: bool = False) -> list[str]:
    """`pth_to_hf`: a training checkpoint → a Hugging Face adapter folder (safetensors)."""
    cmd = [str(python), "-m", "xtuner.tools.model_converters.pth_to_hf", str(config), str(checkpoint), str(save_dir),
           "--safe-serialization"]
    return cmd + (["--fp32"] if fp32 else [])


MERGE_DEVICES = ("cuda", "cpu", "npu", "auto")
"""The `--device` values `xtuner.tools.model_converters.merge` takes."""


def merge_command(python: Path, base: Path, adapter: Path, save_dir: Path, *, device: str | None = None,
                  max_shard_size: str = "2GB") -> list[str]:
    """`merge`: base model + adapter → one fp16 model folder."""
    cmd = [str(python), "-m", "xtuner.tools.model_converters.merge", str(base), str(adapter), str(save_dir),
           "--safe-serialization", "--max-shard-size", max_shard_size]
    return cmd + (["--device", device] if device else [])


CHAT_DTYPES = ("fp16", "bf16", "fp32", "auto")
"""The `--torch-dtype` values `xtuner.tools.chat` takes."""


def chat_command(python: Path, model: Path, template: str, *, adapter: Path | None = None, system: str | None = None,
                 torch_dtype: str = "fp16", max_new_tokens: int = 512) -> list[str]:
    """`xtuner.tools.chat` with the template of the model's family (the one training used)."""
    cmd = [str(python), "-m", "xtuner.tools.chat", str(model), "--prompt-template", template,
           "--torch-dtype", torch_dtype, "--max-new-tokens", str(max_new_tokens)]
    if adapter:
        cmd += ["--adapter", str(adapter)]
    if system:
        cmd += ["--system", system]
    return cmd
