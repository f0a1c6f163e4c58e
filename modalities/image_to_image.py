"""Image→image variation over diffusers img2img pipelines (SDEdit: noise to ``strength``, denoise)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from pairsynth.modalities.pipelines import (PipelineAdapter, check_strength, load_pipeline, prompt_arguments, provenance,
                                  seeded_generators)
from pairsynth.modalities.text_to_image import GeneratedImage, TextToImage
from pairsynth.media import to_pil
from pairsynth.torch_compat import ensure_torchvision_importable


@dataclass(frozen=True, kw_only=True)
class VariationSampling:
    """How a variation is made; everything here goes into each sample's provenance.

    Attributes:
        strength: how far towards noise the source is pushed before denoising: 0 returns the source,
            1 ignores it. SDEdit's fidelity/realism trade-off in one number.
        size: the side the source is resized to before encoding; ``None`` uses the model's native
            size (a 32-pixel toy model must not be fed 512-pixel photos).
    """

    strength: float = 0.35
    steps: int = 20
    guidance_scale: float = 5.0
    negative_prompt: str | None = None
    scheduler: str = "dpm++"
    size: int | None = None

    def __post_init__(self) -> None:
        check_strength(self.strength)


class ImageToImage(PipelineAdapter):
    """Makes variations of images guided by captions, one ``torch.Generator`` per sample."""

    def __init__(self, pipeline: Any, *, model_id: str, revision: str | None = None,
                 sampling: VariationSampling = VariationSampling()) -> None:
        super().__init__(pipeline, model_id=model_id, revision=revision, sampling=sampling)

    @classmethod
    def from_pretrained(cls, ref: str, *, revision: str | None = None,
                        sampling: VariationSampling = VariationSampling(), device: str = "auto",
                        dtype: str | None = None, concepts: Sequence[Any] = ()) -> ImageToImage:
        """Load an img2img pipeline (any text→image SD-family model works: diffusers maps it)."""
        ensure_torchvision_importable()
        from diffusers import AutoPipelineForImage2Image

        pipeline = load_pipeline(AutoPipelineForImage2Image, ref, revision=revision, device=device, dtype=dtype)
        adapter = cls(pipeline, model_id=ref, revision=revision, sampling=sampling)
        adapter.load_concepts(concepts)
        return adapter

    @classmethod
    def from_text_to_image(cls, generator: TextToImage, sampling: VariationSampling = VariationSampling()) -> ImageToImage:
        """Share an already-loaded text→image pipeline's weights instead of loading them again."""
        ensure_torchvision_importable()
        from diffusers import AutoPipelineForImage2Image

        pipeline = AutoPipelineForImage2Image.from_pipe(generator.pipeline)
        adapter = cls(pipeline, model_id=generator.model_id, revision=generator.revision, sampling=sampling)
        adapter.concepts = list(generator.concepts)  # the shared text encoder already holds them
        return adapter

    @property
    def native_size(self) -> int:
        unet = self.pipeline.unet
        return int(unet.config.sample_size * self.pipeline.vae_scale_factor)

    @property
    def provenance(self) -> dict[str, Any]:
        """What made the samples: recorded with every candidate and hashed into its key."""
        return provenance(self.pipeline, self.model_id, self.revision, self.sampling,
                          size=self.sampling.size or self.native_size, **self.concept_provenance)

    @torch.inference_mode()  # lighter than the pipeline's own no_grad: no version counters or view tracking
    def generate(self, images: Sequence[np.ndarray | Image.Image], prompts: Sequence[str],
                 seeds: Sequence[int]) -> list[GeneratedImage]:
        """One variation per source image, the i-th guided by ``prompts[i]`` from ``seeds[i]``."""
        if not len(images) == len(prompts) == len(seeds):
            raise ValueError(f"{len(images)} images, {len(prompts)} prompts and {len(seeds)} seeds")
        if not images:
            return []
        return self.by_concept(prompts, self._generate, images=list(images), prompts=list(prompts), seeds=list(seeds))

    def _generate(self, images: list[np.ndarray | Image.Image], prompts: list[str], seeds: list[int]) -> list[GeneratedImage]:
        s = self.sampling
        side = s.size or self.native_size
        sources = [to_pil(image).resize((side, side), Image.Resampling.LANCZOS) for image in images]
        output = self.pipeline(
            **prompt_arguments(self.pipeline, prompts, s.negative_prompt, s.guidance_scale),
            image=sources,
            strength=s.strength,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance_scale,
            generator=seeded_generators(seeds),
            output_type="np",
        )
        return GeneratedImage.from_output(output)

