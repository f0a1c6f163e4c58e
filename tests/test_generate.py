"""The whole run on tiny models: counts, formats, manifest, bad outputs, locking, full disk."""

from __future__ import annotations

import errno
import json
import tarfile

import numpy as np
import pytest
import webdataset as wds

from pairsynth.modalities.text_to_image import GeneratedImage, ImageSampling, TextToImage
from pairsynth.errors import OutputDirError
from pairsynth.generate import generate_dataset
from pairsynth.output_dir import OutputDir
from tests.helpers import CAPTIONS_8, tiny_recipe


@pytest.fixture(scope="module")
def generator(tiny_sd_dir):
    return TextToImage.from_pretrained(str(tiny_sd_dir), sampling=ImageSampling(steps=2, guidance_scale=3.0))


@pytest.fixture(scope="module")
def scorer(tiny_clip_dir):
    from pairsynth.alignment.clip_scorer import ClipScorer

    return ClipScorer.from_pretrained(f"local-dir:{tiny_clip_dir}")


def read_manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_eight_captions_times_four_give_exactly_32_pairs_in_both_formats(tiny_sd_dir, tiny_clip_dir, tmp_path):
    from datasets import load_dataset

    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir, k=4)
    summary = generate_dataset(recipe, tmp_path / "out")
    assert summary.accepted == 32 and not summary.shortfall
    assert list(summary.times.seconds) == ["load", "generate", "score", "write", "report"]
    assert 0 < sum(summary.times.seconds.values()) <= summary.elapsed_s

    rows = read_manifest(tmp_path / "out")
    assert len(rows) == summary.candidates
    assert all(row["reason"] for row in rows)
    accepted = [row for row in rows if row["accepted"]]
    assert len(accepted) == 32 and len({row["key"] for row in accepted}) == 32
    assert {row["caption"] for row in accepted} == set(CAPTIONS_8)
    row = accepted[0]
    assert {"key", "caption", "model", "scheduler", "steps", "guidance_scale", "seed", "scores", "accepted", "reason"} <= set(row)
    assert row["scores"]["clip"]["score_unit"].startswith("CLIPScore")

    dataset = load_dataset("imagefolder", data_dir=str(tmp_path / "out" / "imagefolder"), split="train",
                           cache_dir=str(tmp_path / "hf-cache"))
    assert len(dataset) == 32
    assert sorted(dataset["key"]) == sorted(row["key"] for row in accepted)
    assert dataset[0]["image"].size == (32, 32)

    shards = sorted(str(p) for p in (tmp_path / "out" / "shards").glob("*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("__key__", "png", "txt", "json"))
    assert len(samples) == 32
    by_key = {row["key"]: row for row in accepted}
    for key, image, text, meta in samples:
        assert text == by_key[key]["caption"] and meta["seed"] == by_key[key]["seed"]
        assert image.size == (32, 32)
    report = json.loads((tmp_path / "out" / "report" / "summary.json").read_text())
    assert report["accepted"] == 32 and report["candidates"] == summary.candidates


def test_a_finished_run_is_idempotent(generator, scorer, tiny_sd_dir, tiny_clip_dir, tmp_path):
    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir)
    first = generate_dataset(recipe, tmp_path, generators={"image": generator}, scorers={"image": scorer})
    manifest = (tmp_path / "manifest.jsonl").read_bytes()
    again = generate_dataset(recipe, tmp_path, generators={"image": generator}, scorers={"image": scorer})
    assert again.accepted == first.accepted and again.candidates == first.candidates
    assert (tmp_path / "manifest.jsonl").read_bytes() == manifest


def test_the_same_recipe_writes_byte_identical_datasets(generator, scorer, tiny_sd_dir, tiny_clip_dir, tmp_path):
    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir)
    for out in ("a", "b"):
        generate_dataset(recipe, tmp_path / out, generators={"image": generator}, scorers={"image": scorer})
    written = lambda out: {p.relative_to(tmp_path / out): p.read_bytes()  # noqa: E731
                           for folder in ("shards", "imagefolder") for p in (tmp_path / out / folder).iterdir()}
    first, second = written("a"), written("b")
    assert first == second and any(path.suffix == ".tar" for path in first)
    with tarfile.open(next(tmp_path.glob("a/shards/*.tar"))) as shard:  # plain ustar: no PAX header per member
        assert all(not member.pax_headers for member in shard.getmembers())


