"""The text→image adapter on a tiny random Stable Diffusion pipeline loaded from disk."""

from __future__ import annotations

import numpy as np
import pytest

from pairsynth.modalities.pipelines import prompt_arguments, seeded_generators
from pairsynth.modalities.text_to_image import ImageSampling, TextToImage
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


@pytest.mark.parametrize("guidance, negative", [(3.0, None), (5.0, "a photo of a dog"), (1.0, None)])
def test_prompts_encoded_once_each_give_what_the_pipeline_gives_for_the_strings(tiny_sd_dir, guidance, negative):
    """Repeated prompts and the negative prompt are encoded once per batch; the images must not change."""
    generator = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(
        steps=2, guidance_scale=guidance, negative_prompt=negative))
    prompts, seeds = [PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[0]], [1, 2, 3, 4]
    arguments = prompt_arguments(generator.pipeline, prompts, negative, guidance)
    assert "prompt" not in arguments and arguments["prompt_embeds"].shape[0] == 4
    assert ("negative_prompt_embeds" in arguments) == (guidance > 1)
    ours = generator.generate(prompts, seeds)
    reference = generator.pipeline(prompt=prompts, negative_prompt=[negative] * 4 if negative else None,
                                   num_inference_steps=2, guidance_scale=guidance,
                                   generator=seeded_generators(seeds), output_type="np").images
    for sample, expected in zip(ours, reference):
        assert np.abs(sample.pixels - expected).max() <= 1 / 255


def test_pipelines_without_separate_prompt_encoding_get_the_strings():
    class NoEncoder:
        def __call__(self, prompt=None, negative_prompt=None):
            pass

    assert prompt_arguments(NoEncoder(), ["a", "b"], "c", 5.0) == {"prompt": ["a", "b"], "negative_prompt": ["c", "c"]}


def test_sdxl_pipelines_load_and_get_their_pooled_embeddings_once_per_prompt(tiny_sdxl_dir):
    generator = TextToImage.from_pretrained(str(tiny_sdxl_dir), sampling=ImageSampling(steps=2, guidance_scale=4.0))
    assert generator.provenance["pipeline"] == "StableDiffusionXLPipeline"
    prompts, seeds = [PROMPTS[0], PROMPTS[1], PROMPTS[0]], [1, 2, 3]
    arguments = prompt_arguments(generator.pipeline, prompts, None, 4.0)
    assert {name: tensor.shape[0] for name, tensor in arguments.items()} == {
        "prompt_embeds": 3, "pooled_prompt_embeds": 3, "negative_prompt_embeds": 3, "negative_pooled_prompt_embeds": 3}
    ours = generator.generate(prompts, seeds)
    reference = generator.pipeline(prompt=prompts, num_inference_steps=2, guidance_scale=4.0,
                                   generator=seeded_generators(seeds), output_type="np").images
    assert ours[0].pixels.shape == (32, 32, 3)
    for sample, expected in zip(ours, reference):
        assert np.abs(sample.pixels - expected).max() <= 1 / 255
