"""The text→image adapter on a tiny random Stable Diffusion pipeline loaded from disk."""

from __future__ import annotations

import numpy as np
import pytest

from modalities.text_to_image import ImageSampling, TextToImage
from pairsynth.errors import ModelRefError

PROMPTS = ["a red circle on the left", "a blue square on the right", "a photo of a cat", "a green triangle on the left"]
SEEDS = [11, 22, 33, 44]


@pytest.fixture(scope="module")
def generator(tiny_sd_dir):
    return TextToImage.from_pretrained(f"local:{tiny_sd_dir}", sampling=ImageSampling(steps=2, guidance_scale=3.0))


def test_a_sample_is_the_same_whatever_batch_it_lands_in(generator):
    batched = generator.generate(PROMPTS, SEEDS)
    singles = [generator.generate([prompt], [seed])[0] for prompt, seed in zip(PROMPTS, SEEDS)]
    for together, alone in zip(batched, singles):
        # Batched BLAS may differ from single-sample BLAS in the last bits; never by an 8-bit step.
        assert np.abs(together.pixels - alone.pixels).max() <= 1 / 255
    reordered = generator.generate(PROMPTS[::-1], SEEDS[::-1])
    assert np.abs(reordered[0].pixels - batched[-1].pixels).max() <= 1 / 255


def test_outputs_are_float_images_and_seeds_matter(generator):
    first, second = generator.generate([PROMPTS[0]] * 2, [1, 2])
    assert first.pixels.shape == (32, 32, 3) and first.pixels.dtype == np.float32
    assert 0.0 <= first.pixels.min() and first.pixels.max() <= 1.0
    assert np.abs(first.pixels - second.pixels).max() > 0.01


@pytest.mark.parametrize("scheduler", ["dpm++", "ddim", "euler-a", "euler", "unipc"])
def test_schedulers_are_swapped_in_and_recorded(tiny_sd_dir, scheduler):
    generator = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(steps=2, scheduler=scheduler))
    expected = {"dpm++": "DPMSolverMultistepScheduler", "ddim": "DDIMScheduler",
                "euler-a": "EulerAncestralDiscreteScheduler", "euler": "EulerDiscreteScheduler",
                "unipc": "UniPCMultistepScheduler"}[scheduler]
    assert generator.provenance["scheduler"] == expected
    images = generator.generate(PROMPTS[:2], SEEDS[:2])
    again = generator.generate(PROMPTS[:1], SEEDS[:1])  # ancestral noise too comes from the per-sample generator
    assert np.abs(images[0].pixels - again[0].pixels).max() <= 1 / 255


def test_negative_prompt_changes_the_output(tiny_sd_dir):
    plain = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(steps=2, guidance_scale=5.0))
    negative = TextToImage.from_pretrained(
        str(tiny_sd_dir), sampling=ImageSampling(steps=2, guidance_scale=5.0, negative_prompt="a photo of a dog"))
    assert negative.provenance["negative_prompt"] == "a photo of a dog"
    difference = np.abs(plain.generate(PROMPTS[:1], [5])[0].pixels - negative.generate(PROMPTS[:1], [5])[0].pixels)
    assert difference.max() > 0


def test_unknown_model_refs_fail_before_loading(tmp_path):
    with pytest.raises(ModelRefError, match="unknown toy model 'toy-nope'"):
        TextToImage.from_pretrained("toy-nope")
    with pytest.raises(ModelRefError, match="does not exist"):
        TextToImage.from_pretrained(f"local:{tmp_path / 'missing'}")
    with pytest.raises(ModelRefError, match="unknown scheme"):
        TextToImage.from_pretrained("s3:bucket/model")