def test_shortfall_is_reported_when_the_budget_runs_out(generator, scorer, tiny_sd_dir, tiny_clip_dir, tmp_path):
    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir, k=3, max_attempts=5, accept={"min_clip_score": 99.0})
    summary = generate_dataset(recipe, tmp_path, generators={"image": generator}, scorers={"image": scorer})
    assert summary.accepted == 0 and len(summary.shortfall) == 8
    assert all(state.attempts == 5 for state in summary.shortfall)
    assert {row["reason"] for row in read_manifest(tmp_path)} == {"below_threshold"}
    assert not (tmp_path / "shards").exists() or not list((tmp_path / "shards").iterdir())


class BrokenOutputs:
    """Wraps a generator so that some samples come out NaN or blank, as broken models do."""

    def __init__(self, inner: TextToImage) -> None:
        self.inner = inner
        self.provenance = inner.provenance

    def generate(self, prompts, seeds):
        images = self.inner.generate(prompts, seeds)
        out = []
        for image, seed in zip(images, seeds):
            if seed % 3 == 0:
                out.append(GeneratedImage(np.full_like(image.pixels, np.nan)))
            elif seed % 3 == 1:
                out.append(GeneratedImage(np.zeros_like(image.pixels), flagged_nsfw=True))
            else:
                out.append(image)
        return out


def test_nan_and_blank_outputs_are_counted_and_never_written(generator, scorer, tiny_sd_dir, tiny_clip_dir, tmp_path):
    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir, max_attempts=12)
    summary = generate_dataset(recipe, tmp_path, generators={"image": BrokenOutputs(generator)}, scorers={"image": scorer})
    rows = read_manifest(tmp_path)
    by_reason = {reason: [r for r in rows if r["reason"] == reason] for reason in {r["reason"] for r in rows}}
    assert by_reason["nan_output"] and by_reason["blank_image"]
    assert all(row["seed"] % 3 == 0 for row in by_reason["nan_output"])
    assert all(row["scores"] == {} for row in by_reason["nan_output"] + by_reason["blank_image"])
    assert all("safety checker" in row["notes"][0] for row in by_reason["blank_image"])
    written = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert written["reasons"]["nan_output"] == len(by_reason["nan_output"])
    accepted_seeds = [row["seed"] for row in rows if row["accepted"]]
    assert len(accepted_seeds) == summary.accepted and all(seed % 3 == 2 for seed in accepted_seeds)


def test_a_second_run_on_the_same_output_is_refused(generator, scorer, tiny_sd_dir, tiny_clip_dir, tmp_path):
    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir)
    with OutputDir(tmp_path).locked():
        with pytest.raises(OutputDirError, match="another pairsynth run is writing to"):
            generate_dataset(recipe, tmp_path, generators={"image": generator}, scorers={"image": scorer})


def test_another_recipe_cannot_resume_this_output(generator, scorer, tiny_sd_dir, tiny_clip_dir, tmp_path):
    generate_dataset(tiny_recipe(tiny_sd_dir, tiny_clip_dir), tmp_path, generators={"image": generator}, scorers={"image": scorer})
    other = tiny_recipe(tiny_sd_dir, tiny_clip_dir, seed=8)
    with pytest.raises(OutputDirError, match="different recipe"):
        generate_dataset(other, tmp_path, generators={"image": generator}, scorers={"image": scorer})
    assert generate_dataset(other, tmp_path, generators={"image": generator}, scorers={"image": scorer}, overwrite=True).accepted == 16


def test_a_full_disk_stops_cleanly_and_the_run_resumes(generator, scorer, tiny_sd_dir, tiny_clip_dir, tmp_path, monkeypatch):
    from pairsynth.writers import folder

    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir)
    reference = generate_dataset(recipe, tmp_path / "ref", generators={"image": generator}, scorers={"image": scorer})
    real_write = folder.write_bytes
    calls = {"n": 0}

    def fill_up(path, data):
        calls["n"] += 1
        if calls["n"] == 9:  # inside the second part
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(folder, "write_bytes", fill_up)
    with pytest.raises(OutputDirError, match="no space left .* free some space and run the same command to resume"):
        generate_dataset(recipe, tmp_path / "out", generators={"image": generator}, scorers={"image": scorer})
    monkeypatch.setattr(folder, "write_bytes", real_write)
    for shard in (tmp_path / "out" / "shards").glob("*.tar"):
        tarfile.open(shard).getmembers()  # every shard on disk is whole
    resumed = generate_dataset(recipe, tmp_path / "out", generators={"image": generator}, scorers={"image": scorer})
    assert resumed.accepted == reference.accepted
    keys = lambda out: sorted(r["key"] for r in read_manifest(out) if r["accepted"])  # noqa: E731
    assert keys(tmp_path / "out") == keys(tmp_path / "ref")
