"""Parquet shards: datasets reads them as Image/Audio features, and a crashed run resumes without loss."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pairsynth.alignment.scores import PairScores
from pairsynth.candidates import Candidate, Condition
from pairsynth.generate import generate_dataset
from pairsynth.output_dir import OutputDir, Progress
from pairsynth.writers import parquet as parquet_writer
from tests.helpers import CAPTIONS_8, tiny_recipe


def parquet_keys(out) -> list[str]:
    keys = []
    for shard in sorted((out / "parquet").iterdir()):
        assert shard.suffix == ".parquet", f"left behind: {shard.name}"
        keys += pq.read_table(shard, columns=["key"]).column("key").to_pylist()
    assert len(keys) == len(set(keys)), "a pair was written twice"
    return sorted(keys)


def accepted_keys(out) -> list[str]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return sorted(row["key"] for row in rows if row["accepted"])


def test_a_crashed_parquet_run_resumes_and_loads_in_datasets(tiny_sd_dir, tiny_clip_dir, tmp_path, monkeypatch):
    from datasets import Image, load_dataset

    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir, captions=CAPTIONS_8[:4], output={"commit_every": 2, "formats": ["parquet"]})
    reference = generate_dataset(recipe, tmp_path / "reference")
    real_commit = parquet_writer.ParquetWriter.commit

    def crash_after_second_shard(self, part):
        state = real_commit(self, part)
        if part == 1:
            raise KeyboardInterrupt("simulated kill after the shard was renamed, before progress.json")
        return state

    monkeypatch.setattr(parquet_writer.ParquetWriter, "commit", crash_after_second_shard)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(recipe, tmp_path / "out")
    monkeypatch.setattr(parquet_writer.ParquetWriter, "commit", real_commit)
    out = tmp_path / "out"
    assert (out / "parquet" / "train-00001.parquet").exists()  # written, never committed: resume drops it
    (out / "parquet" / "open-shard.parquet.tmp").write_bytes(b"half a shard")  # as a kill mid-write leaves
    generate_dataset(recipe, out)

    assert reference.accepted == 8
    assert parquet_keys(out) == accepted_keys(out) == accepted_keys(tmp_path / "reference")
    dataset = load_dataset("parquet", data_dir=str(out / "parquet"), split="train")
    assert isinstance(dataset.features["image"], Image)  # from the schema's metadata: no cast needed
    assert len(dataset) == 8
    row = dataset[0]
    assert row["image"].size == (32, 32) and row["text"] in recipe.caption_list
    assert isinstance(row["clip_score"], float) and isinstance(row["seed"], int)
    folder = tmp_path / "reference" / "parquet"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (out / "parquet").iterdir())


def audio_candidate(index: int) -> Candidate:
    rate = 16_000
    t = np.arange(rate // 4) / rate
    wave = (0.5 * np.sin(2 * np.pi * (220 + 110 * index) * t)).astype(np.float32)
    condition = Condition(caption=f"a tone number {index}", caption_index=index, sample_index=0, seed=index)
    candidate = Candidate(condition=condition, key=f"{index:020x}", provenance={"model": "tone"}, audio=wave, sample_rate=rate)
    candidate.scores["clap"] = PairScores(judge="clap", model="toy", cosine=0.31 + index / 100)
    return candidate


def test_audio_pairs_commit_roll_back_and_load_as_audio(tmp_path):
    from datasets import Audio, load_dataset

    writer = parquet_writer.ParquetWriter(tmp_path)
    directory = OutputDir(tmp_path)
    progress = Progress(fingerprint="fingerprint")
    for index in range(3):
        writer.write(audio_candidate(index))
    directory.commit(progress, [writer])
    committed = progress.writers["parquet"]
    for index in range(3, 5):  # a second part that is written but never committed
        writer.write(audio_candidate(index))
    writer.commit(1)
    assert len(list((tmp_path / "parquet").glob("*.parquet"))) == 2

    writer = parquet_writer.ParquetWriter(tmp_path)  # the resumed run
    writer.rollback(committed)
    assert [p.name for p in (tmp_path / "parquet").iterdir()] == ["train-00000.parquet"]

    dataset = load_dataset("parquet", data_dir=str(tmp_path / "parquet"), split="train")
    assert isinstance(dataset.features["audio"], Audio)
    assert dataset["text"] == [f"a tone number {index}" for index in range(3)]
    raw = dataset.cast_column("audio", Audio(decode=False))[1]["audio"]
    assert raw["path"] == f"{1:020x}.flac"
    import io

    import soundfile

    wave, rate = soundfile.read(io.BytesIO(raw["bytes"]), dtype="float32")
    assert rate == 16_000
    np.testing.assert_allclose(wave, audio_candidate(1).audio, atol=1e-4)  # FLAC at 16 bits: lossless to 3e-5
    decoded = dataset[2]["audio"]  # datasets 3.x decodes with soundfile (4+ needs torchcodec)
    np.testing.assert_allclose(decoded["array"], audio_candidate(2).audio, atol=1e-4)
    assert decoded["sampling_rate"] == 16_000
