"""Image→image variation on the tiny random pipeline, loaded both ways."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pairsynth.modalities.image_to_image import ImageToImage, VariationSampling
from pairsynth.modalities.text_to_image import ImageSampling, TextToImage


@pytest.fixture(scope="module")
def sources():
    rng = np.random.default_rng(0)
    return [rng.random((48, 48, 3), dtype=np.float32) for _ in range(3)]


def test_variations_are_per_sample_deterministic_and_resized(tiny_sd_dir, sources):
    varier = ImageToImage.from_pretrained(str(tiny_sd_dir), sampling=VariationSampling(strength=0.5, steps=4))
    prompts = ["a red circle on the left", "a photo of a cat", "a blue square on the right"]
    batch = varier.generate(sources, prompts, [1, 2, 3])
    alone = varier.generate(sources[1:2], prompts[1:2], [2])
    assert batch[0].pixels.shape == (32, 32, 3)  # resized to the model's native size
    assert np.abs(batch[1].pixels - alone[0].pixels).max() <= 1 / 255
    assert varier.provenance["strength"] == 0.5 and varier.provenance["size"] == 32


def test_low_strength_stays_closer_to_the_source_than_high(tiny_sd_dir, sources):
    t2i = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(steps=2))
    distances = []
    for strength in (0.1, 1.0):
        varier = ImageToImage.from_text_to_image(t2i, VariationSampling(strength=strength, steps=10, guidance_scale=1.0))
        out = varier.generate(sources, ["a photo of a cat"] * 3, [5, 6, 7])
        resized = [np.asarray(Image.fromarray((s * 255).astype(np.uint8)).resize((32, 32)), np.float32) / 255
                   for s in sources]
        distances.append(np.mean([np.abs(o.pixels - r).mean() for o, r in zip(out, resized)]))
    assert distances[0] < distances[1]


def test_strength_out_of_range_is_refused(tiny_sd_dir):
    with pytest.raises(ValueError, match="strength must be in"):
        ImageToImage.from_pretrained(str(tiny_sd_dir), sampling=VariationSampling(strength=0.0))
