"""`pairsynth probe` on data nobody generated: scikit-image photos cut into crops, espeak-ng spoken words.

Tiny sizes and a few steps: these check the protocol, the report and the errors, not accuracy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from typer.testing import CliRunner

from pairsynth.probe import ProbeConfig, run_probe
from pairsynth.probe.classifiers import TrainSettings
from pairsynth.probe.errors import MissingClassError, MixedMediaError, SplitError, UnlabeledDatasetError
from pairsynth.probe.labeled import read_labeled, read_synthetic
from pairsynth.probe.protocol import probe_to_folder

PHOTOS = ("astronaut", "coffee", "chelsea")  # skimage.data's real RGB photos, one class each
WORDS = ("yes", "stop", "seven")
FAST = TrainSettings(steps=4, batch_size=8)


def photo_crops(photo: str, count: int, seed: int, size: int = 24) -> list[np.ndarray]:
    """Random ``size``² crops of one of scikit-image's photos."""
    from skimage import data

    image = getattr(data, photo)()
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    return [image[y:y + size, x:x + size] for y, x in zip(rng.integers(0, h - size, count), rng.integers(0, w - size, count))]


def make_photo_folder(root: Path, per_class: int = 6, seed: int = 0, classes=PHOTOS) -> Path:
    """A real dataset in class subfolders: ``root/<photo>/NNN.png``."""
    for photo in classes:
        (root / photo).mkdir(parents=True)
        for i, crop in enumerate(photo_crops(photo, per_class, seed)):
            Image.fromarray(crop).save(root / photo / f"{i:03d}.png")
    return root


