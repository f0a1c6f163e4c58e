"""Softening augmentations, so judges trained on crisp renders still grade generated images fairly.

Generated images come out of a tiny VAE decoder: slightly blurred, with rounded corners and mild
noise. Judges (attribute CNNs, the toy CLIP) see such softening during training, on renders only —
never on generator output.
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
