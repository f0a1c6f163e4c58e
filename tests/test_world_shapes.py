"""The SHAPES world: seed contract, caption grammar round trips, hard negatives."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pairsynth.world import shapes
from pairsynth.world.shapes import (
    VOCAB,
    ShapeScene,
    all_captions,
    caption,
    one_attribute_off,
    parse_caption,
    render,
    render_sample,
    sample_scene,
    scene_from_caption,
    world_words,
)


def test_same_seed_same_sample():
    image_a, caption_a, scene_a = render_sample(123)
    image_b, caption_b, scene_b = render_sample(123)
    assert caption_a == caption_b and scene_a == scene_b
    assert np.array_equal(np.asarray(image_a), np.asarray(image_b))
    assert render_sample(124)[2] != scene_a


def test_render_is_rgb_of_requested_size():
    image, _, _ = render_sample(0)
    assert image.mode == "RGB" and image.size == (32, 32)
    assert render(scene_from_caption("a red circle on the left"), size=64).size == (64, 64)


def test_all_captions_are_24_distinct_and_parse_back():
    captions = all_captions()
    assert len(captions) == len(set(captions)) == 24
    for text in captions:
        assert caption(scene_from_caption(text)) == text


def test_sampled_scene_caption_parses_to_its_attributes():
    rng = random.Random(0)
    for _ in range(200):
        scene = sample_scene(rng)
        assert parse_caption(caption(scene)) == scene.attributes()
        assert (scene.cx < 0.5) == (scene.position == "left"), "the shape's centre must lie in the captioned half"
        assert scene.half_extent < scene.cx < 1 - scene.half_extent, "the shape must stay on the canvas"


def test_shape_colour_is_visible_on_the_captioned_side():
    image, _, scene = render_sample(7)
    pixels = np.asarray(image).astype(int)
    target = np.array(shapes.COLOUR_RGB[scene.colour])
    close = (np.abs(pixels - target).sum(-1) < 30)
    ys, xs = np.nonzero(close)
    assert len(xs) > 10
    assert (xs.mean() < 16) == (scene.position == "left")


def test_one_attribute_off_differs_in_exactly_one_attribute():
    text = "a red circle on the left"
    variants = one_attribute_off(text)
    expected = sum(len(values) - 1 for values in VOCAB.values())
    assert len(variants) == len(set(variants)) == expected == 6
    base = parse_caption(text)
    for variant in variants:
        parsed = parse_caption(variant)
        assert sum(parsed[k] != base[k] for k in base) == 1


def test_bad_captions_and_scenes_raise_naming_the_problem():
    with pytest.raises(ValueError, match="purple"):
        parse_caption("a purple circle on the left")
    with pytest.raises(ValueError, match="does not match"):
        parse_caption("circle, red, left")
    with pytest.raises(ValueError, match="colour"):
        ShapeScene(shape="circle", colour="pink", position="left")


def test_world_words_cover_every_caption_word():
    words = set(world_words())
    assert {w for text in all_captions() for w in text.split()} == words


def test_a_fill_colour_paints_the_same_scene_in_a_colour_outside_the_world():
    import numpy as np

    from pairsynth.world.shapes import ShapeScene, render

    scene = ShapeScene(shape="circle", colour="red", position="left", cx=0.25)
    red, purple = (np.asarray(render(scene, fill=fill)) for fill in (None, (160, 50, 200)))
    drawn = (red != red[0, -1]).any(-1)  # the shape's pixels (the background is one grey)
    assert np.array_equal(drawn, (purple != purple[0, -1]).any(-1))
    colours, counts = np.unique(purple[drawn], axis=0, return_counts=True)
    assert tuple(colours[counts.argmax()]) == (160, 50, 200)  # the interior; edges blend with the grey
    colours, counts = np.unique(red[drawn], axis=0, return_counts=True)
    assert tuple(colours[counts.argmax()]) == (220, 40, 40)
