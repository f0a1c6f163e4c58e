"""Bounded distractors: constant cost per sample on big caption lists, today's check on small ones.

The change, documented: with ``accept.retrieval.distractors: N`` a recipe with more than ``N + 1``
captions ranks each sample against N of them (``hard_negatives`` nearest in the judge's text space,
the rest a sample drawn with the sample's seed) and records that in the manifest's ``retrieval``;
a recipe with fewer captions keeps its fingerprint, keys and accepted set.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.fakes import FakeImageGenerator, FakeJudge
from pairsynth.alignment.embedding_scorer import BoundedDistractors
from pairsynth.errors import RecipeError
from pairsynth.generate import generate_dataset
from pairsynth.recipe import recipe_from_dict

CAPTIONS = [f"a {c} {s} {p}" for c in ("red", "green", "blue", "pink", "grey") for s in ("circle", "square")
            for p in ("up", "down", "left")]  # 30 captions


def recipe(retrieval, captions=CAPTIONS, **overrides):
    data = {"captions": captions, "k": 1, "max_attempts": 3, "seed": 5, "generator": {"model": "fake", "batch_size": 8},
            "accept": {"min_clip_score": 70.0, "retrieval": retrieval},
            "output": {"formats": ["webdataset"], "report": False, "commit_every": 16}, **overrides}
    return recipe_from_dict(data)


def run(out, retrieval, **overrides):
    summary = generate_dataset(recipe(retrieval, **overrides), out, generators={"image": FakeImageGenerator(size=32)},
                               scorers={"image": FakeJudge()})
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return summary, rows


def test_a_bound_above_the_caption_count_changes_no_fingerprint_key_or_verdict(tmp_path):
    plain, bounded = {"max_rank": 1}, {"max_rank": 1, "distractors": 64, "hard_negatives": 16}
    # the fingerprint of a recipe without the setting is the one it had before the setting existed
    assert recipe(plain, captions=["a cat", "a dog"], k=2, seed=3, max_attempts=None,
                  accept={"retrieval": {"max_rank": 2}}).fingerprint() == recipe_from_dict(
        {"captions": ["a cat", "a dog"], "k": 2, "seed": 3, "generator": {"model": "fake", "batch_size": 8},
         "accept": {"retrieval": {"max_rank": 2}}, "output": {"formats": ["webdataset"], "report": False,
                                                              "commit_every": 16}}).fingerprint()
    assert recipe_from_dict({"captions": ["a cat", "a dog"], "k": 2, "seed": 3}).fingerprint() == "13ad2a64cf635e7e"
    _, before = run(tmp_path / "plain", plain)
    _, after = run(tmp_path / "bounded", bounded)  # 30 captions ≤ 64 + 1: every pair still sees all others
    verdict = lambda rows: [(r["key"], r["accepted"], r["reason"], r["scores"]["clip"]["rank"]) for r in rows]  # noqa: E731
    assert verdict(after) == verdict(before)
    assert all("retrieval" not in row for row in after)


def test_a_bound_below_the_caption_count_ranks_each_sample_against_that_many(tmp_path):
    retrieval = {"max_rank": 1, "distractors": 8, "hard_negatives": 3}
    summary, rows = run(tmp_path / "a", retrieval)
    scored = [row for row in rows if row["scores"]]
    assert scored and all(row["scores"]["clip"]["distractors"] == 8 for row in scored)
    assert all(row["retrieval"] == {"clip": {"distractors": 8, "hard_negatives": 3, "sampled": 5, "of": 29}}
               for row in scored)
    _, again = run(tmp_path / "b", retrieval)  # seeded per sample: the same draw on every run
    assert [(r["key"], r["accepted"], r["scores"]) for r in again] == [(r["key"], r["accepted"], r["scores"]) for r in rows]
    assert recipe(retrieval).fingerprint() != recipe({"max_rank": 1}).fingerprint()


def test_hard_negatives_are_the_nearest_captions_and_the_rest_a_seeded_sample():
    judge = FakeJudge()
    picker = BoundedDistractors(CAPTIONS, count=6, hard=2, scorer=judge)
    own = CAPTIONS[4]
    chosen, record = picker.pick(own, seed=123)
    features = judge.embed_texts(CAPTIONS)
    similarity = features @ judge.embed_texts([own])[0]
    similarity[4] = -np.inf
    assert chosen[:2] == [CAPTIONS[j] for j in np.argsort(-similarity)[:2]]
    assert own not in chosen and len(set(chosen)) == 6
    assert record == {"distractors": 6, "hard_negatives": 2, "sampled": 4, "of": 29}
    assert picker.pick(own, seed=123) == (chosen, record)
    assert picker.pick(own, seed=124)[0][2:] != chosen[2:]  # another sample, another draw


def test_hard_negatives_make_the_check_stricter_than_a_uniform_draw():
    """With the nearest captions among the distractors, no sample ranks better than with a uniform draw."""
    judge = FakeJudge()
    generator = FakeImageGenerator(size=32, noise=1.2)
    images = [o.pixels for o in generator.generate(CAPTIONS, list(range(len(CAPTIONS))))]
    samples = [(np.clip(p, 0, 1) * 255).round().astype(np.uint8) for p in images]
    hard = BoundedDistractors(CAPTIONS, count=8, hard=8, scorer=judge)
    uniform = BoundedDistractors(CAPTIONS, count=8, hard=0, scorer=judge)
    rank = lambda picker: [s.rank for s in judge.score_pairs(  # noqa: E731
        samples, CAPTIONS, [picker.pick(c, seed)[0] for seed, c in enumerate(CAPTIONS)])]
    assert sum(rank(hard)) > sum(rank(uniform))


def test_hard_negatives_need_a_bound_no_larger_than_it():
    with pytest.raises(RecipeError, match="hard_negatives"):
        recipe({"hard_negatives": 4})
    with pytest.raises(RecipeError, match="cannot exceed"):
        recipe({"distractors": 4, "hard_negatives": 5})


def test_nearest_captions_are_kept_for_the_last_few_only_and_recomputed_alike(monkeypatch):
    import pairsynth.alignment.embedding_scorer as embedding_scorer

    monkeypatch.setattr(embedding_scorer, "TEXT_CACHE_SIZE", 4)
    picker = BoundedDistractors(CAPTIONS, count=6, hard=2, scorer=FakeJudge())
    first = [picker.nearest(caption) for caption in CAPTIONS]
    assert len(picker._nearest) == 4 and list(picker._nearest) == CAPTIONS[-4:]
    assert [picker.nearest(caption) for caption in CAPTIONS] == first  # evicted ones come back the same
