"""What every benchmark prints first: the machine and the load it ran under."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import torch


def describe_machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads, load average {load}"
            + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))


def best_of(repeats: int, action: Callable[[], object]) -> float:
    """The fastest of ``repeats`` timed runs: the least disturbed by whatever else the machine does."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def start_offline_run(threads: int = 1) -> None:
    """What a long benchmark's ``main`` does first: timestamped INFO logs, no hub, ``threads`` torch threads."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch.set_num_threads(threads)
