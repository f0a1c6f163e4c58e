"""Acceptance filters and output checks are pure functions: pinned here case by case."""

from __future__ import annotations

import numpy as np

import pytest

from pairsynth.alignment.acceptance import AcceptanceRule, Decision, check_pair, decide_for_caption, ranking_value
from pairsynth.alignment.image_checks import image_problem
from pairsynth.alignment.scores import PairScores


def scores(cosine: float, rank: int | None = 1, judge: str = "clip") -> dict[str, PairScores]:
    return {judge: PairScores(judge=judge, model="m", cosine=cosine, rank=rank, distractors=3, best_distractor="x",
                              best_distractor_cosine=0.5)}


def test_threshold_is_in_clip_score_units():
    rule = AcceptanceRule(min_scores={"clip": 25.0}, max_rank=None)
    assert check_pair(scores(0.26), rule).accepted
    rejected = check_pair(scores(0.24), rule)
    assert (rejected.accepted, rejected.reason) == (False, "below_threshold")
    assert "CLIPScore 24.00 < 25.00" in rejected.detail
    assert check_pair(scores(0.24, judge="clap"), rule).accepted  # no CLAP threshold set


def test_retrieval_rank_must_not_exceed_max_rank():
    assert check_pair(scores(0.3, rank=1), AcceptanceRule(max_rank=1)).accepted
    rejected = check_pair(scores(0.3, rank=2), AcceptanceRule(max_rank=1))
    assert rejected.reason == "retrieval_rank" and "clip: own caption ranks 2 of 4" in rejected.detail
    assert check_pair(scores(0.3, rank=2), AcceptanceRule(max_rank=2)).accepted
    assert check_pair(scores(0.3, rank=None), AcceptanceRule(max_rank=1)).accepted  # no distractors


def test_first_passing_candidates_win_in_index_order():
    ok, bad = Decision(True, "accepted"), Decision.reject("below_threshold")
    decisions = decide_for_caption([bad, ok, ok, ok], [0.1, 0.2, 0.9, 0.5], needed=2, rule=AcceptanceRule())
    assert [d.reason for d in decisions] == ["below_threshold", "accepted", "accepted", "caption_complete"]


def test_top_k_keeps_the_best_scoring_passing_candidates():
    ok, bad = Decision(True, "accepted"), Decision.reject("blank_image")
    decisions = decide_for_caption([ok, ok, bad, ok], [0.2, 0.9, float("-inf"), 0.5], needed=2, rule=AcceptanceRule(top_k=True))
    assert [d.reason for d in decisions] == ["not_in_top_k", "accepted", "blank_image", "accepted"]


def test_nan_blank_and_misshapen_images_are_caught():
    image = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    assert image_problem(image) is None
    with_nan = image.copy()
    with_nan[0, 0, 0] = np.nan
    assert image_problem(with_nan)[0] == "nan_output"
    assert image_problem(np.zeros((8, 8, 3), np.float32))[0] == "blank_image"
    assert image_problem(np.full((8, 8, 3), 0.7, np.float32))[0] == "blank_image"
    assert image_problem(np.zeros((8, 8), np.float32))[0] == "bad_shape"


def test_a_triplet_must_pass_every_judge():
    both = {**scores(0.3), **scores(0.1, judge="clap")}
    rule = AcceptanceRule(min_scores={"clip": 20.0, "clap": 20.0}, max_rank=None)
    rejected = check_pair(both, rule)
    assert rejected.reason == "below_threshold" and rejected.detail.startswith("CLAPScore 10.00")
    assert ranking_value(both) == pytest.approx(0.2)
