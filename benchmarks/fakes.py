"""Fast stand-ins for a generator and a judge, for benchmarks and tests of the engine itself.

:class:`FakeImageGenerator` stands in for a GPU: it sleeps a fixed time per batch (``time.sleep``
releases the GIL, as a CUDA call does) and returns images whose first pixels carry a noisy copy of
their prompt's embedding. :class:`FakeJudge` reads that embedding back, so its cosines (and so the
acceptance decisions) depend on the prompt, the seed and the noise level, deterministically.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pairsynth.alignment.embedding_scorer import EmbeddingScorer
from pairsynth.modalities.text_to_image import GeneratedImage

DIM = 16


def text_vector(text: str) -> np.ndarray:
    """A fixed unit vector per text (its hash seeds the draw)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(DIM)
    return vector / np.linalg.norm(vector)


class FakeImageGenerator:
    """A text-to-image "model" that costs ``seconds_per_batch`` of GIL-free waiting per batch.

    Args:
        size: image side in pixels.
        seconds_per_batch: the stand-in GPU time per batch.
        noise: how far each sample's embedding strays from its prompt's (0: exact).
        texture: pixel noise amplitude; generated photographs are smooth with some texture, and
            PNG's cost depends on it (0.03 makes a 512² PNG cost about what an SD image does).
    """

    def __init__(self, size: int = 64, seconds_per_batch: float = 0.0, noise: float = 0.6,
                 texture: float = 0.03, matmuls_per_batch: int = 0) -> None:
        self.size, self.seconds_per_batch, self.noise, self.texture = size, seconds_per_batch, noise, texture
        self.matmuls_per_batch = matmuls_per_batch  # a CPU "model": 256² fp32 matmuls on torch's threads
        ramp = np.linspace(0.1, 0.9, size, dtype=np.float32)
        self._base = np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1),
                               np.full((size, size), 0.5, np.float32)], axis=-1)
        if texture:  # drawn once: a GPU hands back finished pixels, so making them must cost ~nothing here
            noise = np.random.default_rng(0).standard_normal(self._base.shape, dtype=np.float32)
            self._base = np.clip(self._base + texture * noise, 0.0, 1.0)

    @property
    def provenance(self) -> dict[str, Any]:
        return {"model": "fake-image", "size": self.size, "noise": self.noise}

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        if self.seconds_per_batch:
            time.sleep(self.seconds_per_batch)
        if self.matmuls_per_batch:
            weight = torch.ones(256, 256) / 256
            state = torch.ones(256, 256)
            for _ in range(self.matmuls_per_batch):
                state = state @ weight
        outputs = []
        for prompt, seed in zip(prompts, seeds):
            rng = np.random.default_rng(seed)
            vector = text_vector(prompt) + self.noise * rng.standard_normal(DIM) / np.sqrt(DIM)
            vector /= np.linalg.norm(vector)
            pixels = self._base.copy()
            pixels[0, :DIM, 0] = (vector + 1) / 2  # the "content" the judge sees
            outputs.append(GeneratedImage(pixels))
        return outputs


class FakeJudge(EmbeddingScorer):
    """A CLIP stand-in: text → :func:`text_vector`, image → the vector in its first pixels."""

    kind = "clip"

    def __init__(self, batch_size: int = 256) -> None:
        super().__init__(model_id="fake-judge", device=torch.device("cpu"), batch_size=batch_size,
                         precision="fp32", context_length=77)

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(np.stack([text_vector(t) for t in texts]).astype(np.float32))

    def _encode_samples(self, samples: Sequence[np.ndarray]) -> torch.Tensor:
        vectors = np.stack([np.asarray(s)[0, :DIM, 0].astype(np.float32) / 255 * 2 - 1 for s in samples])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return torch.from_numpy(vectors)
