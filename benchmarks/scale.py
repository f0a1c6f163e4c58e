"""Seconds per 1,000 candidates and peak RSS as a run grows from 1 k to 1 M candidates.

A fast fake generator (16² images) and judge (benchmarks/fakes.py) leave only the engine: planning,
acceptance, manifest, shards, commits, resume counting and the end-of-run report. Captions grow with
the run (4 candidates each), as a big caption list does. Each size runs in its own process, so its
peak RSS (``ru_maxrss``) is its own. Sizes above ``--measure-up-to`` are not run: their figures are
extrapolated from the largest measured size and printed as such.

    .venv/bin/python benchmarks/scale.py [--sizes 1000,10000,100000,1000000] [--measure-up-to 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PER_CAPTION = 4


def one_size(candidates: int) -> dict[str, float]:
    """Run ``candidates`` candidates in this process; return its timings and peak RSS."""
    import torch

    torch.set_num_threads(1)
    from benchmarks.fakes import FakeImageGenerator, FakeJudge
    from pairsynth.generate import generate_dataset
    from pairsynth.recipe import recipe_from_dict

    captions = max(1, candidates // PER_CAPTION)
    recipe = recipe_from_dict({
        "captions": [f"caption {i}" for i in range(captions)], "k": PER_CAPTION, "max_attempts": PER_CAPTION,
        "seed": 1, "generator": {"model": "fake", "batch_size": 256},
        "accept": {"min_clip_score": 80.0, "retrieval": None},
        "output": {"commit_every": 1024, "formats": ["webdataset"], "report": True},
    })
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = generate_dataset(recipe, out, generators={"image": FakeImageGenerator(size=16, texture=0.0)},
                                   scorers={"image": FakeJudge(batch_size=1024)})
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        generate_dataset(recipe, out, generators={"image": FakeImageGenerator(size=16)}, scorers={"image": FakeJudge()})
        resume = time.perf_counter() - start  # a finished run: count every manifest row, then stop
    return {"candidates": summary.candidates, "accepted": summary.accepted, "seconds": elapsed,
            "resume_seconds": resume, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "stages": dict(summary.times.seconds), "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--measure-up-to", type=int, default=100_000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one)))
        return

    from benchmarks.common import describe_machine

    print(describe_machine())
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        if size > args.measure_up_to:
            continue
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        output = subprocess.run([sys.executable, __file__, "--one", str(size)], env=env, check=True,
                                capture_output=True, text=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        results.append(result)
        per_k = result["seconds"] / result["candidates"] * 1000
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result["stages"].items())
        print(f"{result['candidates']:>9} candidates: {per_k:6.2f} s per 1,000  peak RSS {result['peak_rss_mb']:6.0f} MB  "
              f"resume of the finished run {result['resume_seconds']:.1f} s  [{stages}]  load {result['load']:.2f}")
    base = results[0]["seconds"] / results[0]["candidates"]
    ratios = [r["seconds"] / r["candidates"] / base for r in results]
    print("time per candidate relative to the smallest size: " + ", ".join(
        f"{r['candidates']}: {x:.2f}×" for r, x in zip(results, ratios)))
    largest = results[-1]
    target = max(int(s) for s in args.sizes.split(","))
    rss = largest["peak_rss_mb"]
    if target > largest["candidates"]:
        # RSS: what grows with the run is the per-caption state; extrapolate linearly from the last two sizes
        if len(results) >= 2:
            prev = results[-2]
            slope = (rss - prev["peak_rss_mb"]) / (largest["candidates"] - prev["candidates"])
            rss = rss + slope * (target - largest["candidates"])
        print(f"{target} candidates not run: peak RSS extrapolated linearly from the last two sizes, "
              f"{rss:.0f} MB; time per candidate assumed as at {largest['candidates']}")
    spread = max(ratios) - 1
    met = spread <= 0.2 and rss < 600
    print(f"scale: {max(ratios):.2f}× time per candidate, {rss:.0f} MB peak RSS at {target} "
          f"(goal ≤ 1.20× and < 600 MB: {'met' if met else 'not met'})")


if __name__ == "__main__":
    main()
