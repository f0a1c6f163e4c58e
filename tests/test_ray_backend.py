"""--backend ray: the same dataset as a local run, through killed actors and a killed driver.

All Ray runs share one local Ray of 2 CPUs (the CI machine's size), started once for the module.
"""

from __future__ import annotations

import builtins
import json
import tarfile
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pairsynth.backends import choose_backend, make_backend
from pairsynth.cli import app
from pairsynth.errors import PairsynthError, RecipeError
from pairsynth.generate import generate_dataset
from pairsynth.recipe import RayConfig, recipe_from_dict
from tests.helpers import tiny_recipe_dict, write_recipe

ray = pytest.importorskip("ray", reason="the ray extra is not installed (scripts/setup.sh installs it)")

from pairsynth.backends.ray_data import INSTALL_HINT, plan_actors  # noqa: E402

NOT_COMPARED = {"title", "source"}  # the report names its own output directory


def recipe_data(sd_dir: Path, clip_dir: Path) -> dict:
    """Several commits of two generator batches each, some candidates rejected: room to kill mid-run."""
    # ranks, not a score threshold: the random tiny CLIP's cosines may all be negative (score 0)
    return tiny_recipe_dict(sd_dir, clip_dir, k=2, max_attempts=4, accept={"retrieval": {"max_rank": 3}},
                            generator={"batch_size": 2}, output={"commit_every": 4})


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def accepted_keys(out: Path) -> list[str]:
    keys = [row["key"] for row in manifest(out) if row["accepted"]]
    assert len(keys) == len(set(keys)), "a pair was written twice"
    return sorted(keys)


TIMING_FIELDS = {"elapsed_s", "seconds", "times"}
"""Fields that may differ between two runs of the same recipe (none of the manifest's today)."""


def untimed(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key not in TIMING_FIELDS} for row in rows]


def media(out: Path, folder: str) -> dict[str, object]:
    """Every file of a dataset folder, byte for byte; a tar's members also one by one, for a readable diff."""
    found: dict[str, object] = {}
    for path in sorted((out / folder).rglob("*")):
        if path.suffix == ".tar":
            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    data = tar.extractfile(member).read()
                    found[f"{path.name}/{member.name}"] = data
        if path.is_file():
            found[str(path.relative_to(out))] = path.read_bytes()
    return found


def report_summary(out: Path) -> dict:
    summary = json.loads((out / "report" / "summary.json").read_text())
    return {key: value for key, value in summary.items() if key not in NOT_COMPARED}


@pytest.fixture(scope="module")
def ray_session():
    for attempt in range(3):  # on a loaded machine the raylet can miss Ray's fixed 30 s start-up wait
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tiny_sd_dir, tiny_clip_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    generate_dataset(recipe_from_dict(recipe_data(tiny_sd_dir, tiny_clip_dir)), out)
    return out


def test_two_actors_write_the_local_runs_dataset(tiny_sd_dir, tiny_clip_dir, local_run, ray_session, tmp_path):
    out = tmp_path / "ray"
    backend = make_backend("ray", RayConfig(generator_actors=2))
    summary = generate_dataset(recipe_from_dict(recipe_data(tiny_sd_dir, tiny_clip_dir)), out, backend=backend)
    assert backend.layout.generators == 2 and backend.layout.cpus == 0.5  # 2 CPUs: one stays unreserved
    assert accepted_keys(out) == accepted_keys(local_run) and summary.accepted == len(accepted_keys(out))
    assert untimed(manifest(out)) == untimed(manifest(local_run))  # the same rows, scores to the bit
    assert media(out, "shards") == media(local_run, "shards")  # the same members, byte for byte
    assert media(out, "imagefolder") == media(local_run, "imagefolder")
    assert report_summary(out) == report_summary(local_run)
    assert summary.times.seconds["actors: generate"] > 0


def cli(*args: object) -> None:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output


def same_run(local: Path, on_ray: Path, folder: str) -> None:
    """Two runs of one command wrote the same pairs, rows and files."""
    assert accepted_keys(on_ray) == accepted_keys(local) and accepted_keys(local)
    assert untimed(manifest(on_ray)) == untimed(manifest(local))
    assert media(on_ray, folder) == media(local, folder) and media(local, folder)


