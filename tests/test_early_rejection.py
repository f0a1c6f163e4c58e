"""Early rejection: previews part-way through denoising, and finishing only the kept samples.

Keeping every sample must reproduce the plain call exactly (the paused state is the real state);
keeping some must finish those as the plain call would (up to the float noise of a smaller batch);
the engine records every preview verdict, and with ``drop: false`` changes no output at all.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from pairsynth.errors import RecipeError
from pairsynth.modalities.screening import ScreenRequest
from pairsynth.modalities.text_to_audio import AudioSampling, TextToAudio
from pairsynth.modalities.text_to_image import ImageSampling, TextToImage
from tests.helpers import CAPTIONS_8, tiny_recipe, tiny_recipe_dict

PROMPTS = ["a red circle on the left", "a blue square on the right", "a green triangle", "a yellow circle"]
SEEDS = [3, 1, 4, 1]


def keep(pattern):
    return lambda previews: [pattern[i % len(pattern)] for i in range(len(previews))]


@pytest.mark.parametrize("scheduler", ["dpm++", "dpm++-sde", "ddim", "euler", "euler-a", "unipc"])
def test_keeping_every_sample_reproduces_the_plain_call_for_every_scheduler(tiny_sd_dir, scheduler):
    adapter = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(steps=5, scheduler=scheduler,
                                                                                   guidance_scale=3.0), device="cpu")
    plain = adapter.generate(PROMPTS, SEEDS)
    seen = []
    screened = adapter.generate(PROMPTS, SEEDS, screen=ScreenRequest(at=0.4, decide=lambda p: seen.extend(p) or [True] * len(p)))
    for a, b in zip(plain, screened):
        np.testing.assert_array_equal(a.pixels, b.pixels)
    assert len(seen) == len(PROMPTS) and all(np.isfinite(p.pixels).all() for p in seen)
    assert max(np.abs(p.pixels - a.pixels).max() for p, a in zip(seen, plain)) > 1e-3  # a preview is not the sample
    np.testing.assert_array_equal(adapter.generate(PROMPTS, SEEDS)[0].pixels, plain[0].pixels)  # scheduler restored


@pytest.mark.parametrize("scheduler", ["dpm++", "euler-a"])
def test_kept_samples_finish_as_in_the_plain_call_and_dropped_ones_are_none(tiny_sd_dir, scheduler):
    adapter = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(steps=5, scheduler=scheduler),
                                          device="cpu")
    plain = adapter.generate(PROMPTS, SEEDS)
    screened = adapter.generate(PROMPTS, SEEDS, screen=ScreenRequest(at=0.4, decide=keep([True, False])))
    assert screened[1] is None and screened[3] is None
    for index in (0, 2):  # ancestral noise continues from each sample's own generator
        np.testing.assert_allclose(screened[index].pixels, plain[index].pixels, atol=1e-4)
    assert adapter.generate(PROMPTS, SEEDS, screen=ScreenRequest(at=0.4, decide=keep([False]))) == [None] * 4


def test_audio_previews_and_resumes_like_images(tiny_audioldm_dir):
    adapter = TextToAudio.from_pretrained(str(tiny_audioldm_dir), sampling=AudioSampling(steps=4, duration_s=0.32),
                                          device="cpu")
    plain = adapter.generate(PROMPTS, SEEDS)
    every = adapter.generate(PROMPTS, SEEDS, screen=ScreenRequest(at=0.5, decide=keep([True])))
    for a, b in zip(plain, every):
        np.testing.assert_array_equal(a.waveform, b.waveform)
    some = adapter.generate(PROMPTS, SEEDS, screen=ScreenRequest(at=0.5, decide=keep([False, True])))
    assert some[0] is None and some[2] is None
    np.testing.assert_allclose(some[1].waveform, plain[1].waveform, atol=1e-4)


def _files(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "shards" in p.parts}


def test_recording_previews_changes_no_output(tiny_sd_dir, tiny_clip_dir, tmp_path):
    from pairsynth.generate import generate_dataset

    plain = tiny_recipe(tiny_sd_dir, tiny_clip_dir, generator={"steps": 4}, output={"report": False},
                        accept={"retrieval": {"max_rank": 1}})
    record = tiny_recipe(tiny_sd_dir, tiny_clip_dir, generator={"steps": 4}, output={"report": False},
                         accept={"retrieval": {"max_rank": 1}, "early_rejection": {"at": 0.5, "drop": False}})
    generate_dataset(plain, tmp_path / "plain")
    generate_dataset(record, tmp_path / "record")
    rows = {name: [json.loads(line) for line in (tmp_path / name / "manifest.jsonl").read_text().splitlines()]
            for name in ("plain", "record")}
    assert [r["key"] for r in rows["plain"]] == [r["key"] for r in rows["record"]]
    for a, b in zip(rows["plain"], rows["record"]):
        assert a["scores"]["clip"]["cosine"] == b["scores"]["clip"]["cosine"]
        early = b["early"]["clip"]
        assert early["at"] == 0.5 and early["dropped"] is False and isinstance(early["passed"], bool)
        assert "early" not in a
    assert _files(tmp_path / "plain") == _files(tmp_path / "record")


def test_dropped_candidates_are_recorded_count_as_attempts_and_write_nothing(tiny_sd_dir, tiny_clip_dir, tmp_path):
    from pairsynth.generate import generate_dataset

    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir, captions=CAPTIONS_8[:2], k=1, max_attempts=3,
                         output={"report": False, "formats": ["webdataset", "imagefolder"]},
                         accept={"min_clip_score": 99.0, "early_rejection": {"at": 0.5, "score_margin": 0.0}})
    summary = generate_dataset(recipe, tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert summary.accepted == 0 and summary.candidates == len(rows) == 6  # every attempt used
    assert all(r["reason"] == "early_rejection" and r["early"]["clip"]["dropped"] for r in rows)
    assert all(r["scores"] == {} and "preview at 50% of the steps" in r["detail"] for r in rows)
    assert not list((tmp_path / "out" / "imagefolder").glob("*.png"))
    again = generate_dataset(recipe, tmp_path / "out")  # complete: resuming adds nothing
    assert again.candidates == 6 and len((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()) == 6


def test_early_rejection_is_checked_before_anything_loads(tiny_sd_dir, tiny_clip_dir):
    from pairsynth.recipe import recipe_from_dict

    stops = tiny_recipe_dict(tiny_sd_dir, tiny_clip_dir, generator={"stop_at": 0.5},
                             accept={"min_clip_score": 20.0, "early_rejection": {"at": 0.3}})
    with pytest.raises(RecipeError, match="stop_at"):
        recipe_from_dict(stops)
    nothing = tiny_recipe_dict(tiny_sd_dir, tiny_clip_dir, accept={"retrieval": None, "early_rejection": {}})
    with pytest.raises(RecipeError, match="needs a check"):
        recipe_from_dict(nothing)
    with pytest.raises(RecipeError, match="at"):
        recipe_from_dict(tiny_recipe_dict(tiny_sd_dir, tiny_clip_dir, accept={"min_clip_score": 1.0,
                                                                              "early_rejection": {"at": 1.0}}))


def test_an_unset_early_rejection_leaves_the_fingerprint_alone(tiny_sd_dir, tiny_clip_dir):
    plain = tiny_recipe(tiny_sd_dir, tiny_clip_dir, accept={"min_clip_score": 20.0})
    early = tiny_recipe(tiny_sd_dir, tiny_clip_dir, accept={"min_clip_score": 20.0, "early_rejection": {"at": 0.3}})
    explicit = tiny_recipe(tiny_sd_dir, tiny_clip_dir, accept={"min_clip_score": 20.0, "early_rejection": None})
    assert plain.fingerprint() == explicit.fingerprint() != early.fingerprint()
