"""Logging for training runs: one file per run in its work dir, plus stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_run_logging(work_dir: Path, name: str) -> Path:
    """Send INFO logs to ``work_dir/<name>.log`` (appending, so resumed runs keep history) and stderr."""
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / f"{name}.log"
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_pairsynth_run", False):
            root.removeHandler(handler)
    for handler in (logging.FileHandler(log_path), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._pairsynth_run = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    return log_path
