"""The probe's classifiers and the one training loop they share.

* :class:`SmallCNN` — three conv blocks (≈ 57k parameters), trained from scratch on tiny images or
  log-mels: the setting where synthetic data has been shown to matter (DA-Fusion, Synthio).
* :class:`LinearProbe` — one linear layer on frozen judge embeddings: how much class information the
  synthetic data adds on top of a strong pretrained representation.

:func:`train_and_predict` draws every batch through :class:`~pairsynth.probe.mixing.MixingSampler`
over ``ConcatDataset([real, synthetic])`` — the same sampler a user would train with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, ConcatDataset, TensorDataset

from pairsynth.probe.features import InputSpace
from pairsynth.probe.mixing import MixingSampler

CLASSIFIERS = ("cnn", "linear")


class SmallCNN(nn.Module):
    """Conv(32)-Conv(64)-Conv(64) with batch norm and max pooling, global average pool, dropout, linear."""

    def __init__(self, in_channels: int, classes: int, width: int = 32) -> None:
        super().__init__()

        def block(a: int, b: int, pool: bool) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(), *([nn.MaxPool2d(2)] if pool else [])]

        self.features = nn.Sequential(*block(in_channels, width, True), *block(width, 2 * width, True),
                                      *block(2 * width, 2 * width, False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class LinearProbe(nn.Module):
    """Logistic regression on a fixed feature vector."""

    def __init__(self, dimension: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dimension, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How each probe classifier trains: fixed steps, so every condition gets the same compute.

    Attributes:
        steps: optimizer steps (AdamW, cosine-decayed learning rate).
        batch_size: examples per step.
        lr: peak learning rate.
        weight_decay: AdamW's decoupled weight decay.
    """

    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4


@dataclass
class TrainingRun:
    """What one training run saw and predicted."""

    predictions: np.ndarray  # class index per test example
    synthetic_share: float  # the share of training examples that were synthetic, as sampled


def build_model(kind: str, space: InputSpace, classes: int, dimension: int | None = None, *,
                width: int = 32) -> nn.Module:
    """A fresh :class:`SmallCNN` (``cnn``, ``width`` channels in its first block) or :class:`LinearProbe`
    (``linear``, on ``dimension``-long features)."""
    if kind == "cnn":
        return SmallCNN(space.input_channels, classes, width)
    if kind == "linear":
        return LinearProbe(int(dimension), classes)
    raise ValueError(f"unknown classifier {kind!r}; use one of {', '.join(CLASSIFIERS)}")


def train_and_predict(make_model: Callable[[], nn.Module], space: InputSpace, real: tuple[torch.Tensor, np.ndarray],
                      synthetic: tuple[torch.Tensor, np.ndarray] | None, test: torch.Tensor, *, p: float,
                      augment: bool, settings: TrainSettings, seed: int) -> TrainingRun:
    """Train ``model`` on real (+ mixed-in synthetic) examples, then predict the test examples.

    Args:
        make_model: builds a fresh classifier (called once the seed is set, so the initialisation is seeded).
        space: prepares stored batches (and augments them when ``augment``).
        real: stored real training examples and their class indices.
        synthetic: stored synthetic examples and class indices, or ``None`` (then ``p`` is ignored).
        test: stored test examples.
        p: DA-Fusion's replacement probability.
        augment: apply classic augmentation to every training batch.
        settings: steps, batch size, learning rate.
        seed: fixes the initialisation, the mixing plan, the batch order and the augmentation draws.
    """
    torch.manual_seed(seed)  # initialisation, dropout, torchvision's augmentation draws
    generator = torch.Generator().manual_seed(seed)
    model = make_model()
    real_x, real_y = real
    syn_x, syn_y = synthetic if synthetic is not None else (real_x[:0], real_y[:0])
    data = ConcatDataset([TensorDataset(real_x, torch.as_tensor(real_y)), TensorDataset(syn_x, torch.as_tensor(syn_y))])
    sampler = MixingSampler([str(y) for y in real_y], [str(y) for y in syn_y], p=p if synthetic is not None else 0.0,
                            seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    step, epoch, drawn, synthetic_drawn = 0, 0, 0, 0
    while step < settings.steps:
        sampler.set_epoch(epoch)
        for indices in BatchSampler(sampler, settings.batch_size, drop_last=False):
            if step >= settings.steps:
                break
            xs, ys = zip(*(data[i] for i in indices))
            batch = space.prepare(torch.stack(xs), augment=augment, generator=generator)
            loss = loss_fn(model(batch), torch.stack(ys))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            drawn += len(indices)
            synthetic_drawn += sum(i >= len(real_x) for i in indices)
        epoch += 1
    return TrainingRun(predict(model, space, test), synthetic_drawn / drawn if drawn else 0.0)


@torch.inference_mode()
def predict(model: nn.Module, space: InputSpace, stored: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Class index per example of ``stored``."""
    model.eval()
    generator = torch.Generator().manual_seed(0)
    out = [model(space.prepare(stored[s:s + batch_size], augment=False, generator=generator)).argmax(1)
           for s in range(0, len(stored), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)
