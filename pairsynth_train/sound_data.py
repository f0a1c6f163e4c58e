"""Batches of synthesized SOUNDS scenes as tensors, reproducible from (run seed, step).

Seeds come from :mod:`pairsynth_train.data` (the same disjoint train / held-out ranges as
the image zoo): a resumed run sees exactly the data it would have seen, and held-out seeds are never
trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pairsynth.world.sounds import MONO_ATTRIBUTES, VOCAB, SoundScene, render_sample
from pairsynth.modalities.audioldm_mel import log_mel, waveforms_to_tensor


@dataclass
class SoundsBatch:
    """Mono waveforms (B, 16000) at 16 kHz with their log-mels (B, 100, 64), captions and scenes."""

    waveforms: torch.Tensor
    mels: torch.Tensor
    captions: list[str]
    scenes: list[SoundScene]

    def attribute_labels(self) -> dict[str, torch.Tensor]:
        """Class index per mono attribute, in ``VOCAB`` order (targets for the judges)."""
        return {
            name: torch.tensor([VOCAB[name].index(getattr(s, name)) for s in self.scenes])
            for name in MONO_ATTRIBUTES
        }


def synthesize_batch(seeds: list[int]) -> SoundsBatch:
    """Synthesize one scene per seed (the world's seed → sample contract) and its log-mel."""
    samples = [render_sample(seed) for seed in seeds]
    waveforms = waveforms_to_tensor([s[0] for s in samples])
    return SoundsBatch(waveforms, log_mel(waveforms), [s[1] for s in samples], [s[2] for s in samples])
