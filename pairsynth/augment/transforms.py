"""The transform contract, and the image transforms: flips, crop/zoom and colour jitter.

Every transform splits randomness from work, as torchvision v2 and albumentations do:
:meth:`Transform.get_params` draws everything random once from a ``numpy.random.Generator``, and
:meth:`Transform.apply` is a pure function of the sample and those params. One draw therefore
reaches every modality of a pair (the image is mirrored *and* the stereo channels swapped *and*
the caption's ``left`` becomes ``right``), the params can be written to the manifest, and applying
recorded params again reproduces the output without the generator.

Audio transforms live in :mod:`pairsynth.augment.audio_transforms`; :mod:`pairsynth.augment.compose`
chains transforms, seeds them and keeps the registry that ``from_dict`` resolves names with.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image

from pairsynth.augment.caption_rules import (
    DESATURATION,
    HUE_CHANGE,
    LEFT_RIGHT,
    TOP_BOTTOM,
    CaptionEdit,
    CaptionRule,
    edit_caption,
    find_words,
)
from pairsynth.augment.sample import Drop, Sample, as_float_image, like_input, named_boxes

OnInvalid = Literal["skip", "drop", "flag"]
OnCut = Literal["drop", "flag"]
Params = dict[str, Any]

# Absolute side words: a crop that moves a named object across the middle makes them untrue.
# Relational words ("above", "left of") survive a crop and are not checked.
HORIZONTAL_SIDES: tuple[str, ...] = ("left", "right", "leftmost", "rightmost")
VERTICAL_SIDES: tuple[str, ...] = ("top", "bottom", "topmost", "bottommost", "upper", "lower")


class Transform(ABC):
    """A synchronized transform: one draw of params, applied to every modality and the caption.

    Subclasses set :attr:`name` and :attr:`builtin_rules`, and implement :meth:`get_params`,
    :meth:`apply_media` and :meth:`settings`.

    Args:
        p: probability that the transform runs on a sample.
        rules: extra caption rules (:class:`CaptionRule` or its dict form), after the built-in ones.
        default_rules: keep the built-in table (``False``: only ``rules``).
        on_invalid: what to do when a fired rule says a caption word becomes untrue: ``skip`` the
            transform for this sample, ``drop`` the pair, or apply it and ``flag`` the pair.
    """

    name: ClassVar[str]
    builtin_rules: ClassVar[tuple[CaptionRule, ...]] = ()

    def __init__(self, *, p: float = 1.0, rules: Sequence[CaptionRule | Mapping[str, Any]] = (),
                 default_rules: bool = True, on_invalid: OnInvalid = "skip") -> None:
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{self.name}: p={p}; must be in [0, 1]")
        if on_invalid not in ("skip", "drop", "flag"):
            raise ValueError(f"{self.name}: on_invalid={on_invalid!r}; accepted: skip, drop, flag")
        self.p = float(p)
        self.rules = tuple(rule if isinstance(rule, CaptionRule) else CaptionRule.from_dict(rule) for rule in rules)
        self.default_rules = bool(default_rules)
        self.on_invalid: OnInvalid = on_invalid

    @property
    def caption_rules(self) -> tuple[CaptionRule, ...]:
        """The rules in force: the built-in table (unless turned off), then the user's."""
        return (self.builtin_rules if self.default_rules else ()) + self.rules

    def not_applicable(self, sample: Sample) -> str | None:
        """Why this transform cannot act on ``sample`` (e.g. no audio), or ``None`` when it can."""
        return None

    def unchecked(self, sample: Sample) -> str | None:
        """What this transform cannot verify on ``sample`` (recorded as a note), or ``None``."""
        return None

    @abstractmethod
    def get_params(self, rng: np.random.Generator, sample: Sample) -> Params:
        """Draw this transform's random parameters once; JSON-safe numbers only."""

    @abstractmethod
    def apply_media(self, sample: Sample, params: Mapping[str, Any]) -> Sample | Drop:
        """Transform the image, audio and boxes with ``params``; the caption is left to :meth:`apply`."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The subclass's own constructor arguments, JSON-safe (for :meth:`to_dict`)."""

    def edit_caption(self, caption: str, params: Mapping[str, Any]) -> CaptionEdit:
        """The caption rewrite (and the invalidated words) this draw implies."""
        return edit_caption(caption, self.caption_rules, params)

    def apply(self, sample: Sample, params: Mapping[str, Any]) -> Sample | Drop:
        """Apply ``params`` to every modality and rewrite the caption. Deterministic."""
        result = self.apply_media(sample, params)
        if isinstance(result, Drop):
            return result
        return result.replace(caption=self.edit_caption(sample.caption, params).after)

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the transform: ``{"name": ..., "p": ..., ...}``."""
        return {"name": self.name, "p": self.p, **self.settings(), "rules": [rule.to_dict() for rule in self.rules],
                "default_rules": self.default_rules, "on_invalid": self.on_invalid}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transform:
        """Rebuild a transform from :meth:`to_dict` output (any registered name)."""
        from pairsynth.augment.compose import transform_from_dict

        transform = transform_from_dict(data)
        if cls is not Transform and not isinstance(transform, cls):
            raise ValueError(f"{cls.__name__}.from_dict got name {data.get('name')!r}")
        return transform

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transform) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items() if key != "name")
        return f"{type(self).__name__}({args})"


class HorizontalFlip(Transform):
    """Mirror left ↔ right: image columns, stereo channels, boxes and the caption's side words.

    Mono audio has no side and is left as it is; audio with more than two channels raises, since
    which channel is "left" is unknown. A sample with neither an image nor stereo audio has nothing
    to mirror, so the flip does not run (and the caption is not touched).
    """

    name = "hflip"
    builtin_rules = (LEFT_RIGHT,)

    def __init__(self, p: float = 0.5, **common: Any) -> None:
        super().__init__(p=p, **common)

    def not_applicable(self, sample: Sample) -> str | None:
        if sample.image is None and not sample.stereo:
            return "nothing to mirror: no image and no stereo audio"
        return None

    def get_params(self, rng: np.random.Generator, sample: Sample) -> Params:
        return {}

    def apply_media(self, sample: Sample, params: Mapping[str, Any]) -> Sample | Drop:
        audio = sample.audio
        if audio is not None and audio.ndim == 2 and audio.shape[0] > 2:
            raise ValueError(f"hflip: audio has {audio.shape[0]} channels; only stereo has a known left and right")
        if sample.stereo:
            audio = np.ascontiguousarray(audio[::-1])
        image = boxes = None
        if sample.image is not None:
            image = np.ascontiguousarray(sample.image[:, ::-1])
        if sample.boxes is not None:
            width = sample.image.shape[1]
            boxes = np.stack([width - sample.boxes[:, 2], sample.boxes[:, 1],
                              width - sample.boxes[:, 0], sample.boxes[:, 3]], axis=1)
        return sample.replace(image=image, audio=audio, boxes=boxes)

    def settings(self) -> dict[str, Any]:
        return {}


class VerticalFlip(Transform):
    """Mirror top ↔ bottom: image rows, boxes and the caption's vertical words.

    Only for scenes with no gravity (toy shapes, aerial or microscope images): an upside-down
    person is not something a caption rule can fix. Audio is untouched.
    """

    name = "vflip"
    builtin_rules = (TOP_BOTTOM,)

    def __init__(self, p: float = 0.5, **common: Any) -> None:
        super().__init__(p=p, **common)

    def not_applicable(self, sample: Sample) -> str | None:
        return "no image" if sample.image is None else None

    def get_params(self, rng: np.random.Generator, sample: Sample) -> Params:
        return {}

    def apply_media(self, sample: Sample, params: Mapping[str, Any]) -> Sample | Drop:
        boxes = None
        if sample.boxes is not None:
            height = sample.image.shape[0]
            boxes = np.stack([sample.boxes[:, 0], height - sample.boxes[:, 3],
                              sample.boxes[:, 2], height - sample.boxes[:, 1]], axis=1)
        return sample.replace(image=np.ascontiguousarray(sample.image[::-1]), boxes=boxes)

    def settings(self) -> dict[str, Any]:
        return {}


class RandomCrop(Transform):
    """Crop a random window (and zoom it back to full size), clipping boxes to it.

    The window keeps the image's aspect ratio and covers a ``scale`` fraction of its area. A box
    less than ``min_visibility`` visible is removed; when the caption names it (see
    :attr:`Sample.box_labels`) the pair is dropped or flagged (``on_cut``) with reason ``object_cut``,
    since its caption now describes something that is not there. With ``check_side``, a named object
    whose centre crosses the middle while the caption uses an absolute side word ("on the left") is
    reported as ``side_changed`` the same way. Without boxes nothing can be checked; the manifest
    step says so, and re-scoring with CLIP is the remaining safeguard.

    Args:
        scale: range of the window's area as a fraction of the image's, within ``(0, 1]``.
        resize: zoom the window back to the input size (``False``: output the smaller crop).
        min_visibility: fraction of a box's area that must stay inside the window.
        check_side: check absolute side words against named objects' centres.
        on_cut: ``drop`` the pair or ``flag`` it.
    """

    name = "crop"

    def __init__(self, scale: Sequence[float] = (0.6, 1.0), *, resize: bool = True, min_visibility: float = 0.6,
                 check_side: bool = True, on_cut: OnCut = "drop", p: float = 1.0, **common: Any) -> None:
        super().__init__(p=p, **common)
        self.scale = check_range(self.name, "scale", scale, low=0.0, high=1.0, open_low=True)
        if not 0.0 <= float(min_visibility) <= 1.0:
            raise ValueError(f"crop: min_visibility={min_visibility}; must be in [0, 1]")
        self.resize, self.min_visibility, self.check_side = bool(resize), float(min_visibility), bool(check_side)
        self.on_cut = check_on_cut(self.name, on_cut)

    def not_applicable(self, sample: Sample) -> str | None:
        return "no image" if sample.image is None else None

    def unchecked(self, sample: Sample) -> str | None:
        return "no boxes: named objects not checked" if sample.boxes is None else None

    def get_params(self, rng: np.random.Generator, sample: Sample) -> Params:
        height, width = sample.image.shape[:2]
        side = math.sqrt(float(rng.uniform(*self.scale)))
        crop_w, crop_h = min(width, max(1, round(width * side))), min(height, max(1, round(height * side)))
        x0, y0 = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        return {"x0": x0, "y0": y0, "x1": x0 + crop_w, "y1": y0 + crop_h}

    def apply_media(self, sample: Sample, params: Mapping[str, Any]) -> Sample | Drop:
        height, width = sample.image.shape[:2]
        x0, y0, x1, y1 = (int(params[key]) for key in ("x0", "y0", "x1", "y1"))
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ValueError(f"crop: window {(x0, y0, x1, y1)} does not fit a {width}×{height} image")
        image = sample.image[y0:y1, x0:x1]
        image = resize_image(image, width, height) if self.resize else image.copy()
        if sample.boxes is None:
            return sample.replace(image=image)
        boxes, labels, problems = self._crop_boxes(sample, (x0, y0, x1, y1))
        if self.resize:
            boxes = boxes * np.array([width / (x1 - x0), height / (y1 - y0)] * 2)
        result = sample.replace(image=image, boxes=boxes, box_labels=labels)
        return cut_verdict(result, self.on_cut, problems)

    def _crop_boxes(self, sample: Sample, window: tuple[int, int, int, int]
                    ) -> tuple[np.ndarray, tuple[str, ...] | None, list[tuple[str, str]]]:
        x0, y0, x1, y1 = window
        height, width = sample.image.shape[:2]
        boxes = sample.boxes
        clipped = np.clip(boxes - [x0, y0, x0, y0], 0, [x1 - x0, y1 - y0] * 2)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        visible = np.where(area > 0, kept_area / np.where(area > 0, area, 1), 1.0)
        named = named_boxes(sample)
        labels = sample.box_labels or tuple(f"box {i}" for i in range(len(boxes)))
        sides = [(HORIZONTAL_SIDES, 0, width, x1 - x0), (VERTICAL_SIDES, 1, height, y1 - y0)]
        checked = [(axis, full, cropped) for words, axis, full, cropped in sides
                   if self.check_side and find_words(sample.caption, words)]
        keep, problems = [], []
        for i, label in enumerate(labels):
            if visible[i] < self.min_visibility:
                if named[i]:
                    problems.append(("object_cut", f"{label!r} {visible[i]:.0%} visible after crop "
                                                   f"(min {self.min_visibility:.0%})"))
                continue
            keep.append(i)
            for axis, full, cropped in checked if named[i] else ():
                before = (boxes[i, axis] + boxes[i, axis + 2]) / 2 / full
                after = (clipped[i, axis] + clipped[i, axis + 2]) / 2 / cropped
                if (before < 0.5) != (after < 0.5):
                    problems.append(("side_changed", f"{label!r} centre moved from {before:.2f} to {after:.2f} "
                                                     f"of the {'width' if axis == 0 else 'height'}"))
        kept_labels = tuple(sample.box_labels[i] for i in keep) if sample.box_labels is not None else None
        return clipped[keep], kept_labels, problems

    def settings(self) -> dict[str, Any]:
        return {"scale": list(self.scale), "resize": self.resize, "min_visibility": self.min_visibility,
                "check_side": self.check_side, "on_cut": self.on_cut}


# YIQ: luma plus two chroma axes; rotating the chroma plane shifts hue and keeps luma.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)
_LUMA = _RGB_TO_YIQ[0]


class ColorJitter(Transform):
    """Jitter brightness, contrast, saturation and (optionally) hue without editing the caption.

    Colour jitter never claims a colour change: it does not rewrite colour words. Where a draw may
    make one untrue, a rule says so: by default a hue rotation of 0.05 turn or more, or saturation
    scaled to 0.3 or less, invalidates the colour words of :data:`COLOUR_WORDS`, and ``on_invalid``
    (default ``skip``) decides what happens. The default hue range is zero for that reason.

    Args:
        brightness: range of the factor multiplying every pixel.
        contrast: range of the factor scaling distances from the image's mean luma.
        saturation: range of the factor scaling distances from each pixel's luma (0: grey).
        hue: range of the rotation, in turns, within ``[-0.5, 0.5]``.
    """

    name = "color_jitter"
    builtin_rules = (HUE_CHANGE, DESATURATION)

    def __init__(self, brightness: Sequence[float] = (0.8, 1.2), contrast: Sequence[float] = (0.8, 1.2),
                 saturation: Sequence[float] = (0.8, 1.2), hue: Sequence[float] = (0.0, 0.0), *,
                 p: float = 1.0, **common: Any) -> None:
        super().__init__(p=p, **common)
        self.brightness = check_range(self.name, "brightness", brightness, low=0.0)
        self.contrast = check_range(self.name, "contrast", contrast, low=0.0)
        self.saturation = check_range(self.name, "saturation", saturation, low=0.0)
        self.hue = check_range(self.name, "hue", hue, low=-0.5, high=0.5)

    def not_applicable(self, sample: Sample) -> str | None:
        return "no image" if sample.image is None else None

    def get_params(self, rng: np.random.Generator, sample: Sample) -> Params:
        return {key: float(rng.uniform(*getattr(self, key))) for key in ("brightness", "contrast", "saturation", "hue")}

    def apply_media(self, sample: Sample, params: Mapping[str, Any]) -> Sample | Drop:
        image = as_float_image(sample.image).astype(np.float64) * params["brightness"]
        mean_luma = float(np.mean(image @ _LUMA))
        image = mean_luma + (image - mean_luma) * params["contrast"]
        luma = (image @ _LUMA)[..., None]
        image = luma + (image - luma) * params["saturation"]
        if params["hue"]:
            angle = 2.0 * math.pi * params["hue"]
            cos, sin = math.cos(angle), math.sin(angle)
            rotate = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
            image = image @ (_YIQ_TO_RGB @ rotate @ _RGB_TO_YIQ).T
        return sample.replace(image=like_input(image, sample.image))

    def settings(self) -> dict[str, Any]:
        return {key: list(getattr(self, key)) for key in ("brightness", "contrast", "saturation", "hue")}


def check_range(transform: str, field: str, value: Sequence[float], *, low: float | None = None,
                high: float | None = None, open_low: bool = False) -> tuple[float, float]:
    """Validate a ``[lo, hi]`` parameter range, naming the transform and field on failure."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{transform}: {field}={value!r}; expected a range [low, high]") from None
    too_low = low is not None and (lo <= low if open_low else lo < low)
    if lo > hi or too_low or (high is not None and hi > high) or not (math.isfinite(lo) and math.isfinite(hi)):
        left, right = "-inf" if low is None else low, "inf" if high is None else high
        within = "" if low is None and high is None else f" within {'(' if open_low else '['}{left}, {right}]"
        raise ValueError(f"{transform}: {field}={[lo, hi]}; need low <= high{within}")
    return lo, hi


def check_on_cut(transform: str, on_cut: str) -> OnCut:
    if on_cut not in ("drop", "flag"):
        raise ValueError(f"{transform}: on_cut={on_cut!r}; accepted: drop, flag")
    return on_cut  # type: ignore[return-value]


def cut_verdict(sample: Sample, on_cut: OnCut, problems: Sequence[tuple[str, str]]) -> Sample | Drop:
    """Turn problems found by a transform into a :class:`Drop` or flags on the kept sample."""
    if not problems:
        return sample
    if on_cut == "drop":
        return Drop(problems[0][0], "; ".join(detail for _, detail in problems))
    return sample.replace(flags=sample.flags + tuple(f"{reason}: {detail}" for reason, detail in problems))


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize keeping the dtype; float images are resized per channel at full precision."""
    if image.dtype == np.uint8:
        return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32))
                           .resize((width, height), Image.Resampling.BILINEAR)) for c in range(image.shape[2])]
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)
