"""``judges-shapes`` and ``judges-sounds``: small CNN attribute classifiers that grade generated scenes.

One trainer for both worlds (:data:`JUDGE_WORLDS` says what differs). The judges are trained on
rendered / synthesized scenes only, never on generator output, with augmentation that imitates a
generator's flaws (:mod:`pairsynth_train.augment`: blur, down-up sampling and noise for images;
blur, noise floor, gain and time shift for log-mels), so that slightly soft generated scenes are
still judged fairly. One trunk with one head per captioned attribute.

- SHAPES judges read 32×32 RGB in [-1, 1]; the trunk keeps a 4×4 spatial map before the heads,
  because a global pool would erase left/right. They are used only by the quality benchmark.
- SOUNDS judges read the *waveform* through the shared log-mel of
  :mod:`pairsynth.modalities.audioldm_mel`, so a text→audio model is graded after its vocoder, as a
  listener would hear it; they also label generated clips for ``toy-sounds-clap``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pairsynth.modalities.audioldm_mel import log_mel, waveforms_to_tensor
from pairsynth_train.augment import degrade, soften
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth.world import shapes, sounds
from pairsynth_train.data import SceneBatch, eval_seeds, render_batch, synthesize_batch, train_seeds
from pairsynth_train.judge_files import export_judge, load_judge
from pairsynth_train.loop import TrainConfig, Trainee, run_steps
from pairsynth_train.model_card import folder_size_mb, write_model_card
from pairsynth_train.optim import adamw_with_cosine

logger = logging.getLogger(__name__)

_MEL_CENTRE, _MEL_SCALE = -6.0, 3.0  # rough mean / std of SOUNDS log-mels


class AttributeJudge(nn.Module):
    """A trunk (``features``) and one linear head per attribute; ``classes`` maps attribute → class names."""

    def __init__(self, classes: dict[str, list[str]], trunk: nn.Module) -> None:
        super().__init__()
        self.classes = classes
        self.trunk = trunk
        self.heads = nn.ModuleDict({name: nn.Linear(128, len(values)) for name, values in classes.items()})

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.trunk(inputs)

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.features(inputs)
        return {name: head(features) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor) -> list[dict[str, str]]:
        """Attribute values per input, e.g. ``{"shape": "circle", "colour": "red", "position": "left"}``."""
        logits = self(inputs)
        picks = {name: out.argmax(-1).tolist() for name, out in logits.items()}
        return [{name: self.classes[name][picks[name][i]] for name in self.classes} for i in range(len(inputs))]


def _conv_trunk(channels: int, width: int, last: int, pool: list[nn.Module], flat: int) -> nn.Sequential:
    """3×3 conv then three stride-2 convs (ReLU after each), ``pool``, flatten, a 128-wide layer."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(width * 2, width * 2, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(width * 2, last, 3, stride=2, padding=1), nn.ReLU(),
        *pool, nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(),
    )


class ShapeJudge(AttributeJudge):
    """32×32 RGB in [-1, 1] → logits per attribute (32 → 16 → 8 → 4, the 4×4 map flattened)."""

    def __init__(self, classes: dict[str, list[str]], width: int = 32) -> None:
        super().__init__(classes, _conv_trunk(3, width, width, [], width * 16))


class SoundJudge(AttributeJudge):
    """Log-mel (B, 100, 64) → logits per attribute (100×64 → 13×8, pooled to 4×4)."""

    def __init__(self, classes: dict[str, list[str]], width: int = 24) -> None:
        super().__init__(classes, _conv_trunk(1, width, width * 2, [nn.AdaptiveAvgPool2d((4, 4))], width * 2 * 16))

    def features(self, mels: torch.Tensor) -> torch.Tensor:
        return self.trunk(((mels - _MEL_CENTRE) / _MEL_SCALE).unsqueeze(1))

    def predict_waveforms(self, waveforms) -> list[dict[str, str]]:
        """Attribute values per 16 kHz mono waveform (list of arrays or a (B, samples) tensor)."""
        tensor = waveforms if isinstance(waveforms, torch.Tensor) else waveforms_to_tensor(waveforms)
        return self.predict(log_mel(tensor.float()))


@dataclass(frozen=True, kw_only=True)
class JudgeWorld:
    """What the judges of one world are built from, trained on and documented with."""

    net: type[AttributeJudge]
    classes: dict[str, list[str]]
    batch: Callable[[list[int]], SceneBatch]
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
    warmup: int
    title: str
    purpose: str
    usage: str
    input: str
    architecture: str
    scenes: str


JUDGE_WORLDS = {
    "shapes": JudgeWorld(
        net=ShapeJudge, classes={a: list(shapes.VOCAB[a]) for a in shapes.ATTRIBUTES}, batch=render_batch, augment=soften,
        warmup=50, scenes="renders",
        title="attribute classifiers for the SHAPES world",
        purpose="Grade generated images by the attributes their caption names (shape, colour, position). "
        "Trained on renders only, softened by blur, down-up sampling and noise; used only by `benchmarks/zoo_quality.py`.",
        usage="judge.predict(images)  # images: (B, 3, 32, 32) in [-1, 1]",
        input="32×32 RGB in [-1, 1]",
        architecture="4-conv CNN trunk, 4×4 map flattened, one linear head per attribute",
    ),
    "sounds": JudgeWorld(
        net=SoundJudge, classes={a: list(sounds.VOCAB[a]) for a in sounds.MONO_ATTRIBUTES}, batch=synthesize_batch,
        augment=degrade, warmup=30, scenes="sounds",
        title="attribute classifiers for the SOUNDS world",
        purpose="Grade generated 16 kHz waveforms by the attributes their caption names (kind, pitch). "
        "Trained on synthesized sounds only, with blur, noise, gain and shift augmentation; used by "
        "`benchmarks/zoo_quality.py`, the audio trainers' export checks and to label generated clips for toy-sounds-clap.",
        usage="judge.predict_waveforms(waveforms)  # 16 kHz mono, 1 s",
        input="AudioLDM-style log-mel of the waveform: n_fft 1024, hop 160, 64 Slaney mel bins 0-8 kHz, ln(max(mel, 1e-5))",
        architecture="4-conv CNN trunk, 4×4 adaptive pool, one linear head per attribute",
    ),
}


