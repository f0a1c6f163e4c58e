"""Audio→audio variation with an AudioLDM pipeline's own parts (SDEdit on the mel latent).

No diffusers pipeline offers this, so it is assembled from the pipeline's components: the source clip
becomes a log-mel with AudioLDM's front end, the VAE encodes it, the latent is noised to ``strength``
along the scheduler's schedule, and the UNet denoises it under the caption's CLAP text embedding;
the VAE decodes and the vocoder turns the mel back into a waveform. AudioLDM2 conditions through a
GPT-2 language model and is not supported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pairsynth.modalities.audioldm_mel import HOP, SAMPLE_RATE, SILENCE, log_mel
from pairsynth.modalities.pipelines import PipelineAdapter, check_strength
from pairsynth.modalities.text_to_audio import GeneratedAudio, TextToAudio
from pairsynth.audio_io import resample, to_mono


@dataclass(frozen=True, kw_only=True)
class AudioVariationSampling:
    """How an audio variation is made; recorded in each sample's provenance.

    Attributes:
        strength: how far towards noise the source latent is pushed: 0 returns the source, 1 ignores it.
    """

    strength: float = 0.35
    steps: int = 50
    guidance_scale: float = 2.5
    negative_prompt: str | None = None
    scheduler: str = "default"

    def __post_init__(self) -> None:
        check_strength(self.strength)


class AudioToAudio(PipelineAdapter):
    """Makes variations of clips guided by captions, one ``torch.Generator`` per sample."""

    def __init__(self, pipeline: Any, *, model_id: str, revision: str | None = None,
                 sampling: AudioVariationSampling = AudioVariationSampling()) -> None:
        if type(pipeline).__name__ != "AudioLDMPipeline":
            raise ValueError(f"audio variation needs an AudioLDMPipeline, got {type(pipeline).__name__}")
        super().__init__(pipeline, model_id=model_id, revision=revision, sampling=sampling)

    @classmethod
    def from_pretrained(cls, ref: str, *, revision: str | None = None,
                        sampling: AudioVariationSampling = AudioVariationSampling(), device: str = "auto",
                        dtype: str | None = None, concepts: Sequence[Any] = ()) -> AudioToAudio:
        """Load an AudioLDM pipeline (``toy-sounds``, a folder, or ``cvssp/audioldm-s-full-v2``)."""
        generator = TextToAudio.from_pretrained(ref, revision=revision, device=device, dtype=dtype)
        adapter = cls(generator.pipeline, model_id=ref, revision=revision, sampling=sampling)
        adapter.load_concepts(concepts)
        return adapter

    @classmethod
    def from_text_to_audio(cls, generator: TextToAudio,
                           sampling: AudioVariationSampling = AudioVariationSampling()) -> AudioToAudio:
        """Reuse an already-loaded text→audio adapter's pipeline."""
        adapter = cls(generator.pipeline, model_id=generator.model_id, revision=generator.revision, sampling=sampling)
        adapter.concepts = list(generator.concepts)  # the shared pipeline already holds them
        return adapter

    @property
    def sample_rate(self) -> int:
        return int(self.pipeline.vocoder.config.sampling_rate)

    @property
    def provenance(self) -> dict[str, Any]:
        s = self.sampling
        return {"model": self.model_id, "revision": self.revision, "pipeline": "AudioLDMPipeline+variation",
                "scheduler": type(self.pipeline.scheduler).__name__, "scheduler_name": s.scheduler,
                "strength": s.strength, "steps": s.steps, "guidance_scale": s.guidance_scale,
                "negative_prompt": s.negative_prompt, "sample_rate": self.sample_rate, **self.concept_provenance}

    @torch.no_grad()
    def generate(self, sources: Sequence[tuple[np.ndarray, int]], prompts: Sequence[str],
                 seeds: Sequence[int]) -> list[GeneratedAudio]:
        """One variation per ``(waveform, sample_rate)`` source, guided by ``prompts[i]`` from ``seeds[i]``."""
        if not len(sources) == len(prompts) == len(seeds):
            raise ValueError(f"{len(sources)} sources, {len(prompts)} prompts and {len(seeds)} seeds")
        if not sources:
            return []
        return self.by_concept(prompts, self._generate, sources=list(sources), prompts=list(prompts), seeds=list(seeds))

    def _generate(self, sources: list[tuple[np.ndarray, int]], prompts: list[str], seeds: list[int]) -> list[GeneratedAudio]:
        pipe, s = self.pipeline, self.sampling
        device, dtype = pipe._execution_device, pipe.unet.dtype
        generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]
        clips = [resample(to_mono(np.asarray(w, np.float32)), int(rate), self.sample_rate) for w, rate in sources]
        length = max(len(clip) for clip in clips)
        mels = self._mels(clips, length).to(device, dtype)

        # 1. Encode each source mel with its own generator (the VAE samples its posterior).
        latents = torch.cat([pipe.vae.encode(mel[None]).latent_dist.sample(generator=g) for mel, g in zip(mels, generators)])
        latents = latents * pipe.vae.config.scaling_factor
        # 2. Noise the latents to `strength` along the schedule, each sample with its own noise.
        pipe.scheduler.set_timesteps(s.steps, device=device)
        kept = min(int(s.steps * s.strength), s.steps)
        timesteps = pipe.scheduler.timesteps[(s.steps - kept) * pipe.scheduler.order:]
        if len(timesteps) == 0:
            raise ValueError(f"strength {s.strength} with {s.steps} steps leaves no denoising step; raise either")
        noise = torch.cat([torch.randn(latents.shape[1:], generator=g)[None] for g in generators]).to(device, dtype)
        latents = pipe.scheduler.add_noise(latents, noise, timesteps[:1].repeat(len(latents)))
        # 3. Denoise under the captions' text embeddings, with classifier-free guidance.
        guided = s.guidance_scale > 1.0
        embeds = pipe._encode_prompt(list(prompts), device, 1, guided,
                                     [s.negative_prompt] * len(prompts) if s.negative_prompt else None)
        extra = pipe.prepare_extra_step_kwargs(generators, 0.0)
        for t in timesteps:
            model_input = pipe.scheduler.scale_model_input(torch.cat([latents] * 2) if guided else latents, t)
            noise_pred = pipe.unet(model_input, t, encoder_hidden_states=None, class_labels=embeds).sample
            if guided:
                unconditional, conditional = noise_pred.chunk(2)
                noise_pred = unconditional + s.guidance_scale * (conditional - unconditional)
            latents = pipe.scheduler.step(noise_pred, t, latents, **extra).prev_sample
        # 4. Decode to a mel, vocode to a waveform, trim to the sources' lengths.
        audio = pipe.mel_spectrogram_to_waveform(pipe.decode_latents(latents)).float().cpu().numpy()
        return [GeneratedAudio(audio[i, : len(clip)].astype(np.float32), self.sample_rate) for i, clip in enumerate(clips)]

    def _mels(self, clips: list[np.ndarray], length: int) -> torch.Tensor:
        """(B, 1, frames, mel bins) log-mels, frames padded with silence to what the VAE can halve."""
        padded = torch.stack([torch.from_numpy(np.pad(clip, (0, length - len(clip)))) for clip in clips])
        upsampling = int(np.prod(self.pipeline.vocoder.config.upsample_rates))
        if self.sample_rate != SAMPLE_RATE or upsampling != HOP or self.pipeline.vae.config.in_channels != 1:
            raise ValueError(f"audio variation needs AudioLDM's 16 kHz mel front end; this pipeline's vocoder "
                             f"runs at {self.sample_rate} Hz with {upsampling} samples per mel frame")
        mels = log_mel(padded, n_mels=int(self.pipeline.vocoder.config.model_in_dim))
        factor = self.pipeline.vae_scale_factor
        frames = -(-mels.shape[1] // factor) * factor
        mels = torch.nn.functional.pad(mels, (0, 0, 0, frames - mels.shape[1]), value=SILENCE)
        return mels[:, None]
