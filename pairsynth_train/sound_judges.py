"""``judges-sounds``: small CNN attribute classifiers that grade generated SOUNDS waveforms.

They judge the *waveform* (through the shared log-mel of :mod:`pairsynth.modalities.audioldm_mel`), so a text→audio model is
graded after its vocoder, as a listener would hear it. Trained on synthesized sounds only (never on
generator output), with blur, added noise, gain and time-shift augmentation so that a slightly
smeared or noisy generated clip is still judged fairly. One trunk, one head per mono attribute
(kind, pitch); used by the quality benchmark and the trainers' export checks.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pairsynth.world.sounds import MONO_ATTRIBUTES, VOCAB, parse_caption
from pairsynth.modalities.audioldm_mel import log_mel, waveforms_to_tensor
from pairsynth_train.checkpoints import CheckpointKeeper
from pairsynth_train.data import eval_seeds, train_seeds
from pairsynth_train.judge_files import export_judge, load_judge
from pairsynth_train.loop import Trainee, run_steps
from pairsynth_train.model_card import folder_size_mb, write_model_card
from pairsynth_train.optim import adamw_with_cosine
from pairsynth_train.sound_data import synthesize_batch

logger = logging.getLogger(__name__)

NAME = "judges-sounds"
_MEL_CENTRE, _MEL_SCALE = -6.0, 3.0  # rough mean / std of world log-mels


class SoundJudge(nn.Module):
    """Log-mel (B, 100, 64) → logits per attribute (dict keyed like ``classes``)."""

    def __init__(self, classes: dict[str, list[str]], width: int = 24) -> None:
        super().__init__()
        self.classes = classes
        self.trunk = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.ReLU(),  # 50×32
            nn.Conv2d(width * 2, width * 2, 3, stride=2, padding=1), nn.ReLU(),  # 25×16
            nn.Conv2d(width * 2, width * 2, 3, stride=2, padding=1), nn.ReLU(),  # 13×8
            nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten(), nn.Linear(width * 2 * 16, 128), nn.ReLU(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(128, len(values)) for name, values in classes.items()})

    def forward(self, mels: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(((mels - _MEL_CENTRE) / _MEL_SCALE).unsqueeze(1))
        return {name: head(features) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, mels: torch.Tensor) -> list[dict[str, str]]:
        """Attribute values per log-mel, e.g. ``{"kind": "rising chirp", "pitch": "low"}``."""
        logits = self(mels)
        picks = {name: out.argmax(-1).tolist() for name, out in logits.items()}
        return [{name: self.classes[name][picks[name][i]] for name in self.classes} for i in range(len(mels))]

    def predict_waveforms(self, waveforms) -> list[dict[str, str]]:
        """Attribute values per 16 kHz mono waveform (list of arrays or a (B, samples) tensor)."""
        tensor = waveforms if isinstance(waveforms, torch.Tensor) else waveforms_to_tensor(waveforms)
        return self.predict(log_mel(tensor.float()))


@dataclass
class SoundJudgeTrainConfig:
    steps: int = 400
    batch_size: int = 48
    lr: float = 2e-3
    seed: int = 0
    checkpoint_every_s: float = 120.0
    eval_clips: int = 800


def degrade(mels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random blur, broadband noise floor, gain and circular time shift of log-mels."""
    b = mels.shape[0]
    blurred = F.avg_pool2d(F.pad(mels.unsqueeze(1), (1, 1, 1, 1), mode="replicate"), 3, stride=1).squeeze(1)
    pick = torch.rand(b, 1, 1, generator=generator) < 0.5
    mels = torch.where(pick, blurred, mels)
    floor = torch.exp(torch.rand(b, 1, 1, generator=generator) * 5.0 - 8.0)  # e^-8 .. e^-3 of added noise
    noise = floor * torch.rand(mels.shape, generator=generator)
    mels = torch.log(torch.exp(mels) + noise)
    mels = mels + (torch.rand(b, 1, 1, generator=generator) - 0.5)  # ±0.5 gain in log units
    shift = int(torch.randint(-8, 9, (1,), generator=generator))
    return torch.roll(mels, shift, dims=1)


def judge_loss(judge: SoundJudge, seeds: list[int], generator: torch.Generator) -> torch.Tensor:
    batch = synthesize_batch(seeds)
    logits = judge(degrade(batch.mels, generator))
    labels = batch.attribute_labels()
    return sum(F.cross_entropy(logits[name], labels[name]) for name in MONO_ATTRIBUTES)


