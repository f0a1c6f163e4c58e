"""Accepted pairs per second: the local backend (2 threads) against Ray Data with 1 and 2 one-thread actors.

One recipe on the toy zoo (24 captions, toy-shapes + toy-shapes-clip), run once per backend in one
process, in one local Ray of 2 CPUs. Throughput counts the steady state: accepted pairs over the run's
generate + score + write seconds (model loading and the report excluded on both sides); Ray's fixed
start-up (``ray.init`` plus the actors' start and model load) is printed on its own. Also printed: the
per-stage seconds the README's scaling projection starts from, and a separate judge pool against the
fused default.

    .venv/bin/python benchmarks/ray_scaling.py [--k 4] [--steps 15] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import describe_machine  # noqa: E402
from pairsynth.recipe import RayConfig, recipe_from_dict  # noqa: E402

CAPTIONS = [f"a {c} {s} on the {p}" for c in ("red", "green", "blue", "yellow")
            for s in ("circle", "square", "triangle") for p in ("left", "right")]


def steady_seconds(summary) -> float:
    seconds = summary.times.seconds
    return sum(seconds.get(stage, 0.0) for stage in ("generate", "score", "write"))


def driver_seconds_per_pair(size: int, count: int = 16) -> dict[str, float]:
    """The driver's serial work per accepted ``size``² image pair: manifest row, shard member, folder file,
    commit; with the PNG already encoded on an actor (the Ray backend) and encoded in the driver (local)."""
    import numpy as np

    from pairsynth.alignment.acceptance import Decision
    from pairsynth.candidates import Candidate, Condition
    from pairsynth.stages import write_candidates
    from pairsynth.writers import ManifestWriter, dataset_writers
    from pairsynth.writers.base import encode_media

    rng = np.random.default_rng(0)
    seconds = {}
    for where in ("encoded on actors", "encoded in the driver"):
        with tempfile.TemporaryDirectory() as root:
            manifest, writers = ManifestWriter(Path(root)), dataset_writers(Path(root), ["webdataset", "imagefolder"])
            candidates = []
            for index in range(count):  # photo-like: smooth at half resolution, upsampled, a little noise
                half = rng.random((size // 16, size // 16, 3), dtype=np.float32).repeat(8, 0).repeat(8, 1)
                image = np.clip(half.repeat(2, 0).repeat(2, 1) + rng.normal(0, 0.02, (size, size, 3)), 0, 1)
                condition = Condition(caption="a photo", caption_index=0, sample_index=index, seed=index)
                candidate = Candidate(condition=condition, key=f"{index:020x}", provenance={"model": "bench"},
                                      image=image.astype(np.float32), decision=Decision(True, "accepted", ""))
                if where == "encoded on actors":
                    encode_media(candidate)
                candidates.append(candidate)
            started = time.perf_counter()
            write_candidates(candidates, manifest, writers)
            for writer in (manifest, *writers):
                writer.commit(0)
            seconds[where] = (time.perf_counter() - started) / count
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--commit-every", type=int, default=96, help="a multiple of actors × batch size")
    parser.add_argument("--skip-judge-pool", action="store_true", help="skip the separate judge pool run")
    args = parser.parse_args()

    import ray

    from pairsynth.backends import make_backend
    from pairsynth.generate import generate_dataset

    recipe = recipe_from_dict({
        "captions": CAPTIONS, "k": args.k, "max_attempts": 3 * args.k, "seed": 0,
        "generator": {"model": "toy-shapes", "steps": args.steps, "guidance_scale": 4.0, "batch_size": args.batch_size},
        "scorer": {"clip": "toy-shapes-clip"},
        "accept": {"min_clip_score": 20.0, "retrieval": {"max_rank": 1}},
        "output": {"formats": ["webdataset", "imagefolder"], "commit_every": args.commit_every},
    })
    load_before = os.getloadavg()
    results: dict[str, tuple[float, object]] = {}

    def run(name: str, backend=None) -> None:
        with tempfile.TemporaryDirectory() as out:
            summary = generate_dataset(recipe, out, backend=backend)
        results[name] = (summary.accepted / steady_seconds(summary), summary)

    torch.set_num_threads(2)
    run("local, 2 threads")
    torch.set_num_threads(1)  # the driver only writes; the actors compute
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - started
    run("ray, 1 actor × 1 thread", make_backend("ray", RayConfig(generator_actors=1, cpus_per_actor=1)))
    run("ray, 2 actors × 1 thread", make_backend("ray", RayConfig(generator_actors=2, cpus_per_actor=1)))
    if not args.skip_judge_pool:
        run("ray, 2 actors + 1 judge actor", make_backend("ray", RayConfig(generator_actors=2, cpus_per_actor=1,
                                                                            scorer_actors=1)))
    ray.shutdown()
    load_after = os.getloadavg()

    local_rate, local_summary = results["local, 2 threads"]
    print(f"machine: {describe_machine()}")
    print(f"load average (1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {', '.join(f'{x:.2f}' for x in load_after)} (the CPU is shared with other jobs)")
    print(f"workload: {len(CAPTIONS)} captions × k={args.k}, toy-shapes {args.steps} steps, batch {args.batch_size}, "
          f"commit every {args.commit_every}, toy-shapes-clip, {local_summary.accepted} accepted of "
          f"{local_summary.candidates} candidates")
    for name, (rate, summary) in results.items():
        assert summary.accepted == local_summary.accepted, f"{name} accepted a different number of pairs"
        print(f"{name:32s}: {rate:6.2f} accepted pairs/s ({rate / local_rate:.2f}× local); stages: {summary.times}")
    load_s = {name: summary.times.seconds.get("load", 0.0) for name, (_, summary) in results.items()}
    print(f"ray fixed start-up: ray.init {init_s:.1f} s + actors started and models loaded "
          f"{load_s['ray, 2 actors × 1 thread']:.1f} s (local model load {load_s['local, 2 threads']:.1f} s) "
          f"(goal < 15 s: {'met' if init_s + load_s['ray, 2 actors × 1 thread'] < 15 else 'not met'})")
    two = results["ray, 2 actors × 1 thread"][0]
    print(f"scaling: ray 2 actors / 1 actor: {two / results['ray, 1 actor × 1 thread'][0]:.2f}")
    if "ray, 2 actors + 1 judge actor" in results:
        print(f"judge pool / fused: {results['ray, 2 actors + 1 judge actor'][0] / two:.2f} (fused is the default)")
    for size in (512, 1024):
        costs = driver_seconds_per_pair(size)
        print(f"driver per accepted {size}² pair: " + ", ".join(f"{where} {1000 * s:.1f} ms" for where, s in costs.items()))
    ratio = two / local_rate
    if max(load_before[0], load_after[0]) > (os.cpu_count() or 1):
        print(f"warning: load average above the {os.cpu_count()} cores: multi-threaded torch (the local run) suffers "
              "far more from contention than one-thread actors, so the ratio below measures the load, not the engine")
    print(f"ray 2 actors / local: {ratio:.2f} (goal 0.9: {'met' if ratio >= 0.9 else 'not met'})")


if __name__ == "__main__":
    main()
