"""SD3 and FLUX through the text→image adapter: tiny pipelines built the way diffusers' own tests build them.

Shaped after diffusers' ``tests/pipelines/stable_diffusion_3/test_pipeline_stable_diffusion_3.py`` and
``tests/pipelines/flux/test_pipeline_flux.py`` ``get_dummy_components()`` (one-layer transformers, a
one-level VAE, FlowMatchEuler), with every tokenizer made here (theirs come from ``hf-internal-testing``
on the hub). Saved, then loaded through ``TextToImage.from_pretrained`` like any model folder.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pairsynth.modalities.pipelines import prompt_arguments, seeded_generators
from pairsynth.modalities.text_to_image import ImageSampling, TextToImage
from pairsynth.torch_compat import ensure_torchvision_importable
from pairsynth.zoo.tokenizer import build_clip_tokenizer
from tests.dummy_audio_components import build_t5_tokenizer

WORDS = ["a", "red", "blue", "circle", "square", "on", "the", "left", "right", "photo", "of", "cat", "dog"]
PROMPTS = ["a red circle on the left", "a photo of a cat", "a red circle on the left"]
SEEDS = [4, 5, 6]


def clip_config(tokenizer):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37,
                          layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2,
                          vocab_size=len(tokenizer), hidden_act="gelu", projection_dim=32, max_position_embeddings=77)


def tiny_vae(latent_channels: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                         latent_channels=latent_channels, norm_num_groups=1, use_quant_conv=False,
                         use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)


def tiny_t5(tokenizer):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2,
                                   pad_token_id=0, eos_token_id=1))


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizers")
    return build_clip_tokenizer(WORDS, folder / "clip"), build_t5_tokenizer(folder / "t5")


@pytest.fixture(scope="module")
def sd3_dir(tokenizers, tmp_path_factory):
    ensure_torchvision_importable()
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    clip_tokenizer, t5_tokenizer = tokenizers
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
                                        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
                                        pooled_projection_dim=64, out_channels=4)
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(clip_config(clip_tokenizer))
    torch.manual_seed(1)
    text_encoder_2 = CLIPTextModelWithProjection(clip_config(clip_tokenizer))
    pipeline = StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        text_encoder_3=tiny_t5(t5_tokenizer), tokenizer=clip_tokenizer, tokenizer_2=clip_tokenizer,
        tokenizer_3=t5_tokenizer, transformer=transformer, vae=tiny_vae(4))
    folder = tmp_path_factory.mktemp("sd3") / "pipeline"
    pipeline.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def flux_dir(tokenizers, tmp_path_factory):
    ensure_torchvision_importable()
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    clip_tokenizer, t5_tokenizer = tokenizers
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=True)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(clip_config(clip_tokenizer))
    pipeline = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=text_encoder,
                            text_encoder_2=tiny_t5(t5_tokenizer), tokenizer=clip_tokenizer, tokenizer_2=t5_tokenizer,
                            transformer=transformer, vae=tiny_vae(1), image_encoder=None, feature_extractor=None)
    folder = tmp_path_factory.mktemp("flux") / "pipeline"
    pipeline.save_pretrained(folder)
    return folder


def check_batch_equals_single(generator):
    batch = generator.generate(PROMPTS, SEEDS)
    singles = [generator.generate([prompt], [seed])[0] for prompt, seed in zip(PROMPTS, SEEDS)]
    for together, alone in zip(batch, singles):
        assert np.abs(together.pixels - alone.pixels).max() <= 1 / 255
    assert np.abs(batch[0].pixels - batch[2].pixels).max() > 1 / 255  # same prompt, other seed
    return batch


def test_sd3_encodes_each_prompt_once_and_matches_the_plain_pipeline(sd3_dir):
    torch.set_num_threads(1)
    sampling = ImageSampling(steps=2, guidance_scale=4.0, negative_prompt="a blue square", scheduler="default")
    generator = TextToImage.from_pretrained(f"local:{sd3_dir}", sampling=sampling, device="cpu")
    assert generator.provenance["pipeline"] == "StableDiffusion3Pipeline"
    calls = []
    generator.pipeline.text_encoder_3.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    arguments = prompt_arguments(generator.pipeline, PROMPTS, "a blue square", 4.0)
    assert calls == [2, 2]  # the 2 distinct prompts, and the negative prompt for each of them: T5 once each
    assert {name: tensor.shape[0] for name, tensor in arguments.items()} == {
        "prompt_embeds": 3, "negative_prompt_embeds": 3, "pooled_prompt_embeds": 3, "negative_pooled_prompt_embeds": 3}
    batch = check_batch_equals_single(generator)
    assert batch[0].pixels.shape == (32, 32, 3)
    plain = generator.pipeline(prompt=PROMPTS, negative_prompt=["a blue square"] * 3, num_inference_steps=2,
                               guidance_scale=4.0, generator=seeded_generators(SEEDS), output_type="np").images
    for sample, expected in zip(batch, plain):
        assert np.abs(sample.pixels - expected).max() <= 1 / 255


def test_flux_gets_its_t5_and_pooled_embeddings_once_per_prompt(flux_dir):
    torch.set_num_threads(1)
    sampling = ImageSampling(steps=2, guidance_scale=3.5, scheduler="default", height=16, width=16)
    generator = TextToImage.from_pretrained(f"local:{flux_dir}", sampling=sampling, device="cpu")
    assert generator.provenance["pipeline"] == "FluxPipeline"
    arguments = prompt_arguments(generator.pipeline, PROMPTS, None, 3.5)
    assert {name: tensor.shape[0] for name, tensor in arguments.items()} == {"prompt_embeds": 3,
                                                                            "pooled_prompt_embeds": 3}
    batch = check_batch_equals_single(generator)
    assert batch[0].pixels.shape == (16, 16, 3) and np.isfinite(batch[0].pixels).all()
    plain = generator.pipeline(prompt=PROMPTS, num_inference_steps=2, guidance_scale=3.5, height=16, width=16,
                               generator=seeded_generators(SEEDS), output_type="np").images
    for sample, expected in zip(batch, plain):
        assert np.abs(sample.pixels - expected).max() <= 1 / 255


def test_flow_matching_models_refuse_settings_they_cannot_use(flux_dir):
    with pytest.raises(ValueError, match="use scheduler: default"):
        TextToImage.from_pretrained(f"local:{flux_dir}", sampling=ImageSampling(scheduler="dpm++"), device="cpu")
    negative = ImageSampling(steps=1, scheduler="default", negative_prompt="blurry", height=16, width=16)
    generator = TextToImage.from_pretrained(f"local:{flux_dir}", sampling=negative, device="cpu")
    with pytest.raises(ValueError, match="does not use a negative prompt"):
        generator.generate(["a cat"], [0])
