"""Audio–caption and triplet runs end to end on tiny AudioLDM + CLAP (+ SD + CLIP) models."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest
import torch
import webdataset as wds

from pairsynth.alignment.clap_scorer import ClapScorer
from pairsynth.modalities.text_to_audio import AudioSampling, GeneratedAudio, TextToAudio
from pairsynth.generate import generate_dataset
from pairsynth.recipe import recipe_from_dict

SOUNDS = ["a low steady tone", "a high steady tone", "a low beeping tone", "a high beeping tone",
          "a rising chirp", "a noise burst"]


@pytest.fixture(scope="module")
def generator(tiny_audioldm_dir):
    return TextToAudio.from_pretrained(str(tiny_audioldm_dir), sampling=AudioSampling(steps=2, guidance_scale=2.0))


@pytest.fixture(scope="module")
def scorer(tiny_clap_dir):
    return ClapScorer.from_pretrained(str(tiny_clap_dir))


def audio_recipe(tiny_audioldm_dir, tiny_clap_dir, **extra):
    return recipe_from_dict({"modality": "audio", "captions": SOUNDS, "k": 3, "seed": 1,
                             "generator": {"model": str(tiny_audioldm_dir), "steps": 2, "batch_size": 6},
                             "scorer": {"clap": str(tiny_clap_dir)}, "accept": {"retrieval": None},
                             "output": {"commit_every": 6}, **extra})


class SometimesSilent:
    """Every third clip comes out silent, every fifth NaN: the failures a broken model produces."""

    def __init__(self, inner):
        self.inner, self.provenance = inner, inner.provenance

    def generate(self, prompts, seeds):
        out = []
        for clip, seed in zip(self.inner.generate(prompts, seeds), seeds):
            if seed % 5 == 0:
                clip = GeneratedAudio(np.full_like(clip.waveform, np.nan), clip.sample_rate)
            elif seed % 3 == 0:
                clip = GeneratedAudio(np.zeros_like(clip.waveform), clip.sample_rate)
            out.append(clip)
        return out


def test_six_captions_times_three_give_18_clips_with_scores_equal_to_clap_on_the_files(
        generator, scorer, tiny_audioldm_dir, tiny_clap_dir, tmp_path):
    from datasets import load_dataset

    recipe = audio_recipe(tiny_audioldm_dir, tiny_clap_dir)
    summary = generate_dataset(recipe, tmp_path, generators={"audio": SometimesSilent(generator)},
                               scorers={"audio": scorer})
    assert summary.accepted == 18 and not summary.shortfall
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    rejected = [row for row in rows if not row["accepted"]]
    assert {"silent_audio", "nan_output"} <= {row["reason"] for row in rejected}
    assert all(row["reason"] in ("silent_audio", "nan_output", "caption_complete") and row["detail"] for row in rejected)

    dataset = load_dataset("audiofolder", data_dir=str(tmp_path / "audiofolder"), split="train",
                           cache_dir=str(tmp_path / "hf-cache"))
    assert len(dataset) == 18 and dataset[0]["audio"]["sampling_rate"] == generator.sample_rate
    shards = sorted(str(p) for p in (tmp_path / "shards").glob("*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False).to_tuple("__key__", "flac", "txt"))
    assert len(samples) == 18

    # The written CLAP scores are those of the files: recompute with ClapModel on the FLACs.
    from transformers import ClapModel, ClapProcessor

    model, processor = ClapModel.from_pretrained(str(tiny_clap_dir)).eval(), ClapProcessor.from_pretrained(str(tiny_clap_dir))
    rate = processor.feature_extractor.sampling_rate
    by_key = {row["key"]: row for row in rows if row["accepted"]}
    for key in list(by_key)[:6]:
        waveform, _ = librosa.load(tmp_path / "audiofolder" / f"{key}.flac", sr=rate)
        with torch.no_grad():
            features = processor.feature_extractor([waveform], sampling_rate=rate, return_tensors="pt",
                                                   padding="repeatpad", truncation="rand_trunc")
            audio = model.get_audio_features(**features)
            text = model.get_text_features(**processor.tokenizer([by_key[key]["caption"]], return_tensors="pt", padding=True))
        audio, text = (getattr(x, "pooler_output", x) for x in (audio, text))
        cosine = torch.nn.functional.cosine_similarity(audio, text).item()
        assert by_key[key]["scores"]["clap"]["cosine"] == pytest.approx(cosine, abs=1e-5)


def test_triplets_pass_both_judges_and_are_written_as_one_sample(
        generator, scorer, tiny_sd_dir, tiny_clip_dir, tiny_audioldm_dir, tiny_clap_dir, tmp_path):
    from datasets import Audio, load_dataset

    from pairsynth.alignment.clip_scorer import ClipScorer
    from pairsynth.modalities.text_to_image import ImageSampling, TextToImage

    recipe = recipe_from_dict({
        "modality": "triplet", "templates": ["a {colour} circle with a {pitch} tone"],
        "slots": {"colour": ["red", "blue"], "pitch": ["low", "high"]},
        "prompts": {"image": "a {colour} circle on the left", "audio": "a {pitch} steady tone"}, "k": 2,
        "generators": {"image": {"model": str(tiny_sd_dir), "steps": 2}, "audio": {"model": str(tiny_audioldm_dir)}},
        "accept": {"retrieval": None},
    })
    images = TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(steps=2))
    summary = generate_dataset(recipe, tmp_path, generators={"image": images, "audio": generator},
                               scorers={"image": ClipScorer.from_pretrained(f"local-dir:{tiny_clip_dir}"), "audio": scorer})
    assert summary.accepted == 8
    row = json.loads((tmp_path / "manifest.jsonl").read_text().splitlines()[0])
    assert set(row["scores"]) == {"clip", "clap"} and row["modality"] == "triplet"
    assert row["prompts"]["image"].startswith("a red circle") and row["image"]["model"] == str(tiny_sd_dir)
    shards = sorted(str(p) for p in (tmp_path / "shards").glob("*.tar"))
    sample = next(iter(wds.WebDataset(shards, shardshuffle=False)))
    assert {"png", "flac", "txt", "json"} <= set(sample)
    dataset = load_dataset("imagefolder", data_dir=str(tmp_path / "tripletfolder"), split="train",
                           cache_dir=str(tmp_path / "hf-cache")).cast_column("audio", Audio())
    assert len(dataset) == 8 and dataset[0]["audio"]["array"].size > 0 and dataset[0]["image"].size == (32, 32)


def test_a_crashed_audio_run_resumes_to_the_same_clips(generator, scorer, tiny_audioldm_dir, tiny_clap_dir, tmp_path,
                                                       monkeypatch):
    from pairsynth.writers import folder

    recipe = audio_recipe(tiny_audioldm_dir, tiny_clap_dir, accept={"retrieval": None, "min_clap_score": 1.0})
    models = {"generators": {"audio": generator}, "scorers": {"audio": scorer}}
    generate_dataset(recipe, tmp_path / "reference", **models)
    real_commit = folder.FolderWriter.commit

    def crash_in_second_part(self, part):
        if part == 1:
            raise KeyboardInterrupt("simulated kill while committing the second part")
        return real_commit(self, part)

    monkeypatch.setattr(folder.FolderWriter, "commit", crash_in_second_part)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(recipe, tmp_path / "out", **models)
    monkeypatch.setattr(folder.FolderWriter, "commit", real_commit)
    generate_dataset(recipe, tmp_path / "out", **models)

    def accepted(out):
        rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        return sorted(row["key"] for row in rows if row["accepted"])

    assert accepted(tmp_path / "out") == accepted(tmp_path / "reference")
    files = sorted(p.stem for p in (tmp_path / "out" / "audiofolder").glob("*.flac"))
    assert files == accepted(tmp_path / "out")
