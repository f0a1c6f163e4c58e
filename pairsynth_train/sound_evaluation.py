"""Metrics the audio zoo's bars are stated in; shared by the audio trainers and ``benchmarks/zoo_quality.py``.

Generated clips are judged on the *waveform* (after the vocoder), and CLAP is measured through its
public processor, resampling our 16 kHz audio to the extractor's rate exactly as a scorer would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pairsynth.world.sounds import SAMPLE_RATE, all_captions, one_attribute_off
from pairsynth_train.evaluation import ClipQuality, caption_quality, generate


@dataclass(kw_only=True)
class GeneratedClips:
    """Waveforms (B, samples) at 16 kHz generated for ``captions``, and the time it took."""

    waveforms: np.ndarray
    captions: list[str]
    seconds: float

    @property
    def seconds_per_clip(self) -> float:
        return self.seconds / max(1, len(self.captions))


def generate_clips(pipe, captions: list[str], seeds: list[int], steps: int, guidance: float,
                   batch_size: int = 32) -> GeneratedClips:
    """One 1 s clip per (caption, seed), each from its own generator (batch-size independent)."""
    made = generate(pipe, captions, seeds, steps, guidance, batch_size, audio_length_in_s=1.0, output_type="np")
    return GeneratedClips(waveforms=np.asarray(made.outputs, dtype=np.float32), captions=made.captions, seconds=made.seconds)


def clap_audio_inputs(processor, waveforms, sample_rate: int = SAMPLE_RATE) -> dict:
    """Run waveforms through the CLAP feature extractor at its own sampling rate (resampling with soxr)."""
    import librosa

    target = processor.feature_extractor.sampling_rate
    audio = [np.asarray(w, dtype=np.float32) for w in waveforms]
    if target != sample_rate:
        audio = [librosa.resample(w, orig_sr=sample_rate, target_sr=target, res_type="soxr_hq") for w in audio]
    return processor.feature_extractor(audio, sampling_rate=target, return_tensors="pt")


@torch.no_grad()
def clap_embeddings(model, processor, waveforms, texts: list[str], batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised audio embeddings of ``waveforms`` and text embeddings of ``texts``."""
    model.eval()
    tokens = processor.tokenizer(texts, padding=True, return_tensors="pt")
    text = _normalised(model.get_text_features(**tokens))
    audio = []
    for start in range(0, len(waveforms), batch_size):
        inputs = clap_audio_inputs(processor, waveforms[start : start + batch_size])
        audio.append(_normalised(model.get_audio_features(**inputs)))
    return torch.cat(audio), text


def _normalised(features) -> torch.Tensor:
    """transformers 5 returns a model output whose ``pooler_output`` holds the features; 4.x a tensor."""
    tensor = features if isinstance(features, torch.Tensor) else features.pooler_output
    return torch.nn.functional.normalize(tensor, dim=-1)


def clap_quality(model, processor, waveforms, captions: list[str]) -> ClipQuality:
    """Zero-shot caption retrieval over the 8 mono captions and matched vs one-attribute-off ROC AUC."""
    names = all_captions()
    audio, text = clap_embeddings(model, processor, waveforms, names)
    return caption_quality((audio @ text.T).numpy(), captions, names, one_attribute_off)
