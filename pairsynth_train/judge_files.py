"""The judges' file format, shared by the shapes and sounds judges: safetensors + class names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TypeVar

import torch

WEIGHTS_FILE = "model.safetensors"
CLASSES_FILE = "classes.json"

Judge = TypeVar("Judge", bound=torch.nn.Module)


def export_judge(judge: torch.nn.Module, out_dir: Path) -> None:
    """Replace ``out_dir`` with the judge's weights and its ``classes`` (attribute → class names)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(out_dir / WEIGHTS_FILE))
    (out_dir / CLASSES_FILE).write_text(json.dumps(judge.classes, indent=2), encoding="utf-8")


def load_judge(judge_class: type[Judge], folder: Path) -> Judge:
    """Rebuild a judge of ``judge_class`` from an exported folder, in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    judge = judge_class(json.loads((folder / CLASSES_FILE).read_text(encoding="utf-8")))
    judge.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return judge.eval()
