"""The probe's numbers: paired t intervals on known inputs, stratified splits and nested few-shot draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pairsynth.probe.errors import SplitError
from pairsynth.probe.splits import few_shot_draws, stratified_split
from pairsynth.probe.stats import condition_table, paired_gain, spread

T_975_DF4 = 2.7764451051977987  # Student t, 97.5th percentile, 4 degrees of freedom (tables: 2.776)


def test_paired_gain_is_a_t_interval_over_the_differences():
    baseline = [0.80, 0.70, 0.90, 0.60, 0.75]
    gain = paired_gain([b + d for b, d in zip(baseline, [0.01, 0.02, 0.03, 0.04, 0.05])], baseline)
    # differences 1..5 points: mean 3, sd sqrt(2.5), sem sqrt(0.5) points
    half = T_975_DF4 * math.sqrt(0.5) / 100
    assert gain.mean == pytest.approx(0.03)
    assert (gain.low, gain.high) == (pytest.approx(0.03 - half), pytest.approx(0.03 + half))
    assert gain.draws == 5 and gain.wins == 5 and gain.above_zero
    assert gain.p_value == pytest.approx(0.0132, abs=5e-4)  # t = 3 / sqrt(0.5) = 4.243, df 4


def test_pairing_finds_a_gain_the_two_spreads_hide():
    baseline = [0.50, 0.90, 0.60, 0.80, 0.70, 0.55]
    better = [b + 0.02 for b in baseline]
    better[0] += 0.01
    assert spread(better).std > 0.1  # the accuracies overlap widely …
    assert paired_gain(better, baseline).above_zero  # … but every draw gained


def test_no_interval_from_one_draw_and_a_zero_width_one_from_constant_differences():
    one = paired_gain([0.9], [0.8])
    assert one.low is None and one.high is None and not one.above_zero and one.draws == 1
    constant = paired_gain([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])
    assert constant.low == pytest.approx(0.1) and constant.high == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same non-zero number of draws"):
        paired_gain([0.9, 0.8], [0.8])


def test_condition_table_compares_with_the_best_baseline():
    runs = {"real": [{"acc": 0.5}, {"acc": 0.6}], "real+classic": [{"acc": 0.7}, {"acc": 0.8}],
            "real+syn": [{"acc": 0.75}, {"acc": 0.9}]}
    table = condition_table(runs, ["acc"], ["real", "real+classic"])
    assert table["baseline"]["acc"] == "real+classic" and table["draws"] == 2
    gain = table["gains"]["acc"]["real+syn"]
    assert gain["over"] == "real+classic" and gain["mean"] == pytest.approx(0.075)
    assert gain["over_real"]["mean"] == pytest.approx(0.275)
    assert table["metrics"]["acc"]["real"] == {"mean": pytest.approx(0.55), "std": pytest.approx(0.0707, abs=1e-4),
                                              "draws": 2}


def test_split_is_stratified_and_draws_are_nested_and_balanced():
    labels = ["a"] * 40 + ["b"] * 20 + ["c"] * 10
    split = stratified_split(labels, test_fraction=0.5, seed=0)
    test_labels = [labels[i] for i in split.test]
    assert (test_labels.count("a"), test_labels.count("b"), test_labels.count("c")) == (20, 10, 5)
    assert not set(split.test) & set(split.train)
    draws = few_shot_draws(labels, split.train, (1, 3), draws=4, seed=0)
    for small, large in zip(draws[1], draws[3]):
        assert set(small) <= set(large) and set(large) <= set(split.train)
        assert sorted(labels[i] for i in large) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert len({tuple(d) for d in draws[3]}) == 4  # four different draws
    assert [d.tolist() for d in few_shot_draws(labels, split.train, (1, 3), 4, 0)[3]] == [d.tolist() for d in draws[3]]


def test_a_class_with_one_example_cannot_be_split():
    with pytest.raises(SplitError, match="class 'c' has one real example"):
        stratified_split(["a"] * 4 + ["b"] * 4 + ["c"], test_fraction=0.5, seed=0)