def test_vary_on_ray_writes_the_local_runs_variations(tiny_sd_dir, tiny_clip_dir, local_run, ray_session, tmp_path):
    # The local run's pairs as sources; a wide band and no retrieval, so that some variations pass.
    command = ["vary", local_run / "imagefolder", "--per-pair", 2, "--strength", 0.5, "--steps", 4, "--batch-size", 2,
               "--model", f"local:{tiny_sd_dir}", "--clip", f"local-dir:{tiny_clip_dir}", "--min-score", 0.0,
               "--band", -1.0, 1.0, "--device", "cpu"]
    cli(*command, "--out", tmp_path / "local", "--backend", "local")
    cli(*command, "--out", tmp_path / "ray", "--backend", "ray", "--generator-actors", 2)
    same_run(tmp_path / "local", tmp_path / "ray", "imagefolder")


def test_balance_on_ray_fills_the_rare_class_like_a_local_run(tiny_sd_dir, tiny_clip_dir, ray_session, tmp_path):
    from pairsynth.world.shapes import ShapeScene, render

    # An imagefolder of classes in subfolders: 2, 6 and 6 items. The rare class is the one whose prompt the
    # random tiny judge ranks first, so that some new items are accepted.
    source, rows = tmp_path / "data", []
    for name, count in {"red_circle": 2, "blue_square": 6, "green_triangle": 6}.items():
        (source / name).mkdir(parents=True)
        colour, shape = name.split("_")
        for i in range(count):
            render(ShapeScene(shape=shape, colour=colour, position="left", cx=0.2 + 0.01 * i)).save(source / name / f"{i}.png")
            rows.append({"file_name": f"{name}/{i}.png", "text": f"a {colour} {shape} on the left"})
    (source / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = ["balance", source, "--target-per-class", 6, "--model", f"local:{tiny_sd_dir}", "--steps", 2,
               "--clip", f"local-dir:{tiny_clip_dir}", "--max-attempts", 2, "--batch-size", 2, "--device", "cpu",
               "--method", "both", "--strength", 0.5]  # text→X and variations: the actors load both models
    cli(*command, "--out", tmp_path / "local", "--backend", "local")
    cli(*command, "--out", tmp_path / "ray", "--backend", "ray", "--generator-actors", 2)
    same_run(tmp_path / "local", tmp_path / "ray", "imagefolder")
    balanced = lambda out: json.loads((out / "balance.json").read_text())  # noqa: E731
    assert balanced(tmp_path / "ray") == balanced(tmp_path / "local")
    assert [c["added"] for c in balanced(tmp_path / "ray")["classes"]][1:] == [0, 0]
    methods = {row["source"]["method"] for row in manifest(tmp_path / "ray")}
    assert methods == {"text", "vary"}


def _generator_pids() -> list[int]:
    # The GCS actor table: ray.util.state.list_actors needs the dashboard (ray[default]), which the
    # ray extra does not install.
    from ray._private import state

    return [info["Pid"] for info in state.actors(actor_state_name="ALIVE").values()
            if "_GenerateStage" in info["ActorClassName"]]


def test_a_killed_actor_is_restarted_and_its_batch_retried(tiny_sd_dir, tiny_clip_dir, local_run, ray_session, tmp_path):
    killed: list[int] = []

    def kill_one_actor(update) -> None:
        if not killed:  # after the first commit: the next chunks still need the actors
            pids = _generator_pids()
            assert pids, "no generator actor alive"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    # With a separate judge pool, so both map_batches stages run here.
    backend = make_backend("ray", RayConfig(generator_actors=2, scorer_actors=1))
    out = tmp_path / "ray"
    generate_dataset(recipe_from_dict(recipe_data(tiny_sd_dir, tiny_clip_dir)), out, backend=backend,
                     on_progress=kill_one_actor)
    assert killed
    assert accepted_keys(out) == accepted_keys(local_run)
    assert untimed(manifest(out)) == untimed(manifest(local_run))


def test_a_killed_driver_resumes_to_the_same_pairs(tiny_sd_dir, tiny_clip_dir, local_run, ray_session, tmp_path):
    recipe_path = write_recipe(tmp_path / "recipe.yaml", recipe_data(tiny_sd_dir, tiny_clip_dir))
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "pairsynth", "generate", str(recipe_path), "--out", str(out),
               "--backend", "ray", "--generator-actors", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_ADDRESS": ray_session}  # the module's Ray: no second start
    log = tmp_path / "driver.log"
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env)
    progress = out / "progress.json"
    killed = False
    try:  # a generous deadline: a fresh driver imports torch and starts two actors before its first commit
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and driver.poll() is None:
            if progress.exists() and json.loads(progress.read_text() or "{}").get("parts", 0) >= 1:
                driver.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.01)
    finally:
        if driver.poll() is None and not killed:
            driver.kill()
    assert killed, f"the driver never committed a part: {log.read_text()[-2000:]}"
    assert driver.wait(timeout=60) == -signal.SIGKILL
    assert not json.loads(progress.read_text())["complete"]
    summary = generate_dataset(recipe_from_dict(recipe_data(tiny_sd_dir, tiny_clip_dir)), out,
                               backend=make_backend("ray", RayConfig(generator_actors=2)))
    assert summary.resumed_parts >= 1
    assert accepted_keys(out) == accepted_keys(local_run)
    assert media(out, "imagefolder") == media(local_run, "imagefolder")


