"""CLIP scoring throughput: pairsynth's ClipScorer against open_clip's README per-image recipe.

The baseline is the README snippet applied to each pair: preprocess one image, tokenize its caption,
encode both, normalise, take the cosine. The scorer batches images and computes each unique
caption's features once. Same model, same images, same captions; target ≥ 2x.

    .venv/bin/python benchmarks/scoring.py [--model ViT-B-32] [--images 128] [--captions 24]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.common import best_of, describe_machine  # noqa: E402
from pairsynth.torch_compat import ensure_torchvision_importable  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32", help="an open_clip architecture (random weights) or toy-NAME")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--captions", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ensure_torchvision_importable()
    import open_clip

    from pairsynth.alignment.clip_scorer import ClipScorer
    from pairsynth.refs import parse_ref

    ref = args.model
    name = f"local-dir:{parse_ref(ref).location}" if ref.startswith("toy-") else ref
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    size = preprocess.transforms[0].size if hasattr(preprocess.transforms[0], "size") else 224
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)) for _ in range(args.images)]
    captions = [f"a photo of object number {i % args.captions}" for i in range(args.images)]

    def readme_recipe() -> list[float]:
        out = []
        for image, caption in zip(images, captions):
            with torch.no_grad():
                image_features = model.encode_image(preprocess(image).unsqueeze(0))
                text_features = model.encode_text(tokenizer([caption]))
                image_features /= image_features.norm(dim=-1, keepdim=True)
                text_features /= text_features.norm(dim=-1, keepdim=True)
                out.append(float((image_features @ text_features.T)[0, 0]))
        return out

    from benchmarks.architectures import count_flops, matmul_peak

    peak_before = matmul_peak(torch.float32)  # and again after: this shared machine's speed drifts
    results = {}
    baseline_scores = readme_recipe()
    results["open_clip README, per image"] = best_of(args.repeats, readme_recipe)
    for label, batch, precision in (("ClipScorer batch 32, fp32", 32, "fp32"), ("ClipScorer batch 64, bf16", 64, "bf16")):
        scorer = ClipScorer(model, preprocess, tokenizer, model_id=ref, device=torch.device("cpu"),
                            batch_size=batch, precision=precision)

        def run(scorer=scorer) -> list[float]:
            scorer._text_cache.clear()  # count caption encoding in every run, once per unique caption
            return [s.cosine for s in scorer.score_pairs(images, captions)]

        deviation = np.abs(np.array(run()) - np.array(baseline_scores)).max()
        results[f"{label} (max |Δcos| {deviation:.1e})"] = best_of(args.repeats, run)

    print(f"machine: {describe_machine()}")
    print(f"workload: {args.images} images ({size} px after preprocess), {args.captions} unique captions, model {ref}")
    base = results["open_clip README, per image"]
    for label, seconds in results.items():
        print(f"{label:45s} {args.images / seconds:7.1f} images/s   x{base / seconds:.2f}")
    best = max(base / seconds for seconds in results.values())
    print(f"best speed-up over the README recipe: x{best:.2f} (earlier target >= 2: {'met' if best >= 2 else 'not met'})")

    # How near the machine's limit: the model FLOPs a run does (every image through the image tower,
    # every unique caption once through the text tower) against a measured fp32 matmul peak.
    probe = torch.stack([preprocess(images[0])])
    image_flops = count_flops(lambda: model.encode_image(probe))
    text_flops = count_flops(lambda: model.encode_text(tokenizer(captions[:1])))
    run_flops = args.images * image_flops + args.captions * text_flops
    peak = max(peak_before, matmul_peak(torch.float32))  # the higher one: the share is not flattered
    fastest_fp32 = min(seconds for label, seconds in results.items() if "fp32" in label)
    share = run_flops / fastest_fp32 / peak
    print(f"fp32 matmul peak {peak / 1e9:.0f} GFLOP/s; {image_flops / 1e9:.2f} GFLOP per image, "
          f"{text_flops / 1e9:.2f} per caption; load {os.getloadavg()[0]:.2f}")
    print(f"scoring: {args.images / fastest_fp32:.1f} images/s, {share:.0%} of the fp32 matmul peak "
          f"(goal ≥ 70%: {'met' if share >= 0.7 else 'not met'})")


if __name__ == "__main__":
    main()
