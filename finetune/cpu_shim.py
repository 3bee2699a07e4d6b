"""CPU shims for the XTuner environment, installed by `zaoshu finetune setup` only where CUDA is absent.

Two things stop XTuner 0.2.0 on a CPU-only machine; both are patched lazily, at the moment the
affected module is imported, and neither edits an installed file.

1. PyPI's torchvision 0.28.0 is a CUDA build. With the CPU torch wheel its `_C` extension does not
   load, so `torchvision.extension._has_ops()` is False. Every fake ("meta") kernel in
   `torchvision/_meta_registrations.py` is guarded by `_has_ops()` except two,
   `@torch.library.register_fake("torchvision::nms")` and `"torchvision::qnms"`, which then fail with
   `RuntimeError: operator torchvision::nms does not exist` — and `import xtuner.dataset` imports
   torchvision, so XTuner cannot start.

   Fix: when — and only when — `torchvision._meta_registrations` is about to run and torchvision's
   ops did not load, declare the two missing operator *schemas* (`torchvision::nms`, `torchvision::qnms`)
   with `torch.library.define`, so the two fake registrations succeed. No kernel is registered:
   calling `torchvision.ops.nms` still fails exactly as it would without the extension, and XTuner
   never calls it. Where the extension loads (a CUDA build of torch, a CPU torchvision) it does nothing.

2. `torch.cpu.is_bf16_supported` does not exist, and XTuner calls it while building a model. A
   `--cpu-smoke` config patches it itself, but mmengine's copy of the config in the work dir drops
   that statement, so `pth_to_hf` with the copied config would fail. Fix: right after `torch.cpu` is
   imported, add `is_bf16_supported() -> False` if torch lacks it.

How it is installed: setup copies this file into the XTuner environment's site-packages as
`zaoshu_cpu_shim.py`, with a one-line `zaoshu_cpu_shim.pth` (`import zaoshu_cpu_shim`). At interpreter
start that only puts an import hook first on `sys.meta_path` (no torch import, ~0 ms); the hook acts
on exactly two module names. Setup installs it only when `torch.cuda.is_available()` is False, and
removes it otherwise; deleting the two files undoes it.

>>> _SCHEMAS["nms"]
'(Tensor dets, Tensor scores, float iou_threshold) -> Tensor'
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

_TORCHVISION = "torchvision._meta_registrations"
_TORCH_CPU = "torch.cpu"
# The schemas torchvision's own C++ registers (torchvision/csrc/ops/nms.cpp, quantized/cpu/qnms_kernel.cpp).
_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def define_missing_schemas() -> list[str]:
    """Declare the torchvision op schemas that are absent; return the names declared (empty if none)."""
    import torch
    import torchvision.extension

    if torchvision.extension._has_ops():
        return []
    declared = []
    for name, schema in _SCHEMAS.items():
        if hasattr(torch.ops.torchvision, name):
            continue  # already declared (by torchvision itself or an earlier call)
        torch.library.define(f"torchvision::{name}", schema)
        declared.append(name)
    return declared


def add_is_bf16_supported(torch_cpu) -> bool:  # noqa: ANN001 - the torch.cpu module
    """Give `torch.cpu` an `is_bf16_supported()` that says False, if it has none; True when added."""
    if hasattr(torch_cpu, "is_bf16_supported"):
        return False
    torch_cpu.is_bf16_supported = lambda *args, **kwargs: False
    return True


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, name: str) -> None:
        self._inner, self._name = inner, name

    def create_module(self, spec):  # noqa: ANN001 - importlib protocol
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001 - importlib protocol
        if self._name == _TORCHVISION:
            define_missing_schemas()
        self._inner.exec_module(module)
        if self._name == _TORCH_CPU:
            add_is_bf16_supported(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):  # noqa: ANN001 - importlib protocol
        if fullname not in (_TORCHVISION, _TORCH_CPU):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, fullname)
        return spec


def install() -> None:
    """Put the hook first on sys.meta_path, once (idempotent)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


if __name__ == "zaoshu_cpu_shim":  # imported by the .pth in the XTuner environment, not as finetune.*
    install()
