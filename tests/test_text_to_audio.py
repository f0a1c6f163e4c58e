"""The text→audio adapter on tiny random AudioLDM and AudioLDM 2 pipelines loaded from disk."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from pairsynth.alignment.audio_checks import audio_problem
from pairsynth.modalities.text_to_audio import AudioSampling, GeneratedAudio, TextToAudio
from pairsynth.errors import ModelRefError

PROMPTS = ["a high beeping tone", "a low steady tone on the left of the sound", "a dog barking", "a rising chirp"]
SEEDS = [11, 22, 33, 44]
# Batched BLAS may differ from single-sample BLAS in the last bits: measured at most 1.3e-7 on clips
# whose peak is about 0.1 (the tiny vocoder's level), i.e. a relative error near 1e-6.
BATCH_TOLERANCE = 1e-5


@pytest.fixture(scope="module", params=["audioldm", "audioldm2"])
def generator(request):
    folder = request.getfixturevalue(f"tiny_{request.param}_dir")
    return TextToAudio.from_pretrained(f"local:{folder}", sampling=AudioSampling(steps=2, guidance_scale=3.0))


def test_a_clip_is_the_same_whatever_batch_it_lands_in(generator):
    batched = generator.generate(PROMPTS, SEEDS)
    singles = [generator.generate([prompt], [seed])[0] for prompt, seed in zip(PROMPTS, SEEDS)]
    for together, alone in zip(batched, singles):
        assert np.abs(together.waveform - alone.waveform).max() <= BATCH_TOLERANCE
    reordered = generator.generate(PROMPTS[::-1], SEEDS[::-1])
    assert np.abs(reordered[0].waveform - batched[-1].waveform).max() <= BATCH_TOLERANCE
    repeated = generator.generate([PROMPTS[0], PROMPTS[1], PROMPTS[0]], [SEEDS[0], SEEDS[1], 99])  # encoded once
    assert np.abs(repeated[0].waveform - singles[0].waveform).max() <= BATCH_TOLERANCE
    assert np.abs(repeated[2].waveform - generator.generate([PROMPTS[0]], [99])[0].waveform).max() <= BATCH_TOLERANCE


def test_outputs_are_float_clips_at_the_vocoder_rate_and_seeds_matter(generator):
    first, second = generator.generate([PROMPTS[0]] * 2, [1, 2])
    assert isinstance(first, GeneratedAudio) and first.modality == "audio"
    assert first.waveform.shape == (256,) and first.waveform.dtype == np.float32  # the tiny UNet's default length
    assert first.sample_rate == generator.sample_rate == 16_000
    assert np.abs(first.waveform - second.waveform).max() > 1e-3
    assert audio_problem(first.waveform, first.sample_rate) is None


def test_clips_match_what_the_pipeline_itself_makes_for_one_prompt(generator):
    """AudioLDM 2's per-prompt conditioning must be exactly the pipeline's own for a batch of one."""
    ours = generator.generate(PROMPTS[1:2], SEEDS[1:2])[0].waveform
    theirs = generator.pipeline(prompt=PROMPTS[1:2], num_inference_steps=2, guidance_scale=3.0, output_type="np",
                                generator=[torch.Generator().manual_seed(SEEDS[1])]).audios[0]
    assert np.abs(ours - theirs).max() <= BATCH_TOLERANCE


def test_provenance_records_what_made_the_clip(generator):
    provenance = generator.provenance
    assert provenance["pipeline"] in ("AudioLDMPipeline", "AudioLDM2Pipeline")
    assert provenance["scheduler"] == "DDIMScheduler" and provenance["scheduler_name"] == "default"
    assert (provenance["steps"], provenance["guidance_scale"], provenance["duration_s"]) == (2, 3.0, None)
    assert provenance["sample_rate"] == 16_000 and provenance["dtype"] == "float32"


@pytest.mark.parametrize("folder", ["tiny_audioldm_dir", "tiny_audioldm2_dir"])
def test_duration_and_negative_prompt(request, folder):
    location = request.getfixturevalue(folder)
    plain = TextToAudio.from_pretrained(str(location), sampling=AudioSampling(steps=2, duration_s=0.032))
    negative = TextToAudio.from_pretrained(
        str(location), sampling=AudioSampling(steps=2, duration_s=0.032, negative_prompt="a dog barking"))
    assert negative.provenance["negative_prompt"] == "a dog barking" and plain.provenance["duration_s"] == 0.032
    clip = plain.generate(PROMPTS[:1], [5])[0].waveform
    assert clip.shape == (512,)  # 0.032 s at 16 kHz
    assert np.abs(clip - negative.generate(PROMPTS[:1], [5])[0].waveform).max() > 0
    # Negative prompts too are encoded per prompt: batching still changes nothing.
    batched = negative.generate(PROMPTS, SEEDS)
    assert np.abs(batched[2].waveform - negative.generate(PROMPTS[2:3], SEEDS[2:3])[0].waveform).max() <= BATCH_TOLERANCE


@pytest.mark.parametrize("scheduler, expected", [("dpm++", "DPMSolverMultistepScheduler"),
                                                 ("euler-a", "EulerAncestralDiscreteScheduler")])
def test_schedulers_are_swapped_in_and_recorded(tiny_audioldm_dir, scheduler, expected):
    generator = TextToAudio.from_pretrained(str(tiny_audioldm_dir), sampling=AudioSampling(steps=2, scheduler=scheduler))
    assert generator.provenance["scheduler"] == expected
    clips = generator.generate(PROMPTS[:2], SEEDS[:2])
    again = generator.generate(PROMPTS[:1], SEEDS[:1])  # ancestral noise too comes from the per-sample generator
    assert np.abs(clips[0].waveform - again[0].waveform).max() <= BATCH_TOLERANCE


def test_audioldm2_without_guidance_and_with_a_bare_gpt2(tmp_path_factory, tiny_audioldm2_dir):
    from tests.dummy_audio_components import save_tiny_audioldm2_pipeline

    # guidance_scale <= 1 switches classifier-free guidance off: no negative branch at all.
    unguided = TextToAudio.from_pretrained(str(tiny_audioldm2_dir), sampling=AudioSampling(steps=2, guidance_scale=1.0))
    batched = unguided.generate(PROMPTS, SEEDS)
    assert np.abs(batched[1].waveform - unguided.generate(PROMPTS[1:2], SEEDS[1:2])[0].waveform).max() <= BATCH_TOLERANCE
    # A folder that stores GPT2Model (diffusers' own tests do) loads and generates the same clips.
    bare = save_tiny_audioldm2_pipeline(tmp_path_factory.mktemp("bare-gpt2"), language_model="GPT2Model")
    wrapped = TextToAudio.from_pretrained(str(bare), sampling=AudioSampling(steps=2, guidance_scale=1.0))
    assert type(wrapped.pipeline.language_model).__name__ == "GPT2LMHeadModel"
    assert np.abs(wrapped.generate(PROMPTS, SEEDS)[3].waveform - batched[3].waveform).max() <= BATCH_TOLERANCE


def test_loading_audioldm_hides_only_the_deprecation_notice(tiny_audioldm_dir, capfd):
    emitter = logging.getLogger("diffusers.pipelines.pipeline_utils")
    filters = list(emitter.filters)
    TextToAudio.from_pretrained(str(tiny_audioldm_dir), sampling=AudioSampling(steps=1))
    assert "deprecated" not in capfd.readouterr().err
    assert emitter.filters == filters  # the filter is gone again after loading


def test_bad_settings_and_references_fail_before_generating(tiny_audioldm_dir, tiny_sd_dir, tmp_path):
    with pytest.raises(ValueError, match="steps"):
        TextToAudio.from_pretrained(str(tiny_audioldm_dir), sampling=AudioSampling(steps=0))
    with pytest.raises(ValueError, match=r"duration_s must be at least 0.0005 s"):
        TextToAudio.from_pretrained(str(tiny_audioldm_dir), sampling=AudioSampling(duration_s=0.0001))
    with pytest.raises(ValueError, match="loads a StableDiffusionPipeline; the text-to-audio adapter drives"):
        TextToAudio.from_pretrained(str(tiny_sd_dir))
    with pytest.raises(ModelRefError, match="does not exist"):
        TextToAudio.from_pretrained(f"local:{tmp_path / 'missing'}")
    with pytest.raises(ModelRefError, match="unknown toy model"):
        TextToAudio.from_pretrained("toy-nope")
    generator = TextToAudio.from_pretrained(str(tiny_audioldm_dir), sampling=AudioSampling(steps=1))
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        generator.generate(PROMPTS[:2], [1])
    assert generator.generate([], []) == []
