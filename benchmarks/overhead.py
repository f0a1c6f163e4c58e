"""Wall time of ``generate_dataset`` against a bare loop over the same diffusers pipeline and batches.

The bare loop is what a user would write by hand: call the pipeline on the same prompts, seeds and
batch sizes, nothing else. pairsynth adds scoring, acceptance, manifest, shards, commits and the report
on top; the target is a ratio of at most 1.05. pairsynth also makes generation itself cheaper (each
distinct prompt encoded once per batch, inference mode), so a second baseline, the bare loop with those
two changes too, isolates what the orchestration alone costs. Models load once, outside all timings.

Runs are interleaved, and each repeat's ratios are taken against that repeat's bare loop: on a shared
virtual machine the speed drifts by ±10 % over seconds, and paired ratios with their median cancel
most of it.

    .venv/bin/python benchmarks/overhead.py [--model toy-shapes] [--clip toy-shapes-clip] [--steps 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import best_of, describe_machine  # noqa: E402
from pairsynth.recipe import recipe_from_dict  # noqa: E402
from pairsynth.stages import CaptionState, Plan, plan_chunk  # noqa: E402

CAPTIONS = [f"a {c} {s} on the {p}" for c in ("red", "green", "blue", "yellow")
            for s in ("circle", "square", "triangle") for p in ("left", "right")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy-shapes")
    parser.add_argument("--clip", default="toy-shapes-clip")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from pairsynth.alignment.clip_scorer import ClipScorer
    from pairsynth.modalities.pipelines import prompt_arguments
    from pairsynth.modalities.text_to_image import ImageSampling, TextToImage
    from pairsynth.generate import generate_dataset

    recipe = recipe_from_dict({
        "captions": CAPTIONS, "k": args.k, "seed": 0,
        "generator": {"model": args.model, "steps": args.steps, "guidance_scale": 4.0, "batch_size": args.batch_size},
        "scorer": {"clip": args.clip},
        "accept": {"retrieval": None},  # accept all: both sides then make exactly the same candidates
        "output": {"commit_every": 256},
    })
    generator = TextToImage.from_pretrained(args.model, sampling=ImageSampling(steps=args.steps, guidance_scale=4.0))
    scorer = ClipScorer.from_pretrained(args.clip)
    plan = Plan(k=recipe.k, budget=recipe.attempts_per_caption, seed=recipe.seed, chunk_size=recipe.output.commit_every)
    conditions = plan_chunk([CaptionState(caption=c, index=i) for i, c in enumerate(recipe.caption_list)], plan)
    pipeline = generator.pipeline

    def bare_loop() -> None:
        for start in range(0, len(conditions), args.batch_size):
            batch = conditions[start : start + args.batch_size]
            pipeline(prompt=[c.caption for c in batch], num_inference_steps=args.steps, guidance_scale=4.0,
                     generator=[torch.Generator().manual_seed(c.seed) for c in batch], output_type="np")

    @torch.inference_mode()
    def tuned_bare_loop() -> None:
        for start in range(0, len(conditions), args.batch_size):
            batch = conditions[start : start + args.batch_size]
            pipeline(**prompt_arguments(pipeline, [c.caption for c in batch], None, 4.0),
                     num_inference_steps=args.steps, guidance_scale=4.0,
                     generator=[torch.Generator().manual_seed(c.seed) for c in batch], output_type="np")

    stages: list[dict[str, float]] = []

    def pairsynth_run() -> None:
        with tempfile.TemporaryDirectory() as out:
            summary = generate_dataset(recipe, out, generators={"image": generator}, scorers={"image": scorer})
        stages.append({**summary.times.seconds, "total": summary.elapsed_s})

    runs = {"bare diffusers loop": bare_loop, "pairsynth generate": pairsynth_run,
            "bare loop, tuned like pairsynth": tuned_bare_loop}
    bare_loop()  # warm-up: first calls allocate and pick kernels
    pairsynth_run()
    stages.clear()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, action in runs.items():
            times[name].append(best_of(1, action))
    print(f"machine: {describe_machine()}")
    print(f"workload: {len(conditions)} images, {args.steps} steps, batch {args.batch_size}, model {args.model}, "
          f"CLIP {args.clip}, {args.repeats} interleaved repeats")
    for name, values in times.items():
        print(f"{name:33s}: median {statistics.median(values):6.2f} s, best {min(values):6.2f} s "
              f"({len(conditions) / statistics.median(values):5.1f} images/s)")

    def ratio(name: str, baseline: str) -> float:
        return statistics.median(a / b for a, b in zip(times[name], times[baseline]))

    ours, bare, tuned = "pairsynth generate", "bare diffusers loop", "bare loop, tuned like pairsynth"
    headline = ratio(ours, bare)
    print(f"ratio pairsynth / bare loop: {headline:.3f} (median of paired ratios; target <= 1.05: "
          f"{'met' if headline <= 1.05 else 'NOT met'}); of the best runs {min(times[ours]) / min(times[bare]):.3f}")
    print(f"orchestration alone (pairsynth / tuned bare loop): {ratio(ours, tuned):.3f}; "
          f"the tuning alone (tuned / bare): {ratio(tuned, bare):.3f}")
    # Within one run the machine's drift hits every stage alike: the shares are steadier than the ratios.
    shares = {stage: statistics.median(run.get(stage, 0.0) / run["total"] for run in stages)
              for stage in stages[0] if stage != "total"}
    print("inside pairsynth's runs (median share of its wall time): "
          + ", ".join(f"{stage} {100 * share:.1f} %" for stage, share in shares.items())
          + f"; all but generation {100 * (1 - shares['generate']):.1f} %")


if __name__ == "__main__":
    main()
