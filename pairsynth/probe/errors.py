"""The probe's one-line errors: each raised before any training starts, naming what to fix."""

from __future__ import annotations

from pairsynth.errors import PairsynthError


class ProbeError(PairsynthError):
    """The probe cannot run on the data or settings given."""


class UnlabeledDatasetError(ProbeError, ValueError):
    """A dataset (or one of its items) has no class label the probe can find."""


class MissingClassError(ProbeError, ValueError):
    """A class of the real data has no example in a synthetic dataset, so mixing could not replace it."""


class SplitError(ProbeError, ValueError):
    """The held-out real test split cannot hold one example of every class (or the shots do not fit)."""


class MixedMediaError(ProbeError, ValueError):
    """The datasets mix images and audio; a probe trains on one medium."""
