"""Batches of a world's scenes as tensors, reproducible from (run seed, step), and the seed ranges.

Training never reuses a scene: each step renders (SHAPES) or synthesizes (SOUNDS) fresh scenes from
seeds derived from the step, so a resumed run sees exactly the data it would have seen, and held-out
seeds (>= ``EVAL_SEED_BASE``) are never trained on. Both worlds share the seed ranges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pairsynth.modalities.audioldm_mel import log_mel, waveforms_to_tensor
from pairsynth.world import shapes, sounds

EVAL_SEED_BASE = 1_000_000_000
_RUN_STRIDE = 100_000_000


@dataclass(kw_only=True)
class SceneBatch:
    """One batch of a world's scenes.

    Attributes:
        inputs: What the world's judges and VAE read: SHAPES images in [-1, 1], (B, 3, H, W); SOUNDS
            AudioLDM-style log-mels, (B, 100, 64).
        captions: The caption of each scene.
        scenes: The scenes themselves.
        attributes: The attributes a caption names and the judges recover.
        vocab: The values of each attribute, in class-index order.
        waveforms: SOUNDS only: the 16 kHz mono waveforms, (B, 16000).
    """

    inputs: torch.Tensor
    captions: list[str]
    scenes: list[Any]
    attributes: tuple[str, ...]
    vocab: Mapping[str, tuple[str, ...]]
    waveforms: torch.Tensor | None = None

    def attribute_labels(self) -> dict[str, torch.Tensor]:
        """Class index per judged attribute, in vocabulary order (targets for the judges)."""
        return {name: torch.tensor([self.vocab[name].index(getattr(s, name)) for s in self.scenes])
                for name in self.attributes}


def render_batch(seeds: list[int], size: int = 32) -> SceneBatch:
    """Render one SHAPES scene per seed (the world's seed → sample contract)."""
    samples = [shapes.render_sample(seed, size) for seed in seeds]
    pixels = torch.from_numpy(np.stack([np.asarray(s[0]) for s in samples])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return SceneBatch(inputs=pixels, captions=[s[1] for s in samples], scenes=[s[2] for s in samples],
                      attributes=shapes.ATTRIBUTES, vocab=shapes.VOCAB)


def synthesize_batch(seeds: list[int]) -> SceneBatch:
    """Synthesize one SOUNDS scene per seed (the world's seed → sample contract) and its log-mel."""
    samples = [sounds.render_sample(seed) for seed in seeds]
    waveforms = waveforms_to_tensor([s[0] for s in samples])
    return SceneBatch(inputs=log_mel(waveforms), captions=[s[1] for s in samples], scenes=[s[2] for s in samples],
                      attributes=sounds.MONO_ATTRIBUTES, vocab=sounds.VOCAB, waveforms=waveforms)


def train_seeds(run_seed: int, step: int, batch_size: int) -> list[int]:
    """Seeds for one training step; disjoint across steps, runs (< 10) and the eval range."""
    if not 0 <= run_seed < EVAL_SEED_BASE // _RUN_STRIDE:
        raise ValueError(f"run_seed={run_seed}; must be in [0, {EVAL_SEED_BASE // _RUN_STRIDE})")
    start = run_seed * _RUN_STRIDE + step * batch_size
    return list(range(start, start + batch_size))


def eval_seeds(count: int, offset: int = 0) -> list[int]:
    """Held-out seeds, never used for training."""
    return list(range(EVAL_SEED_BASE + offset, EVAL_SEED_BASE + offset + count))
