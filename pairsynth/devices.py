"""Device and dtype choice, in one place for generators and scorers alike."""

from __future__ import annotations

import functools
import time

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


BF16_WORTH_IT = 1.25
"""``auto`` precision takes bf16 only when a judge-shaped matmul runs at least this much faster."""


@functools.lru_cache(maxsize=None)
def bf16_speedup(device_type: str = "cpu") -> float:
    """How much faster bf16 autocast runs a ViT-B-sized linear layer than fp32 on this device, measured.

    CPUs with AMX or AVX-512 BF16 run it several times faster; others emulate bf16 and run it
    slower. Measured once per process (a few tenths of a second), best of five, after a warm-up.
    """
    device = torch.device(device_type)
    x = torch.randn(256, 768, device=device)
    layer = torch.nn.Linear(768, 3072).to(device)

    def best(autocast: bool) -> float:
        times = []
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            for repeat in range(6):
                start = time.perf_counter()
                for _ in range(4):
                    layer(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if repeat:  # the first is a warm-up
                    times.append(time.perf_counter() - start)
        return min(times)

    try:
        return best(False) / best(True)
    except RuntimeError:  # no bf16 kernels at all
        return 0.0


def auto_precision(device: torch.device) -> str:
    """``bf16`` where it measurably helps on this device (see :func:`bf16_speedup`), else ``fp32``."""
    return "bf16" if bf16_speedup(device.type) >= BF16_WORTH_IT else "fp32"
