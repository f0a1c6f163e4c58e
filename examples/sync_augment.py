"""Synchronized augmentation of toy-world triplets: image + stereo sound + caption, one draw each.

A horizontal flip mirrors the image *and* swaps the stereo channels *and* rewrites "left" as
"right"; a crop that cuts the named shape away, or moves it across the middle while the caption
says "on the left", drops the copy with a reason; a gain changes the loudness only.

    .venv/bin/python examples/sync_augment.py --out /tmp/aug
    .venv/bin/python examples/sync_augment.py --out /tmp/aug --rescore   # + toy CLIP re-scoring (slower)

Writes ``<out>/<source>-<copy>.png`` and ``.flac`` for every kept copy, and ``<out>/manifest.jsonl``
with one line per copy, dropped ones included: source, seed, caption before and after, status,
reason, and every transform's drawn params. Copy it and swap in your own samples and chain.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from pairsynth.augment import Augmented, Compose, Gain, HorizontalFlip, RandomCrop, Sample, augment_copies
from pairsynth.world.shapes import render_sample


def stereo_sound(seed: int, side: str) -> tuple[np.ndarray, int, str]:
    """A (2, samples) toy sound louder on ``side``, its rate and its caption."""
    try:
        from pairsynth.world import sounds

        scene = dataclasses.replace(sounds.sample_scene(random.Random(seed)), side=side)
        return sounds.render_stereo(scene), sounds.SAMPLE_RATE, sounds.stereo_caption(scene)
    except (ImportError, AttributeError):  # the sounds world is optional here: fall back to a tone
        rate = 16_000
        tone = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(rate) / rate)).astype(np.float32)
        near, far = tone, 0.35 * tone
        return np.stack([near, far] if side == "left" else [far, near]), rate, f"a steady tone on the {side}"


def toy_triplet(seed: int, size: int) -> Sample:
    """A shape image, a stereo sound on the same side, one caption for both, and the shape's box."""
    image, image_caption, scene = render_sample(seed, size)
    audio, rate, sound_caption = stereo_sound(seed, scene.position)
    half = scene.half_extent * size
    box = [scene.cx * size - half, scene.cy * size - half, scene.cx * size + half, scene.cy * size + half]
    return Sample(caption=f"{image_caption}, {sound_caption}", image=np.asarray(image), audio=audio,
                  sample_rate=rate, boxes=np.array([box]), box_labels=(scene.shape,))


def describe(result: Augmented) -> str:
    record = result.record
    ran = [f"{step.name}{dict(step.params)}" for step in record.steps if step.applied]
    if result.dropped:
        return f"DROPPED ({record.reason}: {record.detail})"
    edit = f"{record.caption_before!r} -> {record.caption_after!r}" if record.caption_after != record.caption_before \
        else f"{record.caption_after!r} (unchanged)"
    return f"{edit}\n      params: {'; '.join(ran) or 'none drawn'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sources", type=int, default=4, help="toy triplets to augment")
    parser.add_argument("--copies", type=int, default=3, help="augmented copies per triplet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="image size in pixels")
    parser.add_argument("--rescore", action="store_true", help="re-score kept images with the toy CLIP")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    chain = Compose([HorizontalFlip(p=0.5), RandomCrop(scale=(0.3, 1.0)), Gain(db=(-6.0, 6.0))])
    print("chain:", json.dumps(chain.to_list()))
    kept: list[tuple[str, Sample]] = []
    with open(args.out / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        for source in range(args.sources):
            sample, key = toy_triplet(source, args.size), f"toy{source:03d}"
            # One seed per (run seed, source key, copy): a copy never depends on the others.
            results = augment_copies(sample, chain, seed=args.seed, key=key, copies=args.copies)
            for copy, result in enumerate(results):
                name = f"{key}-{copy}"
                manifest.write(json.dumps({"key": name, "source": key, **result.record.as_dict()}) + "\n")
                print(f"{name}: {describe(result)}")
                if result.sample is not None:
                    Image.fromarray(result.sample.image).save(args.out / f"{name}.png")
                    sf.write(args.out / f"{name}.flac", result.sample.audio.T, result.sample.sample_rate)
                    kept.append((name, result.sample))
    print(f"kept {len(kept)} of {args.sources * args.copies} copies; wrote {args.out}")
    if args.rescore:
        rescore(kept)


def rescore(kept: list[tuple[str, Sample]]) -> None:
    """Score each kept image against its edited caption and the unedited one with the toy CLIP."""
    from pairsynth.alignment.clip_scorer import ClipScorer
    from pairsynth.augment import LEFT_RIGHT, edit_caption
    from pairsynth.world.shapes import all_captions

    clip = ClipScorer.from_pretrained("toy-shapes-clip", device="cpu")
    images = [sample.image for _, sample in kept]
    captions = [sample.caption.split(", ")[0] for _, sample in kept]  # the image's part of the caption
    unswapped = [edit_caption(caption, [LEFT_RIGHT], {}).after for caption in captions]
    scores = clip.score_pairs(images, captions, distractors=all_captions())
    wrong = clip.score_pairs(images, unswapped)
    for (name, _), caption, score, other in zip(kept, captions, scores, wrong):
        print(f"{name}: CLIPScore {score.score:5.1f} rank {score.rank}/{score.distractors + 1} for {caption!r}; "
              f"{other.score:5.1f} with the side word swapped")


if __name__ == "__main__":
    main()
