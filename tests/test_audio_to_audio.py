"""Audio→audio variation built from a tiny AudioLDM pipeline's own parts."""

from __future__ import annotations

import numpy as np
import pytest

from pairsynth.modalities.audio_to_audio import AudioToAudio, AudioVariationSampling


@pytest.fixture(scope="module")
def sources():
    t = np.arange(22050) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32) * 0.3
    mono = (np.sin(2 * np.pi * 880 * np.arange(16000) / 16000) * 0.3).astype(np.float32)
    return [(stereo, 22050), (mono, 16000)]


def test_variations_keep_the_source_length_and_are_per_sample_deterministic(tiny_audioldm_mel_dir, sources):
    varier = AudioToAudio.from_pretrained(str(tiny_audioldm_mel_dir), sampling=AudioVariationSampling(strength=0.6, steps=4))
    both = varier.generate(sources, ["a low steady tone", "a high steady tone"], [3, 4])
    alone = varier.generate(sources[1:], ["a high steady tone"], [4])
    assert both[0].sample_rate == 16000 and both[0].waveform.shape == (16000,)  # 1 s at 22.05 kHz → 1 s at 16 kHz
    assert np.abs(both[1].waveform - alone[0].waveform).max() < 1e-5
    again = varier.generate(sources[1:], ["a high steady tone"], [5])
    assert np.abs(again[0].waveform - alone[0].waveform).max() > 0
    assert varier.provenance["strength"] == 0.6


def test_strength_leaving_no_step_is_refused(tiny_audioldm_mel_dir, sources):
    varier = AudioToAudio.from_pretrained(str(tiny_audioldm_mel_dir), sampling=AudioVariationSampling(strength=0.1, steps=4))
    with pytest.raises(ValueError, match="leaves no denoising step"):
        varier.generate(sources[:1], ["a tone"], [1])


def test_a_pipeline_without_audioldms_front_end_is_refused(tiny_audioldm_dir, sources):
    varier = AudioToAudio.from_pretrained(str(tiny_audioldm_dir), sampling=AudioVariationSampling(steps=4))
    with pytest.raises(ValueError, match="needs AudioLDM's 16 kHz mel front end"):
        varier.generate(sources[:1], ["a tone"], [1])
