"""Checks that catch unusable generated audio before it is scored or written.

The audio counterpart of :mod:`pairsynth.alignment.image_checks`. Levels are RMS in dBFS, ``20·log10(RMS)``
with full scale at 1.0: a constant ±1.0 reads 0 dBFS, a full-scale sine -3 dBFS.
"""

from __future__ import annotations

import numpy as np

SILENCE_DBFS = -60.0
"""RMS below this is silence. Real sound effects and speech sit at -35 to -10 dBFS; a vocoder fed an
empty spectrogram leaves noise near -70 dBFS or lower; 16-bit quantization noise is at -96 dBFS.
-60 dBFS is inaudible at any normal listening level yet far above what digital silence produces."""

CLIP_LEVEL = 0.999
"""A sample at or beyond this magnitude is at full scale (after 16-bit encoding, within 33 LSB)."""

CLIPPED_FRACTION = 0.01
"""More than 1% of samples at full scale is clipping, not the odd loud peak. Healthy material touches
full scale in a handful of samples at most; a saturated (``tanh``-squashed or hard-limited) vocoder
output sits there for long stretches."""

MAX_CHANNELS = 8
"""More "channels" than this means a ``(samples, channels)`` array, not pairsynth's layout."""


def audio_problem(waveform: np.ndarray, sample_rate: int) -> tuple[str, str] | None:
    """Return ``(reason, detail)`` when a clip must never be emitted, else ``None``.

    Reasons, in the order checked: ``bad_shape``, ``nan_output``, ``silent_audio``,
    ``dc_only_audio``, ``clipped_audio``. Levels are measured over all channels together: a stereo
    clip panned hard to one side (one silent channel) is a valid "... on the left".
    """
    waveform = np.asarray(waveform)
    shape_problem = _shape_problem(waveform, sample_rate)
    if shape_problem:
        return "bad_shape", shape_problem
    finite = np.isfinite(waveform)
    if not finite.all():
        return "nan_output", f"{int((~finite).sum())} of {waveform.size} samples are NaN or infinite"
    samples = waveform.astype(np.float64)
    total = _dbfs(np.sqrt(np.mean(samples**2)))
    if total < SILENCE_DBFS:
        return "silent_audio", f"RMS {total:.1f} dBFS is below the {SILENCE_DBFS:.0f} dBFS silence floor"
    # Remove each channel's own mean: what is left is everything but DC.
    ac = _dbfs(np.sqrt(np.mean((samples - samples.mean(axis=-1, keepdims=True)) ** 2)))
    if ac < SILENCE_DBFS:
        return "dc_only_audio", (f"a constant offset (mean {float(samples.mean()):+.3f}) with AC RMS {ac:.1f} dBFS, "
                                 f"below the {SILENCE_DBFS:.0f} dBFS floor")
    clipped = float(np.mean(np.abs(samples) >= CLIP_LEVEL))
    if clipped > CLIPPED_FRACTION:
        return "clipped_audio", (f"{100 * clipped:.1f}% of samples at full scale (|x| >= {CLIP_LEVEL}); "
                                 f"more than {100 * CLIPPED_FRACTION:.0f}% is clipping")
    return None


def _shape_problem(waveform: np.ndarray, sample_rate: int) -> str | None:
    if waveform.ndim not in (1, 2):
        return f"expected a (samples,) or (channels, samples) waveform, got shape {waveform.shape}"
    if waveform.ndim == 2 and not 1 <= waveform.shape[0] <= MAX_CHANNELS:
        return f"expected (channels, samples) with 1-{MAX_CHANNELS} channels, got shape {waveform.shape}"
    if waveform.shape[-1] == 0:
        return f"waveform has no samples (shape {waveform.shape})"
    if not np.issubdtype(waveform.dtype, np.floating):
        return f"expected float samples in [-1, 1], got dtype {waveform.dtype}"
    if not sample_rate or sample_rate <= 0:
        return f"sample rate must be positive, got {sample_rate!r}"
    return None


def _dbfs(rms: float) -> float:
    """RMS as dBFS; exact zero maps to ``-inf``."""
    return 20.0 * float(np.log10(rms)) if rms > 0 else float("-inf")
