"""What synchronized augmentation works on and what it reports.

A :class:`Sample` holds every modality of one pair or triplet, so a transform sees them together and
applies one draw of parameters to all of them. Samples are immutable records: a transform returns a
new one (arrays are copied or freshly computed, never written in place), which keeps the original
available for the manifest and makes a replay from recorded params give the same result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from pairsynth.augment.caption_rules import find_words
from pairsynth.media import modality_of

Status = Literal["ok", "flagged", "dropped"]


@dataclass(frozen=True, kw_only=True)
class Applied:
    """One transform's entry in a sample's history and in the manifest.

    Attributes:
        name: the transform's registry name (``hflip``, ``gain`` …).
        params: the drawn parameters, JSON-safe; empty when the transform did not run.
        applied: whether the transform changed the sample (``False`` when its ``p`` draw failed, it
            did not apply to these modalities, or its ``on_invalid`` policy skipped it).
        caption_swaps: ``(found, replacement)`` per caption word the transform rewrote.
        note: why it did not run, or what it could not check, for people reading the manifest.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    applied: bool = True
    caption_swaps: tuple[tuple[str, str], ...] = ()
    note: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "applied": self.applied, "params": dict(self.params),
                "caption_swaps": [list(pair) for pair in self.caption_swaps], "note": self.note}


@dataclass(frozen=True, eq=False, kw_only=True)
class Sample:
    """One pair or triplet: a caption plus an image, an audio clip or both, and optional boxes.

    Attributes:
        caption: the text that must stay true of the media.
        image: ``(H, W, 3)`` float32 in ``[0, 1]`` or uint8; transforms keep the dtype.
        audio: float32 ``(samples,)`` (mono) or ``(channels, samples)``; channel 0 is the left one.
        sample_rate: the audio's rate in Hz; required with audio.
        boxes: ``(N, 4)`` float boxes ``x0, y0, x1, y1`` in pixels of ``image``, edges inclusive of
            the pixel grid (a box over columns 2..9 is ``x0=2, x1=10``), so a mirror is ``W - x``.
        box_labels: one label per box. A box whose label the caption names (whole word, plural
            ``s``/``es`` allowed) is a *named object*: a crop that cuts it away drops or flags the pair.
            ``None``: every box counts as named.
        flags: problems a transform found but was told to keep (``on_cut="flag"`` …).
        history: every transform applied so far, across successive augmentations.
    """

    caption: str
    image: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    boxes: np.ndarray | None = None
    box_labels: tuple[str, ...] | None = None
    flags: tuple[str, ...] = ()
    history: tuple[Applied, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.caption, str):
            raise ValueError(f"Sample.caption must be a str, got {type(self.caption).__name__}")
        if self.image is None and self.audio is None:
            raise ValueError("Sample needs an image, an audio clip or both")
        if self.image is not None:
            _check_image(self.image)
        if self.audio is not None:
            _check_audio(self.audio, self.sample_rate)
        if self.boxes is not None:
            boxes = np.asarray(self.boxes, dtype=np.float64)
            boxes = boxes.reshape(0, 4) if boxes.size == 0 else boxes
            if boxes.ndim != 2 or boxes.shape[1] != 4:
                raise ValueError(f"Sample.boxes must be (N, 4) x0,y0,x1,y1; got shape {boxes.shape}")
            if np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
                raise ValueError(f"Sample.boxes must have x1 >= x0 and y1 >= y0; got {boxes.tolist()}")
            object.__setattr__(self, "boxes", boxes)
            if self.image is None:
                raise ValueError("Sample.boxes are in image pixels; a sample with boxes needs an image")
        if self.box_labels is not None:
            object.__setattr__(self, "box_labels", tuple(self.box_labels))
            if self.boxes is None or len(self.box_labels) != len(self.boxes):
                count = 0 if self.boxes is None else len(self.boxes)
                raise ValueError(f"Sample.box_labels has {len(self.box_labels)} labels for {count} boxes")
        object.__setattr__(self, "flags", tuple(self.flags))
        object.__setattr__(self, "history", tuple(self.history))

    @property
    def modality(self) -> str:
        """``image``, ``audio`` or ``triplet`` (image + audio + caption), as in the manifest."""
        return modality_of(self.image, self.audio)

    @property
    def stereo(self) -> bool:
        """True for two-channel audio: the only layout whose channels have a known left and right."""
        return self.audio is not None and self.audio.ndim == 2 and self.audio.shape[0] == 2

    def replace(self, **changes: Any) -> Sample:
        """A copy with some fields changed (validated like a new sample)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Drop:
    """A transform's verdict that the pair must not be written (its caption would be untrue).

    Attributes:
        reason: a short machine-readable code: ``object_cut``, ``side_changed``, ``audio_cut`` or
            ``caption_invalidated``.
        detail: the numbers behind it, for people.
    """

    reason: str
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class AugmentRecord:
    """What one augmentation call did, for the manifest.

    Attributes:
        seed: the seed the call drew every parameter from; with the transforms it reproduces the
            output exactly.
        caption_before: the caption going in.
        caption_after: the caption coming out (equal to ``caption_before`` when dropped).
        steps: one :class:`Applied` per transform, in order, including those that did not run.
        modality: the pair's modality (``image``, ``audio`` or ``triplet``), kept even when dropped.
        status: ``ok``, ``flagged`` (kept, with flags) or ``dropped``.
        reason: for a dropped pair, the :class:`Drop` reason; otherwise ``None``.
        detail: the drop's detail, naming the transform that dropped it.
        flags: the flags raised by this call.
    """

    seed: int
    caption_before: str
    caption_after: str
    steps: tuple[Applied, ...]
    modality: str = "image"
    status: Status = "ok"
    reason: str | None = None
    detail: str | None = None
    flags: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-safe dict, stored under ``augment`` in a manifest row."""
        return {"seed": self.seed, "caption_before": self.caption_before, "caption_after": self.caption_after,
                "modality": self.modality, "status": self.status, "reason": self.reason, "detail": self.detail,
                "flags": list(self.flags), "steps": [step.as_dict() for step in self.steps]}


