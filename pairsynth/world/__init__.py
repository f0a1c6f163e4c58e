"""Procedural toy worlds: the data the toy model zoo is trained on and judged against."""

from pairsynth.world.shapes import (
    ShapeScene,
    all_captions,
    caption,
    one_attribute_off,
    render,
    render_sample,
    sample_scene,
    scene_from_caption,
)

__all__ = [
    "ShapeScene",
    "all_captions",
    "caption",
    "one_attribute_off",
    "render",
    "render_sample",
    "sample_scene",
    "scene_from_caption",
]
