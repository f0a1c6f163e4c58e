"""Device and dtype choice, in one place for generators and scorers alike."""

from __future__ import annotations

import torch

from pairsynth.errors import PairsynthError


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; anything else must exist here."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise PairsynthError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PairsynthError(f"device {spec!r} asked for, but this torch build sees no CUDA GPU")
    return device


def default_dtype(device: torch.device) -> torch.dtype:
    """Half precision where it is fast and safe, fp32 elsewhere.

    CPUs have no fast fp16 path (about 1 GFLOP/s measured here), so they stay fp32. On CUDA, bf16
    where the GPU supports it (no fp16 overflow to NaN in VAEs), else fp16.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def parse_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """``None``/``auto`` → :func:`default_dtype`; else ``fp32``, ``fp16`` or ``bf16``."""
    if name in (None, "auto"):
        return default_dtype(device)
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if name not in table:
        raise PairsynthError(f"unknown dtype {name!r}; use auto, fp32, fp16 or bf16")
    if name == "fp16" and device.type == "cpu":
        raise PairsynthError("fp16 on the CPU has no fast kernels and is not supported; use fp32 or bf16")
    return table[name]
