"""Synchronized transforms: one draw reaches image, audio, boxes and caption; seeds; serialization."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pairsynth.augment import (
    ColorJitter,
    Compose,
    Gain,
    HorizontalFlip,
    PitchShift,
    RandomCrop,
    Sample,
    TimeShift,
    TimeStretch,
    Transform,
    VerticalFlip,
    augment,
    augment_copies,
    derive_augment_seed,
    list_transforms,
    register_transform,
    to_candidate,
    transform_from_dict,
)
from pairsynth.augment import compose as compose_module
from pairsynth.augment.sample import Drop

ROOT = Path(__file__).resolve().parents[1]
RATE = 8000


def triplet(caption: str = "a red circle on the left", *, dtype=np.float32, boxes=((2.0, 3.0, 6.0, 8.0),),
            labels=("circle",)) -> Sample:
    """A 10×16 image with distinct pixels, distinct stereo channels and one box."""
    rng = np.random.default_rng(0)
    image = rng.random((10, 16, 3), dtype=np.float32)
    if dtype == np.uint8:
        image = (image * 255).astype(np.uint8)
    audio = np.stack([np.linspace(-0.5, 0.5, RATE), 0.25 * np.sin(np.arange(RATE) / 7.0)]).astype(np.float32)
    return Sample(caption=caption, image=image, audio=audio, sample_rate=RATE,
                  boxes=None if boxes is None else np.array(boxes), box_labels=labels)


def always(transform: Transform) -> Transform:
    transform.p = 1.0
    return transform


# --- flips ---------------------------------------------------------------------------------------

def test_hflip_mirrors_every_modality_with_one_draw():
    sample = triplet()
    result = augment(sample, always(HorizontalFlip()), seed=1)
    out = result.sample
    assert np.array_equal(out.image, sample.image[:, ::-1])
    assert np.array_equal(out.audio[0], sample.audio[1]) and np.array_equal(out.audio[1], sample.audio[0])
    assert out.audio.dtype == np.float32
    assert np.array_equal(out.boxes, [[16 - 6, 3, 16 - 2, 8]])  # x -> W - x, y kept
    assert out.caption == "a red circle on the right"
    step = result.record.steps[0]
    assert step.name == "hflip" and step.applied and step.caption_swaps == (("left", "right"),)


def test_mirrored_box_covers_the_mirrored_pixels():
    image = np.zeros((10, 16, 3), np.uint8)
    image[3:8, 2:6] = 255  # rows 3..7, columns 2..5: the box (2, 3, 6, 8)
    sample = Sample(caption="a square on the left", image=image, boxes=[[2, 3, 6, 8]], box_labels=["square"])
    out = HorizontalFlip().apply(sample, {})
    rows, cols = np.nonzero(out.image[..., 0])
    assert [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1] == out.boxes[0].tolist()


def test_hflip_twice_is_the_identity():
    sample = triplet("The LEFT cup and the right plate")
    flip = HorizontalFlip()
    twice = flip.apply(flip.apply(sample, {}), {})
    assert np.array_equal(twice.image, sample.image) and np.array_equal(twice.audio, sample.audio)
    assert np.array_equal(twice.boxes, sample.boxes) and twice.caption == sample.caption


def test_hflip_leaves_mono_audio_and_skips_samples_with_nothing_to_mirror():
    mono = np.linspace(-1, 1, 100, dtype=np.float32)
    pair = Sample(caption="a dog on the left", image=np.zeros((4, 4, 3), np.float32), audio=mono, sample_rate=100)
    assert np.array_equal(HorizontalFlip().apply(pair, {}).audio, mono)
    audio_only = Sample(caption="a beep on the left", audio=mono, sample_rate=100)
    result = augment(audio_only, always(HorizontalFlip()), seed=0)
    assert result.sample.caption == "a beep on the left"  # mono audio has no side to flip
    assert not result.record.steps[0].applied and "nothing to mirror" in result.record.steps[0].note


def test_hflip_stereo_audio_only_swaps_channels_and_caption():
    audio = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    out = augment(Sample(caption="a beep on the right", audio=audio, sample_rate=3), always(HorizontalFlip()), 0).sample
    assert np.array_equal(out.audio, [[4, 5, 6], [1, 2, 3]]) and out.caption == "a beep on the left"


def test_hflip_refuses_audio_with_unknown_channel_layout():
    sample = Sample(caption="surround on the left", audio=np.zeros((6, 10), np.float32), sample_rate=10,
                    image=np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="6 channels"):
        HorizontalFlip().apply(sample, {})


def test_vflip_mirrors_rows_boxes_and_vertical_words_only():
    sample = triplet("a circle at the top left")
    out = VerticalFlip().apply(sample, {})
    assert np.array_equal(out.image, sample.image[::-1]) and np.array_equal(out.audio, sample.audio)
    assert np.array_equal(out.boxes, [[2, 10 - 8, 6, 10 - 3]])
    assert out.caption == "a circle at the bottom left"


# --- crop ----------------------------------------------------------------------------------------

def test_crop_keeps_a_visible_named_object_and_rescales_its_box():
    sample = triplet()
    out = RandomCrop().apply(sample, {"x0": 0, "y0": 2, "x1": 10, "y1": 7})  # zoom ×1.6 across, ×2 down
    assert out.image.shape == sample.image.shape and out.image.dtype == np.float32
    assert np.allclose(out.boxes, [[3.2, 2, 9.6, 10]])  # clipped to (2, 1, 6, 5): 80% visible, then scaled
    assert out.caption == sample.caption and out.box_labels == ("circle",)


def test_crop_that_cuts_the_named_object_drops_with_a_reason():
    sample = triplet()
    crop = RandomCrop()
    verdict = crop.apply(sample, {"x0": 4, "y0": 0, "x1": 12, "y1": 5})
    assert isinstance(verdict, Drop) and verdict.reason == "object_cut" and "'circle'" in verdict.detail


def test_crop_can_flag_instead_of_dropping_and_ignores_unnamed_objects():
    sample = triplet()
    flagged = RandomCrop(on_cut="flag").apply(sample, {"x0": 4, "y0": 0, "x1": 12, "y1": 5})
    assert flagged.boxes.shape == (0, 4) and flagged.box_labels == ()
    assert flagged.flags and flagged.flags[0].startswith("object_cut")
    unnamed = triplet("a red shape on the left", labels=("dog",))
    assert RandomCrop().apply(unnamed, {"x0": 4, "y0": 0, "x1": 12, "y1": 5}).flags == ()


def test_crop_that_moves_a_named_object_across_the_middle_breaks_its_side_word():
    sample = triplet(boxes=((5.0, 3.0, 7.0, 5.0),))  # centre x = 6 of 16: "on the left"
    verdict = RandomCrop().apply(sample, {"x0": 2, "y0": 0, "x1": 10, "y1": 5})  # centre now 4 of 8
    assert isinstance(verdict, Drop) and verdict.reason == "side_changed"
    assert not isinstance(RandomCrop(check_side=False).apply(sample, {"x0": 2, "y0": 0, "x1": 10, "y1": 5}), Drop)


def test_crop_without_boxes_notes_that_nothing_was_checked():
    result = augment(triplet(boxes=None, labels=None), RandomCrop(), seed=3)
    assert result.sample is not None and "no boxes" in result.record.steps[0].note


def test_crop_keeps_uint8_and_rejects_a_window_outside_the_image():
    sample = triplet(dtype=np.uint8)
    assert augment(sample, RandomCrop(scale=(0.9, 1.0)), seed=0).sample.image.dtype == np.uint8
    with pytest.raises(ValueError, match="does not fit"):
        RandomCrop().apply(sample, {"x0": 0, "y0": 0, "x1": 17, "y1": 5})


def test_dropped_pair_is_reported_not_lost():
    result = augment(triplet(), [always(HorizontalFlip()), RandomCrop(scale=(0.05, 0.05))], seed=0)
    assert result.dropped and result.sample is None
    record = result.record
    assert record.status == "dropped" and record.reason in ("object_cut", "side_changed")
    assert record.detail.startswith("crop: ") and [s.name for s in record.steps] == ["hflip", "crop"]


# --- colour jitter --------------------------------------------------------------------------------

def test_colour_jitter_with_neutral_params_keeps_the_image():
    sample = triplet()
    out = ColorJitter().apply(sample, {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0})
    assert np.allclose(out.image, sample.image, atol=1e-6) and out.caption == sample.caption


def test_hue_shift_that_invalidates_a_colour_word_is_skipped_dropped_or_flagged():
    sample = triplet()
    jitter = dict(brightness=(1, 1), contrast=(1, 1), saturation=(1, 1), hue=(0.25, 0.25))
    skipped = augment(sample, ColorJitter(**jitter), seed=0)
    assert np.array_equal(skipped.sample.image, sample.image) and not skipped.record.steps[0].applied
    assert "'red'" in skipped.record.steps[0].note and skipped.record.status == "ok"
    dropped = augment(sample, ColorJitter(**jitter, on_invalid="drop"), seed=0)
    assert dropped.dropped and dropped.record.reason == "caption_invalidated"
    flagged = augment(sample, ColorJitter(**jitter, on_invalid="flag"), seed=0)
    assert flagged.record.status == "flagged" and not np.allclose(flagged.sample.image, sample.image)
    colourless = augment(triplet("a circle on the left"), ColorJitter(**jitter), seed=0)
    assert colourless.record.steps[0].applied  # no colour word: nothing to invalidate


def test_user_rule_says_which_words_a_transform_invalidates():
    gain = Gain(db=(10, 10), max_peak=None, rules=[{"invalidates": ["quiet"], "when": {"param": "db", "at_least": 6}}])
    result = augment(triplet("a quiet hum"), gain, seed=0)
    assert not result.record.steps[0].applied and "'quiet'" in result.record.steps[0].note


# --- audio -----------------------------------------------------------------------------------------

def test_gain_is_exact_and_respects_max_peak():
    sample = triplet()
    out = Gain().apply(sample, {"db": 6.0})
    assert np.allclose(out.audio, sample.audio * 10 ** (6 / 20), rtol=1e-6)
    params = Gain(db=(20, 20)).get_params(np.random.default_rng(0), sample)
    assert params["db_drawn"] == 20 and np.isclose(params["db"], 20 * np.log10(1 / 0.5))  # peak 0.5 -> 1.0


def test_time_shift_pads_exactly_and_drops_a_sound_shifted_away():
    sample = triplet()
    out = TimeShift(min_kept=0).apply(sample, {"shift_s": 0.01, "shift_samples": 80})
    assert np.array_equal(out.audio[:, 80:], sample.audio[:, :-80]) and not out.audio[:, :80].any()
    rolled = TimeShift(mode="roll").apply(sample, {"shift_s": -0.01, "shift_samples": -80})
    assert np.array_equal(rolled.audio, np.roll(sample.audio, -80, axis=-1))
    verdict = TimeShift().apply(sample, {"shift_s": 0.9, "shift_samples": 7200})
    assert isinstance(verdict, Drop) and verdict.reason == "audio_cut"


def test_audio_transforms_do_not_run_without_audio():
    sample = Sample(caption="a red circle", image=np.zeros((4, 4, 3), np.float32))
    result = augment(sample, [Gain(), TimeShift(), PitchShift(), TimeStretch()], seed=0)
    assert all(not step.applied and step.note == "not applicable: no audio" for step in result.record.steps)


def test_pitch_and_stretch_keep_length_and_an_octave_up_rewrites_low_to_high():
    t = np.arange(RATE) / RATE
    tone = np.stack([np.sin(2 * np.pi * 300 * t)] * 2).astype(np.float32) * 0.5
    sample = Sample(caption="a low tone on the left", audio=tone, sample_rate=RATE)
    result = augment(sample, [PitchShift(semitones=(12, 12)), TimeStretch(rate=(1.2, 1.2))], seed=0)
    out = result.sample
    assert out.audio.shape == tone.shape and out.audio.dtype == np.float32
    assert out.caption == "a high tone on the left"
    peak_hz = np.argmax(np.abs(np.fft.rfft(out.audio[0]))) * RATE / tone.shape[-1]
    assert abs(peak_hz - 600) < 15


# --- determinism and seeds -------------------------------------------------------------------------

CHAIN = [HorizontalFlip(), RandomCrop(scale=(0.7, 1.0)), ColorJitter(), Gain(), TimeShift(shift_s=(-0.01, 0.01))]


def test_same_seed_same_output_and_different_seeds_differ():
    sample = triplet()
    a, b = augment(sample, CHAIN, seed=42), augment(sample, CHAIN, seed=42)
    assert a.record == b.record and a.sample.caption == b.sample.caption
    for field in ("image", "audio", "boxes"):
        assert np.array_equal(getattr(a.sample, field), getattr(b.sample, field))
    records = {json.dumps(augment(sample, CHAIN, seed=s).record.as_dict()["steps"]) for s in range(5)}
    assert len(records) == 5


def test_each_transform_draws_from_its_own_stream():
    sample = triplet()
    base = augment(sample, CHAIN, seed=7).record.steps
    changed = augment(sample, [CHAIN[0], RandomCrop(scale=(0.8, 0.9)), *CHAIN[2:]], seed=7).record.steps
    assert base[0] == changed[0] and base[2:] == changed[2:] and base[1] != changed[1]


def test_recorded_params_replay_the_output():
    sample = triplet()
    result = augment(sample, CHAIN, seed=5)
    replayed = sample
    for transform, step in zip(CHAIN, result.record.steps):
        if step.applied:
            replayed = transform.apply(replayed, step.params)
    assert np.array_equal(replayed.image, result.sample.image) and np.array_equal(replayed.audio, result.sample.audio)
    assert replayed.caption == result.sample.caption
    assert result.sample.history == result.record.steps


def test_derived_seeds_depend_on_key_and_copy_only():
    assert derive_augment_seed(0, "a", 0) == derive_augment_seed(0, "a", 0)
    assert len({derive_augment_seed(0, "a", 0), derive_augment_seed(0, "a", 1), derive_augment_seed(0, "b", 0),
                derive_augment_seed(1, "a", 0)}) == 4
    copies = augment_copies(triplet(), CHAIN, seed=0, key="a", copies=3)
    assert [c.record.seed for c in copies] == [derive_augment_seed(0, "a", i) for i in range(3)]


def test_bad_seed_and_bad_transform_are_errors():
    with pytest.raises(ValueError, match="seed"):
        augment(triplet(), CHAIN, seed=-1)
    with pytest.raises(ValueError, match=r"transforms\[0\]"):
        augment(triplet(), ["hflip"], seed=0)


# --- serialization -----------------------------------------------------------------------------------

CUSTOMISED = [
    HorizontalFlip(p=0.3, rules=[{"swaps": {"east": "west", "west": "east"}}]),
    VerticalFlip(p=1.0, default_rules=False),
    RandomCrop(scale=(0.5, 0.8), resize=False, min_visibility=0.3, check_side=False, on_cut="flag"),
    ColorJitter(brightness=(0.5, 1.5), hue=(-0.1, 0.1), on_invalid="flag"),
    TimeShift(shift_s=(-0.2, 0.3), mode="roll"),
    TimeStretch(rate=(0.8, 1.25), keep_length=False, min_kept=0.5),
    Gain(db=(-3, 9), max_peak=None),
    PitchShift(semitones=(-24, 24), on_invalid="drop"),
]


@pytest.mark.parametrize("transform", CUSTOMISED, ids=lambda t: t.name)
def test_serialization_round_trip(transform):
    data = json.loads(json.dumps(transform.to_dict()))
    again = Transform.from_dict(data)
    assert type(again) is type(transform) and again == transform and again.to_dict() == transform.to_dict()


def test_every_builtin_is_listed_and_serializable():
    assert sorted(t.name for t in CUSTOMISED) == list_transforms()


def test_round_tripped_chain_gives_identical_output():
    chain = Compose(CHAIN)
    again = Compose.from_dict(json.loads(json.dumps(chain.to_dict())))
    assert again == chain
    a, b = chain(triplet(), seed=3), again(triplet(), seed=3)
    assert a.record == b.record and np.array_equal(a.sample.image, b.sample.image)


def test_unknown_names_and_arguments_are_errors_listing_what_is_known():
    with pytest.raises(ValueError, match=r"unknown transform 'mirror'; known: color_jitter, crop, gain, hflip"):
        transform_from_dict({"name": "mirror"})
    with pytest.raises(ValueError, match="transform 'gain'.*decibels"):
        transform_from_dict({"name": "gain", "decibels": [1, 2]})
    with pytest.raises(ValueError, match=r"gain: db=\[6.0, -6.0\]"):
        Gain(db=(6, -6))
    with pytest.raises(ValueError, match="HorizontalFlip.from_dict got name 'gain'"):
        HorizontalFlip.from_dict({"name": "gain"})


def test_registered_user_transform(monkeypatch):
    monkeypatch.setattr(compose_module, "_REGISTERED", {})

    @register_transform
    class Invert(Transform):
        name = "invert"

        def get_params(self, rng, sample):
            return {}

        def apply_media(self, sample, params):
            return sample.replace(image=1.0 - sample.image)

        def settings(self):
            return {}

    assert "invert" in list_transforms()
    out = augment(triplet(), transform_from_dict({"name": "invert"}), seed=0).sample
    assert np.allclose(out.image, 1.0 - triplet().image)
    with pytest.raises(ValueError, match="already taken"):
        register_transform(type("Other", (Invert,), {}))


# --- handing over to the run's stages --------------------------------------------------------------

def test_to_candidate_carries_the_record_into_the_manifest():
    kept = augment(triplet(dtype=np.uint8), always(HorizontalFlip()), seed=0)
    candidate = to_candidate(kept, source_key="abc", sample_index=2)
    assert candidate.caption == "a red circle on the right" and candidate.modality == "triplet"
    assert candidate.image.dtype == np.float32 and candidate.image.max() <= 1.0
    row = candidate.manifest_row()
    assert row["augment"]["steps"][0]["name"] == "hflip" and row["source"]["key"] == "abc" and row["seed"] == 0
    dropped = to_candidate(augment(triplet(), RandomCrop(scale=(0.01, 0.01)), seed=0), source_key="abc")
    row = dropped.manifest_row()
    assert not row["accepted"] and row["reason"] in ("object_cut", "side_changed") and row["modality"] == "triplet"


def test_sample_validation_names_the_field():
    with pytest.raises(ValueError, match="Sample.image"):
        Sample(caption="x", image=np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="Sample.audio must be float32"):
        Sample(caption="x", audio=np.zeros(4, np.int16), sample_rate=4)
    with pytest.raises(ValueError, match="sample_rate"):
        Sample(caption="x", audio=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="box_labels has 2 labels for 1 boxes"):
        Sample(caption="x", image=np.zeros((4, 4, 3), np.float32), boxes=[[0, 0, 1, 1]], box_labels=["a", "b"])


def test_example_script_runs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "sync_augment.py"), "--out", str(tmp_path),
                           "--sources", "2", "--copies", "2"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all("steps" in row for row in rows)
    kept = [row["key"] for row in rows if row["status"] != "dropped"]
    assert all((tmp_path / f"{key}.png").exists() and (tmp_path / f"{key}.flac").exists() for key in kept)
    assert "params:" in done.stdout or "DROPPED" in done.stdout
