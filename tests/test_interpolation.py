"""Interpolation between two samples and early stopping, on tiny random pipelines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pairsynth.candidates import derive_seed
from pairsynth.modalities.noise_paths import Blend, slerp
from pairsynth.modalities.text_to_image import ImageSampling, TextToImage

A, B = "a red circle on the left", "a red circle on the right"


@pytest.fixture(scope="module")
def adapter(tiny_sd_dir):
    return TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(steps=3, guidance_scale=3.0), device="cpu")


@pytest.mark.parametrize("what", ["noise", "both"])
def test_the_endpoints_of_a_path_are_the_plain_samples(adapter, what):
    plain = adapter.generate([A, B], [11, 22])
    path = adapter.generate_blended([Blend(prompt_a=A, prompt_b=B, seed_a=11, seed_b=22, weight=w, what=what)
                                     for w in (0.0, 0.5, 1.0)])
    np.testing.assert_array_equal(path[0].pixels, plain[0].pixels)
    np.testing.assert_array_equal(path[2].pixels, plain[1].pixels)
    assert np.abs(path[1].pixels - path[0].pixels).max() > 1e-3 and np.abs(path[1].pixels - path[2].pixels).max() > 1e-3


def test_prompt_interpolation_keeps_the_first_noise(adapter):
    plain = adapter.generate([A, B], [11, 11])
    path = adapter.generate_blended([Blend(prompt_a=A, prompt_b=B, seed_a=11, seed_b=22, weight=w, what="prompt")
                                     for w in (0.0, 1.0)])
    np.testing.assert_array_equal(path[0].pixels, plain[0].pixels)
    np.testing.assert_array_equal(path[1].pixels, plain[1].pixels)


def test_slerp_keeps_gaussian_noise_at_its_norm():
    import torch

    a, b = torch.randn(4096, generator=torch.Generator().manual_seed(0)), torch.randn(4096, generator=torch.Generator().manual_seed(1))
    middle = slerp(a, b, 0.5)
    assert abs(float(middle.norm() / a.norm()) - 1) < 0.05  # a straight line would lose ~30 % of the norm
    assert float(torch.lerp(a, b, 0.5).norm() / a.norm()) < 0.75


@pytest.mark.parametrize("scheduler", ["dpm++", "ddim", "euler"])
def test_stop_at_decodes_the_predicted_x0_and_is_recorded(tiny_sd_dir, scheduler):
    plain = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(steps=4, scheduler=scheduler), device="cpu")
    early = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(steps=4, scheduler=scheduler, stop_at=0.5),
                                        device="cpu")
    a, b = plain.generate([A], [5])[0].pixels, early.generate([A], [5])[0].pixels
    assert np.isfinite(b).all() and np.abs(a - b).max() > 1e-3
    assert "stop_at" not in plain.provenance and early.provenance["stop_at"] == 0.5
    np.testing.assert_array_equal(plain.generate([A], [5])[0].pixels, a)  # the scheduler is itself again


def test_a_recipe_interpolates_and_records_both_seeds_and_the_weight(tiny_sd_dir, tiny_clip_dir, tmp_path):
    from pairsynth.generate import generate_dataset
    from tests.helpers import tiny_recipe

    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir, captions=[A, B], k=1, max_attempts=1, seed=3,
                         interpolate={"between": [[A, B]], "steps": 3, "what": "both"}, output={"report": False})
    generate_dataset(recipe, tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    plain = {row["caption"]: row for row in rows if "interpolation" not in row}
    points = sorted((row for row in rows if "interpolation" in row), key=lambda r: r["interpolation"]["weight"])
    assert [p["interpolation"]["weight"] for p in points] == [0.0, 0.5, 1.0]
    assert all(p["interpolation"]["seeds"] == [derive_seed(3, A, 0), derive_seed(3, B, 0)] for p in points)
    assert [p["caption"] for p in points] == [A, B, B]  # a point is judged as its nearer endpoint
    for point, end in ((points[0], plain[A]), (points[2], plain[B])):  # the endpoints are the plain samples,
        # judged in another batch: equal up to the float noise of batch composition
        assert point["scores"]["clip"]["cosine"] == pytest.approx(end["scores"]["clip"]["cosine"], abs=1e-4)
        assert point["scores"]["clip"]["rank"] == end["scores"]["clip"]["rank"]
    assert len({row["key"] for row in rows}) == len(rows) == 5
    generate_dataset(recipe, tmp_path / "out")  # complete: a re-run adds nothing
    assert len((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()) == 5
