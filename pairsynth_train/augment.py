"""Augmentations, so judges trained on clean scenes still grade generated ones fairly.

Generated images come out of a tiny VAE decoder: slightly blurred, with rounded corners and mild
noise; generated sounds come out of a vocoder, slightly smeared and noisy. Judges (attribute CNNs,
the toy CLIP) see such softening during training, on rendered or synthesized scenes only — never on
generator output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def box_blur(images: torch.Tensor, passes: int = 1) -> torch.Tensor:
    for _ in range(passes):
        images = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return images


def down_up(images: torch.Tensor) -> torch.Tensor:
    """Halve the resolution and come back: the detail a 4×-down VAE tends to lose."""
    size = images.shape[-1]
    small = F.interpolate(images, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)


def soften(images: torch.Tensor, generator: torch.Generator, noise_std: float = 0.08) -> torch.Tensor:
    """Per image, one of: untouched, 3×3 blur, two 3×3 blurs, down-up; then noise up to ``noise_std``.

    Images are in [-1, 1], shape (B, 3, H, W); the choice per image comes from ``generator``.
    """
    variants = torch.stack([images, box_blur(images), box_blur(images, 2), down_up(images)])  # (4, B, ...)
    pick = torch.randint(0, len(variants), (images.shape[0],), generator=generator)
    softened = variants[pick, torch.arange(images.shape[0])]
    sigma = torch.rand(images.shape[0], 1, 1, 1, generator=generator) * noise_std
    return softened + sigma * torch.randn(images.shape, generator=generator)


def degrade(mels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random blur, broadband noise floor, gain and circular time shift of log-mels (B, frames, bins)."""
    b = mels.shape[0]
    blurred = F.avg_pool2d(F.pad(mels.unsqueeze(1), (1, 1, 1, 1), mode="replicate"), 3, stride=1).squeeze(1)
    pick = torch.rand(b, 1, 1, generator=generator) < 0.5
    mels = torch.where(pick, blurred, mels)
    floor = torch.exp(torch.rand(b, 1, 1, generator=generator) * 5.0 - 8.0)  # e^-8 .. e^-3 of added noise
    noise = floor * torch.rand(mels.shape, generator=generator)
    mels = torch.log(torch.exp(mels) + noise)
    mels = mels + (torch.rand(b, 1, 1, generator=generator) - 0.5)  # ±0.5 gain in log units
    shift = int(torch.randint(-8, 9, (1,), generator=generator))
    return torch.roll(mels, shift, dims=1)
