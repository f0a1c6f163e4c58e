"""What adapters, judges, readers and writers must agree on: how pixels round, what a pair's modality is."""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """8-bit pixels from float ``[0, 1]`` (rounded as diffusers' ``numpy_to_pil`` does); uint8 as is.

    NaN becomes 0: callers that must not emit NaN images check for them first.
    """
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array
    return (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).round().astype(np.uint8)


def to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image, uint8 pixels or float pixels in ``[0, 1]``."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(to_uint8(image)).convert("RGB")


def modality_of(image: object, audio: object) -> str:
    """``image``, ``audio`` or ``triplet`` (an image and a clip with one caption), as manifests name it."""
    if image is not None and audio is not None:
        return "triplet"
    return "image" if image is not None else "audio"
