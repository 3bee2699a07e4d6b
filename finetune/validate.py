"""`zaoshu finetune validate`: run XTuner's own template + encode over every record, from the main environment.

The work happens in `finetune/xtuner_validate.py` under the XTuner environment's python; the result
comes back as JSON.

>>> r = ValidationReport(records=2, errors=[{"line": 2, "reason": "turn 1 has no 'output'"}])
>>> r.ok, r.lines()
(False, ["line 2: turn 1 has no 'output'"])
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agents.errors import InputError
from finetune.formats import preference_format

SCRIPT = Path(__file__).resolve().parent / "xtuner_validate.py"


class ValidationReport(BaseModel):
    records: int
    errors: list[dict[str, Any]] = Field(default_factory=list)
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    template: dict[str, Any] = Field(default_factory=dict)
    max_length: int = 0
    expects: str = ""
    unit: str = "line"  # "record" for a `.json` array: `line` is then the record's number

    @property
    def ok(self) -> bool:
        return self.records > 0 and not self.errors

    def lines(self) -> list[str]:
        """One 'line N: reason' (or 'record N: reason') per bad record, in file order."""
        return [f"{self.unit} {e['line']}: {e['reason']}" for e in self.errors]

    def warning_lines(self) -> list[str]:
        """One 'line N: reason' (or 'record N: reason') per warning, in file order."""
        return [f"{self.unit} {w['line']}: {w['reason']}" for w in self.warnings]


def _records(data: Path, what: str, fmt: str) -> list[Any]:
    """The JSON values of `data`; InputError for a file that is missing, not UTF-8, or holds nothing but blank
    lines (or an empty JSON array)."""
    from finetune.export import read_records, refuse_non_utf8

    if not data.is_file():
        raise InputError(f"data file {data} does not exist")
    records, bad = read_records(data)
    refuse_non_utf8(data, bad)  # XTuner's reader stops at the first such line, blaming the config
    if not records and not bad:
        raise InputError(f"{data} holds no {what}: nothing to validate; export a run first "
                         f"(`zaoshu export RUN --format {fmt}`)")
    return [record for _, record in records]


def require_config(config: Path) -> None:
    """InputError unless `config` is a file (an XTuner config from `zaoshu finetune config`)."""
    if config.is_dir():
        raise InputError(f"config {config} is a folder: give the .py file `zaoshu finetune config … --out` wrote "
                         f"(e.g. {config / 'config.py'})")
    if not config.is_file():
        raise InputError(f"config {config} does not exist: write one with "
                         f"`zaoshu finetune config … --out {shlex.quote(str(config))}`")


def validate_file(data: Path, config: Path, python: Path, timeout: float = 3600) -> ValidationReport:
    """Validate `data` against `config` with XTuner's code in the environment of `python`."""
    records = _records(data, "records", "xtuner")
    pairs = {preference_format(record) for record in records}
    if pairs == {"xtuner-dpo"}:  # the validator called every pair "neither format: regenerate the config"
        raise InputError(f"{data} holds preference pairs (xtuner-dpo), not SFT records: check them with "
                         f"`zaoshu finetune validate-dpo {shlex.quote(str(data))} --tokenizer MODEL_DIR`")
    if pairs == {"dpo"}:
        raise InputError(f"{data} holds LLaMA-Factory preference pairs (dpo), which XTuner does not read: "
                         f"export the run with --format xtuner-dpo for XTuner's DPO, or --format xtuner for SFT")
    require_config(config)
    with tempfile.TemporaryDirectory(prefix="zaoshu-validate-") as tmp:
        out = Path(tmp) / "report.json"
        proc = subprocess.run(
            [str(python), str(SCRIPT), str(config), str(data), str(out)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InputError(f"the validator could not run with {config}: {tail[0]}")
        return ValidationReport.model_validate(json.loads(out.read_text(encoding="utf-8")))


def validate_preference_file(data: Path, tokenizer: Path, python: Path, max_length: int = 2048,
                             timeout: float = 3600) -> ValidationReport:
    """Validate an `xtuner-dpo` export with XTuner's preference loader and tokenizer (`tokenizer`: a model
    or tokenizer folder with a chat template) in the environment of `python`."""
    _records(data, "pairs", "xtuner-dpo")
    with tempfile.TemporaryDirectory(prefix="zaoshu-validate-") as tmp:
        out = Path(tmp) / "report.json"
        proc = subprocess.run(
            [str(python), str(SCRIPT), "--preference", str(tokenizer), str(data), str(out), str(max_length)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InputError(f"the preference validator could not run with {tokenizer}: {tail[0]}")
        return ValidationReport.model_validate(json.loads(out.read_text(encoding="utf-8")))
