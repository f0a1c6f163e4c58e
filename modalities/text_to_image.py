"""Text→image adapter over diffusers pipelines: SD 1.x/2.x, SD-Turbo, SDXL, SD3 and FLUX.

``AutoPipelineForText2Image`` picks the pipeline class from the folder's ``model_index.json``. Each
distinct prompt of a batch goes through the text encoders once (:func:`prompt_arguments`): SD, SDXL
and SD3 through their ``encode_prompt`` with the negative prompt, FLUX through its T5 + pooled CLIP
``encode_prompt`` (it is guidance-distilled and takes no negative prompt). Every family pads its
prompts to fixed lengths, so a sample never depends on the rest of its batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pairsynth.modalities.noise_paths import Blend, early_stop, initial_noise, latent_shape, mix_embeddings, slerp
from pairsynth.modalities.pipelines import (PipelineAdapter, load_pipeline, prompt_arguments, provenance,
                                            seeded_generators, select_rows)
from pairsynth.modalities.screening import ScreenRequest, screened
from pairsynth.torch_compat import ensure_torchvision_importable

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ImageSampling:
    """How the pipeline samples; everything here goes into each sample's provenance."""

    steps: int = 20
    guidance_scale: float = 5.0
    negative_prompt: str | None = None
    scheduler: str = "dpm++"
    height: int | None = None
    width: int | None = None
    stop_at: float | None = None  # stop after this fraction of the steps, decoding the predicted x0


@dataclass(frozen=True)
class GeneratedImage:
    """One sample: float pixels ``(H, W, 3)`` in ``[0, 1]``, NaN kept for the quality check."""

    pixels: np.ndarray
    flagged_nsfw: bool = False

    @classmethod
    def from_output(cls, output: Any) -> list[GeneratedImage]:
        """A diffusers image pipeline's ``output_type="np"`` output, one sample per image, with the
        safety checker's flags where it has one."""
        flags = getattr(output, "nsfw_content_detected", None) or [False] * len(output.images)
        return [cls(np.asarray(image, dtype=np.float32), bool(flag)) for image, flag in zip(output.images, flags)]


class TextToImage(PipelineAdapter):
    """Generates images from prompts, one ``torch.Generator`` per sample.

    Each sample's initial noise (and any ancestral-sampler noise) comes from its own generator, so a
    sample is the same whatever batch it is generated in.
    """

    def __init__(self, pipeline: Any, *, model_id: str, revision: str | None = None,
                 sampling: ImageSampling = ImageSampling()) -> None:
        super().__init__(pipeline, model_id=model_id, revision=revision, sampling=sampling)

    @classmethod
    def from_pretrained(cls, ref: str, *, revision: str | None = None, sampling: ImageSampling = ImageSampling(),
                        device: str = "auto", dtype: str | None = None, concepts: Sequence[Any] = ()) -> TextToImage:
        """Load a text→image pipeline.

        Args:
            ref: ``toy-shapes``, ``local:PATH``, a folder, or a hub id such as ``stabilityai/sd-turbo``.
            revision: a hub revision (branch, tag or commit), recorded in the provenance.
            sampling: steps, guidance, scheduler, negative prompt and size.
            device: ``auto`` picks CUDA when present, else the CPU.
            dtype: ``fp32``/``fp16``/``bf16``; by default half precision on CUDA, fp32 on the CPU.
            concepts: concept folders (``pairsynth learn-concept``) to load; recorded in the provenance.
        """
        ensure_torchvision_importable()
        from diffusers import AutoPipelineForText2Image

        pipeline = load_pipeline(AutoPipelineForText2Image, ref, revision=revision, device=device, dtype=dtype)
        adapter = cls(pipeline, model_id=ref, revision=revision, sampling=sampling)
        adapter.load_concepts(concepts)
        return adapter

    @property
    def provenance(self) -> dict[str, Any]:
        """What made the samples: recorded with every candidate and hashed into its key."""
        return provenance(self.pipeline, self.model_id, self.revision, self.sampling, **self.concept_provenance)

    @torch.inference_mode()  # lighter than the pipeline's own no_grad: no version counters or view tracking
    def generate(self, prompts: Sequence[str], seeds: Sequence[int], *,
                 screen: ScreenRequest | None = None) -> list[GeneratedImage | None]:
        """Generate one image per prompt, the i-th from ``seeds[i]``, in a single pipeline call.

        With ``screen``, every image is previewed part-way and only those the screen keeps are
        finished (:mod:`pairsynth.modalities.screening`); the others come back as ``None``.
        """
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        return self.by_concept(prompts, self._generate, prompts=list(prompts), seeds=list(seeds), screen=screen)

    def _generate(self, prompts: list[str], seeds: list[int], screen: ScreenRequest | None) -> list[GeneratedImage | None]:
        arguments = prompt_arguments(self.pipeline, prompts, self.sampling.negative_prompt, self.sampling.guidance_scale)
        generators = seeded_generators(seeds)
        if screen is None:
            return self._call(arguments, generators)
        return screened(self.pipeline, len(prompts), screen, lambda rows, controls: self._call(
            select_rows(arguments, rows), [generators[row] for row in rows], **controls))

    @torch.inference_mode()
    def generate_blended(self, blends: Sequence[Blend]) -> list[GeneratedImage]:
        """One image per point between two samples: slerped initial noise and/or mixed prompt embeddings.

        A point of weight 0 (or 1, with ``what="both"``) is exactly the plain sample of that endpoint.
        """
        if not blends:
            return []
        return self.by_concept([f"{b.prompt_a} {b.prompt_b}" for b in blends], self._generate_blended, blends=list(blends))

    def _generate_blended(self, blends: list[Blend]) -> list[GeneratedImage]:
        s = self.sampling
        shape = latent_shape(self.pipeline, height=s.height, width=s.width)
        noise = torch.cat([slerp(initial_noise(shape, b.seed_a), initial_noise(shape, b.seed_b), b.noise_weight)
                           for b in blends])
        ends = [prompt_arguments(self.pipeline, [getattr(b, f"prompt_{end}") for b in blends], s.negative_prompt,
                                 s.guidance_scale) for end in ("a", "b")]
        if "prompt_embeds" not in ends[0]:
            raise ValueError(f"{type(self.pipeline).__name__} takes no prompt embeddings; interpolation needs them")
        weights = torch.tensor([b.prompt_weight for b in blends])
        arguments = {name: mix_embeddings(ends[0][name], ends[1][name], weights) for name in ends[0]}
        return self._call(arguments, seeded_generators([b.generator_seed for b in blends]),
                          latents=noise.to(self.device, self.pipeline.unet.dtype))

    def _call(self, arguments: dict[str, Any], generators: list[torch.Generator], **extra: Any) -> list[GeneratedImage]:
        s = self.sampling
        with early_stop(self.pipeline, s.stop_at, s.steps) as stopping:
            output = self.pipeline(
                **arguments,
                num_inference_steps=s.steps,
                guidance_scale=s.guidance_scale,
                height=s.height,
                width=s.width,
                generator=generators,
                output_type="np",
                **stopping,
                **extra,
            )
        return GeneratedImage.from_output(output)
