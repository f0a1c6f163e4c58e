"""``judges-shapes``: small CNN attribute classifiers that grade generated SHAPES images.

They are trained on renders only (never on generator output), softened by blur, down-up sampling
and noise (``augment.soften``) so that slightly soft generated images are still judged fairly, and
are used only by the quality benchmark. One trunk with one head per captioned attribute (shape,
colour, position); the trunk keeps a spatial map before the heads because a global pool would erase
left/right.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pairsynth.world.shapes import ATTRIBUTES, VOCAB
from pairsynth_train.augment import soften
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.data import eval_seeds, render_batch, train_seeds
from pairsynth_train.judge_files import export_judge, load_judge
from pairsynth_train.loop import Trainee, run_steps
from pairsynth_train.model_card import folder_size_mb, write_model_card
from pairsynth_train.optim import adamw_with_cosine

logger = logging.getLogger(__name__)

NAME = "judges-shapes"


class ShapeJudge(nn.Module):
    """32×32 RGB in [-1, 1] → logits per attribute (dict keyed like ``VOCAB``)."""

    def __init__(self, classes: dict[str, list[str]], width: int = 32) -> None:
        super().__init__()
        self.classes = classes
        self.trunk = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.ReLU(),  # 16×16
            nn.Conv2d(width * 2, width * 2, 3, stride=2, padding=1), nn.ReLU(),  # 8×8
            nn.Conv2d(width * 2, width, 3, stride=2, padding=1), nn.ReLU(),  # 4×4
            nn.Flatten(), nn.Linear(width * 16, 128), nn.ReLU(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(128, len(values)) for name, values in classes.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(images)
        return {name: head(features) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict[str, str]]:
        """Attribute values per image, e.g. ``{"shape": "circle", "colour": "red", "position": "left"}``."""
        logits = self(images)
        picks = {name: out.argmax(-1).tolist() for name, out in logits.items()}
        return [{name: self.classes[name][picks[name][i]] for name in self.classes} for i in range(len(images))]


@dataclass
class JudgeTrainConfig:
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    checkpoint_every_s: float = 120.0
    eval_images: int = 1000


def judge_loss(judge: ShapeJudge, seeds: list[int], generator: torch.Generator) -> torch.Tensor:
    batch = render_batch(seeds)
    logits = judge(soften(batch.images, generator))
    labels = batch.attribute_labels()
    return sum(F.cross_entropy(logits[name], labels[name]) for name in ATTRIBUTES)


def train_judges(out_dir: Path, work_dir: Path, config: JudgeTrainConfig, resume: bool = False) -> dict[str, float]:
    """Train the judges, export them to ``out_dir`` and return their held-out accuracy per attribute."""
    torch.manual_seed(config.seed)
    judge = ShapeJudge({name: list(values) for name, values in VOCAB.items()})
    optimizer, schedule = adamw_with_cosine(judge.parameters(), config.lr, config.steps, 50)
    trainee = Trainee({"judge": judge}, optimizer, schedule)

    def loss_fn(step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(config.seed * 7919 + step)
        return judge_loss(judge, train_seeds(config.seed, step, config.batch_size), generator)

    keeper = CheckpointKeeper(work_dir, "judges", config.checkpoint_every_s)
    seconds = run_steps(NAME, trainee, loss_fn, config.steps, keeper, resume)
    export_judge(judge, out_dir)
    accuracy = judge_accuracy(load_judges(out_dir), eval_seeds(config.eval_images))
    logger.info("%s held-out accuracy %s", NAME, accuracy)
    _write_card(out_dir, judge, config, seconds, accuracy)
    return accuracy


def load_judges(folder: Path) -> ShapeJudge:
    """Load exported judges (``model.safetensors`` + ``classes.json``) in eval mode."""
    return load_judge(ShapeJudge, folder)


def judge_accuracy(judge: ShapeJudge, seeds: list[int]) -> dict[str, float]:
    """Per-attribute and all-correct accuracy on clean renders of ``seeds``."""
    batch = render_batch(seeds)
    predictions = judge.predict(batch.images)
    truth = [scene.attributes() for scene in batch.scenes]
    result = {name: float(np.mean([p[name] == t[name] for p, t in zip(predictions, truth)])) for name in ATTRIBUTES}
    result["all"] = float(np.mean([p == t for p, t in zip(predictions, truth)]))
    return result


def _write_card(out_dir: Path, judge: ShapeJudge, config: JudgeTrainConfig, seconds: float, accuracy: dict) -> None:
    write_model_card(
        out_dir,
        f"{NAME}: attribute classifiers for the SHAPES world",
        {
            "Purpose": "Grade generated images by the attributes their caption names (shape, colour, position). "
            "Trained on renders only, softened by blur, down-up sampling and noise; used only by `benchmarks/zoo_quality.py`.",
            "Usage": "```python\nfrom pairsynth_train.judges import load_judges\njudge = load_judges('PATH')\n"
            "judge.predict(images)  # images: (B, 3, 32, 32) in [-1, 1]\n```",
            "Architecture": {"type": "4-conv CNN trunk, 4×4 map flattened, one linear head per attribute",
                             "params": sum(p.numel() for p in judge.parameters()), "classes": judge.classes},
            "Training": {**asdict(config), "training_seconds": round(seconds), "threads": torch.get_num_threads()},
            "Metrics (held-out clean renders)": {**accuracy, "folder size MB": round(folder_size_mb(out_dir), 3)},
            "Reproduce": f"```\nOMP_NUM_THREADS=1 python -m pairsynth_train {NAME} --out pairsynth/zoo/weights/{NAME} --steps {config.steps}\n```",
        },
    )