def train_sound_judges(out_dir: Path, work_dir: Path, config: SoundJudgeTrainConfig, resume: bool = False) -> dict[str, float]:
    """Train the judges, export them to ``out_dir`` and return their held-out accuracy per attribute."""
    torch.manual_seed(config.seed)
    judge = SoundJudge({name: list(VOCAB[name]) for name in MONO_ATTRIBUTES})
    optimizer, schedule = adamw_with_cosine(judge.parameters(), config.lr, config.steps, 30)
    trainee = Trainee({"judge": judge}, optimizer, schedule)

    def loss_fn(step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(config.seed * 7919 + step)
        return judge_loss(judge, train_seeds(config.seed, step, config.batch_size), generator)

    keeper = CheckpointKeeper(work_dir, "judges", config.checkpoint_every_s)
    seconds = run_steps(NAME, trainee, loss_fn, config.steps, keeper, resume)
    export_judge(judge, out_dir)
    accuracy = judge_accuracy(load_sound_judges(out_dir), eval_seeds(config.eval_clips))
    logger.info("%s held-out accuracy %s", NAME, accuracy)
    _write_card(out_dir, judge, config, seconds, accuracy)
    return accuracy


def load_sound_judges(folder: Path) -> SoundJudge:
    """Load exported judges (``model.safetensors`` + ``classes.json``) in eval mode."""
    return load_judge(SoundJudge, folder)


def score_predictions(predictions: list[dict[str, str]], truth: list[dict[str, str]]) -> dict[str, float]:
    """Per-attribute and all-correct accuracy of judged attributes against the true ones."""
    names = list(truth[0]) if truth else list(MONO_ATTRIBUTES)
    result = {name: float(np.mean([p[name] == t[name] for p, t in zip(predictions, truth)])) for name in names}
    result["all"] = float(np.mean([all(p[n] == t[n] for n in names) for p, t in zip(predictions, truth)]))
    return result


def judge_accuracy(judge: SoundJudge, seeds: list[int]) -> dict[str, float]:
    """Accuracy on clean synthesized sounds of ``seeds``."""
    batch = synthesize_batch(seeds)
    return score_predictions(judge.predict(batch.mels), [s.attributes() for s in batch.scenes])


def judge_waveforms(judge: SoundJudge, waveforms, captions: list[str]) -> dict[str, float]:
    """Fraction of waveforms whose judged attributes match their (mono) caption."""
    truth = [{n: parse_caption(c)[n] for n in MONO_ATTRIBUTES} for c in captions]
    return score_predictions(judge.predict_waveforms(waveforms), truth)


def _write_card(out_dir: Path, judge: SoundJudge, config: SoundJudgeTrainConfig, seconds: float, accuracy: dict) -> None:
    write_model_card(
        out_dir,
        f"{NAME}: attribute classifiers for the SOUNDS world",
        {
            "Purpose": "Grade generated 16 kHz waveforms by the attributes their caption names (kind, pitch). "
            "Trained on synthesized sounds only, with blur, noise, gain and shift augmentation; used by "
            "`benchmarks/zoo_quality.py` and the audio trainers' export checks.",
            "Usage": "```python\nfrom pairsynth_train.sound_judges import load_sound_judges\n"
            "judge = load_sound_judges('PATH')\njudge.predict_waveforms(waveforms)  # 16 kHz mono, 1 s\n```",
            "Input": "AudioLDM-style log-mel of the waveform: n_fft 1024, hop 160, 64 Slaney mel bins 0-8 kHz, ln(max(mel, 1e-5))",
            "Architecture": {"type": "4-conv CNN trunk, 4×4 adaptive pool, one linear head per attribute",
                             "params": sum(p.numel() for p in judge.parameters()), "classes": judge.classes},
            "Training": {**asdict(config), "training_seconds": round(seconds), "threads": torch.get_num_threads()},
            "Metrics (held-out clean sounds)": {**accuracy, "folder size MB": round(folder_size_mb(out_dir), 3)},
            "Reproduce": f"```\nOMP_NUM_THREADS=1 python -m pairsynth_train {NAME} --out pairsynth/zoo/weights/{NAME} --steps {config.steps}\n```",
        },
    )
