"""The shipped sounds zoo really works: the toy CLAP tells matched from mismatched clips, the toy
text→audio model follows its captions, and the QA report finds deliberately swapped captions."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import soundfile as sf

from pairsynth.alignment.acceptance import AcceptanceRule, check_pair
from pairsynth.alignment.clap_scorer import ClapScorer
from pairsynth.world.sounds import all_captions, one_attribute_off, render_sample

CAPTIONS = all_captions()
RULE = AcceptanceRule(min_scores={"clap": 20.0}, max_rank=1)  # the shipped sounds recipe's rule


@pytest.fixture(scope="module")
def clap():
    return ClapScorer.from_pretrained("toy-sounds-clap")


def pass_rate(clap, clips, captions) -> float:
    scores = clap.score_pairs(clips, captions, distractors=CAPTIONS)
    return float(np.mean([check_pair({"clap": s}, RULE).accepted for s in scores]))


def test_the_clap_filter_keeps_real_matches_and_rejects_one_attribute_off(clap):
    clips, captions = [], []
    for seed in range(80):
        waveform, caption, _ = render_sample(seed)
        clips.append((waveform, 16000))
        captions.append(caption)
    rng = random.Random(0)
    wrong = [rng.choice(one_attribute_off(caption)) for caption in captions]
    assert pass_rate(clap, clips, captions) >= 0.95
    assert 1 - pass_rate(clap, clips, wrong) >= 0.95


def test_the_report_puts_every_swapped_caption_among_the_25_worst(clap, tmp_path):
    from pairsynth.score import score_dataset

    rng = random.Random(1)
    swapped = set(rng.sample(range(200), 20))
    folder = tmp_path / "toy"
    folder.mkdir()
    rows = []
    for index in range(200):
        waveform, caption, _ = render_sample(5000 + index)
        if index in swapped:
            caption = rng.choice([c for c in CAPTIONS if c != caption])
        sf.write(folder / f"{index:03d}.flac", waveform, 16000)
        rows.append({"file_name": f"{index:03d}.flac", "text": caption})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    score_dataset(folder, tmp_path / "report", scorers={"audio": clap})
    scored = [json.loads(line) for line in (tmp_path / "report" / "scores.jsonl").read_text().splitlines()]
    worst = sorted(scored, key=lambda row: row["scores"]["clap"]["score"])[:25]
    assert {f"{i:03d}" for i in swapped} <= {row["key"] for row in worst}
