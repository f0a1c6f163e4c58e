"""Periodic, atomic training checkpoints so that a killed run loses minutes, not hours."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


class CheckpointKeeper:
    """Saves ``state()`` to ``<work_dir>/<stage>.ckpt`` every ``every_s`` seconds and on demand.

    The file is written under a temporary name and renamed, so a kill mid-save leaves the previous
    checkpoint intact.
    """

    def __init__(self, work_dir: Path, stage: str, every_s: float = 120.0) -> None:
        self.path = Path(work_dir) / f"{stage}.ckpt"
        self.every_s = every_s
        self._last = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        """The last checkpoint, or ``None`` when there is none."""
        if not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        logger.info("resuming %s from step %d", self.path.name, state["step"])
        return state

    def maybe_save(self, state_fn) -> bool:
        """Save ``state_fn()`` if ``every_s`` passed since the last save; return whether it saved."""
        if time.monotonic() - self._last < self.every_s:
            return False
        self.save(state_fn())
        return True

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".ckpt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)
        self._last = time.monotonic()
        logger.info("checkpoint %s at step %d", self.path.name, state["step"])
