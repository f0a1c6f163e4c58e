"""The SOUNDS world: seed contract, caption grammar, hard negatives and stereo renders."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pairsynth.world import sounds
from pairsynth.world.sounds import (
    SoundScene,
    all_captions,
    caption,
    one_attribute_off,
    parse_caption,
    render_sample,
    render_stereo,
    sample_scene,
    scene_from_caption,
    stereo_caption,
    synthesize,
    world_words,
)


def test_seed_contract_is_deterministic_and_seeds_differ():
    wave, text, scene = render_sample(7)
    again = render_sample(7)
    assert np.array_equal(wave, again[0]) and text == again[1] and scene == again[2]
    assert wave.dtype == np.float32 and wave.shape == (16_000,)
    assert np.abs(wave).max() < 1.0
    assert not np.array_equal(wave, render_sample(8)[0])
    assert text == caption(scene)


def test_all_captions_cover_the_vocabulary():
    mono, stereo = all_captions(), all_captions(stereo=True)
    assert len(mono) == 8 == len(set(mono)) and len(stereo) == 16 == len(set(stereo))
    assert mono[0] == "a low steady tone"
    assert "a high beeping tone on the left" in stereo
    seen = {render_sample(seed)[1] for seed in range(200)}
    assert seen == set(mono)


@pytest.mark.parametrize("text", all_captions() + all_captions(stereo=True))
def test_captions_parse_back(text):
    found = parse_caption(text)
    assert set(found) == ({"kind", "pitch", "side"} if "on the" in text else {"kind", "pitch"})
    scene = scene_from_caption(text)
    assert (stereo_caption(scene) if "side" in found else caption(scene)) == text


@pytest.mark.parametrize("bad", ["a purple steady tone", "a low loud bang", "two high chirps", "a high beeping tone on the top"])
def test_parse_caption_rejects_text_outside_the_grammar(bad):
    with pytest.raises(ValueError, match="caption"):
        parse_caption(bad)


def test_one_attribute_off_changes_exactly_one_attribute():
    for text in all_captions() + all_captions(stereo=True):
        original = parse_caption(text)
        variants = one_attribute_off(text)
        assert len(variants) == (5 if "side" in original else 4) == len(set(variants))
        for variant in variants:
            found = parse_caption(variant)
            assert sum(found[k] != original[k] for k in original) == 1


def test_scene_validation_names_the_field():
    with pytest.raises(ValueError, match="kind"):
        SoundScene(kind="whistle", pitch="low")
    with pytest.raises(ValueError, match="onset"):
        SoundScene(kind="steady tone", pitch="low", onset=0.5, duration=0.8)


def test_pitch_is_where_the_energy_is():
    """High sounds put their energy above 1 kHz, low ones below 700 Hz (what judges rely on)."""
    for seed in range(40):
        wave, _, scene = render_sample(seed)
        spectrum = np.abs(np.fft.rfft(wave)) ** 2
        freqs = np.fft.rfftfreq(len(wave), 1 / 16_000)
        centroid = (spectrum * freqs).sum() / spectrum.sum()
        assert (centroid > 1000) if scene.pitch == "high" else (centroid < 700), (seed, scene, centroid)


def test_beeps_have_gaps_and_steady_tones_do_not():
    def active_fraction(kind: str) -> float:
        scene = SoundScene(kind=kind, pitch="high", frequency=1300.0, onset=0.05, duration=0.8, beeps=4, noise_floor=1e-4)
        frames = np.abs(synthesize(scene))[800:13600].reshape(-1, 160).max(axis=1)
        return float((frames > 0.05).mean())

    assert active_fraction("steady tone") > 0.95
    assert 0.35 < active_fraction("beeping tone") < 0.65


def test_stereo_render_is_louder_on_its_side():
    scene = sample_scene(random.Random(3))
    for side in ("left", "right"):
        stereo = render_stereo(SoundScene(**{**scene.to_dict(), "side": side}))
        left, right = np.abs(stereo).sum(axis=1)
        assert stereo.shape == (2, 16_000) and ((left > right) if side == "left" else (right > left))
    assert stereo_caption(scene).startswith(caption(scene)) and stereo_caption(scene).endswith(scene.side)


def test_world_words_are_the_caption_words():
    words = set(world_words())
    assert {"a", "on", "the", "beeping", "tone", "noise", "burst", "left"} <= words
    for text in all_captions(stereo=True):
        assert set(text.split()) <= words
    assert sounds.MONO_ATTRIBUTES == ("kind", "pitch")
