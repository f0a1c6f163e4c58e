"""Stable Audio through the text→audio adapter: a tiny pipeline built the way diffusers' own tests build it.

diffusers' ``tests/pipelines/stable_audio/test_stable_audio.py`` ``get_dummy_components()`` (a 2-layer
``StableAudioDiTModel``, a 2-level ``AutoencoderOobleck``, the cosine DPM-Solver), with a T5 and its
tokenizer made here instead of ``hf-internal-testing`` downloads. Saved, then loaded through
``TextToAudio.from_pretrained`` like any model folder.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pairsynth.modalities.text_to_audio import AudioSampling, TextToAudio
from pairsynth.torch_compat import ensure_torchvision_importable
from tests.dummy_audio_components import build_t5_tokenizer

RATE = 64  # the VAE's sampling rate: 2x hop, sample_size 16 → at most 0.5 s = 32 samples per clip


@pytest.fixture(scope="module")
def stable_audio_dir(tmp_path_factory):
    ensure_torchvision_importable()
    from diffusers import (AutoencoderOobleck, CosineDPMSolverMultistepScheduler, StableAudioDiTModel,
                           StableAudioPipeline, StableAudioProjectionModel)
    from transformers import T5Config, T5EncoderModel

    folder = tmp_path_factory.mktemp("stable-audio")
    tokenizer = build_t5_tokenizer(folder / "tokenizer-build")
    tokenizer.model_max_length = 25
    torch.manual_seed(0)
    transformer = StableAudioDiTModel(sample_size=16, in_channels=3, num_layers=2, attention_head_dim=4,
                                      num_key_value_attention_heads=2, out_channels=3, cross_attention_dim=4,
                                      time_proj_dim=8, global_states_input_dim=8, cross_attention_input_dim=4)
    scheduler = CosineDPMSolverMultistepScheduler(solver_order=2, prediction_type="v_prediction", sigma_data=1.0,
                                                  sigma_schedule="exponential")
    torch.manual_seed(0)
    vae = AutoencoderOobleck(encoder_hidden_size=6, downsampling_ratios=[1, 2], decoder_channels=3,
                             decoder_input_channels=3, audio_channels=2, channel_multiples=[2, 4], sampling_rate=RATE)
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=37, d_kv=8, num_heads=2,
                                           num_layers=2, pad_token_id=0, eos_token_id=1))
    torch.manual_seed(0)
    projection = StableAudioProjectionModel(text_encoder_dim=32, conditioning_dim=4, min_value=0, max_value=32)
    pipeline = StableAudioPipeline(vae=vae, text_encoder=text_encoder, projection_model=projection,
                                   tokenizer=tokenizer, transformer=transformer, scheduler=scheduler)
    pipeline.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def load(folder, **sampling) -> TextToAudio:
    settings = {"steps": 3, "guidance_scale": 3.0, "scheduler": "default", **sampling}
    return TextToAudio.from_pretrained(f"local:{folder}", sampling=AudioSampling(**settings), device="cpu")


def test_a_clip_is_the_same_alone_or_in_a_batch_and_matches_the_plain_pipeline(stable_audio_dir):
    torch.set_num_threads(1)
    adapter = load(stable_audio_dir, negative_prompt="noise burst", duration_s=0.375)
    assert type(adapter.pipeline).__name__ == "StableAudioPipeline" and adapter.sample_rate == RATE
    prompts, seeds = ["a dog barking", "a hammer hitting wooden surface", "a dog barking"], [11, 12, 13]
    calls = []
    adapter.pipeline.text_encoder.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    batch = adapter.generate(prompts, seeds)
    assert calls == [2, 1]  # the 2 distinct prompts once, the negative prompt once
    assert all(clip.waveform.shape == (2, 24) and clip.sample_rate == RATE for clip in batch)  # stereo, 0.375 s
    singles = [adapter.generate([prompt], [seed])[0] for prompt, seed in zip(prompts, seeds)]
    for together, alone in zip(batch, singles):
        np.testing.assert_allclose(together.waveform, alone.waveform, atol=1e-5)
    assert np.abs(batch[0].waveform - batch[2].waveform).max() > 1e-4  # same prompt, other seed
    plain = adapter.pipeline(prompt=prompts, negative_prompt=["noise burst"] * 3, num_inference_steps=3,
                             guidance_scale=3.0, audio_end_in_s=0.375, output_type="np",
                             generator=[torch.Generator().manual_seed(seed) for seed in seeds]).audios
    np.testing.assert_allclose(np.stack([clip.waveform for clip in batch]), plain, atol=1e-5)
    assert adapter.provenance["pipeline"] == "StableAudioPipeline" and adapter.provenance["duration_s"] == 0.375


def test_no_negative_prompt_and_the_default_length(stable_audio_dir):
    adapter = load(stable_audio_dir, guidance_scale=1.0)
    clips = adapter.generate(["a cat meowing"], [5])
    # the model's longest clip, 16 latents × hop 2 = 0.5 s (the Oobleck decoder returns one sample less)
    assert clips[0].waveform.shape[0] == 2 and 30 <= clips[0].waveform.shape[1] <= 32
    assert np.isfinite(clips[0].waveform).all()


def test_stable_audio_settings_it_cannot_take_fail_before_sampling(stable_audio_dir):
    with pytest.raises(ValueError, match="at most 0.5 s"):
        load(stable_audio_dir, duration_s=2.0)
    with pytest.raises(ValueError, match="use scheduler: default"):
        load(stable_audio_dir, scheduler="dpm++")
