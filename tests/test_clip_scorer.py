"""The CLIP scorer against open_clip computed directly, caching, truncation and retrieval ranks."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from pairsynth.alignment.clip_scorer import ClipScorer
from pairsynth.alignment.scores import clip_score

CAPTIONS = ["a red circle on the left", "a blue square on the right", "a photo of a cat"]


@pytest.fixture(scope="module")
def scorer(tiny_clip_dir):
    return ClipScorer.from_pretrained(f"local-dir:{tiny_clip_dir}", batch_size=2)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(5)]


def test_scores_equal_open_clip_computed_directly(scorer, images, tiny_clip_dir):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tiny_clip_dir}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tiny_clip_dir}")
    captions = [CAPTIONS[i % 3] for i in range(5)]
    with torch.no_grad():
        image_features = model.encode_image(torch.stack([preprocess(image) for image in images]), normalize=True)
        text_features = model.encode_text(tokenizer(captions), normalize=True)
    expected = (image_features * text_features).sum(-1).numpy()
    scores = scorer.score_pairs(images, captions)
    assert np.allclose([s.cosine for s in scores], expected, atol=1e-5)
    assert all(s.score == pytest.approx(clip_score(s.cosine)) for s in scores)
    assert scores[0].as_dict()["score_unit"].startswith("CLIPScore = 100 * max(cosine, 0)")


def test_text_features_are_computed_once_per_unique_caption(scorer, images, monkeypatch):
    calls = []
    original = scorer.model.encode_text
    monkeypatch.setattr(scorer.model, "encode_text", lambda tokens, **kw: calls.append(len(tokens)) or original(tokens, **kw))
    scorer._text_cache.clear()
    scorer.score_pairs(images, ["a photo of a dog"] * 5)
    scorer.score_pairs(images, ["a photo of a dog"] * 5)
    assert calls == [1]


def test_the_text_cache_keeps_the_most_recent_captions_only_and_changes_no_embedding(scorer, monkeypatch):
    import pairsynth.alignment.embedding_scorer as embedding_scorer

    monkeypatch.setattr(embedding_scorer, "TEXT_CACHE_SIZE", 2)
    scorer._text_cache.clear()
    texts = [f"caption {i}" for i in range(5)]
    first = scorer.embed_texts(texts + texts[:1])  # more unique captions than the cache holds, in one call
    assert len(scorer._text_cache) == 2 and list(scorer._text_cache) == texts[3:]
    assert np.array_equal(first[0], first[-1])
    scorer.embed_texts(texts[3:4])  # used again: now the most recent
    assert list(scorer._text_cache) == [texts[4], texts[3]]
    assert np.allclose(scorer.embed_texts(texts), first[:5], atol=1e-6)  # evicted ones are encoded again


def test_retrieval_rank_counts_distractors_that_score_higher(scorer, images):
    scores = scorer.score_pairs(images[:1], [CAPTIONS[0]], distractors=CAPTIONS)
    own = scores[0].cosine
    others = scorer.embed_images(images[:1]) @ scorer.embed_texts(CAPTIONS[1:]).T
    assert scores[0].distractors == 2  # its own caption is not its own distractor
    assert scores[0].rank == 1 + int((others > own).sum())
    assert scores[0].best_distractor_cosine == pytest.approx(float(others.max()), abs=1e-6)


def test_long_captions_are_truncated_with_a_recorded_warning(scorer, images, caplog):
    long_caption = " ".join(["a red circle on the left"] * 40)
    with caplog.at_level(logging.WARNING):
        scores = scorer.score_pairs(images[:2], [long_caption, CAPTIONS[0]], distractors=CAPTIONS)
    assert scores[0].caption_truncated and not scores[1].caption_truncated
    assert "truncated" in caplog.text


def test_bf16_autocast_stays_close_to_fp32(tiny_clip_dir, images, scorer):
    fast = ClipScorer.from_pretrained(f"local-dir:{tiny_clip_dir}", precision="bf16")
    exact = [s.cosine for s in scorer.score_pairs(images, [CAPTIONS[0]] * 5)]
    approx = [s.cosine for s in fast.score_pairs(images, [CAPTIONS[0]] * 5)]
    assert np.abs(np.array(exact) - np.array(approx)).max() < 0.05


@pytest.mark.parametrize("speedup, chosen", [(4.0, "bf16"), (0.6, "fp32")])
def test_auto_precision_takes_bf16_only_where_it_was_measured_faster(tiny_clip_dir, monkeypatch, speedup, chosen):
    from pairsynth import devices

    monkeypatch.setattr(devices, "bf16_speedup", lambda device_type="cpu": speedup)
    assert ClipScorer.from_pretrained(f"local-dir:{tiny_clip_dir}", precision="auto").precision == chosen


def test_the_bf16_measurement_is_a_positive_ratio():
    from pairsynth.devices import bf16_speedup

    assert bf16_speedup("cpu") > 0.0
