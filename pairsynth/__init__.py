"""pairsynth: synthesize aligned multimodal training pairs, kept only when CLIP/CLAP agree.

Everything a script needs is importable from here::

    from pairsynth import load_recipe, generate_dataset, TextToImage, ClipScorer

Names resolve on first use (PEP 562 ``__getattr__``, as diffusers' ``_LazyModule`` does), so
``import pairsynth`` reads no torch and stays fast; ``dir(pairsynth)`` lists them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS: dict[str, str] = {
    # recipes and runs
    "Recipe": "pairsynth.recipe",
    "load_recipe": "pairsynth.recipe",
    "recipe_from_dict": "pairsynth.recipe",
    "generate_dataset": "pairsynth.generate",
    "RunSummary": "pairsynth.run",
    "ProgressUpdate": "pairsynth.run",
    "VaryConfig": "pairsynth.vary",
    "vary_config": "pairsynth.vary",
    "vary_dataset": "pairsynth.vary",
    "ScoreSettings": "pairsynth.score",
    "ScoreOutcome": "pairsynth.score",
    "score_dataset": "pairsynth.score",
    # adapters
    "TextToImage": "pairsynth.modalities.text_to_image",
    "ImageSampling": "pairsynth.modalities.text_to_image",
    "TextToAudio": "pairsynth.modalities.text_to_audio",
    "AudioSampling": "pairsynth.modalities.text_to_audio",
    "ImageToImage": "pairsynth.modalities.image_to_image",
    "VariationSampling": "pairsynth.modalities.image_to_image",
    "AudioToAudio": "pairsynth.modalities.audio_to_audio",
    "AudioVariationSampling": "pairsynth.modalities.audio_to_audio",
    # judges and acceptance
    "ClipScorer": "pairsynth.alignment.clip_scorer",
    "ClapScorer": "pairsynth.alignment.clap_scorer",
    "load_judge": "pairsynth.judges",
    "JudgeSettings": "pairsynth.judges",
    "AcceptanceRule": "pairsynth.alignment.acceptance",
    # data in and out
    "read_pairs": "pairsynth.readers",
    "PairRecord": "pairsynth.readers",
    "MEDIA": "pairsynth.media",
    "PairsynthError": "pairsynth.errors",
    "RecipeError": "pairsynth.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from pairsynth.alignment.acceptance import AcceptanceRule
    from pairsynth.alignment.clap_scorer import ClapScorer
    from pairsynth.alignment.clip_scorer import ClipScorer
    from pairsynth.errors import PairsynthError, RecipeError
    from pairsynth.generate import generate_dataset
    from pairsynth.judges import JudgeSettings, load_judge
    from pairsynth.media import MEDIA
    from pairsynth.modalities.audio_to_audio import AudioToAudio, AudioVariationSampling
    from pairsynth.modalities.image_to_image import ImageToImage, VariationSampling
    from pairsynth.modalities.text_to_audio import AudioSampling, TextToAudio
    from pairsynth.modalities.text_to_image import ImageSampling, TextToImage
    from pairsynth.readers import PairRecord, read_pairs
    from pairsynth.recipe import Recipe, load_recipe, recipe_from_dict
    from pairsynth.run import ProgressUpdate, RunSummary
    from pairsynth.score import ScoreOutcome, ScoreSettings, score_dataset
    from pairsynth.vary import VaryConfig, vary_config, vary_dataset


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pairsynth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
