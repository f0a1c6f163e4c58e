"""Do pairsynth's pairs raise held-out retrieval over a few real pairs? The toy shapes world, end to end.

Real pairs: renders of the shapes world (`pairsynth/world/shapes.py`), ``--real-per-caption`` per
caption (random size, position and background), half held out. Synthetic pairs: a ``pairsynth generate
pairsynth/examples/shapes.yaml`` output (generated here when ``--synthetic`` does not exist). Then
``pairsynth probe --task retrieval``: a tiny open_clip CLIP trained from scratch on ``--shots`` real
pairs per caption, with and without the synthetic pairs mixed in (p = 0.5), R@1/R@5 on the held-out
real renders, paired over the draws.

    .venv/bin/python benchmarks/probe_shapes_retrieval.py --out out/probe-shapes

Last line: ``shapes retrieval R@1 (image→caption), SHOTS/caption: best non-synthetic …, real+NAME … (gain G [LOW, HIGH]), …
(goal: a gain interval above zero: met|not met)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path

import torch


def write_real_renders(root: Path, per_caption: int, seed: int) -> Path:
    """``per_caption`` renders of every shapes-world caption as an imagefolder (``file_name``, ``text``)."""
    from pairsynth.world import shapes

    folder = root / "imagefolder"
    if (folder / "metadata.jsonl").is_file():
        return folder
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    counts = {caption: 0 for caption in shapes.all_captions()}
    rows = []
    while min(counts.values()) < per_caption:
        scene = shapes.sample_scene(rng)
        caption = shapes.caption(scene)
        if counts[caption] >= per_caption:
            continue
        name = f"{len(rows):05d}.png"
        shapes.render(scene).save(folder / name)
        rows.append({"file_name": name, "text": caption})
        counts[caption] += 1
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def run_world_probe(*, world: str, write_real, example: str, steps: int, title: str) -> None:
    """The CLI both retrieval benchmarks share: real renders, a synthetic run of ``example``, the probe, R@1.

    Args:
        world: ``shapes`` or ``sounds`` (the default output folder's name).
        write_real: ``(folder, per_caption, seed) -> folder`` writing the world's real pairs.
        example: the example recipe that makes the synthetic pairs (``shapes.yaml`` …).
        steps: default training steps of the probe's contrastive model.
        title: the verdict line's start.
    """
    parser = argparse.ArgumentParser(description=f"Do pairsynth's pairs raise held-out retrieval in the {world} world?")
    parser.add_argument("--out", type=Path, default=Path(f"out/probe-{world}"))
    parser.add_argument("--synthetic", type=Path, default=None, help=f"a {example} output (default: OUT/synthetic)")
    parser.add_argument("--real-per-caption", type=int, default=6)
    parser.add_argument("--shots", default="2")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from pairsynth.probe.classifiers import TrainSettings
    from pairsynth.probe.protocol import ProbeConfig, probe_to_folder

    real = write_real(args.out / "real", args.real_per_caption, seed=0)
    synthetic = args.synthetic or args.out / "synthetic"
    if not (synthetic / "manifest.jsonl").is_file():
        from pairsynth.generate import generate_dataset
        from pairsynth.recipe import load_recipe

        generate_dataset(load_recipe(Path(__file__).parents[1] / "pairsynth" / "examples" / example), synthetic)
    config = ProbeConfig(shots=tuple(int(n) for n in args.shots.split(",")), draws=args.draws, p=0.5,
                         train=TrainSettings(steps=args.steps, batch_size=32, lr=1e-3))
    started = time.perf_counter()
    summary = probe_to_folder(real, [synthetic], args.out / "probe", config, task="retrieval")
    load = os.getloadavg()[0]
    print(f"{time.perf_counter() - started:.0f} s, {args.threads} torch thread(s), load average {load:.1f} "
          f"on {os.cpu_count()} CPUs; report: {args.out / 'probe' / 'index.html'}")
    for line in r1_lines(summary, title):
        print(line)


def main() -> None:
    run_world_probe(world="shapes", write_real=write_real_renders, example="shapes.yaml", steps=150,
                    title="shapes retrieval R@1 (image→caption)")


def r1_lines(summary: dict, title: str) -> list[str]:
    """A table of sample→caption R@1 per condition and shot count, then the one-line verdict ``TITLE, …``."""
    lines = [f"{'pairs/caption':>13} " + " ".join(f"{c:>26}" for c in summary["conditions"])]
    for result in summary["results"]:
        cells = [f"{100 * v['mean']:5.1f} ± {100 * (v['std'] or 0):4.1f}"
                 for v in result["metrics"]["i2t_r1"].values()]
        lines.append(f"{result['shots']:>13} " + " ".join(f"{c:>26}" for c in cells))
    parts = []
    for result in summary["results"]:
        metrics = result["metrics"]["i2t_r1"]
        cells = []
        for name, gain in result["gains"]["i2t_r1"].items():
            interval = (f"[{100 * gain['low']:+.1f}, {100 * gain['high']:+.1f}]" if gain["low"] is not None
                        else "[no interval]")
            cells.append(f"{name} {100 * metrics[name]['mean']:.1f} (gain {100 * gain['mean']:+.1f} {interval})")
        supported = any(g["above_zero"] for g in result["gains"]["i2t_r1"].values())
        best = result["baseline"]["i2t_r1"]
        parts.append(f"{result['shots']}/caption: best non-synthetic {best} {100 * metrics[best]['mean']:.1f}, "
                     + ", ".join(cells) + f", {result['draws']} draws (goal: a gain interval above zero: "
                     f"{'met' if supported else 'not met'})")
    lines.append(f"{title}, " + "; ".join(parts))
    return lines


if __name__ == "__main__":
    main()
