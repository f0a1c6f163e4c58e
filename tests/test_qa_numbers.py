"""The QA report's numbers, pinned on hand-made vectors: ranks, duplicate groups, sweep, gate, groups."""

from __future__ import annotations

import numpy as np
import pytest

from pairsynth.alignment import qa


def unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_small_caption_sets_are_used_whole_and_sorted():
    assert qa.distractor_pool(["b", "a", "c", "a"], count=5, seed=0) == ["a", "b", "c"]
    assert qa.distractors_for("b", ["a", "b", "c"], 5) == ["a", "c"]


def test_the_pool_is_seeded_sized_and_independent_of_reading_order():
    captions = [f"caption {i}" for i in range(50)]
    pool = qa.distractor_pool(captions, count=10, seed=3)
    assert len(pool) == 11 and len(set(pool)) == 11 and set(pool) <= set(captions)
    assert qa.distractor_pool(list(reversed(captions)), count=10, seed=3) == pool
    assert qa.distractor_pool(captions, count=10, seed=4) != pool
    # every pair gets exactly `count` distractors, never its own caption
    for caption in captions:
        mine = qa.distractors_for(caption, pool, 10)
        assert len(mine) == 10 and caption not in mine
    with pytest.raises(ValueError, match="at least 1"):
        qa.distractor_pool(captions, count=0, seed=0)


def brute_force_rank(sample, cosine, caption, pool, pool_features, count):
    mine = qa.distractors_for(caption, pool, count)
    sims = [float(sample @ pool_features[pool.index(text)]) for text in mine]
    return 1 + sum(s > cosine for s in sims), len(mine), (mine[int(np.argmax(sims))] if mine else None)


def test_ranks_match_a_brute_force_count_of_better_distractors():
    rng = np.random.default_rng(0)
    pool = [f"c{i}" for i in range(8)]
    pool_features = unit(rng.normal(size=(8, 6)))
    samples = unit(rng.normal(size=(30, 6)))
    captions = [pool[i % 8] if i % 3 else "not in the pool" for i in range(30)]
    own = unit(rng.normal(size=(30, 6)))
    cosines = np.einsum("nd,nd->n", samples, own)
    ranks = qa.own_caption_ranks(samples, cosines, captions, pool, pool_features, count=6)
    for i in range(30):
        rank, counted, best = brute_force_rank(samples[i], cosines[i], captions[i], pool, pool_features, 6)
        assert (ranks.rank[i], ranks.distractors[i], pool[ranks.best[i]]) == (rank, counted, best)
        assert ranks.best_cosine[i] == pytest.approx(float(samples[i] @ pool_features[ranks.best[i]]))


def test_a_tie_with_a_distractor_does_not_lower_the_rank():
    features = unit([[1, 0], [1, 0]])
    ranks = qa.own_caption_ranks(features[:1], np.array([1.0]), ["a"], ["a", "b"], features, count=5)
    assert ranks.rank[0] == 1 and ranks.distractors[0] == 1  # "b" ties; only strictly better counts


def test_a_pair_with_no_distractor_has_rank_one_and_no_best():
    ranks = qa.own_caption_ranks(unit([[1, 0]]), np.array([0.2]), ["a"], ["a"], unit([[0, 1]]), count=5)
    assert ranks.rank[0] == 1 and ranks.distractors[0] == 0 and ranks.best[0] == -1


def test_duplicate_groups_are_connected_components_largest_first():
    angle = np.deg2rad([0.0, 4.0, 8.0, 90.0, 180.0, 180.0, 135.0])  # 0≈4≈8 chain; 180 twice
    features = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)
    threshold = float(np.cos(np.deg2rad(5.0)))  # 0–4 and 4–8 are within 5°, 0–8 is not
    assert qa.duplicate_groups(features, threshold) == [[0, 1, 2], [4, 5]]


def test_duplicate_search_in_small_blocks_finds_the_same_groups(monkeypatch):
    rng = np.random.default_rng(1)
    base = unit(rng.normal(size=(40, 8)))
    features = unit(np.concatenate([base, base[:10] + 1e-3 * rng.normal(size=(10, 8))]))
    expected = qa.duplicate_groups(features, 0.999)
    monkeypatch.setattr(qa, "SIMILARITY_BLOCK_BYTES", 4 * 50 * 3)  # three rows per block
    assert qa.duplicate_groups(features, 0.999) == expected
    assert sorted(map(sorted, expected)) == sorted([[i, 40 + i] for i in range(10)])
    assert qa.duplicate_groups(features[:1], 0.5) == []


def test_histogram_bins_close_at_the_top():
    edges, counts = qa.score_histogram([0.0, 1.9, 2.0, 99.9, 100.0], bins=50)
    assert edges[0] == 0.0 and edges[-1] == 100.0 and len(counts) == 50
    assert counts[0] == 2 and counts[1] == 1 and counts[-1] == 2 and sum(counts) == 5  # [0, 2), [2, 4) … [98, 100]


def test_sweep_keeps_scores_at_or_above_the_threshold_out_of_all_pairs():
    assert qa.threshold_sweep([10.0, 20.0, 30.0], total=4, thresholds=[0, 20, 20.5, 31]) == [0.75, 0.5, 0.25, 0.0]
    assert qa.threshold_sweep([], total=0, thresholds=[0, 50]) == [0.0, 0.0]


def test_gate_passes_at_exactly_the_share_asked_for():
    assert qa.gate_passes(qa.pass_rate(9, 10), 0.9) is True
    assert qa.gate_passes(qa.pass_rate(8, 10), 0.9) is False
    assert qa.gate_passes(qa.pass_rate(0, 0), 0.0) is False  # an empty dataset never passes a gate
    assert qa.gate_passes(0.5, None) is None


def test_group_stats_put_the_worst_group_first():
    stats = qa.group_stats(["cat", "dog", "cat", "dog", "dog"], [True, False, False, True, True],
                           [40.0, 10.0, 20.0, None, 30.0], [1, 2, 3, None, 1])
    assert [s.group for s in stats] == ["cat", "dog"]
    cat, dog = stats
    assert (cat.pairs, cat.passed, cat.pass_rate, cat.mean_score, cat.top1) == (2, 1, 0.5, 30.0, 0.5)
    assert (dog.pairs, dog.passed, dog.mean_score, dog.top1) == (3, 2, 20.0, 0.5)


def test_worst_and_best_never_overlap():
    assert qa.worst_and_best([5.0, 1.0, 3.0, 9.0, 7.0], 2) == ([1, 2], [3, 4])
    assert qa.worst_and_best([5.0, 1.0, 3.0], 12) == ([1, 2], [0])  # few pairs: split in halves
    assert qa.worst_and_best([], 3) == ([], [])
