"""Make the registry's torchvision importable beside the CPU build of torch.

PyPI's torchvision 0.28.0 is a CUDA build. With the CPU torch wheel its C++ ops never register, so
``import torchvision`` dies in ``_meta_registrations`` with ``operator torchvision::nms does not
exist`` -- and with it open_clip, timm, transformers' CLIP image processors and diffusers' Stable
Diffusion imports. Declaring the schemas of the two ops it registers fake kernels for lets the
pure-Python parts (transforms, models) import; calling ``nms`` itself would still fail, and nothing
in pairsynth does.

Call :func:`ensure_torchvision_importable` before the first import of any of those libraries. It is
a no-op when torchvision's native library loaded (a matching CPU or CUDA pair of wheels).
"""

from __future__ import annotations

import importlib.util
import logging

logger = logging.getLogger(__name__)

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keeps the torch.library.Library alive; its definitions vanish with it


def ensure_torchvision_importable() -> None:
    """Declare torchvision's op schemas when its native library cannot provide them."""
    global _library
    if _library is not None or importlib.util.find_spec("torchvision") is None:
        return
    import torch

    if _has_op("nms"):
        return
    if not _native_library_loads():
        _library = torch.library.Library("torchvision", "DEF")
        for name, schema in _SCHEMAS.items():
            if not _has_op(name):
                _library.define(schema)
        logger.debug("torchvision's native ops are unavailable with this torch build; declared schemas")


def _has_op(name: str) -> bool:
    import torch

    return torch._C._dispatch_has_kernel(f"torchvision::{name}") or _schema_exists(name)


def _schema_exists(name: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def _native_library_loads() -> bool:
    """Try torchvision's own extension loader without importing the torchvision package."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    import glob
    import os

    for folder in spec.submodule_search_locations:
        for path in glob.glob(os.path.join(folder, "_C*.so")):
            try:
                torch.ops.load_library(path)
            except (OSError, RuntimeError):
                return False
            return _schema_exists("nms")
    return False
