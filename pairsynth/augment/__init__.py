"""Synchronized augmentation: one draw of random parameters for every modality of a pair.

A horizontal flip mirrors the image, swaps the stereo channels, mirrors the boxes and turns "left"
into "right" in the caption, all from one draw; a crop that cuts away the object the caption names
drops the pair with a reason. See ``docs/augmentation.md``.

>>> from pairsynth.augment import Compose, HorizontalFlip, RandomCrop, Gain, Sample, augment
>>> chain = Compose([HorizontalFlip(p=0.5), RandomCrop(scale=(0.6, 1.0)), Gain(db=(-6, 6))])
>>> result = augment(sample, chain, seed=derive_augment_seed(0, key, copy_index=0))  # doctest: +SKIP
>>> result.sample.caption, result.record.as_dict()  # doctest: +SKIP
"""

from pairsynth.augment.audio_transforms import Gain, PitchShift, TimeShift, TimeStretch
from pairsynth.augment.caption_rules import (
    COLOUR_WORDS,
    DESATURATION,
    HUE_CHANGE,
    LEFT_RIGHT,
    PITCH_DOWN,
    PITCH_UP,
    TOP_BOTTOM,
    CaptionEdit,
    CaptionRule,
    When,
    edit_caption,
    find_words,
    symmetric,
)
from pairsynth.augment.compose import (
    Compose,
    augment,
    augment_copies,
    derive_augment_seed,
    list_transforms,
    register_transform,
    to_candidate,
    transform_from_dict,
)
from pairsynth.augment.config import AugmentConfig, augment_config_from_dict, load_augment_config
from pairsynth.augment.sample import Applied, AugmentRecord, Augmented, Drop, Sample
from pairsynth.augment.transforms import ColorJitter, HorizontalFlip, RandomCrop, Transform, VerticalFlip

__all__ = [
    "COLOUR_WORDS",
    "DESATURATION",
    "HUE_CHANGE",
    "LEFT_RIGHT",
    "PITCH_DOWN",
    "PITCH_UP",
    "TOP_BOTTOM",
    "Applied",
    "AugmentConfig",
    "AugmentRecord",
    "Augmented",
    "CaptionEdit",
    "CaptionRule",
    "ColorJitter",
    "Compose",
    "Drop",
    "Gain",
    "HorizontalFlip",
    "PitchShift",
    "RandomCrop",
    "Sample",
    "TimeShift",
    "TimeStretch",
    "Transform",
    "VerticalFlip",
    "When",
    "augment",
    "augment_config_from_dict",
    "augment_copies",
    "derive_augment_seed",
    "edit_caption",
    "find_words",
    "list_transforms",
    "load_augment_config",
    "register_transform",
    "symmetric",
    "to_candidate",
    "transform_from_dict",
]
