"""What concept learning needs of a pipeline family: latents of the real items, prompt conditioning with
gradients, and the UNet's prediction.

Two families: Stable Diffusion 1.x/2.x (text→image; the text encoder's hidden states reach the UNet
through cross-attention) and AudioLDM (text→audio; CLAP's normalised ``text_embeds`` reach the UNet
as a class embedding). Both are loaded with diffusers' ``from_pretrained`` and trained the way
diffusers' ``examples/textual_inversion`` and ``examples/dreambooth/train_dreambooth_lora.py`` train
(VAE latents × ``scaling_factor``, DDPM noise at uniform timesteps, MSE on ε or v).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pairsynth.concepts.items import ConceptItems
from pairsynth.errors import ConceptError

logger = logging.getLogger(__name__)

class Family:
    """What differs between pipeline families when a concept is trained against them.

    Attributes:
        medium: what the family generates (``image``, ``audio``): what a concept's items must be.
        attention_mask: whether its text encoder takes the tokenizer's attention mask.
    """

    medium: str
    attention_mask: bool = False

    def vae_input(self, backbone: Backbone, items: ConceptItems) -> torch.Tensor:
        """What the family's VAE encodes for ``items`` (pixels, log-mels)."""
        raise NotImplementedError

    def condition(self, text_encoder: Any, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """The UNet's conditioning for tokenized prompts, with gradients through the text encoder."""
        raise NotImplementedError

    def predict(self, unet: Any, noisy: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """The UNet's prediction (ε or v) for noisy latents under ``condition``."""
        raise NotImplementedError

    def sample_latents(self, pipeline: Any, prompts: list[str], generators: list[torch.Generator], steps: int,
                       guidance: float) -> torch.Tensor:
        """The pipeline's own final latents for ``prompts`` (UNet space, before the VAE decodes them)."""
        raise NotImplementedError

    def judge_samples(self, pipeline: Any, prompts: list[str], generators: list[torch.Generator], steps: int,
                      guidance: float) -> list[Any]:
        """Decoded samples for ``prompts`` in the form the medium's judge embeds (images, (clip, rate))."""
        raise NotImplementedError

    def judge_items(self, pipeline: Any, items: ConceptItems, *, mirror: bool) -> list[Any]:
        """The real items as the judge embeds them, in training's order (mirror images after the items)."""
        raise NotImplementedError


class StableDiffusionFamily(Family):
    """SD 1.x/2.x: the text encoder's hidden states reach the UNet through cross-attention."""

    medium = "image"

    def vae_input(self, backbone: Backbone, items: ConceptItems) -> torch.Tensor:
        size = backbone.unet.config.sample_size * backbone.pipeline.vae_scale_factor
        return torch.from_numpy(items.load_images(size))

    def condition(self, text_encoder: Any, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return text_encoder(tokens["input_ids"])[0]  # SD's encode_prompt without clip_skip: the last hidden state

    def predict(self, unet: Any, noisy: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return unet(noisy, timesteps, encoder_hidden_states=condition).sample

    def sample_latents(self, pipeline: Any, prompts: list[str], generators: list[torch.Generator], steps: int,
                       guidance: float) -> torch.Tensor:
        return pipeline(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=generators,
                        output_type="latent").images

    def judge_samples(self, pipeline: Any, prompts: list[str], generators: list[torch.Generator], steps: int,
                      guidance: float) -> list[Any]:
        return list(pipeline(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=generators,
                             output_type="np").images)

    def judge_items(self, pipeline: Any, items: ConceptItems, *, mirror: bool) -> list[Any]:
        from PIL import Image, ImageOps

        images = []
        for item in items.items:
            with Image.open(item.path) as image:
                images.append(image.convert("RGB"))
        return images + ([ImageOps.mirror(image) for image in images] if mirror else [])


class AudioLDMFamily(Family):
    """AudioLDM: CLAP's normalised ``text_embeds`` reach the UNet as a class embedding."""

    medium = "audio"
    attention_mask = True

    def vae_input(self, backbone: Backbone, items: ConceptItems) -> torch.Tensor:
        """(N, 1, frames, mel bins) log-mels of the clips at the model's default length."""
        from pairsynth.modalities.audioldm_mel import HOP, SAMPLE_RATE, SILENCE, log_mel

        vocoder = backbone.pipeline.vocoder.config
        if int(vocoder.sampling_rate) != SAMPLE_RATE or int(np.prod(vocoder.upsample_rates)) != HOP:
            raise ConceptError(f"{backbone.model_id}: audio concepts need AudioLDM's 16 kHz, 160-hop mel front end")
        frames = backbone.unet.config.sample_size * backbone.pipeline.vae_scale_factor
        length = frames * HOP
        clips = [np.pad(c, (0, max(0, length - len(c))))[:length] for c in items.load_audio(SAMPLE_RATE)]
        mels = log_mel(torch.from_numpy(np.stack(clips).astype(np.float32)), n_mels=int(vocoder.model_in_dim))
        mels = F.pad(mels, (0, 0, 0, max(0, frames - mels.shape[1])), value=SILENCE)[:, :frames]
        return mels[:, None]

    def condition(self, text_encoder: Any, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        embeds = text_encoder(tokens["input_ids"], attention_mask=tokens["attention_mask"]).text_embeds
        return F.normalize(embeds, dim=-1)  # AudioLDM's _encode_prompt normalises text_embeds

    def predict(self, unet: Any, noisy: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return unet(noisy, timesteps, encoder_hidden_states=None, class_labels=condition).sample

    def sample_latents(self, pipeline: Any, prompts: list[str], generators: list[torch.Generator], steps: int,
                       guidance: float) -> torch.Tensor:
        """AudioLDM has no latent output; its step callback sees the latents after every step."""
        kept: dict[str, torch.Tensor] = {}
        pipeline(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=generators,
                 callback=lambda step, timestep, latents: kept.update(latents=latents.clone()), callback_steps=1)
        return kept["latents"]

    def judge_samples(self, pipeline: Any, prompts: list[str], generators: list[torch.Generator], steps: int,
                      guidance: float) -> list[Any]:
        rate = int(pipeline.vocoder.config.sampling_rate)
        audios = pipeline(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=generators).audios
        return [(np.asarray(audio, dtype=np.float32), rate) for audio in audios]

    def judge_items(self, pipeline: Any, items: ConceptItems, *, mirror: bool) -> list[Any]:
        rate = int(pipeline.vocoder.config.sampling_rate)
        return [(clip, rate) for clip in items.load_audio(rate)]


SUPPORTED: dict[str, Family] = {"StableDiffusionPipeline": StableDiffusionFamily(), "AudioLDMPipeline": AudioLDMFamily()}
"""Pipeline class name → its family: the pipelines concepts are learned for."""


@dataclass
class Backbone:
    """A loaded pipeline seen as the parts concept learning trains against.

    Attributes:
        pipeline: the diffusers pipeline (its components are trained in place).
        family: its pipeline family (what it generates, how it is conditioned).
        model_id: the reference it was loaded from (recorded in the concept's card).
    """

    pipeline: Any
    family: Family
    model_id: str

    @property
    def medium(self) -> str:
        """``image`` or ``audio``: what its items must be."""
        return self.family.medium

    @property
    def tokenizer(self) -> Any:
        return self.pipeline.tokenizer

    @property
    def text_encoder(self) -> Any:
        return self.pipeline.text_encoder

    @property
    def unet(self) -> Any:
        return self.pipeline.unet

    def noise_scheduler(self) -> Any:
        """The training-time DDPM scheduler built from the pipeline's own β schedule."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.pipeline.scheduler.config)

    @torch.no_grad()
    def item_latents(self, items: ConceptItems, *, mirror: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and std of every item's VAE latent (computed once: the VAE is frozen).

        With ``mirror``, the items mirrored left ↔ right follow, in the same order (images only).
        """
        if items.medium != self.medium:
            raise ConceptError(f"{items.folder}: holds {items.medium} items, but {self.model_id} is a "
                               f"text→{self.medium} model")
        vae = self.pipeline.vae
        pixels = self.family.vae_input(self, items)
        if mirror:
            pixels = torch.cat([pixels, pixels.flip(-1)])
        posterior = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
        return posterior.mean.float(), posterior.std.float()

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids (and masks) padded as the pipeline's own ``encode_prompt`` pads them."""
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        out = {"input_ids": tokens.input_ids.to(self.text_encoder.device)}
        if self.family.attention_mask:
            out["attention_mask"] = tokens.attention_mask.to(self.text_encoder.device)
        return out

    def condition(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """The UNet's conditioning for tokenized prompts, with gradients through the text encoder."""
        return self.family.condition(self.text_encoder, tokens)

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.family.predict(self.unet, noisy, timesteps, condition)

    @torch.no_grad()
    def prior_latents(self, prompts: list[str], *, seed: int, steps: int, guidance: float,
                      batch_size: int = 16) -> torch.Tensor:
        """What the unchanged model makes of ``prompts``, as VAE latents (DreamBooth's class images).

        Generated before the token or LoRA is added, one seeded sample per prompt.
        """
        scaling = self.pipeline.vae.config.scaling_factor
        seeds = [seed * 1_000_003 + i for i in range(len(prompts))]
        return torch.cat([self.family.sample_latents(self.pipeline, chunk, generators, steps, guidance).float() / scaling
                          for chunk, generators in _batches(prompts, seeds, batch_size)])

    @torch.no_grad()
    def judge_samples(self, prompts: list[str], seeds: list[int], *, steps: int, guidance: float,
                      batch_size: int = 16) -> list[Any]:
        """What the model makes of ``prompts`` now, one sample per seed, decoded as the medium's judge
        embeds them (the validation samples of ``select="samples"``)."""
        return [sample for chunk, generators in _batches(prompts, seeds, batch_size)
                for sample in self.family.judge_samples(self.pipeline, chunk, generators, steps, guidance)]


def _batches(prompts: list[str], seeds: list[int], size: int) -> Iterator[tuple[list[str], list[torch.Generator]]]:
    """``(prompts, generators)`` batches of ``size``, one generator seeded per prompt."""
    for start in range(0, len(prompts), size):
        yield prompts[start : start + size], [torch.Generator().manual_seed(s) for s in seeds[start : start + size]]


def load_backbone(ref: str, *, device: str = "cpu") -> Backbone:
    """Load a text→image (SD 1.x/2.x) or text→audio (AudioLDM) pipeline in fp32 for training.

    Args:
        ref: ``toy-shapes``, ``toy-sounds``, ``local:PATH``, a folder or a hub id.
        device: where to train (``cpu``, ``cuda`` …; ``auto`` picks CUDA when present).
    """
    from pairsynth.devices import resolve_device
    from pairsynth.modalities.text_to_audio import _quiet_deprecation
    from pairsynth.refs import parse_ref
    from pairsynth.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    with _quiet_deprecation():
        from diffusers import DiffusionPipeline

        pipeline = DiffusionPipeline.from_pretrained(parse_ref(ref).location, dtype=torch.float32)
    name = type(pipeline).__name__
    if name not in SUPPORTED:
        raise ConceptError(f"{ref!r} loads a {name}; concepts are learned for "
                           f"{' and '.join(SUPPORTED)} (SD 1.x/2.x and AudioLDM families)")
    pipeline.to(resolve_device(device))
    pipeline.set_progress_bar_config(disable=True)
    for part in ("vae", "unet", "text_encoder"):
        getattr(pipeline, part).requires_grad_(False)
    return Backbone(pipeline, SUPPORTED[name], ref)
