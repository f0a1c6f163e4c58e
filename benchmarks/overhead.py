"""Wall time of ``generate_dataset`` against a bare loop over the same diffusers pipeline and batches.

The bare loop is what a user would write by hand: call the pipeline on the same prompts, seeds and
batch sizes, nothing else. pairsynth adds scoring, acceptance, manifest, shards and commits on top;
the target is a ratio of at most 1.05. Models load once, outside both timings.

    .venv/bin/python benchmarks/overhead.py [--model toy-shapes] [--clip toy-shapes-clip] [--steps 15]
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from alignment.clip_scorer import ClipScorer
    from modalities.text_to_image import ImageSampling, TextToImage
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
    plan = Plan(recipe.k, recipe.attempts_per_caption, recipe.seed, chunk_size=recipe.output.commit_every)
    conditions = plan_chunk([CaptionState(c, i) for i, c in enumerate(recipe.caption_list)], plan)
    pipeline = generator.pipeline

    def bare_loop() -> None:
        for start in range(0, len(conditions), args.batch_size):
            batch = conditions[start : start + args.batch_size]
            pipeline(prompt=[c.caption for c in batch], num_inference_steps=args.steps, guidance_scale=4.0,
                     generator=[torch.Generator().manual_seed(c.seed) for c in batch], output_type="np")

    without_report = recipe.model_copy(update={"output": recipe.output.model_copy(update={"report": False})})

    def pairsynth_run(this_recipe=recipe) -> None:
        with tempfile.TemporaryDirectory() as out:
            generate_dataset(this_recipe, out, generators={"image": generator}, scorers={"image": scorer})

    bare_loop()  # warm-up: first calls allocate and pick kernels
    bare, ours, no_report = [], [], []
    for _ in range(args.repeats):  # interleaved, so drifting load hits both alike
        bare.append(best_of(1, bare_loop))
        ours.append(best_of(1, pairsynth_run))
        no_report.append(best_of(1, lambda: pairsynth_run(without_report)))
    print(f"machine: {describe_machine()}")
    print(f"workload: {len(conditions)} images, {args.steps} steps, batch {args.batch_size}, model {args.model}, CLIP {args.clip}")
    print(f"bare diffusers loop : {min(bare):7.2f} s  ({len(conditions) / min(bare):6.1f} images/s)")
    print(f"pairsynth generate  : {min(ours):7.2f} s  ({len(conditions) / min(ours):6.1f} images/s)")
    print(f"  without the report: {min(no_report):7.2f} s  (the report is a fixed cost per run)")
    ratio = min(ours) / min(bare)
    print(f"ratio pairsynth / bare: {ratio:.3f}  (target <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'}); "
          f"without the report {min(no_report) / min(bare):.3f}")


if __name__ == "__main__":
    main()
