"""Overlapped writing (chunk N written while chunk N+1 generates) changes no accepted key and no byte."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json

import pytest

from benchmarks.fakes import FakeImageGenerator, FakeJudge
from pairsynth.errors import OutputDirError
from pairsynth.generate import GenerateJob
from pairsynth.recipe import recipe_from_dict
from pairsynth.run import LocalBackend, overlap_settings, run_job
from pairsynth.stages import write_workers

CAPTIONS = [f"a {c} {s}" for c in ("red", "green", "blue", "pink") for s in ("circle", "square", "star")]


def recipe(**overrides):
    data = {"captions": CAPTIONS, "k": 2, "max_attempts": 6, "seed": 11,
            "generator": {"model": "fake", "batch_size": 3},
            "accept": {"min_clip_score": 80.0, "retrieval": {"max_rank": 1}},
            "output": {"commit_every": 7, "formats": ["webdataset", "imagefolder"], "report": False}}
    data.update(overrides)
    return recipe_from_dict(data)


def run(out, *, overlap: bool, workers: int, **job_overrides):
    job = GenerateJob(recipe(), generators={"image": FakeImageGenerator(size=32)}, scorers={"image": FakeJudge()})
    job.output = dataclasses.replace(job.output, overlap=overlap, write_workers=workers)
    return run_job(job, out, **job_overrides)


def digest(out) -> dict[str, str]:
    """Every output file's hash, the commit record (its timing-free part) included."""
    files = {path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
             for path in sorted(out.rglob("*")) if path.is_file() and path.name != ".pairsynth.lock"}
    files.pop("progress.json")
    return files


def test_overlap_writes_the_same_bytes_as_the_serial_engine(tmp_path):
    serial = run(tmp_path / "serial", overlap=False, workers=0)
    overlapped = run(tmp_path / "overlap", overlap=True, workers=2)
    on_writer_thread = run(tmp_path / "overlap0", overlap=True, workers=0)
    assert serial.accepted == overlapped.accepted == on_writer_thread.accepted > 0
    assert serial.candidates > serial.accepted  # some rejections, so acceptance is exercised
    assert "score_wait" in overlapped.times.seconds and "score_wait" not in serial.times.seconds  # judged on a thread
    reference = digest(tmp_path / "serial")
    assert len([name for name in reference if name.startswith("shards/")]) > 2  # several parts
    assert digest(tmp_path / "overlap") == reference
    assert digest(tmp_path / "overlap0") == reference
    progress = lambda out: json.loads((out / "progress.json").read_text())  # noqa: E731
    assert progress(tmp_path / "overlap") == progress(tmp_path / "serial")


def test_a_failing_background_commit_stops_the_run_and_it_resumes_to_the_same_pairs(tmp_path, monkeypatch):
    from pairsynth.writers import folder

    run(tmp_path / "ref", overlap=False, workers=0)
    real_write, calls = folder.write_bytes, {"n": 0}

    def fill_up(path, data):
        calls["n"] += 1
        if calls["n"] == 4:  # a later part than the first
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(folder, "write_bytes", fill_up)
    with pytest.raises(OutputDirError, match="no space left"):
        run(tmp_path / "out", overlap=True, workers=2)
    monkeypatch.setattr(folder, "write_bytes", real_write)
    assert calls["n"] == 4
    run(tmp_path / "out", overlap=True, workers=2)
    assert digest(tmp_path / "out") == digest(tmp_path / "ref")


def test_progress_is_reported_once_per_committed_part(tmp_path):
    updates = []
    summary = run(tmp_path / "out", overlap=True, workers=1, on_progress=updates.append)
    parts = json.loads((tmp_path / "out" / "progress.json").read_text())["parts"]
    assert len(updates) == parts
    assert updates[-1].candidates == summary.candidates and updates[-1].accepted == summary.accepted


def test_the_encoder_pool_takes_only_the_cores_generation_leaves():
    assert write_workers(generation_threads=2, cores=2) == 0  # a CPU run: no pool at all
    assert write_workers(generation_threads=1, cores=16) == 8  # a GPU run: capped
    assert write_workers(generation_threads=1, cores=4) == 2  # one core drives the GPU, one writes
    spec = GenerateJob(recipe(device="cpu")).output
    assert overlap_settings(spec, LocalBackend()) == (False, 0)  # CPU default: serial (see benchmarks/overlap.py)

    class Remote:
        generation_threads = 1

    overlap, workers = overlap_settings(spec, Remote())
    assert overlap and workers == write_workers(1)
