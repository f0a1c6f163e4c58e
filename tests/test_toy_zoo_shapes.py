"""The shipped shapes zoo really works: the toy CLIP tells matched from mismatched pairs, the toy
text→image model follows its captions, flips stay aligned only with the swapped caption, and the QA
report finds deliberately swapped captions."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from pairsynth.alignment.acceptance import AcceptanceRule, check_pair
from pairsynth.alignment.clip_scorer import ClipScorer
from pairsynth.augment import HorizontalFlip, Sample, augment
from pairsynth.world.shapes import all_captions, one_attribute_off, render_sample

CAPTIONS = all_captions()
RULE = AcceptanceRule(min_scores={"clip": 20.0}, max_rank=1)  # the shipped shapes recipe's rule


@pytest.fixture(scope="module")
def clip():
    return ClipScorer.from_pretrained("toy-shapes-clip")


def pass_rate(clip, images, captions) -> float:
    scores = clip.score_pairs(images, captions, distractors=CAPTIONS)
    return float(np.mean([check_pair({"clip": s}, RULE).accepted for s in scores]))


def test_the_clip_filter_keeps_matched_pairs_and_rejects_one_attribute_off(clip):
    images, captions = [], []
    for seed in range(96):
        image, caption, _ = render_sample(20_000 + seed)
        images.append(np.asarray(image))
        captions.append(caption)
    rng = random.Random(0)
    wrong = [rng.choice(one_attribute_off(caption)) for caption in captions]
    assert pass_rate(clip, images, captions) >= 0.95
    assert 1 - pass_rate(clip, images, wrong) >= 0.95


def test_the_toy_generator_follows_its_captions_well_enough_to_fill_a_dataset(clip):
    """Bars on the generator itself live in benchmarks/zoo_quality.py; this guards against a broken one."""
    from pairsynth.modalities.text_to_image import ImageSampling, TextToImage

    t2i = TextToImage.from_pretrained("toy-shapes", sampling=ImageSampling(steps=15, guidance_scale=4.0))
    images = [g.pixels for g in t2i.generate(CAPTIONS, list(range(len(CAPTIONS))))]
    assert pass_rate(clip, images, CAPTIONS) >= 0.6


def test_flipped_renders_pass_only_with_the_swapped_caption(clip):
    flipped, swapped, original = [], [], []
    for seed in range(120):
        image, caption, _ = render_sample(seed)
        result = augment(Sample(caption=caption, image=np.asarray(image)), HorizontalFlip(p=1.0), seed=seed)
        flipped.append(result.sample.image)
        swapped.append(result.sample.caption)
        original.append(caption)
    assert all(a != b for a, b in zip(swapped, original))
    assert pass_rate(clip, flipped, swapped) >= 0.95
    assert 1 - pass_rate(clip, flipped, original) >= 0.95


def test_the_report_puts_every_swapped_caption_among_the_25_worst(clip, tmp_path):
    from pairsynth.score import score_dataset

    rng = random.Random(1)
    swapped = set(rng.sample(range(200), 20))
    folder = tmp_path / "toy"
    folder.mkdir()
    rows = []
    for index in range(200):
        image, caption, _ = render_sample(1000 + index)
        if index in swapped:
            caption = rng.choice([c for c in CAPTIONS if c != caption])
        image.save(folder / f"{index:03d}.png")
        rows.append({"file_name": f"{index:03d}.png", "text": caption})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    score_dataset(folder, tmp_path / "report", scorers={"image": clip})
    scored = [json.loads(line) for line in (tmp_path / "report" / "scores.jsonl").read_text().splitlines()]
    worst = sorted(scored, key=lambda row: row["scores"]["clip"]["score"])[:25]
    assert {f"{i:03d}" for i in swapped} <= {row["key"] for row in worst}
