"""kill -9 at any moment, run the same command again: same accepted pairs, none lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from pairsynth.generate import generate_dataset
from pairsynth.writers import webdataset_shards
from tests.helpers import tiny_recipe, tiny_recipe_dict, write_recipe

CAPTIONS_24 = [f"a {c} {s} on the {p}" for c in ("red", "green", "blue", "yellow")
               for s in ("circle", "square", "triangle") for p in ("left", "right")]


def accepted_keys(out) -> list[str]:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    keys = [row["key"] for row in rows if row["accepted"]]
    assert len(keys) == len(set(keys)), "a pair was written twice"
    return sorted(keys)


def shard_keys(out) -> list[str]:
    keys = []
    for shard in sorted((out / "shards").glob("*")):
        assert shard.suffix == ".tar", f"left behind: {shard.name}"
        with tarfile.open(shard) as tar:  # raises on a truncated archive
            keys += sorted({member.name.split(".")[0] for member in tar.getmembers()})
    return sorted(keys)


def run_cli(recipe_path, out):
    command = [sys.executable, "-m", "pairsynth", "generate", str(recipe_path), "--out", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_a_killed_run_resumes_to_the_same_pairs(tiny_sd_dir, tiny_clip_dir, tmp_path):
    data = tiny_recipe_dict(tiny_sd_dir, tiny_clip_dir, captions=CAPTIONS_24, k=3, max_attempts=9,
                            accept={"min_clip_score": 1.0}, output={"commit_every": 2},
                            generator={"batch_size": 2})
    recipe_path = write_recipe(tmp_path / "recipe.yaml", data)
    reference = generate_dataset(tiny_recipe(tiny_sd_dir, tiny_clip_dir, **{k: v for k, v in data.items()
                                                                           if k not in ("generator", "scorer")}),
                                 tmp_path / "reference")
    out = tmp_path / "killed"
    kills = 0
    for committed_parts in (2, 6):
        process = run_cli(recipe_path, out)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            progress = out / "progress.json"
            if progress.exists() and json.loads(progress.read_text() or "{}").get("parts", 0) >= committed_parts:
                process.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.005)
        process.wait()
        assert not json.loads((out / "progress.json").read_text())["complete"]
    assert kills == 2
    finished = run_cli(recipe_path, out)
    assert finished.wait(timeout=120) == 0, finished.stderr.read().decode()
    assert accepted_keys(out) == accepted_keys(tmp_path / "reference") == shard_keys(out)
    assert reference.accepted == len(accepted_keys(out))


def test_a_crash_between_writing_a_shard_and_committing_loses_nothing(tiny_sd_dir, tiny_clip_dir, tmp_path, monkeypatch):
    recipe = tiny_recipe(tiny_sd_dir, tiny_clip_dir, output={"commit_every": 4})
    reference = generate_dataset(recipe, tmp_path / "reference")
    real_commit = webdataset_shards.WebDatasetWriter.commit

    def crash_after_second_shard(self, part):
        state = real_commit(self, part)
        if part == 1:
            raise KeyboardInterrupt("simulated kill after the shard was renamed, before progress.json")
        return state

    monkeypatch.setattr(webdataset_shards.WebDatasetWriter, "commit", crash_after_second_shard)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(recipe, tmp_path / "out")
    monkeypatch.setattr(webdataset_shards.WebDatasetWriter, "commit", real_commit)
    assert (tmp_path / "out" / "shards" / "shard-00001.tar").exists()  # written but never committed
    generate_dataset(recipe, tmp_path / "out")
    assert accepted_keys(tmp_path / "out") == accepted_keys(tmp_path / "reference") == shard_keys(tmp_path / "out")
    assert reference.accepted == 16