def make_synthetic_output(root: Path, per_class: int = 4, seed: int = 1, classes=PHOTOS) -> Path:
    """A pairsynth-shaped output whose labels live only in the captions ("a photo of a coffee")."""
    folder = root / "imagefolder"
    folder.mkdir(parents=True)
    rows = []
    for photo in classes:
        for i, crop in enumerate(photo_crops(photo, per_class, seed)):
            key = f"{photo}-{i}"
            Image.fromarray(np.ascontiguousarray(crop[:, ::-1])).save(folder / f"{key}.png")
            rows.append({"file_name": f"{key}.png", "key": key, "text": f"a photo of a {photo}"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "manifest.jsonl").write_text("".join(json.dumps({"key": r["key"], "caption": r["text"], "accepted": True})
                                                 + "\n" for r in rows))
    return root


def make_spoken_words(root: Path, per_class: int, seed: int) -> Path:
    """An audiofolder of espeak-ng words (``label`` column), varied in speed, pitch and voice."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = []
    for word in WORDS:
        for i in range(per_class):
            name = f"{word}-{i}.wav"
            voice = ["en", "en+m3", "en+f2", "en-us"][int(rng.integers(4))]
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(rng.integers(120, 200))), "-p",
                            str(int(rng.integers(20, 80))), "-w", str(root / name), word], check=True)
            rows.append({"file_name": name, "label": word})
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("photos")
    return make_photo_folder(base / "real"), make_synthetic_output(base / "synthetic")


@pytest.fixture(scope="module")
def words(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/setup.sh installs it)")
    base = tmp_path_factory.mktemp("words")
    return make_spoken_words(base / "real", 4, seed=0), make_spoken_words(base / "synthetic", 2, seed=1)


def test_labels_come_from_class_subfolders_and_from_synthetic_captions(photos):
    real_dir, synthetic_dir = photos
    real = read_labeled(real_dir)
    synthetic = read_synthetic(synthetic_dir, real)
    assert real.classes == sorted(PHOTOS) and real.modality == "image"
    assert synthetic.class_counts() == {p: 4 for p in sorted(PHOTOS)}
    assert all(e.label in e.caption for e in synthetic.examples)


def test_probe_on_photo_crops_reports_every_condition_with_paired_gains(photos, tmp_path):
    real_dir, synthetic_dir = photos
    config = ProbeConfig(shots=(1, 2), draws=2, image_size=16, cnn_width=8, train=FAST)
    summary = probe_to_folder(real_dir, [synthetic_dir], tmp_path / "probe", config)

    assert summary["conditions"] == ["real", "real+classic", "real+synthetic", "real+synthetic+classic"]
    assert summary["test"]["examples"] == 9 and summary["real"]["training_pool"] == 9
    for result in summary["results"]:
        assert result["draws"] == 2
        for condition, spread in result["metrics"]["accuracy"].items():
            assert spread["draws"] == 2 and 0.0 <= spread["mean"] <= 1.0
        gain = result["gains"]["accuracy"]["real+synthetic"]
        assert gain["over"] == result["baseline"]["accuracy"] and gain["draws"] == 2
        # the paired gain is the mean of the per-draw differences the summary lists
        runs = result["runs"]
        expected = np.mean(np.subtract(runs["real+synthetic"], runs[gain["over"]]))
        assert gain["mean"] == pytest.approx(expected)
        assert result["synthetic_share"]["real"] == 0.0
        assert 0.0 < result["synthetic_share"]["real+synthetic"] < 1.0
        assert set(result["per_class"]["real"]) == set(PHOTOS)
    saved = json.loads((tmp_path / "probe" / "summary.json").read_text())
    assert saved["results"][0]["gains"] == summary["results"][0]["gains"]
    page = (tmp_path / "probe" / "index.html").read_text()
    assert "<svg" in page and "paired over 2 draws" in page and "chelsea" in page


def test_same_seed_gives_the_same_probe(photos):
    real_dir, synthetic_dir = photos
    config = ProbeConfig(shots=(2,), draws=1, image_size=16, cnn_width=8, train=FAST)
    first = run_probe(real_dir, [synthetic_dir], config)["results"][0]["runs"]
    assert run_probe(real_dir, [synthetic_dir], config)["results"][0]["runs"] == first


def test_probe_on_espeak_spoken_words(words, tmp_path):
    real_dir, synthetic_dir = words
    config = ProbeConfig(shots=(2,), draws=2, cnn_width=8, train=FAST)
    summary = run_probe(real_dir, [synthetic_dir], config)
    assert summary["medium"] == "audio" and summary["classes"] == sorted(WORDS)
    assert summary["test"]["examples"] == 6
    result = summary["results"][0]
    assert result["metrics"]["accuracy"]["real+synthetic+classic"]["draws"] == 2


def test_linear_probe_on_frozen_clip_embeddings(photos, tiny_clip_dir):
    from pairsynth.probe.features import EmbeddingSpace
    from pairsynth.probe.protocol import load_judge

    real_dir, synthetic_dir = photos
    judge = load_judge("image", f"local-dir:{tiny_clip_dir}")
    space = EmbeddingSpace(judge=judge, modality="image", views=2)
    stored = space.encode(read_labeled(real_dir).examples[:3])
    assert stored.shape == (3, 3, space.dimension)  # clean view + 2 augmented views per example
    assert not torch.allclose(stored[:, 0], stored[:, 1])  # the augmented views differ from the clean one
    config = ProbeConfig(shots=(2,), draws=1, classifier="linear", views=1, train=FAST, judge=f"local-dir:{tiny_clip_dir}")
    summary = run_probe(real_dir, [synthetic_dir], config)
    assert summary["config"]["classifier"] == "linear"
    assert 0.0 <= summary["results"][0]["metrics"]["accuracy"]["real"]["mean"] <= 1.0


def test_a_folder_without_labels_is_refused(tmp_path, photos):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, crop in enumerate(photo_crops("coffee", 3, 0)):
        Image.fromarray(crop).save(flat / f"{i}.png")
    with pytest.raises(UnlabeledDatasetError, match=r"0\.png: no class label.*--labels"):
        run_probe(flat, [photos[1]], ProbeConfig(shots=(1,), draws=1, train=FAST))


def test_a_class_missing_from_the_synthetic_set_is_refused_before_training(tmp_path, photos):
    partial = make_synthetic_output(tmp_path / "partial", classes=PHOTOS[:2])
    with pytest.raises(MissingClassError, match="no synthetic example of class 'chelsea'"):
        run_probe(photos[0], [partial], ProbeConfig(shots=(1,), draws=1, train=FAST))


def test_fewer_test_examples_than_classes_is_refused(photos):
    with pytest.raises(SplitError, match="holds 2 real examples but there are 3 classes"):
        run_probe(photos[0], [photos[1]], ProbeConfig(shots=(1,), draws=1, test_fraction=0.1, train=FAST))


def test_more_shots_than_the_training_pool_holds_is_refused(photos):
    with pytest.raises(SplitError, match="fewer than --shots 5"):
        run_probe(photos[0], [photos[1]], ProbeConfig(shots=(5,), draws=1, train=FAST))


def test_images_and_audio_cannot_be_mixed(photos, tmp_path):
    clips = tmp_path / "clips"
    for photo in PHOTOS:
        (clips / photo).mkdir(parents=True)
        soundfile.write(clips / photo / "a.wav", np.sin(np.arange(1600) / 5.0).astype(np.float32), 16000)
    with pytest.raises(MixedMediaError, match="holds audio but the real data .* holds image"):
        run_probe(photos[0], [clips], ProbeConfig(shots=(1,), draws=1, train=FAST))


def test_probe_command_prints_gains_and_fails_cleanly(photos, tmp_path):
    from pairsynth.cli import app

    real_dir, synthetic_dir = photos
    runner = CliRunner()
    result = runner.invoke(app, ["probe", "--real", str(real_dir), "--synthetic", str(synthetic_dir),
                                 "--out", str(tmp_path / "probe"), "--shots", "2", "--draws", "2",
                                 "--steps", "3", "--batch-size", "8", "--image-size", "16"])
    assert result.exit_code == 0, result.output
    assert "real+synthetic vs real" in result.output and "2 draws" in result.output
    assert (tmp_path / "probe" / "index.html").is_file()

    refused = runner.invoke(app, ["probe", "--real", str(real_dir), "--synthetic", str(synthetic_dir),
                                  "--out", str(tmp_path / "no"), "--shots", "9"])
    assert refused.exit_code == 2
    assert "fewer than --shots 9" in refused.output and "Traceback" not in refused.output


def test_probe_takes_in_memory_labeled_sets(photos):
    from pairsynth.probe.labeled import LabeledExample, LabeledSet

    rng = np.random.default_rng(0)

    def blobs(name: str, count: int) -> LabeledSet:  # bright vs dark squares, made in the script
        examples = [LabeledExample(key=f"{name}-{label}-{i}", label=label, source="memory",
                                   image=np.full((8, 8, 3), 200 if label == "bright" else 40, np.uint8)
                                   + rng.integers(0, 20, (8, 8, 3)).astype(np.uint8))
                    for label in ("bright", "dark") for i in range(count)]
        return LabeledSet(path=name, examples=examples, modality="image")

    config = ProbeConfig(shots=(2,), draws=2, image_size=8, cnn_width=8, train=FAST)
    summary = run_probe(blobs("real", 6), [blobs("generated", 3)], config)
    assert summary["conditions"][2] == "real+generated" and summary["test"]["examples"] == 6


def test_a_caption_to_label_map_labels_a_captioned_folder(tmp_path):
    from pairsynth.probe.labeled import read_label_map

    folder = tmp_path / "captioned"
    folder.mkdir()
    rows = []
    for photo in PHOTOS[:2]:
        for i, crop in enumerate(photo_crops(photo, 2, 0)):
            Image.fromarray(crop).save(folder / f"{photo}{i}.png")
            rows.append({"file_name": f"{photo}{i}.png", "text": f"crop of the {photo} photo"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UnlabeledDatasetError, match="caption 'crop of the astronaut photo'"):
        read_labeled(folder)
    as_json = tmp_path / "map.json"
    as_json.write_text(json.dumps({f"crop of the {p} photo": p.upper() for p in PHOTOS}))
    as_csv = tmp_path / "map.csv"
    as_csv.write_text("caption,label\n" + "".join(f"crop of the {p} photo,{p.upper()}\n" for p in PHOTOS))
    assert read_label_map(as_json) == read_label_map(as_csv)
    labeled = read_labeled(folder, label_map=read_label_map(as_csv))
    assert labeled.class_counts() == {"ASTRONAUT": 2, "COFFEE": 2}
    (tmp_path / "bad.csv").write_text("only one column\n")
    with pytest.raises(UnlabeledDatasetError, match="two columns"):
        read_label_map(tmp_path / "bad.csv")


def test_a_variation_inherits_the_label_of_the_real_example_it_came_from(photos, tmp_path):
    real = read_labeled(photos[0])
    output = tmp_path / "var"
    (output / "imagefolder").mkdir(parents=True)
    sources = [real.examples[0], real.examples[-1]]
    rows, manifest = [], []
    for i, source in enumerate(sources):
        Image.fromarray(source.image).save(output / "imagefolder" / f"v{i}.png")
        rows.append({"file_name": f"v{i}.png", "key": f"v{i}", "text": "an untitled crop"})
        manifest.append({"key": f"v{i}", "caption": "an untitled crop", "source": {"key": source.key, "path": source.source}})
    (output / "imagefolder" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (output / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in manifest))
    synthetic = read_synthetic(output, real)
    assert [e.label for e in synthetic.examples] == [s.label for s in sources] == ["astronaut", "coffee"]