@dataclass(frozen=True, eq=False)
class Augmented:
    """The result of one augmentation call: the new sample (``None`` when dropped) and its record."""

    sample: Sample | None
    record: AugmentRecord

    @property
    def dropped(self) -> bool:
        return self.sample is None


def as_float_image(image: np.ndarray) -> np.ndarray:
    """An image as float32 in ``[0, 1]`` (uint8 is divided by 255)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32, copy=False)


def like_input(result: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Cast a float ``[0, 1]`` result back to the dtype of the image it came from."""
    result = np.clip(result, 0.0, 1.0)
    if original.dtype == np.uint8:
        return (result * 255.0).round().astype(np.uint8)
    return result.astype(np.float32)


def named_boxes(sample: Sample) -> list[bool]:
    """Per box, whether the caption names it (see :attr:`Sample.box_labels`)."""
    if sample.boxes is None:
        return []
    if sample.box_labels is None:
        return [True] * len(sample.boxes)
    return [bool(find_words(sample.caption, _plurals(label))) for label in sample.box_labels]


def _plurals(label: str) -> Sequence[str]:
    return (label, label + "s", label + "es")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"Sample.image must be an (H, W, 3) array; got {getattr(image, 'shape', type(image))}")
    if image.dtype not in (np.uint8, np.float32):
        raise ValueError(f"Sample.image must be uint8 or float32 in [0, 1]; got {image.dtype}")


def _check_audio(audio: np.ndarray, sample_rate: int | None) -> None:
    if not isinstance(audio, np.ndarray) or audio.ndim not in (1, 2) or audio.shape[-1] == 0:
        raise ValueError(f"Sample.audio must be (samples,) or (channels, samples); got "
                         f"{getattr(audio, 'shape', type(audio))}")
    if audio.dtype != np.float32:
        raise ValueError(f"Sample.audio must be float32; got {audio.dtype}")
    if sample_rate is None or int(sample_rate) <= 0:
        raise ValueError(f"Sample.sample_rate must be a positive int with audio; got {sample_rate!r}")
