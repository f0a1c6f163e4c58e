"""Checks that catch unusable model outputs before they are scored or written."""

from __future__ import annotations

import numpy as np

CONSTANT_STD = 1.0 / 255.0
"""An image whose pixels vary by less than one 8-bit step is blank (all one colour)."""


def image_problem(pixels: np.ndarray) -> tuple[str, str] | None:
    """Return ``(reason, detail)`` when an image must never be emitted, else ``None``.

    Diffusion models fail quietly: NaNs from fp16 overflow turn into black images after conversion,
    and safety checkers replace flagged images with black. Both are caught here on the float output.
    """
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3, 4) or min(pixels.shape[:2]) == 0:
        return "bad_shape", f"expected an (H, W, C) image, got shape {pixels.shape}"
    finite = np.isfinite(pixels)
    if not finite.all():
        return "nan_output", f"{int((~finite).sum())} of {pixels.size} values are NaN or infinite"
    spread = float(pixels.std())
    if spread < CONSTANT_STD:
        return "blank_image", f"constant image (pixel std {spread:.2e}, mean {float(pixels.mean()):.3f})"
    return None
