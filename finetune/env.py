"""The separate XTuner environment: create it idempotently, or find the one the user points at.

XTuner 0.2.0 pins transformers 4.48, which the main environment (transformers 5) cannot share, so it
lives in its own virtual environment (`.venv-xtuner` by default), installed with the pins in
`finetune/xtuner-constraints.txt`. A stamp file holds the hash of those pins, the package list and the
CPU fix; a second `setup` with the same inputs does nothing. On a GPU box, `XTUNER_PYTHON` may name
the python of an existing environment instead.

>>> stamp_text(["xtuner==0.2.0"], "torch==2.13.0\\n") == stamp_text(["xtuner==0.2.0"], "torch==2.13.0\\n")
True
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from agents.errors import ConfigError

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
CONSTRAINTS = PACKAGE_DIR / "xtuner-constraints.txt"
PACKAGES = ["xtuner==0.2.0", "torch==2.13.0", "torchvision==0.28.0"]
DEFAULT_VENV = Path(".venv-xtuner")
STAMP_NAME = ".zaoshu-stamp"
FIX_MODULE = "zaoshu_cpu_shim"
SETUP_HINT = "run `zaoshu finetune setup` (or `make finetune-env`), or set XTUNER_PYTHON to the python of an environment with xtuner 0.2.0"

Runner = Callable[[list[str]], int]


def _run(cmd: list[str]) -> int:
    log.info("$ %s", " ".join(cmd))
    return subprocess.run(cmd, check=False).returncode


def stamp_text(packages: list[str], constraints: str) -> str:
    """What the stamp file records: a hash of everything that decides the environment's contents."""
    fix = (PACKAGE_DIR / "cpu_shim.py").read_bytes()
    digest = hashlib.sha256("\n".join(packages).encode() + b"\0" + constraints.encode() + b"\0" + fix)
    return digest.hexdigest()


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def find_xtuner_python(venv: Path = DEFAULT_VENV, environ: Mapping[str, str] | None = None) -> Path:
    """`XTUNER_PYTHON` if set, else the python of a finished `setup`; ConfigError naming the fix otherwise."""
    environ = os.environ if environ is None else environ
    if custom := environ.get("XTUNER_PYTHON"):
        path = Path(custom)
        if not path.is_file():
            raise ConfigError(f"XTUNER_PYTHON={custom} does not exist: {SETUP_HINT}")
        return path
    python = venv_python(venv)
    if not python.is_file() or not (venv / STAMP_NAME).is_file():
        raise ConfigError(f"no XTuner environment at {venv}: {SETUP_HINT}")
    return python.absolute()


def _capture(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def cuda_available(python: Path) -> bool:
    """Whether torch in that environment sees a CUDA device."""
    return _capture([str(python), "-c", "import torch; print(torch.cuda.is_available())"]) == "True"


def install_cpu_fix(python: Path) -> Path:
    """Copy the CPU shims (finetune/cpu_shim.py) and their one-line .pth into that environment's site-packages."""
    site = Path(_capture([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]))
    (site / f"{FIX_MODULE}.py").write_bytes((PACKAGE_DIR / "cpu_shim.py").read_bytes())
    (site / f"{FIX_MODULE}.pth").write_text(f"import {FIX_MODULE}\n", encoding="utf-8")
    return site


def remove_cpu_fix(python: Path) -> None:
    """Undo install_cpu_fix (a CUDA machine loads torchvision's own ops and needs no fix)."""
    site = Path(_capture([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]))
    for suffix in (".py", ".pth"):
        (site / f"{FIX_MODULE}{suffix}").unlink(missing_ok=True)


def setup_env(
    venv: Path = DEFAULT_VENV,
    *,
    base_python: str = sys.executable,
    constraints: Path = CONSTRAINTS,
    packages: list[str] | None = None,
    run: Runner = _run,
) -> bool:
    """Create/refresh the XTuner environment; return False when it was already up to date.

    Steps: `python -m venv`, `pip install -c constraints PACKAGES`, the torchvision fix only when
    torch sees no CUDA, then an import check of `xtuner.dataset` (which imports torchvision).
    """
    from filelock import FileLock, Timeout

    packages = PACKAGES if packages is None else packages
    wanted = stamp_text(packages, constraints.read_text(encoding="utf-8"))
    venv.parent.mkdir(parents=True, exist_ok=True)
    # two setups at once (two terminals, two test workers): the second ran pip in a venv the first had not
    # finished creating ("No module named pip"); it waits now, and finds the environment built
    lock = FileLock(venv.parent / f".{venv.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another `zaoshu finetune setup` is building %s: waiting for it to finish", venv)
        lock.acquire()
    try:
        return _setup_env(venv, base_python, constraints, packages, wanted, run)
    finally:
        lock.release()


def _setup_env(venv: Path, base_python: str, constraints: Path, packages: list[str], wanted: str,
               run: Runner) -> bool:
    stamp = venv / STAMP_NAME
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == wanted and venv_python(venv).is_file():
        log.info("XTuner environment %s is up to date", venv)
        return False
    python = venv_python(venv)
    if not python.is_file() and run([base_python, "-m", "venv", str(venv)]) != 0:
        raise ConfigError(f"could not create a virtual environment at {venv}: check `{base_python} -m venv` works")
    if run([str(python), "-m", "pip", "install", "-c", str(constraints), *packages]) != 0:
        raise ConfigError(
            f"pip could not install {' '.join(packages)} into {venv}: check the network / package index, "
            f"then run `zaoshu finetune setup` again"
        )
    if not cuda_available(python):
        site = install_cpu_fix(python)
        log.info("no CUDA: installed the CPU shims (torchvision ops, torch.cpu.is_bf16_supported) in %s", site)
    else:
        remove_cpu_fix(python)
    if run([str(python), "-c", "import xtuner.dataset, xtuner.model"]) != 0:
        raise ConfigError(f"xtuner does not import in {venv}: remove {venv} and run `zaoshu finetune setup` again")
    stamp.write_text(wanted + "\n", encoding="utf-8")
    return True
