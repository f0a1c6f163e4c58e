"""``pairsynth vary`` on real photos nobody here made (scikit-image's bundled samples)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from pairsynth.alignment.clip_scorer import ClipScorer
from pairsynth.modalities.image_to_image import ImageToImage, VariationSampling
from pairsynth.vary import vary_config, vary_dataset
from pairsynth.errors import RecipeError

PHOTOS = {
    "astronaut": "a photo of an astronaut in an orange suit",
    "coffee": "a cup of coffee on a saucer",
    "chelsea": "a photo of a tabby cat",
    "rocket": "a rocket on a launch pad",
}


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name, caption in PHOTOS.items():
        Image.fromarray(getattr(skdata, name)()).convert("RGB").save(folder / f"{name}.png")
        (folder / f"{name}.txt").write_text(caption)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "broken.txt").write_text("a broken file")
    return folder


@pytest.fixture(scope="module")
def models(tiny_sd_dir, tiny_clip_dir):
    varier = ImageToImage.from_pretrained(str(tiny_sd_dir), sampling=VariationSampling(strength=0.5, steps=4))
    return varier, ClipScorer.from_pretrained(f"local-dir:{tiny_clip_dir}")


def rows(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_vary_real_photos_records_lineage_and_skips_corrupt_inputs(photo_folder, models, tmp_path):
    varier, scorer = models
    config = vary_config(per_pair=2, max_rank=None, similarity_band=(-1.0, 0.9999))
    summary = vary_dataset(photo_folder, tmp_path, config, varier=varier, scorer=scorer)
    manifest = rows(tmp_path)
    skipped = [row for row in manifest if row["reason"] == "unreadable_input"]
    assert len(skipped) == 1 and skipped[0]["source"]["path"].endswith("broken.png")
    assert summary.accepted == 8 and not summary.shortfall
    accepted = [row for row in manifest if row["accepted"]]
    assert {row["source"]["key"] for row in accepted} == set(PHOTOS)
    for row in accepted:
        assert row["strength"] == 0.5 and isinstance(row["seed"], int)
        assert row["caption"] == PHOTOS[row["source"]["key"]]
        assert -1.0 <= row["source"]["similarity"] < 0.9999
    stored = Image.open(tmp_path / "imagefolder" / f"{accepted[0]['key']}.png")
    assert stored.size == (32, 32)


def test_the_similarity_band_rejects_near_copies_and_drift(photo_folder, models, tmp_path):
    varier, scorer = models
    too_close = vary_config(per_pair=1, max_attempts=2, max_rank=None, similarity_band=(-1.0, -0.99))
    summary = vary_dataset(photo_folder, tmp_path / "a", too_close, varier=varier, scorer=scorer)
    reasons = {row["reason"] for row in rows(tmp_path / "a")} - {"unreadable_input"}
    assert summary.accepted == 0 and reasons == {"near_copy"}
    too_far = vary_config(per_pair=1, max_attempts=2, max_rank=None, similarity_band=(0.99999, 1.0))
    vary_dataset(photo_folder, tmp_path / "b", too_far, varier=varier, scorer=scorer)
    assert {row["reason"] for row in rows(tmp_path / "b")} - {"unreadable_input"} == {"drifted"}


def test_edited_captions_guide_and_label_the_variations(photo_folder, models, tmp_path):
    varier, scorer = models
    config = vary_config(per_pair=1, max_rank=None, similarity_band=(-1.0, 1.0), caption_template="{caption}, at night")
    vary_dataset(photo_folder, tmp_path, config, varier=varier, scorer=scorer)
    assert all(row["caption"].endswith(", at night") for row in rows(tmp_path) if row["accepted"])


def test_bad_vary_settings_are_one_line_errors():
    with pytest.raises(RecipeError, match="--band LOW HIGH must be two cosines"):
        vary_config(similarity_band=(0.9, 0.5))
    with pytest.raises(RecipeError, match="--strength: Input should be less than or equal to 1"):
        vary_config(strength=1.5)


def test_vary_audio_pairs_resamples_downmixes_and_skips_corrupt_clips(tiny_audioldm_mel_dir, tiny_clap_dir, tmp_path):
    import soundfile as sf

    from pairsynth.alignment.clap_scorer import ClapScorer
    from pairsynth.modalities.audio_to_audio import AudioToAudio, AudioVariationSampling

    folder = tmp_path / "sounds"
    folder.mkdir()
    t = np.arange(44100) / 44100
    sf.write(folder / "stereo.wav", np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 300 * t)], 1) * 0.3, 44100)
    sf.write(folder / "mono.flac", np.sin(2 * np.pi * 900 * np.arange(16000) / 16000) * 0.3, 16000)
    (folder / "stereo.txt").write_text("a low steady tone")
    (folder / "mono.txt").write_text("a high steady tone")
    (folder / "broken.flac").write_bytes(b"fLaC not really")
    (folder / "broken.txt").write_text("a broken clip")
    varier = AudioToAudio.from_pretrained(str(tiny_audioldm_mel_dir),
                                          sampling=AudioVariationSampling(strength=0.5, steps=4))
    config = vary_config(per_pair=2, max_rank=None, similarity_band=(-1.0, 1.0))
    summary = vary_dataset(folder, tmp_path / "out", config, varier=varier, scorer=ClapScorer.from_pretrained(str(tiny_clap_dir)))
    assert summary.accepted == 4
    manifest = rows(tmp_path / "out")
    assert [row["source"]["path"].endswith("broken.flac") for row in manifest if row["reason"] == "unreadable_input"] == [True]
    written = [row for row in manifest if row["accepted"]]
    clip, rate = sf.read(tmp_path / "out" / "audiofolder" / f"{written[0]['key']}.flac")
    assert rate == 16000 and clip.ndim == 1 and len(clip) == 16000