def test_a_bad_recipe_fails_before_ray_starts(tiny_sd_dir, tiny_clip_dir, tmp_path, monkeypatch):
    from pairsynth.backends import ray_data

    def no_start(self, job):
        raise AssertionError("Ray started for a bad recipe")

    monkeypatch.setattr(ray_data.RayDataBackend, "start", no_start)
    for bad in ({"k": 0}, {"backend": {"ray": {"generator_actors": 0}}}, {"backend": {"ray": {"gpus": 1}}}):
        recipe_path = write_recipe(tmp_path / "bad.yaml", {**recipe_data(tiny_sd_dir, tiny_clip_dir), **bad})
        result = CliRunner().invoke(app, ["generate", str(recipe_path), "--out", str(tmp_path / "out"), "--backend", "ray"])
        assert result.exit_code == 2, result.output
        assert "bad.yaml" in result.output
    with pytest.raises(RecipeError, match="--generator-actors"):
        choose_backend("ray", None, generator_actors="many")
    with pytest.raises(PairsynthError, match="applies to --backend ray only"):
        choose_backend("local", None, scorer_actors=1)


def test_a_missing_ray_install_names_the_extra(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def without_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_ray)
    with pytest.raises(PairsynthError) as caught:
        make_backend("ray")
    assert str(caught.value) == INSTALL_HINT and "pairsynth[ray]" in INSTALL_HINT
    assert "\n" not in str(caught.value)


def test_actor_layout_leaves_a_cpu_unreserved_and_fits_the_gpus():
    two_cores = plan_actors(RayConfig(), cpus=2, gpus=0)
    assert (two_cores.generators, two_cores.threads, two_cores.cpus, two_cores.gpus_per_generator) == (2, 1, 0.5, 0.0)
    assert plan_actors(RayConfig(generator_actors=1), cpus=2, gpus=0).threads == 2
    node = plan_actors(RayConfig(), cpus=96, gpus=8)
    assert (node.generators, node.gpus_per_generator, node.threads) == (8, 1.0, 12)
    shared = plan_actors(RayConfig(gpus_per_actor=0.5, scorer_actors=2, gpus_per_scorer=0.25), cpus=32, gpus=4)
    assert shared.generators == 7 and shared.scorers == 2
    with pytest.raises(PairsynthError, match="need 9 GPUs; the Ray cluster has 8"):
        plan_actors(RayConfig(generator_actors=9), cpus=96, gpus=8)


def test_the_backend_section_is_not_in_the_fingerprint(tiny_sd_dir, tiny_clip_dir):
    data = recipe_data(tiny_sd_dir, tiny_clip_dir)
    with_ray = recipe_from_dict({**data, "backend": {"ray": {"generator_actors": 4, "cpus_per_actor": 2}}})
    assert with_ray.fingerprint() == recipe_from_dict(data).fingerprint()
    assert with_ray.backend.ray.generator_actors == 4
    assert choose_backend(None, with_ray.backend.ray, generator_actors="2").settings.generator_actors == 2


def test_a_loaded_job_travels_to_workers_without_its_models(tiny_sd_dir, tiny_clip_dir):
    import pickle

    from pairsynth.generate import GenerateJob

    job = GenerateJob(recipe_from_dict(recipe_data(tiny_sd_dir, tiny_clip_dir)))
    job.load()
    assert job.generators and job.scorers
    blob = pickle.dumps(job)
    copy = pickle.loads(blob)
    assert copy.generators == {} and copy.scorers == {} and len(blob) < 50_000
    assert copy.fingerprint() == job.fingerprint() and copy.batch_size == 2
