"""Small builders shared by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pairsynth.recipe import Recipe, recipe_from_dict

CAPTIONS_8 = [
    "a red circle on the left", "a blue square on the right", "a green triangle on the left",
    "a yellow circle on the right", "a photo of a cat", "a photo of a dog", "a red square on the left",
    "a blue triangle on the right",
]


def tiny_recipe_dict(sd_dir: Path, clip_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A recipe on the tiny random models: 2 sampling steps, everything else small."""
    recipe: dict[str, Any] = {
        "captions": CAPTIONS_8,
        "k": 2,
        "seed": 7,
        "generator": {"model": f"local:{sd_dir}", "steps": 2, "guidance_scale": 3.0, "batch_size": 4},
        "scorer": {"clip": f"local-dir:{clip_dir}", "batch_size": 16},
        "accept": {"retrieval": None},
        "output": {"commit_every": 8},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    return recipe


def tiny_recipe(sd_dir: Path, clip_dir: Path, **overrides: Any) -> Recipe:
    return recipe_from_dict(tiny_recipe_dict(sd_dir, clip_dir, **overrides))


def write_recipe(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path
