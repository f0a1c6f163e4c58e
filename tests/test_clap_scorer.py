"""The CLAP scorer against transformers' ClapModel computed directly, and its determinism."""

from __future__ import annotations

import logging
import shutil

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from pairsynth.alignment.clap_scorer import ClapScorer
from pairsynth.modalities.text_to_audio import GeneratedAudio
from pairsynth.audio_io import read_audio
from pairsynth.errors import ModelRefError

CAPTIONS = ["a high beeping tone", "a low steady tone on the left", "a dog barking"]


def _clip(seed: int, rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    """A chirp plus noise: broadband enough that resampling and crops visibly matter."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (300 + 700 * seed) * t * (1 + t)) + 0.05 * rng.standard_normal(t.shape)
    return np.stack([tone * (1 - 0.5 * c) for c in range(channels)]).astype(np.float32)


@pytest.fixture(scope="module")
def scorer(tiny_clap_dir):
    return ClapScorer.from_pretrained(f"local:{tiny_clap_dir}", batch_size=2)


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    """Clips shorter than the tiny model's 1 s window, at three rates, one of them stereo."""
    folder = tmp_path_factory.mktemp("clips")
    specs = [(16_000, 0.5, 1), (44_100, 0.8, 2), (48_000, 0.3, 1), (22_050, 0.6, 2), (16_000, 0.9, 1)]
    paths = []
    for seed, (rate, seconds, channels) in enumerate(specs):
        path = folder / f"clip{seed}.wav"
        sf.write(path, _clip(seed, rate, seconds, channels).T, rate, subtype="FLOAT")
        paths.append(path)
    return paths


def test_scores_equal_clap_model_computed_directly(scorer, audio_files, tiny_clap_dir):
    from transformers import ClapModel, ClapProcessor

    model = ClapModel.from_pretrained(tiny_clap_dir).eval()
    processor = ClapProcessor.from_pretrained(tiny_clap_dir)
    rate = processor.feature_extractor.sampling_rate
    captions = [CAPTIONS[i % 3] for i in range(len(audio_files))]
    # The reference path: librosa's own loader (mono, soxr_hq) and the model's documented calls.
    clips = [librosa.load(path, sr=rate, mono=True)[0] for path in audio_files]
    with torch.no_grad():
        inputs = processor.feature_extractor(clips, sampling_rate=rate, truncation="rand_trunc", return_tensors="pt")
        audio = model.get_audio_features(input_features=inputs["input_features"].float()).pooler_output
        text = model.get_text_features(**processor.tokenizer(captions, padding=True, return_tensors="pt")).pooler_output
    expected = torch.nn.functional.cosine_similarity(audio, text).numpy()
    scores = scorer.score_pairs([read_audio(path) for path in audio_files], captions)
    error = np.abs(np.array([s.cosine for s in scores]) - expected).max()
    assert error <= 1e-5, error
    assert all(s.judge == "clap" and s.model == f"local:{tiny_clap_dir}" for s in scores)


def test_a_clip_scores_the_same_in_any_batch_and_order(scorer, audio_files):
    clips = [read_audio(path) for path in audio_files]
    together = scorer.embed_audio(clips)
    alone = np.concatenate([scorer.embed_audio([clip]) for clip in clips])
    reordered = scorer.embed_audio(clips[::-1])[::-1]
    assert np.abs(together - alone).max() < 1e-5 and np.abs(together - reordered).max() < 1e-5
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_long_clips_are_center_cropped_deterministically(scorer):
    window = scorer.feature_extractor.nb_max_samples  # 1 s at 48 kHz in the tiny model
    long_clip = _clip(7, 48_000, 1.7)
    first, second = scorer.embed_audio([(long_clip, 48_000)]), scorer.embed_audio([(long_clip, 48_000)])
    assert np.array_equal(first, second)
    start = (long_clip.shape[1] - window) // 2
    cropped = scorer.embed_audio([(long_clip[0, start : start + window], 48_000)])
    assert np.abs(first - cropped).max() < 1e-6


def test_rate_and_channels_are_normalised_before_features(scorer):
    clip = _clip(3, 48_000, 0.5)[0]
    at_48k = scorer.prepare((clip, 48_000))
    at_16k = scorer.prepare((librosa.resample(clip, orig_sr=48_000, target_sr=16_000), 16_000))
    stereo = scorer.prepare((np.stack([clip, clip]), 48_000))
    assert at_16k.shape == at_48k.shape == (24_000,) and np.array_equal(stereo, at_48k)
    # GeneratedAudio (the adapter's output) is accepted as a sample too.
    generated = scorer.embed_audio([GeneratedAudio(clip, 48_000)])
    assert np.abs(generated - scorer.embed_audio([(clip, 48_000)])).max() < 1e-6
    with pytest.raises(TypeError, match=r"\(waveform, sample_rate\)"):
        scorer.embed_audio([clip])


def test_text_features_are_computed_once_per_unique_caption(scorer, audio_files, monkeypatch):
    calls = []
    original = scorer.model.get_text_features
    monkeypatch.setattr(scorer.model, "get_text_features",
                        lambda **kw: calls.append(len(kw["input_ids"])) or original(**kw))
    scorer._text_cache.clear()
    clips = [read_audio(path) for path in audio_files[:2]]
    scorer.score_pairs(clips, ["a cat meowing"] * 2)
    scorer.score_pairs(clips, ["a cat meowing"] * 2)
    assert calls == [1]


def test_retrieval_rank_and_truncated_captions(scorer, audio_files, caplog):
    clip = read_audio(audio_files[0])
    long_caption = " ".join(["a high beeping tone"] * 30)
    with caplog.at_level(logging.WARNING):
        scores = scorer.score_pairs([clip, clip], [CAPTIONS[0], long_caption], distractors=CAPTIONS)
    others = scorer.embed_audio([clip]) @ scorer.embed_texts(CAPTIONS[1:]).T
    assert scores[0].distractors == 2 and scores[0].rank == 1 + int((others > scores[0].cosine).sum())
    assert scores[1].caption_truncated and not scores[0].caption_truncated and "truncated" in caplog.text


def test_fused_models_are_deterministic_and_batch_independent(tmp_path, audio_files):
    from tests.dummy_audio_components import save_tiny_clap

    fused = ClapScorer.from_pretrained(str(save_tiny_clap(tmp_path, enable_fusion=True)))
    assert fused.truncation == "fusion"
    clips = [read_audio(path) for path in audio_files[:3]] + [(_clip(9, 48_000, 2.5)[0], 48_000)]
    together = fused.embed_audio(clips)
    alone = np.concatenate([fused.embed_audio([clip]) for clip in clips])
    assert np.abs(together - alone).max() < 1e-5
    assert np.array_equal(fused.embed_audio(clips[-1:]), fused.embed_audio(clips[-1:]))
    state = np.random.get_state()[1].copy()
    fused.embed_audio(clips[-1:])
    assert np.array_equal(np.random.get_state()[1], state)  # the global numpy RNG is left as it was


def test_bf16_autocast_stays_close_to_fp32(tiny_clap_dir, scorer, audio_files):
    fast = ClapScorer.from_pretrained(str(tiny_clap_dir), precision="bf16")
    clips = [read_audio(path) for path in audio_files]
    exact = [s.cosine for s in scorer.score_pairs(clips, [CAPTIONS[0]] * len(clips))]
    approx = [s.cosine for s in fast.score_pairs(clips, [CAPTIONS[0]] * len(clips))]
    assert np.abs(np.array(exact) - np.array(approx)).max() < 0.05


def test_bad_references_and_missing_tokenizers_fail_clearly(tmp_path, tiny_clap_dir):
    with pytest.raises(ModelRefError, match="does not exist"):
        ClapScorer.from_pretrained(f"local:{tmp_path / 'missing'}")
    with pytest.raises(ModelRefError, match="open_clip"):
        ClapScorer.from_pretrained("open_clip:ViT-B-32/laion2b_s34b_b79k")
    broken = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_clap_dir, broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ModelRefError, match="tokenizer has 5 tokens"):
        ClapScorer.from_pretrained(str(broken))
    with pytest.raises(ValueError, match="precision"):
        ClapScorer.from_pretrained(str(tiny_clap_dir), precision="int8")
