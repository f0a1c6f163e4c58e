"""Accepted pairs/s of pairsynth against the generator alone, with a generator that stands in for a GPU.

The stand-in sleeps a fixed time per batch (releasing the GIL, as a CUDA call does) and returns
512×512 images (smooth, with some texture: PNG costs about what an SD image does). Everything is
accepted (no threshold, no retrieval), so every candidate is encoded and written to webdataset and
imagefolder. Three runs on the same work: the generator alone (the floor), pairsynth serial (write
after generate, as before), and pairsynth overlapped (chunk N written while chunk N+1 generates;
encoder threads from the cores a GPU run leaves free). A second section does the same with a CPU
"model" (torch matmuls on all of torch's threads) to decide the CPU default: overlapped or serial.

    .venv/bin/python benchmarks/overlap.py [--captions 8] [--k 4] [--batch-size 8] [--gpu-ms 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import describe_machine  # noqa: E402
from benchmarks.fakes import FakeImageGenerator, FakeJudge  # noqa: E402
from pairsynth.generate import GenerateJob  # noqa: E402
from pairsynth.recipe import recipe_from_dict  # noqa: E402
from pairsynth.run import run_job  # noqa: E402
from pairsynth.stages import write_workers  # noqa: E402
from pairsynth.writers.base import encode_image  # noqa: E402


def recipe(captions: int, k: int, batch_size: int, image_format: str = "png"):
    return recipe_from_dict({
        "captions": [f"caption number {i}" for i in range(captions)], "k": k, "max_attempts": k, "seed": 1,
        "generator": {"model": "fake", "batch_size": batch_size},
        "accept": {"retrieval": None},
        "output": {"commit_every": 2 * batch_size, "formats": ["webdataset", "imagefolder"], "report": False,
                   "image_format": image_format},
    })


def generator_alone(generator: FakeImageGenerator, candidates: int, batch_size: int) -> float:
    start = time.perf_counter()
    for first in range(0, candidates, batch_size):
        count = min(batch_size, candidates - first)
        generator.generate([f"caption number {i}" for i in range(count)], list(range(first, first + count)))
    return time.perf_counter() - start


def pairsynth_run(generator, args, *, overlap: bool, workers: int) -> tuple[float, int, dict[str, float]]:
    job = GenerateJob(recipe(args.captions, args.k, args.batch_size, args.image_format), generators={"image": generator},
                      scorers={"image": FakeJudge()})
    job.output = dataclasses.replace(job.output, overlap=overlap, write_workers=workers)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = run_job(job, out)
        return time.perf_counter() - start, summary.accepted, dict(summary.times.seconds)


def section(title: str, generator, args, settings: list[tuple[str, bool, int]]) -> dict[str, float]:
    candidates = args.captions * args.k
    alone = min(generator_alone(generator, candidates, args.batch_size) for _ in range(args.repeats))
    print(f"\n{title}: generator alone {alone:.2f} s for {candidates} images "
          f"({candidates / alone:.1f} images/s), load {os.getloadavg()[0]:.2f}")
    ratios = {}
    for name, overlap, workers in settings:
        best = None
        for _ in range(args.repeats):
            result = pairsynth_run(generator, args, overlap=overlap, workers=workers)
            best = result if best is None or result[0] < best[0] else best
        seconds, accepted, stages = best
        ratios[name] = alone / seconds  # accepted pairs/s of pairsynth ÷ the generator's images/s
        stage_text = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
        print(f"  {name:<34} {seconds:6.2f} s  {accepted / seconds:6.1f} pairs/s  {ratios[name]:.2f}× the generator "
              f"alone  [{stage_text}]  load {os.getloadavg()[0]:.2f}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=8)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--gpu-ms", type=float, default=50.0, help="stand-in GPU time per image")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--image-format", choices=["png", "jpg"], default="png",
                        help="jpg (quality 95) isolates the engine from PNG's encoding cost")
    parser.add_argument("--cpu-section", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    print(describe_machine())
    sample = FakeImageGenerator(size=args.size).generate(["x"], [0])[0].pixels
    pixels = (sample * 255).round().astype("uint8")
    start = time.perf_counter()
    for _ in range(5):
        encode_image(pixels, args.image_format)
    print(f"{args.image_format.upper()} encode of one {args.size}² stand-in image: "
          f"{(time.perf_counter() - start) / 5 * 1000:.0f} ms")

    gpu = FakeImageGenerator(size=args.size, seconds_per_batch=args.gpu_ms / 1000 * args.batch_size)
    gpu_workers = write_workers(generation_threads=1)
    ratios = section(f"GPU stand-in ({args.gpu_ms:.0f} ms/image, GIL released)", gpu, args, [
        ("serial (write after generate)", False, 0),
        (f"overlapped, {gpu_workers} encoder threads (GPU default)", True, gpu_workers),
    ])
    if args.cpu_section:
        probe = FakeImageGenerator(size=32, texture=0.0, matmuls_per_batch=50)
        start = time.perf_counter()
        probe.generate(["x"], [0])
        per_matmul = (time.perf_counter() - start) / 50
        count = max(1, round(args.gpu_ms / 1000 * args.batch_size / per_matmul))
        cpu = FakeImageGenerator(size=args.size, matmuls_per_batch=count)
        threads = torch.get_num_threads()
        cpu_ratios = section(f"CPU model (torch matmuls on {threads} threads)", cpu, args, [
            ("serial (CPU default)", False, 0),
            ("overlapped, writer thread only", True, 0),
            (f"overlapped, {write_workers(threads)} encoder threads", True, write_workers(threads)),
        ])
        print(f"  CPU: overlapped/serial = {cpu_ratios['overlapped, writer thread only'] / cpu_ratios['serial (CPU default)']:.2f}")
    figure = max(v for k, v in ratios.items() if k.startswith("overlapped"))
    print(f"  GPU stand-in: overlapped/serial = {figure / ratios['serial (write after generate)']:.2f}")
    print(f"overlap ({args.image_format}): {figure:.2f}× the generator alone (goal ≥ 0.90×: "
          f"{'met' if figure >= 0.9 else 'not met'})")


if __name__ == "__main__":
    main()