@dataclass(kw_only=True)
class JudgeTrainConfig(TrainConfig):
    lr: float = 2e-3
    eval_count: int  # held-out scenes measured after export

    @classmethod
    def for_world(cls, world: str, **overrides) -> JudgeTrainConfig:
        """The settings the shipped judges of ``world`` were trained with, updated by ``overrides``."""
        defaults = {"shapes": cls(steps=1500, batch_size=64, eval_count=1000), "sounds": cls(steps=400, batch_size=48, eval_count=800)}
        return replace(defaults[world], **overrides)


def judge_world(world: str) -> JudgeWorld:
    """The judges' description of ``world``; raises naming the known worlds."""
    if world not in JUDGE_WORLDS:
        raise ValueError(f"unknown world {world!r}; known: {', '.join(JUDGE_WORLDS)}")
    return JUDGE_WORLDS[world]


def judge_loss(judge: AttributeJudge, spec: JudgeWorld, seeds: list[int], generator: torch.Generator) -> torch.Tensor:
    batch = spec.batch(seeds)
    logits = judge(spec.augment(batch.inputs, generator))
    labels = batch.attribute_labels()
    return sum(F.cross_entropy(logits[name], labels[name]) for name in batch.attributes)


def train_judges(world: str, out_dir: Path, work_dir: Path, config: JudgeTrainConfig, resume: bool = False) -> dict[str, float]:
    """Train the judges of ``world``, export them to ``out_dir`` and return their held-out accuracy per attribute."""
    spec, name = judge_world(world), f"judges-{world}"
    torch.manual_seed(config.seed)
    judge = spec.net(spec.classes)
    optimizer, schedule = adamw_with_cosine(judge.parameters(), config.lr, config.steps, spec.warmup)
    trainee = Trainee(parts={"judge": judge}, optimizer=optimizer, schedule=schedule)

    def loss_fn(step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(config.seed * 7919 + step)
        return judge_loss(judge, spec, train_seeds(config.seed, step, config.batch_size), generator)

    keeper = CheckpointKeeper(work_dir, "judges", config.checkpoint_every_s)
    seconds = run_steps(name, trainee, loss_fn, config.steps, keeper, resume)
    export_judge(judge, out_dir)
    accuracy = judge_accuracy(world, load_judges(world, out_dir), eval_seeds(config.eval_count))
    logger.info("%s held-out accuracy %s", name, accuracy)
    _write_card(world, out_dir, judge, config, seconds, accuracy)
    return accuracy


def load_judges(world: str, folder: Path) -> AttributeJudge:
    """Load exported judges of ``world`` (``model.safetensors`` + ``classes.json``) in eval mode."""
    return load_judge(judge_world(world).net, folder)


def score_predictions(predictions: list[dict[str, str]], truth: list[dict[str, str]]) -> dict[str, float]:
    """Per-attribute and all-correct accuracy of judged attributes against the true ones."""
    names = list(truth[0]) if truth else []
    result = {name: float(np.mean([p[name] == t[name] for p, t in zip(predictions, truth)])) for name in names}
    result["all"] = float(np.mean([all(p[n] == t[n] for n in names) for p, t in zip(predictions, truth)]))
    return result


def judge_accuracy(world: str, judge: AttributeJudge, seeds: list[int]) -> dict[str, float]:
    """Accuracy on clean scenes of ``world`` from ``seeds``."""
    batch = judge_world(world).batch(seeds)
    truth = [{name: getattr(scene, name) for name in batch.attributes} for scene in batch.scenes]
    return score_predictions(judge.predict(batch.inputs), truth)


def judge_waveforms(judge: SoundJudge, waveforms, captions: list[str]) -> dict[str, float]:
    """Fraction of SOUNDS waveforms whose judged attributes match their (mono) caption."""
    from pairsynth.world.sounds import MONO_ATTRIBUTES, parse_caption

    truth = [{n: parse_caption(c)[n] for n in MONO_ATTRIBUTES} for c in captions]
    return score_predictions(judge.predict_waveforms(waveforms), truth)


def _write_card(world: str, out_dir: Path, judge: AttributeJudge, config: JudgeTrainConfig, seconds: float,
                accuracy: dict) -> None:
    spec, name = judge_world(world), f"judges-{world}"
    write_model_card(
        out_dir,
        f"{name}: {spec.title}",
        {
            "Purpose": spec.purpose,
            "Usage": f"```python\nfrom pairsynth_train.judges import load_judges\njudge = load_judges('{world}', 'PATH')\n"
            f"{spec.usage}\n```",
            "Input": spec.input,
            "Architecture": {"type": spec.architecture, "params": sum(p.numel() for p in judge.parameters()),
                             "classes": judge.classes},
            "Training": {**asdict(config), "training_seconds": round(seconds), "threads": torch.get_num_threads()},
            f"Metrics (held-out clean {spec.scenes})": {**accuracy, "folder size MB": round(folder_size_mb(out_dir), 3)},
            "Reproduce": f"```\nOMP_NUM_THREADS=1 python -m pairsynth_train {name} --out pairsynth/zoo/weights/{name} --steps {config.steps}\n```",
        },
    )
