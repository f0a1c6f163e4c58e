"""Controls on a sample's noise path: interpolating between two samples, and stopping the denoising early.

* **Interpolation**: two samples (caption, seed) differ in their initial noise and their prompt. A
  point between them gets the spherical interpolation of the two noises (Gaussian noise lives near a
  sphere; a straight line would pass through low-norm, blurry latents) and/or the linear
  interpolation of the two prompts' embeddings. Each noise is drawn exactly as the pipeline draws
  it from a per-sample generator (``randn_tensor`` with a list of generators draws one ``(1, …)``
  tensor per generator), so the endpoints are the plain samples.
* **Early stop** (``stop_at``): after that fraction of the steps, the latent is replaced by the
  scheduler's prediction of the clean latent x0, and the remaining steps are skipped (Stable
  Diffusion, through diffusers' ``callback_on_step_end`` and the pipeline's interrupt flag) or made
  no-ops without a denoiser call (AudioLDM, whose pipeline has no ``callback_on_step_end``). It is
  early rejection's preview (:mod:`pairsynth.modalities.screening`) with nothing kept to resume.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

from pairsynth.modalities.screening import preview

BlendWhat = Literal["noise", "prompt", "both"]


@dataclass(frozen=True, kw_only=True)
class Blend:
    """One point on the path between sample A (``prompt_a``, ``seed_a``) and sample B.

    Attributes:
        weight: 0 is A, 1 is B.
        what: ``noise`` slerps the initial noise (the prompt is the nearer endpoint's), ``prompt``
            mixes the prompt embeddings (the noise is A's), ``both`` does both.
    """

    prompt_a: str
    prompt_b: str
    seed_a: int
    seed_b: int
    weight: float
    what: BlendWhat = "noise"

    @property
    def noise_weight(self) -> float:
        return self.weight if self.what in ("noise", "both") else 0.0

    @property
    def prompt_weight(self) -> float:
        if self.what == "noise":
            return 0.0 if self.weight < 0.5 else 1.0
        return self.weight

    @property
    def generator_seed(self) -> int:
        """The seed of the sampler's own noise (ancestral samplers): the nearer noise endpoint's."""
        return self.seed_b if self.noise_weight >= 0.5 else self.seed_a


def slerp(a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    """Spherical interpolation of two noise tensors (linear when they are almost parallel)."""
    if weight == 0.0:
        return a.clone()
    if weight == 1.0:
        return b.clone()
    flat_a, flat_b = a.flatten().double(), b.flatten().double()
    cosine = torch.dot(flat_a, flat_b) / (flat_a.norm() * flat_b.norm())
    angle = math.acos(float(cosine.clamp(-1.0, 1.0)))
    if angle < 1e-4:
        return torch.lerp(a, b, weight)
    mixed = (math.sin((1 - weight) * angle) * a.double() + math.sin(weight * angle) * b.double()) / math.sin(angle)
    return mixed.to(a.dtype)


def initial_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """One sample's initial noise ``(1, …)``, as the pipeline draws it from ``Generator().manual_seed(seed)``."""
    return torch.randn((1, *shape), generator=torch.Generator(device="cpu").manual_seed(int(seed)))


def latent_shape(pipeline: Any, *, height: int | None = None, width: int | None = None,
                 duration_s: float | None = None) -> tuple[int, int, int]:
    """The (channels, rows, columns) of one sample's initial latent, as the pipeline's ``prepare_latents`` makes it."""
    unet, scale = pipeline.unet, pipeline.vae_scale_factor
    if hasattr(pipeline, "vocoder"):  # AudioLDM: rows are mel frames, columns mel bins
        vocoder = pipeline.vocoder.config
        upsample = float(torch.tensor(vocoder.upsample_rates).prod()) / vocoder.sampling_rate
        seconds = duration_s if duration_s is not None else unet.config.sample_size * scale * upsample
        frames = int(seconds / upsample)
        frames = math.ceil(frames / scale) * scale
        return (unet.config.in_channels, frames // scale, int(vocoder.model_in_dim) // scale)
    side = unet.config.sample_size * scale
    return (unet.config.in_channels, (height or side) // scale, (width or side) // scale)


def mix_embeddings(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor, *, renormalise: bool = False) -> torch.Tensor:
    """Per-row linear interpolation of prompt embeddings; ``renormalise`` keeps unit rows unit (AudioLDM's CLAP)."""
    shape = (-1,) + (1,) * (a.dim() - 1)
    weights = weights.to(a).reshape(shape)
    mixed = torch.lerp(a, b, weights)
    if not renormalise:
        return mixed
    inner = (weights > 0) & (weights < 1)  # endpoints stay bit-identical to the plain prompts' embeddings
    return torch.where(inner, torch.nn.functional.normalize(mixed, dim=-1), mixed)


@contextlib.contextmanager
def early_stop(pipeline: Any, stop_at: float | None, steps: int) -> Iterator[dict[str, Any]]:
    """Stop after ``round(stop_at · steps)`` steps (at least one) and leave the predicted x0 as the latent.

    Yields the extra keyword arguments for the pipeline call (``callback_on_step_end`` where the
    pipeline has it). This is early rejection's preview (:func:`pairsynth.modalities.screening.preview`)
    with its paused state unused: the scheduler's ``step`` is wrapped for the call's duration, and
    the remaining steps cost no denoiser call.
    """
    if stop_at is None:
        yield {}
        return
    with preview(pipeline, last=max(1, round(stop_at * steps)) - 1) as (controls, _):
        yield controls
