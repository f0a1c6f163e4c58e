"""Do pairsynth's pairs raise held-out audio retrieval over a few real pairs? The toy sounds world, end to end.

Real pairs: renders of the sounds world (`pairsynth/world/sounds.py`: 8 captions, 1 s at 16 kHz,
random pitch, timing and loudness per seed), ``--real-per-caption`` per caption, half held out.
Synthetic pairs: a ``pairsynth generate pairsynth/examples/sounds.yaml`` output (generated here when
``--synthetic`` does not exist). Then ``pairsynth probe --task retrieval``: a tiny transformers
``ClapModel`` trained from scratch on ``--shots`` real pairs per caption, with and without the
synthetic pairs mixed in (p = 0.5), R@1/R@5 on the held-out real renders, paired over the draws.

    .venv/bin/python benchmarks/probe_sounds_retrieval.py --out out/probe-sounds

Last line: ``sounds retrieval R@1 (audio→caption), SHOTS/caption: best non-synthetic …, real+NAME … (gain G [LOW, HIGH]), …
(goal: a gain interval above zero: met|not met)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch

from benchmarks.probe_shapes_retrieval import r1_lines


def write_real_sounds(root: Path, per_caption: int, seed: int) -> Path:
    """``per_caption`` renders of every sounds-world caption as an audiofolder (``file_name``, ``text``).

    Render seeds start at ``seed × 1,000,000``, so two folders with different ``seed`` share no clip.
    """
    from pairsynth.audio_io import write_flac
    from pairsynth.world import sounds

    folder = root / "audiofolder"
    if (folder / "metadata.jsonl").is_file():
        return folder
    folder.mkdir(parents=True)
    counts = {caption: 0 for caption in sounds.all_captions()}
    rows, render_seed = [], seed * 1_000_000
    while min(counts.values()) < per_caption:
        wave, caption, _ = sounds.render_sample(render_seed)
        render_seed += 1
        if counts[caption] >= per_caption:
            continue
        name = f"{len(rows):05d}.flac"
        write_flac(folder / name, wave, sounds.SAMPLE_RATE)
        rows.append({"file_name": name, "text": caption})
        counts[caption] += 1
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/probe-sounds"))
    parser.add_argument("--synthetic", type=Path, default=None, help="a sounds.yaml output (default: OUT/synthetic)")
    parser.add_argument("--real-per-caption", type=int, default=6)
    parser.add_argument("--shots", default="2")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from pairsynth.probe.classifiers import TrainSettings
    from pairsynth.probe.protocol import ProbeConfig, probe_to_folder

    real = write_real_sounds(args.out / "real", args.real_per_caption, seed=0)
    synthetic = args.synthetic or args.out / "synthetic"
    if not (synthetic / "manifest.jsonl").is_file():
        from pairsynth.generate import generate_dataset
        from pairsynth.recipe import load_recipe

        generate_dataset(load_recipe(Path(__file__).parents[1] / "pairsynth/examples/sounds.yaml"), synthetic)
    config = ProbeConfig(shots=tuple(int(n) for n in args.shots.split(",")), draws=args.draws, p=0.5,
                         train=TrainSettings(steps=args.steps, batch_size=32, lr=1e-3))
    started = time.perf_counter()
    summary = probe_to_folder(real, [synthetic], args.out / "probe", config, task="retrieval")
    load = os.getloadavg()[0]
    print(f"{time.perf_counter() - started:.0f} s, {args.threads} torch thread(s), load average {load:.1f} "
          f"on {os.cpu_count()} CPUs; report: {args.out / 'probe' / 'index.html'}")
    for line in r1_lines(summary, "sounds retrieval R@1 (audio→caption)"):
        print(line)


if __name__ == "__main__":
    main()
