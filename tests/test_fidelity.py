"""Fidelity and diversity numbers on point sets whose answers are known."""

import numpy as np
import pytest

from pairsynth.alignment import fidelity


def _cloud(n: int, dim: int = 16, seed: int = 0, offset: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)) + offset


def test_identical_sets_score_perfectly():
    real = _cloud(200)
    result = fidelity.compare_sets(real, real.copy(), nearest_k=5)
    assert result.precision == 1.0 and result.recall == 1.0 and result.coverage == 1.0
    assert result.density == pytest.approx(1.0, abs=0.05)  # each point sits in its own ball and ~k others'
    assert result.frechet == pytest.approx(0.0, abs=1e-6)


def test_disjoint_sets_score_zero_and_far():
    real, far = _cloud(150, seed=1), _cloud(150, seed=2, offset=50.0)
    result = fidelity.compare_sets(real, far, nearest_k=5)
    assert (result.precision, result.recall, result.density, result.coverage) == (0.0, 0.0, 0.0, 0.0)
    # the means differ by 50 in each of 16 dimensions: ‖Δμ‖² = 16·2500, covariances alike
    assert result.frechet == pytest.approx(16 * 2500, rel=0.02)


def test_frechet_of_known_gaussians():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(20_000, 2))
    b = rng.normal(size=(20_000, 2)) * 2.0 + np.array([3.0, 0.0])
    # ‖Δμ‖² = 9, Tr(I + 4I − 2·2I) = 2
    assert fidelity.frechet_distance(a, b) == pytest.approx(11.0, rel=0.03)


def test_collapsed_set_has_precision_but_no_recall_or_diversity():
    real = _cloud(200, seed=4)
    collapsed = np.repeat(real[:1], 200, axis=0) + 1e-4 * _cloud(200, seed=5)
    result = fidelity.compare_sets(real, collapsed, nearest_k=5)
    assert result.precision == 1.0  # every sample lies on the real manifold…
    assert result.coverage < 0.05 and result.recall < 0.05  # …but covers one point of it
    assert fidelity.vendi_score(collapsed) == pytest.approx(1.0, abs=0.01)
    assert fidelity.mean_pairwise_cosine(collapsed) == pytest.approx(1.0, abs=1e-3)


def test_vendi_counts_distinct_directions():
    assert fidelity.vendi_score(np.eye(7)) == pytest.approx(7.0)
    assert fidelity.vendi_score(np.repeat(np.eye(3), 4, axis=0)) == pytest.approx(3.0)  # 3 modes, 4 copies each
    assert fidelity.mean_pairwise_cosine(np.eye(5)) == pytest.approx(0.0)


def test_per_group_comparison_flags_only_the_collapsed_group():
    real_a, real_b = _cloud(40, seed=6), _cloud(40, seed=7)
    fine = _cloud(40, seed=8)
    collapsed = np.repeat(real_b[:1], 40, axis=0) + 1e-3 * _cloud(40, seed=10)
    result = fidelity.compare_with_reference(
        np.concatenate([fine, collapsed, _cloud(3, seed=11)]), ["a"] * 40 + ["b"] * 40 + ["c"] * 3,
        np.concatenate([real_a, real_b]), ["a"] * 40 + ["b"] * 40)
    assert set(result.per_group) == {"a", "b"}
    assert result.skipped_groups == {"c": "not in the reference set"}
    assert result.collapsed == ["b"]
    by_group = {d.group: d for d in result.diversity}
    assert by_group["a"].vendi > 10 and by_group["b"].vendi < 1.5
    a, b = result.per_group["a"], result.per_group["b"]
    assert a.recall > 0.5 and b.recall < 0.1 and b.coverage < a.coverage / 2
    summary = result.as_dict()
    assert summary["mode_collapse"] == ["b"] and summary["overall"]["synthetic"] == 83


def test_too_few_samples_is_a_clear_error():
    with pytest.raises(ValueError, match="synthetic set has 3 samples"):
        fidelity.prdc_scores(_cloud(20), _cloud(3), nearest_k=5)
