"""Batches of rendered SHAPES scenes as tensors, reproducible from (run seed, step).

Training never reuses an image: each step renders fresh scenes from seeds derived from the step, so
a resumed run sees exactly the data it would have seen, and held-out seeds (>= ``EVAL_SEED_BASE``)
are never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pairsynth.world.shapes import ATTRIBUTES, VOCAB, ShapeScene, render_sample

EVAL_SEED_BASE = 1_000_000_000
_RUN_STRIDE = 100_000_000


@dataclass
class ShapesBatch:
    """Images in [-1, 1], shape (B, 3, H, W), with their captions and scenes."""

    images: torch.Tensor
    captions: list[str]
    scenes: list[ShapeScene]

    def attribute_labels(self) -> dict[str, torch.Tensor]:
        """Class index per attribute, in ``VOCAB`` order (targets for the judges)."""
        return {
            name: torch.tensor([VOCAB[name].index(getattr(s, name)) for s in self.scenes])
            for name in ATTRIBUTES
        }


def render_batch(seeds: list[int], size: int = 32) -> ShapesBatch:
    """Render one scene per seed (the world's seed → sample contract)."""
    images, captions, scenes = [], [], []
    for seed in seeds:
        image, text, scene = render_sample(seed, size)
        images.append(np.asarray(image))
        captions.append(text)
        scenes.append(scene)
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return ShapesBatch(pixels, captions, scenes)


def train_seeds(run_seed: int, step: int, batch_size: int) -> list[int]:
    """Seeds for one training step; disjoint across steps, runs (< 10) and the eval range."""
    if not 0 <= run_seed < EVAL_SEED_BASE // _RUN_STRIDE:
        raise ValueError(f"run_seed={run_seed}; must be in [0, {EVAL_SEED_BASE // _RUN_STRIDE})")
    start = run_seed * _RUN_STRIDE + step * batch_size
    return list(range(start, start + batch_size))


def eval_seeds(count: int, offset: int = 0) -> list[int]:
    """Held-out seeds, never used for training."""
    return list(range(EVAL_SEED_BASE + offset, EVAL_SEED_BASE + offset + count))
