"""DA-Fusion mixing: the replacement rate, class preservation, seeding and provenance, in PyTorch and `datasets`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

from pairsynth.probe import MixingSampler, mix_datasets, mixing_plan
from pairsynth.probe.errors import MissingClassError

REAL = ["cat", "dog", "bird"] * 400  # 1,200 real examples
SYNTHETIC = ["cat"] * 30 + ["dog"] * 20 + ["bird"] * 10


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 1.0])
def test_each_real_example_is_replaced_with_probability_p(p):
    shares = [mixing_plan(REAL, SYNTHETIC, p=p, rng=np.random.default_rng(seed))[0].mean() for seed in range(5)]
    # 6,000 Bernoulli(p) flips: the standard error is at most 0.0065, so 0.03 is > 4.5 of them
    assert np.mean(shares) == pytest.approx(p, abs=0.03)


def test_a_replacement_is_always_of_the_same_class_and_every_real_slot_is_visited_once():
    is_synthetic, index = mixing_plan(REAL, SYNTHETIC, p=0.5, rng=np.random.default_rng(0))
    assert len(index) == len(REAL)
    assert sorted(index[~is_synthetic].tolist()) == sorted(set(index[~is_synthetic].tolist()))
    labels = [SYNTHETIC[i] if s else REAL[i] for s, i in zip(is_synthetic, index)]
    assert sorted(labels) == sorted(REAL)  # the class balance of the real data is kept exactly
    used = index[is_synthetic]
    assert len(set(used.tolist())) == len(SYNTHETIC)  # 600 draws reach all 60 synthetic examples


def test_sampler_is_seeded_per_epoch_and_reports_provenance():
    sampler = MixingSampler(REAL, SYNTHETIC, p=0.5, seed=3, real_keys=[f"r{i}" for i in range(len(REAL))],
                            synthetic_keys=[f"s{i}" for i in range(len(SYNTHETIC))])
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    again = MixingSampler(REAL, SYNTHETIC, p=0.5, seed=3)
    assert list(again) == first
    origin = sampler.provenance(len(REAL) + 7)
    assert (origin.origin, origin.index, origin.key) == ("synthetic", 7, "s7")
    assert sampler.provenance(5).key == "r5" and sampler.label(len(REAL)) == "cat"


def test_sampler_drives_a_plain_dataloader_over_a_concat_dataset():
    classes = {"cat": 0, "dog": 1, "bird": 2}
    real = TensorDataset(torch.zeros(len(REAL)), torch.tensor([classes[c] for c in REAL]))
    synthetic = TensorDataset(torch.ones(len(SYNTHETIC)), torch.tensor([classes[c] for c in SYNTHETIC]))
    sampler = MixingSampler(REAL, SYNTHETIC, p=0.5, seed=0)
    loader = DataLoader(ConcatDataset([real, synthetic]), batch_size=100, sampler=sampler)
    origins = torch.cat([x for x, _ in loader])
    labels = torch.cat([y for _, y in loader])
    assert len(origins) == len(REAL) and origins.mean().item() == pytest.approx(0.5, abs=0.05)
    assert torch.bincount(labels).tolist() == [400, 400, 400]


def test_a_class_without_synthetic_examples_raises_or_stays_real():
    with pytest.raises(MissingClassError, match="class 'fish' has no synthetic example"):
        MixingSampler(["fish", "cat"], ["cat"], p=0.5)
    is_synthetic, index = mixing_plan(["fish"] * 50 + ["cat"] * 50, ["cat"], p=1.0, rng=np.random.default_rng(0),
                                      shuffle=False, strict=False)
    assert not is_synthetic[:50].any() and is_synthetic[50:].all()
    assert list(MixingSampler(["fish", "cat"], [], p=0.0, seed=0)) in ([0, 1], [1, 0])  # p = 0 needs no synthetic data


def test_datasets_mixer_returns_a_dataset_with_provenance_columns():
    import datasets

    names = datasets.ClassLabel(names=["cat", "dog", "bird"])
    features = datasets.Features({"x": datasets.Value("int64"), "label": names, "key": datasets.Value("string")})
    real = datasets.Dataset.from_dict({"x": list(range(300)), "label": [names.str2int(c) for c in REAL[:300]],
                                       "key": [f"real-{i}" for i in range(300)]}, features=features)
    synthetic = datasets.Dataset.from_dict({"x": [-1] * len(SYNTHETIC), "label": [names.str2int(c) for c in SYNTHETIC],
                                            "key": [f"syn-{i}" for i in range(len(SYNTHETIC))]}, features=features)
    mixed = mix_datasets(real, synthetic, p=0.5, seed=0, epochs=2, key_column="key")
    assert isinstance(mixed, datasets.Dataset) and len(mixed) == 600
    rows = mixed.to_list()
    synthetic_rows = [r for r in rows if r["origin"] == "synthetic"]
    assert len(synthetic_rows) / len(rows) == pytest.approx(0.5, abs=0.07)
    assert all(r["x"] == -1 and r["source_key"] == r["key"] and r["source_key"].startswith("syn-") for r in synthetic_rows)
    assert sorted(r["label"] for r in rows) == sorted([names.str2int(c) for c in REAL[:300]] * 2)
    # the same plan as the torch sampler's epochs
    sampler = MixingSampler([names.int2str(v) for v in real["label"]], SYNTHETIC, p=0.5, seed=0)
    assert [r["origin"] == "synthetic" for r in rows[:300]] == [i >= 300 for i in sampler]
    streamed = next(iter(mixed.to_iterable_dataset()))
    assert set(streamed) == {"x", "label", "key", "origin", "source_key"}


def test_classic_image_augmentation_fills_uncovered_corners_with_the_background():
    import torch

    from pairsynth.probe.augmentation import augment_images, image_augmentation

    white = torch.ones(16, 3, 32, 32)
    white[:, :, 12:20, 14:18] = 0.0  # a dark stroke on white, like handwriting
    torch.manual_seed(0)
    out = augment_images(white, image_augmentation(32))
    corners = torch.cat([out[:, :, :2, :2], out[:, :, :2, -2:], out[:, :, -2:, :2], out[:, :, -2:, -2:]])
    assert float(corners.min()) > 0.9  # black fill would put ink-coloured corners on rotated images
    assert float((out < 0.5).float().mean()) > 0.01  # the stroke survives
