"""How similar variations stay to their sources, by strength: the measurements behind the default
``similarity_band`` of ``pairsynth vary``.

For toy-world renders (the "real data" of the shapes world), makes img2img variations with the toy
zoo at several strengths and prints percentiles of the CLIP image–image cosine to the source, and
how often the variation still passes the caption check (rank 1 among the world's captions).

    .venv/bin/python benchmarks/vary_band.py [--sources 48] [--strengths 0.2 0.35 0.5 0.7 0.9]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import describe_machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=48)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.2, 0.35, 0.5, 0.7, 0.9])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    from pairsynth.alignment.clip_scorer import ClipScorer
    from pairsynth.modalities.image_to_image import ImageToImage, VariationSampling
    from pairsynth.modalities.text_to_image import ImageSampling, TextToImage
    from pairsynth.world.shapes import all_captions, render_sample

    clip = ClipScorer.from_pretrained("toy-shapes-clip")
    t2i = TextToImage.from_pretrained("toy-shapes", sampling=ImageSampling(steps=args.steps))
    renders = [render_sample(10_000 + i) for i in range(args.sources)]
    images = [np.asarray(image) for image, _, _ in renders]
    captions = [caption for _, caption, _ in renders]
    source_features = clip.embed_images(images)
    print(f"machine: {describe_machine()}")
    print(f"{args.sources} toy renders, toy-shapes img2img, {args.steps} steps, guidance 4; CLIP toy-shapes-clip")
    print(f"{'strength':>8} {'p5':>7} {'p50':>7} {'p95':>7} {'max':>7} {'caption rank 1':>15}")
    for strength in args.strengths:
        varier = ImageToImage.from_text_to_image(t2i, VariationSampling(strength=strength, steps=args.steps,
                                                                         guidance_scale=4.0))
        variations = [v.pixels for v in varier.generate(images, captions, list(range(args.sources)))]
        features = clip.embed_images(variations)
        similarity = np.einsum("nd,nd->n", features, source_features)
        ranks = [s.rank for s in clip.score_pairs(variations, captions, distractors=all_captions())]
        p5, p50, p95 = np.percentile(similarity, [5, 50, 95])
        print(f"{strength:8.2f} {p5:7.4f} {p50:7.4f} {p95:7.4f} {similarity.max():7.4f} "
              f"{np.mean([r == 1 for r in ranks]):15.2%}")


if __name__ == "__main__":
    main()
